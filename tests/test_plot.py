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
        path = ls.io.save_figure(fig, tmp_path / f"f.{fmt}")
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
