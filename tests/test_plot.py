"""Figures from arrays: every kind draws, non-finite values are clipped not fatal, formats save."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import landscape as ls
from landscape import figures as plot
from landscape.figures.surfaces import contour_levels


def _colorbar_axes(fig):
    """The colour bar of a one-panel figure: an inset of the axes (as tall as they are), or its own axes (3-D)."""
    ax = fig.axes[0]
    return ax.child_axes[0] if ax.child_axes else fig.axes[-1]


def _grid(n=15):
    a = np.linspace(-1, 1, n)
    A, B = np.meshgrid(a, a, indexing="ij")
    return a, a, 0.01 + A**2 + 3 * B**2


@pytest.mark.parametrize("kind", plot.SURFACE_KINDS)
def test_every_kind_draws_with_overflowed_values(kind, tmp_path):
    a, b, z = _grid()
    z[0, 0], z[1, 1] = np.inf, np.nan  # overflowed loss far from the minimum
    fig = plot.landscape_2d(a, b, z, kind=kind, points={"min": (0.0, 0.0)},
                            paths=[np.array([[0.8, 0.8], [0.3, 0.2], [0.0, 0.0]])], labels=plot.Labels(title="t"))
    cbar_label = _colorbar_axes(fig).get_ylabel()
    assert "clipped" in cbar_label and "log scale" in cbar_label
    for fmt in ("png", "pdf", "svg"):
        path = ls.plot.save_figure(fig, tmp_path / f"f.{fmt}")
        assert path.stat().st_size > 1000


def test_levels_are_log_spaced_and_clipped():
    _, _, z = _grid()
    levels, top, log = contour_levels(z, log=True, clip=None)
    assert log and np.allclose(np.diff(np.log(levels)), np.diff(np.log(levels))[0])
    assert levels[0] == pytest.approx(z.min()) and top == pytest.approx(np.percentile(z, 95))
    levels, top, log = contour_levels(z - 1.0, log=True, clip=2.0)  # negative values: linear levels
    assert not log and top == pytest.approx(2.0)


def test_curves_small_multiples_and_training_figures(tmp_path):
    t = np.linspace(-0.5, 1.5, 21)
    fig = plot.curve(t, {"train_loss": 1 + (t - 0.5) ** 2, "train_accuracy": np.clip(t, 0, 1)}, log_scale=True,
                     marks={"A": 0, "B": 1})
    assert len(fig.axes) == 2
    fig = plot.curve(t, {"train_loss": np.stack([1 + t**2, 2 + t**2])})
    assert len(fig.axes) == 1
    a, b, z = _grid(9)
    fig = plot.small_multiples(a, b, np.stack([z, 2 * z, 3 * z]), titles=["a", "b", "c"])
    assert sum(ax.get_title() in "abc" for ax in fig.axes) >= 3
    steps = np.arange(0, 100, 10)
    loss = np.exp(-steps / 50)[None] * np.array([[1.0], [2.0], [np.nan]])
    fig = plot.training_curves(steps, loss, np.ones_like(loss) * 0.5, diverged=np.array([False, False, True]))
    assert "1 diverged" in fig.axes[0].get_title()
    fig = plot.final_cost_histogram(np.array([0.1, 0.2, 5.0, np.inf]), diverged=np.array([0, 0, 0, 1], bool))
    assert "excluded" in fig.axes[0].get_title()


def test_from_result_rejects_mismatched_requests():
    arrays = {"axis_0": np.linspace(0, 1, 5), "value/train_loss": np.ones(5)}
    with pytest.raises(ValueError, match="drawn as a line"):
        plot.from_result(arrays, {"kind": "line"}, kind="filled")
    with pytest.raises(ValueError, match="unknown metric"):
        plot.from_result(arrays, {"kind": "line"}, metric="test_loss")
    with pytest.raises(ValueError, match="holds no values"):
        plot.from_result({"axis_0": np.zeros(2)}, {})


def test_sweep_figure_with_bands_and_extra_points(tmp_path):
    fig = plot.sweep(np.array([8, 16, 32]), [
        {"y": [3.0, 2.0, np.nan], "lo": [2.5, 1.5, np.nan], "hi": [3.5, 2.5, np.nan], "ylabel": "top eigenvalue",
         "label": "two layers", "extra": [(16, 4.0, 3.0, 5.0, "deep")]},
        {"y": [0.2, 0.5, 0.9], "ylabel": "largest basin", "ylim": (0, 1)}],
        xlabel="width", log_x=True, xticklabels=["8", "16", "32"], title="sweep")
    axes = fig.axes
    assert len(axes) == 2 and axes[0].get_xscale() == "log" and axes[1].get_ylim() == (0, 1)
    assert [t.get_text() for t in axes[0].get_legend().get_texts()] == ["two layers", "deep"]
    assert ls.plot.save_figure(fig, tmp_path / "s.png").stat().st_size > 1000


def test_sweep_draws_several_series_and_log_axes_only_over_a_decade():
    series = [{"y": [1.0, 2.0], "label": "skip"}, {"y": [1.5, 3.0], "lo": [1.0, 2.0], "hi": [2.0, 4.0],
                                                  "label": "no skip"}]
    fig = plot.sweep(np.array([6, 14]), [{"series": series, "ylabel": "ratio", "log_y": True},
                                         {"series": [{"y": [0.01, 2.0]}], "ylabel": "cost", "log_y": True}],
                     xlabel="depth")
    narrow, wide = fig.axes
    assert [t.get_text() for t in narrow.get_legend().get_texts()] == ["skip", "no skip"]
    assert narrow.get_yscale() == "linear" and wide.get_yscale() == "log"  # 2x is no decade, 200x is
    with pytest.raises(ValueError, match="at most 4 series"):
        plot.sweep(np.array([1]), [{"series": [{"y": [1.0]}] * 5, "ylabel": "y"}], xlabel="x")


def test_descent_animation_saves_every_frame_as_gif(tmp_path, monkeypatch):
    from matplotlib import animation
    from PIL import Image

    a, b, z = _grid(21)
    t = np.linspace(0, 1, 7)[:, None]
    paths = np.stack([np.hstack([0.9 * (1 - t), 0.8 * (1 - t)]), np.hstack([-0.7 * (1 - t), 0.5 * (1 - t)])])
    anim = plot.descent_animation(a, b, z, paths, steps=np.arange(7) * 10, points={"min": (0.0, 0.0)})
    # no ffmpeg: an .mp4 request falls back to a GIF (and nothing half-written is left behind)
    monkeypatch.setattr(animation.writers, "is_available", lambda name: False)
    out = ls.plot.save_animation(anim, tmp_path / "descent.mp4", fps=5)
    assert out == tmp_path / "descent.gif"
    with Image.open(out) as im:
        assert im.n_frames == 7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["descent.gif"]
    with pytest.raises(ls.errors.ConfigError, match="mp4 or .gif"):
        ls.plot.save_animation(anim, tmp_path / "descent.avi")
    with pytest.raises(ValueError, match="starts, frames, 2"):
        plot.descent_animation(a, b, z, paths[0])


@given(steps=st.integers(0, 5000), frames=st.integers(1, 400))
@settings(max_examples=300, deadline=None)
def test_an_animation_shows_the_frames_asked_for_or_every_step(steps, frames):
    """`animate --frames 30` wrote 26 frames: log spacing repeated steps, and the repeats were dropped."""
    pick = plot.frame_steps(steps, frames)
    assert len(pick) == min(frames, steps + 1)
    assert pick[-1] == steps and (pick[0] == 0 or len(pick) == 1)
    assert np.all(np.diff(pick) > 0)
    if frames >= 3 and steps >= 100 * frames:  # room to spare: the log spacing is kept, not evened out
        log = np.round(np.geomspace(1, steps + 1, frames)).astype(int) - 1
        np.testing.assert_array_equal(pick[-frames // 2:], log[-frames // 2:])


# ---------------------------------------------------------------------- figures a journal and a lecture hall accept


def test_pdf_embeds_truetype_not_type3_and_svg_keeps_text(tmp_path):
    a, b, z = _grid()
    fig = plot.landscape_2d(a, b, z, labels=plot.Labels(title=r"plane, $\alpha$ and $\beta$"))
    pdf = plot.save_figure(fig, tmp_path / "f.pdf").read_bytes()
    assert b"/Type3" not in pdf and (b"/FontFile2" in pdf)  # TrueType (Type 42) embedded
    svg = plot.save_figure(fig, tmp_path / "f.svg").read_text()
    assert "<text" in svg and "plane" in svg  # text, not glyph outlines


def test_slides_style_is_larger_and_scoped(tmp_path):
    a, b, z = _grid()
    paper = plot.landscape_2d(a, b, z)
    with plot.using("slides"):
        slides = plot.landscape_2d(a, b, z)
    after = plot.landscape_2d(a, b, z)
    w, h = paper.get_size_inches() * plot.STYLES["slides"]["scale"]
    np.testing.assert_allclose(slides.get_size_inches(), [max(w, 16 / 9 * h), h])  # a 16:9 frame at least
    assert slides.get_size_inches()[0] / slides.get_size_inches()[1] >= 16 / 9 - 1e-9
    np.testing.assert_allclose(after.get_size_inches(), paper.get_size_inches())  # restored on exit
    tick = slides.axes[0].get_xticklabels()[0].get_fontsize()
    assert tick > 2 * paper.axes[0].get_xticklabels()[0].get_fontsize()
    with pytest.raises(ls.ConfigError, match="unknown figure style"):
        with plot.using("poster"):
            pass


def test_colour_bar_is_as_tall_as_its_axes_and_states_the_clip():
    a, b, z = _grid()
    fig = plot.landscape_2d(a, b, z, clip=1.0)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    ax, cax = fig.axes[0], _colorbar_axes(fig)
    assert abs(cax.get_window_extent(renderer).height - ax.get_window_extent(renderer).height) < 1.0
    assert "clipped above 1" in cax.get_ylabel()


def test_barrier_matrix_colours_start_at_zero_leave_out_the_diagonal_and_label_axes_at_any_count():
    """The scale began at the smallest barrier (0.084 in the lecture run), so black read as zero."""
    rng = np.random.default_rng(0)
    for n in (5, 40):
        m = rng.uniform(0.2, 0.5, (n, n))
        m = (m + m.T) / 2
        np.fill_diagonal(m, 0.0)
        fig = plot.matrix(m, groups=np.arange(n) % 2)
        im = fig.axes[0].get_images()[0]
        off = m[~np.eye(n, dtype=bool)]
        assert im.norm.vmin == 0.0 and np.isclose(im.norm.vmax, off.max())
        assert np.isnan(np.asarray(im.get_array(), float)[np.eye(n, dtype=bool)]).all()  # grey, not the scale's 0
        assert fig.axes[0].get_xlabel() and fig.axes[0].get_ylabel()
    signed = np.array([[1.0, -0.3, 0.4], [-0.3, 1.0, 0.9], [0.4, 0.9, 1.0]])  # e.g. cosines: the scale holds them all
    im = plot.matrix(signed).axes[0].get_images()[0]
    assert np.isclose(im.norm.vmin, -0.3) and np.isclose(im.norm.vmax, 0.9)


def test_log_axis_below_a_decade_has_labelled_ticks():
    steps = np.arange(0, 101, 10)
    loss = np.linspace(0.05, 0.03, steps.size)[None].repeat(3, 0)  # less than a decade
    fig = plot.training_curves(steps, loss, np.full_like(loss, 0.9), loss_name="mse")
    fig.canvas.draw()
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert len(labels) >= 2, labels


def test_few_final_costs_are_a_strip_many_a_histogram_with_a_rug():
    few = plot.final_cost_histogram(np.linspace(0.1, 0.2, 8))
    ax = few.axes[0]
    assert not ax.patches and ax.collections[0].get_offsets().shape == (8, 2)  # every member a dot
    many = plot.final_cost_histogram(np.random.default_rng(0).uniform(0.1, 0.2, 256))
    ax = many.axes[0]
    assert len(ax.patches) == 30 and ax.lines[0].get_xdata().size == 256  # bars and a rug


def test_alignment_scatter_is_transparent_with_a_diagonal_across_the_axes():
    fig = plot.scatter(np.array([0.4, 0.5]), np.array([0.05, 0.1]), xlabel="before", ylabel="after", diagonal=True)
    ax = fig.axes[0]
    assert ax.collections[0].get_alpha() < 1
    assert any(type(line).__name__ == "AxLine" for line in ax.get_lines())


def test_plot_refuses_what_it_cannot_draw():
    a, b, z = _grid()
    arrays = {"axis_0": a, "axis_1": b, "value/train_loss": np.stack([z, z])}
    with pytest.raises(ValueError, match="small multiples"):
        plot.from_result(arrays, {"kind": "plane"}, kind="surface")
    fig = plot.from_result(arrays, {"kind": "plane", "title": "two seeds"})
    assert fig._suptitle is not None and fig._suptitle.get_text() == "two seeds"
    with pytest.raises(ValueError, match="has its own figures"):
        plot.from_result({"barrier": np.zeros((2, 2))}, {"kind": "compare"})


@pytest.mark.parametrize("n", [3, plot.MAX_LABELLED_PATHS, 40])
def test_many_paths_share_one_legend_entry_and_leave_the_plane_its_size(n):
    """Up to MAX_LABELLED_PATHS paths: a colour and an entry each; more: one colour, one entry
    (40 entries once crushed the saved plane of gallery study 4 to a stamp)."""
    a, b, z = _grid()
    rng = np.random.default_rng(0)
    paths = [np.cumsum(rng.normal(scale=0.1, size=(6, 2)), axis=0) for _ in range(n)]
    fig = plot.landscape_2d(a, b, z, kind="filled", paths={f"seed {i}": p for i, p in enumerate(paths)})
    labels = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    path_entries = [t for t in labels if t.startswith("seed ") or t.endswith(" paths")]
    if n <= plot.MAX_LABELLED_PATHS:
        assert path_entries == [f"seed {i}" for i in range(n)]
        colours = {tuple(line.get_color()) for line in fig.axes[0].lines[: 2 * n : 2]}
        assert len(colours) == n  # tab10: a colour each
    else:
        assert path_entries == [f"{n} paths"]
    assert "start of a path" in labels and len(labels) <= plot.MAX_LABELLED_PATHS + 2
