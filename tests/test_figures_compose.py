"""Library figures compose: drawn into one axes of a user's own ``plt.subplots`` grid, every
function that takes ``ax`` keeps its colour bar, labels and legend inside that axes' cell and
leaves the neighbouring panel where and as it was."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import landscape as ls  # noqa: E402

A = np.linspace(-1, 1, 21)
Z = 0.1 + A[:, None] ** 2 + 2 * A[None, :] ** 2
PATHS = {f"seed {i}": np.linspace([0.9 - 0.3 * i, 0.9], [0.0, 0.0], 5) for i in range(3)}
DRAW = {
    "landscape_2d": lambda ax: ls.figures.landscape_2d(A, A, Z, ax=ax, points={"minimum": (0.0, 0.0)}, paths=PATHS,
                                                       labels=ls.figures.Labels(title="a bowl")),
    "landscape_2d contour": lambda ax: ls.figures.landscape_2d(A, A, Z, kind="contour", ax=ax),
    "landscape_2d heatmap": lambda ax: ls.figures.landscape_2d(A, A, Z, kind="heatmap", ax=ax, clip=1.0),
    "matrix": lambda ax: ls.figures.matrix(np.array([[0, 0.1, 0.9], [0.1, 0, 0.8], [0.9, 0.8, 0]]),
                                           groups=np.array([0, 0, 1]), names=["0", "1", "2"], title="barriers", ax=ax),
    "scatter": lambda ax: ls.figures.scatter(np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.9, 0.8, 0.85, 0.7]),
                                             xlabel="sharpness", ylabel="test accuracy", groups=np.array([0, 0, 1, 1]),
                                             group_names=["lr 0.1", "lr 1"], title="sharpness", ax=ax),
    "spectral_density": lambda ax: ls.figures.spectral_density(A, np.exp(-(A - 0.2) ** 2 / 0.05) + 1e-4,
                                                               eigenvalues=np.array([0.5]), title="spectrum", ax=ax),
}


def _extents(fig, keep) -> list:
    """Window extents of everything drawn in ``fig`` except the axes ``keep`` and its children
    (axes with their tick labels and labels, legends, texts)."""
    renderer = fig.canvas.get_renderer()
    boxes = []
    for ax in fig.axes:
        if ax is keep:
            continue
        boxes.append((f"axes {ax.get_label() or ax}", ax.get_tightbbox(renderer)))
    boxes += [("legend", leg.get_window_extent(renderer)) for leg in fig.legends]
    boxes += [(f"text {t.get_text()!r}", t.get_window_extent(renderer)) for t in fig.texts if t.get_text()]
    return boxes


@pytest.mark.parametrize("name", list(DRAW))
@pytest.mark.parametrize("grid", [(1, 2), (2, 1)])
def test_a_figure_drawn_into_one_cell_stays_in_it(name, grid):
    fig, axes = plt.subplots(*grid, figsize=(8, 4) if grid == (1, 2) else (6, 8))
    try:
        mine, neighbour = axes
        neighbour.plot([0, 1], [0, 1])
        fig.canvas.draw()
        before = neighbour.get_position().bounds
        box = mine.get_window_extent(fig.canvas.get_renderer()).frozen()  # the axes' own box, before drawing
        out = DRAW[name](mine)
        assert out is fig  # the user's figure, not a new one
        fig.canvas.draw()
        assert neighbour.get_position().bounds == pytest.approx(before)  # the neighbour keeps its place and size
        renderer = fig.canvas.get_renderer()
        other = neighbour.get_tightbbox(renderer)  # the neighbour with its own labels
        for cax in [a for a in fig.axes if a not in (mine, neighbour)] + list(mine.child_axes):
            cb = cax.get_tightbbox(renderer)  # a colour bar with its ticks and label: inside the box
            assert box.x0 - 0.5 <= cb.x0 and cb.x1 <= box.x1 + 0.5, f"{name}: the colour bar leaves the axes' box"
            bar = cax.get_window_extent(renderer)  # its ends' tick labels may overhang by half a line
            assert box.y0 - 0.5 <= bar.y0 and bar.y1 <= box.y1 + 0.5, f"{name}: the colour bar leaves the axes' box"
        if mine.get_legend() is not None:
            lb = mine.get_legend().get_window_extent(renderer)
            assert box.x0 - 0.5 <= lb.x0 and lb.x1 <= box.x1 + 0.5 and box.y0 - 0.5 <= lb.y0 and lb.y1 <= box.y1 + 0.5
        for what, ext in _extents(fig, neighbour):  # nothing drawn reaches the neighbour or leaves the figure
            assert not ext.overlaps(other), f"{name}: {what} reaches into the neighbouring panel"
            assert ext.x0 >= -0.5 and ext.y0 >= -0.5, f"{name}: {what} leaves the figure"
            assert ext.x1 <= fig.bbox.x1 + 0.5 and ext.y1 <= fig.bbox.y1 + 0.5, f"{name}: {what} leaves the figure"
    finally:
        plt.close(fig)


def test_a_figure_of_its_own_keeps_its_layout():
    """Without ``ax`` a figure is the library's own: colour bar beside the axes, legend under them."""
    fig = ls.figures.landscape_2d(A, A, Z, points={"minimum": (0.0, 0.0)}, paths=PATHS)
    assert len(fig.legends) == 1 and not fig.axes[0].get_legend()
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    plane = fig.axes[0]
    bar = plane.child_axes[0]  # an inset of the plane's axes, exactly as tall
    r = canvas.get_renderer()
    assert bar.get_window_extent(r).x0 > plane.get_window_extent(r).x1  # beside, not inside


def test_drawn_into_a_users_axes_the_legend_is_the_axes_own():
    fig, (left, right) = plt.subplots(1, 2)
    try:
        ls.figures.landscape_2d(A, A, Z, ax=left, points={"minimum": (0.0, 0.0)}, paths=PATHS)
        assert left.get_legend() is not None and not fig.legends
        labels = [t.get_text() for t in left.get_legend().get_texts()]
        assert "seed 0" in labels and "trained minimum" in labels
    finally:
        plt.close(fig)
