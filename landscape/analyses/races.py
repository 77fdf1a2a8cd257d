"""The ``race`` command: optimizers raced from the same starts on a fixed plane, stored.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..core.errors import ConfigError
from ..core.execution import Execution
from ..store import members
from . import common
from .common import Outcome, run_dataset

__all__ = ["RaceSpec", "ADAPTIVE_LR", "race_entrants", "race"]


@dataclasses.dataclass(frozen=True)
class RaceSpec:
    """An optimizer race (:func:`landscape.race.race`) on the plane through three members' minima
    (or a random plane around one), with the run's loss and data.

    Attributes:
      seeds: three seeds (their plane) or one.
      member_lr: the members' learning rate, when the
        run swept several.
      optimizers: comma-separated ``NAME`` or ``NAME@LR`` words (``sgd,momentum,adam@0.003``).
      lr: learning rates for the words without ``@LR``: one for all or one per optimizer; by
        default the run's own for its optimizer, the run's times ``1 − momentum`` for momentum /
        Nesterov after an SGD run (the same effective step size), and 0.01 for Adam, AdamW and
        RMSprop.
      batch_sizes: comma-separated sizes or ``full``; default the run's batch size.
      starts: how many random points of the plane start.
      steps: default the run's.
      snapshot_every: path resolution (default ``steps // 50``).
      grid: the plane.
      margin: the plane.
      span: the plane.
      align: weight-match the minima first (default: when the model states its permutation
        structure).
      key: PRNG seed of the starts, a random plane and minibatch orders.
      statistics: for a model with BatchNorm: ``"recompute"`` (default) or ``"running"``.
      noise: for a model with random layers (dropout): ``None`` evaluates in evaluation mode
        (default); a seed evaluates in training mode with that fixed noise key (a stochastic
        landscape, :func:`landscape.models.with_noise`).

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10, snapshot_every=10))
      >>> r = ls.analyses.race(run, ls.analyses.RaceSpec(optimizers="sgd,adam", starts=2, steps=10, grid=5))
      >>> r.arrays["loss"].shape[:2], r.meta["entrants"]                        # (starts, entrants, ...)
      ((2, 2), ['sgd@0.5', 'adam@0.01'])
    """

    seeds: str = "0,1,2"
    member_lr: float | None = None
    optimizers: str = "sgd,momentum,adam"
    lr: tuple[float, ...] | None = None
    batch_sizes: str | None = None
    starts: int = 4
    steps: int | None = None
    snapshot_every: int | None = None
    grid: int = 41
    margin: float = 0.25
    span: float = 1.0
    align: bool | None = None
    key: int = 0
    statistics: str | None = None
    noise: int | None = None


#: Default learning rates of adaptive optimizers in a race (their usual scale, unlike SGD's).
ADAPTIVE_LR = 0.01


def race_entrants(ens, spec: RaceSpec) -> tuple[list, list]:
    """The race's optimizers and batch sizes from ``spec`` and the run's own training (see
    :class:`RaceSpec` for the defaults).

    Args:
      ens: the loaded run.
      spec: the race's settings.

    Returns:
      ``(optimizer specs, batch sizes)``.

    Raises:
      ConfigError: bad words, a learning-rate list of the wrong length, bad batch sizes.

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10, snapshot_every=10))
      >>> ls.analyses.race_entrants(ens, ls.analyses.RaceSpec(optimizers="sgd,momentum@0.05", batch_sizes="full,16"))
      ([OptimizerSpec(name='sgd', learning_rate=0.5, momentum=0.9, weight_decay=0.0001),
      OptimizerSpec(name='momentum', learning_rate=0.05, momentum=0.9, weight_decay=0.0001)], [None, 16])
    """
    from ..training import optim

    words = [w for w in spec.optimizers.split(",") if w.strip()]
    if not words:
        raise ConfigError("--optimizers needs at least one name")
    if spec.lr is not None and len(spec.lr) not in (1, len(words)):
        raise ConfigError(f"--lr gives {len(spec.lr)} learning rates for {len(words)} optimizers: give one, or one each")
    run_opt = ens.config.get("optimizer", {}).get("spec", {})
    run_lr = float(ens.config.get("learning_rates", [run_opt.get("learning_rate", 1.0)])[0] or 1.0)
    momentum = float(run_opt.get("momentum", 0.9))
    out = []
    for i, word in enumerate(words):
        name = word.strip().partition("@")[0]
        if spec.lr is not None:
            default = spec.lr[0] if len(spec.lr) == 1 else spec.lr[i]
        elif name == run_opt.get("name"):
            default = run_lr
        elif name in ("momentum", "nesterov") and run_opt.get("name") == "sgd":
            default = run_lr * (1 - momentum)
        elif name in ("adam", "adamw", "rmsprop"):
            default = ADAPTIVE_LR
        else:
            default = run_lr
        out.append(optim.parse(word, learning_rate=default, momentum=momentum))
    if spec.batch_sizes is None:
        sizes = [ens.config.get("batch_size")]
    else:
        sizes = []
        for word in spec.batch_sizes.split(","):
            word = word.strip()
            if word == "full":
                sizes.append(None)
                continue
            try:
                sizes.append(int(word))
            except ValueError:
                raise ConfigError(f"--batch-size takes sizes or 'full', got {word!r}") from None
            if sizes[-1] < 1:
                raise ConfigError(f"batch sizes must be positive, got {word}")
    return out, sizes


def race(run, spec: RaceSpec, *, name: str | None = None, overwrite: bool = False,
         execution: Execution = Execution()) -> Outcome:
    """An optimizer race on the run's plane (result kind ``race``): the plane's cost, every
    entrant's paths (projected), their cost against steps; see :class:`landscape.race.Race`.

    Args:
      run: the run directory.
      spec: the settings (:class:`RaceSpec`); everything the numbers depend on.
      name: the result's name under ``RUN/results/`` (default: built from the settings that differ from their defaults).
      overwrite: recompute and replace a saved result (otherwise a current one is reused and one with other
        settings is refused, naming what differs).
      execution: how it runs (progress, devices, chunk size); changes no number.

    Returns:
      an :class:`Outcome` — the arrays, the metadata with its provenance, the path, whether it was reused.

    Raises:
      ConfigError: bad settings, or a saved result of this name computed from something else.

    The same as ``landscape race``.

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10, snapshot_every=10))
      >>> r = ls.analyses.race(run, ls.analyses.RaceSpec(optimizers="sgd", starts=2, steps=10, grid=5))
      >>> r.arrays["paths"].shape[:2]
      (2, 1)
    """
    import jax

    from .. import models
    from ..minima import race as race_mod

    common.single_process("race")
    ens = common.load(run, execution)
    idx, perm_spec = common.plane_members(ens, spec.seeds, spec.member_lr, spec.align, "race")
    optimizers, sizes = race_entrants(ens, spec)
    steps = int(ens.config["steps"] if spec.steps is None else spec.steps)
    if steps < 1 or spec.starts < 1 or spec.grid < 2:
        raise ConfigError("steps and starts must be positive and grid at least 2")
    n_train = ens.config.get("data", {}).get("num_train")  # recorded with the run: the data need not be loaded
    for b in sizes:  # (train_ensemble checks again, after the plane's cost has been computed)
        if b is not None and n_train is not None and b > n_train:
            raise ConfigError(f"batch size {b} exceeds the {n_train} training examples")
    settings = common.settings(ens, {"command": "race", "members": idx, **dataclasses.asdict(spec), "steps": steps,
                               "optimizers": [o.to_dict() for o in optimizers], "batch_sizes": sizes,
                               "align": perm_spec is not None})
    tag = members.tag(ens, idx).replace("seeds", "seed").replace("-", "_")
    default = f"race_{tag}_s{steps}" + common.suffix(key=spec.key or None, **common.modes(spec))

    def compute(res):
        with execution.phase("load"):
            dataset = run_dataset(ens)
        batches = {"train": (dataset.train.x, dataset.train.y)}
        fn = models.metrics_fn(common.model(ens, settings, idx, batches), ens.config["loss"])
        refs = jax.tree_util.tree_map(lambda x: x[np.asarray(idx)], ens.params)
        r = race_mod.race(ens.model, dataset, refs, key=jax.random.key(spec.key), optimizers=optimizers,
                          batch_sizes=sizes, starts=spec.starts, steps=steps, snapshot_every=spec.snapshot_every,
                          loss=ens.config["loss"], grid=spec.grid, margin=spec.margin, span=spec.span,
                          spec=perm_spec, metrics=fn,
                          execution=dataclasses.replace(execution, mesh=None))
        labels, plane, axis_labels = common.plane_words(ens, idx)
        arrays = {"axis_0": r.a, "axis_1": r.b, "cost": r.cost, "points": r.points, "starts": r.starts,
                  "steps": r.steps, "loss": r.loss, "path_steps": r.path_steps, "paths": r.paths,
                  "off_plane": r.off_plane, "diverged": r.diverged}
        return arrays, {"kind": "race", "entrants": r.labels, "point_labels": labels, "loss": ens.config["loss"],
                        "axis_labels": axis_labels, "title": f"optimizer race on the {plane}"}

    return common.stored(run, name or default, settings, overwrite, members.warnings(ens, idx), compute)
