"""Study 8 — which sharpness predicts generalisation? Every measure over a grid of networks on the digits.

A grid of relu networks with cross-entropy, trained by SGD on the bundled digits: seeds ×
learning rate × batch size × width, one ensemble per (width, batch size) with every learning
rate and seed in it.  At every network's final parameters: every measure of
``landscape sharpness`` (worst-case, adaptive worst-case, m-sharpness, average-case, adaptive
average-case, PAC-Bayes and adaptive PAC-Bayes σ — used as ``1/σ²``, larger is sharper —,
Fisher–Rao norm, top Hessian eigenvalue, trace) and the generalisation gap (test minus train,
for the loss and for the error).  Then Kendall's τ of each measure with each gap, Jiang et
al. 2019's granulated τ (per hyper-parameter with the others fixed, then averaged), and the
spread of τ over seeds (τ within each seed's grid of networks).

Dinh et al. 2017's experiment: one trained network, its first layer multiplied by α and the
second layer's weights by 1/α (the same function); every measure against α.

    python experiments/sharpness_generalisation.py          # about 10 minutes on 2 CPU cores
    python experiments/sharpness_generalisation.py --quick  # a smoke test, about a minute

The digits have 1,797 images (1,347 train): gaps are small and noisy, 108 networks span a
narrow range of hyper-parameters, and each τ has a spread that the figures show.  This is a
demonstration of the method at a scale a laptop runs, not a verdict on the question.

Figures: ``figures/sharpness_generalisation_tau.png`` (τ per measure),
``figures/sharpness_generalisation_scatter.png`` (measures against the gap) and
``figures/sharpness_generalisation_rescaling.png`` (Dinh et al.'s rescaling); results under
``runs/sharpness_generalisation/<network>``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from study import Study, parser  # noqa: E402

import landscape as ls  # noqa: E402

# --- configuration -------------------------------------------------------------------------
CONFIG = {
    "widths": [16, 64],                 # one hidden layer of this width
    "batch_sizes": [32, 256],           # SGD mini-batches
    "lrs": [0.02, 0.1, 0.5],
    "seeds": 9,                         # 2 x 2 x 3 x 9 = 108 networks
    "steps": 1500, "activation": "relu", "loss": "cross_entropy",
    "sharpness": {"rho": 0.05, "adaptive_rho": 0.5, "sigma": 0.01, "adaptive_sigma": 0.1, "batch_size": 128,
                  "steps": 20, "samples": 32, "target": 0.1},
    "alphas": [0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0],
}
QUICK = {**CONFIG, "widths": [4, 8], "batch_sizes": [32, 128], "lrs": [0.05, 0.5], "seeds": 3, "steps": 100,
         "sharpness": {**CONFIG["sharpness"], "steps": 3, "samples": 4}, "alphas": [0.5, 1.0, 2.0]}

# measures that grow with flatness enter the correlations as 1/σ² (Jiang et al.'s orientation)
FLATNESS = ("pac-bayes", "adaptive-pac-bayes")


def main(argv=None) -> dict:
    args = parser(__doc__, "sharpness_generalisation").parse_args(argv)
    cfg = QUICK if args.quick else CONFIG
    study = Study("sharpness_generalisation", args, cfg)
    spec = ls.analyses.SharpnessSpec(measures=ls.sharpness.MEASURES, **cfg["sharpness"])
    nets = []
    for width in cfg["widths"]:
        for batch in cfg["batch_sizes"]:
            run = study.out / f"w{width}_b{batch}"
            with study.timed("train"):
                ls.analyses.train(run, ls.analyses.TrainSpec(
                    hidden=(width,), activation=cfg["activation"], loss=cfg["loss"], lr=tuple(cfg["lrs"]),
                    steps=cfg["steps"], batch_size=batch, seeds=cfg["seeds"]), overwrite=True)
            with study.timed("sharpness"):
                ls.analyses.sharpness(run, spec, overwrite=True)
            nets.append((run, width, batch))
    with study.timed("rescaling"):
        rescaling(study.out / "rescaling.json", nets[0][0], cfg)
    with study.timed("figures"):
        summary = figures(study.out, nets, cfg)
    for name in ("tau", "scatter", "rescaling"):
        study.publish(study.out / f"{name}.png", name)
    return study.finish(summary)


def rescaling(path: Path, run: Path, cfg: dict) -> None:
    """Every measure of one network (the middle learning rate, first seed) under Dinh et al.'s
    rescaling by each α; saved as JSON (the figure reads it)."""
    import json

    import jax
    import numpy as np

    ens = ls.load_run(run)
    member = int(np.flatnonzero(np.isclose(ens.learning_rates, cfg["lrs"][len(cfg["lrs"]) // 2]))[0])
    theta = ens.member(member)
    loss = ls.models.loss_fn(ens.model, ls.analyses.run_dataset(ens).train, cfg["loss"])
    first, second = ls.hessian.layers(theta)[:2]
    kernel = next(p for p in ls.tree.key_paths(theta) if p.startswith(second + "/") and p.endswith("kernel"))
    s = cfg["sharpness"]
    key = jax.random.key(0)
    out = {"alphas": cfg["alphas"], "member": member, "layers": [first, kernel], "measures": {}}
    for alpha in cfg["alphas"]:
        p = ls.sharpness.rescale(theta, {first: alpha, kernel: 1.0 / alpha})
        values = {
            "worst": ls.sharpness.worst_case(loss, p, rho=s["rho"], steps=s["steps"], key=key),
            "adaptive-worst": ls.sharpness.worst_case(loss, p, rho=s["adaptive_rho"], adaptive=True, steps=s["steps"],
                                                      key=key),
            "average": ls.sharpness.average_case(loss, p, sigma=s["sigma"], samples=s["samples"], key=key).value,
            "adaptive-average": ls.sharpness.average_case(loss, p, sigma=s["adaptive_sigma"], samples=s["samples"],
                                                          key=key, adaptive=True).value,
            "pac-bayes": ls.sharpness.pac_bayes_sigma(loss, p, target=s["target"], samples=s["samples"], key=key).value,
            "adaptive-pac-bayes": ls.sharpness.pac_bayes_sigma(loss, p, target=s["target"], samples=s["samples"],
                                                               key=key, adaptive=True).value,
            "fisher-rao": ls.sharpness.fisher_rao_norm(loss, p),
            "lmax": ls.hessian.top_eigenvalues(loss, p, 1, key=key)[0],
            "loss": loss(p),
        }
        for k, v in values.items():
            out["measures"].setdefault(k, []).append(float(v))
    path.write_text(json.dumps(out, indent=2))


def _table(nets):
    """Every network's measures, gaps and grid coordinates, from the saved results."""
    import numpy as np

    rows = {}
    for run, width, batch in nets:
        arrays, _ = ls.io.load_result(run / "results" / "sharpness")
        n = len(arrays["seeds"])
        cols = {"width": np.full(n, width), "batch": np.full(n, batch), "lr": arrays["learning_rates"],
                "seed": arrays["seeds"],
                "loss_gap": arrays["test_loss"] - arrays["train_loss"],
                "error_gap": arrays["train_accuracy"] - arrays["test_accuracy"],
                "ok": ~arrays["diverged"].astype(bool) & arrays["learned"].astype(bool)}
        for m in ls.sharpness.MEASURES:
            v = arrays[m].astype(float)
            cols[m] = 1.0 / v**2 if m in FLATNESS else v
        for k, v in cols.items():
            rows.setdefault(k, []).append(np.asarray(v))
    return {k: np.concatenate(v) for k, v in rows.items()}


def figures(out: Path, nets, cfg: dict) -> dict:
    """The three figures and the summary, from the saved results only."""
    import json

    import matplotlib
    import matplotlib.ticker
    import numpy as np

    t = _table(nets)
    ok = t["ok"]
    hp = {"lr": t["lr"][ok], "batch": t["batch"][ok], "width": t["width"][ok]}
    summary = {"networks": int(ok.size), "learned": int(ok.sum()), "measures": {}}
    for m in ls.sharpness.MEASURES:
        entry = {}
        for gap in ("loss_gap", "error_gap"):
            per_seed = [ls.sharpness.kendall_tau(t[m][ok & (t["seed"] == s)], t[gap][ok & (t["seed"] == s)])
                        for s in np.unique(t["seed"])]
            per_seed = [v for v in per_seed if np.isfinite(v)]
            gran = ls.sharpness.granulated_tau(t[m][ok], t[gap][ok], hp)
            entry[gap] = {"tau": ls.sharpness.kendall_tau(t[m][ok], t[gap][ok]),
                          "tau_seed_mean": float(np.mean(per_seed)) if per_seed else float("nan"),
                          "tau_seed_std": float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else float("nan"),
                          "granulated": gran}
        summary["measures"][m] = entry

    titles = ls.figures.SHARPNESS_TITLES
    names = [titles[m].replace(" (larger: flatter)", " → 1/σ²") for m in ls.sharpness.MEASURES]
    with matplotlib.rc_context(ls.figures.style()):
        fig = matplotlib.figure.Figure(figsize=(7.0, 3.6), layout="constrained")
        axes = fig.subplots(1, 2, sharey=True)
        y = np.arange(len(names))
        for ax, gap, label in zip(axes, ("loss_gap", "error_gap"), ("loss gap (test − train)", "error gap")):
            e = [summary["measures"][m][gap] for m in ls.sharpness.MEASURES]
            ax.barh(y - 0.2, [v["tau"] for v in e], 0.35, color="tab:blue", label="τ over all networks")
            ax.errorbar([v["tau_seed_mean"] for v in e], y - 0.2, xerr=[v["tau_seed_std"] for v in e], fmt="o", ms=2,
                        color="black", lw=0.8, label="τ within a seed: mean ± sd")
            ax.barh(y + 0.2, [v["granulated"]["granulated"] for v in e], 0.35, color="tab:orange",
                    label="granulated Ψ (Jiang et al.)")
            ax.axvline(0, color="grey", lw=0.6)
            ax.set_xlim(-1, 1)
            ax.set_title(label)
            ax.set_xlabel("Kendall τ with the gap")
        axes[0].set_yticks(y, names)
        axes[0].invert_yaxis()
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, frameon=False, fontsize=6, loc="outside lower center", ncol=3)
        fig.suptitle(f"sharpness vs generalisation: {int(ok.sum())} networks on the digits "
                     f"({len(cfg['widths'])} widths × {len(cfg['batch_sizes'])} batch sizes × {len(cfg['lrs'])} "
                     f"learning rates × {cfg['seeds']} seeds)", fontsize=8)
    ls.figures.save_figure(fig, out / "tau.png")

    shown = ["worst", "adaptive-worst", "average", "adaptive-pac-bayes", "fisher-rao", "lmax"]
    lrs = sorted(set(np.round(t["lr"], 12)))
    with matplotlib.rc_context(ls.figures.style()):
        fig = matplotlib.figure.Figure(figsize=(7.0, 4.2), layout="constrained")
        axes = fig.subplots(2, 3).ravel()
        colors = matplotlib.colormaps["viridis"](np.linspace(0.1, 0.85, len(lrs)))
        markers = {w: mk for w, mk in zip(cfg["widths"], "os^D")}
        for ax, m in zip(axes, shown):
            for i, lr in enumerate(lrs):
                for w in cfg["widths"]:
                    sel = ok & np.isclose(t["lr"], lr) & (t["width"] == w)
                    ax.scatter(t[m][sel], t["loss_gap"][sel], s=9, color=colors[i], marker=markers[w],
                               label=f"lr {lr:g}, width {w}")
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # short spans: no crowded labels
            tau = summary["measures"][m]["loss_gap"]["tau"]
            ax.set_title(f"{names[ls.sharpness.MEASURES.index(m)]}  (τ = {tau:.2f})", fontsize=7)
        axes[0].set_ylabel("loss gap")
        axes[3].set_ylabel("loss gap")
        axes[0].legend(frameon=False, fontsize=5)
    ls.figures.save_figure(fig, out / "scatter.png")

    r = json.loads((out / "rescaling.json").read_text())
    a = np.asarray(r["alphas"])
    one = list(r["alphas"]).index(1.0)
    with matplotlib.rc_context(ls.figures.style()):
        fig = matplotlib.figure.Figure(figsize=(3.6, 2.8), layout="constrained")
        ax = fig.subplots()
        for m, v in r["measures"].items():
            v = np.asarray(v) / v[one]
            v = np.where(v > 0, v, np.nan)  # a noisy estimate below zero has no place on a log axis
            style = "--" if m.startswith("adaptive") or m in ("loss", "fisher-rao") else "-"
            ax.plot(a, v, style, marker="o", ms=3, label="training loss" if m == "loss" else titles[m])
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("α (first layer × α, second layer's weights × 1/α)")
        ax.set_ylabel("measure / measure at α = 1")
        ax.legend(frameon=False, fontsize=5)
        ax.set_title("Dinh et al.'s rescaling: the same function", fontsize=8)
    ls.figures.save_figure(fig, out / "rescaling.png")
    summary["rescaling"] = {m: {"min_ratio": float(np.min(np.asarray(v) / v[one])),
                                "max_ratio": float(np.max(np.asarray(v) / v[one]))} for m, v in r["measures"].items()}
    return summary


if __name__ == "__main__":
    main()
