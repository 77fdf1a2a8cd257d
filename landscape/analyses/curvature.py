"""The ``hessian`` command: every member's curvature spectrum (and per-layer blocks, mini-batch spread), stored.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..core.errors import ConfigError
from ..core.execution import Execution
from ..store import members
from . import common
from .common import Outcome

__all__ = ["HessianSpec", "hessian"]


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
      noise: for a model with random layers (dropout): ``None`` evaluates in evaluation mode
        (default); a seed evaluates in training mode with that fixed noise key (a stochastic
        landscape, :func:`landscape.models.with_noise`).

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
    noise: int | None = None


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

    from .. import curvature as hessian_mod
    from .. import models
    from ..data import Split
    from ..training.ensemble import learned

    common.single_process("hessian")
    ens = common.load(run, execution)
    settings = common.settings(ens, {"command": "hessian", **dataclasses.asdict(spec)})
    warn = members.warnings(ens, range(ens.num_members))

    if spec.minibatches and spec.batch_size is None:
        raise ConfigError("mini-batch estimates need a batch size (--batch-size)")

    def compute(res):
        batches = common.batches(ens, False, execution)
        split = Split(*batches["train"])
        model = common.model(ens, settings, range(ens.num_members), batches)
        f = models.loss_fn(model, split, ens.config["loss"], batch_size=spec.batch_size)
        sample = None
        if spec.minibatches:  # one draw of disjoint batches, shared by every member
            sample = models.minibatch_loss(model, split, ens.config["loss"], batch_size=spec.batch_size,
                                           num_batches=spec.minibatches,
                                           key=jax.random.fold_in(jax.random.key(spec.key), 1))

        def curvature(select, part):
            return hessian_mod.ensemble_curvature(
                f, ens.params, key=jax.random.key(spec.key), top=spec.top, num_iters=spec.iters,
                trace_probes=spec.probes, density=spec.density,
                execution=dataclasses.replace(execution, checkpoint=res.checkpoints / f"{part}.npz",
                                              keep_checkpoint=True), select=select, curvature=spec.curvature,
                                              minibatches=sample)

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

    return common.stored(run, name or spec.curvature + common.suffix(**common.modes(spec)), settings,
    overwrite,
                   warn, compute)
