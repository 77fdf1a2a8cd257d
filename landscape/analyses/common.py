"""What every analysis shares: the stored :class:`Outcome`, loading a run and its data, and
committing a result through :class:`landscape.store.results.Result` (provenance, reuse only
when current, lock, one atomic commit, checkpoints deleted after the commit).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError
from ..core.execution import Execution
from ..store import members

__all__ = ["Outcome", "run_dataset"]


@dataclasses.dataclass
class Outcome:
    """A stored result.

    Attributes:
      name: the result's name.
      path: its ``.npz`` (``None`` on processes that do not write).
      arrays: the result's arrays, as saved.
      meta: its metadata (``meta["provenance"]`` says what it was computed from).
      reused: it was already saved and current, so nothing was computed.
      warnings: members it involves that diverged or did not learn, one line each.
      run: the run directory.

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10, snapshot_every=10))
      >>> out = ls.analyses.surface(run, ls.analyses.SurfaceSpec(grid=5))
      >>> out.name, out.path.name, out.reused, out.warnings
      ('plane_seed0_random_filter_g5_s1', 'plane_seed0_random_filter_g5_s1.npz', False, [])
      >>> ls.analyses.surface(run, ls.analyses.SurfaceSpec(grid=5)).reused       # same inputs: read, not recomputed
      True
    """

    name: str
    path: Path | None
    arrays: dict
    meta: dict
    reused: bool
    warnings: list[str]
    run: Path


# ---------------------------------------------------------------------- training


# ---------------------------------------------------------------------- shared plumbing
def run_dataset(ens):
    """The data set a loaded run was trained on, loaded as every analysis loads it.

    Args:
      ens: a loaded run (:func:`landscape.io.load_run`).

    Returns:
      the :class:`~landscape.data.Dataset`.

    Raises:
      ConfigError: the data set no longer matches the run's model inputs.

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10, snapshot_every=10))
      >>> ls.analyses.run_dataset(ls.load_run(run)).name
      'blobs'
    """
    from .. import data as data_mod

    dcfg = ens.config.get("data", {})
    name = dcfg.get("name", "digits")
    options = dcfg.get("options", {})
    options = dict(options) if name in ("digits", "spirals", "blobs") else {"data_dir": options.get("data_dir")}
    dataset = data_mod.load(name, **options)
    if dataset.input_dim != ens.model.in_features:
        raise ConfigError(f"data set {name!r} no longer matches the run's model inputs")
    return dataset


def load(run, execution: Execution):
    from ..store import runs as io

    with execution.phase("load"):
        return io.load_run(run, model=execution.model)


def batches(ens, test: bool, execution: Execution) -> dict:
    with execution.phase("load"):
        dataset = run_dataset(ens)
    batches = {"train": (dataset.train.x, dataset.train.y)}
    if test:
        batches["test"] = (dataset.test.x, dataset.test.y)
    return batches


def stored(run, name: str, settings: dict, overwrite: bool, warnings: list[str],
            compute: Callable[[Any], tuple[dict, dict]]) -> Outcome:
    """Reuse the result ``name`` when current, else compute and commit it (process 0 writes)."""
    from ..core import distributed, files
    from ..store import results
    from ..store import runs as io

    res = results.Result(run, name, settings)
    saved = res.load_current(overwrite=overwrite)
    path = io.result_paths(res.stem)[0]
    if saved is not None:
        return Outcome(res.name, path, saved[0], saved[1], True, warnings, res.run)
    if not distributed.is_writer():  # the other processes of a multi-process run compute, never write
        arrays, meta = compute(res)
        meta = {**meta, "warnings": warnings, "provenance": res.provenance}  # as process 0 saves it
        return Outcome(res.name, None, arrays, files.jsonable(meta), False, warnings, res.run)
    with res.writing():
        arrays, meta = compute(res)
        arrays, meta = res.commit(arrays, {**meta, "warnings": warnings})
    return Outcome(res.name, path, arrays, meta, False, warnings, res.run)


def settings(ens, settings: dict) -> dict:
    """``settings`` with the statistics choice resolved: ``"recompute"`` unless asked
    otherwise for a model with state (BatchNorm); dropped for a model without (so that results
    of stateless runs keep their provenance).  ``noise`` (a fixed noise key's seed: training mode,
    a stochastic landscape) is kept only when given, for a model with random streams."""
    noise = settings.pop("noise", None)
    if noise is not None:
        if not getattr(ens.model, "random_streams", ()):
            raise ConfigError(f"--noise-key evaluates random layers (dropout) in training mode; "
                              f"{ens.model.describe()} has none")
        settings = {**settings, "noise": int(noise)}
    chosen = settings.pop("statistics", None)
    if noise is not None and ens.model.stateful:
        if chosen is not None:
            raise ConfigError("--noise-key evaluates in training mode, where BatchNorm uses the statistics of the "
                              "evaluated batch: drop --statistics")
        return {**settings, "statistics": "batch"}
    if not ens.model.stateful:
        if chosen is not None:
            raise ConfigError(f"--statistics applies to models with BatchNorm state; {ens.model.describe()} has none")
        return settings
    from ..models import STATISTICS

    chosen = chosen or "recompute"
    if chosen not in STATISTICS:
        raise ConfigError(f"statistics must be one of {', '.join(STATISTICS)}, got {chosen!r}")
    return {**settings, "statistics": chosen}


def model(ens, settings: dict, idx, batches: dict):
    """The run's model as a plain ``apply(params, x)`` for landscapes: itself without state;
    with BatchNorm state, a :func:`landscape.models.with_statistics` view — the statistics of
    the training set recomputed at every evaluated point (``"recompute"``), or one member's
    running averages (``"running"``, for a single member).  With ``settings["noise"]``: training
    mode with that fixed noise key (:func:`landscape.models.with_noise`)."""
    import jax

    from .. import models

    if settings.get("noise") is not None:
        return models.with_noise(ens.model, jax.random.key(settings["noise"]))
    if not ens.model.stateful:
        return ens.model
    if settings["statistics"] == "running":
        if len(idx) != 1:
            raise ConfigError("running statistics belong to one member: choose one seed, or --statistics recompute")
        return models.with_statistics(ens.model, "running", state=ens.member_state(idx[0]))
    return models.with_statistics(ens.model, "recompute", x=batches["train"][0])


def evaluation(execution: Execution, res, desc: str) -> dict:
    """``{"execution": …}`` for the surface evaluator: the analysis's chunking, progress and
    devices, the result's checkpoint (kept until the commit; process 0 reads and writes it) and
    the progress bar's label.

    Args:
      execution: the analysis's execution.
      res: the :class:`~landscape.store.results.Result` being computed.
      desc: the progress bar's label.

    Returns:
      the keyword arguments.
    """
    from ..core.distributed import is_writer

    return {"execution": dataclasses.replace(execution, checkpoint=res.checkpoint, keep_checkpoint=True,
                                             progress=execution.progress and is_writer(), label=desc)}


def suffix(**flags) -> str:
    """Name parts for settings away from their defaults (``_test``, ``_key1``, ...)."""
    return "".join(f"_{k}" if v is True else (f"_{k}{v}" if v not in (False, None) else "") for k, v in flags.items())


def modes(spec) -> dict:
    """The name flags of a spec's evaluation mode: ``running`` statistics, a fixed ``noise`` key."""
    return {"running": spec.statistics == "running", "noise": None if spec.noise is None else str(spec.noise)}


def surface_arrays(surf, meta: dict) -> tuple[dict, dict]:
    return surf.to_arrays(), {**surf.meta, **meta, "kind": surf.kind}


def single_process(what: str) -> None:
    import jax

    if jax.process_count() > 1:
        raise ConfigError(f"{what} runs in one process (on any number of its devices)")


# ---------------------------------------------------------------------- slices


# ---------------------------------------------------------------------- curvature and minima
def plane_members(ens, seeds, lr, align: bool | None, what: str):
    """The members of a plane-based command (three seeds: their plane; one: a random plane around
    it) and the model's permutation spec when the minima are to be aligned (``align``: ``None``
    aligns when the model's structure is known, stated or inferred, ``True`` insists, ``False`` never)."""
    from ..models.permutation import check_alignable

    idx = members.select(ens, seeds, lr)
    if len(idx) not in (1, 3):
        raise ConfigError(f"{what} needs three seeds (their plane) or one (a random plane around it), got {len(idx)}")
    perm_spec = None
    if align is not False:
        try:
            perm_spec = ens.model.permutation_spec()
        except ConfigError:
            if align:
                raise
        if perm_spec is not None:
            check_alignable(perm_spec, ens.member(idx[0]), ens.member_state(idx[0]))
    return idx, perm_spec


def plane_words(ens, idx) -> tuple[list[str], str, list[str]]:
    """``(member labels, "plane through …" / "random plane around …", axis labels)``."""
    labels = members.labels(ens, idx)
    if len(idx) == 3:
        return labels, "plane through " + ", ".join(labels), ["distance along u", "distance along v"]
    return labels, f"random plane around {labels[0]}", [r"$\alpha$", r"$\beta$"]
