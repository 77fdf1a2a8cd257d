""""""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

from .styles import COLUMN_WIDTH, Labels, font_size, marked, named_points, new_figure, styled, with_warnings
from .surfaces import contour_levels, outline_effect, similar_ranges

__all__ = ["basin_map", "basin_lines"]

#: Colours of the reference minima's basins, then "elsewhere" and "diverged".
BASIN_COLOURS = ("#4477AA", "#EE6677", "#228833", "#CCBB44", "#66CCEE", "#AA3377")


ELSEWHERE_COLOUR = "#DDDDDD"


DIVERGED_COLOUR = "#222222"


SHARED_COLOUR = "#999999"


@styled
def basin_map(
    a: np.ndarray,
    b: np.ndarray,
    basin: np.ndarray,
    start_loss: np.ndarray,
    points,
    fractions: np.ndarray,
    *,
    labels: Labels = Labels(),
    note: str | None = None,
) -> Figure:
    """A basin-of-attraction map: each start's label as a colour, the cost at the starts as
    contour lines (log-spaced), the minima as stars, and the share of starts per basin in the legend.

    Args:
      a: ``(G,)`` grid axis along u.
      b: ``(H,)`` grid axis along v.
      basin: ``(G, H)`` int (``i`` = minimum ``i``, −1 elsewhere, −2 diverged, −3 shared;
        :class:`landscape.minima.BasinMap`).
      start_loss: ``(G, H)`` cost at the starts.
      points: the minima, ``{name: (x, y)}`` or ``(R, 2)`` (named ``minimum i``).
      fractions: ``(R + 3,)`` share per label (minima, shared, elsewhere, diverged).
      labels: the axes' labels and the title (:class:`~landscape.figures.styles.Labels`).
      note: a line under the axes (e.g. the training).

    Returns:
      the figure.

    Examples:
      >>> a = b = np.linspace(-1, 1, 4)
      >>> basin = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [0, -3, 1, 1], [2, 2, 2, -1]])
      >>> fractions = ls.minima.label_fractions(basin, 3)
      >>> minima = {"seed 0": (-0.5, -0.5), "seed 1": (0.5, 0.5), "seed 2": (0.0, 1.0)}
      >>> fig = ls.figures.basin_map(a, b, basin, np.ones((4, 4)), minima, fractions)
      >>> fig.axes[0].get_xlabel()
      'distance along u'
    """
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.patches import Patch

    basin = np.asarray(basin)
    labels = labels.over(x="distance along u", y="distance along v")
    pts, names = marked(points)
    if not isinstance(points, Mapping):
        names = [f"minimum {i}" for i in range(len(pts))]
    r = pts.shape[0]
    colours = [SHARED_COLOUR, DIVERGED_COLOUR, ELSEWHERE_COLOUR] + [BASIN_COLOURS[i % len(BASIN_COLOURS)]
                                                                    for i in range(r)]
    cmap = ListedColormap(colours)
    norm = BoundaryNorm(np.arange(-3.5, r), cmap.N)
    fig = new_figure(COLUMN_WIDTH, COLUMN_WIDTH + 0.5)
    ax = fig.add_subplot(1, 1, 1)
    A, B = np.meshgrid(a, b, indexing="ij")
    ax.pcolormesh(A, B, basin, cmap=cmap, norm=norm, shading="nearest", rasterized=True)
    z = np.asarray(start_loss, float)
    levels, _, use_log = contour_levels(z, log=True, clip=None, num=12)
    ax.contour(A, B, np.where(np.isfinite(z), np.minimum(z, levels[-1]), levels[-1]), levels=levels,
               colors="black", linewidths=0.35, alpha=0.55)
    for i, (px, py) in enumerate(pts):
        ax.plot(px, py, "*", color="white", mec="black", mew=0.7, ms=11, zorder=5)
        ax.annotate(names[i], (px, py), xytext=(5, 4), textcoords="offset points", fontsize=font_size(7), color="white",
                    fontweight="bold", zorder=6, path_effects=outline_effect())
    if similar_ranges(a, b):
        ax.set_aspect("equal", adjustable="datalim")
    ax.set_box_aspect(1)
    handles = [Patch(facecolor=colours[i + 3], edgecolor="none", label=f"{names[i]}: {100 * fractions[i]:.0f} %")
               for i in range(r)]
    if r > 1:
        handles.append(Patch(facecolor=SHARED_COLOUR, edgecolor="none",
                             label=f"several minima: {100 * fractions[r]:.0f} %"))
    handles.append(Patch(facecolor=ELSEWHERE_COLOUR, edgecolor="none",
                         label=f"elsewhere: {100 * fractions[r + 1]:.0f} %"))
    if fractions[r + 2] > 0:
        handles.append(Patch(facecolor=DIVERGED_COLOUR, edgecolor="none",
                             label=f"diverged: {100 * fractions[r + 2]:.0f} %"))
    from matplotlib.lines import Line2D

    handles.append(Line2D([], [], color="black", lw=0.5, alpha=0.6,
                          label="cost at the start" + (" (log-spaced)" if use_log else "")))
    leg = fig.legend(handles=handles, loc="outside lower center", ncol=2, frameon=False, fontsize=font_size(6),
                     title=note, title_fontsize=font_size(5.5))
    leg.get_title().set_color("0.3")
    ax.set_xlabel(labels.x)
    ax.set_ylabel(labels.y)
    if labels.title:
        ax.set_title(labels.title)
    return fig


def basin_lines(arrays: dict, meta: dict) -> list[str]:
    """Lines for a basins result: the minima's own barriers, the tolerance, and the share of starts
    per basin (then shared, elsewhere, diverged) with their final cost.

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
      >>> b = ls.analyses.basins(run, ls.analyses.BasinsSpec(seeds="0,1,2", grid=3, steps=10))
      >>> len(ls.figures.basin_lines(b.arrays, b.meta)) > 3        # barriers, tolerance, a line per basin
      True
    """
    labels, final = np.asarray(arrays["labels"]).ravel(), np.asarray(arrays["final_loss"]).ravel()
    names = list(meta.get("point_labels") or [])
    r = np.asarray(arrays["points"]).shape[0]
    out = [f"{labels.size} starts ({np.asarray(arrays['axis_0']).size}x{np.asarray(arrays['axis_1']).size}), "
           f"{meta.get('steps')} steps each"]
    ref = np.asarray(arrays.get("reference_barriers", np.zeros((1, 1))))
    if r > 1:
        off = ref[~np.eye(r, dtype=bool)]
        out.append(f"barriers between the minima{' (aligned)' if meta.get('aligned') else ''}: "
                   f"{off.min():.4g} to {off.max():.4g}")
    out.append(f"in a basin: barrier to that minimum below {meta.get('tol'):.4g}"
               + ("" if meta.get("tol_given", True) or r == 1 else " (half the smallest barrier between the minima)")
               + (", after weight matching" if meta.get("aligned") else ""))
    rows = [(names[i] if i < len(names) else f"minimum {i}", i) for i in range(r)]
    rows += [("shared", -3), ("elsewhere", -1), ("diverged", -2)]
    for name, lab in rows:
        mask = labels == lab
        if lab in (-2, -3) and not mask.any():
            continue
        cost = f", final cost median {np.median(final[mask]):.4g}" if mask.any() and lab != -2 else ""
        out.append(f"  {name:<14} {mask.sum():>6} starts ({100 * mask.mean():5.1f} %){cost}")
    return out


def _basins_note(meta: dict) -> str:
    opt = meta.get("optimizer") or {}
    return (f"each start trained {meta.get('steps')} steps ({opt.get('name', '?')}, lr {opt.get('learning_rate', '?'):g});\n"
            f"in a basin: barrier to that minimum, and no other, < {meta.get('tol'):.3g}"
            + (" after weight matching" if meta.get("aligned") else ""))


def basin_map_of_result(arrays: dict, meta: dict) -> Figure:
    """The map of a saved basins-of-attraction result (:func:`basin_map` with its note and warnings).

    Args:
      arrays: the result's arrays.
      meta: its metadata.

    Returns:
      the figure.
    """
    axis = meta.get("axis_labels", ["u", "v"])
    return with_warnings(basin_map(arrays["axis_0"], arrays["axis_1"], arrays["labels"], arrays["start_loss"],
                                   named_points(arrays["points"], meta.get("point_labels")), arrays["fractions"],
                                   labels=Labels(x=axis[0], y=axis[1], title=meta.get("title")),
                                   note=_basins_note(meta)), meta)
