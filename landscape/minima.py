"""Comparing solutions: barriers, distances, cosines, disagreement, basins, alignment, curves.

* Barrier matrices evaluate the straight lines between every pair of members in one stacked
  call of :func:`landscape.surface.evaluate` (both barrier definitions of
  :func:`landscape.surface.barrier_of_curve`).
* Basins: members joined when the barrier between them is below a tolerance (single linkage:
  connected components of the "low barrier" graph).
* Weight matching (Ainsworth et al. 2023), from :mod:`landscape.permutation`: the units of B
  permuted to match A with the model's own permutation spec (MLP, CNN, ResNet), by linear
  assignment and coordinate descent.  A permuted network computes exactly the same function.
* A quadratic Bézier curve ``(1-t)² A + 2t(1-t) bend + t² B`` with the bend trained by optax
  to minimise the expected loss at uniform random ``t`` (Garipov et al. 2018).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import surface, tree
from .errors import ConfigError
from .permutation import PermutationSpec, align, align_to, check_alignable, permute, weight_matching

__all__ = [
    "pairs",
    "barrier",
    "barriers_between",
    "barrier_matrix",
    "aligned_barrier_matrix",
    "distance_matrix",
    "cosine_matrix",
    "disagreement_matrix",
    "basins",
    "PermutationSpec",
    "permute",
    "weight_matching",
    "check_alignable",
    "align",
    "align_to",
    "BezierCurve",
    "bezier_point",
    "bezier_curve",
    "compare_members",
]

PyTree = Any


def pairs(n: int) -> np.ndarray:
    """All index pairs ``i < j`` of ``n`` members, ``(n(n-1)/2, 2)``."""
    i, j = np.triu_indices(n, 1)
    return np.stack([i, j], axis=1)


def barrier(fn: Callable, theta_a: PyTree, theta_b: PyTree, *, num: int = 25, data=None,
            metric: str | None = None, **kw) -> dict[str, float]:
    """Both barrier definitions between two solutions (see :func:`landscape.surface.barrier_of_curve`).

    ``fn``/``data`` as for :func:`landscape.surface.evaluate`; ``metric`` names the loss among
    the outputs (default: the only output, or ``loss`` / ``train_loss``).
    """
    t = surface.interpolation_grid(num, 0.0)
    vals = surface.evaluate(fn, theta_a, [tree.sub(theta_b, theta_a)], t[:, None], data=data, **kw)
    return surface.barrier_of_curve(t, vals[_pick(vals, metric)])


def _pick(vals: dict, metric: str | None) -> str:
    if metric is not None:
        if metric not in vals:
            raise ConfigError(f"unknown metric {metric!r}; have {', '.join(vals)}")
        return metric
    if len(vals) == 1:
        return next(iter(vals))
    for name in ("loss", "train_loss", "value"):
        if name in vals:
            return name
    raise ConfigError(f"several outputs ({', '.join(vals)}): name the loss with metric=")


def barriers_between(fn: Callable, a: PyTree, b: PyTree, *, num: int = 25, data=None, metric: str | None = None,
                     **kw) -> dict[str, np.ndarray]:
    """Both barriers between ``a[i]`` and ``b[i]`` for stacked pytrees (leaves ``(n, ...)``), in one call.

    Returns ``{"barrier", "barrier_midpoint", "t_max", "loss_a", "loss_b"}``, each ``(n,)``.
    """
    t = surface.interpolation_grid(num, 0.0)
    vals = surface.evaluate(fn, a, [tree.sub(b, a)], t[:, None], data=data, stacked=True, **kw)
    return {k: np.atleast_1d(v) for k, v in surface.barrier_of_curve(t, vals[_pick(vals, metric)]).items()}


def barrier_matrix(fn: Callable, stacked: PyTree, *, num: int = 25, data=None, metric: str | None = None,
                   index_pairs: np.ndarray | None = None, **kw) -> dict[str, np.ndarray]:
    """Symmetric ``(M, M)`` matrices ``barrier`` and ``barrier_midpoint`` between all members.

    All pairs are evaluated in one stacked call (chunked over points).  ``index_pairs``
    restricts the computation to some pairs (others are NaN).
    """
    m = tree.num_members(stacked)
    pr = pairs(m) if index_pairs is None else np.asarray(index_pairs)
    out = {"barrier": np.zeros((m, m)), "barrier_midpoint": np.zeros((m, m))}
    if pr.size == 0:
        return out
    if index_pairs is not None:
        for k in out:
            out[k][:] = np.nan
            np.fill_diagonal(out[k], 0.0)
    a = jax.tree_util.tree_map(lambda x: x[pr[:, 0]], stacked)
    b = jax.tree_util.tree_map(lambda x: x[pr[:, 1]], stacked)
    res = barriers_between(fn, a, b, num=num, data=data, metric=metric, **kw)
    for k in out:
        out[k][pr[:, 0], pr[:, 1]] = res[k]
        out[k][pr[:, 1], pr[:, 0]] = res[k]
    return out


def aligned_barrier_matrix(fn: Callable, stacked: PyTree, *, spec: PermutationSpec, num: int = 25, data=None,
                           metric: str | None = None, **kw) -> dict[str, np.ndarray]:
    """Barrier matrices after weight matching: for every pair ``i < j``, ``j`` is aligned to
    ``i`` first (:func:`align` with the model's ``spec``).

    Also returns ``distance`` ``(M, M)`` between ``i`` and aligned ``j``.
    """
    m = tree.num_members(stacked)
    pr = pairs(m)
    out = {"barrier": np.zeros((m, m)), "barrier_midpoint": np.zeros((m, m)), "distance": np.zeros((m, m))}
    if pr.size == 0:
        return out
    members = tree.unstack(stacked)
    aligned = tree.stack([align(members[i], members[j], spec=spec)[0] for i, j in pr])
    a = jax.tree_util.tree_map(lambda x: x[pr[:, 0]], stacked)
    res = barriers_between(fn, a, aligned, num=num, data=data, metric=metric, **kw)
    res["distance"] = np.asarray(jax.vmap(lambda u, v: tree.norm(tree.sub(u, v)))(a, aligned))
    for k in out:
        out[k][pr[:, 0], pr[:, 1]] = res[k]
        out[k][pr[:, 1], pr[:, 0]] = res[k]
    return out


def distance_matrix(stacked: PyTree) -> np.ndarray:
    """Euclidean distances ``||theta_i - theta_j||`` between members, ``(M, M)``."""
    flat = np.asarray(jax.vmap(tree.ravel)(stacked), np.float64)
    sq = np.sum(flat**2, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * flat @ flat.T, 0.0)
    np.fill_diagonal(d2, 0.0)
    return np.sqrt(d2)


def cosine_matrix(stacked: PyTree) -> np.ndarray:
    """Cosine similarity of the members' parameter vectors, ``(M, M)``."""
    flat = np.asarray(jax.vmap(tree.ravel)(stacked), np.float64)
    n = np.linalg.norm(flat, axis=1)
    return (flat @ flat.T) / np.maximum(n[:, None] * n[None, :], 1e-30)


def disagreement_matrix(predict: Callable[[PyTree, jax.Array], jax.Array], stacked: PyTree, x) -> np.ndarray:
    """Fraction of inputs ``x`` on which two members predict different classes (Fort et al. 2019)."""
    labels = np.asarray(jax.jit(jax.vmap(lambda p: jnp.argmax(predict(p, x), axis=-1)))(stacked))
    return np.mean(labels[:, None, :] != labels[None, :, :], axis=-1)


def basins(barriers: np.ndarray, tol: float) -> np.ndarray:
    """Basin label per member: connected components of ``barrier < tol``.

    Label 0 is the largest basin; ties go to the basin holding the lowest member index.

    Pairs with a NaN barrier are not joined.
    """
    b = np.asarray(barriers, float)
    m = b.shape[0]
    parent = list(range(m))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in pairs(m):
        if np.isfinite(b[i, j]) and b[i, j] < tol:
            parent[find(i)] = find(j)
    roots = np.array([find(i) for i in range(m)])
    uniq, first, counts = np.unique(roots, return_index=True, return_counts=True)
    order = uniq[np.lexsort((first, -counts))]  # larger basins first; ties: the lowest member first
    relabel = {r: k for k, r in enumerate(order)}
    return np.array([relabel[r] for r in roots])


# ---------------------------------------------------------------------- permutation alignment




# ---------------------------------------------------------------------- connecting curves


class BezierCurve(NamedTuple):
    """A trained quadratic Bézier curve between two minima.

    ``bend``: the control point.  ``t (n,)``; ``curve_loss`` and ``line_loss`` ``(n,)``: the
    loss along the curve and along the straight line; ``train_loss (steps,)``: the
    objective during training.
    """

    bend: PyTree
    t: np.ndarray
    curve_loss: np.ndarray
    line_loss: np.ndarray
    train_loss: np.ndarray


def bezier_point(theta_a: PyTree, bend: PyTree, theta_b: PyTree, t) -> PyTree:
    """``(1-t)² A + 2t(1-t) bend + t² B``."""
    return jax.tree_util.tree_map(
        lambda a, c, b: (1 - t) ** 2 * a + 2 * t * (1 - t) * c + t**2 * b, theta_a, bend, theta_b
    )


def bezier_curve(
    loss_fn: Callable[[PyTree], jax.Array],
    theta_a: PyTree,
    theta_b: PyTree,
    *,
    key: jax.Array,
    steps: int = 1000,
    optimizer: optax.GradientTransformation | None = None,
    samples_per_step: int = 8,
    num: int = 61,
) -> BezierCurve:
    """Train the bend of a quadratic Bézier curve to minimise ``E_{t~U(0,1)} L(curve(t))``.

    The bend starts at the midpoint of A and B (the straight line); each step draws
    ``samples_per_step`` values of ``t`` from ``fold_in(key, step)``.  The whole loop is one
    ``lax.scan``.
    """
    if steps < 1 or samples_per_step < 1:
        raise ConfigError("steps and samples_per_step must be positive")
    opt = optimizer if optimizer is not None else optax.adam(1e-2)
    bend0 = tree.scale(0.5, tree.add(theta_a, theta_b))

    def objective(bend, ts):
        return jnp.mean(jax.vmap(lambda t: loss_fn(bezier_point(theta_a, bend, theta_b, t)))(ts))

    def step(carry, i):
        bend, state = carry
        ts = jax.random.uniform(jax.random.fold_in(key, i), (samples_per_step,))
        value, grad = jax.value_and_grad(objective)(bend, ts)
        updates, state = opt.update(grad, state, bend)
        return (optax.apply_updates(bend, updates), state), value

    @jax.jit
    def run(bend):
        (bend, _), values = jax.lax.scan(step, (bend, opt.init(bend)), jnp.arange(steps))
        return bend, values

    bend, values = run(bend0)
    t = np.linspace(0.0, 1.0, num)
    curve = jax.jit(jax.vmap(lambda s: loss_fn(bezier_point(theta_a, bend, theta_b, s))))(jnp.asarray(t))
    line = jax.jit(jax.vmap(lambda s: loss_fn(bezier_point(theta_a, bend0, theta_b, s))))(jnp.asarray(t))
    return BezierCurve(bend, t, np.asarray(curve), np.asarray(line), np.asarray(values))


def compare_members(
    fn: Callable,
    stacked: PyTree,
    *,
    data,
    predict: Callable[[PyTree, jax.Array], jax.Array] | None = None,
    test_x=None,
    num: int = 25,
    tol: float = 0.05,
    aligned: bool = False,
    spec: PermutationSpec | None = None,
    metric: str | None = None,
    checkpoint=None,
    **kw,
) -> dict[str, np.ndarray]:
    """Every pairwise comparison of the members of ``stacked`` in one dict of ``(M, M)`` matrices.

    ``barrier``, ``barrier_midpoint`` (on ``data``), ``distance``, ``cosine``, ``basin (M,)``
    (barrier below ``tol``) and, given ``predict`` and ``test_x``, ``disagreement``.  With
    ``aligned=True`` also ``aligned_barrier``, ``aligned_barrier_midpoint``,
    ``aligned_distance`` and ``aligned_basin`` after weight matching of each pair (with the
    model's :class:`PermutationSpec` ``spec``).
    ``checkpoint``: a directory; the two barrier evaluations save their progress to
    ``barrier.npz`` and ``aligned.npz`` in it and resume from them (``keep_checkpoint=True``
    in ``kw`` leaves them for the caller to remove after saving the result).
    """
    from pathlib import Path

    def ckpt(name):
        return None if checkpoint is None else Path(checkpoint) / f"{name}.npz"

    if not (np.isfinite(tol) and tol >= 0):
        raise ConfigError(f"tol must be finite and >= 0, got {tol}")
    out = dict(barrier_matrix(fn, stacked, num=num, data=data, metric=metric, checkpoint=ckpt("barrier"), **kw))
    out["distance"] = distance_matrix(stacked)
    out["cosine"] = cosine_matrix(stacked)
    out["basin"] = basins(out["barrier"], tol)
    if predict is not None and test_x is not None:
        out["disagreement"] = disagreement_matrix(predict, stacked, test_x)
    if aligned:
        if spec is None:
            raise ConfigError("alignment needs the model's permutation spec (spec=model.permutation_spec())")
        al = aligned_barrier_matrix(fn, stacked, spec=spec, num=num, data=data, metric=metric, checkpoint=ckpt("aligned"), **kw)
        out.update({f"aligned_{k}": v for k, v in al.items()})
        out["aligned_basin"] = basins(al["barrier"], tol)
    return out
