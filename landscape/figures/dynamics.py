"""What happens during training: curvature tracked against the step (the edge of stability), and
the instability of children spawned from a parent (linear mode connectivity)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .styles import PAGE_WIDTH, font_size, log_axis, new_figure, save_figure, style_rc, with_warnings

__all__ = ["stability_threshold", "curvature_tracking", "stable_from", "instability_lines", "instability_figure",
           "instability_figures"]

def stability_threshold(optimizer: dict | None) -> tuple[float, str] | None:
    """``(c, label)``: gradient descent on a quadratic with curvature λ is stable while
    ``λ < c / η``: ``c = 2`` for plain SGD, ``2 + 2β`` for heavy-ball momentum ``β`` and
    ``(2 + 2β) / (1 + 2β)`` for Nesterov's (Cohen et al. 2021, appendix); ``None`` for adaptive
    optimizers (their threshold is on the preconditioned Hessian).

    Args:
      optimizer: a run's ``config["optimizer"]`` (``{"spec": {"name", "momentum", …}}``).

    Returns:
      the constant and a label for it, or ``None``.

    Examples:
      >>> ls.figures.stability_threshold({"spec": {"name": "sgd", "learning_rate": 0.1}})
      (2.0, '2/η')
      >>> ls.figures.stability_threshold({"spec": {"name": "momentum", "momentum": 0.9}})[0]
      3.8
    """
    spec = (optimizer or {}).get("spec") if isinstance(optimizer, dict) else None
    if not isinstance(spec, dict):
        return None
    name, beta = spec.get("name"), float(spec.get("momentum") or 0.0)
    if name == "sgd":
        return 2.0, "2/η"
    if name == "momentum":
        return 2.0 + 2.0 * beta, f"(2+2β)/η, β={beta:g}"
    if name == "nesterov":
        return round((2.0 + 2.0 * beta) / (1.0 + 2.0 * beta), 12), f"(2+2β)/((1+2β)η), β={beta:g}"
    return None


def curvature_tracking(step: np.ndarray, top: np.ndarray, learning_rates: np.ndarray, *,
                       loss_step: np.ndarray | None = None, train_loss: np.ndarray | None = None,
                       diverged: np.ndarray | None = None, threshold: tuple[float, str] | None = (2.0, "2/η"),
                       title: str | None = None) -> Figure:
    """The top Hessian eigenvalue against the step for every member, one column per learning rate
    with its stability threshold ``c/η`` (:func:`stability_threshold`), the training loss
    underneath (Cohen et al. 2021, figure 1).  Each member is a thin line, the median over the
    members that did not diverge a thick one; diverged members are red.

    Args:
      step: ``(T,)`` the tracked steps.
      top: ``(M, T)`` or ``(M, T, K)`` (the first eigenvalue is drawn).
      learning_rates: ``(M,)``.
      loss_step: ``(T',)`` the logged steps of ``train_loss``.
      train_loss: ``(M, T')``, or ``None`` (no lower row).
      diverged: ``(M,)`` bool.
      threshold: ``(c, label)``, or ``None`` (no line).
      title: the figure's title.

    Returns:
      the figure.

    Examples:
      >>> step = np.arange(0, 101, 10)
      >>> sharp = np.minimum(step / 10.0, 4.0)[None, :] + np.array([[0.0], [0.2]])    # 2 members
      >>> fig = ls.figures.curvature_tracking(step, sharp, np.array([0.5, 0.5]), loss_step=step,
      ...                                     train_loss=np.exp(-step / 50.0)[None, :].repeat(2, 0))
      >>> len(fig.axes), fig.axes[0].get_title()
      (2, 'lr 0.5')
    """
    import matplotlib

    step = np.asarray(step, float)
    lam = np.asarray(top, float)
    lam = lam[..., 0] if lam.ndim == 3 else lam
    m = lam.shape[0]
    lrs = np.asarray(learning_rates, float)
    bad = np.zeros(m, bool) if diverged is None else np.asarray(diverged, bool)
    rates = [float(r) for r in np.unique(lrs[np.isfinite(lrs)])] or [float("nan")]
    rows = 2 if train_loss is not None else 1
    alpha = float(np.clip(6.0 / max(m / len(rates), 1), 0.1, 0.7))
    with matplotlib.rc_context(style_rc()):
        fig = new_figure(min(PAGE_WIDTH, 2.4 * len(rates) + 0.6), 2.0 * rows + 0.5)
        axes = fig.subplots(rows, len(rates), squeeze=False, sharex="col")
        for c, rate in enumerate(rates):
            sel = np.isclose(lrs, rate) if np.isfinite(rate) else np.ones(m, bool)
            ax = axes[0, c]
            for i in np.flatnonzero(sel):
                ax.plot(step, lam[i], color="tab:red" if bad[i] else "tab:blue", lw=0.6, alpha=alpha)
            good = sel & ~bad
            if good.any():
                ax.plot(step, np.nanmedian(lam[good], axis=0), color="k", lw=1.4, label="median")
            if threshold is not None and np.isfinite(rate):
                ax.axhline(threshold[0] / rate, color="tab:orange", ls="--", lw=1.0, label=threshold[1])
            _limits(ax, lam[good], None if threshold is None or not np.isfinite(rate) else threshold[0] / rate)
            ax.set_title(f"lr {rate:g}" if np.isfinite(rate) else "", fontsize=font_size(8))
            if c == 0:
                ax.set_ylabel("top Hessian eigenvalue")
                ax.legend(frameon=False, fontsize=font_size(6))
            if train_loss is not None:
                lo = axes[1, c]
                loss = np.asarray(train_loss, float)
                for i in np.flatnonzero(sel):
                    lo.plot(np.asarray(loss_step, float), loss[i], color="tab:red" if bad[i] else "tab:green",
                            lw=0.6, alpha=alpha)
                log_axis(lo, "y", loss[sel & ~bad] if (sel & ~bad).any() else loss[sel])
                _limits(lo, loss[sel & ~bad], None, log=True)
                if c == 0:
                    lo.set_ylabel("training loss")
            axes[-1, c].set_xlabel("step")
        if title:
            fig.suptitle(title, fontsize=font_size(9))
    return fig


def _limits(ax, values: np.ndarray, line: float | None, log: bool = False) -> None:
    """The y range of the members that did not diverge (and ``line``): a diverged member's
    values are drawn but do not flatten everyone else's."""
    v = np.asarray(values, float).ravel()
    v = v[np.isfinite(v) & ((v > 0) if log else True)]
    if line is not None:
        v = np.append(v, line)
    if not v.size:
        return
    lo, hi = float(v.min()), float(v.max())
    if log:
        ax.set_ylim(lo / 1.2, hi * 1.2)
    else:
        pad = 0.06 * (hi - lo) or 0.1 * abs(hi) or 1.0
        ax.set_ylim(lo - pad, hi + pad)


def _xscale(ax, steps: np.ndarray) -> None:
    """Spawn steps on a log axis that keeps step 0 (linear below the first positive step)."""
    from matplotlib import ticker

    pos = steps[steps > 0]
    if steps.size and steps.min() == 0 and pos.size:
        ax.set_xscale("symlog", linthresh=float(pos.min()), linscale=0.5)
    elif pos.size == steps.size and pos.size:
        log_axis(ax, "x", pos)
    if 1 < steps.size <= 8:  # few spawn steps: label each of them
        ax.set_xticks(steps)
        ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_locator(ticker.NullLocator())


def _judged(arrays: dict) -> str:
    """The error barrier a stable spawn step is judged on: the test set's when the result has it
    (as Frankle et al.), else the training set's."""
    return "test_error_instability" if "test_error_instability" in arrays else "error_instability"


def stable_from(steps: np.ndarray, instability: np.ndarray, threshold: float) -> int | None:
    """The earliest spawn step from which on the median instability over parents stays below
    ``threshold`` (Frankle et al. 2020's onset of stability), or ``None``.

    Args:
      steps: ``(S,)`` the spawn steps, increasing.
      instability: ``(P, S)`` per parent and step.
      threshold: the barrier called stable.

    Returns:
      the step, or ``None`` when the last one is not stable.

    Examples:
      >>> ls.figures.stable_from(np.array([0, 10, 20, 40]), np.array([[0.01, 0.3, 0.01, 0.0]]), 0.02)
      20
    """
    with np.errstate(all="ignore"):
        med = np.nanmedian(np.asarray(instability, float), axis=0)
    ok = med < threshold
    if not ok.size or not ok[-1]:
        return None
    first = ok.size - int(np.argmin(ok[::-1])) if not ok.all() else 0
    return int(np.asarray(steps)[first])


def instability_lines(arrays: dict, meta: dict) -> list[str]:
    """The table of an ``instability`` result: per spawn step, the median over parents (and the
    quartiles) of the training-loss, training-error and (when stored) test-error barriers
    between children, and the children's final training loss; then the first step whose median
    error barrier (the test set's when stored) is below the threshold.

    Args:
      arrays: the result's arrays.
      meta: its metadata (``meta["threshold"]``: the error barrier called stable).

    Returns:
      the lines.

    Examples:
      >>> arrays = {"spawn_steps": np.array([0, 10]), "error_instability": np.array([[0.3, 0.01]]),
      ...           "loss_instability": np.array([[1.0, 0.02]]), "final_train_loss": np.array([[[0.1, 0.1], [0.1, 0.1]]])}
      >>> ls.figures.instability_lines(arrays, {"threshold": 0.02})[-1]
      'stable (median training-error barrier < 0.02 from there on) from spawn step 10'
    """
    steps = np.asarray(arrays["spawn_steps"])
    cols = [(k, t) for k, t in (("loss_instability", "train loss barrier"), ("error_instability", "train error barrier"),
                                ("test_error_instability", "test error barrier")) if k in arrays]
    lines = [f"{'spawn step':>10} " + " ".join(f"{t + ' [quartiles]':>30}" for _, t in cols) + f" {'child loss':>10}"]
    for j, s in enumerate(steps):
        cells = []
        for k, _ in cols:
            v = np.asarray(arrays[k], float)[:, j]
            q = np.nanquantile(v, [0.25, 0.5, 0.75]) if np.isfinite(v).any() else [np.nan] * 3
            cells.append(f"{q[1]:.4g} [{q[0]:.3g}, {q[2]:.3g}]".rjust(30))
        child = float(np.nanmedian(np.asarray(arrays["final_train_loss"], float)[:, j]))
        lines.append(f"{int(s):>10} " + " ".join(cells) + f" {child:>10.4g}")
    thr = meta.get("threshold")
    if thr is not None:
        key = _judged(arrays)
        what = "test-error" if key.startswith("test") else "training-error"
        k = stable_from(steps, np.asarray(arrays[key], float), thr)
        lines.append(f"stable (median {what} barrier < {thr:g} from there on) from spawn step {k}" if k is not None
                     else f"not stable: the median {what} barrier at the last spawn step is at least {thr:g}")
    return lines


def instability_figure(arrays: dict, meta: dict) -> Figure:
    """Instability against the spawn step (Frankle et al. 2020, figure 3): the barrier of the
    loss and of the error on the straight line between children spawned from the same parent
    at the same step — on the training set and, when stored, the test set — the median over
    parents with the quartiles shaded; a log step axis that keeps step 0.

    Args:
      arrays: an ``instability`` result's arrays.
      meta: its metadata.

    Returns:
      the figure.

    Examples:
      >>> arrays = {"spawn_steps": np.array([0, 10, 100]), "loss_instability": np.array([[1.0, 0.5, 0.0], [0.8, 0.3, 0.01]]),
      ...           "error_instability": np.array([[0.3, 0.1, 0.0], [0.2, 0.05, 0.0]])}
      >>> [ax.get_ylabel() for ax in ls.figures.instability_figure(arrays, {"threshold": 0.02}).axes]
      ['loss barrier', 'error barrier']
    """
    import matplotlib

    steps = np.asarray(arrays["spawn_steps"], float)
    with matplotlib.rc_context(style_rc()):
        fig = new_figure(PAGE_WIDTH * 0.75, 2.4)
        axes = fig.subplots(1, 2)
        for ax, m in zip(axes, ("loss", "error")):
            for pre, name, color in (("", "training set", "tab:blue"), ("test_", "test set", "tab:purple")):
                if f"{pre}{m}_instability" not in arrays:
                    continue
                v = np.asarray(arrays[f"{pre}{m}_instability"], float)  # (parents, steps)
                if not np.isfinite(v).any():
                    continue
                q = np.nanquantile(v, [0.25, 0.5, 0.75], axis=0)
                ax.fill_between(steps, q[0], q[2], color=color, alpha=0.2, lw=0)
                ax.plot(steps, q[1], "o-", color=color, ms=3, lw=1.4, label=f"{name}: median of {v.shape[0]} parents")
            if m == "error" and meta.get("threshold") is not None:
                ax.axhline(meta["threshold"], color="tab:orange", ls="--", lw=1.0, label="stable below")
            ax.axhline(0.0, color="0.6", lw=0.5)
            _xscale(ax, steps)
            ax.set_xlabel("spawn step")
            ax.set_ylabel(f"{m} barrier")
        axes[1].legend(frameon=False, fontsize=font_size(6))
        fig.suptitle(meta.get("title", "instability of children spawned during training"), fontsize=font_size(9))
    return with_warnings(fig, meta)


def instability_figures(arrays: dict, meta: dict, run: str | Path, fmt: str = "png",
                        prefix: str = "instability") -> list[Path]:
    """Write :func:`instability_figure` as ``RUN/figures/<prefix>.<fmt>``.

    Args:
      arrays: an ``instability`` result's arrays.
      meta: its metadata.
      run: the (children's) run directory.
      fmt: the figure's format.
      prefix: the figure's name.

    Returns:
      the figures written.

    Examples:
      >>> import tempfile
      >>> arrays = {"spawn_steps": np.array([0, 10]), "loss_instability": np.array([[1.0, 0.1]]),
      ...           "error_instability": np.array([[0.3, 0.0]])}
      >>> [p.name for p in ls.figures.instability_figures(arrays, {}, tempfile.mkdtemp())]
      ['instability.png']
    """
    return [save_figure(instability_figure(arrays, meta), Path(run) / "figures" / f"{prefix}.{fmt}")]
