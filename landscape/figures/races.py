""""""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .animations import AnimationStyle, descent_animation
from .styles import (
    PAGE_WIDTH,
    Labels,
    font_size,
    log_axis,
    named_points,
    new_figure,
    save_animation,
    save_figure,
    styled,
    with_warnings,
)
from .surfaces import landscape_2d

__all__ = ["race_figure", "race_animation", "race_lines", "race_figures"]

#: Colours of a race's entrants (colour-blind safe, Paul Tol's "bright").
ENTRANT_COLOURS = ("#4477AA", "#EE6677", "#228833", "#CCBB44", "#66CCEE", "#AA3377", "#BBBBBB", "#000000")


@styled
def race_figure(
    a: np.ndarray,
    b: np.ndarray,
    cost: np.ndarray,
    paths: np.ndarray,
    steps: np.ndarray,
    loss: np.ndarray,
    entrants: list[str],
    *,
    points=None,
    diverged: np.ndarray | None = None,
    labels: Labels = Labels(),
) -> Figure:
    """An optimizer race: the paths on the plane (left) and the cost against steps (right).

    Args:
      a: ``(G,)`` the plane's grid along u.
      b: ``(H,)`` the plane's grid along v.
      cost: ``(G, H)`` the cost on that grid.
      paths: ``(S, E, K, 2)`` projected paths of ``S`` starts × ``E`` entrants.
      steps: ``(T,)`` the steps at which ``loss`` was recorded.
      loss: ``(S, E, T)`` cost against steps.
      entrants: ``E`` names.
      points: the minima, ``{name: (x, y)}`` or ``(R, 2)``.
      diverged: ``(S, E)`` bool (drawn dashed).
      labels: the plane's axes, what the cost is called (``z``, default ``"loss"``) and the
        figure's title (:class:`~landscape.figures.styles.Labels`).

    Returns:
      the figure: each entrant one colour; circles mark the starts, crosses the ends; thin
      lines one start each, the thick line the median over starts.

    Examples:
      >>> a = b = np.linspace(-1, 1, 21)
      >>> z = 0.1 + a[:, None] ** 2 + 2 * b[None, :] ** 2                  # a bowl, (21, 21)
      >>> paths = np.stack([np.stack([np.linspace([0.9, 0.9], [0, 0], 4), np.linspace([0.9, 0.9], [0.3, 0], 4)])])
      >>> loss = np.array([[[1.0, 0.5, 0.2, 0.1], [1.0, 0.8, 0.6, 0.4]]])    # (starts, entrants, steps)
      >>> fig = ls.figures.race_figure(a, b, z, paths, np.arange(4), loss, ["sgd@3", "adam@0.01"])
      >>> len(fig.axes) >= 2                                      # the paths on the plane, cost against steps
      True
    """
    from matplotlib.lines import Line2D

    paths, loss = np.asarray(paths, float), np.asarray(loss, float)
    labels = labels.over(x="distance along u", y="distance along v", z="loss")
    loss_name, title = labels.z, labels.title
    s, e = paths.shape[:2]
    colours = [ENTRANT_COLOURS[i % len(ENTRANT_COLOURS)] for i in range(e)]
    fig = new_figure(PAGE_WIDTH, 3.3)
    ax, ax2 = fig.subplots(1, 2, width_ratios=[1.15, 1])
    landscape_2d(a, b, cost, kind="filled", ax=ax, labels=Labels(x=labels.x, y=labels.y, z=loss_name), points=points,
                 colorbar=True, legend=False)
    ax.set_xlim(float(np.min(a)), float(np.max(a)))
    ax.set_ylim(float(np.min(b)), float(np.max(b)))
    dead = np.zeros((s, e), bool) if diverged is None else np.asarray(diverged, bool)
    for j in range(e):
        for i in range(s):
            p = paths[i, j]
            ax.plot(p[:, 0], p[:, 1], "--" if dead[i, j] else "-", color=colours[j], lw=0.9, alpha=0.9)
            ax.plot(p[-1, 0], p[-1, 1], "x", color=colours[j], ms=4, mew=1.2, zorder=6)
    starts = paths[:, 0, 0]
    ax.plot(starts[:, 0], starts[:, 1], "o", mfc="white", mec="black", ms=4, mew=0.7, zorder=7)
    for j in range(e):
        for i in range(s):
            ax2.plot(steps, loss[i, j], "-", color=colours[j], lw=0.5, alpha=0.35)
        with np.errstate(all="ignore"):
            ax2.plot(steps, np.nanmedian(loss[:, j], axis=0), "-", color=colours[j], lw=1.6)
    finite = loss[np.isfinite(loss) & (loss > 0)]
    if finite.size:
        log_axis(ax2, "y", finite)
    ax2.set_xlabel("step")
    ax2.set_ylabel(f"training {loss_name}")
    ax2.set_title("cost against steps (thick: median of the starts)", fontsize=font_size(7))
    handles = [Line2D([], [], color=c, lw=1.6, label=n) for c, n in zip(colours, entrants)]
    handles += [Line2D([], [], ls="none", marker="o", mfc="white", mec="black", ms=4, label="start"),
                Line2D([], [], ls="none", marker="x", color="0.2", ms=4, mew=1.2, label="end"),
                Line2D([], [], ls="none", marker="*", mfc="white", mec="black", ms=7, label="minimum")]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 5), frameon=False, fontsize=font_size(6))
    if title:
        fig.suptitle(title, fontsize=font_size(8))
    return fig


def race_animation(a, b, cost, paths, path_steps, entrants, *, points=None, labels: Labels = Labels(),
                   width: float = 6.4):
    """The race as an animation (:func:`descent_animation` with one colour per entrant, whole
    paths growing): ``paths (S, E, K, 2)``.  Returns the animation; save it with :func:`save_animation`.

    Args:
      a: the plane's first axis.
      b: its second.
      cost: ``(G, H)``.
      paths: ``(S, E, K, 2)``.
      path_steps: ``(K,)`` the snapshot steps.
      entrants: ``E`` names.
      points: the minima, ``{name: (x, y)}`` or ``(R, 2)``.
      labels: the plane's axes, what the cost is called (``z``) and the title (default
        ``"optimizer race"``).
      width: the figure's width in inches.

    Examples:
      >>> a = b = np.linspace(-1, 1, 21)
      >>> z = 0.1 + a[:, None] ** 2 + 2 * b[None, :] ** 2                  # a bowl, (21, 21)
      >>> paths = np.stack([np.stack([np.linspace([0.9, 0.9], [0, 0], 4), np.linspace([0.9, 0.9], [0.3, 0], 4)])])
      >>> type(ls.figures.race_animation(a, b, z, paths, np.arange(4), ["sgd@3", "adam@0.01"])).__name__
      'FuncAnimation'
    """
    paths = np.asarray(paths, float)
    s, e, k = paths.shape[:3]
    colours = [ENTRANT_COLOURS[i % len(ENTRANT_COLOURS)] for i in range(e)]
    flat = paths.reshape(s * e, k, 2)
    return descent_animation(a, b, cost, flat, steps=path_steps, points=points,
                             labels=labels.over(x="distance along u", y="distance along v", title="optimizer race"),
                             colors=[colours[j] for i in range(s) for j in range(e)],
                             legend=dict(zip(entrants, colours)), size=width, style=AnimationStyle(tail=0))


def race_lines(arrays: dict, meta: dict) -> list[str]:
    """Lines for a race result: per entrant, the final cost over the starts and how far the paths left the plane.

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
      >>> r = ls.analyses.race(run, ls.analyses.RaceSpec(optimizers="sgd,adam", starts=2, steps=10, grid=5))
      >>> [line.split()[0] for line in ls.figures.race_lines(r.arrays, r.meta)][-2:]
      ['sgd@0.5', 'adam@0.01']
    """
    loss, off = np.asarray(arrays["loss"]), np.asarray(arrays["off_plane"])
    dead = np.asarray(arrays["diverged"])
    out = [f"{loss.shape[0]} starts x {loss.shape[1]} entrants, {int(arrays['steps'][-1])} steps"]
    out.append(f"  {'entrant':<28} {'final cost: median':>18} {'min':>9} {'max':>9}  {'off the plane (max)':>19}")
    for j, name in enumerate(meta["entrants"]):
        f = loss[:, j, -1]
        note = f"  {int(dead[:, j].sum())} diverged" if dead[:, j].any() else ""
        out.append(f"  {name:<28} {np.nanmedian(f):>18.4g} {np.nanmin(f):>9.4g} {np.nanmax(f):>9.4g}  "
                   f"{np.nanmax(off[:, j]):>19.3g}{note}")
    return out


def race_figures(arrays: dict, meta: dict, stem: str | Path, fmt: str = "png", *, animation: bool = True) -> list[Path]:
    """The race's still (``STEM.FMT``) and, with ``animation``, its animation (``STEM.gif``).

    Args:
      arrays: the result's arrays (:func:`landscape.io.load_result`).
      meta: its metadata.
      stem: the figures' path without suffix.
      fmt: the still's format.
      animation: also the GIF.

    Returns:
      the files written.

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10))
      >>> r = ls.analyses.race(run, ls.analyses.RaceSpec(optimizers="sgd,adam", starts=2, steps=10, grid=5))
      >>> [p.suffix for p in ls.figures.race_figures(r.arrays, r.meta, f"{run}/race")]
      ['.png', '.gif']
    """

    stem = Path(stem)
    paths = [save_figure(race_of_result(arrays, meta), stem.with_name(f"{stem.name}.{fmt}"))]
    if animation:
        labels = meta.get("axis_labels", ["u", "v"])
        anim = race_animation(arrays["axis_0"], arrays["axis_1"], arrays["cost"], arrays["paths"],
                              arrays["path_steps"], meta["entrants"],
                              points=named_points(arrays.get("points"), meta.get("point_labels")),
                              labels=Labels(x=labels[0], y=labels[1], title=meta.get("title")))
        paths.append(save_animation(anim, stem.with_name(f"{stem.name}.gif")))
    return paths


def race_of_result(arrays: dict, meta: dict) -> Figure:
    """The figure of a saved race result (:func:`race_figure` with its stored labels and warnings).

    Args:
      arrays: the result's arrays.
      meta: its metadata.

    Returns:
      the figure.
    """
    labels = meta.get("axis_labels", ["u", "v"])
    return with_warnings(race_figure(arrays["axis_0"], arrays["axis_1"], arrays["cost"], arrays["paths"], arrays["steps"],
                                     arrays["loss"], meta["entrants"],
                                     points=named_points(arrays.get("points"), meta.get("point_labels")),
                                     diverged=arrays.get("diverged"),
                                     labels=Labels(x=labels[0], y=labels[1], title=meta.get("title"))), meta)
