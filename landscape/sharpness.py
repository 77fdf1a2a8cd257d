"""Sharpness of a minimum, by every measure the literature argues about — ``ls.sharpness``.

Whether flat minima generalise better is disputed: worst-case sharpness (Keskar et al. 2017)
changes under a reparametrisation that leaves the function alone (Dinh et al. 2017), adaptive
sharpness does not (Kwon et al. 2021), PAC-Bayes flatness ranked best across thousands of
networks (Jiang et al. 2019), and a later look found no measure reliable (Andriushchenko et al.
2023).  This module computes the measures side by side, for one point or for every member of
an ensemble at once:

* :func:`worst_case` — the largest loss increase in a ball (projected gradient ascent; one
  step is SAM's estimate, Foret et al. 2021), plain or adaptive, and m-sharpness;
* :func:`average_case` — the expected increase under Gaussian noise, with its standard error;
* :func:`pac_bayes_sigma` — the largest noise scale whose expected increase stays under a
  target (Jiang et al. 2019), with its interval;
* :func:`fisher_rao_norm` — ``sqrt(θᵀ F θ)`` (Liang et al. 2019);
* :func:`rescale` — Dinh et al.'s function-preserving rescaling, to test invariance;
* :func:`kendall_tau`, :func:`granulated_tau` — how well a measure ranks a generalisation gap
  (Jiang et al. 2019's granulated coefficient).

The top Hessian eigenvalue and trace are :func:`landscape.hessian.top_eigenvalues` and
:func:`landscape.hessian.trace`; ``landscape sharpness`` computes all of them in one command.

Conventions: ``loss`` is a function of one parameter pytree (``ls.models.loss_fn``); keys are
explicit; with ``stacked=True`` the leaves carry a leading member axis ``(M, ...)``, every
member is computed at once (vmapped in chunks of ``execution.chunk_size``, sharded over
``execution.mesh``, resumable with ``execution.checkpoint``), member ``i`` uses the key
``fold_in(key, i)``, and the results are ``(M,)`` numpy arrays.  Perturbation sizes are global
L2 norms over all parameters.  For a model with BatchNorm, pass a loss whose statistics are
fixed or recomputed (:func:`landscape.models.with_statistics`): the perturbation touches the
parameters only.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from .core import chunks, tree
from .core.errors import ConfigError
from .core.execution import Execution
from .core.programs import split

PyTree = Any

__all__ = [
    "Estimate", "Interval", "worst_case", "average_case", "pac_bayes_sigma", "fisher_rao_norm", "rescale",
    "kendall_tau", "granulated_tau", "MEASURES", "INTERVAL_Z",
]

#: Standard errors on either side of :func:`pac_bayes_sigma`'s interval (about 95 %).
INTERVAL_Z = 2.0

#: The measures of ``landscape sharpness --measures`` (:func:`landscape.analyses.sharpness`).
MEASURES = ("worst", "adaptive-worst", "m-sharpness", "average", "adaptive-average", "pac-bayes",
            "adaptive-pac-bayes", "fisher-rao", "lmax", "trace")


class Estimate(NamedTuple):
    """A Monte-Carlo estimate: ``value`` and its standard error ``stderr`` (scalars, or ``(M,)``).

    Attributes:
      value: the estimate.
      stderr: its standard error.

    Examples:
      >>> e = ls.sharpness.Estimate(0.25, 0.01)
      >>> e.value - 2 * e.stderr
      0.23
    """

    value: Any
    stderr: Any


class Interval(NamedTuple):
    """A value with an interval: ``low <= value <= high`` (scalars, or ``(M,)``).

    Attributes:
      value: the value.
      low: the interval's lower end.
      high: the interval's upper end.

    Examples:
      >>> value, low, high = ls.sharpness.Interval(0.2, 0.19, 0.21)
      >>> low <= value <= high
      True
    """

    value: Any
    low: Any
    high: Any


# ---------------------------------------------------------------------- one point
def _flat(params, adaptive: bool, eta: float):
    """``(flat θ, unravel, scale)``: the perturbation of ``ν`` is ``scale * ν`` (``|θ| + η``
    elementwise for the adaptive measures, else 1)."""
    flat, unravel = ravel_pytree(params)
    scale = jnp.abs(flat) + eta if adaptive else jnp.ones_like(flat)
    return flat, unravel, scale


def _check_eta(adaptive: bool, eta: float) -> None:
    if eta < 0 or not math.isfinite(eta):
        raise ConfigError(f"eta must be finite and non-negative, got {eta}")
    if eta and not adaptive:
        raise ConfigError("eta belongs to the adaptive measures (adaptive=True)")


def _ascent(loss, params, key, *, rho, adaptive, steps, eta, step_size):
    """The largest ``loss(θ + s ν) − loss(θ)`` found over ``||ν|| <= rho`` (``s`` the scale),
    by ``steps`` normalised gradient-ascent steps projected onto the ball, the best point seen kept."""
    flat, unravel, scale = _flat(params, adaptive, eta)
    base = loss(params)
    f = lambda nu: loss(unravel(flat + scale * nu))  # noqa: E731
    alpha = rho if step_size is None else step_size
    if key is None:
        nu = jnp.zeros_like(flat)
    else:
        z = jax.random.normal(key, flat.shape, flat.dtype)
        nu = rho * z / jnp.linalg.norm(z)

    def project(v):
        n = jnp.linalg.norm(v)
        return v * jnp.minimum(1.0, rho / jnp.maximum(n, jnp.finfo(v.dtype).tiny))

    def body(carry, _):
        v, best = carry
        val, g = jax.value_and_grad(f)(v)
        g = jnp.where(jnp.isfinite(g), g, 0.0)
        v = project(v + alpha * g / jnp.maximum(jnp.linalg.norm(g), jnp.finfo(g.dtype).tiny))
        return (v, jnp.maximum(best, val)), None

    (nu, best), _ = jax.lax.scan(body, (nu, base), None, length=steps)
    return jnp.maximum(best, f(nu)) - base


def _worst_point(loss, params, key, *, rho, adaptive, steps, eta, step_size, batch_size):
    kw = dict(rho=rho, adaptive=adaptive, steps=steps, eta=eta, step_size=step_size)
    if batch_size is None:
        return {"value": _ascent(loss, params, key, **kw)}
    x, y = loss.x, loss.y
    n = int(x.shape[0])
    k = n // batch_size
    if key is not None:
        order, key = jax.random.split(key)
        perm = jax.random.permutation(order, n)
        x, y = x[perm], y[perm]
    xs = x[: k * batch_size].reshape(k, batch_size, *x.shape[1:])
    ys = y[: k * batch_size].reshape(k, batch_size, *y.shape[1:])

    def one(args):
        xb, yb, b = args
        return _ascent(dataclasses.replace(loss, x=xb, y=yb), params,
                       None if key is None else jax.random.fold_in(key, b), **kw)

    return {"value": jnp.mean(jax.lax.map(one, (xs, ys, jnp.arange(k))))}


def _noise_values(loss, params, key, sigma, *, samples, adaptive, eta):
    """``loss(θ + σ s ε_j) − loss(θ)`` for ``j < samples``, ``ε_j ~ N(0, I)`` from ``fold_in(key, j)``."""
    flat, unravel, scale = _flat(params, adaptive, eta)
    base = loss(params)

    def one(j):
        eps = jax.random.normal(jax.random.fold_in(key, j), flat.shape, flat.dtype)
        return loss(unravel(flat + sigma * scale * eps)) - base

    return jax.lax.map(one, jnp.arange(samples), batch_size=min(samples, 8))


def _mean_se(v):
    return jnp.mean(v), jnp.std(v, ddof=1) / jnp.sqrt(v.shape[0])


def _average_point(loss, params, key, *, sigma, samples, adaptive, eta):
    mean, se = _mean_se(_noise_values(loss, params, key, sigma, samples=samples, adaptive=adaptive, eta=eta))
    return {"value": mean, "stderr": se}


def _pac_bayes_point(loss, params, key, *, target, samples, adaptive, eta, iters, sigma_min, sigma_max, z):
    # Three bisections in log sigma, on one set of noise draws (common random numbers): the mean
    # increase, and the mean plus / minus z standard errors, each crossing the target.
    side = jnp.array([0.0, z, -z])  # value, low (pessimistic increase), high (optimistic)

    def excess(log_sigma):
        def one(s, c):
            m, se = _mean_se(_noise_values(loss, params, key, jnp.exp(s), samples=samples, adaptive=adaptive, eta=eta))
            return m + c * se - target
        return jax.vmap(one)(log_sigma, side)

    def body(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        ok = excess(mid) <= 0
        return jnp.where(ok, mid, lo), jnp.where(ok, hi, mid)

    lo = jnp.full(3, math.log(sigma_min))
    hi = jnp.full(3, math.log(sigma_max))
    lo, hi = jax.lax.fori_loop(0, iters, body, (lo, hi))
    sig = jnp.exp(0.5 * (lo + hi))
    return {"value": sig[0], "low": sig[1], "high": sig[2]}


def _fisher_rao_point(loss, params, key, *, distribution):
    del key
    if distribution == "empirical":
        _, d = jax.jvp(loss.per_example, (params,), (params,))  # <θ, ∇θ ℓ_i> for every example
        return {"value": jnp.sqrt(jnp.mean(d**2))}
    z, dz = jax.jvp(loss.outputs, (params,), (params,))  # logits and their derivative along θ
    logp = jax.nn.log_softmax(z, axis=-1)
    p = jnp.exp(logp)
    dlogp = dz - jnp.sum(p * dz, axis=-1, keepdims=True)  # d log p_k along θ
    return {"value": jnp.sqrt(jnp.mean(jnp.sum(p * dlogp**2, axis=-1)))}


# ---------------------------------------------------------------------- every member
@functools.lru_cache(maxsize=32)
def _member_program(point: Callable, structure, options: tuple, keyed: bool, fold: bool):
    return _program(point, lambda arrays: jax.tree_util.tree_unflatten(structure, arrays), options, keyed, fold)


def _program(point: Callable, rebuild, options: tuple, keyed: bool, fold: bool):
    """``jit(vmap)`` of ``point`` over members; member ``i`` gets ``fold_in(key, i)`` (``fold``),
    ``key`` itself (one point), or no key."""
    opts = dict(options)

    def f(arrays, params, i, key):
        k = (jax.random.fold_in(key, i) if fold else key) if keyed else None
        return point(rebuild(arrays), params, k, **opts)

    return jax.jit(jax.vmap(f, in_axes=(None, 0, 0, None)))


def _measure(point: Callable, loss, params, key, *, stacked: bool, execution: Execution | None, label: str,
             **options) -> dict:
    """``point(loss, params, key, **options)`` at one point (jitted), or at every member."""
    structure, arrays, rebuild = split(loss)
    opts = tuple(sorted(options.items()))
    keyed = key is not None
    # member i of a stack gets fold_in(key, i); one point gets the key itself
    run = (_member_program(point, structure, opts, keyed, stacked) if structure is not None
           else _program(point, rebuild, opts, keyed, stacked))
    root = key if keyed else jax.random.key(0)
    if not stacked:
        out = run(arrays, tree.with_member_axis(params), jnp.zeros(1, jnp.int32), root)
        return {k: v[0] for k, v in out.items()}
    execution = execution or Execution()
    fp = (chunks.fingerprint(label, repr(opts), key if keyed else "no key", params)
          if execution.checkpoint is not None else None)
    take = lambda idx: jax.tree_util.tree_map(lambda x: np.asarray(x)[idx], params)  # noqa: E731
    return chunks.map_points(run, arrays, take, tree.num_members(params), root, depends_on=fp,
                             execution=execution.labelled(label), unit="member")


def _check_positive(**values) -> None:
    for name, v in values.items():
        if not (isinstance(v, (int, float, np.integer, np.floating)) and math.isfinite(v) and v > 0):
            raise ConfigError(f"{name} must be a finite positive number, got {v!r}")


# ---------------------------------------------------------------------- public
def worst_case(loss: Callable[[PyTree], jax.Array], params: PyTree, *, rho: float, adaptive: bool = False,
               steps: int = 20, batch_size: int | None = None, key: jax.Array | None = None, stacked: bool = False,
               eta: float = 0.0, step_size: float | None = None, execution: Execution | None = None):
    """Worst-case sharpness: ``max_{||δ|| <= rho} loss(θ + δ) − loss(θ)`` (Keskar et al. 2017).

    Found by projected gradient ascent on the ball: ``steps`` steps of length ``step_size``
    (default ``rho``) along the normalised gradient, each projected back onto the ball; the
    largest value seen is kept (``δ = 0`` included, so the answer is never negative).  Without a
    key the ascent starts at ``δ = 0`` and ``steps=1`` is SAM's first-order estimate
    ``loss(θ + rho g/||g||) − loss(θ)`` (Foret et al. 2021); with a key it starts at a random
    point of the sphere of radius ``rho`` (needed exactly at a critical point, where ``g = 0``).

    ``adaptive=True`` is adaptive sharpness (Kwon et al. 2021): ``δ = (|θ| + eta) ⊙ ν`` with
    ``||ν|| <= rho``.  With ``eta = 0`` it is exactly invariant to rescaling a ReLU layer by
    ``α`` and the next by ``1/α`` (:func:`rescale`), since the ball rescales with the weights;
    ``eta > 0`` lets parameters at zero move, at the price of that invariance.

    ``batch_size=m`` is m-sharpness (Foret et al. 2021; Andriushchenko & Flammarion 2022): the
    mean over disjoint batches of ``m`` examples of each batch's own worst case.  It needs a
    loss that knows its examples (``ls.models.loss_fn(model, split, loss)``, without
    ``batch_size``).  The ``N mod m`` remaining examples are left out.  With a key the batches
    are a random partition (permutation from ``split(key)[0]``) and batch ``b`` starts its ascent
    from ``fold_in(split(key)[1], b)``; without one they are consecutive.

    Args:
      loss: ``params -> scalar``.
      params: one point, or with ``stacked=True`` the members, leaves ``(M, ...)``.
      rho: the ball's radius (global L2 norm; of ``ν`` for the adaptive measure).
      adaptive: the adaptive measure.
      steps: gradient-ascent steps (``1`` without a key: SAM's estimate).
      batch_size: ``m`` for m-sharpness (``None``: the whole loss at once).
      key: PRNG key of the random start (and of the batches); ``None``: start at ``δ = 0``.
      stacked: every member at once (member ``i`` uses ``fold_in(key, i)``).
      eta: the adaptive ball's offset ``|θ| + eta``.
      step_size: the ascent's step length (default ``rho``).
      execution: for ``stacked``: chunking, devices, checkpoint, progress; changes no number.

    Returns:
      a scalar, or with ``stacked`` a ``(M,)`` numpy array.

    Raises:
      ConfigError: a non-positive ``rho`` or ``steps``, ``eta`` without ``adaptive``, or m-sharpness
        of a loss that does not hold its examples, or with ``m`` above their number.

    Examples:
      >>> quad = lambda p: 0.5 * jnp.sum(jnp.array([4.0, 1.0]) * p["w"] ** 2)   # Hessian diag(4, 1)
      >>> s = ls.sharpness.worst_case(quad, {"w": jnp.zeros(2)}, rho=0.1, steps=30, key=jax.random.key(0))
      >>> round(float(s), 6)                                  # ½ λmax rho² = ½ · 4 · 0.01
      0.02
    """
    _check_positive(rho=rho, steps=steps)
    if step_size is not None:
        _check_positive(step_size=step_size)
    _check_eta(adaptive, eta)
    if batch_size is not None:
        _check_batches(loss, batch_size)
    out = _measure(_worst_point, loss, params, key, stacked=stacked, execution=execution,
                   label="m-sharpness" if batch_size else "worst-case sharpness", rho=float(rho),
                   adaptive=bool(adaptive), steps=int(steps), eta=float(eta),
                   step_size=None if step_size is None else float(step_size),
                   batch_size=None if batch_size is None else int(batch_size))
    return out["value"]


def _check_batches(loss, batch_size: int) -> None:
    _check_positive(batch_size=batch_size)
    if not (dataclasses.is_dataclass(loss) and {"x", "y"} <= {f.name for f in dataclasses.fields(loss)}):
        raise ConfigError("m-sharpness (batch_size) needs a loss that holds its examples: "
                          "ls.models.loss_fn(model, data.train, loss) without batch_size")
    n = int(np.shape(loss.x)[0])
    if batch_size > n:
        raise ConfigError(f"m-sharpness batches of {batch_size} need at least {batch_size} examples; the loss has {n}")


def average_case(loss: Callable[[PyTree], jax.Array], params: PyTree, *, sigma: float, samples: int,
                 key: jax.Array, adaptive: bool = False, stacked: bool = False, eta: float = 0.0,
                 execution: Execution | None = None) -> Estimate:
    """Average-case sharpness: ``E[loss(θ + δ)] − loss(θ)``, ``δ ~ N(0, σ² I)`` (adaptive:
    ``δ = σ (|θ| + eta) ⊙ ε``, ``ε ~ N(0, I)``), estimated from ``samples`` draws (Jiang et al.
    2019's sharpness-of-expected-loss family; Kwon et al. 2021 for the adaptive scaling).

    At a minimum of a quadratic ``½ θᵀAθ`` its expectation is ``½ σ² tr A``.  Draw ``j`` uses
    ``fold_in(key, j)`` (common to every σ, so curves in σ are smooth).

    Args:
      loss: ``params -> scalar``.
      params: one point, or with ``stacked=True`` the members, leaves ``(M, ...)``.
      sigma: the noise scale.
      samples: Monte-Carlo draws (at least 2, for the standard error).
      key: PRNG key of the draws.
      adaptive: scale the noise by ``|θ| + eta``.
      stacked: every member at once (member ``i`` uses ``fold_in(key, i)``).
      eta: the adaptive scale's offset.
      execution: for ``stacked``: chunking, devices, checkpoint, progress; changes no number.

    Returns:
      an :class:`Estimate` ``(value, stderr)``: scalars, or ``(M,)`` arrays.

    Examples:
      >>> quad = lambda p: 0.5 * jnp.sum(jnp.array([4.0, 1.0]) * p["w"] ** 2)   # tr A = 5
      >>> e = ls.sharpness.average_case(quad, {"w": jnp.zeros(2)}, sigma=0.1, samples=4000, key=jax.random.key(0))
      >>> bool(abs(e.value - 0.5 * 0.01 * 5) < 4 * e.stderr)   # ½ σ² tr A = 0.025
      True
    """
    _check_positive(sigma=sigma)
    if not isinstance(samples, (int, np.integer)) or samples < 2:
        raise ConfigError(f"samples must be an integer of at least 2, got {samples!r}")
    _check_eta(adaptive, eta)
    out = _measure(_average_point, loss, params, key, stacked=stacked, execution=execution,
                   label="average-case sharpness", sigma=float(sigma), samples=int(samples),
                   adaptive=bool(adaptive), eta=float(eta))
    return Estimate(out["value"], out["stderr"])


def pac_bayes_sigma(loss: Callable[[PyTree], jax.Array], params: PyTree, *, target: float, samples: int,
                    key: jax.Array, adaptive: bool = False, stacked: bool = False, eta: float = 0.0,
                    iters: int = 20, sigma_range: tuple[float, float] = (1e-5, 10.0),
                    execution: Execution | None = None) -> Interval:
    """PAC-Bayes flatness: the largest ``σ`` whose expected increase ``E[loss(θ + δ)] − loss(θ)``
    (``δ`` as in :func:`average_case`) is at most ``target`` (Jiang et al. 2019, section 6 and
    appendix: their best single predictor of generalisation, as ``1/σ²``; with ``adaptive`` the
    magnitude-aware version).

    Found by bisection in ``log σ`` over ``sigma_range`` (``iters`` halvings; a σ outside the
    range is clipped to its ends), on ``samples`` fixed noise draws (draw ``j``:
    ``fold_in(key, j)``), so the estimated increase is a smooth function of σ.  The interval is
    where the same bisection puts σ when the estimated increase is shifted by ``± z`` standard
    errors: ``low`` solves ``mean + z·se = target``, ``high`` solves ``mean − z·se = target``
    (``z`` = :data:`INTERVAL_Z` = 2, about 95 %) — the σ the Monte-Carlo error allows.  At a minimum of ``½ θᵀAθ``: ``σ = sqrt(2 target / tr A)``.

    Args:
      loss: ``params -> scalar``.
      params: one point, or with ``stacked=True`` the members, leaves ``(M, ...)``.
      target: the allowed expected increase of the loss (Jiang et al. use 0.1 of the error).
      samples: noise draws per evaluated σ (at least 2).
      key: PRNG key of the draws.
      adaptive: scale the noise by ``|θ| + eta``.
      stacked: every member at once (member ``i`` uses ``fold_in(key, i)``).
      eta: the adaptive scale's offset.
      iters: bisection steps (20 resolve the default range to a factor 1.00002).
      sigma_range: ``(lowest, highest)`` σ searched.
      execution: for ``stacked``: chunking, devices, checkpoint, progress; changes no number.

    Returns:
      an :class:`Interval` ``(value, low, high)``: scalars, or ``(M,)`` arrays.

    Examples:
      >>> quad = lambda p: 0.5 * jnp.sum(jnp.array([4.0, 1.0]) * p["w"] ** 2)   # tr A = 5
      >>> s = ls.sharpness.pac_bayes_sigma(quad, {"w": jnp.zeros(2)}, target=0.1, samples=2000, key=jax.random.key(0))
      >>> bool(s.low <= s.value <= s.high), round(float(s.value), 1)     # sqrt(2 · 0.1 / 5) = 0.2
      (True, 0.2)
    """
    _check_positive(target=target, iters=iters)
    if not isinstance(samples, (int, np.integer)) or samples < 2:
        raise ConfigError(f"samples must be an integer of at least 2, got {samples!r}")
    lo, hi = (float(s) for s in sigma_range)
    if not (0 < lo < hi and math.isfinite(hi)):
        raise ConfigError(f"sigma_range must be two positive numbers, lowest first, got {sigma_range!r}")
    _check_eta(adaptive, eta)
    out = _measure(_pac_bayes_point, loss, params, key, stacked=stacked, execution=execution,
                   label="PAC-Bayes sigma", target=float(target), samples=int(samples), adaptive=bool(adaptive),
                   eta=float(eta), iters=int(iters), sigma_min=lo, sigma_max=hi, z=INTERVAL_Z)
    return Interval(out["value"], out["low"], out["high"])


def fisher_rao_norm(loss, params: PyTree, *, distribution: str = "empirical", stacked: bool = False,
                    execution: Execution | None = None):
    """The Fisher–Rao norm ``sqrt(θᵀ F(θ) θ)`` (Liang et al. 2019).

    ``θᵀ F θ = E[⟨θ, ∇_θ ℓ⟩²]`` is computed exactly as the mean square of the directional
    derivative of the log-loss along ``θ`` itself — one forward-mode pass, no identity that
    needs a bias-free ReLU network.  ``distribution="empirical"`` takes ``ℓ`` the per-example
    loss at the data's labels (the empirical Fisher; any loss); ``"model"`` takes the
    expectation over labels drawn from the model's softmax (the Fisher information of
    Liang et al.'s definition; cross-entropy on logits only).

    Args:
      loss: a loss of a model's outputs: ``ls.models.loss_fn(model, split, loss)`` (or any
        object with ``per_example(params) -> (N,)``; ``"model"`` also needs ``outputs(params) ->
        (N, K)`` logits and ``loss == "cross_entropy"``).
      params: one point, or with ``stacked=True`` the members, leaves ``(M, ...)``.
      distribution: ``"empirical"`` or ``"model"``.
      stacked: every member at once.
      execution: for ``stacked``: chunking, devices, checkpoint, progress; changes no number.

    Returns:
      a scalar, or with ``stacked`` a ``(M,)`` numpy array.

    Raises:
      ConfigError: a loss without per-example losses, or ``"model"`` for a loss that is not
        cross-entropy of logits.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> model = ls.MLP(hidden=(4,), output_activation="identity").for_data(data)
      >>> theta = model.init(jax.random.key(0))
      >>> loss = ls.models.loss_fn(model, data.train, "cross_entropy")
      >>> fr = ls.sharpness.fisher_rao_norm(loss, theta)
      >>> g = jnp.stack([ls.tree.vdot(theta, jax.grad(lambda p: loss.per_example(p)[i])(theta)) for i in range(64)])
      >>> bool(jnp.allclose(fr, jnp.sqrt(jnp.mean(g ** 2)), rtol=1e-4))
      True
    """
    if distribution not in ("empirical", "model"):
        raise ConfigError(f"distribution must be 'empirical' or 'model', got {distribution!r}")
    if not callable(getattr(loss, "per_example", None)):
        raise ConfigError("the Fisher-Rao norm needs per-example losses: pass ls.models.loss_fn(model, split, loss) "
                          "(without batch_size)")
    if distribution == "model" and (getattr(loss, "loss", None) != "cross_entropy"
                                    or not callable(getattr(loss, "outputs", None))):
        raise ConfigError("the model-distribution Fisher-Rao norm is defined for cross-entropy on logits; "
                          "use distribution='empirical' for this loss")
    out = _measure(_fisher_rao_point, loss, params, None, stacked=stacked, execution=execution,
                   label="Fisher-Rao norm", distribution=distribution)
    return out["value"]


# ---------------------------------------------------------------------- reparametrisation
def rescale(params: PyTree, factors: Mapping[str, float]) -> PyTree:
    """Multiply parameters by per-layer factors: Dinh et al. 2017's reparametrisation.

    For a ReLU network (positively homogeneous), multiplying one layer's weights and bias by
    ``α`` and the next layer's weights (not its bias) by ``1/α`` computes the same function,
    yet changes plain sharpness (the Hessian's eigenvalues scale by ``1/α²`` and ``α²``
    within those layers).  Adaptive measures do not change.

    Args:
      params: one point's parameters (or stacked members: every member scaled alike).
      factors: ``{path: factor}``; a path names a leaf (``"Dense_1/kernel"``) or everything
        under it (``"Dense_0"``), as :func:`landscape.tree.key_paths` spells them.

    Returns:
      the rescaled parameters (same structure).

    Raises:
      ConfigError: a path that names no parameter.

    Examples:
      >>> theta = {"Dense_0": {"kernel": jnp.ones((2, 3)), "bias": jnp.ones(3)},
      ...          "Dense_1": {"kernel": jnp.ones((3, 1)), "bias": jnp.ones(1)}}
      >>> r = ls.sharpness.rescale(theta, {"Dense_0": 10.0, "Dense_1/kernel": 0.1})
      >>> [round(float(r[layer][leaf].ravel()[0]), 6) for layer, leaf in (("Dense_0", "bias"), ("Dense_1", "kernel"),
      ...                                                                  ("Dense_1", "bias"))]
      [10.0, 0.1, 1.0]
    """
    paths = tree.key_paths(params)
    for p in factors:
        if not any(q == p or q.startswith(p + "/") for q in paths):
            raise ConfigError(f"no parameter at {p!r}; the parameters are {', '.join(paths)}")

    def factor(path: str) -> float:
        out = 1.0
        for p, f in factors.items():
            if path == p or path.startswith(p + "/"):
                out *= float(f)
        return out

    leaves, treedef = jax.tree_util.tree_flatten(params)
    return jax.tree_util.tree_unflatten(treedef, [leaf * factor(p) for p, leaf in zip(paths, leaves)])


# ---------------------------------------------------------------------- rank correlation
def kendall_tau(measure: Sequence[float], gap: Sequence[float]) -> float:
    """Kendall's rank correlation τ-b of a measure with the generalisation gap (ties counted
    as Kendall's τ-b does): +1 when the measure orders every pair of networks as their gaps.

    Args:
      measure: ``(n,)`` one value per network.
      gap: ``(n,)`` their generalisation gaps.

    Returns:
      τ in ``[-1, 1]`` (NaN for fewer than two networks or a constant input).

    Examples:
      >>> round(ls.sharpness.kendall_tau([1.0, 2.0, 3.0], [0.1, 0.3, 0.2]), 6)   # (2 concordant - 1) / 3 pairs
      0.333333
    """
    from scipy import stats

    m, g = np.asarray(measure, float), np.asarray(gap, float)
    if m.shape != g.shape or m.ndim != 1:
        raise ConfigError(f"measure and gap must be two vectors of one length, got {m.shape} and {g.shape}")
    ok = np.isfinite(m) & np.isfinite(g)
    if ok.sum() < 2:
        return float("nan")
    return float(stats.kendalltau(m[ok], g[ok]).statistic)


def granulated_tau(measure: Sequence[float], gap: Sequence[float],
                   hyperparameters: Mapping[str, Sequence[Any]]) -> dict[str, float]:
    """Jiang et al. 2019's granulated Kendall coefficient.

    For each hyper-parameter ``i``, the networks are grouped by the values of all the *other*
    hyper-parameters; within a group only ``i`` varies, and τ is taken there.  ``ψ_i`` is the
    mean of those τ over the groups (groups with fewer than two finite networks are skipped);
    ``Ψ`` is the mean of the ``ψ_i``.  It asks whether the measure tracks the gap when one
    knob turns, which the overall τ can hide.

    Args:
      measure: ``(n,)`` one value per network.
      gap: ``(n,)`` their generalisation gaps.
      hyperparameters: ``{name: (n,) values}``, the grid coordinates of every network (the
        seed may be one of them, or be left out to pool seeds within a group).

    Returns:
      ``{name: ψ_name, ..., "granulated": Ψ}``.

    Examples:
      >>> gap = [1.0, 2.0, 3.0, 4.0]
      >>> hp = {"lr": [0.1, 0.1, 1.0, 1.0], "width": [8, 16, 8, 16]}
      >>> ls.sharpness.granulated_tau([1.0, 2.0, 3.0, 4.0], gap, hp)
      {'lr': 1.0, 'width': 1.0, 'granulated': 1.0}
    """
    m, g = np.asarray(measure, float), np.asarray(gap, float)
    cols = {k: np.asarray(v) for k, v in hyperparameters.items()}
    for k, v in cols.items():
        if v.shape != m.shape:
            raise ConfigError(f"hyper-parameter {k!r} has {v.shape[0] if v.ndim else 0} values for {m.shape[0]} networks")
    out = {}
    for name in cols:
        others = [cols[k] for k in cols if k != name]
        keys = [tuple(o[j] for o in others) for j in range(m.shape[0])]
        taus = []
        for group in dict.fromkeys(keys):
            idx = np.array([j for j, k in enumerate(keys) if k == group])
            t = kendall_tau(m[idx], g[idx]) if idx.size >= 2 else float("nan")
            if np.isfinite(t):
                taus.append(t)
        out[name] = float(np.mean(taus)) if taus else float("nan")
    psi = [v for v in out.values() if np.isfinite(v)]
    out["granulated"] = float(np.mean(psi)) if psi else float("nan")
    return out
