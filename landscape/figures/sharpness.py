"""Sharpness measures across members: the ``sharpness`` result's table and figure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .curvature import healthy
from .styles import PAGE_WIDTH, font_size, new_figure, save_figure, style_rc, with_warnings

__all__ = ["SHARPNESS_TITLES", "sharpness_lines", "sharpness_figure", "sharpness_figures"]

#: Each measure's name in tables and figures.
SHARPNESS_TITLES = {
    "worst": "worst-case (ρ)",
    "adaptive-worst": "adaptive worst-case",
    "m-sharpness": "m-sharpness",
    "average": "average-case (σ)",
    "adaptive-average": "adaptive average-case",
    "pac-bayes": "PAC-Bayes σ (larger: flatter)",
    "adaptive-pac-bayes": "adaptive PAC-Bayes σ (larger: flatter)",
    "fisher-rao": "Fisher–Rao norm",
    "lmax": "top Hessian eigenvalue",
    "trace": "Hessian trace",
}


def _error(arrays: dict, m: str):
    """``(lower, upper)`` error-bar extents of measure ``m`` (standard errors or an interval), or None."""
    v = np.asarray(arrays[m], float)
    if f"{m}_stderr" in arrays:
        se = np.asarray(arrays[f"{m}_stderr"], float)
        return se, se
    if f"{m}_low" in arrays:
        return v - np.asarray(arrays[f"{m}_low"], float), np.asarray(arrays[f"{m}_high"], float) - v
    return None


def _groups(arrays: dict) -> tuple[np.ndarray, list[float]]:
    lrs = np.asarray(arrays.get("learning_rates", np.full(len(arrays["seeds"]), np.nan)), float)
    rates = sorted({round(float(v), 12) for v in lrs})
    return np.array([rates.index(round(float(v), 12)) for v in lrs]), rates


def sharpness_lines(arrays: dict, meta: dict) -> list[str]:
    """The table of a ``sharpness`` result, one block per learning rate: a line per member
    (seed, every measure, train and test loss), then the median over the members that learned.

    Args:
      arrays: the result's arrays.
      meta: its metadata (``meta["measures"]`` orders the columns).

    Returns:
      the lines.

    Examples:
      >>> arrays = {"seeds": np.array([0, 1]), "learning_rates": np.array([0.1, 0.1]), "worst": np.array([0.2, 0.4]),
      ...           "train_loss": np.array([0.1, 0.2]), "test_loss": np.array([0.3, 0.5]),
      ...           "diverged": np.array([False, False]), "learned": np.array([True, True])}
      >>> ls.figures.sharpness_lines(arrays, {"measures": ["worst"]})[-1].split()
      ['median', '0.3', '0.15', '0.4']
    """
    measures = list(meta["measures"])
    groups, rates = _groups(arrays)
    ok = healthy(arrays)
    widths = [max(9, len(m)) for m in measures]
    head = f"{'seed':>6} " + " ".join(f"{m:>{w}}" for m, w in zip(measures, widths)) + f" {'train loss':>10} {'test loss':>10}"
    lines = []
    for g, rate in enumerate(rates):
        idx = np.flatnonzero(groups == g)
        if np.isfinite(rate):
            lines.append(f"learning rate {rate:g}")
        lines.append(head)
        for i in idx:
            vals = " ".join(f"{float(arrays[m][i]):>{w}.4g}" for m, w in zip(measures, widths))
            status = "" if ok[i] else "  (diverged or did not learn)"
            lines.append(f"{int(arrays['seeds'][i]):>6} {vals} {float(arrays['train_loss'][i]):>10.4g} "
                         f"{float(arrays['test_loss'][i]):>10.4g}{status}")
        good = idx[ok[idx]]
        if good.size:
            med = " ".join(f"{float(np.median(arrays[m][good])):>{w}.4g}" for m, w in zip(measures, widths))
            lines.append(f"{'median':>6} {med} {float(np.median(arrays['train_loss'][good])):>10.4g} "
                         f"{float(np.median(arrays['test_loss'][good])):>10.4g}")
    return lines


def sharpness_figure(arrays: dict, meta: dict) -> Figure:
    """Each measure across the members: one panel per measure, members along the x axis
    grouped by learning rate (colour), error bars where the measure has an error (standard
    errors, or the PAC-Bayes interval); members that diverged or did not learn are hollow.
    A panel whose positive values span more than two decades has a log axis.

    Args:
      arrays: a ``sharpness`` result's arrays.
      meta: its metadata.

    Returns:
      the figure.

    Examples:
      >>> arrays = {"seeds": np.array([0, 1]), "learning_rates": np.array([0.1, 0.5]), "worst": np.array([0.2, 0.4]),
      ...           "average": np.array([0.01, 0.03]), "average_stderr": np.array([0.001, 0.002]),
      ...           "diverged": np.array([False, False]), "learned": np.array([True, True])}
      >>> [ax.get_title() for ax in ls.figures.sharpness_figure(arrays, {"measures": ["worst", "average"]}).axes]
      ['worst-case (ρ)', 'average-case (σ)']
    """
    import matplotlib

    measures = list(meta["measures"])
    groups, rates = _groups(arrays)
    ok = healthy(arrays)
    order = np.lexsort((np.asarray(arrays["seeds"]), groups))
    cols = min(len(measures), 4 if len(measures) > 6 else 3)
    rows = -(-len(measures) // cols)
    colors = matplotlib.colormaps["viridis"](np.linspace(0.1, 0.85, max(len(rates), 1)))
    with matplotlib.rc_context(style_rc()):
        fig = new_figure(PAGE_WIDTH, 1.7 * rows + 0.4)
        axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
        x = np.arange(len(order))
        for ax, m in zip(axes, measures):
            v = np.asarray(arrays[m], float)[order]
            err = _error(arrays, m)
            for g, rate in enumerate(rates):
                sel = groups[order] == g
                e = None if err is None else np.vstack([err[0][order][sel], err[1][order][sel]])
                for fine in (True, False):
                    s = sel.copy()
                    s[sel] = ok[order][sel] == fine
                    if not s.any():
                        continue
                    es = None if e is None else e[:, (ok[order][sel] == fine)]
                    label = (f"lr {rate:g}" if np.isfinite(rate) else None) if fine else None
                    ax.errorbar(x[s], v[s], yerr=es, fmt="o", ms=3, lw=0.8, color=colors[g],
                                mfc=colors[g] if fine else "none", label=label)
            pos = v[np.isfinite(v) & (v > 0)]
            if pos.size and pos.max() > 100 * pos.min() and pos.size == np.isfinite(v).sum():
                ax.set_yscale("log")
            ax.set_title(SHARPNESS_TITLES.get(m, m), fontsize=font_size(8))
            ax.set_xticks([])
        fig.supxlabel("members, by learning rate and seed", fontsize=font_size(8))
        if len(rates) > 1 and all(np.isfinite(rates)):
            axes[0].legend(frameon=False, fontsize=font_size(6))
        for ax in axes[len(measures):]:
            ax.set_visible(False)
        fig.suptitle(f"sharpness of {len(order)} members", fontsize=font_size(9))
    return with_warnings(fig, meta)


def sharpness_figures(arrays: dict, meta: dict, run: str | Path, fmt: str = "png",
                      prefix: str = "sharpness") -> list[Path]:
    """Write :func:`sharpness_figure` as ``RUN/figures/<prefix>.<fmt>``.

    Args:
      arrays: a ``sharpness`` result's arrays.
      meta: its metadata.
      run: the run directory.
      fmt: the figure's format.
      prefix: the figure's name.

    Returns:
      the figures written.

    Examples:
      >>> import tempfile
      >>> arrays = {"seeds": np.array([0, 1]), "learning_rates": np.array([0.1, 0.1]), "worst": np.array([0.2, 0.4]),
      ...           "diverged": np.array([False, False]), "learned": np.array([True, True])}
      >>> [p.name for p in ls.figures.sharpness_figures(arrays, {"measures": ["worst"]}, tempfile.mkdtemp())]
      ['sharpness.png']
    """
    return [save_figure(sharpness_figure(arrays, meta), Path(run) / "figures" / f"{prefix}.{fmt}")]
