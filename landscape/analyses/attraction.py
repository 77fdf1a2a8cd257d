"""The ``basins`` command: basins of attraction on the plane through three minima, stored.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..core.errors import ConfigError
from ..core.execution import Execution
from ..store import members
from . import common
from .common import Outcome, run_dataset

__all__ = ["BasinsSpec", "basins"]


@dataclasses.dataclass(frozen=True)
class BasinsSpec:
    """A basin-of-attraction map: every point of the plane through three members' minima (or of a
    random filter-normalised plane around one) is a start, trained with the run's optimizer, loss,
    data and batch size, and labelled by the minimum it ends in
    (:func:`landscape.minima.basins_of_attraction`).

    Attributes:
      seeds: three seeds (their plane) or one (a random plane around it).
      lr: the learning rate
        of the members, when the run swept several (also the starts' learning rate).
      grid: starts per axis (``grid²`` in all).
      steps: training steps of every start (default:
        the run's).
      margin: the three-point grid's margin.
      span: the random plane's half-width.
      tol: the barrier (loss units) below which an end point belongs to a minimum's basin
        (default: half the smallest barrier between the three minima; 0.05 with one).
      align: align the minima, and each end point to each minimum, by weight matching first
        (default: when the model states its permutation structure).
      key: PRNG seed of the training's minibatch orders and a random plane's directions.
      statistics: for a model with BatchNorm: ``"recompute"`` (default) or ``"running"``.
      noise: for a model with random layers (dropout): ``None`` evaluates in evaluation mode
        (default); a seed evaluates in training mode with that fixed noise key (a stochastic
        landscape, :func:`landscape.models.with_noise`).

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10, snapshot_every=10))
      >>> b = ls.analyses.basins(run, ls.analyses.BasinsSpec(seeds="0,1,2", grid=3, steps=10))
      >>> b.arrays["labels"].shape
      (3, 3)
    """

    seeds: str = "0,1,2"
    lr: float | None = None
    grid: int = 41
    steps: int | None = None
    margin: float = 0.25
    span: float = 1.0
    tol: float | None = None
    align: bool | None = None
    key: int = 0
    statistics: str | None = None
    noise: int | None = None


def basins(run, spec: BasinsSpec, *, name: str | None = None, overwrite: bool = False,
           execution: Execution = Execution()) -> Outcome:
    """The basin-of-attraction map of ``spec`` (result kind ``basins``): labels, the costs at the
    starts and ends, distances and barriers; see :class:`landscape.minima.BasinMap`.

    Args:
      run: the run directory.
      spec: the settings (:class:`BasinsSpec`); everything the numbers depend on.
      name: the result's name under ``RUN/results/`` (default: built from the settings that differ from their defaults).
      overwrite: recompute and replace a saved result (otherwise a current one is reused and one with other
        settings is refused, naming what differs).
      execution: how it runs (progress, devices, chunk size); changes no number.

    Returns:
      an :class:`Outcome` — the arrays, the metadata with its provenance, the path, whether it was reused.

    Raises:
      ConfigError: bad settings, or a saved result of this name computed from something else.

    The same as ``landscape basins``.

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10, snapshot_every=10))
      >>> b = ls.analyses.basins(run, ls.analyses.BasinsSpec(seeds="0,1,2", grid=3, steps=10))
      >>> round(float(b.arrays["fractions"].sum()), 6)                        # every start labelled once
      1.0
    """
    import jax

    from .. import minima, models
    from ..training import optim

    common.single_process("basins")
    ens = common.load(run, execution)
    idx, perm_spec = common.plane_members(ens, spec.seeds, spec.lr, spec.align, "basins")
    steps = int(ens.config["steps"] if spec.steps is None else spec.steps)
    if steps < 1:
        raise ConfigError(f"steps must be positive, got {steps}")
    if spec.grid < 2:
        raise ConfigError(f"grid must be at least 2, got {spec.grid}")
    opt_cfg = ens.config.get("optimizer", {})
    if "spec" not in opt_cfg:
        raise ConfigError("basins retrains from the run's optimizer, but this run's optimizer is not a named "
                          "one (an optax object or a factory was passed to train_ensemble): train it with "
                          "an OptimizerSpec")
    opt = optim.OptimizerSpec.from_dict(opt_cfg["spec"])
    lr = float(ens.learning_rates[idx[0]])
    if np.isfinite(lr):
        opt = dataclasses.replace(opt, learning_rate=lr)
    settings = common.settings(ens, {"command": "basins", "members": idx, **dataclasses.asdict(spec), "steps": steps,
                               "align": perm_spec is not None, "optimizer": opt.to_dict()})
    tag = members.tag(ens, idx).replace("seeds", "seed").replace("-", "_")
    default = (f"basins_{tag}_g{spec.grid}_s{steps}"
               + common.suffix(key=spec.key or None, tol=None if spec.tol is None else f"{spec.tol:g}",
                         **common.modes(spec)))

    def compute(res):
        with execution.phase("load"):
            dataset = run_dataset(ens)
        batches = {"train": (dataset.train.x, dataset.train.y)}
        fn = models.metrics_fn(common.model(ens, settings, idx, batches), ens.config["loss"])
        refs = jax.tree_util.tree_map(lambda x: x[np.asarray(idx)], ens.params)
        bm = minima.basins_of_attraction(
            ens.model, dataset, refs, key=jax.random.key(spec.key), optimizer=opt, loss=ens.config["loss"],
            steps=steps, batch_size=ens.config.get("batch_size"), grid=spec.grid, margin=spec.margin,
            span=spec.span, spec=perm_spec, tol=spec.tol, metrics=fn,
            execution=dataclasses.replace(execution, mesh=None))
        labels, plane, axis_labels = common.plane_words(ens, idx)
        arrays = {"axis_0": bm.a, "axis_1": bm.b, "labels": bm.labels, "start_loss": bm.start_loss,
                  "final_loss": bm.final_loss, "distance": bm.distance, "barrier": bm.barrier, "ends": bm.ends,
                  "points": bm.points, "fractions": bm.fractions, "reference_barriers": bm.reference_barriers}
        return arrays, {"kind": "basins", "point_labels": labels, "seeds": [int(ens.seeds[i]) for i in idx],
                        "loss": ens.config["loss"], "steps": steps, "tol": bm.tol, "tol_given": spec.tol is not None,
                        "optimizer": opt.to_dict(), "aligned": perm_spec is not None,
                        "axis_labels": axis_labels, "title": f"basins of attraction\n{plane}"}

    return common.stored(run, name or default, settings, overwrite, members.warnings(ens, idx), compute)
