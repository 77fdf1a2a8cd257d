"""Barriers between minima, and basins of minima joined by low barriers.

* Barrier matrices evaluate the straight lines between every pair of members in one stacked
  call of :func:`landscape.surface.evaluate` (both barrier definitions of
  :func:`landscape.surface.barrier_of_curve`); after weight matching
  (:mod:`landscape.permutation`) they tell one basin up to symmetry from distinct minima.
* Basins: members joined when the barrier between them is below a tolerance (single linkage:
  connected components of the "low barrier" graph).
* :func:`compare_members`: every measure between the members of an ensemble at once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from ..core import tree
from ..core.errors import ConfigError
from ..core.execution import Execution
from ..geometry import surface
from ..models.permutation import PermutationSpec, align
from .measures import cosine_matrix, disagreement_matrix, distance_matrix

__all__ = ["pairs", "barrier", "barriers_between", "barrier_matrix", "aligned_barrier_matrix", "basins",
           "compare_members"]

PyTree = Any


def pairs(n: int) -> np.ndarray:
    """All index pairs ``i < j`` of ``n`` members, ``(n(n-1)/2, 2)``.

    Args:
      n: the number of members.

    Returns:
      ``(n(n-1)/2, 2)`` int, row-major (``(0, 1), (0, 2), …``).

    Examples:
      >>> ls.minima.pairs(3).tolist()
      [[0, 1], [0, 2], [1, 2]]
    """
    i, j = np.triu_indices(n, 1)
    return np.stack([i, j], axis=1)


def barrier(fn: Callable, theta_a: PyTree, theta_b: PyTree, *, num: int = 25, data=None, metric: str | None = None,
            shortcut: bool = True, execution: Execution = Execution()) -> dict[str, float]:
    """Both barrier definitions between two solutions (see :func:`landscape.surface.barrier_of_curve`;
    Garipov et al. 2018, Draxler et al. 2018).

    Args:
      fn: the metric function, as for :func:`landscape.surface.evaluate`.
      theta_a: one solution (no member axis).
      theta_b: the other.
      num: points on ``[0, 1]``.
      data: the batches, as for :func:`landscape.surface.evaluate`.
      metric: the loss among ``fn``'s outputs (default: the only output, or ``loss`` /
        ``train_loss``).
      shortcut: use the first-layer shortcut when ``fn`` offers it (exact; the built-in MLP).
      execution: how to run it — chunking, checkpoint, progress bar, devices
        (:class:`~landscape.core.execution.Execution`); changes no number.

    Returns:
      ``{"barrier", "barrier_midpoint", "t_max", "loss_a", "loss_b"}`` (floats).

    The maximum is over
    ``num`` evenly spaced points of ``[0, 1]``, ends included (25 by default, as
    ``landscape compare``; :func:`landscape.surface.interpolation` defaults to 61): the grid is
    part of the number, so pass the same ``num`` to compare barriers computed by both.

    Examples:
      >>> well = lambda p: (p["w"][0] ** 2 - 1.0) ** 2 + p["w"][1] ** 2     # minima at w = (-1, 0), (1, 0)
      >>> left, right = {"w": jnp.array([-1.0, 0.0])}, {"w": jnp.array([1.0, 0.0])}
      >>> b = ls.minima.barrier(well, left, right)             # 25 points on [0, 1]
      >>> b["barrier"], b["t_max"], b["loss_a"]
      (1.0, 0.5, 0.0)
    """
    t = surface.interpolation_grid(num, 0.0)
    vals = surface.evaluate(fn, theta_a, [tree.sub(theta_b, theta_a)], t[:, None], data=data,
                            execution=execution.labelled("barriers"),
                            shortcut=shortcut)
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
                     shortcut: bool = True, execution: Execution = Execution()) -> dict[str, np.ndarray]:
    """Both barriers between ``a[i]`` and ``b[i]`` for stacked pytrees, all pairs in one call.

    Args:
      fn: the metric function, as for :func:`landscape.surface.evaluate`.
      a: the first solutions, leaves ``(n, ...)``.
      b: the second, shaped likewise.
      num: points on ``[0, 1]``.
      data: the batches.
      metric: the loss among ``fn``'s outputs, as for :func:`barrier`.
      shortcut: use the first-layer shortcut when ``fn`` offers it (exact; the built-in MLP).
      execution: how to run it — chunking, checkpoint, progress bar, devices
        (:class:`~landscape.core.execution.Execution`); changes no number.

    Returns:
      ``{"barrier", "barrier_midpoint", "t_max", "loss_a", "loss_b"}``, each ``(n,)``.

    Examples:
      >>> well = lambda p: (p["w"][0] ** 2 - 1.0) ** 2 + p["w"][1] ** 2     # minima at w = (-1, 0), (1, 0)
      >>> left, right = {"w": jnp.array([-1.0, 0.0])}, {"w": jnp.array([1.0, 0.0])}
      >>> b = ls.minima.barriers_between(well, ls.tree.stack([left, left]), ls.tree.stack([right, left]))
      >>> b["barrier"].tolist()                              # (n,): one per pair a[i], b[i]
      [1.0, 0.0]
    """
    t = surface.interpolation_grid(num, 0.0)
    vals = surface.evaluate(fn, a, [tree.sub(b, a)], t[:, None], data=data, stacked=True,
                            execution=execution.labelled("barriers"),
                            shortcut=shortcut)
    return {k: np.atleast_1d(v) for k, v in surface.barrier_of_curve(t, vals[_pick(vals, metric)]).items()}


def barrier_matrix(fn: Callable, stacked: PyTree, *, num: int = 25, data=None, metric: str | None = None,
                   index_pairs: np.ndarray | None = None, shortcut: bool = True,
                   execution: Execution = Execution()) -> dict[str, np.ndarray]:
    """Symmetric ``(M, M)`` matrices ``barrier`` and ``barrier_midpoint`` between all members.

    Args:
      fn: the metric function, as for :func:`landscape.surface.evaluate`.
      stacked: the members, leaves ``(M, ...)``.
      num: points on ``[0, 1]`` of each line.
      data: the batches.
      metric: the loss among ``fn``'s outputs, as for :func:`barrier`.
      index_pairs: ``(n, 2)`` the pairs to compute (the others are NaN); default every pair.
      shortcut: use the first-layer shortcut when ``fn`` offers it (exact; the built-in MLP).
      execution: how to run it — chunking, checkpoint, progress bar, devices
        (:class:`~landscape.core.execution.Execution`); changes no number.

    Returns:
      ``{"barrier": (M, M), "barrier_midpoint": (M, M)}``; all pairs are evaluated in one stacked
      call, chunked over points.

    Examples:
      >>> well = lambda p: (p["w"][0] ** 2 - 1.0) ** 2 + p["w"][1] ** 2     # minima at w = (-1, 0), (1, 0)
      >>> left, right = {"w": jnp.array([-1.0, 0.0])}, {"w": jnp.array([1.0, 0.0])}
      >>> stacked = ls.tree.stack([left, right, {"w": jnp.array([-1.0, 0.1])}])
      >>> ls.minima.barrier_matrix(well, stacked)["barrier"].round(2).tolist()
      [[0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
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
    res = barriers_between(fn, a, b, num=num, data=data, metric=metric, execution=execution, shortcut=shortcut)
    for k in out:
        out[k][pr[:, 0], pr[:, 1]] = res[k]
        out[k][pr[:, 1], pr[:, 0]] = res[k]
    return out


def aligned_barrier_matrix(fn: Callable, stacked: PyTree, *, spec: PermutationSpec, num: int = 25, data=None,
                           metric: str | None = None, shortcut: bool = True,
                           execution: Execution = Execution()) -> dict[str, np.ndarray]:
    """Barrier matrices after weight matching (Ainsworth et al. 2023): for every pair ``i < j``,
    ``j`` is aligned to ``i`` first (:func:`align` with the model's ``spec``).

    Args:
      fn: the metric function, as for :func:`landscape.surface.evaluate`.
      stacked: the members, leaves ``(M, ...)``.
      spec: the model's :class:`PermutationSpec`.
      num: points on ``[0, 1]`` of each line.
      data: the batches.
      metric: the loss among ``fn``'s outputs, as for :func:`barrier`.
      shortcut: use the first-layer shortcut when ``fn`` offers it (exact; the built-in MLP).
      execution: how to run it — chunking, checkpoint, progress bar, devices
        (:class:`~landscape.core.execution.Execution`); changes no number.

    Returns:
      ``{"barrier", "barrier_midpoint", "distance"}``, each ``(M, M)``; ``distance`` between
      ``i`` and the aligned ``j``.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> ens = ls.train_ensemble(ls.MLP(hidden=(4,)), data, key=jax.random.key(0), seeds=3,
      ...                         loss="cross_entropy", steps=30, execution=ls.Execution(progress=False))
      >>> fn = ls.models.metrics_fn(ens.model, "cross_entropy")
      >>> out = ls.minima.aligned_barrier_matrix(fn, ens.params, spec=ens.model.permutation_spec(), data=data.train)
      >>> out["barrier"].shape, out["distance"].shape
      ((3, 3), (3, 3))
    """
    m = tree.num_members(stacked)
    pr = pairs(m)
    out = {"barrier": np.zeros((m, m)), "barrier_midpoint": np.zeros((m, m)), "distance": np.zeros((m, m))}
    if pr.size == 0:
        return out
    members = tree.unstack(stacked)
    aligned = tree.stack([align(members[i], members[j], spec=spec)[0] for i, j in pr])
    a = jax.tree_util.tree_map(lambda x: x[pr[:, 0]], stacked)
    res = barriers_between(fn, a, aligned, num=num, data=data, metric=metric, execution=execution,
                           shortcut=shortcut)
    res["distance"] = np.asarray(jax.vmap(lambda u, v: tree.norm(tree.sub(u, v)))(a, aligned))
    for k in out:
        out[k][pr[:, 0], pr[:, 1]] = res[k]
        out[k][pr[:, 1], pr[:, 0]] = res[k]
    return out


def basins(barriers: np.ndarray, tol: float) -> np.ndarray:
    """Basin label per member: connected components of ``barrier < tol``.

    Label 0 is the largest basin; ties go to the basin holding the lowest member index.

    Pairs with a NaN barrier are not joined.

    Args:
      barriers: ``(M, M)`` a barrier matrix (:func:`barrier_matrix`).
      tol: the tolerance (loss units): single linkage joins pairs below it.

    Returns:
      ``(M,)`` int basin labels.

    Examples:
      >>> barriers = np.array([[0.0, 0.01, 0.9], [0.01, 0.0, 0.8], [0.9, 0.8, 0.0]])
      >>> ls.minima.basins(barriers, tol=0.05).tolist()     # 0 and 1 share a basin
      [0, 0, 1]
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


def compare_members(
    fn: Callable,
    stacked: PyTree,
    *,
    data,
    predict: Callable[[PyTree, jax.Array], jax.Array] | None = None,
    test_x=None,
    num: int = 25,
    tol: float = 0.05,
    align: PermutationSpec | None = None,
    metric: str | None = None,
    shortcut: bool = True,
    execution: Execution = Execution(),
) -> dict[str, np.ndarray]:
    """Every pairwise comparison of the members of ``stacked`` in one dict of ``(M, M)`` matrices.

    ``barrier``, ``barrier_midpoint`` (on ``data``), ``distance``, ``cosine``, ``basin (M,)``
    (barrier below ``tol``) and, given ``predict`` and ``test_x``, ``disagreement``.  Given the
    model's permutation structure ``align`` also ``aligned_barrier``, ``aligned_barrier_midpoint``,
    ``aligned_distance`` and ``aligned_basin`` after weight matching of each pair.
    ``execution.checkpoint`` is a directory: the two barrier evaluations save their progress to
    ``barrier.npz`` and ``aligned.npz`` in it and resume from them (``keep_checkpoint=True``
    leaves them for the caller to remove after saving the result).

    Args:
      fn: the metric function, as for :func:`landscape.surface.evaluate`.
      stacked: the members, leaves ``(M, ...)``.
      data: the batches the barriers are measured on.
      predict: ``(params, x) -> outputs`` of one member, for ``disagreement``.
      test_x: the inputs of ``disagreement``.
      num: points on ``[0, 1]`` of each line.
      tol: the basin tolerance (loss units).
      align: the model's :class:`~landscape.permutation.PermutationSpec`
        (``model.permutation_spec()``): also every pair after weight matching (Ainsworth et
        al. 2023); ``None``: raw barriers only.
      metric: the loss among ``fn``'s outputs, as for :func:`barrier`.
      shortcut: use the first-layer shortcut when ``fn`` offers it.
      execution: how to run it — chunking, checkpoint, progress bar, devices
        (:class:`~landscape.core.execution.Execution`); changes no number.

    Returns:
      the dict of matrices above.

    Raises:
      ConfigError: a bad ``tol``.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> ens = ls.train_ensemble(ls.MLP(hidden=(4,)), data, key=jax.random.key(0), seeds=3,
      ...                         loss="cross_entropy", steps=30, execution=ls.Execution(progress=False))
      >>> fn = ls.models.metrics_fn(ens.model, "cross_entropy")
      >>> out = ls.minima.compare_members(fn, ens.params, data=data.train, predict=ens.model.apply,
      ...                                  test_x=data.test.x, num=9)
      >>> sorted(out)[:4], out["barrier"].shape
      (['barrier', 'barrier_midpoint', 'basin', 'cosine'], (3, 3))
    """
    from pathlib import Path

    def ckpt(name):  # each matrix its own checkpoint file in the directory execution.checkpoint names
        where = None if execution.checkpoint is None else Path(execution.checkpoint) / f"{name}.npz"
        return dataclasses.replace(execution.labelled("barriers"), checkpoint=where)

    if not (np.isfinite(tol) and tol >= 0):
        raise ConfigError(f"tol must be finite and >= 0, got {tol}")
    out = dict(barrier_matrix(fn, stacked, num=num, data=data, metric=metric, shortcut=shortcut,
                              execution=ckpt("barrier")))
    out["distance"] = distance_matrix(stacked)
    out["cosine"] = cosine_matrix(stacked)
    out["basin"] = basins(out["barrier"], tol)
    if predict is not None and test_x is not None:
        out["disagreement"] = disagreement_matrix(predict, stacked, test_x)
    if align is not None:
        al = aligned_barrier_matrix(fn, stacked, spec=align, num=num, data=data, metric=metric, shortcut=shortcut,
                                    execution=ckpt("aligned"))
        out.update({f"aligned_{k}": v for k, v in al.items()})
        out["aligned_basin"] = basins(al["barrier"], tol)
    return out
