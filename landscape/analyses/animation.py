"""The ``animate`` command: gradient descent on a plane through minima, stored for the lecture animation.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..core.errors import ConfigError
from ..core.execution import Execution
from ..store import members
from . import common
from .common import Outcome, run_dataset

__all__ = ["AnimateSpec", "animate"]


@dataclasses.dataclass(frozen=True)
class AnimateSpec:
    """Gradient descent inside the plane through three members' minima (or a random plane around
    one) from many random starts (:func:`landscape.race.descend_in_plane`), for the lecture
    animation; each path is labelled by the minimum it ends at (:func:`landscape.race.basin_of_ends`).

    Attributes:
      seeds: three seeds or one.
      member_lr: the members' learning rate in a swept run.
      starts: random starting points of the plane.
      steps: descent steps.
      lr: the descent's step size (default: the run's learning rate).
      grid: the plane's grid.
      margin: the plane's grid.
      span: the plane's grid.
      align: weight-match the minima first (default:
        when the model states its permutation structure).
      key: PRNG seed of the starts.
      statistics: for a model with BatchNorm: ``"recompute"`` (default) or ``"running"``.
      noise: for a model with random layers (dropout): ``None`` evaluates in evaluation mode
        (default); a seed evaluates in training mode with that fixed noise key (a stochastic
        landscape, :func:`landscape.models.with_noise`).

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10, snapshot_every=10))
      >>> d = ls.analyses.animate(run, ls.analyses.AnimateSpec(starts=3, steps=20, grid=5))
      >>> d.arrays["paths"].shape                                               # (starts, steps + 1, 2)
      (3, 21, 2)
    """

    seeds: str = "0,1,2"
    member_lr: float | None = None
    starts: int = 40
    steps: int = 1000
    lr: float | None = None
    grid: int = 61
    margin: float = 0.6
    span: float = 1.0
    align: bool | None = None
    key: int = 7
    statistics: str | None = None
    noise: int | None = None


def animate(run, spec: AnimateSpec, *, name: str | None = None, overwrite: bool = False,
            execution: Execution = Execution()) -> Outcome:
    """In-plane gradient descent from ``spec.starts`` points (result kind ``descent``): the plane's
    cost ``(G, G)``, the paths ``(S, steps + 1, 2)``, each path's final cost and basin.

    Args:
      run: the run directory.
      spec: the settings (:class:`AnimateSpec`); everything the numbers depend on.
      name: the result's name under ``RUN/results/`` (default: built from the settings that differ from their defaults).
      overwrite: recompute and replace a saved result (otherwise a current one is reused and one with other
        settings is refused, naming what differs).
      execution: how it runs (progress, devices, chunk size); changes no number.

    Returns:
      an :class:`Outcome` — the arrays, the metadata with its provenance, the path, whether it was reused.

    Raises:
      ConfigError: bad settings, or a saved result of this name computed from something else.

    The same as ``landscape animate``.

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10, snapshot_every=10))
      >>> d = ls.analyses.animate(run, ls.analyses.AnimateSpec(starts=3, steps=20, grid=5))
      >>> d.arrays["cost"].shape
      (5, 5)
    """
    import jax

    from .. import minima, models
    from ..data import Split
    from ..minima import race as race_mod

    common.single_process("animate")
    ens = common.load(run, execution)
    idx, perm_spec = common.plane_members(ens, spec.seeds, spec.member_lr, spec.align, "animate")
    lr = spec.lr if spec.lr is not None else float(ens.learning_rates[idx[0]])
    if not np.isfinite(lr):
        lr = float(ens.config.get("optimizer", {}).get("spec", {}).get("learning_rate", np.nan))
    if not (np.isfinite(lr) and lr > 0):
        raise ConfigError("the run records no learning rate: give the descent's step size with --lr")
    settings = common.settings(ens, {"command": "animate", "members": idx, **dataclasses.asdict(spec), "lr": lr,
                               "align": perm_spec is not None})
    tag = members.tag(ens, idx).replace("seeds", "seed").replace("-", "_")
    default = f"descent_{tag}_n{spec.starts}_s{spec.steps}" + common.suffix(key=None if spec.key == 7 else spec.key,
                                                                      **common.modes(spec))

    def compute(res):
        from ..geometry import surface as surface_mod

        with execution.phase("load"):
            dataset = run_dataset(ens)
        batches = {"train": (dataset.train.x, dataset.train.y)}
        model = common.model(ens, settings, idx, batches)
        refs = jax.tree_util.tree_map(lambda x: x[np.asarray(idx)], ens.params)
        key = jax.random.key(spec.key)
        _, origin, basis, a, b, points = minima.plane_of(refs, grid=spec.grid, margin=spec.margin, span=spec.span,
                                                         key=jax.random.fold_in(key, 1), spec=perm_spec)
        aa, bb = np.meshgrid(a, b, indexing="ij")
        cost = surface_mod.evaluate(models.metrics_fn(model, ens.config["loss"]), origin, basis,
                                    np.stack([aa.ravel(), bb.ravel()], 1), data=batches["train"],
                                    execution=Execution(chunk_size=execution.chunk_size))["loss"].reshape(a.size,
                                    b.size)
        starts = race_mod.plane_points(key, a, b, spec.starts, inset=0.0)
        loss = models.loss_fn(model, Split(*batches["train"]), ens.config["loss"])
        paths = race_mod.descend_in_plane(loss, origin, basis, starts, lr=lr, steps=spec.steps)
        ends = paths[:, -1]
        final = np.asarray(jax.vmap(loss)(minima.on_plane(origin, basis, ends)))
        labels, plane, axis_labels = common.plane_words(ens, idx)
        arrays = {"axis_0": a, "axis_1": b, "cost": cost, "points": points, "paths": paths, "final_loss": final,
                  "basin": race_mod.basin_of_ends(ends, points)}
        return arrays, {"kind": "descent", "point_labels": labels, "lr": lr, "steps": spec.steps,
                        "loss": ens.config["loss"], "axis_labels": axis_labels,
                        "title": f"gradient descent in the {plane}"}

    return common.stored(run, name or default, settings, overwrite, members.warnings(ens, idx), compute)
