"""Study 6 — curvature beyond one number, on the classic digits network.

Sixteen sigmoid networks 64-16-16-10 trained with the squared-difference cost on the bundled
digits (the demo's network and schedule).  For each of them: the Hessian's top eigenvalues,
smallest eigenvalue and trace, for the whole network and for each layer's block, accumulated
over batches of 256 examples; the same for ten disjoint random mini-batches of 128 on their
own (how far a one-batch estimate strays); the Gauss–Newton and empirical-Fisher spectra
against the Hessian's; and seed 0's filter-normalised plane with the map of
``|λ_min| / λ_max`` over it (Li et al. 2018, section 6).

    python experiments/curvature.py          # about 4 minutes on 2 CPU cores
    python experiments/curvature.py --quick  # a smoke test, under a minute

Figures: ``figures/curvature_minibatch.png``, ``figures/curvature_map.png``,
``figures/curvature_ggn.png`` and ``figures/curvature_fisher.png``; results under
``runs/curvature``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from study import Study, parser  # noqa: E402

import landscape as ls  # noqa: E402

# --- configuration -------------------------------------------------------------------------
CONFIG = {
    "seeds": 16, "steps": 2000,          # the demo's network: 64-16-16-10 sigmoid, MSE, SGD lr 1
    "top": 3, "probes": 30,              # Lanczos top-k and Hutchinson probes
    "batch_size": 256,                   # full-data curvature accumulated over batches of this size
    "minibatches": 10, "minibatch_size": 128,
    "grid": 41, "curvature_grid": 21, "span": 1.0,
}
QUICK = {**CONFIG, "seeds": 3, "steps": 60, "top": 1, "probes": 4, "minibatches": 3, "grid": 9, "curvature_grid": 3}


def main(argv=None) -> dict:
    args = parser(__doc__, "curvature").parse_args(argv)
    cfg = QUICK if args.quick else CONFIG
    study = Study("curvature", args, cfg)
    run = study.out / "run"
    with study.timed("train"):
        ls.analyses.train(run, ls.analyses.demo_spec(seeds=cfg["seeds"], steps=cfg["steps"]), overwrite=True)
    common = {"top": cfg["top"], "probes": cfg["probes"]}
    with study.timed("hessian"):  # whole network and per layer, accumulated over batches
        ls.analyses.hessian(run, ls.analyses.HessianSpec(**common, per_layer=True, batch_size=cfg["batch_size"]),
                            overwrite=True)
    with study.timed("minibatches"):
        ls.analyses.hessian(run, ls.analyses.HessianSpec(**common, batch_size=cfg["minibatch_size"],
                                                         minibatches=cfg["minibatches"]),
                            name="minibatch", overwrite=True)
    for curvature in ("ggn", "fisher"):
        with study.timed(curvature):
            ls.analyses.hessian(run, ls.analyses.HessianSpec(**common, curvature=curvature), overwrite=True)
    with study.timed("curvature map"):
        ls.analyses.surface(run, ls.analyses.SurfaceSpec(seeds="0", grid=cfg["grid"], span=cfg["span"],
                                                         curvature=True, curvature_grid=cfg["curvature_grid"]),
                            name="plane_seed0", overwrite=True)
    with study.timed("figures"):
        summary = figures(run)
    study.publish(run / "figures" / "minibatch_minibatch.png", "minibatch")
    study.publish(run / "figures" / "plane_seed0_curvature.png", "map")
    study.publish(run / "figures" / "curvature_ggn_vs_hessian.png", "ggn")
    study.publish(run / "figures" / "curvature_fisher_vs_hessian.png", "fisher")
    return study.finish(summary)


def figures(run: Path) -> dict:
    """Every figure from the saved results only, and the numbers the README quotes."""
    import numpy as np

    load = lambda name: ls.io.load_result(run / "results" / name)  # noqa: E731
    hess, hmeta = load("hessian")
    mini, _ = load("minibatch")
    plane, pmeta = load("plane_seed0")
    ok = ~hess["diverged"].astype(bool) & hess["learned"].astype(bool)
    ls.figures.hessian_figures(mini, run, prefix="minibatch", per_layer=False)
    ls.figures.curvature_figures(run)
    ls.figures.curvature_map_figure(plane, pmeta, run / "figures" / "plane_seed0_curvature.png")

    def med(a):
        return float(np.median(a[ok]))

    top = mini["batch_top"][ok, :, 0]
    summary = {
        "members_learned": int(ok.sum()),
        "lambda_max": med(hess["top"][:, 0]), "trace": med(hess["trace"]),
        "lambda_min": med(hess["smallest"]),
        "layers": {name: {"lambda_max": med(hess[f"layer/{name}/top"][:, 0]),
                          "trace": med(hess[f"layer/{name}/trace"])} for name in hmeta["layers"]},
        "minibatch": {"full_lambda_max": med(mini["top"][:, 0]),
                      "batch_mean_lambda_max": float(np.median(top.mean(axis=1))),
                      "batch_sd_lambda_max": float(np.median(top.std(axis=1, ddof=1))),
                      "max_over_min_batch": float(np.median(top.max(axis=1) / top.min(axis=1)))},
    }
    for curvature in ("ggn", "fisher"):
        arrays, _ = load(curvature)
        summary[curvature] = {"lambda_max": med(arrays["top"][:, 0]), "trace": med(arrays["trace"])}
    ratio = plane["curvature/ratio"]
    summary["map"] = {"points_over_0.1": float(np.mean(ratio > ls.figures.curvature.RATIO_MARK)),
                      "centre_ratio": float(ratio[tuple(s // 2 for s in ratio.shape)]),
                      "largest_ratio": float(np.nanmax(ratio))}
    return summary


if __name__ == "__main__":
    main()
