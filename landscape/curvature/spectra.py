"""Lanczos eigenvalues and Hutchinson traces of any curvature matrix of any loss."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.linalg import eigh_tridiagonal

from ..core.errors import ConfigError
from .density import Density
from .operators import LossFn, PyTree, Selection, flat_matvec
from .stacked import run_stacked

__all__ = ["Tridiagonal", "lanczos", "ritz_values", "Eigen", "top_eigenpairs", "top_eigenvalues", "smallest_eigenvalue",
           "trace", "spectral_density"]


class Tridiagonal(NamedTuple):
    """Result of :func:`lanczos`: ``alpha (m,)`` diagonal, ``beta (m-1,)`` off-diagonal, ``basis (m, P)``.

    Attributes:
      alpha: ``(m,)`` the diagonal.
      beta: ``(m - 1,)`` the off-diagonal.
      basis: ``(m, P)`` the Lanczos vectors.

    Examples:
      >>> t = ls.hessian.lanczos(lambda v: jnp.array([3.0, 2.0, 1.0]) * v, jnp.ones(3), 3, key=jax.random.key(0))
      >>> t.alpha.shape, t.beta.shape, t.basis.shape
      ((3,), (2,), (3, 3))
    """

    alpha: jax.Array
    beta: jax.Array
    basis: jax.Array

    def matrix(self) -> jax.Array:
        """The ``(m, m)`` tridiagonal matrix."""
        return jnp.diag(self.alpha) + jnp.diag(self.beta, 1) + jnp.diag(self.beta, -1)


def lanczos(matvec: Callable[[jax.Array], jax.Array], v0: jax.Array, num_iters: int, *, key: jax.Array) -> Tridiagonal:
    """``num_iters`` Lanczos steps on a symmetric operator from start vector ``v0 (P,)``.

    Full re-orthogonalisation against every previous basis vector (twice) keeps the basis
    orthonormal to working precision.  ``key`` draws restart vectors after a breakdown.

    Args:
      matvec: ``(P,) -> (P,)``, a symmetric linear operator.
      v0: ``(P,)`` the start vector (normalised here).
      num_iters: steps ``m`` (at most ``P``).
      key: PRNG key of restart vectors.

    Returns:
      a :class:`Tridiagonal`: the ``(m,)`` diagonal, ``(m - 1,)`` off-diagonal and ``(m, P)``
      basis (Lanczos 1950; Golub & Van Loan, *Matrix Computations*, §10.1).

    Examples:
      >>> t = ls.hessian.lanczos(lambda v: jnp.array([3.0, 2.0, 1.0]) * v, jnp.ones(3), 3, key=jax.random.key(0))
      >>> T = jnp.diag(t.alpha) + jnp.diag(t.beta, 1) + jnp.diag(t.beta, -1)
      >>> jnp.linalg.eigvalsh(T).round(4).tolist()             # the Ritz values: here the whole spectrum
      [1.0, 2.0, 3.0]
    """
    p = v0.shape[0]
    m = int(num_iters)
    if m < 1:
        raise ConfigError(f"Lanczos needs at least one iteration, got {num_iters}")
    if m > p:
        raise ConfigError(f"Lanczos iterations ({m}) cannot exceed the dimension ({p})")
    dtype = v0.dtype
    v0 = v0 / jnp.linalg.norm(v0)
    basis = jnp.zeros((m + 1, p), dtype).at[0].set(v0)
    alpha = jnp.zeros(m, dtype)
    beta = jnp.zeros(m, dtype)
    rows = jnp.arange(m + 1)

    def orthogonalize(w, basis, upto):
        mask = (rows <= upto).astype(dtype)
        for _ in range(2):
            w = w - basis.T @ ((basis @ w) * mask)
        return w

    def body(i, state):
        basis, alpha, beta = state
        v = basis[i]
        w = matvec(v)
        a = jnp.vdot(w, v)
        w = orthogonalize(w, basis, i)
        b = jnp.linalg.norm(w)
        scale = jnp.maximum(jnp.max(jnp.abs(alpha)), jnp.abs(a)) + 1.0
        broke = b <= 1e-6 * scale
        fresh = orthogonalize(jax.random.normal(jax.random.fold_in(key, i), (p,), dtype), basis, i)
        nxt = jnp.where(broke, fresh / jnp.linalg.norm(fresh), w / jnp.where(broke, 1.0, b))
        basis = basis.at[i + 1].set(nxt)
        return basis, alpha.at[i].set(a), beta.at[i].set(jnp.where(broke, 0.0, b))

    basis, alpha, beta = jax.lax.fori_loop(0, m, body, (basis, alpha, beta))
    return Tridiagonal(alpha, beta[: m - 1], basis[:m])


def lanczos_steps(p: int, k: int, num_iters: int | None) -> int:
    m = num_iters if num_iters is not None else max(2 * k + 20, 40)
    return int(min(m, p))


def _start(key, p, dtype):
    return jax.random.normal(key, (p,), dtype)


class Eigen(NamedTuple):
    """Top eigenpairs: ``values (k,)`` in descending order, ``vectors`` a list of ``k`` unit pytrees.

    Attributes:
      values: ``(k,)`` descending.
      vectors: ``k`` unit pytrees shaped like the parameters.

    Examples:
      >>> quad = lambda p: 0.5 * jnp.sum(jnp.array([3.0, 2.0, 1.0]) * p["w"] ** 2)   # Hessian diag(3, 2, 1)
      >>> theta = {"w": jnp.ones(3)}
      >>> eig = ls.hessian.top_eigenpairs(quad, theta, 1, key=jax.random.key(0))
      >>> eig.values.round(4).tolist(), jnp.abs(eig.vectors[0]["w"]).round(4).tolist()
      ([3.0], [1.0, 0.0, 0.0])
    """

    values: jax.Array
    vectors: list


def top_eigenpairs(
    loss_fn: LossFn, params: PyTree, k: int = 1, *, key: jax.Array, num_iters: int | None = None,
    select: Selection = None, curvature: str = "hessian",
) -> Eigen:
    """The ``k`` largest Hessian eigenvalues and their eigenvectors (as parameter pytrees).

    ``select`` (:func:`selection_mask`) restricts the Hessian to a block of parameters (e.g.
    one layer); the eigenvectors are then zero outside it.  ``curvature`` (:data:`CURVATURES`):
    ``"hessian"``, ``"ggn"`` (Gauss–Newton) or ``"fisher"`` (empirical Fisher), the same for
    every spectral function here.

    Args:
      loss_fn: ``params -> scalar`` loss of one point (:func:`landscape.models.loss_fn`).
      params: the point (no member axis).
      k: how many.
      key: PRNG key of the Lanczos start.
      num_iters: Lanczos iterations (default ``max(2k + 20, 40)``, at most ``P``).
      select: the block (a layer name, names, or ``(path, leaf) -> bool``; :func:`selection_mask`); ``None``: all.
      curvature: ``"hessian"``, ``"ggn"`` or ``"fisher"``.

    Returns:
      an :class:`Eigen`: ``values (k,)`` descending and ``vectors``, ``k`` unit pytrees.

    Examples:
      >>> quad = lambda p: 0.5 * jnp.sum(jnp.array([3.0, 2.0, 1.0]) * p["w"] ** 2)   # Hessian diag(3, 2, 1)
      >>> theta = {"w": jnp.ones(3)}
      >>> eig = ls.hessian.top_eigenpairs(quad, theta, 2, key=jax.random.key(0))
      >>> eig.values.round(4).tolist(), len(eig.vectors)     # descending; unit pytrees like theta
      ([3.0, 2.0], 2)
    """
    tri, unravel = _top_lanczos(loss_fn, params, k, key, num_iters, select, curvature)
    evals, evecs = jnp.linalg.eigh(tri.matrix())
    order = jnp.argsort(evals)[::-1][:k]
    ritz = tri.basis.T @ evecs[:, order]  # (P, k)
    ritz = ritz / jnp.linalg.norm(ritz, axis=0, keepdims=True)
    return Eigen(evals[order], [unravel(ritz[:, j]) for j in range(k)])


def top_eigenvalues(
    loss_fn: LossFn, params: PyTree, k: int = 1, *, key: jax.Array, num_iters: int | None = None,
    select: Selection = None, curvature: str = "hessian", stacked: bool = False,
) -> jax.Array:
    """The ``k`` largest Hessian eigenvalues, descending (Lanczos; Ghorbani et al. 2019, Yao et al. 2020).

    Args:
      loss_fn: ``params -> scalar`` loss of one point (:func:`landscape.models.loss_fn`).
      params: the point; with ``stacked``, every member's, leaves ``(M, ...)``.
      k: how many eigenvalues.
      key: PRNG key of the Lanczos start (member ``i`` uses ``fold_in(key, i)``).
      num_iters: Lanczos iterations (default ``max(2k + 20, 40)``, at most ``P``).
      select: the block (a layer name, names, or ``(path, leaf) -> bool``); ``None``: all.
      curvature: ``"hessian"``, ``"ggn"`` (Gauss–Newton) or ``"fisher"`` (empirical Fisher).
      stacked: compute every member's in one vmapped call.

    Returns:
      ``(k,)``, or ``(M, k)`` stacked.

    Examples:
      >>> quad = lambda p: 0.5 * jnp.sum(jnp.array([3.0, 2.0, 1.0]) * p["w"] ** 2)   # Hessian diag(3, 2, 1)
      >>> theta = {"w": jnp.ones(3)}
      >>> ls.hessian.top_eigenvalues(quad, theta, 2, key=jax.random.key(0)).round(4).tolist()
      [3.0, 2.0]
      >>> stacked = ls.tree.stack([theta, theta])             # every member at once
      >>> ls.hessian.top_eigenvalues(quad, stacked, 1, key=jax.random.key(0), stacked=True).shape
      (2, 1)
    """
    if stacked:
        return run_stacked(top_eigenvalues, loss_fn, params, key, select=select, curvature=curvature, k=k,
                           num_iters=num_iters)
    tri, _ = _top_lanczos(loss_fn, params, k, key, num_iters, select, curvature)
    return ritz_values(tri)[::-1][:k]


def _top_lanczos(loss_fn, params, k, key, num_iters, select, curvature):
    """The Lanczos tridiagonal of the top ``k`` eigenpairs' run, and the parameters' unravel."""
    flat, unravel, matvec = flat_matvec(loss_fn, params, select, curvature)
    if k < 1 or k > flat.size:
        raise ConfigError(f"k must lie in [1, {flat.size}], got {k}")
    m = lanczos_steps(flat.size, k, num_iters)
    k_start, k_restart = jax.random.split(key)
    return lanczos(matvec, _start(k_start, flat.size, flat.dtype), m, key=k_restart), unravel


def ritz_values(tri: Tridiagonal) -> jax.Array:
    """The eigenvalues of a Lanczos tridiagonal (its Ritz values), ascending.

    Computed by bisection on Sturm sequences (``jax.scipy.linalg.eigh_tridiagonal``), inside
    the compiled program: no LAPACK call.  On a CPU, jaxlib's batched symmetric eigensolver
    (``ssyevd``) splits a batch over XLA's thread pool and waits for it from a pool thread, so
    two such programs running at once can take every thread and wait forever (seen with a
    tracked training run split over concurrent calls).  Bisection is also more accurate here
    (largest error 1.6·10⁻⁷ of the spectrum's scale against 5.9·10⁻⁷ at 80 steps, measured
    against float64) and faster (64 tridiagonals of 80 steps: 2.4 ms against 14.9 ms).

    Args:
      tri: a :class:`Tridiagonal` (``alpha (m,)``, ``beta (m - 1,)``).

    Returns:
      ``(m,)`` ascending (Lanczos 1950; bisection: Golub & Van Loan, *Matrix Computations*, §8.4).

    Examples:
      >>> t = ls.hessian.lanczos(lambda v: jnp.array([3.0, 2.0, 1.0]) * v, jnp.ones(3), 3, key=jax.random.key(0))
      >>> ls.hessian.ritz_values(t).round(4).tolist()
      [1.0, 2.0, 3.0]
    """
    return eigh_tridiagonal(tri.alpha, tri.beta, eigvals_only=True)


def smallest_eigenvalue(
    loss_fn: LossFn, params: PyTree, *, key: jax.Array, num_iters: int | None = None, shift: Any = None,
    select: Selection = None, curvature: str = "hessian",
) -> jax.Array:
    """The smallest Hessian eigenvalue by Lanczos on ``shift·I − H`` (``shift`` defaults to ``λ_max``);
    of the block ``select`` picks.

    Args:
      loss_fn: ``params -> scalar``.
      params: the point (no member axis).
      key: PRNG key of the Lanczos starts.
      num_iters: Lanczos iterations (default ``max(2k + 20, 40)`` with ``k = 1``).
      shift: an upper bound of the spectrum (default: ``λ_max`` computed here first).
      select: the block (a layer name, names, or ``(path, leaf) -> bool``; :func:`selection_mask`); ``None``: all.
      curvature: ``"hessian"``, ``"ggn"`` or ``"fisher"``.

    Returns:
      a scalar, negative where the loss curves down in some direction.

    Examples:
      >>> saddle = lambda p: p["w"][0] ** 2 - 0.5 * p["w"][1] ** 2     # Hessian diag(2, -1)
      >>> round(float(ls.hessian.smallest_eigenvalue(saddle, {"w": jnp.zeros(2)}, key=jax.random.key(0))), 4)
      -1.0
    """
    flat, _, matvec = flat_matvec(loss_fn, params, select, curvature)
    k1, k2, k3 = jax.random.split(key, 3)
    m = lanczos_steps(flat.size, 1, num_iters)
    if shift is None:
        shift = top_eigenvalues(loss_fn, params, 1, key=k1, num_iters=num_iters, select=select,
                                curvature=curvature)[0]
    shift = jnp.abs(shift) * 1.01 + 1e-6
    tri = lanczos(lambda v: shift * v - matvec(v), _start(k2, flat.size, flat.dtype), m, key=k3)
    return shift - ritz_values(tri)[-1]


def trace(loss_fn: LossFn, params: PyTree, *, key: jax.Array, num_probes: int = 100,
          select: Selection = None, curvature: str = "hessian", stacked: bool = False) -> dict[str, jax.Array]:
    """Hutchinson's trace estimate (Hutchinson 1990) with Rademacher probes.

    Args:
      loss_fn: ``params -> scalar`` loss of one point.
      params: the point; with ``stacked``, every member's, leaves ``(M, ...)``.
      key: PRNG key of the probes (member ``i`` uses ``fold_in(key, i)``).
      num_probes: how many probes.
      select: the block, as in :func:`top_eigenvalues`.
      curvature: ``"hessian"``, ``"ggn"`` or ``"fisher"``.
      stacked: compute every member's in one vmapped call.

    Returns:
      ``{"trace", "stderr"}``: scalars, or ``(M,)`` stacked; ``stderr`` is the standard error
      of the probes' mean.

    Examples:
      >>> quad = lambda p: 0.5 * jnp.sum(jnp.array([3.0, 2.0, 1.0]) * p["w"] ** 2)   # Hessian diag(3, 2, 1)
      >>> theta = {"w": jnp.ones(3)}
      >>> t = ls.hessian.trace(quad, theta, key=jax.random.key(0), num_probes=10)
      >>> round(float(t["trace"]), 4)                          # exact here: Rademacher probes of a diagonal Hessian
      6.0
    """
    if stacked:
        return run_stacked(trace, loss_fn, params, key, select=select, curvature=curvature, num_probes=num_probes)
    flat, _, matvec = flat_matvec(loss_fn, params, select, curvature)
    if num_probes < 1:
        raise ConfigError("num_probes must be positive")
    probes = jax.random.rademacher(key, (num_probes, flat.size), dtype=flat.dtype)
    samples = jax.lax.map(lambda z: jnp.vdot(z, matvec(z)), probes)
    return {"trace": jnp.mean(samples), "stderr": jnp.std(samples) / jnp.sqrt(num_probes)}


def spectral_density(
    loss_fn: LossFn, params: PyTree, *, key: jax.Array, num_probes: int = 4, num_iters: int | None = None,
    select: Selection = None, curvature: str = "hessian", stacked: bool = False,
) -> Density:
    """Stochastic Lanczos quadrature (Ghorbani et al. 2019) of the eigenvalue distribution.

    Args:
      loss_fn: ``params -> scalar`` loss of one point.
      params: the point; with ``stacked``, every member's, leaves ``(M, ...)``.
      key: PRNG key of the Rademacher probes (member ``i`` uses ``fold_in(key, i)``).
      num_probes: how many probes.
      num_iters: Lanczos steps per probe (default 80, at most ``P``).
      select: the block, as in :func:`top_eigenvalues`.
      curvature: ``"hessian"``, ``"ggn"`` or ``"fisher"``.
      stacked: compute every member's in one vmapped call.

    Returns:
      a :class:`Density`: nodes and weights ``(probes, m)``, or ``(M, probes, m)`` stacked.

    Examples:
      >>> quad = lambda p: 0.5 * jnp.sum(jnp.array([3.0, 2.0, 1.0]) * p["w"] ** 2)   # Hessian diag(3, 2, 1)
      >>> theta = {"w": jnp.ones(3)}
      >>> d = ls.hessian.spectral_density(quad, theta, key=jax.random.key(0), num_probes=2, num_iters=3)
      >>> jnp.sort(d.nodes[0]).round(4).tolist()              # Ritz values: the eigenvalues 1, 2, 3
      [1.0, 2.0, 3.0]
    """
    if stacked:
        return run_stacked(spectral_density, loss_fn, params, key, select=select, curvature=curvature,
                           num_probes=num_probes, num_iters=num_iters)
    flat, _, matvec = flat_matvec(loss_fn, params, select, curvature)
    m = lanczos_steps(flat.size, 1, num_iters if num_iters is not None else 80)
    if num_probes < 1:
        raise ConfigError("num_probes must be positive")
    keys = jax.random.split(key, num_probes)

    def one(k):
        k1, k2 = jax.random.split(k)
        z = jax.random.rademacher(k1, (flat.size,), dtype=flat.dtype)
        tri = lanczos(matvec, z, m, key=k2)
        evals, evecs = jnp.linalg.eigh(tri.matrix())
        return evals, evecs[0] ** 2

    nodes, weights = jax.lax.map(one, keys)
    return Density(nodes, weights)
