"""Study 4 — an animation for lectures: many random starts descending on a 2-D slice.

The slice is the plane through three trained minima of the classic digits network (the
squared-difference cost, sigmoid units), so it holds three valleys separated by ridges.
Gradient descent is then run *inside that plane* from many random starting points: every
step follows the projection of the true gradient onto the plane, so the dots move on exactly
the surface that is drawn, and different starts visibly settle into different valleys.

    python experiments/descent_animation.py          # about 2 minutes on 2 CPU cores
    python experiments/descent_animation.py --quick  # a smoke test, under a minute

Writes ``figures/descent_animation.mp4`` when ffmpeg is installed, else a GIF (Pillow), and a
still of the whole paths, each coloured by the minimum it ends at; results (slice and paths)
under ``runs/descent_animation``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from study import Study, parser, widths  # noqa: E402

import landscape as ls  # noqa: E402

# --- configuration -------------------------------------------------------------------------
CONFIG = {
    "hidden": "16,16", "activation": "sigmoid", "loss": "mse", "lr": 3.0, "steps": 2000, "seeds": 3,
    "grid": 61,           # slice resolution
    "margin": 0.6,        # slice extends this fraction of the triangle's size beyond it
    "starts": 40,         # random starting points in the plane
    "descent_lr": 3.0,    # step size of the in-plane gradient descent (the training one)
    "descent_steps": 1000,
    "frames": 90,
    "settled": 0.1,       # a start has settled in a valley when its loss ends below this
    "format": "gif",      # "mp4" (needs ffmpeg; falls back to GIF) or "gif"
}
QUICK = {**CONFIG, "steps": 150, "grid": 15, "starts": 6, "descent_steps": 20, "frames": 5}


def main(argv=None) -> dict:
    args = parser(__doc__, "descent_animation").parse_args(argv)
    cfg = QUICK if args.quick else CONFIG
    study = Study("descent_animation", args, cfg)
    run = study.out / "run"
    with study.timed("train"):
        ls.analyses.train(run, ls.analyses.TrainSpec(hidden=widths(cfg["hidden"]), activation=cfg["activation"],
                                                     loss=cfg["loss"], lr=(cfg["lr"],), steps=cfg["steps"],
                                                     seeds=cfg["seeds"]), overwrite=True)
    with study.timed("slice and descent"):
        compute(run, cfg)
    with study.timed("animation"):
        summary = draw(run, cfg)
    study.publish(Path(summary.pop("animation")), "")
    study.publish(run / "figures" / "descent_final.png", "final")
    return study.finish(summary)


def compute(run: Path, cfg: dict) -> None:
    """The slice (saved) and the in-plane descent paths of every start (saved)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    import landscape as ls

    ens = ls.load_run(run)
    data = ls.data.load("digits")
    fn = ls.models.metrics_fn(ens.model, ens.config["loss"])
    thetas = [ens.member(i) for i in range(3)]
    surf = ls.surface.three_point(fn, *thetas, num=cfg["grid"], margin=cfg["margin"],
                                  data={"train": (data.train.x, data.train.y)})
    ls.io.save_result(run / "results" / "slice", surf.to_arrays(), {**surf.meta, "kind": surf.kind})

    plane = ls.directions.three_point_plane(*thetas)
    basis = [plane.u, plane.v]
    loss = ls.models.loss_fn(ens.model, data.train, ens.config["loss"])
    a, b = surf.axes
    key = jax.random.key(7)
    starts = jax.random.uniform(key, (cfg["starts"], 2), minval=jnp.array([a.min(), b.min()]),
                                maxval=jnp.array([a.max(), b.max()]))
    # (starts, steps + 1, 2): the library's in-plane descent, as `landscape animate` runs it
    paths = ls.race.descend_in_plane(loss, plane.origin, basis, np.asarray(starts), lr=cfg["descent_lr"],
                                     steps=cfg["descent_steps"])
    final = np.asarray(jax.vmap(loss)(ls.minima.on_plane(plane.origin, basis, paths[:, -1])))
    ls.io.save_result(run / "results" / "descent", {"paths": paths, "final_loss": final},
                      {"kind": "descent", "lr": cfg["descent_lr"], "steps": cfg["descent_steps"]})


def draw(run: Path, cfg: dict) -> dict:
    """The animation and a still, from the saved slice and paths only."""
    import numpy as np

    import landscape as ls

    arrays, meta = ls.io.load_result(run / "results" / "slice")
    surf = ls.surface.Surface.from_arrays(arrays, meta)
    desc, _ = ls.io.load_result(run / "results" / "descent")
    paths = desc["paths"]
    frames = np.unique(np.round(np.geomspace(1, paths.shape[1], cfg["frames"])).astype(int) - 1)
    a, b = surf.axes
    z = surf.values["train_loss"]
    minima = dict(zip(["seed 0", "seed 1", "seed 2"], surf.extras["points"]))
    anim = ls.figures.descent_animation(a, b, z, paths[:, frames], steps=frames, points=minima,
                                     labels=ls.figures.Labels(title="gradient descent in the plane of three minima"))
    out = ls.figures.save_animation(anim, run / "figures" / f"descent_animation.{cfg['format']}")
    # the still as `landscape animate` draws it: each path coloured by the minimum it ends at
    last = ls.figures.descent_paths(a, b, z, paths, ls.race.basin_of_ends(paths[:, -1], surf.extras["points"]),
                                 points=minima,
                                 labels=ls.figures.Labels(x="distance along $u$", y="distance along $v$",
                                                          title=f"{paths.shape[0]} starts after {paths.shape[1] - 1} steps"))
    ls.figures.save_figure(last, run / "figures" / "descent_final.png")
    # which valley each start settled in (the minimum it ended nearest to, when its loss is low)
    ends = paths[:, -1]
    nearest = np.argmin(np.linalg.norm(ends[:, None] - surf.extras["points"][None], axis=-1), axis=1)
    settled = desc["final_loss"] < cfg["settled"]
    return {"animation": str(out), "starts": int(paths.shape[0]),
            "ended_nearest_minimum": np.bincount(nearest, minlength=3).tolist(),
            "settled_per_minimum": np.bincount(nearest[settled], minlength=3).tolist(),
            "final_loss": {"min": float(desc["final_loss"].min()), "max": float(desc["final_loss"].max())}}


if __name__ == "__main__":
    main()
