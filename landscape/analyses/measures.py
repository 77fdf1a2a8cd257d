"""The ``sharpness`` command: every member's sharpness by every chosen measure, stored.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..core.errors import ConfigError
from ..core.execution import Execution
from ..store import members
from . import common
from .common import Outcome

__all__ = ["SharpnessSpec", "sharpness"]


@dataclasses.dataclass(frozen=True)
class SharpnessSpec:
    """Which sharpness measures of the training loss, at every member, and their sizes
    (:mod:`landscape.sharpness`; Keskar et al. 2017, Foret et al. 2021, Kwon et al. 2021,
    Jiang et al. 2019, Liang et al. 2019).

    Attributes:
      measures: names from :data:`landscape.sharpness.MEASURES`: ``worst``, ``adaptive-worst``,
        ``m-sharpness``, ``average``, ``adaptive-average``, ``pac-bayes``, ``adaptive-pac-bayes``,
        ``fisher-rao``, ``lmax`` (top Hessian eigenvalue), ``trace`` (Hutchinson).
      rho: the plain worst-case ball's radius (also m-sharpness's).
      adaptive_rho: the adaptive worst-case ball's radius (a relative size: 0.5 moves each
        parameter by up to about half its magnitude).
      sigma: the plain average-case noise scale.
      adaptive_sigma: the adaptive average-case noise scale (relative).
      batch_size: ``m`` of m-sharpness.
      steps: gradient-ascent steps of the worst-case measures.
      samples: noise draws of the average-case and PAC-Bayes measures (and Hutchinson probes).
      target: the PAC-Bayes measures' allowed expected loss increase.
      eta: the adaptive measures' offset ``|θ| + eta``.
      fisher: the Fisher–Rao norm's label distribution, ``"empirical"`` or ``"model"``.
      key: the PRNG seed of every random start, draw and probe.
      statistics: for a model with BatchNorm: ``"recompute"`` (default) or ``"running"``.
      noise: for a model with random layers (dropout): ``None`` evaluates in evaluation mode
        (default); a seed evaluates in training mode with that fixed noise key (a stochastic
        landscape, :func:`landscape.models.with_noise`).

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10))
      >>> s = ls.analyses.sharpness(run, ls.analyses.SharpnessSpec(measures=("worst", "lmax"), samples=8))
      >>> s.arrays["worst"].shape, bool(np.all(s.arrays["worst"] >= 0))
      ((3,), True)
    """

    measures: tuple[str, ...] = ("worst", "adaptive-worst", "average", "adaptive-average", "pac-bayes",
                                 "adaptive-pac-bayes", "fisher-rao", "lmax", "trace")
    rho: float = 0.05
    adaptive_rho: float = 0.5
    sigma: float = 0.01
    adaptive_sigma: float = 0.1
    batch_size: int = 128
    steps: int = 20
    samples: int = 64
    target: float = 0.1
    eta: float = 0.0
    fisher: str = "empirical"
    key: int = 0
    statistics: str | None = None
    noise: int | None = None


def _check(spec: SharpnessSpec) -> tuple[str, ...]:
    from ..sharpness import MEASURES

    measures = tuple(dict.fromkeys(spec.measures))
    unknown = [m for m in measures if m not in MEASURES]
    if unknown or not measures:
        raise ConfigError(f"unknown sharpness measure {', '.join(map(repr, unknown)) or '(none given)'}; "
                          f"choose from {', '.join(MEASURES)}")
    return measures


def sharpness(run, spec: SharpnessSpec, *, name: str | None = None, overwrite: bool = False,
              execution: Execution = Execution(chunk_size=16)) -> Outcome:
    """Every member's sharpness by each measure of ``spec``; arrays: one ``(M,)`` per measure
    (named as the measure), with ``<measure>_stderr`` (average-case, trace) or ``<measure>_low``
    / ``<measure>_high`` (PAC-Bayes σ) where there is an error, and per member ``seeds``,
    ``learning_rates``, ``train_loss``, ``test_loss``, ``train_accuracy``, ``test_accuracy``,
    ``diverged``, ``learned``.  Member ``i``'s random starts and draws use
    ``fold_in(fold_in(key, j), i)`` for the ``j``-th measure of :data:`landscape.sharpness.MEASURES`;
    ``lmax`` and ``trace`` come from one pass of :func:`landscape.hessian.ensemble_curvature`,
    keyed by the first of them asked for.

    Args:
      run: the run directory.
      spec: the settings (:class:`SharpnessSpec`); everything the numbers depend on.
      name: the result's name under ``RUN/results/`` (default ``sharpness``).
      overwrite: recompute and replace a saved result (otherwise a current one is reused and one
        with other settings is refused, naming what differs).
      execution: how it runs (progress, devices, chunk size); changes no number.

    Returns:
      an :class:`Outcome`.

    Raises:
      ConfigError: an unknown measure or bad settings, or a saved result of this name computed
        from something else.

    The same as ``landscape sharpness``.

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10))
      >>> s = ls.analyses.sharpness(run, ls.analyses.SharpnessSpec(measures=("average", "pac-bayes"), samples=8))
      >>> sorted(k for k in s.arrays if k.startswith(("average", "pac-bayes")))
      ['average', 'average_stderr', 'pac-bayes', 'pac-bayes_high', 'pac-bayes_low']
    """
    import jax

    from .. import curvature, models
    from .. import sharpness as sh
    from ..data import Split
    from ..training.ensemble import learned

    common.single_process("sharpness")
    measures = _check(spec)
    if spec.fisher not in ("empirical", "model"):
        raise ConfigError(f"fisher must be 'empirical' or 'model', got {spec.fisher!r}")
    for field in ("rho", "adaptive_rho", "sigma", "adaptive_sigma", "target"):
        v = getattr(spec, field)
        if not (np.isfinite(v) and v > 0):
            raise ConfigError(f"{field.replace('_', '-')} must be a finite positive number, got {v}")
    if spec.samples < 2 or spec.steps < 1 or spec.batch_size < 1:
        raise ConfigError("samples must be at least 2, steps and batch size positive")
    ens = common.load(run, execution)
    settings = common.settings(ens, {"command": "sharpness", **dataclasses.asdict(spec), "measures": list(measures)})
    warn = members.warnings(ens, range(ens.num_members))
    if "fisher-rao" in measures and spec.fisher == "model" and ens.config["loss"] != "cross_entropy":
        raise ConfigError("the model-distribution Fisher-Rao norm needs a cross-entropy run; use --fisher empirical")

    def compute(res):
        batches = common.batches(ens, False, execution)
        split = Split(*batches["train"])
        model = common.model(ens, settings, range(ens.num_members), batches)
        loss = models.loss_fn(model, split, ens.config["loss"])
        root = jax.random.key(spec.key)
        out, curv = {}, None
        for j, measure in enumerate(sh.MEASURES):
            if measure not in measures:
                continue
            key = jax.random.fold_in(root, j)
            ex = dataclasses.replace(execution, checkpoint=res.checkpoints / f"{measure}.npz", keep_checkpoint=True)
            adaptive = measure.startswith("adaptive-")
            eta = spec.eta if adaptive else 0.0
            common_kw = dict(stacked=True, execution=ex)
            if measure in ("worst", "adaptive-worst", "m-sharpness"):
                out[measure] = sh.worst_case(
                    loss, ens.params, rho=spec.adaptive_rho if adaptive else spec.rho, adaptive=adaptive,
                    steps=spec.steps, batch_size=spec.batch_size if measure == "m-sharpness" else None, key=key,
                    eta=eta, **common_kw)
            elif measure in ("average", "adaptive-average"):
                e = sh.average_case(loss, ens.params, sigma=spec.adaptive_sigma if adaptive else spec.sigma,
                                    samples=spec.samples, key=key, adaptive=adaptive, eta=eta, **common_kw)
                out[measure], out[f"{measure}_stderr"] = e.value, e.stderr
            elif measure in ("pac-bayes", "adaptive-pac-bayes"):
                iv = sh.pac_bayes_sigma(loss, ens.params, target=spec.target, samples=spec.samples, key=key,
                                        adaptive=adaptive, eta=eta, **common_kw)
                out[measure], out[f"{measure}_low"], out[f"{measure}_high"] = iv
            elif measure == "fisher-rao":
                out[measure] = sh.fisher_rao_norm(loss, ens.params, distribution=spec.fisher, **common_kw)
            else:  # lmax and trace: one pass of the Hessian driver gives both (keyed by the first asked)
                if curv is None:
                    curv = curvature.ensemble_curvature(loss, ens.params, key=key, top=1, trace_probes=spec.samples,
                                                        execution=dataclasses.replace(ex, checkpoint=res.checkpoints
                                                                                      / "hessian.npz"))
                if measure == "lmax":
                    out[measure] = curv["top"][:, 0]
                else:
                    out[measure], out[f"{measure}_stderr"] = curv["trace"], curv["trace_stderr"]
        h = ens.history
        arrays = {k: np.asarray(v, np.float32) for k, v in out.items()}
        arrays.update({"seeds": ens.seeds, "learning_rates": ens.learning_rates, "train_loss": h.train_loss[:, -1],
                       "test_loss": h.test_loss[:, -1], "train_accuracy": h.train_accuracy[:, -1],
                       "test_accuracy": h.test_accuracy[:, -1], "diverged": ens.diverged, "learned": learned(ens)})
        return arrays, {"kind": "sharpness", "measures": list(measures),
                        "labels": members.labels(ens, range(ens.num_members)), "loss": ens.config["loss"]}

    return common.stored(run, name or "sharpness" + common.suffix(**common.modes(spec)), settings,
                         overwrite, warn, compute)
