"""Study 7 — skip connections in miniature (Li et al. 2018, section 5) on the bundled digits.

Li et al. drew filter-normalised planes of CIFAR-10 ResNets of growing depth with and without
their skip connections: with them the minimum stays in one wide, nearly convex bowl at every
depth; without them the deeper networks' planes turn chaotic, and the ratio of the Hessian's
most negative to its largest eigenvalue grows.  Here the same comparison at the digits' scale:
built-in ResNets (``landscape.models.ResNet``, BatchNorm, relu, two stages of width 4 and 8)
of depth 6, 14 and 26 (1, 3 and 6 residual blocks per stage), each with and without skip
connections, trained from a few seeds by minibatch SGD with momentum; for every network the
filter-normalised plane around seed 0's minimum (BatchNorm statistics recomputed at every
point, one colour scale) and, at every seed's minimum, the top and the most negative Hessian
eigenvalue (Lanczos).

    python experiments/skip_connections.py          # about 35 minutes on 2 CPU cores
    python experiments/skip_connections.py --quick  # a smoke test, about 6 minutes (compiling)

Figures: ``figures/skip_connections_planes.png`` and ``figures/skip_connections_summary.png``;
results under ``runs/skip_connections/<network>``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from study import Study, parser  # noqa: E402

import landscape as ls  # noqa: E402

# --- configuration -------------------------------------------------------------------------
CONFIG = {
    "depths": [6, 14, 26],        # 2 stages x n blocks x 2 convolutions + stem + head
    "width": 4, "activation": "relu", "loss": "cross_entropy", "optimizer": "momentum", "lr": 0.05,
    "batch_size": 128, "steps": 500, "seeds": 3, "grid": 21, "span": 1.0, "lanczos": 20,
}
QUICK = {**CONFIG, "depths": [6, 10], "width": 2, "steps": 20, "seeds": 2, "grid": 5, "lanczos": 8}


def network(depth: int, skip: bool) -> str:
    return f"d{depth}_{'skip' if skip else 'noskip'}"


def main(argv=None) -> dict:
    args = parser(__doc__, "skip_connections").parse_args(argv)
    cfg = QUICK if args.quick else CONFIG
    study = Study("skip_connections", args, cfg)
    for depth in cfg["depths"]:
        for skip in (True, False):
            run = study.out / network(depth, skip)
            with study.timed("train"):
                ls.analyses.train(run, ls.analyses.TrainSpec(
                    model="resnet", depth=depth, width=cfg["width"], skip=skip, norm="batch",
                    activation=cfg["activation"], loss=cfg["loss"], optimizer=cfg["optimizer"], lr=(cfg["lr"],),
                    batch_size=cfg["batch_size"], steps=cfg["steps"], seeds=cfg["seeds"],
                    log_every=max(1, cfg["steps"] // 20)), overwrite=True)
            with study.timed("hessian"):
                ls.analyses.hessian(run, ls.analyses.HessianSpec(top=1, iters=cfg["lanczos"], probes=1),
                                    overwrite=True)
            with study.timed("surface"):
                ls.analyses.surface(run, ls.analyses.SurfaceSpec(seeds="0", grid=cfg["grid"], span=cfg["span"]),
                                    name="plane_seed0", overwrite=True)
    with study.timed("figures"):
        summary = figures(study.out, cfg)
    study.publish(study.out / "planes.png", "planes")
    study.publish(study.out / "summary.png", "summary")
    return study.finish(summary)


def figures(out: Path, cfg: dict) -> dict:
    """Both figures from the saved results only."""
    import numpy as np

    summary = {}
    for depth in cfg["depths"]:
        for skip in (True, False):
            name = network(depth, skip)
            ens = ls.io.load_run(out / name)
            hess, _ = ls.io.load_result(out / name / "results" / "hessian")
            ok = ~hess["diverged"].astype(bool)
            top, low = hess["top"][ok, 0], hess["smallest"][ok]
            ratio = np.abs(np.minimum(low, 0.0)) / top
            final = ens.history.train_loss[ok, -1]
            summary[name] = {
                "depth": depth, "skip": skip, "seeds": int(ok.sum()),
                "final_train_loss": {"median": float(np.median(final)), "max": float(np.max(final))},
                "test_accuracy_median": float(np.median(ens.history.test_accuracy[ok, -1])),
                "top_eigenvalue_median": float(np.median(top)),
                "smallest_eigenvalue_median": float(np.median(low)),
                "ratio": {"median": float(np.median(ratio)), "q25": float(np.quantile(ratio, 0.25)),
                          "q75": float(np.quantile(ratio, 0.75))},
            }
    depths = np.asarray(cfg["depths"])

    def series(key, skip, stat="median"):
        return [summary[network(d, skip)][key][stat] if isinstance(summary[network(d, skip)][key], dict)
                else summary[network(d, skip)][key] for d in cfg["depths"]]

    ratio_panel = {"ylabel": r"$|\lambda_{min}| / \lambda_{max}$ (median, quartiles)", "series": [
        {"y": series("ratio", s), "lo": series("ratio", s, "q25"), "hi": series("ratio", s, "q75"),
         "label": "skip connections" if s else "no skip connections"} for s in (True, False)]}
    top_panel = {"ylabel": r"top eigenvalue $\lambda_{max}$ (median)", "log_y": True, "series": [
        {"y": series("top_eigenvalue_median", s), "label": "skip" if s else "no skip"} for s in (True, False)]}
    loss_panel = {"ylabel": "final training cost (median)", "log_y": True, "series": [
        {"y": series("final_train_loss", s), "label": "skip" if s else "no skip"} for s in (True, False)]}
    fig = ls.figures.sweep(depths, [ratio_panel, top_panel, loss_panel], xlabel="depth (weighted layers)",
                        xticklabels=[str(d) for d in cfg["depths"]],
                        title=f"ResNets on digits, {cfg['seeds']} seeds each, BatchNorm, {cfg['steps']} steps of "
                              f"{cfg['optimizer']} SGD")
    ls.figures.save_figure(fig, out / "summary.png")

    zs, titles, a, b = [], [], None, None
    for skip in (True, False):
        for depth in cfg["depths"]:
            name = network(depth, skip)
            arrays, meta = ls.io.load_result(out / name / "results" / "plane_seed0")
            surf = ls.surface.Surface.from_arrays(arrays, meta)
            a, b = surf.axes
            zs.append(surf.values["train_loss"])
            titles.append(f"ResNet-{depth}, {'skip' if skip else 'no skip'}: "
                          f"$|\\lambda_{{min}}|/\\lambda_{{max}}$ {summary[name]['ratio']['median']:.2g}")
    fig = ls.figures.small_multiples(a, b, np.stack(zs), titles=titles, columns=len(cfg["depths"]), title_size=7,
                                  labels=ls.figures.Labels(x=r"$\alpha$ (direction 1)", y=r"$\beta$ (direction 2)"))
    ls.figures.save_figure(fig, out / "planes.png")
    return summary


if __name__ == "__main__":
    main()
