""""""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

from .styles import (
    COLUMN_WIDTH,
    PAGE_WIDTH,
    Labels,
    add_colorbar,
    add_legend,
    font_size,
    log_axis,
    marked,
    new_figure,
    scale,
    style_rc,
)

__all__ = ["SURFACE_KINDS", "MAX_LABELLED_PATHS", "curve", "landscape_2d", "small_multiples"]

_LOSS_CMAP = "viridis"


SURFACE_KINDS = ("contour", "filled", "heatmap", "surface")


#: :func:`landscape_2d` gives each path its own colour and legend entry up to this many paths.
MAX_LABELLED_PATHS = 10


MANY_PATHS_COLOUR = "0.05"


def _split_metrics(values: dict) -> tuple[dict, dict]:
    loss = {k: v for k, v in values.items() if not k.endswith("accuracy")}
    acc = {k: v for k, v in values.items() if k.endswith("accuracy")}
    return loss, acc


def metric_label(name: str) -> str:
    return name.replace("_", " ")


def curve(
    axis: np.ndarray,
    values: dict[str, np.ndarray],
    *,
    xlabel: str = "coefficient",
    log_scale: bool = False,
    title: str | None = None,
    marks: dict[str, float] | None = None,
) -> Figure:
    """1-D slice: loss-like metrics (left panel) and accuracies (right panel, if any) against ``axis``.

    ``values[name]`` has shape ``(n,)`` (one curve) or ``(S, n)`` (one curve per seed, with
    the median in black).  ``marks`` draws labelled vertical lines (e.g. ``{"A": 0, "B": 1}``).
    Non-finite values are left out of the lines.

    Args:
      axis: ``(n,)`` the coordinate along the slice.
      values: ``{metric: (n,) or (S, n)}``.
      xlabel: the horizontal axis's label.
      log_scale: a log axis for the loss panel.
      title: the figure's title.
      marks: ``{label: coordinate}`` vertical lines.

    Returns:
      the figure.

    Examples:
      >>> fig = ls.figures.curve(np.linspace(0, 1, 5), {"loss": np.array([1.0, 1.5, 2.0, 1.5, 1.0]),
      ...                                              "accuracy": np.array([0.9, 0.7, 0.5, 0.7, 0.9])})
      >>> len(fig.axes)                                           # one panel per kind of metric
      2
    """
    import matplotlib

    loss, acc = _split_metrics(values)
    panels = [p for p in (loss, acc) if p]
    with matplotlib.rc_context(style_rc()):
        fig = new_figure(COLUMN_WIDTH * len(panels) if len(panels) > 1 else COLUMN_WIDTH, 2.4)
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        colors = {"train": "tab:blue", "test": "tab:orange"}
        for ax, group in zip(axes, panels):
            for name, v in group.items():
                v = np.asarray(v, float)
                color = colors.get(name.split("_")[0])
                if v.ndim == 2:
                    alpha = float(np.clip(5.0 / v.shape[0], 0.05, 0.6))
                    for row in v:
                        ax.plot(axis, np.where(np.isfinite(row), row, np.nan), color=color, lw=0.6, alpha=alpha)
                    ax.plot(axis, np.nanmedian(np.where(np.isfinite(v), v, np.nan), axis=0), color=color or "black",
                            lw=1.4, label=f"{metric_label(name)} (median)")
                else:
                    ax.plot(axis, np.where(np.isfinite(v), v, np.nan), color=color, lw=1.4, label=metric_label(name))
            is_acc = group is acc
            if log_scale and not is_acc:
                finite = np.concatenate([np.asarray(v, float).ravel() for v in group.values()])
                finite = finite[np.isfinite(finite)]
                if finite.size and finite.min() > 0:
                    log_axis(ax, "y", finite)
            if is_acc:
                ax.set_ylim(-0.02, 1.02)
            for label, pos in (marks or {}).items():
                ax.axvline(pos, color="0.5", lw=0.7, ls="--")
                ax.annotate(label, (pos, 1.0), xycoords=("data", "axes fraction"), ha="center", va="bottom",
                            fontsize=font_size(7), color="0.3")
            ax.set_xlabel(xlabel)
            ax.set_ylabel("accuracy" if is_acc else "loss")
            ax.legend(frameon=False, loc="best")
        if title:
            fig.suptitle(title)
    return fig


def contour_levels(z: np.ndarray, *, log: bool, clip: float | None, num: int = 30):
    finite = z[np.isfinite(z)]
    if finite.size == 0:
        return np.linspace(0, 1, num), 1.0, False
    lo = float(finite.min())
    hi = float(np.percentile(finite, 95)) if clip is None else float(clip)
    hi = max(min(hi, float(finite.max())), lo)
    if hi <= lo:
        hi = lo + max(abs(lo), 1.0) * 1e-3
    use_log = log and lo > 0
    levels = np.geomspace(lo, hi, num) if use_log else np.linspace(lo, hi, num)
    return levels, hi, use_log


def landscape_2d(
    a: np.ndarray,
    b: np.ndarray,
    z: np.ndarray,
    *,
    kind: str = "filled",
    log_levels: bool = True,
    clip: float | None = None,
    labels: Labels = Labels(),
    points=None,
    paths=None,
    ax=None,
    colorbar: bool = True,
    legend: bool = True,
) -> Figure:
    """A 2-D slice ``z[i, j]`` at ``(a[i], b[j])`` as contour lines, filled contours, heat map or 3-D surface.

    Levels are log-spaced (when the values are positive and ``log_levels``) from the minimum
    up to ``clip`` (default: the 95th percentile), so the basin's structure is visible; larger
    and non-finite values (overflowed losses) are drawn in the top colour.  ``points (m, 2)``
    are marked and labelled (e.g. solutions); ``paths`` are ``(K, 2)`` polylines (trajectories),
    one colour each, their starts circled; a cross marks the lowest grid point.  The colour
    bar states the clip value; ``legend`` explains stars, circles, crosses and paths.  On a
    figure of its own the colour bar is as tall as the axes and the legend sits under them;
    drawn into a user's ``ax`` both stay inside that axes' box.

    Args:
      a: ``(n0,)`` the first axis's coordinates.
      b: ``(n1,)`` the second's.
      z: ``(n0, n1)`` the values.
      kind: ``"contour"``, ``"filled"``, ``"heatmap"`` or ``"surface"`` (3-D).
      log_levels: log-spaced levels for positive values.
      clip: the top of the colour range (default: the 95th percentile).
      labels: the axes' labels, the colour bar's (default ``"loss"``) and the title
        (:class:`~landscape.figures.styles.Labels`).
      points: marked points (minima): ``{name: (x, y)}``, or an ``(m, 2)`` array.
      paths: ``(K, 2)`` polylines, a list or ``{name: path}``; up to :data:`MAX_LABELLED_PATHS`
        get a colour and a legend entry each, more are drawn in one colour with one entry
        (``"40 paths"``) — :func:`descent_paths` colours many paths by the minimum they reach.
      ax: draw into these axes (default: a new figure); colour bar and legend stay inside them.
      colorbar: draw the colour bar.
      legend: draw the legend under the axes.

    Returns:
      the figure.

    Examples:
      >>> a = b = np.linspace(-1, 1, 21)
      >>> z = 0.1 + a[:, None] ** 2 + 2 * b[None, :] ** 2                  # a bowl, (21, 21)
      >>> fig = ls.figures.landscape_2d(a, b, z, kind="contour", points={"minimum": (0.0, 0.0)})
      >>> "direction 1" in fig.axes[0].get_xlabel(), len(fig.axes[0].collections) > 0   # contour lines
      (True, True)
    """
    import matplotlib
    from matplotlib import colors as mcolors

    if kind not in SURFACE_KINDS:
        raise ValueError(f"kind must be one of {', '.join(SURFACE_KINDS)}, got {kind!r}")
    z = np.asarray(z, float)
    labels = labels.over(x=r"$\alpha$ (direction 1)", y=r"$\beta$ (direction 2)", z="loss")
    points, point_labels = marked(points)
    path_labels = [str(k) for k in paths] if isinstance(paths, Mapping) else None
    paths = list(paths.values()) if isinstance(paths, Mapping) else list(paths or [])
    own = ax is None or hasattr(ax.figure, "_landscape_style")  # a figure of the library's own
    levels, top, use_log = contour_levels(z, log=log_levels, clip=clip)
    zc = np.where(np.isfinite(z), np.minimum(z, top), top)  # clipped for drawing
    norm = mcolors.LogNorm(levels[0], levels[-1]) if use_log else mcolors.Normalize(levels[0], levels[-1])
    with matplotlib.rc_context(style_rc()):
        if ax is None:
            fig = new_figure(COLUMN_WIDTH, COLUMN_WIDTH * (0.95 if kind == "surface" else 0.86))
            ax = fig.add_subplot(projection="3d" if kind == "surface" else None)
        else:
            fig = ax.figure
        A, B = np.meshgrid(a, b, indexing="ij")
        cmap = matplotlib.colormaps[_LOSS_CMAP]
        if kind == "contour":
            mappable = ax.contour(A, B, zc, levels=levels, norm=norm, cmap=cmap, linewidths=0.7)
        elif kind == "filled":
            mappable = ax.contourf(A, B, zc, levels=levels, norm=norm, cmap=cmap, extend="neither")
            ax.contour(A, B, zc, levels=levels[::3], colors="white", linewidths=0.3, alpha=0.6)
        elif kind == "heatmap":
            mappable = ax.pcolormesh(A, B, zc, norm=norm, cmap=cmap, shading="nearest", rasterized=True)
        else:
            from matplotlib import cm, ticker

            zs = np.log10(zc) if use_log else zc
            ax.plot_surface(A, B, zs, facecolors=cmap(norm(zc)), linewidth=0, antialiased=False,
                            rcount=80, ccount=80, shade=False)
            mappable = cm.ScalarMappable(norm=norm, cmap=cmap)
            if use_log:  # the z axis is drawn in log10 units and labelled in loss units
                ax.zaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{10 ** v:.2g}"))
            ax.view_init(elev=35, azim=-60)
        if kind != "surface":
            if similar_ranges(a, b):
                ax.set_aspect("equal", adjustable="datalim")
            ax.set_box_aspect(1)
            from matplotlib.lines import Line2D

            handles = []
            one_each = len(paths) <= MAX_LABELLED_PATHS  # past that, colours repeat and the legend swamps the plane
            path_colours = (matplotlib.colormaps["tab10"](np.arange(len(paths)) % 10) if one_each
                            else [MANY_PATHS_COLOUR] * len(paths))
            for i, path in enumerate(paths):  # one colour per seed's path
                path = np.asarray(path)
                lab = path_labels[i] if path_labels and i < len(path_labels) else f"path {i}"
                ax.plot(path[:, 0], path[:, 1], "-", color=path_colours[i], lw=0.9 if one_each else 0.6,
                        marker="." if one_each else None, ms=2.5, path_effects=outline_effect(1.6, "white"))
                ax.plot(path[0, 0], path[0, 1], "o", mfc="white", mec=path_colours[i], ms=3.5, zorder=6)
                if one_each:
                    handles.append(Line2D([], [], color=path_colours[i], lw=0.9, marker=".", ms=2.5, label=lab))
            if paths and not one_each:
                handles.append(Line2D([], [], color=MANY_PATHS_COLOUR, lw=0.6, label=f"{len(paths)} paths"))
            if paths:
                handles.append(Line2D([], [], ls="none", marker="o", mfc="white", mec="0.3", ms=3.5,
                                      label="start of a path"))
            if points is not None:
                pts = np.asarray(points)
                ax.plot(pts[:, 0], pts[:, 1], "*", color="white", mec="black", mew=0.6, ms=9 * scale(), zorder=5)
                for i, (px, py) in enumerate(pts):
                    lab = point_labels[i] if point_labels else str(i)
                    ax.annotate(lab, (px, py), xytext=(4, 4), textcoords="offset points", fontsize=font_size(7),
                                color="white", fontweight="bold", zorder=6,
                                path_effects=outline_effect())
                handles.append(Line2D([], [], ls="none", marker="*", mfc="white", mec="black", mew=0.6, ms=8,
                                      label="trained minimum"))
            if np.isfinite(z).any():  # the lowest grid point: where the slice's own minimum lies
                i0, j0 = np.unravel_index(np.nanargmin(np.where(np.isfinite(z), z, np.nan)), z.shape)
                ax.plot(a[i0], b[j0], "+", color="white", ms=7, mew=1.4, zorder=6,
                        path_effects=outline_effect(2.2))
                handles.append(Line2D([], [], ls="none", marker="+", color="black", ms=6, mew=1.2,
                                      label=f"lowest grid point ({z[i0, j0]:.3g})"))
            if handles and legend:
                add_legend(ax, handles, own, ncol=3)
        ax.set_xlabel(labels.x)
        ax.set_ylabel(labels.y)
        if labels.title:
            ax.set_title(labels.title)
        if colorbar:
            if kind == "surface":
                cb = fig.colorbar(mappable, ax=ax, shrink=0.75, pad=0.03, aspect=25)
            else:  # exactly as tall as the axes it belongs to (own figure), or inside the user's axes' box
                cb = add_colorbar(mappable, ax, own)
            _colorbar_ticks(cb, levels, use_log)
            clipped = bool(np.any(~np.isfinite(z)) or np.any(z[np.isfinite(z)] > top))
            cb.set_label(labels.z + (" (log scale)" if use_log else "") + (f", clipped above {top:.3g}" if clipped else ""))
    return fig


def _colorbar_ticks(cb, levels: np.ndarray, use_log: bool, n: int = 5) -> None:
    """About ``n`` readable ticks (2 significant digits) between the first and last level."""
    from matplotlib import ticker

    lo, hi = float(levels[0]), float(levels[-1])
    raw = np.geomspace(lo, hi, n) if use_log else np.linspace(lo, hi, n)
    ticks = np.array([float(f"{v:.2g}") for v in raw])
    ticks = np.unique(np.clip(ticks, lo, hi))
    cb.set_ticks(ticks)
    cb.ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:.2g}"))
    cb.ax.yaxis.set_minor_locator(ticker.NullLocator())


def outline_effect(width: float = 1.5, colour: str = "black"):
    from matplotlib import patheffects

    return [patheffects.withStroke(linewidth=width, foreground=colour)]


def similar_ranges(a: np.ndarray, b: np.ndarray) -> bool:
    ra, rb = float(np.ptp(a)), float(np.ptp(b))
    return ra > 0 and rb > 0 and 0.5 <= ra / rb <= 2.0


def small_multiples(
    a: np.ndarray,
    b: np.ndarray,
    zs: np.ndarray,
    *,
    titles: list[str] | None = None,
    kind: str = "filled",
    log_levels: bool = True,
    clip: float | None = None,
    labels: Labels = Labels(),
    columns: int | None = None,
    title_size: float | None = None,
) -> Figure:
    """One small panel per seed (``zs (S, n0, n1)``) with shared colour levels and one colour bar.

    ``labels.x`` / ``labels.y`` label the bottom row and the left column; ``labels.title`` is
    shared by all panels; the colour bar states the clip value when values were clipped.

    Args:
      a: ``(n0,)`` the first axis's coordinates.
      b: ``(n1,)`` the second's.
      zs: ``(S, n0, n1)``.
      titles: one per panel.
      kind: as for :func:`landscape_2d`.
      log_levels: log-spaced levels.
      clip: the top of the shared colour range.
      labels: the axes' labels (default: none), the colour bar's (default ``"loss"``) and the
        shared title (:class:`~landscape.figures.styles.Labels`).
      columns: panels per row (default: automatic).
      title_size: the panels' title size.

    Returns:
      the figure.

    Examples:
      >>> a = b = np.linspace(-1, 1, 21)
      >>> z = 0.1 + a[:, None] ** 2 + 2 * b[None, :] ** 2                  # a bowl, (21, 21)
      >>> fig = ls.figures.small_multiples(a, b, np.stack([z, 2 * z, 3 * z]), titles=["seed 0", "seed 1", "seed 2"])
      >>> sum(ax.get_title().startswith("seed") for ax in fig.axes)   # one panel per member, one colour scale
      3
    """
    import matplotlib
    from matplotlib import colors as mcolors
    from matplotlib import ticker

    if kind not in ("contour", "filled", "heatmap"):
        raise ValueError("small multiples are drawn as contour, filled or heatmap")
    zs = np.asarray(zs, float)
    labels = labels.over(z="loss")
    xlabel, ylabel, zlabel, title = labels.x, labels.y, labels.z, labels.title
    s = zs.shape[0]
    cols = columns or int(np.ceil(np.sqrt(s)))
    rows = int(np.ceil(s / cols))
    levels, top, use_log = contour_levels(zs, log=log_levels, clip=clip)
    norm = mcolors.LogNorm(levels[0], levels[-1]) if use_log else mcolors.Normalize(levels[0], levels[-1])
    with matplotlib.rc_context(style_rc()):
        fig = new_figure(PAGE_WIDTH, PAGE_WIDTH * rows / cols * 0.95 + 0.3)
        axes = fig.subplots(rows, cols, squeeze=False, sharex=True, sharey=True)
        A, B = np.meshgrid(a, b, indexing="ij")
        mappable = None
        for i, ax in enumerate(axes.ravel()):
            if i >= s:
                ax.set_axis_off()
                continue
            zc = np.where(np.isfinite(zs[i]), np.minimum(zs[i], top), top)
            if kind == "heatmap":
                mappable = ax.pcolormesh(A, B, zc, norm=norm, cmap=_LOSS_CMAP, shading="nearest", rasterized=True)
            elif kind == "contour":
                mappable = ax.contour(A, B, zc, levels=levels, norm=norm, cmap=_LOSS_CMAP, linewidths=0.5)
            else:
                mappable = ax.contourf(A, B, zc, levels=levels, norm=norm, cmap=_LOSS_CMAP)
            ax.set_aspect("equal")
            title_size = title_size or font_size(6)
            ax.set_title(titles[i] if titles else f"seed {i}", fontsize=title_size, pad=2)
            if xlabel and i // cols == rows - 1:
                ax.set_xlabel(xlabel, fontsize=title_size)
            if ylabel and i % cols == 0:
                ax.set_ylabel(ylabel, fontsize=title_size)
            ax.tick_params(labelsize=font_size(5), length=2)
            ax.xaxis.set_major_locator(ticker.MaxNLocator(3))
            ax.yaxis.set_major_locator(ticker.MaxNLocator(3))
        cb = fig.colorbar(mappable, ax=axes, shrink=0.6, pad=0.01)
        _colorbar_ticks(cb, levels, use_log)
        clipped = bool(np.any(~np.isfinite(zs)) or np.any(zs[np.isfinite(zs)] > top))
        cb.set_label(zlabel + (" (log scale)" if use_log else "") + (f", clipped above {top:.3g}" if clipped else ""))
        if title:
            fig.suptitle(title)
    return fig
