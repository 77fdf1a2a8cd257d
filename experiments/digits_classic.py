"""Study 1 — handwritten digits, the classic way: 256 random starts of a sigmoid network.

The network of the textbooks: 64-16-16-10, sigmoid units (sigmoid outputs too), the
squared-difference cost, plain full-batch gradient descent, on the bundled 8x8 digits.
Every start is trained at once; then

* the spread of final costs (histogram) and every seed's training curve;
* the plane through three seeds' minima, with their training paths projected onto it;
* the loss along straight lines between pairs of minima (32 pairs);
* barriers between the first 64 minima, grouped into basins, before and after permutation
  alignment (weight matching).

    python experiments/digits_classic.py            # about 6 minutes on 2 CPU cores
    python experiments/digits_classic.py --quick    # a smoke test, under a minute

Results in ``runs/digits_classic/run`` (the run directory; ``results/``, ``figures/``,
``report.md``); the README's figures are copied to ``figures/digits_classic_*.png``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from study import Study, parser, widths  # noqa: E402

import landscape as ls  # noqa: E402

# --- configuration -------------------------------------------------------------------------
CONFIG = {
    "dataset": "digits",
    "data_dir": None,     # tensorflow-datasets directory (other data sets than digits)
    "batch_size": None,   # full-batch gradient descent
    "hidden": "16,16",
    "activation": "sigmoid",
    "loss": "mse",
    "lr": 3.0,
    "steps": 2000,
    "seeds": 256,
    "log_every": 20,
    "snapshot_every": 100,
    "pairs": 32,          # straight lines between seeds (2i, 2i + 1)
    "compare_limit": 64,  # barriers between the first N seeds (N(N-1)/2 interpolations, each aligned too)
    "tol": 0.05,          # barrier below which two minima share a basin
}
QUICK = {**CONFIG, "steps": 150, "seeds": 8, "snapshot_every": 50, "log_every": 10, "pairs": 2, "compare_limit": 4}


def main(argv=None) -> dict:
    args = parser(__doc__, "digits_classic").parse_args(argv)
    return run_classic(Study("digits_classic", args, QUICK if args.quick else CONFIG))


def run_classic(study: Study) -> dict:
    """The whole study for ``study.config`` (also used by the MNIST study)."""
    cfg = study.config
    run = study.out / "run"
    spec = ls.analyses.TrainSpec(dataset=cfg["dataset"], data_dir=cfg.get("data_dir"), batch_size=cfg.get("batch_size"),
                                 hidden=widths(cfg["hidden"]), activation=cfg["activation"], loss=cfg["loss"],
                                 lr=(cfg["lr"],), steps=cfg["steps"], seeds=cfg["seeds"], log_every=cfg["log_every"],
                                 snapshot_every=cfg["snapshot_every"])
    with study.timed("train"):
        ens = ls.analyses.train(run, spec, overwrite=True)
        ls.figures.training_figures(ens, run)
    study.publish(run / "figures" / "final_cost_histogram.png", "final_cost_histogram")
    study.publish(run / "figures" / "training_curves.png", "training_curves")

    with study.timed("plane"):
        out = ls.analyses.plane(run, ls.analyses.PlaneSpec(seeds="0,1,2"), name="plane_three_seeds", overwrite=True)
        ls.figures.result_figure(out.arrays, out.meta, run / "figures" / "plane_three_seeds.png")
    study.publish(run / "figures" / "plane_three_seeds.png", "plane_three_seeds")

    with study.timed("interpolation"):
        summary = interpolation_pairs(run, cfg["pairs"])
    study.publish(run / "figures" / "interpolation_pairs.png", "interpolation_pairs")

    with study.timed("compare"):
        out = ls.analyses.compare(run, ls.analyses.CompareSpec(align=True, limit=cfg["compare_limit"], tol=cfg["tol"],
                                                               include_unlearned=cfg.get("include_unlearned", False)),
                                  overwrite=True)
        ls.figures.write_report(run, out.arrays, out.meta, name=out.name)
    study.publish(run / "figures" / "compare_barriers.png", "barriers")
    study.publish(run / "figures" / "compare_barriers_aligned.png", "barriers_aligned")
    study.publish(run / "figures" / "compare_alignment.png", "alignment")
    summary.update(compare_summary(run))
    summary.update(training_summary(run))
    return study.finish(summary)


def interpolation_pairs(run: Path, pairs: int) -> dict:
    """Loss along the line between seeds 2i and 2i+1, all pairs in one vmapped evaluation; saved, then drawn."""
    import jax
    import numpy as np

    import landscape as ls
    from landscape.analyses import run_dataset

    ens = ls.load_run(run)
    data = run_dataset(ens)
    fn = ls.models.metrics_fn(ens.model, ens.config["loss"])
    a = [ens.index(2 * i) for i in range(pairs)]
    b = [ens.index(2 * i + 1) for i in range(pairs)]
    take = lambda idx: jax.tree_util.tree_map(lambda x: x[np.asarray(idx)], ens.params)  # noqa: E731
    surf = ls.surface.interpolation(fn, take(a), take(b), num=41, extend=0.25, stacked=True,
                                    data={"train": (data.train.x, data.train.y), "test": (data.test.x, data.test.y)})
    stem = run / "results" / "interpolation_pairs"
    ls.io.save_result(stem, surf.to_arrays(), {**surf.meta, "kind": surf.kind,
                                               "pairs": [[int(ens.seeds[i]), int(ens.seeds[j])] for i, j in zip(a, b)]})
    arrays, meta = ls.io.load_result(stem)  # the figure is drawn from the saved result
    surf = ls.surface.Surface.from_arrays(arrays, meta)
    fig = ls.figures.curve(surf.axes[0], surf.values, xlabel=r"$t$ in $(1-t)\,\theta_A + t\,\theta_B$",
                        marks={"A": 0.0, "B": 1.0},
                        title=f"straight lines between {len(meta['pairs'])} pairs of minima")
    ls.figures.save_figure(fig, run / "figures" / "interpolation_pairs.png")
    heights = np.asarray(meta["barriers"]["train_loss"]["barrier"], float)
    return {"pairs": len(meta["pairs"]), "median_line_barrier": float(np.median(heights)),
            "max_line_barrier": float(np.max(heights))}


def compare_summary(run: Path) -> dict:
    import numpy as np

    import landscape as ls

    arrays, _ = ls.io.load_result(run / "results" / "compare")
    iu = np.triu_indices(len(arrays["seeds"]), 1)
    return {
        "compared": int(len(arrays["seeds"])),
        "basins_before": int(arrays["basin"].max() + 1),
        "basins_after_alignment": int(arrays["aligned_basin"].max() + 1),
        "largest_basin_after_alignment": int(np.bincount(arrays["aligned_basin"]).max()),
        "median_barrier_before": float(np.median(arrays["barrier"][iu])),
        "median_barrier_after": float(np.median(arrays["aligned_barrier"][iu])),
    }


def training_summary(run: Path) -> dict:
    import numpy as np

    import landscape as ls

    ens = ls.load_run(run)
    final = ens.history.train_loss[~ens.diverged, -1]
    acc = ens.history.test_accuracy[~ens.diverged, -1]
    return {"seeds": ens.num_members, "diverged": int(ens.diverged.sum()),
            "final_cost": {"min": float(final.min()), "median": float(np.median(final)), "max": float(final.max())},
            "test_accuracy": {"mean": float(acc.mean()), "min": float(acc.min()), "max": float(acc.max())}}


if __name__ == "__main__":
    main()
