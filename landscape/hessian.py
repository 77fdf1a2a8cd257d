"""Curvature of any loss of any parameter pytree: HVPs, Lanczos eigenpairs, trace, spectral density.

* Hessian-vector products are forward-over-reverse: ``jvp(grad(f), (theta,), (v,))``.
* :func:`lanczos` runs ``m`` steps with full re-orthogonalisation (twice, classical
  Gram–Schmidt) on flat vectors; a breakdown (the Krylov space is invariant) restarts with a
  fresh random vector orthogonal to the basis, so the tridiagonal matrix never acquires
  spurious zero eigenvalues.
* Top eigenpairs are the Ritz pairs of the tridiagonal matrix; the smallest eigenvalue uses
  the shift ``lambda_min = s - lambda_max(s I - H)`` with ``s`` the top eigenvalue.
* The trace is Hutchinson's estimator with Rademacher probes; the spectral density is
  stochastic Lanczos quadrature (nodes: Ritz values, weights: squared first components of the
  tridiagonal eigenvectors, averaged over probes).

Every function is jit- and vmap-compatible: the ``*_many`` helpers vmap over the leading
member axis of stacked parameters (each member with key ``fold_in(key, i)``); on a CPU
they run vmapped groups of ``CPU_GROUP`` members one after another, which keeps each
group's activations in cache (the answers do not depend on the grouping).
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from .errors import ConfigError

__all__ = [
    "hvp",
    "dense_hessian",
    "Tridiagonal",
    "lanczos",
    "Eigen",
    "top_eigenpairs",
    "top_eigenvalues",
    "smallest_eigenvalue",
    "trace",
    "Density",
    "spectral_density",
    "density_on_grid",
    "top_eigenvalues_many",
    "trace_many",
    "spectral_density_many",
    "ensemble_curvature",
    "selection_mask",
    "restrict",
    "layers",
    "ggn_vp",
    "fisher_vp",
    "CURVATURES",
    "minibatch_curvature",
    "curvature_map",
]

PyTree = Any
LossFn = Callable[[PyTree], jax.Array]
#: Which parameters a Hessian is taken over: ``None`` (all), a path prefix (``"Dense_1"``,
#: ``"Dense_1/kernel"``), a sequence of prefixes, or a predicate ``(path, leaf) -> bool``.
Selection = Any


def hvp(loss_fn: LossFn, params: PyTree, v: PyTree) -> PyTree:
    """Hessian-vector product ``H(params) v`` by forward-over-reverse differentiation.

    Args:
      loss_fn: ``params -> scalar``.
      params: the point (no member axis).
      v: the vector, a pytree shaped like ``params``.

    Returns:
      ``H v``, shaped like ``params`` (Pearlmutter 1994's exact product, no finite differences).

    Examples:
      >>> quad = lambda p: 0.5 * jnp.sum(jnp.array([3.0, 2.0, 1.0]) * p["w"] ** 2)   # Hessian diag(3, 2, 1)
      >>> theta = {"w": jnp.ones(3)}
      >>> ls.hessian.hvp(quad, theta, {"w": jnp.array([1.0, 1.0, 0.0])})["w"].tolist()
      [3.0, 2.0, 0.0]
    """
    return jax.jvp(jax.grad(loss_fn), (params,), (v,))[1]


def ggn_vp(loss_fn, params: PyTree, v: PyTree) -> PyTree:
    """Generalised Gauss–Newton product ``J^T H_out J v`` (Schraudolph 2002; Martens 2014).

    ``J`` is the Jacobian of the model's outputs with respect to the parameters and ``H_out``
    the Hessian of the loss with respect to the outputs: forward mode for ``J v``, forward
    over reverse for ``H_out (J v)``, reverse mode for ``J^T``.  ``loss_fn`` must expose
    ``outputs`` and ``output_loss`` (:class:`landscape.models.LossParts`).  Positive
    semi-definite for convex output losses (MSE, cross-entropy).

    Args:
      loss_fn: a :class:`~landscape.models.LossParts` (:func:`landscape.models.loss_fn`).
      params: the point (no member axis).
      v: the vector, shaped like ``params``.

    Returns:
      ``G v``, shaped like ``params``.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> model = ls.MLP(hidden=(4,), output_activation="identity").for_data(data)
      >>> theta = model.init(jax.random.key(0))
      >>> loss = ls.models.loss_fn(model, data.train, "cross_entropy")     # a LossParts
      >>> v = ls.tree.random_like(jax.random.key(1), theta)
      >>> gv = ls.hessian.ggn_vp(loss, theta, v)
      >>> float(ls.tree.ravel(v) @ ls.tree.ravel(gv)) >= 0     # positive semi-definite, unlike the Hessian
      True
    """
    out, jv = jax.jvp(loss_fn.outputs, (params,), (v,))
    hjv = jax.jvp(jax.grad(loss_fn.output_loss), (out,), (jv,))[1]
    return jax.vjp(loss_fn.outputs, params)[1](hjv)[0]


def fisher_vp(loss_fn, params: PyTree, v: PyTree) -> PyTree:
    """Empirical Fisher product ``(1/N) sum_n g_n (g_n . v)`` with ``g_n`` the gradient of
    example ``n``'s loss (Kunstner et al. 2019 discuss what it does and does not measure):
    ``J_l^T (J_l v) / N`` with ``J_l`` the Jacobian of the per-example losses.
    ``loss_fn`` must expose ``per_example`` (:class:`landscape.models.LossParts`).

    Args:
      loss_fn: a :class:`~landscape.models.LossParts`.
      params: the point (no member axis).
      v: the vector, shaped like ``params``.

    Returns:
      ``F v``, shaped like ``params``.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> model = ls.MLP(hidden=(4,), output_activation="identity").for_data(data)
      >>> theta = model.init(jax.random.key(0))
      >>> loss = ls.models.loss_fn(model, data.train, "cross_entropy")     # a LossParts
      >>> v = ls.tree.random_like(jax.random.key(1), theta)
      >>> float(ls.tree.ravel(v) @ ls.tree.ravel(ls.hessian.fisher_vp(loss, theta, v))) >= 0
      True
    """
    losses, jv = jax.jvp(loss_fn.per_example, (params,), (v,))
    return jax.vjp(loss_fn.per_example, params)[1](jv / losses.shape[0])[0]


#: The curvature matrices every spectral function can take: the Hessian, the generalised
#: Gauss–Newton matrix, the empirical Fisher.
CURVATURES = {"hessian": hvp, "ggn": ggn_vp, "fisher": fisher_vp}


def dense_hessian(loss_fn: LossFn, params: PyTree) -> jax.Array:
    """The full ``(P, P)`` Hessian of the flattened parameters (small models and tests only).

    Args:
      loss_fn: ``params -> scalar``.
      params: the point (no member axis), ``P`` scalars in all.

    Returns:
      ``(P, P)``, in the order of :func:`landscape.tree.ravel`.

    Examples:
      >>> quad = lambda p: 0.5 * jnp.sum(jnp.array([3.0, 2.0, 1.0]) * p["w"] ** 2)   # Hessian diag(3, 2, 1)
      >>> theta = {"w": jnp.ones(3)}
      >>> ls.hessian.dense_hessian(quad, theta).tolist()     # (P, P), in ravel order
      [[3.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0]]
    """
    flat, unravel = ravel_pytree(params)
    return jax.hessian(lambda x: loss_fn(unravel(x)))(flat)


def selection_mask(params: PyTree, select: Selection) -> list[bool]:
    """Which leaves of ``params`` (in tree order) ``select`` picks.

    Args:
      params: a parameter pytree (one member: no member axis).
      select: ``None`` (every leaf), a path prefix such as ``"Dense_1"`` or ``"Dense_1/kernel"``
        (paths as in :func:`landscape.tree.flatten_with_paths`), a sequence of prefixes, or a
        predicate ``select(path, leaf) -> bool``.

    Returns:
      one bool per leaf.

    Raises:
      ConfigError: nothing is selected (the message lists the paths).

    Examples:
      >>> params = {"Dense_0": {"bias": jnp.zeros(3), "kernel": jnp.ones((2, 3))}, "Dense_1": {"kernel": jnp.ones((3, 1))}}
      >>> ls.hessian.selection_mask(params, "Dense_0")
      [True, True, False]
    """
    from .tree import _path_name

    named = [(_path_name(p), x) for p, x in jax.tree_util.tree_flatten_with_path(params)[0]]
    if select is None:
        return [True] * len(named)
    if callable(select):
        mask = [bool(select(n, x)) for n, x in named]
    else:
        prefixes = (select,) if isinstance(select, str) else tuple(select)
        mask = [any(n == q.rstrip("/") or n.startswith(q.rstrip("/") + "/") for q in prefixes) for n, _ in named]
    if not any(mask):
        raise ConfigError(f"no parameter matches {select!r}; the parameters are {', '.join(n for n, _ in named)}")
    return mask


def restrict(loss_fn: LossFn, params: PyTree, select: Selection):
    """The loss as a function of the selected parameters only, the others held at ``params``.

    Its Hessian is the diagonal block ``H_SS`` of the full Hessian for the selected set ``S``
    (the per-layer curvature of e.g. Sankar et al. 2021, PyHessian's layer-wise spectra).

    Args:
      loss_fn: ``params -> scalar``.
      params: the point (no member axis).
      select: see :func:`selection_mask`.

    Returns:
      ``(sub_loss, sub_params, expand)``: ``sub_loss(sub) -> scalar``; ``sub_params`` the
      selected leaves (a list, in tree order); ``expand(sub)`` a full pytree holding ``sub``
      in the selected leaves and zeros elsewhere (to show eigenvectors in the model's shape).

    Examples:
      >>> loss = lambda p: jnp.sum(p["a"] ** 2) * jnp.sum(p["b"] ** 2)
      >>> sub_loss, sub, expand = ls.hessian.restrict(loss, {"a": jnp.ones(2), "b": jnp.ones(3)}, "a")
      >>> ls.hessian.dense_hessian(sub_loss, sub).tolist()    # the block H_aa = 2 |b|^2 I
      [[6.0, 0.0], [0.0, 6.0]]
    """
    leaves, treedef = jax.tree_util.tree_flatten(params)
    mask = selection_mask(params, select)

    def merged(sub, base):
        it = iter(sub)
        return treedef.unflatten([next(it) if m else b for m, b in zip(mask, base)])

    sub_params = [x for x, m in zip(leaves, mask) if m]
    zeros = [jnp.zeros_like(x) for x in leaves]
    sub_loss = lambda sub: loss_fn(merged(sub, leaves))  # noqa: E731
    if _has_parts(loss_fn):  # keep the structure GGN/Fisher need
        from .models import LossParts

        sub_loss = LossParts(outputs=lambda sub: loss_fn.outputs(merged(sub, leaves)), output_loss=loss_fn.output_loss,
                             per_example=lambda sub: loss_fn.per_example(merged(sub, leaves)))
    return sub_loss, sub_params, (lambda sub: merged(sub, zeros))


def layers(params: PyTree) -> list[str]:
    """The layers of a parameter pytree: its distinct first path components, in tree order
    (``["Dense_0", "Dense_1", ...]`` for the built-in MLP; whatever the model names them).

    Args:
      params: a parameter pytree (no member axis).

    Returns:
      the layer names, each usable as ``select=``.

    Examples:
      >>> ls.hessian.layers({"Dense_0": {"bias": jnp.zeros(3), "kernel": jnp.ones((2, 3))}, "Dense_1": {"kernel": jnp.ones((3, 1))}})
      ['Dense_0', 'Dense_1']
    """
    from .tree import _path_name

    out: list[str] = []
    for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]:
        first = _path_name(p).split("/")[0]
        if first not in out:
            out.append(first)
    return out


def _has_parts(loss_fn) -> bool:
    return hasattr(loss_fn, "outputs") and hasattr(loss_fn, "per_example")


def _is_batched(loss_fn) -> bool:
    return hasattr(loss_fn, "loss_of") and hasattr(loss_fn, "groups")  # a landscape.models.BatchedLoss


def _flat_matvec(loss_fn: LossFn, params: PyTree, select: Selection = None, curvature: str = "hessian"):
    """``(flat point, unravel to a full pytree, flat C·x)`` of the block ``select`` picks of the
    curvature matrix ``C`` named ``curvature`` (:data:`CURVATURES`).  For a
    :class:`~landscape.models.BatchedLoss` the product is accumulated batch by batch
    (``sum_b w_b C_b x`` in a ``lax.scan``: one batch's activations live at a time)."""
    if curvature not in CURVATURES:
        raise ConfigError(f"curvature must be one of {', '.join(CURVATURES)}, got {curvature!r}")
    batched = _is_batched(loss_fn)
    if batched:
        (x0, y0), _ = loss_fn.groups[0]
        one = loss_fn.loss_of(x0[0], y0[0])
    else:
        one = loss_fn
    if curvature != "hessian" and not _has_parts(one):
        raise ConfigError(f"curvature={curvature!r} needs a loss that exposes its outputs and per-example losses "
                          "(landscape.models.loss_fn, or a landscape.models.LossParts)")
    vp = CURVATURES[curvature]

    def block(f):
        point, expand = params, None
        if select is not None:
            f, point, expand = restrict(f, params, select)
        flat, unravel = ravel_pytree(point)

        def matvec(x):
            return ravel_pytree(vp(f, point, unravel(x.astype(flat.dtype))))[0]

        return flat, (unravel if expand is None else (lambda x: expand(unravel(x)))), matvec

    flat, unravel, matvec = block(one)
    if not batched:
        return flat, unravel, matvec

    def accumulated(x):
        acc = jnp.zeros_like(flat)
        for (xs, ys), w in loss_fn.groups:
            def body(acc, b, w=w):
                return acc + jnp.asarray(w, flat.dtype) * block(loss_fn.loss_of(*b))[2](x), None

            acc = jax.lax.scan(body, acc, (xs, ys))[0]
        return acc

    return flat, unravel, accumulated


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


def _num_iters(p: int, k: int, num_iters: int | None) -> int:
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
    flat, unravel, matvec = _flat_matvec(loss_fn, params, select, curvature)
    if k < 1 or k > flat.size:
        raise ConfigError(f"k must lie in [1, {flat.size}], got {k}")
    m = _num_iters(flat.size, k, num_iters)
    k_start, k_restart = jax.random.split(key)
    tri = lanczos(matvec, _start(k_start, flat.size, flat.dtype), m, key=k_restart)
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
        return _run_many("top", loss_fn, params, key, select, curvature, k=k, num_iters=num_iters)
    return top_eigenpairs(loss_fn, params, k, key=key, num_iters=num_iters, select=select, curvature=curvature).values


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
    flat, _, matvec = _flat_matvec(loss_fn, params, select, curvature)
    k1, k2, k3 = jax.random.split(key, 3)
    m = _num_iters(flat.size, 1, num_iters)
    if shift is None:
        shift = top_eigenvalues(loss_fn, params, 1, key=k1, num_iters=num_iters, select=select,
                                curvature=curvature)[0]
    shift = jnp.abs(shift) * 1.01 + 1e-6
    tri = lanczos(lambda v: shift * v - matvec(v), _start(k2, flat.size, flat.dtype), m, key=k3)
    return shift - jnp.max(jnp.linalg.eigvalsh(tri.matrix()))


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
        return _run_many("trace", loss_fn, params, key, select, curvature, num_probes=num_probes)
    flat, _, matvec = _flat_matvec(loss_fn, params, select, curvature)
    if num_probes < 1:
        raise ConfigError("num_probes must be positive")
    probes = jax.random.rademacher(key, (num_probes, flat.size), dtype=flat.dtype)
    samples = jax.lax.map(lambda z: jnp.vdot(z, matvec(z)), probes)
    return {"trace": jnp.mean(samples), "stderr": jnp.std(samples) / jnp.sqrt(num_probes)}


class Density(NamedTuple):
    """Stochastic Lanczos quadrature: ``nodes (probes, m)`` Ritz values, ``weights (probes, m)``.

    Each probe's weights sum to 1; the spectral measure is their average over probes.

    Attributes:
      nodes: ``(probes, m)`` Ritz values (``(M, probes, m)`` stacked).
      weights: the same shape; each probe's sum to 1.

    Examples:
      >>> quad = lambda p: 0.5 * jnp.sum(jnp.array([3.0, 2.0, 1.0]) * p["w"] ** 2)   # Hessian diag(3, 2, 1)
      >>> theta = {"w": jnp.ones(3)}
      >>> d = ls.hessian.spectral_density(quad, theta, key=jax.random.key(0), num_probes=2, num_iters=3)
      >>> d.nodes.shape, d.weights.sum(axis=1).round(4).tolist()   # each probe's weights sum to 1
      ((2, 3), [1.0, 1.0])
    """

    nodes: jax.Array
    weights: jax.Array


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
        return _run_many("density", loss_fn, params, key, select, curvature, num_probes=num_probes,
                         num_iters=num_iters)
    flat, _, matvec = _flat_matvec(loss_fn, params, select, curvature)
    m = _num_iters(flat.size, 1, num_iters if num_iters is not None else 80)
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


def density_on_grid(density: Density, grid: np.ndarray, *, sigma: float | None = None) -> np.ndarray:
    """Gaussian-smoothed density on ``grid``: ``mean_probes sum_j w_j N(grid; node_j, sigma²)``.

    ``sigma`` defaults to 1% of the node range.  Integrates to 1 over a grid that covers the
    nodes (up to the tails of the Gaussians).

    Args:
      density: a :class:`Density` (one point's; no member axis).
      grid: ``(G,)`` eigenvalues to evaluate the density at.
      sigma: the Gaussians' width.

    Returns:
      ``(G,)`` density values.

    Examples:
      >>> quad = lambda p: 0.5 * jnp.sum(jnp.array([3.0, 2.0, 1.0]) * p["w"] ** 2)   # Hessian diag(3, 2, 1)
      >>> theta = {"w": jnp.ones(3)}
      >>> d = ls.hessian.spectral_density(quad, theta, key=jax.random.key(0), num_probes=2, num_iters=3)
      >>> grid = np.linspace(0, 4, 401)
      >>> round(float(np.sum(ls.hessian.density_on_grid(d, grid, sigma=0.1)) * (grid[1] - grid[0])), 3)
      1.0
    """
    nodes = np.asarray(density.nodes, float)
    weights = np.asarray(density.weights, float)
    grid = np.asarray(grid, float)
    if sigma is None:
        sigma = max(1e-2 * float(np.ptp(nodes)), 1e-8)
    z = (grid[None, None, :] - nodes[..., None]) / sigma
    kern = np.exp(-0.5 * z**2) / (sigma * np.sqrt(2 * np.pi))
    return np.mean(np.sum(weights[..., None] * kern, axis=1), axis=0)


def _batches_of(loss: Any) -> tuple[jax.Array, jax.Array]:
    """Every batch of a :class:`~landscape.models.BatchedLoss` stacked ``(K, B, ...)`` (equal sizes only)."""
    if not _is_batched(loss):
        raise ConfigError("mini-batch curvature needs a landscape.models.BatchedLoss "
                          "(landscape.models.minibatch_loss)")
    sizes = {int(xs.shape[1]) for (xs, _), _ in loss.groups}
    if len(sizes) != 1:
        raise ConfigError(f"mini-batch estimates need batches of one size, got sizes {sorted(sizes)}")
    return (jnp.concatenate([xs for (xs, _), _ in loss.groups]), jnp.concatenate([ys for (_, ys), _ in loss.groups]))


def minibatch_curvature(
    loss: Any, params: PyTree, *, key: jax.Array, top: int = 1, num_iters: int | None = None,
    trace_probes: int = 50, select: Selection = None, curvature: str = "hessian",
) -> dict[str, jax.Array]:
    """The curvature of every mini-batch on its own: how much a one-batch estimate varies.

    Sharpness measured on one mini-batch is a random variable: its spread over batches (often
    large — Jastrzębski et al. 2020 track λ_max on mini-batches; Sagun et al. 2018 show the
    top of the spectrum is set by the data) says how far one such number can be trusted.
    Batch ``b`` uses key ``fold_in(key, b)``; batches run one after another (``lax.map``).

    Args:
      loss: a :class:`~landscape.models.BatchedLoss` of equal-sized batches
        (:func:`landscape.models.minibatch_loss`).
      params: the point (no member axis).
      key: PRNG key of the Lanczos starts and Hutchinson probes.
      top: top eigenvalues per batch.
      num_iters: Lanczos iterations (default ``max(2 top + 20, 40)``, at most ``P``).
      trace_probes: Hutchinson probes per batch.
      select: the block of the curvature, as in :func:`top_eigenpairs`.
      curvature: ``"hessian"``, ``"ggn"`` or ``"fisher"``, as in :func:`top_eigenpairs`.

    Returns:
      ``{"top": (K, top), "trace": (K,), "trace_stderr": (K,)}``: one row per batch; their mean
      and standard deviation over batches are the mini-batch estimate and its spread.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> model = ls.MLP(hidden=(4,), output_activation="identity").for_data(data)
      >>> theta = model.init(jax.random.key(0))
      >>> loss = ls.models.loss_fn(model, data.train, "cross_entropy")     # a LossParts
      >>> batches = ls.models.minibatch_loss(model, data.train, "cross_entropy", batch_size=16, num_batches=3,
      ...                                    key=jax.random.key(2))
      >>> ls.hessian.minibatch_curvature(batches, theta, key=jax.random.key(0), top=1, trace_probes=5)["top"].shape
      (3, 1)
    """
    batches = _batches_of(loss)
    k_count = int(batches[0].shape[0])

    def one(args):
        (x, y), b = args
        f = loss.loss_of(x, y)
        k1, k2 = jax.random.split(jax.random.fold_in(key, b))
        ev = top_eigenvalues(f, params, top, key=k1, num_iters=num_iters, select=select, curvature=curvature)
        tr = trace(f, params, key=k2, num_probes=trace_probes, select=select, curvature=curvature)
        return {"top": ev, "trace": tr["trace"], "trace_stderr": tr["stderr"]}

    return jax.lax.map(one, (batches, jnp.arange(k_count)))


# ---------------------------------------------------------------------- over an ensemble


# members per vmapped group on a single CPU device: the HVPs of 64 members at once stream
# (64, N, width) activations through memory, groups of 8 stay in cache (measured by
# experiments/benchmark.py: 64-member top eigenvalues 0.43 s -> 0.35 s on 2 cores)
CPU_GROUP = 8


def _member_group(num_members: int) -> int | None:
    """Members per sequential vmapped group: ``CPU_GROUP`` on a CPU, else all at once.

    The ``*_many`` helpers run on one device whatever the number of devices, so only the
    backend matters (unlike training, whose members a mesh may spread over devices)."""
    if jax.default_backend() != "cpu" or num_members <= CPU_GROUP:
        return None
    return CPU_GROUP


@functools.lru_cache(maxsize=32)
def _vmapped(kind: str, loss_fn: LossFn, options: tuple, group: int | None):
    """``jit`` of member i of kind over every member, cached on the loss function, options and
    grouping so that repeated calls on the same loss reuse the compiled code.  ``group=None``
    vmaps all members at once; an integer runs vmapped groups of that many one after another
    (``lax.map`` with ``batch_size``; the last group may be smaller)."""
    opts = dict(options)

    kw = {"select": opts["select"], "curvature": opts["curvature"]}

    def f(params, key, i):
        k = jax.random.fold_in(key, i)
        if kind == "top":
            return top_eigenvalues(loss_fn, params, opts["k"], key=k, num_iters=opts["num_iters"], **kw)
        if kind == "trace":
            return trace(loss_fn, params, key=k, num_probes=opts["num_probes"], **kw)
        return spectral_density(loss_fn, params, key=k, num_probes=opts["num_probes"], num_iters=opts["num_iters"],
                                **kw)

    if group is None:
        return jax.jit(jax.vmap(f, in_axes=(0, None, 0)))
    return jax.jit(lambda params, key, idx: jax.lax.map(lambda a: f(a[0], key, a[1]), (params, idx), batch_size=group))


def _run_many(kind: str, loss_fn: LossFn, stacked: PyTree, key: jax.Array, select: Selection = None,
              curvature: str = "hessian", **options):
    n = jax.tree_util.tree_leaves(stacked)[0].shape[0]
    if select is not None and not isinstance(select, str) and not callable(select):
        select = tuple(select)  # hashable: the compiled program is cached on it
    options.update(select=select, curvature=curvature)
    run = _vmapped(kind, loss_fn, tuple(sorted(options.items())), _member_group(n))
    return run(stacked, key, jnp.arange(n))


def _renamed(old: str, new: str) -> None:
    warnings.warn(f"landscape.hessian.{old} is deprecated and will be removed in the next release: "
                  f"use {new}(..., stacked=True)", DeprecationWarning, stacklevel=3)


def top_eigenvalues_many(loss_fn: LossFn, stacked: PyTree, k: int = 1, **options) -> jax.Array:
    """Deprecated alias (kept for one release): ``top_eigenvalues(loss_fn, stacked, k, stacked=True, ...)``.

    Args:
      loss_fn: as for :func:`top_eigenvalues`.
      stacked: every member's parameters, leaves ``(M, ...)``.
      k: how many eigenvalues.
      **options: the keywords of :func:`top_eigenvalues`.

    Returns:
      ``(M, k)``.

    Examples:
      >>> quad = lambda p: 0.5 * jnp.sum(jnp.array([3.0, 2.0, 1.0]) * p["w"] ** 2)   # Hessian diag(3, 2, 1)
      >>> theta = {"w": jnp.ones(3)}
      >>> import warnings
      >>> with warnings.catch_warnings():
      ...     warnings.simplefilter("ignore", DeprecationWarning)   # use top_eigenvalues(..., stacked=True)
      ...     ls.hessian.top_eigenvalues_many(quad, ls.tree.stack([theta]), 1, key=jax.random.key(0)).shape
      (1, 1)
    """
    _renamed("top_eigenvalues_many", "top_eigenvalues")
    return top_eigenvalues(loss_fn, stacked, k, stacked=True, **options)


def trace_many(loss_fn: LossFn, stacked: PyTree, **options) -> dict[str, jax.Array]:
    """Deprecated alias (kept for one release): ``trace(loss_fn, stacked, stacked=True, ...)``.

    Args:
      loss_fn: as for :func:`trace`.
      stacked: every member's parameters, leaves ``(M, ...)``.
      **options: the keywords of :func:`trace`.

    Returns:
      ``{"trace": (M,), "stderr": (M,)}``.

    Examples:
      >>> quad = lambda p: 0.5 * jnp.sum(jnp.array([3.0, 2.0, 1.0]) * p["w"] ** 2)   # Hessian diag(3, 2, 1)
      >>> theta = {"w": jnp.ones(3)}
      >>> import warnings
      >>> with warnings.catch_warnings():
      ...     warnings.simplefilter("ignore", DeprecationWarning)   # use trace(..., stacked=True)
      ...     ls.hessian.trace_many(quad, ls.tree.stack([theta]), key=jax.random.key(0))["trace"].shape
      (1,)
    """
    _renamed("trace_many", "trace")
    return trace(loss_fn, stacked, stacked=True, **options)


def spectral_density_many(loss_fn: LossFn, stacked: PyTree, **options) -> Density:
    """Deprecated alias (kept for one release): ``spectral_density(loss_fn, stacked, stacked=True, ...)``.

    Args:
      loss_fn: as for :func:`spectral_density`.
      stacked: every member's parameters, leaves ``(M, ...)``.
      **options: the keywords of :func:`spectral_density`.

    Returns:
      a :class:`Density` with ``(M, probes, m)`` nodes and weights.

    Examples:
      >>> quad = lambda p: 0.5 * jnp.sum(jnp.array([3.0, 2.0, 1.0]) * p["w"] ** 2)   # Hessian diag(3, 2, 1)
      >>> theta = {"w": jnp.ones(3)}
      >>> import warnings
      >>> with warnings.catch_warnings():
      ...     warnings.simplefilter("ignore", DeprecationWarning)   # use spectral_density(..., stacked=True)
      ...     ls.hessian.spectral_density_many(quad, ls.tree.stack([theta]), key=jax.random.key(0), num_iters=3).nodes.shape
      (1, 4, 3)
    """
    _renamed("spectral_density_many", "spectral_density")
    return spectral_density(loss_fn, stacked, stacked=True, **options)


def _batch_shapes(loss) -> str:
    return repr([tuple(xs.shape[:2]) for (xs, _), _ in loss.groups]) if _is_batched(loss) else "-"


def ensemble_curvature(
    loss_fn: LossFn,
    stacked: PyTree,
    *,
    key: jax.Array,
    top: int = 5,
    num_iters: int | None = None,
    trace_probes: int = 50,
    density: bool = False,
    density_probes: int = 2,
    density_iters: int = 60,
    chunk_size: int = 16,
    checkpoint=None,
    keep_checkpoint: bool = False,
    progress: bool = False,
    mesh=None,
    select: Selection = None,
    curvature: str = "hessian",
    minibatches: Any = None,
) -> dict[str, np.ndarray]:
    """Curvature of every member: top eigenvalues, smallest eigenvalue, trace (and SLQ density).

    Members are vmapped in chunks of ``chunk_size`` (one compilation); with ``checkpoint``
    finished chunks are saved and an interrupted call resumes (:func:`landscape.chunks.run_chunks`;
    ``keep_checkpoint`` leaves the checkpoint for the caller to delete).  Member ``i`` uses
    ``fold_in(key, i)`` whatever the chunking.  Returns numpy arrays: ``top (M, top)``,
    ``smallest (M,)``, ``trace (M,)``, ``trace_stderr (M,)`` and, with ``density``,
    ``density_nodes`` / ``density_weights`` ``(M, probes, m)``.  With a ``mesh`` each chunk's
    members are sharded over its devices (single-process meshes; ``loss_fn`` closes over its data).
    ``select`` (:func:`selection_mask`) takes every quantity over one block of parameters
    (e.g. a layer: see :func:`layers`); ``curvature`` picks the matrix (:data:`CURVATURES`).
    A :class:`~landscape.models.BatchedLoss` as ``loss_fn`` accumulates the full-data curvature
    batch by batch (:func:`landscape.models.loss_fn` with ``batch_size``); ``minibatches`` (a
    BatchedLoss of equal batches, :func:`landscape.models.minibatch_loss`) adds every batch's own
    top eigenvalues and trace, ``batch_top (M, K, top)``, ``batch_trace`` and
    ``batch_trace_stderr (M, K)`` (:func:`minibatch_curvature`).

    Args:
      loss_fn: ``params -> scalar`` loss of one member.
      stacked: every member's parameters, leaves ``(M, ...)``.
      key: PRNG key (member ``i``: ``fold_in(key, i)``).
      top: top eigenvalues per member.
      num_iters: Lanczos iterations (default ``max(2 top + 20, 40)``).
      trace_probes: Hutchinson probes (``0``: no trace).
      density: also the SLQ density.
      density_probes: its probes.
      density_iters: its Lanczos steps.
      chunk_size: members per compiled call.
      checkpoint: a file for progress (resumes an interrupted call).
      keep_checkpoint: leave the checkpoint for the caller to delete.
      progress: show a progress bar.
      mesh: a single-process mesh to shard each chunk's members over.
      select: the block (a layer name, names, or ``(path, leaf) -> bool``; :func:`selection_mask`); ``None``: all.
      curvature: ``"hessian"``, ``"ggn"`` or ``"fisher"``.
      minibatches: a :class:`~landscape.models.BatchedLoss` of random batches: also each batch's
        curvature (:func:`minibatch_curvature`), as ``batch_*`` arrays ``(M, K, ...)``.

    Returns:
      the dict of numpy arrays described above.

    Examples:
      >>> quad = lambda p: 0.5 * jnp.sum(jnp.array([3.0, 2.0, 1.0]) * p["w"] ** 2)   # Hessian diag(3, 2, 1)
      >>> theta = {"w": jnp.ones(3)}
      >>> out = ls.hessian.ensemble_curvature(quad, ls.tree.stack([theta, theta]), key=jax.random.key(0), top=2,
      ...                                      num_iters=3, trace_probes=4)
      >>> out["top"].round(4).tolist(), out["smallest"].round(4).tolist(), out["trace"].round(4).tolist()
      ([[3.0, 2.0], [3.0, 2.0]], [1.0, 1.0], [6.0, 6.0])
    """
    from . import chunks, tree

    if trace_probes < 1:  # the trace is part of every member's curvature here (curvature_map may omit it)
        raise ConfigError("num_probes must be positive")
    m_total = tree.num_members(stacked)
    one, options = _point_curvature(loss_fn, tree.take(stacked, 0), top=top, num_iters=num_iters,
                                    trace_probes=trace_probes, density=density, density_probes=density_probes,
                                    density_iters=density_iters, select=select, curvature=curvature,
                                    minibatches=minibatches)
    fp = chunks.fingerprint(options, key, stacked) if checkpoint is not None else None
    return _chunked(one, lambda idx: jax.tree_util.tree_map(lambda x: np.asarray(x)[idx], stacked), m_total, key,
                    chunk_size=chunk_size, mesh=mesh, checkpoint=checkpoint, fingerprint=fp,
                    keep_checkpoint=keep_checkpoint, progress=progress, desc="Hessian", unit="member")


def _point_curvature(loss_fn, point, *, top, num_iters, trace_probes, density=False, density_probes=2,
                     density_iters=60, select=None, curvature="hessian", minibatches=None):
    """``(one(params, i, key) -> {name: value}, a string of every option)``: the curvature at one
    point, with key ``fold_in(key, i)``; ``trace_probes=0`` leaves the trace out.

    ``one`` is cached on the loss, the point's shapes and the options (unless ``select`` is a
    predicate, which may look at values), so that calls with the same loss get the same
    function and :func:`_chunked` the program it traced for it the first time."""
    leaves, treedef = jax.tree_util.tree_flatten(point)
    shapes = tuple((tuple(np.shape(x)), np.dtype(x.dtype if hasattr(x, "dtype") else np.result_type(x)).str)
                   for x in leaves)
    args = (loss_fn, treedef, shapes, top, num_iters, trace_probes, density, density_probes, density_iters,
            tuple(select) if isinstance(select, list) else select, curvature, minibatches)
    one, (m_iter, d_iter) = None, (None, None)
    if not callable(args[9]):
        try:
            one, (m_iter, d_iter) = _point_function(*args)
        except TypeError:  # an unhashable loss or option: built afresh
            pass
    if one is None:
        one, (m_iter, d_iter) = _point_function.__wrapped__(*args, point=point)
    options = (f"{top}|{m_iter}|{trace_probes}|{density}|{density_probes}|{d_iter}|{select!r}|{curvature}|"
               f"{_batch_shapes(loss_fn)}|{_batch_shapes(minibatches)}")
    return one, options


@functools.lru_cache(maxsize=8)
def _point_function(loss_fn, treedef, shapes, top, num_iters, trace_probes, density, density_probes, density_iters,
                    select, curvature, minibatches, point=None):
    """:func:`_point_curvature`'s ``one`` and its ``(Lanczos steps, density steps)``; ``point``
    (for a predicate ``select``) or else the shapes give the parameters' layout."""
    if point is None:
        point = jax.tree_util.tree_unflatten(treedef, [jax.ShapeDtypeStruct(s, np.dtype(d)) for s, d in shapes])
    mask = selection_mask(point, select)
    p = int(sum(math.prod(s) for (s, _), m in zip(shapes, mask) if m))
    m_iter = _num_iters(p, top, num_iters)
    d_iter = int(min(density_iters, p))

    def one(params, i, key):  # the key is an argument: a program compiled once serves every key
        k = jax.random.fold_in(key, i)
        k1, k2, k3, k4 = jax.random.split(k, 4)
        kw = {"select": select, "curvature": curvature}
        ev = top_eigenvalues(loss_fn, params, top, key=k1, num_iters=m_iter, **kw)
        out = {"top": ev, "smallest": smallest_eigenvalue(loss_fn, params, key=k2, num_iters=m_iter, shift=ev[0], **kw)}
        if trace_probes:
            tr = trace(loss_fn, params, key=k3, num_probes=trace_probes, **kw)
            out["trace"], out["trace_stderr"] = tr["trace"], tr["stderr"]
        if density:
            den = spectral_density(loss_fn, params, key=k4, num_probes=density_probes, num_iters=d_iter, **kw)
            out["density_nodes"], out["density_weights"] = den.nodes, den.weights
        if minibatches is not None:
            per = minibatch_curvature(minibatches, params, key=jax.random.fold_in(k, 1), top=top, num_iters=m_iter,
                                      trace_probes=trace_probes, **kw)
            out.update({f"batch_{n}": v for n, v in per.items()})
        return out

    return one, (m_iter, d_iter)


@functools.lru_cache(maxsize=8)
def _vmapped_point(one):
    """The jitted, member-vmapped ``one`` (cached on it: the same ``one`` is traced once)."""
    return jax.jit(jax.vmap(one, in_axes=(0, 0, None)))


def _chunked(one, take, total: int, key, *, chunk_size, mesh, checkpoint, fingerprint, keep_checkpoint, progress,
             desc, unit):
    """Run ``one(params, i, key)`` over ``total`` points vmapped in chunks (:func:`landscape.chunks.run_chunks`:
    resumable with ``checkpoint``; sharded over ``mesh``); ``take(idx)`` gives the stacked points
    ``idx``.  Returns ``{name: (total, ...)}`` numpy arrays."""
    from . import chunks
    from .distributed import placement

    pl = placement(mesh)
    chunk_size = pl.padded(int(max(1, min(chunk_size, total))))
    n_chunks = -(-total // chunk_size)
    run = _vmapped_point(one)

    def compute(c):
        idx = np.arange(c * chunk_size, (c + 1) * chunk_size) % total  # the last chunk wraps (padding)
        return pl.gather(run(*pl.shard((take(idx), idx.astype(np.int32))), pl.replicate(key)))

    def allocate(out):  # point axis last, so that every result is sliced along the same axis
        return {k: np.full(v.shape[1:] + (n_chunks * chunk_size,), np.nan, np.float32) for k, v in out.items()}

    def store(results, c, out):
        for k, v in out.items():
            results[k][..., c * chunk_size : (c + 1) * chunk_size] = np.moveaxis(v, 0, -1)

    fp = None if checkpoint is None else chunks.fingerprint(fingerprint, chunk_size)
    results = chunks.run_chunks(
        compute, n_chunks, allocate=allocate, store=store, checkpoint=checkpoint, key=fp,
        keep_checkpoint=keep_checkpoint, save_every_s=0.0, progress=progress, desc=desc, unit=unit,
        sizes=[min(chunk_size, total - c * chunk_size) for c in range(n_chunks)])
    return {k: np.moveaxis(v[..., :total], -1, 0) for k, v in results.items()}


def curvature_map(
    loss_fn: LossFn,
    center: PyTree,
    directions: list,
    coords: np.ndarray,
    *,
    key: jax.Array,
    num_iters: int | None = None,
    trace_probes: int = 0,
    stacked: bool = False,
    chunk_size: int = 16,
    checkpoint=None,
    keep_checkpoint: bool = False,
    progress: bool = False,
    mesh=None,
    select: Selection = None,
    curvature: str = "hessian",
) -> dict[str, np.ndarray]:
    """The curvature at every point ``center + sum_i coords[g, i] directions[i]`` of a slice.

    Li et al. (2018, section 6) map ``|λ_min / λ_max|`` over a plane to show where a surface
    that looks convex in two dimensions is not: a large ratio means strong negative curvature
    in some direction the plane does not show.  Each point's λ_max and λ_min come from Lanczos
    (as :func:`top_eigenvalues` / :func:`smallest_eigenvalue`), optionally its Hutchinson
    trace; points are vmapped in chunks, resumable with ``checkpoint`` (as
    :func:`ensemble_curvature`); point ``g`` of member ``s`` uses ``fold_in(key, s G + g)``.

    Args:
      loss_fn: ``params -> scalar`` (a :class:`~landscape.models.LossParts` or
        :class:`~landscape.models.BatchedLoss` for ``curvature="ggn"|"fisher"`` or batching).
      center: the slice's origin; leaves ``(S, ...)`` with ``stacked`` (one slice per member).
      directions: the slice's directions (pytrees shaped like ``center``), ``D`` of them.
      coords: ``(G, D)`` coefficients of the points.
      key: PRNG key of the Lanczos starts and probes.
      num_iters: Lanczos iterations (default 40, at most ``P``).
      trace_probes: Hutchinson probes per point (``0``: no trace).
      stacked: ``center`` and ``directions`` carry a leading member axis (one slice per member).
      chunk_size: points per compiled call.
      checkpoint: a file for progress; the same call after an interruption resumes from it.
      keep_checkpoint: leave the checkpoint for the caller to delete.
      progress: show a progress bar.
      mesh: a single-process mesh to shard each chunk's points over.
      select: the block of the curvature, as in :func:`top_eigenpairs`.
      curvature: ``"hessian"``, ``"ggn"`` or ``"fisher"``, as in :func:`top_eigenpairs`.

    Returns:
      ``{"lambda_max", "lambda_min", "ratio"}`` (and ``"trace"``, ``"trace_stderr"``), each
      ``(G,)`` or ``(S, G)`` with ``stacked``; ``ratio = |λ_min| / |λ_max|``.

    Examples:
      >>> saddle = lambda p: p["w"][0] ** 2 - 0.5 * p["w"][1] ** 2 + p["w"][1] ** 4
      >>> out = ls.hessian.curvature_map(saddle, {"w": jnp.zeros(2)}, [{"w": jnp.array([0.0, 1.0])}],
      ...                                np.array([[0.0], [1.0]]), key=jax.random.key(0))
      >>> out["lambda_min"].round(3).tolist(), out["lambda_max"].round(3).tolist()   # -1 at the saddle, +11 at w1 = 1
      ([-1.0, 2.0], [2.0, 11.0])
    """
    from . import chunks, tree

    coords = np.asarray(coords, np.float32)
    if coords.ndim != 2 or coords.shape[1] != len(directions):
        raise ConfigError(f"coords must be (points, {len(directions)}), got shape {coords.shape}")
    if not stacked:
        center = tree.stack([center])
        directions = [tree.stack([d]) for d in directions]
    c_np = jax.tree_util.tree_map(np.asarray, center)
    d_np = [jax.tree_util.tree_map(np.asarray, d) for d in directions]
    s_count, g_count = tree.num_members(c_np), coords.shape[0]

    def take(idx):
        s, g = idx // g_count, idx % g_count
        out = jax.tree_util.tree_map(lambda x: x[s].astype(np.float32), c_np)
        for i, d in enumerate(d_np):
            a = coords[g, i]
            out = jax.tree_util.tree_map(lambda o, x, a=a: o + a.reshape((-1,) + (1,) * (x.ndim - 1)) * x[s], out, d)
        return out

    one, options = _point_curvature(loss_fn, tree.take(c_np, 0), top=1, num_iters=num_iters,
                                    trace_probes=trace_probes, select=select, curvature=curvature)
    fp = chunks.fingerprint("map", options, key, c_np, d_np, coords) if checkpoint is not None else None
    out = _chunked(one, take, s_count * g_count, key, chunk_size=chunk_size, mesh=mesh, checkpoint=checkpoint,
                   fingerprint=fp, keep_checkpoint=keep_checkpoint, progress=progress, desc="curvature map",
                   unit="point")
    res = {"lambda_max": out["top"][:, 0], "lambda_min": out["smallest"]}
    res["ratio"] = np.abs(res["lambda_min"]) / np.maximum(np.abs(res["lambda_max"]), np.finfo(np.float32).tiny)
    if trace_probes:
        res["trace"], res["trace_stderr"] = out["trace"], out["trace_stderr"]
    return {k: (v.reshape(s_count, g_count) if stacked else v) for k, v in res.items()}
