""""""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .dynamics import curvature_tracking, stability_threshold
from .styles import COLUMN_WIDTH, log_axis, new_figure, save_figure, style_rc

__all__ = ["training_curves", "final_cost_histogram", "sweep", "training_figures"]


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
      >>> fig = ls.figures.training_curves(step, loss, 1 - loss / 3)
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
    with matplotlib.rc_context(style_rc()):
        fig = new_figure(COLUMN_WIDTH * panels if panels == 2 else COLUMN_WIDTH, 2.5)
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
            log_axis(ax, "y", train_loss)
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
      >>> fig = ls.figures.final_cost_histogram(np.random.default_rng(0).lognormal(-4, 0.2, 64))
      >>> fig.axes[0].get_xlabel()
      'final train loss'
    """
    import matplotlib

    v = np.asarray(final_loss, float)
    bad = np.zeros(v.shape, bool) if diverged is None else np.asarray(diverged, bool)
    ok = v[~bad & np.isfinite(v)]
    wide = bool(ok.size and np.all(ok > 0) and ok.max() / ok.min() > 10)
    with matplotlib.rc_context(style_rc()):
        fig = new_figure(COLUMN_WIDTH, 2.3 if ok.size >= strip_below else 1.5)
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
      >>> fig = ls.figures.sweep(x, [{"y": np.array([3.8, 1.7, 1.4, 1.3]), "lo": np.array([3.1, 1.6, 1.3, 1.2]),
      ...                          "hi": np.array([5.4, 1.8, 1.5, 1.3]), "ylabel": "top eigenvalue"}],
      ...                     xlabel="width", log_x=True)
      >>> fig.axes[0].get_ylabel()
      'top eigenvalue'
    """
    import matplotlib

    x = np.asarray(x, float)
    with matplotlib.rc_context(style_rc()):
        fig = new_figure(COLUMN_WIDTH * len(panels) if len(panels) > 1 else COLUMN_WIDTH, 2.4)
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


def training_figures(ens, run: str | Path, fmt: str = "png") -> list[Path]:
    """Training curves (coloured by learning rate in a sweep; diverged red, did-not-learn
    dashed) and the histogram of final costs, under ``RUN/figures/``; for a run that tracked
    its curvature, first :func:`~landscape.figures.curvature_tracking` (``curvature_tracking``).

    Args:
      ens: the trained or loaded ensemble.
      run: the run directory.
      fmt: ``png``, ``pdf`` or ``svg``.

    Returns:
      the figures written.

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10))
      >>> [p.name for p in ls.figures.training_figures(ens, run)]
      ['training_curves.png', 'final_cost_histogram.png']
    """
    from ..training.ensemble import learned

    fig_dir = Path(run) / "figures"
    h, loss = ens.history, ens.config["loss"]
    stalled = ~learned(ens) & ~ens.diverged
    tracked = []
    if getattr(ens, "tracked", None) is not None:  # the edge of stability: λmax against c/η
        tracked = [save_figure(curvature_tracking(
            ens.tracked.step, ens.tracked.top, ens.learning_rates, loss_step=h.step, train_loss=h.train_loss,
            diverged=ens.diverged, threshold=stability_threshold(ens.config.get("optimizer")),
            title=f"curvature during training, {ens.num_members} members"), fig_dir / f"curvature_tracking.{fmt}")]
    return tracked + [
        save_figure(training_curves(h.step, h.train_loss, h.test_accuracy, diverged=ens.diverged,
                                              not_learned=stalled, learning_rates=ens.learning_rates,
                                              loss_name=loss), fig_dir / f"training_curves.{fmt}"),
        save_figure(final_cost_histogram(h.train_loss[:, -1], diverged=ens.diverged, loss_name=loss),
                         fig_dir / f"final_cost_histogram.{fmt}"),
    ]
