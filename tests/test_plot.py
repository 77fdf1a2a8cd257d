"""Figures from arrays: every kind draws, non-finite values are clipped not fatal, formats save."""

import numpy as np
import pytest

import landscape as ls
from landscape import plot


def _grid(n=15):
    a = np.linspace(-1, 1, n)
    A, B = np.meshgrid(a, a, indexing="ij")
    return a, a, 0.01 + A**2 + 3 * B**2


@pytest.mark.parametrize("kind", plot.SURFACE_KINDS)
def test_every_kind_draws_with_overflowed_values(kind, tmp_path):
    a, b, z = _grid()
    z[0, 0], z[1, 1] = np.inf, np.nan  # overflowed loss far from the minimum
    fig = plot.landscape_2d(a, b, z, kind=kind, points=np.array([[0.0, 0.0]]), point_labels=["min"],
                            paths=[np.array([[0.8, 0.8], [0.3, 0.2], [0.0, 0.0]])], title="t")
    cbar_label = fig.axes[-1].get_ylabel()
    assert "clipped" in cbar_label and "log scale" in cbar_label
    for fmt in ("png", "pdf", "svg"):
        path = ls.plot.save_figure(fig, tmp_path / f"f.{fmt}")
        assert path.stat().st_size > 1000


def test_levels_are_log_spaced_and_clipped():
    _, _, z = _grid()
    levels, top, log = plot._levels(z, log=True, clip=None)
    assert log and np.allclose(np.diff(np.log(levels)), np.diff(np.log(levels))[0])
    assert levels[0] == pytest.approx(z.min()) and top == pytest.approx(np.percentile(z, 95))
    levels, top, log = plot._levels(z - 1.0, log=True, clip=2.0)  # negative values: linear levels
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
    with pytest.raises(ValueError, match="no values"):
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
    anim = plot.descent_animation(a, b, z, paths, steps=np.arange(7) * 10, points=np.zeros((1, 2)),
                                  point_labels=["min"])
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
