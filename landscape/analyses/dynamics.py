"""The ``spawn`` command: children spawned from a run's snapshots, saved as a run directory of their
own, and the instability result stored in it (Frankle et al. 2020).
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path

import numpy as np

from ..core.errors import ConfigError
from ..core.execution import Execution
from ..store import members
from . import common
from .common import Outcome

__all__ = ["SpawnSpec", "spawn"]


@dataclasses.dataclass(frozen=True)
class SpawnSpec:
    """Children spawned from a run's snapshots and the instability between them
    (:func:`landscape.train.spawn`, :func:`landscape.minima.instability`).

    Attributes:
      at: the spawn steps (each a snapshot step of the run).
      children: children per parent and spawn step (every pair's barrier is measured).
      steps: training steps of every child (default: the run's).
      seeds: the parents: ``"all"`` or comma-separated seeds.
      lr: the parents' learning rate (required when the run swept several).
      batch_size: the children's minibatch size (default: the run's; it must have one).
      key: the root PRNG seed of the children's data orders.
      log_every: the children's history interval (default: their steps).
      grid: points on each straight line between two children.
      threshold: the test-error barrier below which a spawn step counts as stable (Frankle et
        al. 2020 use 2 % of test error).
      statistics: for a model with BatchNorm: ``"recompute"`` (default) or ``"running"``.
      noise: for a model with random layers (dropout): ``None`` evaluates in evaluation mode
        (default); a seed evaluates in training mode with that fixed noise key (a stochastic
        landscape, :func:`landscape.models.with_noise`).

    Examples:
      >>> spec = ls.analyses.SpawnSpec(at=(0, 50, 100), children=2, steps=500)
      >>> spec.seeds, spec.grid, spec.threshold
      ('all', 25, 0.02)
    """

    at: tuple[int, ...] = ()
    children: int = 2
    steps: int | None = None
    seeds: str = "all"
    lr: float | None = None
    batch_size: int | None = None
    key: int = 0
    log_every: int | None = None
    grid: int = 25
    threshold: float = 0.02
    statistics: str | None = None
    noise: int | None = None


def spawn(run, spec: SpawnSpec, out, *, overwrite: bool = False, execution: Execution = Execution()) -> Outcome:
    """Spawn children from ``run``'s snapshots into the run directory ``out`` and store the
    instability result ``out/results/instability``.

    ``out`` is a run directory (:func:`landscape.load_run`) whose members are ordered by
    parent, spawn step, child (child fastest); its ``meta.json`` says what it was spawned
    from (``spawned_from``: the parents' parameters' hash, data set and these settings).  A
    second call with the same inputs reuses the children (and a current result); after a kill
    during training nothing of ``out`` exists (it is written whole), after a kill during the
    barriers the children are kept and the barriers resume from their checkpoint.

    Args:
      run: the parents' run directory (trained with snapshots at the spawn steps).
      spec: the settings (:class:`SpawnSpec`).
      out: the children's run directory.
      overwrite: replace children (and a result) spawned with other settings.
      execution: how it runs (progress, devices, chunk size); changes no number.

    Returns:
      the instability :class:`Outcome` (``outcome.run`` is ``out``): ``spawn_steps (S,)``,
      ``parent_seeds (P,)``, ``pairs (Q, 2)``, ``loss_barrier`` / ``error_barrier`` and their
      ``_chord`` forms ``(P, S, Q)`` (NaN for a pair with a diverged child),
      ``loss_instability`` / ``error_instability (P, S)`` (mean over pairs) with their
      ``_median``, ``_q25``, ``_q75 (S,)`` over parents — all on the training set, and the same
      on the test set prefixed ``test_`` (``test_error_instability``) — and the children's
      ``final_train_loss``, ``final_train_accuracy``, ``final_test_accuracy``,
      ``diverged (P, S, C)``.

    Raises:
      ConfigError: bad settings, a spawn step without a snapshot, ``out`` holding children of
        other settings without ``overwrite``, another process spawning into ``out``.

    The same as ``landscape spawn``.

    Examples:
      >>> import tempfile
      >>> tmp = tempfile.mkdtemp()
      >>> ens = ls.analyses.train(tmp + "/run", ls.analyses.TrainSpec(
      ...     dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,), steps=40, seeds=2, log_every=10,
      ...     snapshot_every=10, batch_size=16))
      >>> o = ls.analyses.spawn(tmp + "/run", ls.analyses.SpawnSpec(at=(0, 20), children=2, steps=20, grid=5),
      ...                       tmp + "/kids")
      >>> o.arrays["error_instability"].shape, ls.load_run(tmp + "/kids").num_members     # (parents, steps)
      ((2, 2), 8)
    """
    import jax

    from .. import minima, models
    from ..core import distributed, files
    from ..store import results
    from ..store import runs as io
    from ..training import children as spawning

    common.single_process("spawn")
    ens = common.load(run, execution)
    if spec.seeds == "all" and spec.lr is None and members.swept(ens):
        raise ConfigError("the run swept several learning rates: choose the parents' with --lr")
    idx = members.select(ens, spec.seeds, spec.lr)
    if spec.grid < 2:
        raise ConfigError(f"grid must be at least 2, got {spec.grid}")
    if not (np.isfinite(spec.threshold) and spec.threshold >= 0):
        raise ConfigError(f"threshold must be finite and >= 0, got {spec.threshold}")
    steps = int(ens.config["steps"] if spec.steps is None else spec.steps)
    at = tuple(int(s) for s in spec.at)
    training = {"command": "spawn", "parents": idx, "at": at, "children": spec.children, "steps": steps,
                "batch_size": spec.batch_size, "key": spec.key, "log_every": spec.log_every}
    origin = results.provenance(run, training)
    out = Path(out)
    warn = members.warnings(ens, idx)
    lock = contextlib.nullcontext()
    if distributed.is_writer():
        files.check_writable(out.parent)
        lock = files.exclusive(out.parent / f".{out.name}.landscape-lock",
                               f"another command is spawning or training into {out} right now")
    with lock:
        kids = None
        if (out / io.META).exists():
            saved = io.read_meta(out).get("spawned_from")
            if saved == origin:
                kids = io.load_run(out, model=execution.model)
            elif not overwrite:
                what = "; ".join(results.differences(saved, origin)) if isinstance(saved, dict) else "not spawned"
                raise ConfigError(f"{out} holds children spawned from other inputs ({what} differ); pass --overwrite "
                                  "to replace them")
        elif out.exists() and not overwrite:
            raise ConfigError(f"{out} exists and is not a spawned run; pass --overwrite to replace it")
        if kids is None:
            with execution.phase("load"):
                dataset = common.run_dataset(ens)
            kids = spawning.spawn(ens, dataset, at=at, children=spec.children, steps=steps, key=jax.random.key(spec.key),
                                  parents=idx, batch_size=spec.batch_size, log_every=spec.log_every,
                                  execution=Execution(progress=execution.progress, mesh=execution.mesh))
            io.save_run(out, kids, overwrite=True, extra={"spawned_from": origin, "parent_run": str(Path(run))})
            kids = io.load_run(out, model=execution.model)
    layout = kids.config["spawn"]
    p_, s_, c_ = len(layout["parents"]), len(layout["at"]), layout["children"]
    bad = np.asarray(kids.diverged, bool)
    if bad.any():
        warn.append(f"{int(bad.sum())} of {kids.num_members} children diverged: their pairs' barriers are NaN")
    settings = common.settings(ens, {"command": "instability", "grid": spec.grid, "threshold": spec.threshold,
                                     "statistics": spec.statistics, "noise": spec.noise})

    def compute(res):
        batches = common.batches(kids, True, execution)
        fn = models.metrics_fn(common.model(kids, settings, list(range(kids.num_members)), batches),
                               kids.config["loss"])
        found = minima.instability(fn, kids.params, num_children=c_, num=spec.grid, data=batches,
                                   execution=dataclasses.replace(execution, checkpoint=res.checkpoint,
                                                                 keep_checkpoint=True))
        pr = found["pairs"]
        dead = bad.reshape(p_ * s_, c_)
        dead = (dead[:, pr[:, 0]] | dead[:, pr[:, 1]])
        arrays = {"spawn_steps": np.asarray(layout["at"]), "parent_seeds": np.asarray(layout["parent_seeds"]),
                  "pairs": pr}
        for split, pre in (("train", ""), ("test", "test_")):  # the training set's keys unprefixed
            for m in ("loss", "error"):
                for kind in ("barrier", "barrier_chord"):
                    v = np.where(dead, np.nan, found[f"{split}_{m}_{kind}"])
                    arrays[f"{pre}{m}_{kind}"] = v.reshape(p_, s_, len(pr))
                with np.errstate(invalid="ignore"), _quiet():
                    inst = np.nanmean(arrays[f"{pre}{m}_barrier"], axis=2)
                    arrays[f"{pre}{m}_instability"] = inst
                    for q, name in ((0.5, "median"), (0.25, "q25"), (0.75, "q75")):
                        arrays[f"{pre}{m}_instability_{name}"] = np.nanquantile(inst, q, axis=0)
        h = kids.history
        for name, v in (("final_train_loss", h.train_loss[:, -1]), ("final_train_accuracy", h.train_accuracy[:, -1]),
                        ("final_test_accuracy", h.test_accuracy[:, -1]), ("diverged", bad)):
            arrays[name] = np.asarray(v).reshape(p_, s_, c_)
        lr = layout["learning_rate"]
        return arrays, {"kind": "instability", "threshold": spec.threshold, "grid": spec.grid,
                        "children": c_, "steps": steps, "loss": kids.config["loss"],
                        "learning_rate": lr, "parent_labels": members.labels(ens, idx),
                        "title": f"instability of {c_} children per parent and step, {p_} parents"
                                 + ("" if lr is None else f", lr {lr:g}")}

    return common.stored(out, "instability", settings, overwrite, warn, compute)


@contextlib.contextmanager
def _quiet():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: every child of a spawn diverged
        yield
