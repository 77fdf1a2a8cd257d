"""Figures from saved results: matplotlib only, no JAX, never any recomputation.

Every function takes plain numpy arrays and metadata and returns a
:class:`matplotlib.figure.Figure` built without pyplot (so no global figure state and no
display is needed); :func:`save_figure` writes it atomically as PNG, PDF or SVG, and
:func:`save_animation` an animation as MP4 or GIF.
"""

from __future__ import annotations

import contextlib as _contextlib
import contextvars as _contextvars
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

__all__ = [
    "style",
    "using",
    "scale",
    "STYLES",
    "save_figure",
    "save_animation",
    "FIGURE_FORMATS",
    "training_curves",
    "final_cost_histogram",
    "curve",
    "landscape_2d",
    "MAX_LABELLED_PATHS",
    "small_multiples",
    "from_result",
    "SURFACE_KINDS",
    "matrix",
    "scatter",
    "spectral_density",
    "minibatch_spread",
    "curvature_map",
    "sweep",
    "descent_animation",
    "basin_map",
    "race_figure",
    "race_animation",
    "descent_paths",
    "paths_by_basin",
]

#: Single-column figure width in inches (most journals: 3.25–3.5 in).
COLUMN_WIDTH = 3.4
#: Two-column (full page) width in inches.
PAGE_WIDTH = 7.0

_RC = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "savefig.dpi": 200,
    "savefig.bbox": "tight",
    "figure.constrained_layout.use": True,
    # fonts a journal accepts: TrueType (Type 42) in PDF and PostScript, never Type 3 (IEEE and
    # ACM reject Type 3); SVG text kept as text, editable in Inkscape or Illustrator
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "svg.fonttype": "none",
}

#: The figure styles: ``paper`` (a 3.4-inch journal column, 7-8 pt type) and ``slides`` (a
#: 16:9 frame, about twice as large, with type that reads from the back of a lecture hall:
#: 15-19 pt, thicker lines).  ``scale`` multiplies every figure size; ``aspect`` is the least
#: width / height (a slide figure is widened to 16:9, its panels keep their shape).
STYLES = {
    "paper": {"scale": 1.0, "aspect": 0.0, "rc": _RC},
    "slides": {"scale": 1.9, "aspect": 16 / 9, "rc": {
        **_RC,
        "font.size": 17, "axes.titlesize": 18, "axes.labelsize": 17, "xtick.labelsize": 15, "ytick.labelsize": 15,
        "legend.fontsize": 14, "legend.title_fontsize": 14, "figure.titlesize": 19,
        "lines.linewidth": 2.2, "lines.markersize": 9, "axes.linewidth": 1.3,
        "xtick.major.width": 1.2, "ytick.major.width": 1.2, "xtick.major.size": 6, "ytick.major.size": 6,
        "savefig.dpi": 150,
        "savefig.bbox": None,  # keep the 16:9 frame (constrained layout already fits the content)
    }},
}

_STYLE = _contextvars.ContextVar("landscape_figure_style", default="paper")


@_contextlib.contextmanager
def using(name: str):
    """Draw the figures made inside the ``with`` block in style ``name`` (``paper`` or ``slides``).

    The choice is scoped like :func:`matplotlib.rc_context` (a context variable, restored on
    exit); figures keep the style they were made with when saved later.

    Args:
      name: ``"paper"`` or ``"slides"`` (:data:`STYLES`).

    Raises:
      ConfigError: an unknown style.

    Examples:
      >>> with ls.plot.using("slides"):
      ...     big = ls.plot.scale()
      >>> big > 1.5, ls.plot.scale()                              # back to the paper style outside the block
      (True, 1.0)
    """
    from .errors import ConfigError

    if name not in STYLES:
        raise ConfigError(f"unknown figure style {name!r}; choose {', '.join(STYLES)}")
    token = _STYLE.set(name)
    try:
        yield
    finally:
        _STYLE.reset(token)


def _styled(fn):
    """Draw the figure function ``fn`` under the current style's rc settings (axes, ticks and
    labels take their sizes when they are created)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import matplotlib

        with matplotlib.rc_context(_rc()):
            return fn(*args, **kwargs)

    return wrapper


def _fs(points: float) -> float:
    """A font size written for the paper style (8 pt body), in the current style."""
    return points * float(_rc()["font.size"]) / 8.0


def scale() -> float:
    """How much the current style (:func:`using`) enlarges every figure (``paper``: 1).

    Examples:
      >>> ls.plot.scale()
      1.0
    """
    return float(STYLES[_STYLE.get()]["scale"])


def _rc() -> dict:
    return STYLES[_STYLE.get()]["rc"]


def style() -> dict:
    """The rc settings figures are drawn with in the current style (:func:`using`; ``paper`` by
    default: small, readable at column width, TrueType fonts in PDF, editable SVG text).

    Examples:
      >>> ls.plot.style()["pdf.fonttype"]                      # TrueType in PDFs (journals reject Type 3)
      42
    """
    return dict(_rc())


FIGURE_FORMATS = ("png", "pdf", "svg")


def save_figure(fig: Figure, path) -> Path:
    """Write ``fig`` to ``path`` atomically (:mod:`landscape.files`); the format comes from the
    suffix (``.png``, ``.pdf``, ``.svg``).  Returns the path.

    Args:
      fig: the figure.
      path: the file (``.png``, ``.pdf``, ``.svg``); its directory is created.

    Returns:
      the path.

    Raises:
      ConfigError: another suffix.
      StorageError: the directory cannot be written.

    Examples:
      >>> import tempfile, os
      >>> fig = ls.plot.curve(np.linspace(0, 1, 5), {"loss": np.array([1.0, 1.5, 2.0, 1.5, 1.0])})
      >>> path = ls.plot.save_figure(fig, os.path.join(tempfile.mkdtemp(), "figures", "line.pdf"))
      >>> path.suffix, path.stat().st_size > 1000
      ('.pdf', True)
    """
    import io as _io

    import matplotlib

    from . import files
    from .errors import ConfigError

    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in FIGURE_FORMATS:
        raise ConfigError(f"figure format must be one of {', '.join(FIGURE_FORMATS)}, got {path.suffix!r}")
    buf = _io.BytesIO()
    with matplotlib.rc_context(STYLES[getattr(fig, "_landscape_style", _STYLE.get())]["rc"]):
        fig.savefig(buf, format=fmt)
    with files.storage_errors(path.parent, "create"):
        path.parent.mkdir(parents=True, exist_ok=True)
    files.atomic_write_bytes(path, buf.getvalue())
    return path


def save_animation(anim, path, *, fps: int = 12, dpi: int = 110) -> Path:
    """Write a matplotlib animation atomically: MP4 through ffmpeg when ``path`` ends in
    ``.mp4`` and ffmpeg is installed, otherwise a GIF through Pillow (``.mp4`` then becomes
    ``.gif``); ``dpi`` sets the resolution (pixels = figure inches × dpi).  Returns the path written.

    Args:
      anim: a ``matplotlib.animation.Animation``.
      path: ``.gif`` or ``.mp4``.
      fps: frames per second.
      dpi: dots per inch.

    Returns:
      the path written.

    Examples:
      >>> a = b = np.linspace(-1, 1, 21)
      >>> z = 0.1 + a[:, None] ** 2 + 2 * b[None, :] ** 2                  # a bowl, (21, 21)
      >>> import tempfile, os
      >>> paths = np.stack([np.linspace([0.9, 0.9], [0.0, 0.0], 6)])      # one start, 6 frames
      >>> anim = ls.plot.descent_animation(a, b, z, paths)
      >>> ls.plot.save_animation(anim, os.path.join(tempfile.mkdtemp(), "descent.gif")).suffix
      '.gif'
    """
    import tempfile

    import matplotlib
    from matplotlib import animation

    from . import files
    from .errors import ConfigError

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".mp4", ".gif"):
        raise ConfigError(f"animation format must be .mp4 or .gif, got {path.suffix!r}")
    if suffix == ".mp4" and not animation.writers.is_available("ffmpeg"):
        path, suffix = path.with_suffix(".gif"), ".gif"
    writer = animation.FFMpegWriter(fps=fps) if suffix == ".mp4" else animation.PillowWriter(fps=fps)
    with files.storage_errors(path.parent, "create"):
        path.parent.mkdir(parents=True, exist_ok=True)
    # the writers choose the format from the file name: render into a private directory, then
    # copy the bytes into place atomically
    with tempfile.TemporaryDirectory(prefix="landscape-animation-") as staging:
        tmp = Path(staging) / f"animation{suffix}"
        with matplotlib.rc_context({**style(), "savefig.bbox": None}):
            anim.save(tmp, writer=writer, dpi=dpi)
        files.atomic_write_bytes(path, tmp.read_bytes())
    return path


def _log_axis(ax, axis: str, values) -> None:
    """A log scale on ``axis`` (``"x"`` or ``"y"``) with labelled ticks even when the positive
    ``values`` span less than a decade (where matplotlib's log locator labels no tick at all)."""
    from matplotlib import ticker

    v = np.asarray(values, float).ravel()
    v = v[np.isfinite(v) & (v > 0)]
    getattr(ax, f"set_{axis}scale")("log")
    if v.size and v.max() / v.min() < 10:
        a = getattr(ax, f"{axis}axis")
        a.set_major_locator(ticker.MaxNLocator(nbins=4))
        a.set_major_formatter(ticker.FuncFormatter(lambda t, _: f"{t:.3g}"))
        a.set_minor_locator(ticker.NullLocator())


def _figure(width: float, height: float) -> Figure:
    """A new figure of the current style: ``width`` × ``height`` inches at the paper style,
    scaled by the style's ``scale`` and widened to its ``aspect``; it remembers its style for
    :func:`save_figure`."""
    import matplotlib

    st = STYLES[_STYLE.get()]
    w, h = width * st["scale"], height * st["scale"]
    with matplotlib.rc_context(_rc()):
        fig = Figure(figsize=(max(w, h * st["aspect"]), h), layout="constrained")
    fig._landscape_style = _STYLE.get()
    return fig


def training_curves(
    step: np.ndarray,
    train_loss: np.ndarray,
    test_accuracy: np.ndarray | None = None,
    *,
    diverged: np.ndarray | None = None,
    not_learned: np.ndarray | None = None,
    learning_rates: np.ndarray | None = None,
    loss_name: str = "loss",
    log_scale: bool = True,
    title: str | None = None,
) -> Figure:
    """Training cost of every member against step (one thin line each) and its median.

    ``step (T,)``, ``train_loss (M, T)``, optional ``test_accuracy (M, T)`` in a second panel;
    diverged members (``(M,)`` bool) are drawn in red, members that did not learn
    (``not_learned (M,)``) dashed in orange; both are left out of the medians.  With
    ``learning_rates (M,)`` holding several rates, each rate has its colour and its own median
    (rates are never pooled).

    Args:
      step: ``(T,)`` logged steps.
      train_loss: ``(M, T)``.
      test_accuracy: ``(M, T)`` or ``None`` (no second panel).
      diverged: ``(M,)`` bool.
      not_learned: ``(M,)`` bool.
      learning_rates: ``(M,)``.
      loss_name: what the cost is called.
      log_scale: a log cost axis.
      title: the figure's title.

    Returns:
      the figure.

    Examples:
      >>> step = np.arange(0, 101, 10)
      >>> loss = np.exp(-step / 30.0)[None, :] * np.array([[1.0], [1.5], [2.0]])   # 3 members
      >>> fig = ls.plot.training_curves(step, loss, 1 - loss / 3)
      >>> len(fig.axes)                                           # cost and test accuracy
      2
    """
    import matplotlib

    train_loss = np.asarray(train_loss, float)
    m = train_loss.shape[0]
    bad = np.zeros(m, bool) if diverged is None else np.asarray(diverged, bool)
    stalled = np.zeros(m, bool) if not_learned is None else np.asarray(not_learned, bool) & ~bad
    lrs = np.full(m, np.nan) if learning_rates is None else np.asarray(learning_rates, float)
    rates = np.unique(lrs[np.isfinite(lrs)])
    groups = [(f"lr {r:g}", np.isclose(lrs, r)) for r in rates] if rates.size > 1 else [("", np.ones(m, bool))]
    panels = 2 if test_accuracy is not None else 1
    # one colour per learning rate, never red (diverged members are drawn in red)
    palette = ["tab:blue", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:gray"]
    with matplotlib.rc_context(_rc()):
        fig = _figure(COLUMN_WIDTH * panels if panels == 2 else COLUMN_WIDTH, 2.5)
        axes = fig.subplots(1, panels, squeeze=False)[0]
        alpha = float(np.clip(6.0 / max(m, 1), 0.05, 0.6))
        series = [(axes[0], train_loss, "tab:blue")]
        if test_accuracy is not None:
            series.append((axes[1], np.asarray(test_accuracy, float), "tab:green"))
        for p, (ax, values, base) in enumerate(series):
            for g, (name, sel) in enumerate(groups):
                color = base if len(groups) == 1 else palette[g % len(palette)]
                for i in np.flatnonzero(sel):  # a member that did not learn: its rate's colour, dashed
                    ax.plot(step, values[i], color="tab:red" if bad[i] else color, ls="--" if stalled[i] else "-",
                            lw=0.6, alpha=max(alpha, 0.4) if stalled[i] else alpha)
                good = sel & ~bad & ~stalled
                label = (f"median, {name}" if name else "median") if p == 0 else None
                if good.any():
                    ax.plot(step, np.median(values[good], axis=0), color="black" if len(groups) == 1 else color,
                            lw=1.2, label=label)
                elif p == 0 and name:  # the rate still gets its legend entry
                    ax.plot([], [], color=color, ls="--", lw=1.2, label=f"{name}: none learned")
            ax.set_xlabel("step")
        if stalled.any():
            axes[0].plot([], [], color="0.4", ls="--", lw=0.8, label="did not learn")
        ax = axes[0]
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper right", frameon=False)
        if log_scale and np.all(train_loss[np.isfinite(train_loss)] > 0):
            _log_axis(ax, "y", train_loss)
        ax.set_ylabel(f"train {loss_name}")
        notes = [f"{int(bad.sum())} diverged" if bad.any() else "", f"{int(stalled.sum())} did not learn"
                 if stalled.any() else ""]
        notes = ", ".join(n for n in notes if n)
        ax.set_title(title or f"{m} random starts" + (f" ({notes})" if notes else ""))
        if test_accuracy is not None:
            axes[1].set_ylabel("test accuracy")
            axes[1].set_ylim(0, 1)
    return fig


def final_cost_histogram(
    final_loss: np.ndarray, *, diverged: np.ndarray | None = None, loss_name: str = "loss", bins: int = 30,
    strip_below: int = 25,
) -> Figure:
    """The final training cost over members, diverged ones excluded: fewer than ``strip_below``
    values as a strip plot (every member one dot: no bins to hide 8 values in); more as a
    histogram (log-spaced bins over a decade or more) with a rug of the individual values.

    Args:
      final_loss: ``(M,)``.
      diverged: ``(M,)`` bool.
      loss_name: what the cost is called.
      bins: histogram bins.
      strip_below: below this many values, a strip plot.

    Returns:
      the figure.

    Examples:
      >>> fig = ls.plot.final_cost_histogram(np.random.default_rng(0).lognormal(-4, 0.2, 64))
      >>> fig.axes[0].get_xlabel()
      'final train loss'
    """
    import matplotlib

    v = np.asarray(final_loss, float)
    bad = np.zeros(v.shape, bool) if diverged is None else np.asarray(diverged, bool)
    ok = v[~bad & np.isfinite(v)]
    wide = bool(ok.size and np.all(ok > 0) and ok.max() / ok.min() > 10)
    with matplotlib.rc_context(_rc()):
        fig = _figure(COLUMN_WIDTH, 2.3 if ok.size >= strip_below else 1.5)
        ax = fig.subplots()
        if ok.size < strip_below:
            jitter = np.random.default_rng(0).uniform(-0.25, 0.25, ok.size)  # fixed: the same figure every time
            ax.scatter(ok, jitter, s=16, color="tab:blue", edgecolor="white", lw=0.4, alpha=0.8, zorder=3)
            if ok.size:
                ax.axvline(np.median(ok), color="black", lw=0.8, ls="--", label=f"median {np.median(ok):.3g}")
                ax.legend(frameon=False, loc="upper right")
            ax.set_ylim(-0.6, 0.6)
            ax.set_yticks([])
            ax.spines["left"].set_visible(False)
        else:
            edges = np.geomspace(ok.min(), ok.max(), bins + 1) if wide else bins
            ax.hist(ok, bins=edges, color="tab:blue", edgecolor="white", lw=0.4)
            ax.plot(ok, np.zeros_like(ok), "|", color="0.25", ms=6, mew=0.5, alpha=0.6,
                    transform=ax.get_xaxis_transform(), clip_on=False)
            ax.set_ylabel("number of seeds")
        if wide:
            ax.set_xscale("log")
        ax.set_xlabel(f"final train {loss_name}")
        note = f" ({bad.sum()} diverged, excluded)" if bad.any() else ""
        ax.set_title(f"{ok.size} seeds{note}")
    return fig


# ---------------------------------------------------------------------- landscapes

_LOSS_CMAP = "viridis"
SURFACE_KINDS = ("contour", "filled", "heatmap", "surface")
#: :func:`landscape_2d` gives each path its own colour and legend entry up to this many paths.
MAX_LABELLED_PATHS = 10
MANY_PATHS_COLOUR = "0.05"


def _split_metrics(values: dict) -> tuple[dict, dict]:
    loss = {k: v for k, v in values.items() if not k.endswith("accuracy")}
    acc = {k: v for k, v in values.items() if k.endswith("accuracy")}
    return loss, acc


def _label(name: str) -> str:
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
      >>> fig = ls.plot.curve(np.linspace(0, 1, 5), {"loss": np.array([1.0, 1.5, 2.0, 1.5, 1.0]),
      ...                                              "accuracy": np.array([0.9, 0.7, 0.5, 0.7, 0.9])})
      >>> len(fig.axes)                                           # one panel per kind of metric
      2
    """
    import matplotlib

    loss, acc = _split_metrics(values)
    panels = [p for p in (loss, acc) if p]
    with matplotlib.rc_context(_rc()):
        fig = _figure(COLUMN_WIDTH * len(panels) if len(panels) > 1 else COLUMN_WIDTH, 2.4)
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
                            lw=1.4, label=f"{_label(name)} (median)")
                else:
                    ax.plot(axis, np.where(np.isfinite(v), v, np.nan), color=color, lw=1.4, label=_label(name))
            is_acc = group is acc
            if log_scale and not is_acc:
                finite = np.concatenate([np.asarray(v, float).ravel() for v in group.values()])
                finite = finite[np.isfinite(finite)]
                if finite.size and finite.min() > 0:
                    _log_axis(ax, "y", finite)
            if is_acc:
                ax.set_ylim(-0.02, 1.02)
            for label, pos in (marks or {}).items():
                ax.axvline(pos, color="0.5", lw=0.7, ls="--")
                ax.annotate(label, (pos, 1.0), xycoords=("data", "axes fraction"), ha="center", va="bottom",
                            fontsize=_fs(7), color="0.3")
            ax.set_xlabel(xlabel)
            ax.set_ylabel("accuracy" if is_acc else "loss")
            ax.legend(frameon=False, loc="best")
        if title:
            fig.suptitle(title)
    return fig


def _levels(z: np.ndarray, *, log: bool, clip: float | None, num: int = 30):
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
    xlabel: str = r"$\alpha$ (direction 1)",
    ylabel: str = r"$\beta$ (direction 2)",
    zlabel: str = "loss",
    title: str | None = None,
    points: np.ndarray | None = None,
    point_labels: list[str] | None = None,
    paths: list[np.ndarray] | None = None,
    path_labels: list[str] | None = None,
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
    bar is as tall as the axes and states the clip value; ``legend`` explains stars, circles,
    crosses and paths under the axes.

    Args:
      a: ``(n0,)`` the first axis's coordinates.
      b: ``(n1,)`` the second's.
      z: ``(n0, n1)`` the values.
      kind: ``"contour"``, ``"filled"``, ``"heatmap"`` or ``"surface"`` (3-D).
      log_levels: log-spaced levels for positive values.
      clip: the top of the colour range (default: the 95th percentile).
      xlabel: the horizontal axis's label.
      ylabel: the vertical axis's label.
      zlabel: the colour bar's label.
      title: the axes' title.
      points: ``(m, 2)`` marked points (minima).
      point_labels: their names.
      paths: ``(K, 2)`` polylines; up to :data:`MAX_LABELLED_PATHS` get a colour and a legend
        entry each, more are drawn in one colour with one entry (``"40 paths"``) —
        :func:`descent_paths` colours many paths by the minimum they reach.
      path_labels: their names (used while each path has its own entry).
      ax: draw into these axes (default: a new figure).
      colorbar: draw the colour bar.
      legend: draw the legend under the axes.

    Returns:
      the figure.

    Examples:
      >>> a = b = np.linspace(-1, 1, 21)
      >>> z = 0.1 + a[:, None] ** 2 + 2 * b[None, :] ** 2                  # a bowl, (21, 21)
      >>> fig = ls.plot.landscape_2d(a, b, z, kind="contour", points=np.array([[0.0, 0.0]]), point_labels=["minimum"])
      >>> "direction 1" in fig.axes[0].get_xlabel(), len(fig.axes[0].collections) > 0   # contour lines
      (True, True)
    """
    import matplotlib
    from matplotlib import colors as mcolors

    if kind not in SURFACE_KINDS:
        raise ValueError(f"kind must be one of {', '.join(SURFACE_KINDS)}, got {kind!r}")
    z = np.asarray(z, float)
    levels, top, use_log = _levels(z, log=log_levels, clip=clip)
    zc = np.where(np.isfinite(z), np.minimum(z, top), top)  # clipped for drawing
    norm = mcolors.LogNorm(levels[0], levels[-1]) if use_log else mcolors.Normalize(levels[0], levels[-1])
    with matplotlib.rc_context(_rc()):
        if ax is None:
            fig = _figure(COLUMN_WIDTH, COLUMN_WIDTH * (0.95 if kind == "surface" else 0.86))
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
            if _similar_ranges(a, b):
                ax.set_aspect("equal", adjustable="datalim")
            ax.set_box_aspect(1)
            from matplotlib.lines import Line2D

            handles = []
            paths = list(paths or [])
            one_each = len(paths) <= MAX_LABELLED_PATHS  # past that, colours repeat and the legend swamps the plane
            path_colours = (matplotlib.colormaps["tab10"](np.arange(len(paths)) % 10) if one_each
                            else [MANY_PATHS_COLOUR] * len(paths))
            for i, path in enumerate(paths):  # one colour per seed's path
                path = np.asarray(path)
                lab = path_labels[i] if path_labels and i < len(path_labels) else f"path {i}"
                ax.plot(path[:, 0], path[:, 1], "-", color=path_colours[i], lw=0.9 if one_each else 0.6,
                        marker="." if one_each else None, ms=2.5, path_effects=_outline(1.6, "white"))
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
                    ax.annotate(lab, (px, py), xytext=(4, 4), textcoords="offset points", fontsize=_fs(7),
                                color="white", fontweight="bold", zorder=6,
                                path_effects=_outline())
                handles.append(Line2D([], [], ls="none", marker="*", mfc="white", mec="black", mew=0.6, ms=8,
                                      label="trained minimum"))
            if np.isfinite(z).any():  # the lowest grid point: where the slice's own minimum lies
                i0, j0 = np.unravel_index(np.nanargmin(np.where(np.isfinite(z), z, np.nan)), z.shape)
                ax.plot(a[i0], b[j0], "+", color="white", ms=7, mew=1.4, zorder=6,
                        path_effects=_outline(2.2))
                handles.append(Line2D([], [], ls="none", marker="+", color="black", ms=6, mew=1.2,
                                      label=f"lowest grid point ({z[i0, j0]:.3g})"))
            if handles and legend:
                fig.legend(handles=handles, loc="outside lower center", ncol=min(3, len(handles)), frameon=False,
                           fontsize=_fs(6))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if title:
            ax.set_title(title)
        if colorbar:
            if kind == "surface":
                cb = fig.colorbar(mappable, ax=ax, shrink=0.75, pad=0.03, aspect=25)
            else:  # exactly as tall as the axes it belongs to
                cb = fig.colorbar(mappable, cax=ax.inset_axes([1.04, 0.0, 0.045, 1.0]))
            _colorbar_ticks(cb, levels, use_log)
            clipped = bool(np.any(~np.isfinite(z)) or np.any(z[np.isfinite(z)] > top))
            cb.set_label(zlabel + (" (log scale)" if use_log else "") + (f", clipped above {top:.3g}" if clipped else ""))
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


def _outline(width: float = 1.5, colour: str = "black"):
    from matplotlib import patheffects

    return [patheffects.withStroke(linewidth=width, foreground=colour)]


def _similar_ranges(a: np.ndarray, b: np.ndarray) -> bool:
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
    zlabel: str = "loss",
    columns: int | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
    title_size: float | None = None,
    title: str | None = None,
) -> Figure:
    """One small panel per seed (``zs (S, n0, n1)``) with shared colour levels and one colour bar.

    ``xlabel`` / ``ylabel`` label the bottom row and the left column; ``title`` is shared by
    all panels; the colour bar states the clip value when values were clipped.

    Args:
      a: ``(n0,)`` the first axis's coordinates.
      b: ``(n1,)`` the second's.
      zs: ``(S, n0, n1)``.
      titles: one per panel.
      kind: as for :func:`landscape_2d`.
      log_levels: log-spaced levels.
      clip: the top of the shared colour range.
      zlabel: the colour bar's label.
      columns: panels per row (default: automatic).
      xlabel: the horizontal axis's label.
      ylabel: the vertical axis's label.
      title_size: the panels' title size.
      title: the shared title.

    Returns:
      the figure.

    Examples:
      >>> a = b = np.linspace(-1, 1, 21)
      >>> z = 0.1 + a[:, None] ** 2 + 2 * b[None, :] ** 2                  # a bowl, (21, 21)
      >>> fig = ls.plot.small_multiples(a, b, np.stack([z, 2 * z, 3 * z]), titles=["seed 0", "seed 1", "seed 2"])
      >>> sum(ax.get_title().startswith("seed") for ax in fig.axes)   # one panel per member, one colour scale
      3
    """
    import matplotlib
    from matplotlib import colors as mcolors
    from matplotlib import ticker

    if kind not in ("contour", "filled", "heatmap"):
        raise ValueError("small multiples are drawn as contour, filled or heatmap")
    zs = np.asarray(zs, float)
    s = zs.shape[0]
    cols = columns or int(np.ceil(np.sqrt(s)))
    rows = int(np.ceil(s / cols))
    levels, top, use_log = _levels(zs, log=log_levels, clip=clip)
    norm = mcolors.LogNorm(levels[0], levels[-1]) if use_log else mcolors.Normalize(levels[0], levels[-1])
    with matplotlib.rc_context(_rc()):
        fig = _figure(PAGE_WIDTH, PAGE_WIDTH * rows / cols * 0.95 + 0.3)
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
            title_size = title_size or _fs(6)
            ax.set_title(titles[i] if titles else f"seed {i}", fontsize=title_size, pad=2)
            if xlabel and i // cols == rows - 1:
                ax.set_xlabel(xlabel, fontsize=title_size)
            if ylabel and i % cols == 0:
                ax.set_ylabel(ylabel, fontsize=title_size)
            ax.tick_params(labelsize=_fs(5), length=2)
            ax.xaxis.set_major_locator(ticker.MaxNLocator(3))
            ax.yaxis.set_major_locator(ticker.MaxNLocator(3))
        cb = fig.colorbar(mappable, ax=axes, shrink=0.6, pad=0.01)
        _colorbar_ticks(cb, levels, use_log)
        clipped = bool(np.any(~np.isfinite(zs)) or np.any(zs[np.isfinite(zs)] > top))
        cb.set_label(zlabel + (" (log scale)" if use_log else "") + (f", clipped above {top:.3g}" if clipped else ""))
        if title:
            fig.suptitle(title)
    return fig


def from_result(arrays: dict[str, np.ndarray], meta: dict, *, kind: str | None = None,
                metric: str | None = None, log: bool | None = None, clip: float | None = None) -> Figure:
    """The figure of a saved surface result (``landscape.io.load_result`` output).

    ``kind``: ``line`` for 1-D results; ``contour`` / ``filled`` / ``heatmap`` / ``surface``
    for 2-D ones (default ``filled``; several seeds become small multiples).  ``metric``
    defaults to the training loss.

    Args:
      arrays: the result's arrays.
      meta: its metadata.
      kind: the figure kind (see above).
      metric: which metric.
      log: log levels / axis (default: the command's choice).
      clip: the top of the colour range.

    Returns:
      the figure.

    Raises:
      ValueError: an unknown metric or kind, or a result it does not draw.

    Examples:
      >>> s = ls.surface.plane(lambda p: jnp.sum(p["w"] ** 2), {"w": jnp.ones(2)},
      ...                      [{"w": jnp.array([1.0, 0.0])}, {"w": jnp.array([0.0, 1.0])}], num=9)
      >>> fig = ls.plot.from_result(s.to_arrays(), {**s.meta, "kind": s.kind}, kind="heatmap")
      >>> fig.axes[0].collections[0].get_array().shape            # the 9 x 9 grid, one cell per point
      (9, 9)
    """
    if meta.get("kind") == "race":
        if kind is not None or metric is not None or clip is not None or log is not None:
            raise ValueError("a race result is drawn as its paths and costs only (no --kind, --metric, --clip or --log)")
        labels = meta.get("axis_labels", ["u", "v"])
        return _warn(race_figure(arrays["axis_0"], arrays["axis_1"], arrays["cost"], arrays["paths"], arrays["steps"],
                                 arrays["loss"], meta["entrants"], points=arrays.get("points"),
                                 point_labels=meta.get("point_labels"), diverged=arrays.get("diverged"),
                                 xlabel=labels[0], ylabel=labels[1], title=meta.get("title")), meta)
    if meta.get("kind") == "descent":
        if kind is not None or metric is not None or clip is not None or log is not None:
            raise ValueError("an in-plane descent is drawn as its paths only (no --kind, --metric, --clip or --log)")
        labels = meta.get("axis_labels", ["u", "v"])
        return _warn(descent_paths(arrays["axis_0"], arrays["axis_1"], arrays["cost"], arrays["paths"],
                                   arrays["basin"], points=arrays.get("points"), point_labels=meta.get("point_labels"),
                                   xlabel=labels[0], ylabel=labels[1], title=meta.get("title")), meta)
    if meta.get("kind") == "basins":
        if kind is not None or metric is not None or clip is not None or log is not None:
            raise ValueError("a basins result is drawn as its map only (no --kind, --metric, --clip or --log)")
        return _warn(basin_map(arrays["axis_0"], arrays["axis_1"], arrays["labels"], arrays["start_loss"],
                               arrays["points"], arrays["fractions"], point_labels=meta.get("point_labels"),
                               xlabel=meta.get("axis_labels", ["u", "v"])[0],
                               ylabel=meta.get("axis_labels", ["u", "v"])[1], title=meta.get("title"),
                               note=_basins_note(meta)), meta)
    values = {k[6:]: v for k, v in arrays.items() if k.startswith("value/")}
    if not values:
        if not meta.get("kind") or meta.get("kind") in ("plane", "line", "interpolation", "three_point", "trajectory"):
            raise ValueError("the result holds no values")
        raise ValueError(f"`plot` draws surfaces, lines, interpolations, planes, trajectories, basin maps, races and "
                         f"in-plane descents; a {meta['kind']} result has its own figures (written by its command: "
                         "rerun it without --no-plot)")
    axes = [arrays[f"axis_{i}"] for i in range(sum(1 for k in arrays if k.startswith("axis_")))]
    rkind = meta.get("kind", "plane")
    title = meta.get("title")
    if len(axes) == 1:
        if kind not in (None, "line"):
            raise ValueError(f"a 1-D result is drawn as a line, not {kind!r}")
        if metric is not None:
            if metric not in values:
                raise ValueError(f"unknown metric {metric!r}; the result has {', '.join(values)}")
            values = {metric: values[metric]}
        marks = {"A": 0.0, "B": 1.0} if rkind == "interpolation" else None
        xlabel = "t  (θ = (1−t)·θ_A + t·θ_B)" if rkind == "interpolation" else meta.get("xlabel", "α")
        return _warn(curve(axes[0], values, xlabel=xlabel, log_scale=bool(log), title=title, marks=marks), meta)
    if kind == "line":
        raise ValueError("a 2-D result is drawn as contour, filled, heatmap or surface")
    kind = kind or "filled"
    if metric is None:
        metric = "train_loss" if "train_loss" in values else next(
            (k for k in sorted(values) if k.endswith("loss")), next(iter(values)))
    if metric not in values:
        raise ValueError(f"unknown metric {metric!r}; the result has {', '.join(values)}")
    z = values[metric]
    log_levels = (not metric.endswith("accuracy")) if log is None else log
    if clip is None and metric.endswith("accuracy"):
        clip = np.inf  # higher is better: show the whole range
    xlabel, ylabel = meta.get("axis_labels", [r"$\alpha$", r"$\beta$"])
    if z.ndim == 3:
        if kind == "surface":
            raise ValueError(f"a result of {z.shape[0]} members is drawn as small multiples (filled, contour or "
                             "heatmap); for a rotatable 3-D view of one member use `landscape export RESULT "
                             "--format html --member I`")
        titles = meta.get("labels") or [f"member {i}" for i in range(z.shape[0])]
        return _warn(small_multiples(axes[0], axes[1], z, titles=titles, kind=kind, log_levels=log_levels, clip=clip,
                                     zlabel=_label(metric), xlabel=xlabel, ylabel=ylabel, title=title), meta)
    points = arrays.get("extra/points")
    paths = [arrays[k] for k in sorted(arrays) if k.startswith("extra/path")]
    return _warn(landscape_2d(axes[0], axes[1], z, kind=kind, log_levels=log_levels, clip=clip, xlabel=xlabel,
                              ylabel=ylabel, zlabel=_label(metric), title=title, points=points,
                              point_labels=meta.get("point_labels"), paths=paths or None,
                              path_labels=meta.get("path_labels")), meta)


def _basins_note(meta: dict) -> str:
    opt = meta.get("optimizer") or {}
    return (f"each start trained {meta.get('steps')} steps ({opt.get('name', '?')}, lr {opt.get('learning_rate', '?'):g});\n"
            f"in a basin: barrier to that minimum, and no other, < {meta.get('tol'):.3g}"
            + (" after weight matching" if meta.get("aligned") else ""))


def _warn(fig: Figure, meta: dict) -> Figure:
    """Print a result's warnings (members that diverged or did not learn) on its figure."""
    notes = [str(w) for w in meta.get("warnings") or []]
    if notes:
        # hung below the axes: the tight bounding box of every saved figure takes it in
        fig.text(0.01, 0.0, "\n".join(notes), color="tab:red", fontsize=_fs(6), ha="left", va="top")
    return fig


# ---------------------------------------------------------------------- comparing minima


def matrix(
    mat: np.ndarray,
    *,
    groups: np.ndarray | None = None,
    labels: list[str] | None = None,
    title: str | None = None,
    cbar_label: str = "barrier",
    log: bool = False,
    axis_label: str = "seed",
) -> Figure:
    """A pairwise matrix ``(M, M)`` as a heat map, rows and columns ordered by ``groups``
    (the basins *of this matrix*: pass the labels computed from it) with their boundaries drawn.

    The diagonal (a member against itself) is drawn grey and left out of the colour range, so
    the off-diagonal values use the whole scale; both axes are labelled (``axis_label``) at any
    member count, with tick labels when ``labels`` are given for at most 24 members.

    Args:
      mat: ``(M, M)``.
      groups: ``(M,)`` basin labels of this matrix.
      labels: ``(M,)`` member names.
      title: the axes' title.
      cbar_label: the colour bar's label.
      log: a log colour scale.
      axis_label: both axes' label.

    Returns:
      the figure.

    Examples:
      >>> barriers = np.array([[0.0, 0.01, 0.9], [0.01, 0.0, 0.8], [0.9, 0.8, 0.0]])
      >>> fig = ls.plot.matrix(barriers, groups=ls.minima.basins(barriers, 0.05))
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
    with matplotlib.rc_context(_rc()):
        fig = _figure(COLUMN_WIDTH, COLUMN_WIDTH * 0.86)
        ax = fig.subplots()
        positive = finite[finite > 0]
        norm = (mcolors.LogNorm(max(positive.min(), 1e-12), positive.max()) if log and positive.size
                else mcolors.Normalize(finite.min() if finite.size else 0, finite.max() if finite.size else 1))
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
        if labels is not None and n <= 24:
            ticks = [labels[i] for i in order]
            ax.set_xticks(range(n), ticks, rotation=90, fontsize=_fs(5))
            ax.set_yticks(range(n), ticks, fontsize=_fs(5))
        name = axis_label or "member"
        ax.set_xlabel(f"{name} (ordered by basin)" if groups is not None else name)
        ax.set_ylabel(f"{name} (ordered by basin)" if groups is not None else name)
        if title:
            ax.set_title(title)
        cb = fig.colorbar(im, cax=ax.inset_axes([1.04, 0.0, 0.045, 1.0]))
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

    Returns:
      the figure.

    Examples:
      >>> fig = ls.plot.scatter(np.array([0.8, 0.9, 0.85]), np.array([0.1, 0.05, 0.08]), xlabel="before",
      ...                       ylabel="after", diagonal=True)
      >>> fig.axes[0].get_xlabel(), fig.axes[0].get_ylabel()
      ('before', 'after')
    """
    import matplotlib

    x, y = np.asarray(x, float), np.asarray(y, float)
    with matplotlib.rc_context(_rc()):
        fig = _figure(COLUMN_WIDTH, 2.5)
        ax = fig.subplots()
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
            ax.legend(frameon=False, fontsize=_fs(6), loc="best")
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
            ax.legend(frameon=False, fontsize=_fs(6), loc="best")
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


def spectral_density(grid: np.ndarray, density: np.ndarray, *, title: str | None = None,
                     log_y: bool = True, eigenvalues: np.ndarray | None = None) -> Figure:
    """A Hessian eigenvalue density (stochastic Lanczos quadrature), log density axis by default.

    ``density`` is ``(n,)`` or ``(S, n)`` (one curve per seed, median in black); ``eigenvalues``
    marks top eigenvalues as ticks on the axis.

    Args:
      grid: ``(n,)`` eigenvalues.
      density: ``(n,)`` or ``(S, n)``.
      title: the axes' title.
      log_y: a log density axis.
      eigenvalues: top eigenvalues to mark.

    Returns:
      the figure.

    Examples:
      >>> grid = np.linspace(-1, 4, 200)
      >>> density = np.exp(-(grid - 1.0) ** 2 / 0.1)
      >>> ls.plot.spectral_density(grid, density, eigenvalues=np.array([3.0])).axes[0].get_yscale()
      'log'
    """
    import matplotlib

    d = np.atleast_2d(np.asarray(density, float))
    with matplotlib.rc_context(_rc()):
        fig = _figure(COLUMN_WIDTH, 2.3)
        ax = fig.subplots()
        alpha = float(np.clip(4.0 / d.shape[0], 0.05, 1.0))
        floor = 1e-6 * np.nanmax(d)
        for row in d:
            ax.plot(grid, np.maximum(row, floor), color="tab:purple", lw=0.7, alpha=alpha)
        if d.shape[0] > 1:
            ax.plot(grid, np.maximum(np.median(d, axis=0), floor), color="black", lw=1.2, label="median over seeds")
            ax.legend(frameon=False)
        if eigenvalues is not None:
            for ev in np.ravel(eigenvalues):
                ax.axvline(ev, ymax=0.05, color="tab:red", lw=0.6)
        if log_y:
            ax.set_yscale("log")
        ax.set_xlabel("Hessian eigenvalue")
        ax.set_ylabel("density")
        if title:
            ax.set_title(title)
    return fig


def _ratio_panel(ax, a, b, ratio, la, lb, loss, threshold, colorbar: bool):
    """``|λ_min| / λ_max`` as a heat map (0 … 1) with the loss's contours and the threshold's."""
    import matplotlib
    from matplotlib import colors as mcolors

    A, B = np.meshgrid(a, b, indexing="ij")
    r = np.clip(np.asarray(ratio, float), 0.0, 1.0)
    mesh = ax.pcolormesh(A, B, r, cmap=matplotlib.colormaps["viridis"], norm=mcolors.Normalize(0.0, 1.0),
                         shading="nearest", rasterized=True)
    if loss is not None:
        levels, top, use_log = _levels(np.asarray(loss, float), log=True, clip=None, num=12)
        LA, LB = np.meshgrid(la, lb, indexing="ij")
        z = np.where(np.isfinite(loss), np.minimum(loss, top), top)
        ax.contour(LA, LB, z, levels=levels, colors="white", linewidths=0.4, alpha=0.8)
    if np.nanmin(r) < threshold < np.nanmax(r):
        ax.contour(A, B, r, levels=[threshold], colors="tab:red", linewidths=1.0)
    if _similar_ranges(a, b):
        ax.set_aspect("equal", adjustable="datalim")
    ax.set_box_aspect(1)
    if colorbar:
        cb = ax.figure.colorbar(mesh, cax=ax.inset_axes([1.04, 0.0, 0.045, 1.0]))  # as tall as the axes
        cb.set_label(r"$|\lambda_{min}| / \lambda_{max}$" + (", clipped at 1" if np.nanmax(ratio) > 1 else ""))
        cb.ax.axhline(threshold, color="tab:red", lw=1.0)
    return mesh


def curvature_map(
    axes: list[np.ndarray],
    maps: dict[str, np.ndarray],
    *,
    loss_axes: list[np.ndarray] | None = None,
    loss: np.ndarray | None = None,
    threshold: float = 0.1,
    titles: list[str] | None = None,
    xlabel: str = r"$\alpha$ (direction 1)",
    ylabel: str = r"$\beta$ (direction 2)",
    title: str | None = None,
    warnings: list[str] | None = None,
) -> Figure:
    """Where a slice's apparent convexity hides negative curvature (Li et al. 2018, section 6).

    On a plane (two ``axes``): left, the loss (``loss`` on ``loss_axes``) with the region where
    ``|λ_min| / λ_max > threshold`` outlined in red; right, the ratio itself (0 … 1, loss
    contours in white).  On a line (one axis): λ_max and λ_min along it, the loss on a second
    axis, the points above the threshold shaded.  With a leading member axis ``(S, ...)`` one
    ratio panel per member (``titles``).

    Args:
      axes: the curvature grid's coordinates, ``[(n0,)]`` or ``[(n0,), (n1,)]``.
      maps: ``lambda_max``, ``lambda_min``, ``ratio`` shaped like the grid (``(S, ...)`` stacked).
      loss_axes: the grid axes of the loss surface of the same slice (its own, usually finer, grid).
      loss: that loss surface.
      threshold: the ratio marked as "large" (Li et al. call ``|λ_min/λ_max|`` above a few
        per cent significant non-convexity).
      titles: one title per member's panel (default ``member i``).
      xlabel: the horizontal axis's label.
      ylabel: the vertical axis's label.
      title: the figure's title.
      warnings: lines printed in red under the figure (members that diverged or did not learn).

    Returns:
      the figure.

    Examples:
      >>> a = np.linspace(-1, 1, 5)
      >>> maps = {"lambda_max": np.ones((5, 5)), "lambda_min": -0.05 * np.ones((5, 5)), "ratio": 0.05 * np.ones((5, 5))}
      >>> fig = ls.plot.curvature_map([a, a], maps)
      >>> len(fig.axes) >= 1
      True
    """
    import matplotlib

    ratio = np.asarray(maps["ratio"], float)
    with matplotlib.rc_context(_rc()):
        if len(axes) == 1:
            fig = _figure(COLUMN_WIDTH, 2.8)
            ax = fig.subplots()
            x = np.asarray(axes[0])
            rows = ratio if ratio.ndim == 2 else ratio[None]
            lmax = np.atleast_2d(maps["lambda_max"])
            lmin = np.atleast_2d(maps["lambda_min"])
            losses = None if loss is None else np.atleast_2d(loss)
            twin = ax.twinx() if loss is not None else None
            single = rows.shape[0] == 1
            for i in range(rows.shape[0]):
                color = "tab:blue" if single else f"C{i % 10}"
                name = "" if single else (titles[i] if titles else f"member {i}") + ": "
                ax.plot(x, lmax[i], color=color, lw=1.0, label=name + r"$\lambda_{max}$")
                ax.plot(x, lmin[i], color="tab:orange" if single else color, lw=1.0, ls="-" if single else ":",
                        label=name + r"$\lambda_{min}$")
                big = rows[i] > threshold
                if single:
                    ax.fill_between(x, 0, 1, where=big, color="tab:red", alpha=0.12, lw=0,
                                    transform=ax.get_xaxis_transform(),
                                    label=rf"$|\lambda_{{min}}|/\lambda_{{max}} > {threshold:g}$")
                else:
                    ax.plot(x[big], lmin[i][big], "o", color=color, ms=2.5,
                            label=rf"$|\lambda_{{min}}|/\lambda_{{max}} > {threshold:g}$" if i == 0 else None)
                if twin is not None:
                    twin.plot(loss_axes[0], losses[i], color="black" if single else color, lw=0.8, ls="--")
            ax.axhline(0, color="0.5", lw=0.5)
            ax.set_xlabel(xlabel.split(" (")[0])
            ax.set_ylabel("Hessian eigenvalue")
            if twin is not None:
                twin.set_ylabel("loss (dashed)")
                twin.spines["right"].set_visible(True)
            fig.legend(frameon=False, fontsize=_fs(6), loc="outside lower center", ncol=3 if single else 2)
        elif ratio.ndim == 3:
            n = ratio.shape[0]
            cols = min(n, 4)
            fig = _figure(PAGE_WIDTH, 1.9 * -(-n // cols) + 0.3)
            grid = np.atleast_1d(fig.subplots(-(-n // cols), cols, squeeze=False)).ravel()
            for i in range(n):
                _ratio_panel(grid[i], axes[0], axes[1], ratio[i], *(loss_axes or [None, None]),
                             None if loss is None else loss[i], threshold, colorbar=(i == n - 1))
                grid[i].set_title(titles[i] if titles else f"member {i}", fontsize=_fs(7))
            grid[0].set_xlabel(xlabel)
            grid[0].set_ylabel(ylabel)
            for ax in grid[n:]:
                ax.set_visible(False)
        else:
            fig = _figure(PAGE_WIDTH, 2.9)
            left, right = fig.subplots(1, 2)
            if loss is not None:
                landscape_2d(loss_axes[0], loss_axes[1], loss, kind="filled", ax=left, xlabel=xlabel, ylabel=ylabel,
                             legend=False)
                A, B = np.meshgrid(axes[0], axes[1], indexing="ij")
                if np.nanmin(ratio) < threshold < np.nanmax(ratio):
                    left.contour(A, B, ratio, levels=[threshold], colors="tab:red", linewidths=1.0)
                    with matplotlib.rc_context({"hatch.color": "white", "hatch.linewidth": 0.4}):
                        left.contourf(A, B, ratio, levels=[threshold, np.inf], colors="none", hatches=["///"])
                left.set_title(rf"loss; red: $|\lambda_{{min}}|/\lambda_{{max}} > {threshold:g}$")
            else:
                left.set_visible(False)
            _ratio_panel(right, axes[0], axes[1], ratio, *(loss_axes or [None, None]), loss, threshold, colorbar=True)
            right.set_xlabel(xlabel)
            right.set_title(r"$|\lambda_{min}| / \lambda_{max}$ (white: loss contours)")
        if title:
            fig.suptitle(title, fontsize=_fs(8))
    return _warn(fig, {"warnings": warnings})


def minibatch_spread(full: dict[str, np.ndarray], batches: dict[str, np.ndarray], *, batch_size: int,
                     full_stderr: dict[str, np.ndarray] | None = None, labels: list[str] | None = None,
                     title: str | None = None) -> Figure:
    """One-batch curvature estimates against the full-data value, member by member.

    ``full`` maps a quantity's axis label (``"top eigenvalue"``, ``"trace"``) to the full-data
    values ``(M,)``; ``batches`` maps the same labels to the per-batch values ``(M, K)``.  One
    panel per quantity: members along x (ordered by the first quantity's full-data value), every
    batch a grey dot, the batches' mean ± one standard deviation in blue, the full-data value a
    black bar (with ``full_stderr[label]`` as black error bars where the full-data value is itself
    an estimate, e.g. Hutchinson's trace) — how far a number measured on one mini-batch of
    ``batch_size`` can stray.  ``labels`` name the members on the x axis (``(M,)``).

    Args:
      full: ``{label: (M,)}`` full-data values.
      batches: ``{label: (M, K)}`` per-batch values.
      batch_size: the batches' size (in the title).
      full_stderr: ``{label: (M,)}`` the full-data values' standard errors.
      labels: ``(M,)`` member names.
      title: the figure's title.

    Returns:
      the figure.

    Examples:
      >>> rng = np.random.default_rng(0)
      >>> fig = ls.plot.minibatch_spread({"λ_max": np.array([1.0, 1.2])}, {"λ_max": rng.normal(1.2, 0.2, (2, 10))},
      ...                                batch_size=128)
      >>> len(fig.axes)
      1
    """
    import matplotlib

    names = list(full)
    first = np.asarray(full[names[0]], float)
    order = np.argsort(first)
    m = first.size
    with matplotlib.rc_context(_rc()):
        fig = _figure(COLUMN_WIDTH if m <= 24 else PAGE_WIDTH, 1.9 * len(names) + 0.3)
        axes = np.atleast_1d(fig.subplots(len(names), 1, sharex=True))
        x = np.arange(m)
        for ax, name in zip(axes, names):
            f = np.asarray(full[name], float)[order]
            b = np.asarray(batches[name], float)[order]
            k = b.shape[1]
            ax.scatter(np.repeat(x, k) + np.tile(np.linspace(-0.2, 0.2, k), m), b.ravel(), s=3, color="0.6",
                       lw=0, label=f"one batch of {batch_size} ({k} per member)")
            ax.errorbar(x, b.mean(axis=1), yerr=b.std(axis=1, ddof=1) if k > 1 else None, fmt="o", ms=2.5,
                        color="tab:blue", lw=0.8, capsize=1.5, label="batch mean ± sd")
            ax.scatter(x, f, marker="_", s=60, color="black", lw=1.2, label="full training set", zorder=3)
            if full_stderr and name in full_stderr:
                ax.errorbar(x, f, yerr=np.asarray(full_stderr[name], float)[order], fmt="none", color="black",
                            lw=0.6, capsize=0, zorder=3)
            ax.set_ylabel(name)
        axes[0].legend(frameon=False, fontsize=_fs(6), loc="upper left")
        what = "member" if labels is None else ("seed" + (" / learning rate" if any("\n" in str(t) for t in labels)
                                                          else ""))
        axes[-1].set_xlabel(f"{what}, ordered by full-data {names[0]}")
        ticks = x if m <= 24 else x[:: max(1, m // 12)]
        axes[-1].set_xticks(ticks)
        if labels is not None:
            axes[-1].set_xticklabels([str(labels[i]) for i in order[ticks]], fontsize=_fs(5))
        if title:
            axes[0].set_title(title)
    return fig


def sweep(
    x: np.ndarray,
    panels: list[dict],
    *,
    xlabel: str,
    log_x: bool = False,
    xticklabels: list[str] | None = None,
    title: str | None = None,
) -> Figure:
    """Summary statistics against a swept setting, one panel per quantity.

    Each panel is ``{"y": (n,), "lo": (n,), "hi": (n,), "ylabel": str}`` (``lo``/``hi``
    optional: drawn as an error band, e.g. the quartiles over seeds) and optionally
    ``"extra": [(x, y, lo, hi, label), ...]`` for separately marked configurations (e.g. a
    deeper network beside a width sweep), ``"ylim"`` and ``"log_y"`` (honoured when the values
    span a decade or more); or, for several series
    on one panel (up to four), ``{"series": [{"y", "lo", "hi", "label"}, ...], "ylabel": ...}``.
    Non-finite entries are left out.

    Args:
      x: ``(n,)`` the swept setting.
      panels: the panel dicts above.
      xlabel: the horizontal axis's label.
      log_x: a log x-axis.
      xticklabels: labels at ``x``.
      title: the figure's title.

    Returns:
      the figure.

    Examples:
      >>> x = np.array([8, 16, 32, 64])
      >>> fig = ls.plot.sweep(x, [{"y": np.array([3.8, 1.7, 1.4, 1.3]), "lo": np.array([3.1, 1.6, 1.3, 1.2]),
      ...                          "hi": np.array([5.4, 1.8, 1.5, 1.3]), "ylabel": "top eigenvalue"}],
      ...                     xlabel="width", log_x=True)
      >>> fig.axes[0].get_ylabel()
      'top eigenvalue'
    """
    import matplotlib

    x = np.asarray(x, float)
    with matplotlib.rc_context(_rc()):
        fig = _figure(COLUMN_WIDTH * len(panels) if len(panels) > 1 else COLUMN_WIDTH, 2.4)
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        for ax, panel in zip(axes, panels):
            lines = panel.get("series", [panel])
            if len(lines) > 4:
                raise ValueError(f"a sweep panel draws at most 4 series, got {len(lines)}")
            for line, color, marker in zip(lines, ("tab:blue", "tab:red", "tab:green", "tab:purple"), "o^sD"):
                y = np.asarray(line["y"], float)
                ok = np.isfinite(y)
                if "lo" in line and "hi" in line:
                    lo, hi = np.asarray(line["lo"], float), np.asarray(line["hi"], float)
                    ax.errorbar(x[ok], y[ok], yerr=[y[ok] - lo[ok], hi[ok] - y[ok]], fmt=f"{marker}-", color=color,
                                ms=4, lw=1.2, capsize=2, label=line.get("label"))
                else:
                    ax.plot(x[ok], y[ok], f"{marker}-", color=color, ms=4, lw=1.2, label=line.get("label"))
            values = np.concatenate([np.asarray(line["y"], float) for line in lines])
            values = values[np.isfinite(values) & (values > 0)]
            if panel.get("log_y") and values.size and values.max() > 10 * values.min():  # a decade or more:
                ax.set_yscale("log")  # below that a log axis has no labelled ticks
            for ex, ey, elo, ehi, elab in panel.get("extra", []):
                ax.errorbar([ex], [ey], yerr=None if elo is None else [[ey - elo], [ehi - ey]], fmt="s",
                            color="tab:orange", ms=5, capsize=2, label=elab)
            if log_x:
                ax.set_xscale("log", base=2)
            if xticklabels is not None:
                ax.set_xticks(x)
                ax.set_xticklabels(xticklabels)
                ax.minorticks_off()
            if "ylim" in panel:
                ax.set_ylim(*panel["ylim"])
            ax.set_xlabel(xlabel)
            ax.set_ylabel(panel["ylabel"])
            if panel.get("label") or panel.get("extra") or any(line.get("label") for line in lines):
                ax.legend(frameon=False, loc="best")
        if title:
            fig.suptitle(title)
    return fig


def descent_animation(
    a: np.ndarray,
    b: np.ndarray,
    z: np.ndarray,
    paths: np.ndarray,
    *,
    steps: np.ndarray | None = None,
    points: np.ndarray | None = None,
    point_labels: list[str] | None = None,
    tail: int = 12,
    zlabel: str = "loss",
    title: str = "gradient descent from many starts",
    interval_ms: int = 80,
    colors: list | None = None,
    legend: dict[str, Any] | None = None,
    xlabel: str = "distance along $u$",
    ylabel: str = "distance along $v$",
    width: float | None = None,
    linewidth: float = 0.9,
    size: tuple[float, float] | None = None,
    dot_size: float = 14,
):
    """An animation of many starts descending on a 2-D slice: ``paths (S, T, 2)`` over ``z (n0, n1)``.

    The slice is drawn once (filled contours, log levels, as :func:`landscape_2d`); every
    frame moves one dot per start along its path and keeps a short fading tail.  ``colors``:
    one colour per path (default: tab10 in turn); ``legend``: ``{label: colour}`` drawn under
    the axes (at its right with ``size``); ``width``: figure width in inches, or ``size``:
    ``(width, height)`` (a 16:9 frame for projection); ``tail=0`` draws each whole path so far.
    Returns a :class:`matplotlib.animation.FuncAnimation` (save it with :func:`save_animation`).

    Args:
      a: ``(n0,)`` the first axis's coordinates.
      b: ``(n1,)`` the second's.
      z: ``(n0, n1)`` the slice's cost.
      paths: ``(S, T, 2)``.
      steps: ``(T,)`` the step of each frame (shown in the title).
      points: ``(m, 2)`` minima.
      point_labels: their names.
      tail: frames of fading tail (0: whole paths).
      zlabel: the colour bar's label.
      title: the title.
      interval_ms: milliseconds between frames.
      colors: one colour per path.
      legend: ``{label: colour}``.
      xlabel: the horizontal axis's label.
      ylabel: the vertical axis's label.
      width: the figure's width in inches.
      linewidth: the paths' line width.
      size: ``(width, height)`` in inches instead of ``width``.
      dot_size: the moving dots' size.

    Examples:
      >>> a = b = np.linspace(-1, 1, 21)
      >>> z = 0.1 + a[:, None] ** 2 + 2 * b[None, :] ** 2                  # a bowl, (21, 21)
      >>> paths = np.stack([np.linspace([0.9, 0.9], [0.0, 0.0], 6), np.linspace([-0.9, 0.5], [0.0, 0.0], 6)])
      >>> anim = ls.plot.descent_animation(a, b, z, paths, steps=np.arange(6))
      >>> type(anim).__name__                                     # save it with save_animation
      'FuncAnimation'
    """
    import matplotlib
    from matplotlib.animation import FuncAnimation

    paths = np.asarray(paths, float)
    if paths.ndim != 3 or paths.shape[-1] != 2:
        raise ValueError(f"paths must have shape (starts, frames, 2), got {paths.shape}")
    num_frames = paths.shape[1]
    with matplotlib.rc_context(_rc()):
        w = width or COLUMN_WIDTH * 1.25
        fig = _figure(*size) if size is not None else _figure(w, w * 0.88 + (0.35 if legend else 0.0))
        ax = fig.add_subplot()
        landscape_2d(a, b, z, kind="filled", ax=ax, zlabel=zlabel, points=points, point_labels=point_labels,
                     xlabel=xlabel, ylabel=ylabel, title=title, legend=False)
        ax.set_xlim(float(np.min(a)), float(np.max(a)))
        ax.set_ylim(float(np.min(b)), float(np.max(b)))
        if colors is None:
            colors = matplotlib.colormaps["tab10"](np.arange(paths.shape[0]) % 10)
        tails = [ax.plot([], [], "-", color=c, lw=linewidth, alpha=0.8)[0] for c in colors]
        if legend:
            from matplotlib.lines import Line2D

            fig.legend(handles=[Line2D([], [], color=c, lw=1.5, label=k) for k, c in legend.items()],
                       loc="outside right center" if size is not None else "outside lower center",
                       ncol=1 if size is not None else min(3, len(legend)), frameon=False, fontsize=_fs(7))
        dots = ax.scatter(paths[:, 0, 0], paths[:, 0, 1], s=dot_size, c=list(colors), edgecolors="white",
                          linewidths=0.5, zorder=7)
        label = ax.text(0.02, 0.97, "", transform=ax.transAxes, va="top", ha="left", fontsize=_fs(7), color="white",
                        path_effects=_outline(), zorder=8)

        def draw(frame):
            lo = max(0, frame - tail) if tail else 0
            for line, path in zip(tails, paths):
                line.set_data(path[lo:frame + 1, 0], path[lo:frame + 1, 1])
            dots.set_offsets(paths[:, frame])
            label.set_text(f"step {int(steps[frame]) if steps is not None else frame}")
            return [*tails, dots, label]

        anim = FuncAnimation(fig, draw, frames=num_frames, interval=interval_ms, blit=False)
    return anim


# ---------------------------------------------------------------------- where starts go

#: Colours of the reference minima's basins, then "elsewhere" and "diverged".
BASIN_COLOURS = ("#4477AA", "#EE6677", "#228833", "#CCBB44", "#66CCEE", "#AA3377")
ELSEWHERE_COLOUR = "#DDDDDD"
DIVERGED_COLOUR = "#222222"
SHARED_COLOUR = "#999999"


@_styled
def basin_map(
    a: np.ndarray,
    b: np.ndarray,
    labels: np.ndarray,
    start_loss: np.ndarray,
    points: np.ndarray,
    fractions: np.ndarray,
    *,
    point_labels: list[str] | None = None,
    xlabel: str = "distance along u",
    ylabel: str = "distance along v",
    title: str | None = None,
    note: str | None = None,
) -> Figure:
    """A basin-of-attraction map: each start's label as a colour, the cost at the starts as
    contour lines (log-spaced), the minima as stars, and the share of starts per basin in the legend.

    Args:
      a: ``(G,)`` grid axis along u.
      b: ``(H,)`` grid axis along v.
      labels: ``(G, H)`` int (``i`` = minimum ``i``, −1 elsewhere, −2 diverged, −3 shared;
        :class:`landscape.minima.BasinMap`).
      start_loss: ``(G, H)`` cost at the starts.
      points: ``(R, 2)`` the minima.
      fractions: ``(R + 3,)`` share per label (minima, shared, elsewhere, diverged).
      point_labels: names of the minima.
      xlabel: the horizontal axis's label.
      ylabel: the vertical axis's label.
      title: the figure's title.
      note: a line under the axes (e.g. the training).

    Returns:
      the figure.

    Examples:
      >>> a = b = np.linspace(-1, 1, 4)
      >>> labels = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [0, -3, 1, 1], [2, 2, 2, -1]])
      >>> fractions = ls.minima.label_fractions(labels, 3)
      >>> fig = ls.plot.basin_map(a, b, labels, np.ones((4, 4)), np.array([[-0.5, -0.5], [0.5, 0.5], [0.0, 1.0]]),
      ...                         fractions, point_labels=["seed 0", "seed 1", "seed 2"])
      >>> fig.axes[0].get_xlabel()
      'distance along u'
    """
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.patches import Patch

    labels = np.asarray(labels)
    r = np.asarray(points).shape[0]
    colours = [SHARED_COLOUR, DIVERGED_COLOUR, ELSEWHERE_COLOUR] + [BASIN_COLOURS[i % len(BASIN_COLOURS)]
                                                                    for i in range(r)]
    cmap = ListedColormap(colours)
    norm = BoundaryNorm(np.arange(-3.5, r), cmap.N)
    fig = _figure(COLUMN_WIDTH, COLUMN_WIDTH + 0.5)
    ax = fig.add_subplot(1, 1, 1)
    A, B = np.meshgrid(a, b, indexing="ij")
    ax.pcolormesh(A, B, labels, cmap=cmap, norm=norm, shading="nearest", rasterized=True)
    z = np.asarray(start_loss, float)
    levels, _, use_log = _levels(z, log=True, clip=None, num=12)
    ax.contour(A, B, np.where(np.isfinite(z), np.minimum(z, levels[-1]), levels[-1]), levels=levels,
               colors="black", linewidths=0.35, alpha=0.55)
    pts = np.asarray(points)
    for i, (px, py) in enumerate(pts):
        ax.plot(px, py, "*", color="white", mec="black", mew=0.7, ms=11, zorder=5)
        lab = point_labels[i] if point_labels and i < len(point_labels) else f"minimum {i}"
        ax.annotate(lab, (px, py), xytext=(5, 4), textcoords="offset points", fontsize=_fs(7), color="white",
                    fontweight="bold", zorder=6, path_effects=_outline())
    if _similar_ranges(a, b):
        ax.set_aspect("equal", adjustable="datalim")
    ax.set_box_aspect(1)
    names = [(point_labels[i] if point_labels and i < len(point_labels) else f"minimum {i}") for i in range(r)]
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
    leg = fig.legend(handles=handles, loc="outside lower center", ncol=2, frameon=False, fontsize=_fs(6),
                     title=note, title_fontsize=_fs(5.5))
    leg.get_title().set_color("0.3")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return fig


#: Colours of a race's entrants (colour-blind safe, Paul Tol's "bright").
ENTRANT_COLOURS = ("#4477AA", "#EE6677", "#228833", "#CCBB44", "#66CCEE", "#AA3377", "#BBBBBB", "#000000")


@_styled
def race_figure(
    a: np.ndarray,
    b: np.ndarray,
    cost: np.ndarray,
    paths: np.ndarray,
    steps: np.ndarray,
    loss: np.ndarray,
    entrants: list[str],
    *,
    points: np.ndarray | None = None,
    point_labels: list[str] | None = None,
    diverged: np.ndarray | None = None,
    xlabel: str = "distance along u",
    ylabel: str = "distance along v",
    loss_name: str = "loss",
    title: str | None = None,
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
      points: ``(R, 2)`` the minima.
      point_labels: their names.
      diverged: ``(S, E)`` bool (drawn dashed).
      xlabel: the horizontal axis's label.
      ylabel: the vertical axis's label.
      loss_name: what the cost is called on the axes.
      title: the figure's title.

    Returns:
      the figure: each entrant one colour; circles mark the starts, crosses the ends; thin
      lines one start each, the thick line the median over starts.

    Examples:
      >>> a = b = np.linspace(-1, 1, 21)
      >>> z = 0.1 + a[:, None] ** 2 + 2 * b[None, :] ** 2                  # a bowl, (21, 21)
      >>> paths = np.stack([np.stack([np.linspace([0.9, 0.9], [0, 0], 4), np.linspace([0.9, 0.9], [0.3, 0], 4)])])
      >>> loss = np.array([[[1.0, 0.5, 0.2, 0.1], [1.0, 0.8, 0.6, 0.4]]])    # (starts, entrants, steps)
      >>> fig = ls.plot.race_figure(a, b, z, paths, np.arange(4), loss, ["sgd@3", "adam@0.01"])
      >>> len(fig.axes) >= 2                                      # the paths on the plane, cost against steps
      True
    """
    from matplotlib.lines import Line2D

    paths, loss = np.asarray(paths, float), np.asarray(loss, float)
    s, e = paths.shape[:2]
    colours = [ENTRANT_COLOURS[i % len(ENTRANT_COLOURS)] for i in range(e)]
    fig = _figure(PAGE_WIDTH, 3.3)
    ax, ax2 = fig.subplots(1, 2, width_ratios=[1.15, 1])
    landscape_2d(a, b, cost, kind="filled", ax=ax, zlabel=loss_name, points=points, point_labels=point_labels,
                 xlabel=xlabel, ylabel=ylabel, title=None, colorbar=True, legend=False)
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
        _log_axis(ax2, "y", finite)
    ax2.set_xlabel("step")
    ax2.set_ylabel(f"training {loss_name}")
    ax2.set_title("cost against steps (thick: median of the starts)", fontsize=_fs(7))
    handles = [Line2D([], [], color=c, lw=1.6, label=n) for c, n in zip(colours, entrants)]
    handles += [Line2D([], [], ls="none", marker="o", mfc="white", mec="black", ms=4, label="start"),
                Line2D([], [], ls="none", marker="x", color="0.2", ms=4, mew=1.2, label="end"),
                Line2D([], [], ls="none", marker="*", mfc="white", mec="black", ms=7, label="minimum")]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 5), frameon=False, fontsize=_fs(6))
    if title:
        fig.suptitle(title, fontsize=_fs(8))
    return fig


def race_animation(a, b, cost, paths, path_steps, entrants, *, points=None, point_labels=None,
                   xlabel="distance along u", ylabel="distance along v", loss_name="loss", title=None,
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
      points: the minima.
      point_labels: their names.
      xlabel: the horizontal axis's label.
      ylabel: the vertical axis's label.
      loss_name: what the cost is called.
      title: the title.
      width: the figure's width in inches.

    Examples:
      >>> a = b = np.linspace(-1, 1, 21)
      >>> z = 0.1 + a[:, None] ** 2 + 2 * b[None, :] ** 2                  # a bowl, (21, 21)
      >>> paths = np.stack([np.stack([np.linspace([0.9, 0.9], [0, 0], 4), np.linspace([0.9, 0.9], [0.3, 0], 4)])])
      >>> type(ls.plot.race_animation(a, b, z, paths, np.arange(4), ["sgd@3", "adam@0.01"])).__name__
      'FuncAnimation'
    """
    paths = np.asarray(paths, float)
    s, e, k = paths.shape[:3]
    colours = [ENTRANT_COLOURS[i % len(ENTRANT_COLOURS)] for i in range(e)]
    flat = paths.reshape(s * e, k, 2)
    return descent_animation(a, b, cost, flat, steps=path_steps, points=points, point_labels=point_labels, tail=0,
                             zlabel=loss_name, title=title or "optimizer race", colors=[colours[j] for i in range(s)
                                                                                         for j in range(e)],
                             legend=dict(zip(entrants, colours)), xlabel=xlabel, ylabel=ylabel, width=width)


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
      >>> colours, legend = ls.plot.paths_by_basin(np.array([0, 0, 1, -1]), ["seed 0", "seed 1"])
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


@_styled
def descent_paths(a, b, z, paths, basin, *, points=None, point_labels=None, xlabel="distance along u",
                  ylabel="distance along v", zlabel="loss", title=None) -> Figure:
    """The still of an in-plane descent: every path ``(S, T, 2)`` on the plane's cost, coloured by
    the minimum it ended at (``basin (S,)``, −1: none), starts circled, ends dotted.

    Args:
      a: ``(n0,)`` the first axis's coordinates.
      b: ``(n1,)`` the second's.
      z: ``(n0, n1)`` the plane's cost.
      paths: ``(S, T, 2)``.
      basin: ``(S,)`` int.
      points: the minima.
      point_labels: their names.
      xlabel: the horizontal axis's label.
      ylabel: the vertical axis's label.
      zlabel: the colour bar's label.
      title: the title.

    Returns:
      the figure (column width, the legend under the axes).

    Examples:
      >>> a = b = np.linspace(-1, 1, 21)
      >>> z = 0.1 + a[:, None] ** 2 + 2 * b[None, :] ** 2                  # a bowl, (21, 21)
      >>> paths = np.stack([np.linspace([0.9, 0.9], [0.0, 0.0], 6), np.linspace([-0.9, 0.5], [0.0, 0.0], 6)])
      >>> fig = ls.plot.descent_paths(a, b, z, paths, np.array([0, -1]), points=np.array([[0.0, 0.0]]),
      ...                             point_labels=["seed 0"])
      >>> fig.axes[0].get_xlabel()
      'distance along u'
    """
    from matplotlib.lines import Line2D

    paths = np.asarray(paths, float)
    names = list(point_labels or [f"minimum {i}" for i in range(0 if points is None else len(points))])
    colours, legend = paths_by_basin(basin, names)
    fig = _figure(COLUMN_WIDTH, COLUMN_WIDTH * 1.05)
    ax = fig.add_subplot()
    landscape_2d(a, b, z, kind="filled", ax=ax, zlabel=zlabel, points=points, point_labels=point_labels,
                 xlabel=xlabel, ylabel=ylabel, title=title, legend=False)
    for path, c in zip(paths, colours):
        ax.plot(path[:, 0], path[:, 1], "-", color=c, lw=0.6, alpha=0.9)
        ax.plot(path[-1, 0], path[-1, 1], "o", color=c, ms=2.2, zorder=6)
    ax.plot(paths[:, 0, 0], paths[:, 0, 1], "o", mfc="white", mec="black", mew=0.4, ms=2.6, zorder=7, ls="none")
    ax.set_xlim(float(np.min(a)), float(np.max(a)))
    ax.set_ylim(float(np.min(b)), float(np.max(b)))
    handles = [Line2D([], [], color=c, lw=1.2, label=k) for k, c in legend.items()]
    handles.append(Line2D([], [], ls="none", marker="o", mfc="white", mec="black", ms=3.5, label="start"))
    fig.legend(handles=handles, loc="outside lower center", ncol=2, frameon=False, fontsize=_fs(6))
    return fig
