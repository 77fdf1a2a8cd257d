"""The ``train`` and ``demo`` commands: a seed sweep of a built-in model, saved as a run directory.
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path

from ..core.errors import ConfigError
from ..core.execution import Execution
from ..core.loss_names import loss_name

__all__ = ["TrainSpec", "train", "demo_spec"]


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
      loss: ``"mse"`` or ``"cross_entropy"`` (or an alias, :func:`landscape.models.loss_name`).
      optimizer: the optimizer's name (:class:`landscape.optim.OptimizerSpec`).
      lr: learning rates; several sweep seeds × rates.
      momentum: for ``momentum``, ``nesterov``, ``rmsprop``.
      steps: optimizer steps.
      batch_size: minibatch size (``None``: full batch).
      seeds: how many random starts (seeds ``0 .. seeds - 1``).
      key: the root PRNG seed.
      log_every: history interval in steps.
      snapshot_every: parameter-snapshot interval (``None``: none).
      track_every: track the top Hessian eigenvalues of every member's training loss every this
        many steps inside the training loop (a multiple of ``log_every``; ``None``: none;
        :class:`landscape.train.Tracking`).
      track_top: how many of the largest eigenvalues to track.
      track_trace: also track the Hessian trace (Hutchinson).
      track_subset: track on the first this many training examples (``None``: all).

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
    track_every: int | None = None
    track_top: int = 1
    track_trace: bool = False
    track_subset: int | None = None

    def tracking(self):
        """The :class:`landscape.train.Tracking` these settings ask for, or ``None``."""
        if self.track_every is None:
            return None
        from ..training.tracking import Tracking

        return Tracking(every=self.track_every, top=self.track_top, trace=self.track_trace, subset=self.track_subset)


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

    from .. import data as data_mod
    from .. import models
    from ..core import distributed, files
    from ..store import runs as io
    from ..training import engine as train_mod
    from ..training import optim

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
            out_act = "sigmoid" if loss_name(spec.loss) == "mse" else "identity"
        if spec.model_file is not None:
            from ..models import model_file as model_files

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
            log_every=spec.log_every, snapshot_every=spec.snapshot_every, track=spec.tracking(),
            execution=Execution(progress=execution.progress and writer, mesh=execution.mesh))
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
