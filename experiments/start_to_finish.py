"""Study 3 — from start to finish (Goodfellow, Vinyals & Saxe 2015): the loss along the
straight line from each seed's initialisation to the minimum it reached.

Goodfellow et al. found these lines are usually monotone: nothing on the direct path from
start to solution is an obstacle, even though gradient descent takes a curved route.  Two
networks on the bundled digits, 64 seeds each: the classic sigmoid network with the
squared-difference cost, and a relu network with cross-entropy.

    python experiments/start_to_finish.py          # about 3 minutes on 2 CPU cores
    python experiments/start_to_finish.py --quick  # a smoke test, under a minute

Figures: ``figures/start_to_finish_<network>.png``; results under ``runs/start_to_finish``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from study import Study, parser, widths  # noqa: E402

import landscape as ls  # noqa: E402

# --- configuration -------------------------------------------------------------------------
NETWORKS = {
    "sigmoid_mse": {"hidden": "16,16", "activation": "sigmoid", "loss": "mse", "lr": 3.0},
    "relu_ce": {"hidden": "32,32", "activation": "relu", "loss": "cross_entropy", "lr": 0.3},
}
CONFIG = {"networks": NETWORKS, "steps": 2000, "seeds": 64, "grid": 41, "extend": 0.2,
          "monotone_tol": 1e-4}  # a line is monotone when no step along it rises by more than this
QUICK = {**CONFIG, "steps": 100, "seeds": 4, "grid": 9}


def main(argv=None) -> dict:
    args = parser(__doc__, "start_to_finish").parse_args(argv)
    cfg = QUICK if args.quick else CONFIG
    study = Study("start_to_finish", args, cfg)
    summary = {}
    for name, net in cfg["networks"].items():
        run = study.out / name
        # the initialisation is the step-0 snapshot of the trajectory
        with study.timed("train"):
            ls.analyses.train(run, ls.analyses.TrainSpec(
                hidden=widths(net["hidden"]), activation=net["activation"], loss=net["loss"], lr=(net["lr"],),
                steps=cfg["steps"], seeds=cfg["seeds"], snapshot_every=cfg["steps"], log_every=cfg["steps"] // 10),
                overwrite=True)
        with study.timed("lines"):
            summary[name] = lines(run, name, net, cfg)
        study.publish(run / "figures" / "start_to_finish.png", name)
    return study.finish(summary)


def lines(run: Path, name: str, net: dict, cfg: dict) -> dict:
    import jax
    import numpy as np

    import landscape as ls

    ens = ls.load_run(run)
    data = ls.data.load("digits")
    fn = ls.models.metrics_fn(ens.model, ens.config["loss"])
    ok = np.flatnonzero(~ens.diverged)
    traj = ens.trajectory
    start = jax.tree_util.tree_map(lambda x: x[ok, 0], traj.params)
    finish = jax.tree_util.tree_map(lambda x: x[ok, -1], traj.params)
    surf = ls.surface.interpolation(fn, start, finish, num=cfg["grid"], extend=cfg["extend"], stacked=True,
                                    data={"train": (data.train.x, data.train.y), "test": (data.test.x, data.test.y)})
    stem = run / "results" / "start_to_finish"
    ls.io.save_result(stem, surf.to_arrays(), {**surf.meta, "kind": surf.kind, "seeds": ens.seeds[ok].tolist()})

    arrays, meta = ls.io.load_result(stem)  # the figure is drawn from the saved result
    surf = ls.surface.Surface.from_arrays(arrays, meta)
    t = surf.axes[0]
    title = (f"{net['activation']} {ens.model.in_features}-{'-'.join(map(str, ens.model.widths))}, "
             f"{'squared difference' if net['loss'] == 'mse' else 'cross-entropy'}: "
             f"{len(meta['seeds'])} seeds, initialisation to solution")
    fig = ls.figures.curve(t, surf.values, xlabel=r"$\alpha$ in $(1-\alpha)\,\theta_{init} + \alpha\,\theta_{final}$",
                        marks={"init": 0.0, "final": 1.0}, log_scale=True, title=title)
    ls.figures.save_figure(fig, run / "figures" / "start_to_finish.png")
    inside = (t >= 0) & (t <= 1)
    rises = np.diff(surf.values["train_loss"][:, inside], axis=1).max(axis=1)
    return {"seeds": int(len(meta["seeds"])),
            "monotone_fraction": float(np.mean(rises <= cfg["monotone_tol"])),
            "largest_rise": float(rises.max())}


if __name__ == "__main__":
    main()
