"""Study 10 — when does training become stable? Children spawned during training, on the digits.

Frankle et al. 2020: copies of a network spawned at step k and trained on with different data
orders end in minima joined by a straight line without a barrier once k passes a point early in
training.  Here: relu MLPs on the bundled digits with minibatch SGD; parents trained with
snapshots, children spawned from every parent at every spawn step (from 0 to a third of
training) and trained as one ensemble (``landscape spawn``), the loss and error barriers between
them measured on the training and the test set — for a narrow, a middle and a wide network.
The parents are trained only as far as the last spawn step (a third of the children's
``steps``); every child trains ``steps`` steps from its spawn (Frankle et al. train each to the
parent's end, ``T − k``: one ensemble needs one length).

    python experiments/instability.py          # about 5 minutes on 2 CPU cores
    python experiments/instability.py --quick  # a smoke test, well under a minute

Reported per network: the instability (Frankle et al.'s barrier, max minus the mean of the
ends; median and quartiles over parents) against the spawn step, and the first spawn step
from which on the median test-error barrier stays below the threshold (2 %, as Frankle et al.).  Figures:
``figures/instability_<width>.png`` (the library's instability figure of the middle network)
and ``figures/instability_widths.png`` (the median error and loss barriers of every width);
runs under ``runs/instability/w<width>`` (parents) and ``…/w<width>_children``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from study import Study, parser  # noqa: E402

import landscape as ls  # noqa: E402

# --- configuration -------------------------------------------------------------------------
CONFIG = {
    "widths": [32, 64, 128], "depth": 4,   # four hidden layers of this width
    "activation": "relu", "loss": "cross_entropy",
    "lr": 0.2, "batch_size": 32, "steps": 1200, "parents": 8, "children": 3,
    "at": [0, 5, 10, 25, 50, 100, 200, 400],   # spawn steps: 0 to a third of training
    "snapshot_every": 5, "grid": 25, "threshold": 0.02,
}
QUICK = {**CONFIG, "widths": [8, 16], "depth": 2, "steps": 60, "parents": 2, "children": 2, "at": [0, 10, 20],
         "snapshot_every": 10, "grid": 5}


def main(argv=None) -> dict:
    args = parser(__doc__, "instability").parse_args(argv)
    cfg = QUICK if args.quick else CONFIG
    study = Study("instability", args, cfg)
    kids = {}
    for width in cfg["widths"]:
        parents = study.out / f"w{width}"
        with study.timed("train_parents"):
            ls.analyses.train(parents, ls.analyses.TrainSpec(
                hidden=(width,) * cfg["depth"], activation=cfg["activation"], loss=cfg["loss"], lr=(cfg["lr"],),
                steps=max(cfg["at"]), batch_size=cfg["batch_size"], seeds=cfg["parents"],
                log_every=cfg["snapshot_every"], snapshot_every=cfg["snapshot_every"]), overwrite=True)
        kids[width] = study.out / f"w{width}_children"
        with study.timed("spawn"):
            ls.analyses.spawn(parents, ls.analyses.SpawnSpec(
                at=tuple(cfg["at"]), children=cfg["children"], steps=cfg["steps"], grid=cfg["grid"],
                threshold=cfg["threshold"]), kids[width], overwrite=True)
    with study.timed("figures"):
        summary = figures(study.out, kids, cfg)
    middle = cfg["widths"][len(cfg["widths"]) // 2]
    study.publish(study.out / f"w{middle}.png", f"w{middle}")
    study.publish(study.out / "widths.png", "widths")
    return study.finish(summary)


def figures(out: Path, kids: dict, cfg: dict) -> dict:
    """The figures and the summary, from the saved results only."""
    import matplotlib
    import numpy as np

    summary = {"threshold": cfg["threshold"], "widths": {}}
    curves = {}
    for width, run in kids.items():
        arrays, meta = ls.io.load_result(run / "results" / "instability")
        ls.figures.save_figure(ls.figures.instability_figure(arrays, {**meta, "title": (
            f"width {width}: {meta['children']} children per parent and step, "
            f"{len(arrays['parent_seeds'])} parents, lr {cfg['lr']:g}, batch {cfg['batch_size']}")}),
            out / f"w{width}.png")
        steps = arrays["spawn_steps"]
        med = {m: np.nanmedian(arrays[f"{m}_instability"], axis=0) for m in ("loss", "error", "test_error")}
        stable = ls.figures.stable_from(steps, arrays["test_error_instability"], cfg["threshold"])
        curves[width] = (steps, med, arrays)
        summary["widths"][str(width)] = {
            "spawn_steps": steps.tolist(),
            "test_error_barrier_median": med["test_error"].round(5).tolist(),
            "test_error_barrier_q25": np.nanquantile(arrays["test_error_instability"], 0.25, axis=0).round(5).tolist(),
            "test_error_barrier_q75": np.nanquantile(arrays["test_error_instability"], 0.75, axis=0).round(5).tolist(),
            "train_error_barrier_median": med["error"].round(5).tolist(),
            "loss_barrier_median": med["loss"].round(5).tolist(),
            "stable_from_step": stable,
            "children_final_train_error_median": float(1 - np.median(arrays["final_train_accuracy"])),
            "children_final_test_error_median": float(1 - np.median(arrays["final_test_accuracy"])),
            "children_diverged": int(np.sum(arrays["diverged"])),
        }
    with matplotlib.rc_context(ls.figures.style()):
        fig = matplotlib.figure.Figure(figsize=(7.0, 2.6), layout="constrained")
        axes = fig.subplots(1, 2)
        colors = matplotlib.colormaps["viridis"](np.linspace(0.1, 0.85, len(kids)))
        for (width, (steps, med, arrays)), col in zip(curves.items(), colors):
            for ax, m in zip(axes, ("test_error", "loss")):
                q = np.nanquantile(arrays[f"{m}_instability"], [0.25, 0.75], axis=0)
                ax.fill_between(steps, q[0], q[1], color=col, alpha=0.2, lw=0)
                ax.plot(steps, med[m], "o-", ms=3, color=col, label=f"width {width}")
        for ax, name in zip(axes, ("test-error barrier", "training-loss barrier")):
            steps = next(iter(curves.values()))[0]
            ax.set_xscale("symlog", linthresh=float(steps[steps > 0].min()), linscale=0.5)
            ax.set_xticks(steps)
            ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
            ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
            ax.set_xlabel("spawn step")
            ax.set_ylabel(name)
            ax.axhline(0, color="0.6", lw=0.5)
        axes[0].axhline(cfg["threshold"], color="tab:orange", ls="--", lw=1.0, label="stable below")
        axes[0].legend(frameon=False, fontsize=6)
        fig.suptitle(f"instability against the spawn step: median and quartiles over {cfg['parents']} parents",
                     fontsize=8)
    ls.figures.save_figure(fig, out / "widths.png")
    return summary


if __name__ == "__main__":
    main()
