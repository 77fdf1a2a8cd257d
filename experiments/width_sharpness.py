"""Study 2 — width and sharpness (Li et al. 2018's qualitative claim) on the bundled digits.

Li et al. observed that wider networks have flatter, more convex-looking minima in
filter-normalised planes.  Here, in their setting (relu units, cross-entropy): networks with
two hidden layers of width 8 to 64 and one deeper network (four hidden layers of 16), each
trained from 32 seeds by full-batch gradient descent (learning rate 0.3, 2000 steps, which
brings the median training cost of every one of them to 0.0005-0.009; the classic sigmoid network with
the squared-difference cost does not train at one common learning rate across these widths
and depths).  For every network: the
filter-normalised plane around seed 0's minimum (same span, same colour scale), the top
Hessian eigenvalue of every seed (Lanczos), and the fraction of seeds that fall into the
largest basin once hidden units are aligned (weight matching; barrier below 0.05).

    python experiments/width_sharpness.py          # about 9 minutes on 2 CPU cores
    python experiments/width_sharpness.py --quick  # a smoke test, under a minute

Figures: ``figures/width_sharpness_planes.png`` and ``figures/width_sharpness_summary.png``;
results under ``runs/width_sharpness/<network>``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from study import Study, parser, widths  # noqa: E402

import landscape as ls  # noqa: E402

# --- configuration -------------------------------------------------------------------------
CONFIG = {
    "widths": [8, 16, 32, 64],          # two hidden layers of this width
    "deep": "16,16,16,16",              # the deeper network
    "planes": ["w8", "w64", "deep"],    # the networks whose planes are drawn side by side
    "activation": "relu", "loss": "cross_entropy", "lr": 0.3, "steps": 2000, "seeds": 32,
    "grid": 41, "span": 1.0, "tol": 0.05,
}
QUICK = {**CONFIG, "widths": [4, 8], "planes": ["w4", "w8", "deep"], "deep": "4,4,4", "steps": 100, "seeds": 4,
         "grid": 9}


def main(argv=None) -> dict:
    args = parser(__doc__, "width_sharpness").parse_args(argv)
    cfg = QUICK if args.quick else CONFIG
    study = Study("width_sharpness", args, cfg)
    nets = {f"w{w}": f"{w},{w}" for w in cfg["widths"]}
    nets["deep"] = cfg["deep"]
    for name, hidden in nets.items():
        run = study.out / name
        with study.timed("train"):
            ls.analyses.train(run, ls.analyses.TrainSpec(hidden=widths(hidden), activation=cfg["activation"],
                                                         loss=cfg["loss"], lr=(cfg["lr"],), steps=cfg["steps"],
                                                         seeds=cfg["seeds"]), overwrite=True)
        with study.timed("hessian"):
            ls.analyses.hessian(run, ls.analyses.HessianSpec(top=1, probes=10), overwrite=True)
        with study.timed("compare"):
            ls.analyses.compare(run, ls.analyses.CompareSpec(align=True, tol=cfg["tol"]), overwrite=True)
        if name in cfg["planes"]:
            with study.timed("surface"):
                ls.analyses.surface(run, ls.analyses.SurfaceSpec(seeds="0", grid=cfg["grid"], span=cfg["span"]),
                                    name="plane_seed0", overwrite=True)
    with study.timed("figures"):
        summary = figures(study.out, nets, cfg)
    study.publish(study.out / "planes.png", "planes")
    study.publish(study.out / "summary.png", "summary")
    return study.finish(summary)


def figures(out: Path, nets: dict, cfg: dict) -> dict:
    """Both figures from the saved results only."""
    import numpy as np

    import landscape as ls

    summary = {}
    for name, hidden in nets.items():
        hess, _ = ls.io.load_result(out / name / "results" / "hessian")
        comp, _ = ls.io.load_result(out / name / "results" / "compare")
        top = hess["top"][~hess["diverged"].astype(bool), 0]
        basin = comp["aligned_basin"]
        summary[name] = {
            "hidden": hidden,
            "top_eigenvalue": {"median": float(np.median(top)), "q25": float(np.quantile(top, 0.25)),
                               "q75": float(np.quantile(top, 0.75))},
            "largest_basin_fraction": float(np.bincount(basin).max() / basin.size),
            "basins_after_alignment": int(basin.max() + 1),
        }
    widths = cfg["widths"]
    ws = [summary[f"w{w}"] for w in widths]
    deep = summary["deep"]
    deep_x = int(cfg["deep"].split(",")[0])
    deep_label = f"deep ({cfg['deep'].replace(',', '-')})"
    fig = ls.figures.sweep(
        np.asarray(widths),
        [{"y": [s["top_eigenvalue"]["median"] for s in ws], "lo": [s["top_eigenvalue"]["q25"] for s in ws],
          "hi": [s["top_eigenvalue"]["q75"] for s in ws], "ylabel": r"top Hessian eigenvalue $\lambda_{max}$",
          "label": "two hidden layers",
          "extra": [(deep_x, deep["top_eigenvalue"]["median"], deep["top_eigenvalue"]["q25"],
                     deep["top_eigenvalue"]["q75"], deep_label)]},
         {"y": [s["largest_basin_fraction"] for s in ws], "ylabel": "largest basin (fraction of seeds)",
          "label": "two hidden layers", "ylim": (0, 1.05),
          "extra": [(deep_x, deep["largest_basin_fraction"], None, None, deep_label)]}],
        xlabel="hidden width", log_x=True, xticklabels=[str(w) for w in widths],
        title=f"median and quartiles over {cfg['seeds']} seeds per network, digits, {cfg['activation']} units, "
              f"{'cross-entropy' if cfg['loss'] == 'cross_entropy' else 'squared-difference cost'}")
    ls.figures.save_figure(fig, out / "summary.png")

    zs, titles, a, b = [], [], None, None
    for name in cfg["planes"]:
        arrays, meta = ls.io.load_result(out / name / "results" / "plane_seed0")
        surf = ls.surface.Surface.from_arrays(arrays, meta)
        a, b = surf.axes
        zs.append(surf.values["train_loss"])
        titles.append(f"{nets[name].replace(',', '-')}: median $\\lambda_{{max}}$ "
                      f"{summary[name]['top_eigenvalue']['median']:.3g}")
    fig = ls.figures.small_multiples(a, b, np.stack(zs), titles=titles, columns=len(zs), title_size=8,
                                  labels=ls.figures.Labels(x=r"$\alpha$ (direction 1)", y=r"$\beta$ (direction 2)"))
    ls.figures.save_figure(fig, out / "planes.png")
    return summary


if __name__ == "__main__":
    main()
