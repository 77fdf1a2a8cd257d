"""Figures from saved results: matplotlib only, no JAX, never any recomputation.

Every function takes plain numpy arrays and metadata and returns a
:class:`matplotlib.figure.Figure` built without pyplot (so no global figure state and no
display is needed); :func:`landscape.io.save_figure` writes it as PNG, PDF or SVG.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

__all__ = ["style", "training_curves", "final_cost_histogram"]

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
}


def style() -> dict:
    """The rc settings every figure here is drawn with (small, readable at column width)."""
    return dict(_RC)


def _figure(width: float, height: float) -> Figure:
    import matplotlib

    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(width, height), layout="constrained")
    return fig


def training_curves(
    step: np.ndarray,
    train_loss: np.ndarray,
    test_accuracy: np.ndarray | None = None,
    *,
    diverged: np.ndarray | None = None,
    loss_name: str = "loss",
    log_scale: bool = True,
    title: str | None = None,
) -> Figure:
    """Training cost of every member against step (one thin line each) and its median.

    ``step (T,)``, ``train_loss (M, T)``, optional ``test_accuracy (M, T)`` in a second panel;
    diverged members (``(M,)`` bool) are drawn in red and left out of the median.
    """
    import matplotlib

    train_loss = np.asarray(train_loss, float)
    m = train_loss.shape[0]
    bad = np.zeros(m, bool) if diverged is None else np.asarray(diverged, bool)
    panels = 2 if test_accuracy is not None else 1
    with matplotlib.rc_context(_RC):
        fig = _figure(COLUMN_WIDTH * panels if panels == 2 else COLUMN_WIDTH, 2.5)
        axes = fig.subplots(1, panels, squeeze=False)[0]
        alpha = float(np.clip(6.0 / max(m, 1), 0.05, 0.6))
        ax = axes[0]
        for i in range(m):
            ax.plot(step, train_loss[i], color="tab:red" if bad[i] else "tab:blue", lw=0.6, alpha=alpha)
        if (~bad).any():
            ax.plot(step, np.median(train_loss[~bad], axis=0), color="black", lw=1.2, label="median")
            ax.legend(loc="upper right", frameon=False)
        if log_scale and np.all(train_loss[np.isfinite(train_loss)] > 0):
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(f"train {loss_name}")
        ax.set_title(title or f"{m} random starts" + (f" ({bad.sum()} diverged)" if bad.any() else ""))
        if test_accuracy is not None:
            acc = np.asarray(test_accuracy, float)
            ax = axes[1]
            for i in range(m):
                ax.plot(step, acc[i], color="tab:red" if bad[i] else "tab:green", lw=0.6, alpha=alpha)
            if (~bad).any():
                ax.plot(step, np.median(acc[~bad], axis=0), color="black", lw=1.2)
            ax.set_xlabel("step")
            ax.set_ylabel("test accuracy")
            ax.set_ylim(0, 1)
    return fig


def final_cost_histogram(
    final_loss: np.ndarray, *, diverged: np.ndarray | None = None, loss_name: str = "loss", bins: int = 30
) -> Figure:
    """Histogram of the final training cost over members (log-spaced bins), diverged ones excluded."""
    import matplotlib

    v = np.asarray(final_loss, float)
    bad = np.zeros(v.shape, bool) if diverged is None else np.asarray(diverged, bool)
    ok = v[~bad & np.isfinite(v)]
    with matplotlib.rc_context(_RC):
        fig = _figure(COLUMN_WIDTH, 2.3)
        ax = fig.subplots()
        if ok.size and np.all(ok > 0) and ok.max() / ok.min() > 10:
            edges = np.geomspace(ok.min(), ok.max(), bins + 1)
            ax.set_xscale("log")
        else:
            edges = bins
        ax.hist(ok, bins=edges, color="tab:blue", edgecolor="white", lw=0.4)
        ax.set_xlabel(f"final train {loss_name}")
        ax.set_ylabel("number of seeds")
        note = f" ({bad.sum()} diverged, excluded)" if bad.any() else ""
        ax.set_title(f"{ok.size} seeds{note}")
    return fig
