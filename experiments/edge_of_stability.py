"""Study 9 — the edge of stability on the digits: the top Hessian eigenvalue tracked during training.

Cohen et al. 2021: under full-batch gradient descent with step η the sharpness λmax (the top
Hessian eigenvalue of the training loss) rises during training (progressive sharpening)
until it reaches 2/η, then hovers at or just above it while the loss keeps falling, not
monotonically.  Here: tanh MLPs with the squared-difference cost (linear outputs, as Cohen et
al.) on the bundled digits,
several learning rates × seeds in one ensemble, λmax tracked every few steps inside the
compiled training loop (``track=``); then the same with minibatch SGD at the same rates.

    python experiments/edge_of_stability.py          # about 5 minutes on 2 CPU cores
    python experiments/edge_of_stability.py --quick  # a smoke test, well under a minute

Reported per learning rate and optimizer, relative to 2/η: λmax at the start, the lowest value
it drops to after the start and the step where it is back at 95 % of 2/η (progressive
sharpening), where it settles (its mean over the last half of training; median and range over
seeds), its largest value after step 0, and how often the loss rose from one logged step to
the next.  Figures: ``figures/edge_of_stability_gd.png`` and ``_sgd.png`` (the library's
``curvature_tracking`` figure of each run) and ``_ratio.png`` (λmax·η/2 against the step,
both optimizers); runs under ``runs/edge_of_stability/{gd,sgd}``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from study import Study, parser  # noqa: E402

import landscape as ls  # noqa: E402

# --- configuration -------------------------------------------------------------------------
CONFIG = {
    "hidden": (32, 32), "activation": "tanh", "loss": "mse", "output_activation": "identity",
    "lrs": [0.03, 0.05, 0.1],           # 2/η = 66.7, 40, 20
    "seeds": 8,
    "steps": 2000, "log_every": 10, "track_every": 20, "track_top": 1,
    "sgd_batch_size": 64,
}
QUICK = {**CONFIG, "hidden": (8,), "lrs": [0.05, 0.1], "seeds": 2, "steps": 60, "log_every": 10, "track_every": 20}


def main(argv=None) -> dict:
    args = parser(__doc__, "edge_of_stability").parse_args(argv)
    cfg = QUICK if args.quick else CONFIG
    study = Study("edge_of_stability", args, cfg)
    runs = {}
    for mode, batch in (("gd", None), ("sgd", cfg["sgd_batch_size"])):
        runs[mode] = study.out / mode
        with study.timed(f"train_{mode}"):
            ls.analyses.train(runs[mode], ls.analyses.TrainSpec(
                hidden=tuple(cfg["hidden"]), activation=cfg["activation"], loss=cfg["loss"],
                output_activation=cfg["output_activation"], lr=tuple(cfg["lrs"]),
                steps=cfg["steps"], batch_size=batch, seeds=cfg["seeds"], log_every=cfg["log_every"],
                track_every=cfg["track_every"], track_top=cfg["track_top"]), overwrite=True)
    with study.timed("figures"):
        summary = figures(study.out, runs, cfg)
    for name in ("gd", "sgd", "ratio"):
        study.publish(study.out / f"{name}.png", name)
    return study.finish(summary)


def _settle(step, lam, threshold):
    """Numbers of one member's λmax track, relative to the threshold: the start; the lowest value
    after it (the first steps' drop) and the first later step back at ≥ 0.95 (progressive
    sharpening up to the edge; ``None``: never); the mean over the last half; the largest after
    step 0."""
    import numpy as np

    low = 1 + int(np.argmin(lam[1:]))
    back = low + np.flatnonzero(lam[low:] >= 0.95 * threshold)
    late = step >= step[-1] / 2
    return {"start": float(lam[0] / threshold), "dip": float(lam[low] / threshold),
            "return_step": int(step[back[0]]) if back.size else None,
            "settled_ratio": float(np.mean(lam[late]) / threshold), "max_ratio": float(np.max(lam[1:]) / threshold)}


def figures(out: Path, runs: dict, cfg: dict) -> dict:
    """The figures and the summary, from the saved runs only."""
    import matplotlib
    import numpy as np

    summary = {}
    curves = {}
    for mode, run in runs.items():
        ens = ls.load_run(run)
        tr, h = ens.tracked, ens.history
        c, _ = ls.figures.stability_threshold(ens.config["optimizer"])
        fig = ls.figures.curvature_tracking(
            tr.step, tr.top, ens.learning_rates, loss_step=h.step, train_loss=h.train_loss, diverged=ens.diverged,
            threshold=ls.figures.stability_threshold(ens.config["optimizer"]),
            title=f"{'full-batch GD' if mode == 'gd' else 'SGD, batch ' + str(cfg['sgd_batch_size'])}: "
                  f"{ens.num_members} tanh MLPs on the digits")
        ls.figures.save_figure(fig, out / f"{mode}.png")
        entry = {"tracking_share": float(ens.timings.get("tracking_share", float("nan"))), "by_lr": {}}
        for lr in cfg["lrs"]:
            sel = np.flatnonzero(np.isclose(ens.learning_rates, lr) & ~ens.diverged)
            thr = c / lr
            per = [_settle(tr.step, tr.top[i, :, 0], thr) for i in sel]
            rises = [float(np.mean(np.diff(h.train_loss[i]) > 0)) for i in sel]
            curves[(mode, lr)] = tr.top[sel, :, 0] / thr
            settled = [p["settled_ratio"] for p in per]
            back = [p["return_step"] for p in per if p["return_step"] is not None]
            entry["by_lr"][f"{lr:g}"] = {
                "threshold": thr, "members": int(sel.size),
                "diverged": int(np.sum(np.isclose(ens.learning_rates, lr) & ens.diverged)),
                "start_ratio_median": float(np.median([p["start"] for p in per])) if per else None,
                "dip_ratio_median": float(np.median([p["dip"] for p in per])) if per else None,
                "back_at_0.95": f"{len(back)}/{len(per)}",
                "back_step_median": float(np.median(back)) if back else None,
                "settled_ratio_median": float(np.median(settled)) if per else None,
                "settled_ratio_range": [float(np.min(settled)), float(np.max(settled))] if per else None,
                "max_ratio_median": float(np.median([p["max_ratio"] for p in per])) if per else None,
                "loss_rose_share_median": float(np.median(rises)) if rises else None,
                "final_train_loss_median": float(np.median(h.train_loss[sel, -1])) if per else None,
            }
        summary[mode] = entry
    step = ls.load_run(runs["gd"]).tracked.step
    with matplotlib.rc_context(ls.figures.style()):
        fig = matplotlib.figure.Figure(figsize=(7.0, 2.6), layout="constrained")
        axes = fig.subplots(1, 2, sharey=True)
        colors = matplotlib.colormaps["viridis"](np.linspace(0.1, 0.85, len(cfg["lrs"])))
        for ax, mode, title in zip(axes, ("gd", "sgd"), ("full-batch GD", f"SGD, batch {cfg['sgd_batch_size']}")):
            for lr, col in zip(cfg["lrs"], colors):
                r = curves[(mode, lr)]
                for row in r:
                    ax.plot(step, row, color=col, lw=0.5, alpha=0.35)
                if len(r):
                    ax.plot(step, np.median(r, axis=0), color=col, lw=1.6, label=f"η = {lr:g}")
            ax.axhline(1.0, color="tab:orange", ls="--", lw=1.0, label="λmax = 2/η")
            ax.set_ylim(0.4, 1.6)  # the first steps' catapult (up to 3×) is cut off: the table has it
            ax.set_title(title)
            ax.set_xlabel("step")
        axes[0].set_ylabel("λmax · η / 2")
        axes[1].legend(frameon=False, fontsize=6)
        fig.suptitle(f"sharpness relative to the stability threshold, {cfg['seeds']} seeds per rate", fontsize=8)
    ls.figures.save_figure(fig, out / "ratio.png")
    return summary


if __name__ == "__main__":
    main()
