""""""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from .styles import COLUMN_WIDTH, add_colorbar, font_size, new_figure, style_rc

__all__ = ["matrix", "scatter"]


def matrix(
    mat: np.ndarray,
    *,
    groups: np.ndarray | None = None,
    names: list[str] | None = None,
    title: str | None = None,
    cbar_label: str = "barrier",
    log: bool = False,
    axis_label: str = "seed",
    ax=None,
) -> Figure:
    """A pairwise matrix ``(M, M)`` as a heat map, rows and columns ordered by ``groups``
    (the basins *of this matrix*: pass the labels computed from it) with their boundaries drawn.

    The diagonal (a member against itself) is drawn grey and left out of the colour range. A
    linear colour scale starts at 0 (or at the smallest value, when some are negative), so the
    darkest colour reads as zero, not as the smallest barrier; both axes are labelled (``axis_label``) at any
    member count, with tick labels when ``names`` are given for at most 24 members.

    Args:
      mat: ``(M, M)``.
      groups: ``(M,)`` basin labels of this matrix.
      names: ``(M,)`` member names.
      title: the axes' title.
      cbar_label: the colour bar's label.
      log: a log colour scale.
      axis_label: both axes' label.
      ax: draw into these axes (default: a new figure); the colour bar stays inside them.

    Returns:
      the figure.

    Examples:
      >>> barriers = np.array([[0.0, 0.01, 0.9], [0.01, 0.0, 0.8], [0.9, 0.8, 0.0]])
      >>> fig = ls.figures.matrix(barriers, groups=ls.minima.basins(barriers, 0.05))
      >>> fig.axes[0].images[0].get_array().shape
      (3, 3)
    """
    import matplotlib
    from matplotlib import colors as mcolors

    mat = np.asarray(mat, float)
    n = mat.shape[0]
    order = np.arange(n) if groups is None else np.lexsort((np.arange(n), np.asarray(groups)))
    m = mat[np.ix_(order, order)]
    off = ~np.eye(n, dtype=bool)
    finite = m[off & np.isfinite(m)]  # the zero diagonal does not set the colour range
    own = ax is None or hasattr(ax.figure, "_landscape_style")
    with matplotlib.rc_context(style_rc()):
        if ax is None:
            ax = new_figure(COLUMN_WIDTH, COLUMN_WIDTH * 0.86).subplots()
        fig = ax.figure
        positive = finite[finite > 0]
        norm = (mcolors.LogNorm(max(positive.min(), 1e-12), positive.max()) if log and positive.size
                else mcolors.Normalize(min(finite.min(), 0.0) if finite.size else 0.0,
                                       finite.max() if finite.size and finite.max() > 0 else 1.0))
        shown = np.where(m > 0, m, np.nan) if log else m.copy()
        shown[~off] = np.nan  # a member against itself: drawn as a neutral cell
        cmap = matplotlib.colormaps["magma"].with_extremes(bad="0.85")
        im = ax.imshow(shown, cmap=cmap, norm=norm, interpolation="nearest")
        if groups is not None:
            g = np.asarray(groups)[order]
            multi = np.bincount(g) > 1
            # boundaries around basins of several members only (singletons would grid the whole map)
            cuts = [c for c in np.flatnonzero(np.diff(g)) if multi[g[c]] or multi[g[c + 1]]]
            for cut in np.asarray(cuts) + 0.5:
                ax.axhline(cut, color="white", lw=0.8)
                ax.axvline(cut, color="white", lw=0.8)
        if names is not None and n <= 24:
            ticks = [names[i] for i in order]
            ax.set_xticks(range(n), ticks, rotation=90, fontsize=font_size(5))
            ax.set_yticks(range(n), ticks, fontsize=font_size(5))
        name = axis_label or "member"
        ax.set_xlabel(f"{name} (ordered by basin)" if groups is not None else name)
        ax.set_ylabel(f"{name} (ordered by basin)" if groups is not None else name)
        if title:
            ax.set_title(title)
        cb = add_colorbar(im, ax, own)
        cb.set_label(cbar_label + " (diagonal: grey)")
    return fig


def scatter(
    x: np.ndarray,
    y: np.ndarray,
    *,
    xlabel: str,
    ylabel: str,
    title: str | None = None,
    groups: np.ndarray | None = None,
    group_names: list[str] | None = None,
    log_x: bool = False,
    diagonal: bool = False,
    ax=None,
) -> Figure:
    """A scatter plot (e.g. sharpness vs test accuracy); ``diagonal`` draws y = x; ``log_x``: a
    logarithmic x-axis when the positive values span more than a decade.

    ``groups (N,)`` integer labels colour the points: basins by default (members alone in
    their basin share one grey entry), or, with ``group_names``, named groups (e.g. one per
    learning rate) each in its own colour.

    Args:
      x: ``(N,)``.
      y: ``(N,)``.
      xlabel: the horizontal axis's label.
      ylabel: the vertical axis's label.
      title: the axes' title.
      groups: ``(N,)`` int.
      group_names: names of the groups.
      log_x: a log x-axis where the data span a decade.
      diagonal: draw y = x.
      ax: draw into these axes (default: a new figure); the legend stays inside them.

    Returns:
      the figure.

    Examples:
      >>> fig = ls.figures.scatter(np.array([0.8, 0.9, 0.85]), np.array([0.1, 0.05, 0.08]), xlabel="before",
      ...                       ylabel="after", diagonal=True)
      >>> fig.axes[0].get_xlabel(), fig.axes[0].get_ylabel()
      ('before', 'after')
    """
    import matplotlib

    x, y = np.asarray(x, float), np.asarray(y, float)
    with matplotlib.rc_context(style_rc()):
        if ax is None:
            ax = new_figure(COLUMN_WIDTH, 2.5).subplots()
        fig = ax.figure
        if groups is None:
            ax.scatter(x, y, s=10, color="tab:blue", edgecolor="white", lw=0.3, alpha=0.7)
        elif group_names is not None:
            g = np.asarray(groups)
            cmap = matplotlib.colormaps["tab10"]
            for k, name in enumerate(group_names):
                sel = g == k
                if sel.any():
                    ax.scatter(x[sel], y[sel], s=10, color=cmap(k % 10), edgecolor="white", lw=0.3, alpha=0.7,
                               label=f"{name} ({int(sel.sum())})")
            ax.legend(frameon=False, fontsize=font_size(6), loc="best")
        else:
            g = np.asarray(groups)
            cmap = matplotlib.colormaps["tab10"]
            sizes = np.bincount(g)
            alone = sizes[g] == 1
            if alone.any():  # seeds alone in their basin: one grey entry, not one colour each
                ax.scatter(x[alone], y[alone], s=10, color="0.6", edgecolor="white", lw=0.3, alpha=0.7,
                           label=f"alone in its basin ({int(alone.sum())})")
            for i, k in enumerate(k for k in np.unique(g) if sizes[k] > 1):
                sel = g == k
                ax.scatter(x[sel], y[sel], s=10, color=cmap(i % 10), edgecolor="white", lw=0.3, alpha=0.7,
                           label=f"basin {k} ({int(sel.sum())})" if i < 8 else None)
            ax.legend(frameon=False, fontsize=font_size(6), loc="best")
        if diagonal:  # across the whole axes, whatever the data's range
            both = np.concatenate([x[np.isfinite(x)], y[np.isfinite(y)]])
            if both.size:
                lo, hi = both.min(), both.max()
                pad = 0.05 * (hi - lo or 1.0)
                ax.set_xlim(lo - pad, hi + pad)
                ax.set_ylim(lo - pad, hi + pad)
                ax.set_aspect("equal", adjustable="box")
                ax.axline((lo, lo), slope=1, color="0.5", lw=0.7, ls="--", label="y = x", zorder=0)
        fin = x[np.isfinite(x)]
        if log_x and fin.size and np.all(fin > 0) and fin.max() / fin.min() > 10:  # a decade at least:
            ax.set_xscale("log")  # a narrower range on a log axis gets only crowded minor-tick labels
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if title:
            ax.set_title(title)
    return fig
