""""""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from .basins import BASIN_COLOURS
from .styles import (
    COLUMN_WIDTH,
    Labels,
    font_size,
    marked,
    named_points,
    new_figure,
    save_animation,
    save_figure,
    scale,
    style_rc,
    styled,
    with_warnings,
)
from .surfaces import landscape_2d, outline_effect

__all__ = ["AnimationStyle", "frame_steps", "descent_animation", "paths_by_basin", "descent_paths", "descent_lines", "descent_figures"]


@dataclasses.dataclass(frozen=True)
class AnimationStyle:
    """How the starts move in :func:`descent_animation`.

    Attributes:
      tail: frames of fading tail behind each dot (0: each whole path so far).
      interval_ms: milliseconds between frames.
      linewidth: the paths' line width.
      dot_size: the moving dots' size.

    Examples:
      >>> ls.figures.AnimationStyle(tail=0).interval_ms
      80
    """

    tail: int = 12
    interval_ms: int = 80
    linewidth: float = 0.9
    dot_size: float = 14.0


def descent_animation(
    a: np.ndarray,
    b: np.ndarray,
    z: np.ndarray,
    paths: np.ndarray,
    *,
    steps: np.ndarray | None = None,
    points=None,
    labels: Labels = Labels(),
    colors: list | None = None,
    legend: dict[str, Any] | None = None,
    size: float | tuple[float, float] | None = None,
    style: AnimationStyle = AnimationStyle(),
):
    """An animation of many starts descending on a 2-D slice: ``paths (S, T, 2)`` over ``z (n0, n1)``.

    The slice is drawn once (filled contours, log levels, as :func:`landscape_2d`); every
    frame moves one dot per start along its path and keeps a short fading tail.  ``colors``:
    one colour per path (default: tab10 in turn); ``legend``: ``{label: colour}`` drawn under
    the axes (at its right with a ``(width, height)`` size).
    Returns a :class:`matplotlib.animation.FuncAnimation` (save it with :func:`save_animation`).

    Args:
      a: ``(n0,)`` the first axis's coordinates.
      b: ``(n1,)`` the second's.
      z: ``(n0, n1)`` the slice's cost.
      paths: ``(S, T, 2)``.
      steps: ``(T,)`` the step of each frame (shown in the title).
      points: the minima, ``{name: (x, y)}`` or ``(m, 2)``.
      labels: the axes', the colour bar's and the title's text (defaults: distances along
        ``u`` and ``v``, ``"loss"``, ``"gradient descent from many starts"``).
      colors: one colour per path.
      legend: ``{label: colour}``.
      size: the figure's width in inches, or ``(width, height)`` (a 16:9 frame for projection).
      style: tail, frame interval, line width and dot size (:class:`AnimationStyle`).

    Examples:
      >>> a = b = np.linspace(-1, 1, 21)
      >>> z = 0.1 + a[:, None] ** 2 + 2 * b[None, :] ** 2                  # a bowl, (21, 21)
      >>> paths = np.stack([np.linspace([0.9, 0.9], [0.0, 0.0], 6), np.linspace([-0.9, 0.5], [0.0, 0.0], 6)])
      >>> anim = ls.figures.descent_animation(a, b, z, paths, steps=np.arange(6))
      >>> type(anim).__name__                                     # save it with save_animation
      'FuncAnimation'
    """
    import matplotlib
    from matplotlib.animation import FuncAnimation

    paths = np.asarray(paths, float)
    if paths.ndim != 3 or paths.shape[-1] != 2:
        raise ValueError(f"paths must have shape (starts, frames, 2), got {paths.shape}")
    num_frames = paths.shape[1]
    labels = labels.over(x="distance along $u$", y="distance along $v$", z="loss",
                         title="gradient descent from many starts")
    tail, linewidth, dot_size = style.tail, style.linewidth, style.dot_size
    framed = isinstance(size, tuple)
    with matplotlib.rc_context(style_rc()):
        w = size if isinstance(size, (int, float)) else COLUMN_WIDTH * 1.25
        fig = new_figure(*size) if framed else new_figure(w, w * 0.88 + (0.35 if legend else 0.0))
        ax = fig.add_subplot()
        landscape_2d(a, b, z, kind="filled", ax=ax, labels=labels, points=points, legend=False)
        ax.set_xlim(float(np.min(a)), float(np.max(a)))
        ax.set_ylim(float(np.min(b)), float(np.max(b)))
        if colors is None:
            colors = matplotlib.colormaps["tab10"](np.arange(paths.shape[0]) % 10)
        tails = [ax.plot([], [], "-", color=c, lw=linewidth, alpha=0.8)[0] for c in colors]
        if legend:
            from matplotlib.lines import Line2D

            fig.legend(handles=[Line2D([], [], color=c, lw=1.5, label=k) for k, c in legend.items()],
                       loc="outside right center" if framed else "outside lower center",
                       ncol=1 if framed else min(3, len(legend)), frameon=False, fontsize=font_size(7))
        dots = ax.scatter(paths[:, 0, 0], paths[:, 0, 1], s=dot_size, c=list(colors), edgecolors="white",
                          linewidths=0.5, zorder=7)
        label = ax.text(0.02, 0.97, "", transform=ax.transAxes, va="top", ha="left", fontsize=font_size(7), color="white",
                        path_effects=outline_effect(), zorder=8)

        def draw(frame):
            lo = max(0, frame - tail) if tail else 0
            for line, path in zip(tails, paths):
                line.set_data(path[lo:frame + 1, 0], path[lo:frame + 1, 1])
            dots.set_offsets(paths[:, frame])
            label.set_text(f"step {int(steps[frame]) if steps is not None else frame}")
            return [*tails, dots, label]

        anim = FuncAnimation(fig, draw, frames=num_frames, interval=style.interval_ms, blit=False)
    return anim


#: Colour of an in-plane path that ended at none of the minima.
UNSETTLED_COLOUR = "#000000"


def paths_by_basin(basin: np.ndarray, names: list[str]) -> tuple[list, dict]:
    """Colours of paths by the minimum they ended at (``basin (S,)``, −1: none) and the legend
    ``{"to NAME: count": colour}`` for them (:func:`descent_paths`, the descent animation).

    Args:
      basin: ``(S,)`` int.
      names: the minima's names.

    Returns:
      ``(colours, legend)``.

    Examples:
      >>> colours, legend = ls.figures.paths_by_basin(np.array([0, 0, 1, -1]), ["seed 0", "seed 1"])
      >>> len(colours), list(legend)
      (4, ['to seed 0: 2', 'to seed 1: 1', 'to none yet: 1'])
    """
    basin = np.asarray(basin)
    colours = [BASIN_COLOURS[k % len(BASIN_COLOURS)] if k >= 0 else UNSETTLED_COLOUR for k in basin]
    legend = {f"to {name}: {int(np.sum(basin == k))}": BASIN_COLOURS[k % len(BASIN_COLOURS)]
              for k, name in enumerate(names)}
    if np.any(basin < 0):
        legend[f"to none yet: {int(np.sum(basin < 0))}"] = UNSETTLED_COLOUR
    return colours, legend


@styled
def descent_paths(a, b, z, paths, basin, *, points=None, labels: Labels = Labels()) -> Figure:
    """The still of an in-plane descent: every path ``(S, T, 2)`` on the plane's cost, coloured by
    the minimum it ended at (``basin (S,)``, −1: none), starts circled, ends dotted.

    Args:
      a: ``(n0,)`` the first axis's coordinates.
      b: ``(n1,)`` the second's.
      z: ``(n0, n1)`` the plane's cost.
      paths: ``(S, T, 2)``.
      basin: ``(S,)`` int.
      points: the minima, ``{name: (x, y)}`` or ``(m, 2)``.
      labels: the axes', the colour bar's and the title's text (defaults: distances along
        ``u`` and ``v``, ``"loss"``, none).

    Returns:
      the figure (column width, the legend under the axes).

    Examples:
      >>> a = b = np.linspace(-1, 1, 21)
      >>> z = 0.1 + a[:, None] ** 2 + 2 * b[None, :] ** 2                  # a bowl, (21, 21)
      >>> paths = np.stack([np.linspace([0.9, 0.9], [0.0, 0.0], 6), np.linspace([-0.9, 0.5], [0.0, 0.0], 6)])
      >>> fig = ls.figures.descent_paths(a, b, z, paths, np.array([0, -1]), points={"seed 0": (0.0, 0.0)})
      >>> fig.axes[0].get_xlabel()
      'distance along u'
    """
    from matplotlib.lines import Line2D

    paths = np.asarray(paths, float)
    labels = labels.over(x="distance along u", y="distance along v", z="loss")
    pts, names = marked(points)
    if not isinstance(points, Mapping):
        names = [f"minimum {i}" for i in range(0 if pts is None else len(pts))]
    colours, legend = paths_by_basin(basin, names)
    fig = new_figure(COLUMN_WIDTH, COLUMN_WIDTH * 1.05)
    ax = fig.add_subplot()
    landscape_2d(a, b, z, kind="filled", ax=ax, labels=labels, points=None if pts is None else dict(zip(names, pts)),
                 legend=False)
    for path, c in zip(paths, colours):
        ax.plot(path[:, 0], path[:, 1], "-", color=c, lw=0.6, alpha=0.9)
        ax.plot(path[-1, 0], path[-1, 1], "o", color=c, ms=2.2, zorder=6)
    ax.plot(paths[:, 0, 0], paths[:, 0, 1], "o", mfc="white", mec="black", mew=0.4, ms=2.6, zorder=7, ls="none")
    ax.set_xlim(float(np.min(a)), float(np.max(a)))
    ax.set_ylim(float(np.min(b)), float(np.max(b)))
    handles = [Line2D([], [], color=c, lw=1.2, label=k) for k, c in legend.items()]
    handles.append(Line2D([], [], ls="none", marker="o", mfc="white", mec="black", ms=3.5, label="start"))
    fig.legend(handles=handles, loc="outside lower center", ncol=2, frameon=False, fontsize=font_size(6))
    return fig


def descent_lines(arrays: dict, meta: dict) -> list[str]:
    """Lines for an in-plane descent: how many paths ended at each minimum, and their final cost.

    Args:
      arrays: the result's arrays (:func:`landscape.io.load_result`).
      meta: its metadata.

    Returns:
      the lines.

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10))
      >>> d = ls.analyses.animate(run, ls.analyses.AnimateSpec(starts=3, steps=20, grid=5))
      >>> len(ls.figures.descent_lines(d.arrays, d.meta)) >= 1
      True
    """
    basin, final = np.asarray(arrays["basin"]), np.asarray(arrays["final_loss"])
    names = list(meta.get("point_labels") or [])
    out = [f"{basin.size} starts, {meta.get('steps')} steps of in-plane gradient descent at lr {meta.get('lr'):g}; "
           f"final cost {np.nanmin(final):.4g} to {np.nanmax(final):.4g}"]
    for k in range(np.asarray(arrays["points"]).shape[0]):
        n = int(np.sum(basin == k))
        out.append(f"  ended at {names[k] if k < len(names) else f'minimum {k}'}: {n}")
    if np.any(basin < 0):
        out.append(f"  at none of the minima yet (further than a quarter of their spacing): {int(np.sum(basin < 0))}")
    return out


def frame_steps(steps: int, frames: int) -> np.ndarray:
    """Which steps an animation of a ``steps``-step descent shows: ``min(frames, steps + 1)``
    distinct steps from 0 to ``steps``, spaced logarithmically where the steps allow it (the fast
    start is not a blur) and one apart where log spacing would repeat a step.

    Args:
      steps: the descent's steps (its paths hold ``steps + 1`` points).
      frames: how many frames are asked for.

    Returns:
      ``(min(frames, steps + 1),)`` strictly increasing step indices, first 0, last ``steps``.

    Examples:
      >>> ls.figures.frame_steps(1000, 5).tolist()
      [0, 5, 31, 177, 1000]
      >>> len(ls.figures.frame_steps(100, 30)), len(ls.figures.frame_steps(10, 30))
      (30, 11)
    """
    n = min(int(frames), int(steps) + 1)
    if n < 2:
        return np.array([int(steps)])
    target = np.round(np.geomspace(1, steps + 1, n)).astype(int) - 1
    pick = np.empty(n, int)
    for i, t in enumerate(target):  # at least one past the previous frame ...
        pick[i] = t if i == 0 else max(t, pick[i - 1] + 1)
    return np.minimum(pick, steps - np.arange(n)[::-1])  # ... and room left for the frames after it


def descent_figures(arrays: dict, meta: dict, stem: str | Path, fmt: str = "png", *, movie: str = "gif",
                    pixels: int = 1600, frames: int = 90, animation: bool = True) -> list[Path]:
    """The in-plane descent's still (``STEM.FMT``) and animation (``STEM.gif`` or ``.mp4``, ``pixels``
    wide, 16:9, paths coloured by the minimum they end at, ``frames`` log-spaced steps so the
    fast start is not a blur: :func:`frame_steps`; all ``steps + 1`` when fewer than ``frames``).

    Args:
      arrays: the result's arrays (:func:`landscape.io.load_result`).
      meta: its metadata.
      stem: the figures' path without suffix.
      fmt: the still's format.
      movie: ``"gif"`` or ``"mp4"``.
      pixels: the animation's width in pixels.
      frames: how many frames.
      animation: also the animation.

    Returns:
      the files written.

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10))
      >>> d = ls.analyses.animate(run, ls.analyses.AnimateSpec(starts=3, steps=20, grid=5))
      >>> [p.suffix for p in ls.figures.descent_figures(d.arrays, d.meta, f"{run}/descent", pixels=480, frames=4)]
      ['.png', '.gif']
    """

    stem = Path(stem)
    out = [save_figure(descent_of_result(arrays, meta), stem.with_name(f"{stem.name}.{fmt}"))]
    if animation:
        paths = np.asarray(arrays["paths"])
        steps = paths.shape[1] - 1
        pick = frame_steps(steps, frames)
        names = list(meta.get("point_labels") or [])
        labels = meta.get("axis_labels", ["u", "v"])
        width = 8.0
        colours, legend = paths_by_basin(arrays["basin"], names)
        anim = descent_animation(
            arrays["axis_0"], arrays["axis_1"], arrays["cost"], paths[:, pick], steps=pick,
            points=named_points(arrays.get("points"), names), colors=colours, legend=legend,
            labels=Labels(x=labels[0], y=labels[1], title=meta.get("title")), size=(width, width * 9 / 16),
            style=AnimationStyle(tail=0, linewidth=0.6, dot_size=10))
        dpi = pixels / (width * scale())  # the frame is `pixels` wide whatever the style
        out.append(save_animation(anim, stem.with_name(f"{stem.name}.{movie}"), dpi=dpi))
    return out


def descent_of_result(arrays: dict, meta: dict) -> Figure:
    """The still of a saved in-plane descent (:func:`descent_paths` with its stored labels and warnings).

    Args:
      arrays: the result's arrays.
      meta: its metadata.

    Returns:
      the figure.
    """
    labels = meta.get("axis_labels", ["u", "v"])
    return with_warnings(descent_paths(arrays["axis_0"], arrays["axis_1"], arrays["cost"], arrays["paths"],
                                       arrays["basin"], points=named_points(arrays.get("points"), meta.get("point_labels")),
                                       labels=Labels(x=labels[0], y=labels[1], title=meta.get("title"))), meta)
