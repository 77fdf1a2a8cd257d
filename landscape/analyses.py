"""Analyses of a run directory, each a stored result: a settings object in, a result out.

The layer above the compute modules and the run store: each function loads a run, computes
one result with :mod:`surface`, :mod:`hessian` or :mod:`minima`, and commits it through
:class:`landscape.results.Result` (provenance, reuse only when current, lock, one atomic
commit, checkpoints deleted after the commit).  The ``landscape`` command is a thin parser
over these functions; a Python user or a study calls them the same way::

    out = ls.analyses.surface("runs/digits", ls.analyses.SurfaceSpec(seeds="0", grid=51))
    out.arrays["value/train_loss"], out.meta["provenance"], out.reused

Settings objects hold everything a result depends on (they enter its provenance);
:class:`Execution` holds what it does not (progress bars, devices, chunking, how often to save).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import members
from .errors import ConfigError

__all__ = [
    "Execution",
    "Outcome",
    "TrainSpec",
    "SurfaceSpec",
    "InterpolationSpec",
    "PlaneSpec",
    "TrajectorySpec",
    "HessianSpec",
    "CompareSpec",
    "BasinsSpec",
    "RaceSpec",
    "race_entrants",
    "AnimateSpec",
    "train",
    "demo_spec",
    "surface",
    "interpolate",
    "plane",
    "trajectory",
    "hessian",
    "compare",
    "basins",
    "race",
    "animate",
    "run_dataset",
]


@dataclasses.dataclass(frozen=True)
class Execution:
    """How to run an analysis; nothing here changes its numbers.

    Attributes:
      progress: show progress bars.
      mesh: a :mod:`landscape.distributed` mesh to shard over (``None``: one device).
      chunk_size: evaluations per compiled call (default: automatic).
      save_every_s: minimum seconds between progress checkpoints.
      clock: a :class:`landscape.timing.Timings` to charge load / figure time to, or ``None``.
      model: for runs of a user model: the model again, ``"PATH.py:FACTORY"`` (executed; the
        file the run was trained from, checked by SHA-256) or the object
        (:func:`landscape.io.load_run`'s ``model``).

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10, snapshot_every=10))
      >>> ex = ls.analyses.Execution(progress=False, chunk_size=64)      # changes no number
      >>> a = ls.analyses.surface(run, ls.analyses.SurfaceSpec(grid=5), execution=ex)
      >>> b = ls.analyses.surface(run, ls.analyses.SurfaceSpec(grid=5), execution=ls.analyses.Execution(chunk_size=7),
      ...                         name="again")
      >>> bool(np.array_equal(a.arrays["value/train_loss"], b.arrays["value/train_loss"]))
      True
    """

    progress: bool = False
    mesh: Any = None
    chunk_size: int | None = None
    save_every_s: float = 5.0
    clock: Any = None
    model: Any = None

    def phase(self, name: str):
        """A context that charges its time to phase ``name`` of :attr:`clock` (nothing without one).

        Args:
          name: the phase (``load``, ``figure``).
        """
        return self.clock.phase(name) if self.clock is not None else contextlib.nullcontext()


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


@dataclasses.dataclass(frozen=True)
class TrainSpec:
    """A seed sweep of a built-in model (see ``landscape train --help`` for each field):
    ``model="mlp"`` (``hidden`` widths), ``"cnn"`` (``channels``, ``kernel``) or ``"resnet"``
    (``depth``, ``width``, ``stages``, ``skip``, ``norm``; :class:`landscape.models.ResNet`);
    the last two need image data sets.  ``model_file="PATH.py:FACTORY"`` trains a user's model
    instead (:func:`landscape.model_files.from_file`: the file is executed; ``model`` and the
    architecture fields are then unused).

    Attributes:
      dataset: ``digits``, ``spirals``, ``blobs`` or a tensorflow-datasets name.
      data_dir: the tensorflow-datasets directory.
      download: prepare a tensorflow-datasets set first if it is missing.
      model: ``"mlp"``, ``"cnn"`` or ``"resnet"``.
      hidden: the MLP's hidden widths.
      channels: the CNN's convolution channels.
      kernel: the CNN's kernel size.
      depth: the ResNet's weighted layers.
      width: the ResNet's first stage's channels.
      stages: the ResNet's stages.
      skip: the ResNet's skip connections.
      norm: the ResNet's normalisation, ``"batch"``, ``"layer"`` or ``"none"``.
      model_file: ``"PATH.py:FACTORY"``, a user's model (executed).
      activation: the hidden non-linearity.
      output_activation: ``"auto"`` (decided by the loss), ``"identity"`` or ``"sigmoid"``.
      init: the kernel initialiser.
      loss: ``"mse"`` or ``"cross_entropy"``.
      optimizer: the optimizer's name (:class:`landscape.optim.OptimizerSpec`).
      lr: learning rates; several sweep seeds × rates.
      momentum: for ``momentum``, ``nesterov``, ``rmsprop``.
      steps: optimizer steps.
      batch_size: minibatch size (``None``: full batch).
      seeds: how many random starts (seeds ``0 .. seeds - 1``).
      key: the root PRNG seed.
      log_every: history interval in steps.
      snapshot_every: parameter-snapshot interval (``None``: none).

    Examples:
      >>> spec = ls.analyses.TrainSpec(hidden=(16, 16), lr=(0.3, 1.0, 3.0), seeds=8, steps=500)
      >>> spec.dataset, spec.activation, spec.loss, spec.lr                      # the CLI's defaults
      ('digits', 'sigmoid', 'mse', (0.3, 1.0, 3.0))
    """

    dataset: str = "digits"
    data_dir: str | None = None
    download: bool = False
    model: str = "mlp"
    hidden: tuple[int, ...] = (16, 16)
    channels: tuple[int, ...] = (8, 16)
    kernel: int = 3
    depth: int = 10
    width: int = 8
    stages: int = 2
    skip: bool = True
    norm: str = "batch"
    model_file: str | None = None
    activation: str = "sigmoid"
    output_activation: str = "auto"
    init: str = "lecun_normal"
    loss: str = "mse"
    optimizer: str = "sgd"
    lr: tuple[float, ...] = (1.0,)
    momentum: float = 0.9
    steps: int = 2000
    batch_size: int | None = None
    seeds: int = 64
    key: int = 0
    log_every: int = 20
    snapshot_every: int | None = None


def train(out: str | Path, spec: TrainSpec, *, overwrite: bool = False, execution: Execution = Execution(),
          extra: dict | None = None):
    """Train ``spec`` and save the run directory ``out`` (process 0 writes); the ensemble.

    The output is locked for the whole training (a second ``train`` of the same ``out`` fails
    at once) and its parent proven writable before anything is computed; the run replaces an
    existing one (``overwrite``) only once complete.

    Args:
      out: the run directory to create.
      spec: the training settings (:class:`TrainSpec`).
      overwrite: replace an existing run directory.
      execution: progress, devices.
      extra: more metadata (the command line).

    Returns:
      the trained :class:`~landscape.train.Ensemble`.

    Raises:
      RunExistsError / ConfigError: ``out`` exists without ``overwrite``; another process
        trains into ``out``; invalid settings.
      StorageError: ``out``'s parent cannot be written.

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10, snapshot_every=10))
      >>> ens.num_members, sorted(p.name for p in __import__("pathlib").Path(run).glob("*.json"))
      (3, ['meta.json'])
    """
    import jax

    from . import data as data_mod
    from . import distributed, files, io, models, optim
    from . import train as train_mod

    out = Path(out)
    if out.exists() and not overwrite:
        raise ConfigError(f"{out} already exists; pass --overwrite to replace it")
    writer = distributed.is_writer()
    lock = contextlib.nullcontext()
    if writer:
        files.check_writable(out.parent)
        lock = files.exclusive(out.parent / f".{out.name}.landscape-lock",
                               f"another command is training into {out} right now")
    with lock:
        with execution.phase("load"):
            dataset = data_mod.load(spec.dataset, data_dir=spec.data_dir, download=spec.download)
        out_act = spec.output_activation
        if out_act == "auto":
            out_act = "sigmoid" if spec.loss == "mse" else "identity"
        if spec.model_file is not None:
            from . import model_files

            model = model_files.from_file(spec.model_file)
        elif spec.model == "mlp":
            model = models.MLP(hidden=tuple(spec.hidden), activation=spec.activation, output_activation=out_act,
                               kernel_init=spec.init)
        elif spec.model == "cnn":
            model = models.CNN(channels=tuple(spec.channels), kernel=spec.kernel, activation=spec.activation,
                               output_activation=out_act, kernel_init=spec.init)
        elif spec.model == "resnet":
            model = models.ResNet(depth=spec.depth, width=spec.width, stages=spec.stages, skip=spec.skip,
                                  norm=spec.norm, activation=spec.activation, output_activation=out_act,
                                  kernel_init=spec.init)
        else:
            raise ConfigError(f"unknown model {spec.model!r}; choose mlp, cnn or resnet")
        lrs = tuple(spec.lr)
        ens = train_mod.train_ensemble(
            model, dataset, key=jax.random.key(spec.key), seeds=spec.seeds,
            optimizer=optim.OptimizerSpec(spec.optimizer, lrs[0], momentum=spec.momentum), loss=spec.loss,
            steps=spec.steps, batch_size=spec.batch_size, learning_rates=lrs if len(lrs) > 1 else None,
            log_every=spec.log_every, snapshot_every=spec.snapshot_every, progress=execution.progress and writer,
            mesh=execution.mesh)
        if writer:
            io.save_run(out, ens, overwrite=overwrite, extra=extra)
    return ens


def demo_spec(seeds: int = 64, steps: int = 2000) -> TrainSpec:
    """The demo's sweep: sigmoid 64-16-16-10 MLPs, squared-difference cost, SGD at 3 on the
    digits; history every ``steps/100`` steps (at most 20) and about 20 snapshots.

    Args:
      seeds: how many random starts (at least 3).
      steps: optimizer steps (at least 2).

    Returns:
      the :class:`TrainSpec`.

    Raises:
      ConfigError: fewer than 3 seeds (the plane through three minima needs them) or 2 steps.

    Examples:
      >>> spec = ls.analyses.demo_spec()                 # what `landscape demo` trains
      >>> spec.hidden, spec.activation, spec.loss, spec.lr, spec.seeds, spec.steps
      ((16, 16), 'sigmoid', 'mse', (3.0,), 64, 2000)
    """
    if seeds < 3:
        raise ConfigError(f"the demo draws the plane through three seeds' minima: --seeds must be at least 3, "
                          f"got {seeds}")
    if steps < 2:
        raise ConfigError(f"the demo needs at least 2 training steps, got {steps}")
    log_every = max(1, min(20, steps // 100 or 1))
    snapshot_every = log_every * max(1, round(steps / 20 / log_every))
    return TrainSpec(dataset="digits", hidden=(16, 16), activation="sigmoid", output_activation="sigmoid",
                     loss="mse", optimizer="sgd", lr=(3.0,), steps=steps, seeds=seeds, key=0,
                     log_every=log_every, snapshot_every=snapshot_every)


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
    from . import data as data_mod

    dcfg = ens.config.get("data", {})
    name = dcfg.get("name", "digits")
    options = dcfg.get("options", {})
    options = dict(options) if name in ("digits", "spirals", "blobs") else {"data_dir": options.get("data_dir")}
    dataset = data_mod.load(name, **options)
    if dataset.input_dim != ens.model.in_features:
        raise ConfigError(f"data set {name!r} no longer matches the run's model inputs")
    return dataset


def _load(run, execution: Execution):
    from . import io

    with execution.phase("load"):
        return io.load_run(run, model=execution.model)


def _batches(ens, test: bool, execution: Execution) -> dict:
    with execution.phase("load"):
        dataset = run_dataset(ens)
    batches = {"train": (dataset.train.x, dataset.train.y)}
    if test:
        batches["test"] = (dataset.test.x, dataset.test.y)
    return batches


def _stored(run, name: str, settings: dict, overwrite: bool, warnings: list[str],
            compute: Callable[[Any], tuple[dict, dict]]) -> Outcome:
    """Reuse the result ``name`` when current, else compute and commit it (process 0 writes)."""
    from . import distributed, files, io, results

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


def _settings(ens, settings: dict) -> dict:
    """``settings`` with the statistics choice resolved: ``"recompute"`` unless asked
    otherwise for a model with state (BatchNorm); dropped for a model without (so that results
    of stateless runs keep their provenance)."""
    chosen = settings.pop("statistics", None)
    if not ens.model.stateful:
        if chosen is not None:
            raise ConfigError(f"--statistics applies to models with BatchNorm state; {ens.model.describe()} has none")
        return settings
    from .models import STATISTICS

    chosen = chosen or "recompute"
    if chosen not in STATISTICS:
        raise ConfigError(f"statistics must be one of {', '.join(STATISTICS)}, got {chosen!r}")
    return {**settings, "statistics": chosen}


def _model(ens, settings: dict, idx, batches: dict):
    """The run's model as a plain ``apply(params, x)`` for landscapes: itself without state;
    with BatchNorm state, a :func:`landscape.models.with_statistics` view — the statistics of
    the training set recomputed at every evaluated point (``"recompute"``), or one member's
    running averages (``"running"``, for a single member)."""
    from . import models

    if not ens.model.stateful:
        return ens.model
    if settings["statistics"] == "running":
        if len(idx) != 1:
            raise ConfigError("running statistics belong to one member: choose one seed, or --statistics recompute")
        return models.with_statistics(ens.model, "running", state=ens.member_state(idx[0]))
    return models.with_statistics(ens.model, "recompute", x=batches["train"][0])


def _evaluation(execution: Execution, res, desc: str) -> dict:
    """Keyword arguments of the surface evaluator: chunking, progress, devices, and the
    result's checkpoint (kept until the commit; process 0 reads and writes it)."""
    from .distributed import is_writer

    return {"chunk_size": execution.chunk_size, "checkpoint": res.checkpoint, "keep_checkpoint": True,
            "save_every_s": execution.save_every_s, "progress": execution.progress and is_writer(),
            "desc": desc, "mesh": execution.mesh}


def _suffix(**flags) -> str:
    """Name parts for settings away from their defaults (``_test``, ``_key1``, ...)."""
    return "".join(f"_{k}" if v is True else (f"_{k}{v}" if v not in (False, None) else "") for k, v in flags.items())


def _surface_arrays(surf, meta: dict) -> tuple[dict, dict]:
    return surf.to_arrays(), {**surf.meta, **meta, "kind": surf.kind}


def _single_process(what: str) -> None:
    import jax

    if jax.process_count() > 1:
        raise ConfigError(f"{what} runs in one process (on any number of its devices)")


# ---------------------------------------------------------------------- slices


@dataclasses.dataclass(frozen=True)
class SurfaceSpec:
    """A random (filter-normalised, Li et al. 2018) plane or line around members' minima, or
    the plane of their top Hessian eigenvectors.

    Attributes:
      seeds: ``"0"``, ``"0,1,2"`` or ``"all"``.
      lr: their learning rate in a sweep.
      directions: ``"random"`` or ``"hessian"`` (unit eigenvectors; ``norm`` is then ``"none"``).
      norm: ``"filter"``, ``"layer"``, ``"model"`` or ``"none"``.
      keep_biases: give biases a direction too (default: zero, as Li et al.).
      orthogonal: Gram-Schmidt the second direction against the first.
      dims: 1 (a line) or 2 (a plane).
      grid: points per axis;
      span: coefficients in [-span, span].
      key: PRNG seed of the directions.
      test: evaluate the test split too.
      curvature: also map the Hessian's λ_max, λ_min and ``|λ_min| / λ_max`` over the slice
        (Li et al. 2018, section 6) on its own grid of ``curvature_grid`` points per axis
        spanning the same range.
      curvature_grid: points per axis of the curvature map's grid.
      curvature_probes: Hutchinson probes per point of the map (``0``: no trace).
      statistics: for a model with BatchNorm: ``"recompute"`` (default) or ``"running"``.

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10, snapshot_every=10))
      >>> out = ls.analyses.surface(run, ls.analyses.SurfaceSpec(seeds="all", grid=5, dims=1, test=True))
      >>> out.arrays["value/train_loss"].shape, "value/test_loss" in out.arrays   # a line per member
      ((3, 5), True)
    """

    seeds: str = "0"
    lr: float | None = None
    directions: str = "random"
    norm: str = "filter"
    keep_biases: bool = False
    orthogonal: bool = False
    dims: int = 2
    grid: int = 51
    span: float = 1.0
    key: int = 0
    test: bool = False
    curvature: bool = False
    curvature_grid: int = 21
    curvature_probes: int = 0
    statistics: str | None = None


def surface(run, spec: SurfaceSpec, *, name: str | None = None, overwrite: bool = False,
            execution: Execution = Execution()) -> Outcome:
    """The cost (and accuracy) on a slice through members' minima; see :class:`SurfaceSpec`.

    Args:
      run: the run directory.
      spec: the settings (:class:`SurfaceSpec`); everything the numbers depend on.
      name: the result's name under ``RUN/results/`` (default: built from the settings that differ from their defaults).
      overwrite: recompute and replace a saved result (otherwise a current one is reused and one with other
        settings is refused, naming what differs).
      execution: how it runs (progress, devices, chunk size); changes no number.

    Returns:
      an :class:`Outcome` — the arrays, the metadata with its provenance, the path, whether it was
      reused; values ``(G,)`` / ``(G, G)``, or with several members ``(S, G[, G])``.

    Raises:
      ConfigError: bad settings, or a saved result of this name computed from something else.

    The same as ``landscape surface``.

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10, snapshot_every=10))
      >>> out = ls.analyses.surface(run, ls.analyses.SurfaceSpec(seeds="0", grid=5, test=True))
      >>> sorted(k for k in out.arrays if k.startswith("value/"))
      ['value/test_accuracy', 'value/test_loss', 'value/train_accuracy', 'value/train_loss']
    """
    import jax

    from . import directions, models
    from . import surface as surface_mod

    ens = _load(run, execution)
    idx = members.select(ens, spec.seeds, spec.lr)
    norm = "none" if spec.directions == "hessian" else spec.norm
    kind = "line" if spec.dims == 1 else "plane"
    default = (f"{kind}_{members.tag(ens, idx)}_{spec.directions}_{norm}_g{spec.grid}_s{spec.span:g}"
               + _suffix(key=spec.key or None, biases=spec.keep_biases, orth=spec.orthogonal, test=spec.test,
                         curv=spec.curvature and spec.curvature_grid, running=spec.statistics == "running"))
    settings = _settings(ens, {"command": "surface", "members": idx, **dataclasses.asdict(spec), "norm": norm})
    warn = members.warnings(ens, idx)
    seeds = [int(ens.seeds[i]) for i in idx]

    def compute(res):
        batches = _batches(ens, spec.test, execution)
        key = jax.random.key(spec.key)
        centers = jax.tree_util.tree_map(lambda x: x[np.asarray(idx)], ens.params)
        model = _model(ens, settings, idx, batches)
        if spec.directions == "hessian":
            _single_process("hessian directions")
            dirs = _hessian_directions(model, ens, batches, centers, spec.dims, key)
        else:
            dirs = directions.member_directions(key, np.asarray(seeds), centers, spec.dims, norm=norm,
                                                ignore_biases=not spec.keep_biases, orthogonal=spec.orthogonal)
        fn = models.metrics_fn(model, ens.config["loss"])
        kw = {**_evaluation(execution, res, f"{kind} of {len(idx)} member(s)"), "data": batches, "stacked": True}
        if spec.dims == 1:
            surf = surface_mod.line(fn, centers, dirs[0], span=spec.span, num=spec.grid, **kw)
        else:
            surf = surface_mod.plane(fn, centers, dirs, span=spec.span, num=spec.grid, **kw)
        curv = {}
        if spec.curvature:
            curv = _curvature_map(model, ens, batches, centers, dirs[: spec.dims], spec, key, res, execution)
        if len(idx) == 1:  # a single member is stored without the member axis
            surf = surface_mod.Surface(surf.kind, surf.axes, {k: v[0] for k, v in surf.values.items()}, surf.extras,
                                       {**surf.meta, "cosine": surf.meta.get("cosine", [None])[0]})
            curv = {k: (v if k.startswith("curvature/axis_") else v[0]) for k, v in curv.items()}
        labels = members.labels(ens, idx)
        what = "top Hessian eigenvectors" if spec.directions == "hessian" else f"{norm}-normalised directions"
        arrays, meta = _surface_arrays(surf, {
            "seeds": seeds, "learning_rates": [float(ens.learning_rates[i]) for i in idx], "labels": labels,
            "title": f"{labels[0]}, {what}" if len(idx) == 1 else None,
            "axis_labels": [r"$\alpha$ (direction 1)", r"$\beta$ (direction 2)"], "xlabel": r"$\alpha$",
            "norm": norm, "ignore_biases": not spec.keep_biases})
        return {**arrays, **curv}, meta

    return _stored(run, name or default, settings, overwrite, warn, compute)


def _curvature_map(model, ens, batches, centers, dirs, spec: SurfaceSpec, key, res, execution: Execution) -> dict:
    """The Hessian's extreme eigenvalues on a ``curvature_grid`` grid of the slice, as
    ``curvature/axis_i`` and ``curvature/<quantity> (S, n[, n])`` arrays (resumable)."""
    import jax

    from . import hessian as hessian_mod
    from . import models
    from .data import Split
    from .distributed import is_writer

    _single_process("curvature maps")
    if spec.curvature_grid < 2:
        raise ConfigError(f"a curvature map needs at least 2 points per axis, got {spec.curvature_grid}")
    axis = np.linspace(-spec.span, spec.span, spec.curvature_grid)
    grids = np.meshgrid(*([axis] * spec.dims), indexing="ij")
    coords = np.stack([g.ravel() for g in grids], axis=1)
    loss = models.loss_fn(model, Split(*batches["train"]), ens.config["loss"])
    out = hessian_mod.curvature_map(
        loss, centers, list(dirs), coords, key=jax.random.fold_in(key, 2), trace_probes=spec.curvature_probes,
        stacked=True, chunk_size=execution.chunk_size or 16, checkpoint=res.checkpoints / "curvature.npz",
        keep_checkpoint=True, progress=execution.progress and is_writer(), mesh=execution.mesh)
    shape = (spec.curvature_grid,) * spec.dims
    arrays = {f"curvature/axis_{i}": axis for i in range(spec.dims)}
    arrays.update({f"curvature/{k}": v.reshape(v.shape[:1] + shape) for k, v in out.items()})
    return arrays


def _hessian_directions(model, ens, batches, centers, k: int, key):
    """The top-``k`` Hessian eigenvectors of the training loss at each centre (leaves ``(S, ...)``)."""
    import jax

    from . import hessian as hessian_mod
    from . import models
    from .data import Split

    f = models.loss_fn(model, Split(*batches["train"]), ens.config["loss"])
    n = jax.tree_util.tree_leaves(centers)[0].shape[0]

    def one(c, i):
        return hessian_mod.top_eigenpairs(f, c, k, key=jax.random.fold_in(key, i)).vectors

    return jax.jit(jax.vmap(one))(centers, jax.numpy.arange(n))


@dataclasses.dataclass(frozen=True)
class InterpolationSpec:
    """The straight line between two members' minima, ``t`` in ``[-extend, 1 + extend]``
    (Goodfellow et al. 2015), with both barrier definitions.

    Attributes:
      seeds: the two members, ``"A,B"``.
      lr: the members' learning rate, when the run swept several.
      grid: points on ``[0, 1]``.
      extend: how far the line continues beyond each end.
      test: also the test set's metrics.
      statistics: for a model with BatchNorm: ``"recompute"`` (default) or ``"running"``.

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10, snapshot_every=10))
      >>> out = ls.analyses.interpolate(run, ls.analyses.InterpolationSpec(seeds="0,2", grid=11, extend=0.0))
      >>> out.arrays["value/train_loss"].shape
      (11,)
    """

    seeds: str = "0,1"
    lr: float | None = None
    grid: int = 61
    extend: float = 0.5
    test: bool = False
    statistics: str | None = None


def interpolate(run, spec: InterpolationSpec, *, name: str | None = None, overwrite: bool = False,
                execution: Execution = Execution()) -> Outcome:
    """Cost along ``(1 - t) theta_A + t theta_B``; ``meta["barriers"]`` per metric.

    Args:
      run: the run directory.
      spec: the settings (:class:`InterpolationSpec`); everything the numbers depend on.
      name: the result's name under ``RUN/results/`` (default: built from the settings that differ from their defaults).
      overwrite: recompute and replace a saved result (otherwise a current one is reused and one with other
        settings is refused, naming what differs).
      execution: how it runs (progress, devices, chunk size); changes no number.

    Returns:
      an :class:`Outcome` — the arrays, the metadata with its provenance, the path, whether it was reused.

    Raises:
      ConfigError: bad settings, or a saved result of this name computed from something else.

    The same as ``landscape interpolate``.

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10, snapshot_every=10))
      >>> out = ls.analyses.interpolate(run, ls.analyses.InterpolationSpec(seeds="0,1", grid=11))
      >>> sorted(out.meta["barriers"])                                     # both barrier definitions of the cost
      ['train_loss']
    """
    from . import models
    from . import surface as surface_mod

    ens = _load(run, execution)
    a, b = members.select(ens, spec.seeds, spec.lr, 2)
    default = (f"interpolate_{members.tag(ens, [a, b]).replace('seeds', 'seed').replace('-', '_')}_g{spec.grid}"
               + _suffix(e=None if spec.extend == 0.5 else f"{spec.extend:g}", test=spec.test,
                         running=spec.statistics == "running"))
    settings = _settings(ens, {"command": "interpolate", "members": [a, b], **dataclasses.asdict(spec)})

    def compute(res):
        la, lb = members.label(ens, a), members.label(ens, b)
        batches = _batches(ens, spec.test, execution)
        surf = surface_mod.interpolation(models.metrics_fn(_model(ens, settings, [a, b], batches), ens.config["loss"]),
                                         ens.member(a), ens.member(b), num=spec.grid, extend=spec.extend,
                                         data=batches,
                                         **_evaluation(execution, res, f"interpolation {la} -> {lb}"))
        return _surface_arrays(surf, {"seeds": [int(ens.seeds[a]), int(ens.seeds[b])], "labels": [la, lb],
                                      "title": f"{la} (t=0) to {lb} (t=1)"})

    return _stored(run, name or default, settings, overwrite, members.warnings(ens, [a, b]), compute)


@dataclasses.dataclass(frozen=True)
class PlaneSpec:
    """The plane through three members' minima (Garipov et al. 2018), with their training
    paths projected when the run kept snapshots.

    Attributes:
      seeds: the three members, ``"A,B,C"``.
      lr: the members' learning rate, when the run swept several.
      grid: points per axis.
      margin: the grid's margin around the minima.
      paths: project the training paths (when the run kept snapshots).
      test: also the test set's metrics.
      statistics: for a model with BatchNorm: ``"recompute"`` (default) or ``"running"``.

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10, snapshot_every=10))
      >>> out = ls.analyses.plane(run, ls.analyses.PlaneSpec(seeds="0,1,2", grid=5))
      >>> out.arrays["value/train_loss"].shape, out.arrays["extra/points"].shape
      ((5, 5), (3, 2))
    """

    seeds: str = "0,1,2"
    lr: float | None = None
    grid: int = 41
    margin: float = 0.3
    paths: bool = True
    test: bool = False
    statistics: str | None = None


def plane(run, spec: PlaneSpec, *, name: str | None = None, overwrite: bool = False,
          execution: Execution = Execution()) -> Outcome:
    """Cost on the plane through three minima; see :class:`PlaneSpec`.

    Args:
      run: the run directory.
      spec: the settings (:class:`PlaneSpec`); everything the numbers depend on.
      name: the result's name under ``RUN/results/`` (default: built from the settings that differ from their defaults).
      overwrite: recompute and replace a saved result (otherwise a current one is reused and one with other
        settings is refused, naming what differs).
      execution: how it runs (progress, devices, chunk size); changes no number.

    Returns:
      an :class:`Outcome` — the arrays, the metadata with its provenance, the path, whether it was reused.

    Raises:
      ConfigError: bad settings, or a saved result of this name computed from something else.

    The same as ``landscape plane``.

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10, snapshot_every=10))
      >>> out = ls.analyses.plane(run, ls.analyses.PlaneSpec(seeds="0,1,2", grid=5))
      >>> sorted(k for k in out.arrays if k.startswith("extra/path_"))      # each seed's path, projected
      ['extra/path_0', 'extra/path_1', 'extra/path_2']
    """
    from . import models
    from . import surface as surface_mod

    ens = _load(run, execution)
    idx = members.select(ens, spec.seeds, spec.lr, 3)
    use_paths = spec.paths and ens.trajectory is not None
    default = (f"plane_{members.tag(ens, idx).replace('seeds', 'seed').replace('-', '_')}_g{spec.grid}"
               + _suffix(m=None if spec.margin == 0.3 else f"{spec.margin:g}", test=spec.test,
                         running=spec.statistics == "running"))
    settings = _settings(ens, {"command": "plane", "members": idx, **dataclasses.asdict(spec), "paths": use_paths})

    def compute(res):
        labels = members.labels(ens, idx)
        paths = [ens.trajectory.member(i) for i in idx] if use_paths else None
        batches = _batches(ens, spec.test, execution)
        surf = surface_mod.three_point(models.metrics_fn(_model(ens, settings, idx, batches), ens.config["loss"]),
                                       *[ens.member(i) for i in idx], num=spec.grid, margin=spec.margin,
                                       data=batches, paths=paths,
                                       **_evaluation(execution, res, "plane through three solutions"))
        return _surface_arrays(surf, {
            "seeds": [int(ens.seeds[i]) for i in idx], "labels": labels, "point_labels": labels,
            "path_labels": [f"{lab} path" for lab in labels] if use_paths else None,
            "axis_labels": ["distance along u", "distance along v"],
            "title": "plane through " + ("seeds " + ", ".join(str(int(ens.seeds[i])) for i in idx)
                                         if not members.swept(ens) else "; ".join(labels))})

    return _stored(run, name or default, settings, overwrite, members.warnings(ens, idx), compute)


@dataclasses.dataclass(frozen=True)
class TrajectorySpec:
    """The PCA plane of one member's saved training snapshots around its final parameters
    (Li et al. 2018, section 7).

    Attributes:
      seeds: the member, one seed (``"0"``; an int is accepted), as ``seeds`` of the other specs.
      lr: the members' learning rate, when the run swept several.
      grid: points per axis.
      margin: the grid's margin around the path.
      test: also the test set's metrics.
      statistics: for a model with BatchNorm: ``"recompute"`` (default) or ``"running"``.
      seed: deprecated spelling of ``seeds`` (an int; one release), not a field: it sets ``seeds``
        and warns.  Results saved under it are reused as if saved under ``seeds``.

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10, snapshot_every=10))
      >>> out = ls.analyses.trajectory(run, ls.analyses.TrajectorySpec(seeds="1", grid=5))
      >>> out.arrays["value/train_loss"].shape, len(out.meta["explained_variance_ratio"])
      ((5, 5), 2)
    """

    seeds: str = "0"
    lr: float | None = None
    grid: int = 41
    margin: float = 0.3
    test: bool = False
    statistics: str | None = None
    seed: dataclasses.InitVar[int | None] = None

    def __post_init__(self, seed):
        if seed is not None:
            import warnings

            warnings.warn("TrajectorySpec(seed=...) is deprecated and will be removed in the next release: use "
                          "seeds=, as in the other specs", DeprecationWarning, stacklevel=3)
            object.__setattr__(self, "seeds", seed)
        if isinstance(self.seeds, (int, np.integer)) and not isinstance(self.seeds, bool):
            object.__setattr__(self, "seeds", str(int(self.seeds)))


def trajectory(run, spec: TrajectorySpec, *, name: str | None = None, overwrite: bool = False,
               execution: Execution = Execution()) -> Outcome:
    """Cost on the trajectory-PCA plane; ``meta["explained_variance_ratio"]``.

    Args:
      run: the run directory.
      spec: the settings (:class:`TrajectorySpec`); everything the numbers depend on.
      name: the result's name under ``RUN/results/`` (default: built from the settings that differ from their defaults).
      overwrite: recompute and replace a saved result (otherwise a current one is reused and one with other
        settings is refused, naming what differs).
      execution: how it runs (progress, devices, chunk size); changes no number.

    Returns:
      an :class:`Outcome` — the arrays, the metadata with its provenance, the path, whether it was reused.

    Raises:
      ConfigError: bad settings, or a saved result of this name computed from something else.

    The same as ``landscape trajectory``.

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10, snapshot_every=10))
      >>> out = ls.analyses.trajectory(run, ls.analyses.TrajectorySpec(seeds="0", grid=5))
      >>> out.name
      'trajectory_seed0_g5'
    """
    from . import models
    from . import surface as surface_mod

    ens = _load(run, execution)
    (i,) = members.select(ens, spec.seeds, spec.lr, 1)
    if ens.trajectory is None:
        raise ConfigError(f"{run} has no parameter snapshots; train with --snapshot-every")
    default = (f"trajectory_{members.tag(ens, [i])}_g{spec.grid}"
               + _suffix(m=None if spec.margin == 0.3 else f"{spec.margin:g}", test=spec.test,
                         running=spec.statistics == "running"))
    settings = _settings(ens, {"command": "trajectory", "member": i, **dataclasses.asdict(spec)})

    def compute(res):
        label = members.label(ens, i)
        batches = _batches(ens, spec.test, execution)
        surf = surface_mod.trajectory_plane(models.metrics_fn(_model(ens, settings, [i], batches), ens.config["loss"]),
                                            ens.trajectory.member(i), num=spec.grid, margin=spec.margin,
                                            data=batches,
                                            **_evaluation(execution, res, "trajectory plane"))
        ev = surf.meta["explained_variance_ratio"]
        return _surface_arrays(surf, {
            "seeds": [int(ens.seeds[i])], "labels": [label], "path_labels": [label], "point_labels": ["final"],
            "axis_labels": [f"PC 1 ({100 * ev[0]:.1f}% of variance)", f"PC 2 ({100 * ev[1]:.1f}%)"],
            "title": f"{label}: training path on its PCA plane"})

    return _stored(run, name or default, settings, overwrite, members.warnings(ens, [i]), compute)


# ---------------------------------------------------------------------- curvature and minima


@dataclasses.dataclass(frozen=True)
class HessianSpec:
    """Curvature of the training loss at every member: top eigenvalues and the smallest
    (Lanczos with full re-orthogonalisation), the trace (Hutchinson 1990) and, with
    ``density``, the spectral density (stochastic Lanczos quadrature, Ghorbani et al. 2019).
    ``per_layer``: the same for the Hessian block of every layer (:func:`landscape.hessian.layers`).
    ``curvature``: ``"hessian"``, ``"ggn"`` (generalised Gauss–Newton, Schraudolph 2002) or
    ``"fisher"`` (empirical Fisher); the default result name is the curvature's name.
    ``batch_size``: accumulate every product over batches of this many examples (the same
    full-data curvature, with one batch's activations in memory: MNIST-size sets on a small
    machine).  ``minibatches``: also the top eigenvalues and trace of that many disjoint random
    mini-batches of ``batch_size``, one by one — the spread of one-batch estimates.

    Attributes:
      top: top eigenvalues per member.
      iters: Lanczos iterations (default ``max(2 top + 20, 40)``).
      probes: Hutchinson probes (``0``: no trace).
      density: also the spectral density.
      key: the PRNG seed of the starts and probes.
      per_layer: also every layer's block.
      curvature: ``"hessian"``, ``"ggn"`` or ``"fisher"``.
      batch_size: accumulate over batches of this many examples (the same numbers).
      minibatches: also this many random batches of ``batch_size``, each on its own.
      statistics: for a model with BatchNorm: ``"recompute"`` (default) or ``"running"``.

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10, snapshot_every=10))
      >>> h = ls.analyses.hessian(run, ls.analyses.HessianSpec(top=2, probes=5))
      >>> h.arrays["top"].shape, bool(np.all(h.arrays["top"][:, 0] >= h.arrays["top"][:, 1]))
      ((3, 2), True)
    """

    top: int = 5
    iters: int | None = None
    probes: int = 50
    density: bool = False
    key: int = 0
    per_layer: bool = False
    curvature: str = "hessian"
    batch_size: int | None = None
    minibatches: int = 0
    statistics: str | None = None


def hessian(run, spec: HessianSpec, *, name: str | None = None, overwrite: bool = False,
            execution: Execution = Execution(chunk_size=16)) -> Outcome:
    """Curvature of every member; arrays ``top (M, k)``, ``smallest``, ``trace`` ``(M,)`` with
    ``seeds``, ``learning_rates``, ``diverged``, ``learned`` per member.

    Args:
      run: the run directory.
      spec: the settings (:class:`HessianSpec`); everything the numbers depend on.
      name: the result's name under ``RUN/results/`` (default: built from the settings that differ from their defaults).
      overwrite: recompute and replace a saved result (otherwise a current one is reused and one with other
        settings is refused, naming what differs).
      execution: how it runs (progress, devices, chunk size); changes no number.

    Returns:
      an :class:`Outcome` — the arrays, the metadata with its provenance, the path, whether it was reused.

    Raises:
      ConfigError: bad settings, or a saved result of this name computed from something else.

    The same as ``landscape hessian``.

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10, snapshot_every=10))
      >>> h = ls.analyses.hessian(run, ls.analyses.HessianSpec(top=1, probes=5, density=True))
      >>> h.arrays["trace"].shape, h.arrays["density_weights"].shape[0]
      ((3,), 3)
    """
    import jax

    from . import hessian as hessian_mod
    from . import models
    from .data import Split
    from .train import learned

    _single_process("hessian")
    ens = _load(run, execution)
    settings = _settings(ens, {"command": "hessian", **dataclasses.asdict(spec)})
    warn = members.warnings(ens, range(ens.num_members))

    if spec.minibatches and spec.batch_size is None:
        raise ConfigError("mini-batch estimates need a batch size (--batch-size)")

    def compute(res):
        batches = _batches(ens, False, execution)
        split = Split(*batches["train"])
        model = _model(ens, settings, range(ens.num_members), batches)
        f = models.loss_fn(model, split, ens.config["loss"], batch_size=spec.batch_size)
        sample = None
        if spec.minibatches:  # one draw of disjoint batches, shared by every member
            sample = models.minibatch_loss(model, split, ens.config["loss"], batch_size=spec.batch_size,
                                           num_batches=spec.minibatches,
                                           key=jax.random.fold_in(jax.random.key(spec.key), 1))

        def curvature(select, part):
            return hessian_mod.ensemble_curvature(
                f, ens.params, key=jax.random.key(spec.key), top=spec.top, num_iters=spec.iters,
                trace_probes=spec.probes, density=spec.density, chunk_size=execution.chunk_size or 16,
                checkpoint=res.checkpoints / f"{part}.npz", keep_checkpoint=True, progress=execution.progress,
                mesh=execution.mesh, select=select, curvature=spec.curvature, minibatches=sample)

        curv = curvature(None, "hessian")
        layers = hessian_mod.layers(ens.member(0)) if spec.per_layer else []
        for layer in layers:
            curv.update({f"layer/{layer}/{k}": v for k, v in curvature(layer, f"layer_{layer}").items()})
        if sample is not None:
            curv["minibatch_size"] = np.asarray(spec.batch_size)
        return {**curv, "seeds": ens.seeds, "learning_rates": ens.learning_rates,
                "test_accuracy": ens.history.test_accuracy[:, -1], "train_loss": ens.history.train_loss[:, -1],
                "diverged": ens.diverged, "learned": learned(ens)}, {
                    "kind": "hessian", "labels": members.labels(ens, range(ens.num_members)), "layers": layers,
                    "curvature": spec.curvature}

    return _stored(run, name or spec.curvature + _suffix(running=spec.statistics == "running"), settings, overwrite,
                   warn, compute)


def _plane_members(ens, seeds, lr, align: bool | None, what: str):
    """The members of a plane-based command (three seeds: their plane; one: a random plane around
    it) and the model's permutation spec when the minima are to be aligned (``align``: ``None``
    aligns when the model states its structure, ``True`` insists, ``False`` never)."""
    from . import minima

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
            minima.check_alignable(perm_spec, ens.member(idx[0]), ens.member_state(idx[0]))
    return idx, perm_spec


def _plane_words(ens, idx) -> tuple[list[str], str, list[str]]:
    """``(member labels, "plane through …" / "random plane around …", axis labels)``."""
    labels = members.labels(ens, idx)
    if len(idx) == 3:
        return labels, "plane through " + ", ".join(labels), ["distance along u", "distance along v"]
    return labels, f"random plane around {labels[0]}", [r"$\alpha$", r"$\beta$"]


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

    from . import minima, models, optim

    _single_process("basins")
    ens = _load(run, execution)
    idx, perm_spec = _plane_members(ens, spec.seeds, spec.lr, spec.align, "basins")
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
    settings = _settings(ens, {"command": "basins", "members": idx, **dataclasses.asdict(spec), "steps": steps,
                               "align": perm_spec is not None, "optimizer": opt.to_dict()})
    tag = members.tag(ens, idx).replace("seeds", "seed").replace("-", "_")
    default = (f"basins_{tag}_g{spec.grid}_s{steps}"
               + _suffix(key=spec.key or None, tol=None if spec.tol is None else f"{spec.tol:g}",
                         running=spec.statistics == "running"))

    def compute(res):
        with execution.phase("load"):
            dataset = run_dataset(ens)
        batches = {"train": (dataset.train.x, dataset.train.y)}
        fn = models.metrics_fn(_model(ens, settings, idx, batches), ens.config["loss"])
        refs = jax.tree_util.tree_map(lambda x: x[np.asarray(idx)], ens.params)
        bm = minima.basins_of_attraction(
            ens.model, dataset, refs, key=jax.random.key(spec.key), optimizer=opt, loss=ens.config["loss"],
            steps=steps, batch_size=ens.config.get("batch_size"), grid=spec.grid, margin=spec.margin,
            span=spec.span, spec=perm_spec, tol=spec.tol, metrics=fn, progress=execution.progress,
            chunk_size=execution.chunk_size)
        labels, plane, axis_labels = _plane_words(ens, idx)
        arrays = {"axis_0": bm.a, "axis_1": bm.b, "labels": bm.labels, "start_loss": bm.start_loss,
                  "final_loss": bm.final_loss, "distance": bm.distance, "barrier": bm.barrier, "ends": bm.ends,
                  "points": bm.points, "fractions": bm.fractions, "reference_barriers": bm.reference_barriers}
        return arrays, {"kind": "basins", "point_labels": labels, "seeds": [int(ens.seeds[i]) for i in idx],
                        "loss": ens.config["loss"], "steps": steps, "tol": bm.tol, "tol_given": spec.tol is not None,
                        "optimizer": opt.to_dict(), "aligned": perm_spec is not None,
                        "axis_labels": axis_labels, "title": f"basins of attraction\n{plane}"}

    return _stored(run, name or default, settings, overwrite, members.warnings(ens, idx), compute)


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
      ([OptimizerSpec(name='sgd', learning_rate=0.5, momentum=0.9, weight_decay=0.0001), OptimizerSpec(name='momentum', learning_rate=0.05, momentum=0.9, weight_decay=0.0001)], [None, 16])
    """
    from . import optim

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

    from . import models
    from . import race as race_mod

    _single_process("race")
    ens = _load(run, execution)
    idx, perm_spec = _plane_members(ens, spec.seeds, spec.member_lr, spec.align, "race")
    optimizers, sizes = race_entrants(ens, spec)
    steps = int(ens.config["steps"] if spec.steps is None else spec.steps)
    if steps < 1 or spec.starts < 1 or spec.grid < 2:
        raise ConfigError("steps and starts must be positive and grid at least 2")
    n_train = ens.config.get("data", {}).get("num_train")  # recorded with the run: the data need not be loaded
    for b in sizes:  # (train_ensemble checks again, after the plane's cost has been computed)
        if b is not None and n_train is not None and b > n_train:
            raise ConfigError(f"batch size {b} exceeds the {n_train} training examples")
    settings = _settings(ens, {"command": "race", "members": idx, **dataclasses.asdict(spec), "steps": steps,
                               "optimizers": [o.to_dict() for o in optimizers], "batch_sizes": sizes,
                               "align": perm_spec is not None})
    tag = members.tag(ens, idx).replace("seeds", "seed").replace("-", "_")
    default = f"race_{tag}_s{steps}" + _suffix(key=spec.key or None, running=spec.statistics == "running")

    def compute(res):
        with execution.phase("load"):
            dataset = run_dataset(ens)
        batches = {"train": (dataset.train.x, dataset.train.y)}
        fn = models.metrics_fn(_model(ens, settings, idx, batches), ens.config["loss"])
        refs = jax.tree_util.tree_map(lambda x: x[np.asarray(idx)], ens.params)
        r = race_mod.race(ens.model, dataset, refs, key=jax.random.key(spec.key), optimizers=optimizers,
                          batch_sizes=sizes, starts=spec.starts, steps=steps, snapshot_every=spec.snapshot_every,
                          loss=ens.config["loss"], grid=spec.grid, margin=spec.margin, span=spec.span,
                          spec=perm_spec, metrics=fn, progress=execution.progress, chunk_size=execution.chunk_size)
        labels, plane, axis_labels = _plane_words(ens, idx)
        arrays = {"axis_0": r.a, "axis_1": r.b, "cost": r.cost, "points": r.points, "starts": r.starts,
                  "steps": r.steps, "loss": r.loss, "path_steps": r.path_steps, "paths": r.paths,
                  "off_plane": r.off_plane, "diverged": r.diverged}
        return arrays, {"kind": "race", "entrants": r.labels, "point_labels": labels, "loss": ens.config["loss"],
                        "axis_labels": axis_labels, "title": f"optimizer race on the {plane}"}

    return _stored(run, name or default, settings, overwrite, members.warnings(ens, idx), compute)


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

    from . import minima, models
    from . import race as race_mod
    from .data import Split

    _single_process("animate")
    ens = _load(run, execution)
    idx, perm_spec = _plane_members(ens, spec.seeds, spec.member_lr, spec.align, "animate")
    lr = spec.lr if spec.lr is not None else float(ens.learning_rates[idx[0]])
    if not np.isfinite(lr):
        lr = float(ens.config.get("optimizer", {}).get("spec", {}).get("learning_rate", np.nan))
    if not (np.isfinite(lr) and lr > 0):
        raise ConfigError("the run records no learning rate: give the descent's step size with --lr")
    settings = _settings(ens, {"command": "animate", "members": idx, **dataclasses.asdict(spec), "lr": lr,
                               "align": perm_spec is not None})
    tag = members.tag(ens, idx).replace("seeds", "seed").replace("-", "_")
    default = f"descent_{tag}_n{spec.starts}_s{spec.steps}" + _suffix(key=None if spec.key == 7 else spec.key,
                                                                      running=spec.statistics == "running")

    def compute(res):
        from . import surface as surface_mod

        with execution.phase("load"):
            dataset = run_dataset(ens)
        batches = {"train": (dataset.train.x, dataset.train.y)}
        model = _model(ens, settings, idx, batches)
        refs = jax.tree_util.tree_map(lambda x: x[np.asarray(idx)], ens.params)
        key = jax.random.key(spec.key)
        _, origin, basis, a, b, points = minima.plane_of(refs, grid=spec.grid, margin=spec.margin, span=spec.span,
                                                         key=jax.random.fold_in(key, 1), spec=perm_spec)
        aa, bb = np.meshgrid(a, b, indexing="ij")
        cost = surface_mod.evaluate(models.metrics_fn(model, ens.config["loss"]), origin, basis,
                                    np.stack([aa.ravel(), bb.ravel()], 1), data=batches["train"],
                                    chunk_size=execution.chunk_size)["loss"].reshape(a.size, b.size)
        starts = race_mod.plane_points(key, a, b, spec.starts, inset=0.0)
        loss = models.loss_fn(model, Split(*batches["train"]), ens.config["loss"])
        paths = race_mod.descend_in_plane(loss, origin, basis, starts, lr=lr, steps=spec.steps)
        ends = paths[:, -1]
        final = np.asarray(jax.vmap(loss)(minima.on_plane(origin, basis, ends)))
        labels, plane, axis_labels = _plane_words(ens, idx)
        arrays = {"axis_0": a, "axis_1": b, "cost": cost, "points": points, "paths": paths, "final_loss": final,
                  "basin": race_mod.basin_of_ends(ends, points)}
        return arrays, {"kind": "descent", "point_labels": labels, "lr": lr, "steps": spec.steps,
                        "loss": ens.config["loss"], "axis_labels": axis_labels,
                        "title": f"gradient descent in the {plane}"}

    return _stored(run, name or default, settings, overwrite, members.warnings(ens, idx), compute)


@dataclasses.dataclass(frozen=True)
class CompareSpec:
    """Pairwise comparison of the members that learned: barriers (both definitions),
    distances, cosines, prediction disagreement, basins; optionally after weight-matching
    alignment (Ainsworth et al. 2023) and a trained Bézier curve between two members
    (Garipov et al. 2018).

    Attributes:
      lr: the learning rate to compare (required when the run swept several).
      align: also barriers after alignment.
      curve: two seeds ``(A, B)`` for a Bézier curve.
      curve_steps: its training steps.
      key: its PRNG seed.
      tol: members whose barrier is below this share a basin.
      limit: compare only the first N healthy members.
      grid: interpolation points in [0, 1].
      include_unlearned: also compare members that did not learn (named in the warnings;
        diverged members are always left out).
      statistics: for a model with BatchNorm: ``"recompute"`` (default) or ``"running"``.

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10, snapshot_every=10))
      >>> c = ls.analyses.compare(run, ls.analyses.CompareSpec(align=True, grid=9))
      >>> c.arrays["barrier"].shape, c.arrays["aligned_barrier"].shape
      ((3, 3), (3, 3))
    """

    lr: float | None = None
    align: bool = False
    curve: tuple[int, int] | None = None
    curve_steps: int = 1000
    tol: float = 0.05
    limit: int | None = None
    grid: int = 25
    key: int = 0
    include_unlearned: bool = False
    statistics: str | None = None


def compare(run, spec: CompareSpec, *, name: str | None = None, overwrite: bool = False,
            execution: Execution = Execution()) -> Outcome:
    """Every pairwise comparison of the healthy members (:func:`landscape.members.analysable`);
    members that diverged or did not learn are left out and named in ``outcome.warnings``.

    Args:
      run: the run directory.
      spec: the settings (:class:`CompareSpec`); everything the numbers depend on.
      name: the result's name under ``RUN/results/`` (default: built from the settings that differ from their defaults).
      overwrite: recompute and replace a saved result (otherwise a current one is reused and one with other
        settings is refused, naming what differs).
      execution: how it runs (progress, devices, chunk size); changes no number.

    Returns:
      an :class:`Outcome` — the arrays, the metadata with its provenance, the path, whether it was reused.

    Raises:
      ConfigError: bad settings, or a saved result of this name computed from something else.

    The same as ``landscape compare``.

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10, snapshot_every=10))
      >>> c = ls.analyses.compare(run, ls.analyses.CompareSpec(grid=9))
      >>> bool(np.allclose(c.arrays["barrier"], c.arrays["barrier"].T)), c.arrays["basin"].shape
      (True, (3,))
    """
    import jax

    from . import minima, models
    from .data import Split

    _single_process("compare")
    ens = _load(run, execution)
    idx, diverged, stalled = members.analysable(ens, spec.lr, include_unlearned=spec.include_unlearned)
    if spec.limit is not None:
        idx = idx[: spec.limit]
    curve_pair = None if spec.curve is None else members.select(ens, list(spec.curve), spec.lr, 2)
    warn = []
    if diverged:
        warn.append(f"left out {len(diverged)} diverged member(s): {', '.join(members.labels(ens, diverged))}")
    if stalled:
        warn.append(f"{'kept' if spec.include_unlearned else 'left out'} {len(stalled)} member(s) that did not "
                    f"learn: {', '.join(members.labels(ens, stalled))}")
    warn += members.warnings(ens, curve_pair or [])
    perm_spec = None
    if spec.align:  # the model's own permutation structure, checked before anything is computed
        perm_spec = ens.model.permutation_spec()
        minima.check_alignable(perm_spec, ens.member(0), ens.member_state(0))
    settings = _settings(ens, {"command": "compare", "members": idx, **dataclasses.asdict(spec), "curve": curve_pair})

    def compute(res):
        batches = _batches(ens, True, execution)
        model = _model(ens, settings, idx, batches)
        fn = models.metrics_fn(model, ens.config["loss"])
        stacked = jax.tree_util.tree_map(lambda x: x[np.asarray(idx)], ens.params)
        arrays = minima.compare_members(
            fn, stacked, data=batches["train"], predict=model.apply, test_x=batches["test"][0], num=spec.grid,
            tol=spec.tol, aligned=spec.align, spec=perm_spec, metric="loss", chunk_size=execution.chunk_size,
            progress=execution.progress, mesh=execution.mesh, checkpoint=res.checkpoints, keep_checkpoint=True,
            save_every_s=execution.save_every_s)
        arrays.update({"members": np.asarray(idx), "seeds": ens.seeds[idx], "learning_rates": ens.learning_rates[idx],
                       "final_train_loss": ens.history.train_loss[idx, -1],
                       "final_test_accuracy": ens.history.test_accuracy[idx, -1]})
        if curve_pair is not None:
            f = models.loss_fn(model, Split(*batches["train"]), ens.config["loss"])
            cv = minima.bezier_curve(f, ens.member(curve_pair[0]), ens.member(curve_pair[1]),
                                     key=jax.random.key(spec.key), steps=spec.curve_steps)
            arrays.update({"curve_t": cv.t, "curve_loss": cv.curve_loss, "line_loss": cv.line_loss,
                           "curve_train_loss": cv.train_loss})
        return arrays, {"kind": "compare", "labels": members.labels(ens, idx), "settings": settings,
                        "curve_labels": None if curve_pair is None else members.labels(ens, curve_pair)}

    default = "compare" + ("" if spec.lr is None else f"_lr{spec.lr:g}") + _suffix(running=spec.statistics == "running")
    return _stored(run, name or default, settings, overwrite, warn, compute)
