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
* Basins of attraction: every point of a plane through the minima is a start; all of them are
  trained as one ensemble and each is labelled by the minimum whose basin it ends in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import directions as dirs
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
    "BasinMap",
    "ELSEWHERE",
    "DIVERGED",
    "SHARED",
    "label_fractions",
    "plane_of",
    "on_plane",
    "plane_starts",
    "plane_coords",
    "label_ends",
    "basins_of_attraction",
]

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
            chunk_size: int | None = None, shortcut: bool = True, checkpoint=None, keep_checkpoint: bool = False,
            save_every_s: float = 5.0, progress: bool = False, mesh=None, desc: str = "barriers") -> dict[str, float]:
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
      chunk_size: evaluations per compiled call (default: automatic), as for :func:`landscape.surface.evaluate`;
        memory is bounded by it and the numbers do not depend on it.
      shortcut: use the first-layer shortcut when ``fn`` offers it (exact; the built-in MLP).
      checkpoint: a file that holds progress; the same call after an interruption resumes from it.
      keep_checkpoint: leave the checkpoint for the caller to delete once the result is saved.
      save_every_s: minimum seconds between checkpoint writes.
      progress: show a progress bar.
      mesh: a :func:`landscape.distributed.make_mesh` mesh to shard the points over (``None``: one device).
      desc: the progress bar's label.

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
    vals = surface.evaluate(fn, theta_a, [tree.sub(theta_b, theta_a)], t[:, None], data=data, chunk_size=chunk_size,
                            shortcut=shortcut, checkpoint=checkpoint, keep_checkpoint=keep_checkpoint,
                            save_every_s=save_every_s, progress=progress, mesh=mesh, desc=desc)
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
                     chunk_size: int | None = None, shortcut: bool = True, checkpoint=None,
                     keep_checkpoint: bool = False, save_every_s: float = 5.0, progress: bool = False, mesh=None,
                     desc: str = "barriers") -> dict[str, np.ndarray]:
    """Both barriers between ``a[i]`` and ``b[i]`` for stacked pytrees, all pairs in one call.

    Args:
      fn: the metric function, as for :func:`landscape.surface.evaluate`.
      a: the first solutions, leaves ``(n, ...)``.
      b: the second, shaped likewise.
      num: points on ``[0, 1]``.
      data: the batches.
      metric: the loss among ``fn``'s outputs, as for :func:`barrier`.
      chunk_size: evaluations per compiled call (default: automatic), as for :func:`landscape.surface.evaluate`;
        memory is bounded by it and the numbers do not depend on it.
      shortcut: use the first-layer shortcut when ``fn`` offers it (exact; the built-in MLP).
      checkpoint: a file that holds progress; the same call after an interruption resumes from it.
      keep_checkpoint: leave the checkpoint for the caller to delete once the result is saved.
      save_every_s: minimum seconds between checkpoint writes.
      progress: show a progress bar.
      mesh: a :func:`landscape.distributed.make_mesh` mesh to shard the points over (``None``: one device).
      desc: the progress bar's label.

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
    vals = surface.evaluate(fn, a, [tree.sub(b, a)], t[:, None], data=data, stacked=True, chunk_size=chunk_size,
                            shortcut=shortcut, checkpoint=checkpoint, keep_checkpoint=keep_checkpoint,
                            save_every_s=save_every_s, progress=progress, mesh=mesh, desc=desc)
    return {k: np.atleast_1d(v) for k, v in surface.barrier_of_curve(t, vals[_pick(vals, metric)]).items()}


def barrier_matrix(fn: Callable, stacked: PyTree, *, num: int = 25, data=None, metric: str | None = None,
                   index_pairs: np.ndarray | None = None, chunk_size: int | None = None, shortcut: bool = True,
                   checkpoint=None, keep_checkpoint: bool = False, save_every_s: float = 5.0, progress: bool = False,
                   mesh=None, desc: str = "barriers") -> dict[str, np.ndarray]:
    """Symmetric ``(M, M)`` matrices ``barrier`` and ``barrier_midpoint`` between all members.

    Args:
      fn: the metric function, as for :func:`landscape.surface.evaluate`.
      stacked: the members, leaves ``(M, ...)``.
      num: points on ``[0, 1]`` of each line.
      data: the batches.
      metric: the loss among ``fn``'s outputs, as for :func:`barrier`.
      index_pairs: ``(n, 2)`` the pairs to compute (the others are NaN); default every pair.
      chunk_size: evaluations per compiled call (default: automatic), as for :func:`landscape.surface.evaluate`;
        memory is bounded by it and the numbers do not depend on it.
      shortcut: use the first-layer shortcut when ``fn`` offers it (exact; the built-in MLP).
      checkpoint: a file that holds progress; the same call after an interruption resumes from it.
      keep_checkpoint: leave the checkpoint for the caller to delete once the result is saved.
      save_every_s: minimum seconds between checkpoint writes.
      progress: show a progress bar.
      mesh: a :func:`landscape.distributed.make_mesh` mesh to shard the points over (``None``: one device).
      desc: the progress bar's label.

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
    res = barriers_between(fn, a, b, num=num, data=data, metric=metric, chunk_size=chunk_size, shortcut=shortcut,
                           checkpoint=checkpoint, keep_checkpoint=keep_checkpoint, save_every_s=save_every_s,
                           progress=progress, mesh=mesh, desc=desc)
    for k in out:
        out[k][pr[:, 0], pr[:, 1]] = res[k]
        out[k][pr[:, 1], pr[:, 0]] = res[k]
    return out


def aligned_barrier_matrix(fn: Callable, stacked: PyTree, *, spec: PermutationSpec, num: int = 25, data=None,
                           metric: str | None = None, chunk_size: int | None = None, shortcut: bool = True,
                           checkpoint=None, keep_checkpoint: bool = False, save_every_s: float = 5.0,
                           progress: bool = False, mesh=None, desc: str = "barriers") -> dict[str, np.ndarray]:
    """Barrier matrices after weight matching (Ainsworth et al. 2023): for every pair ``i < j``,
    ``j`` is aligned to ``i`` first (:func:`align` with the model's ``spec``).

    Args:
      fn: the metric function, as for :func:`landscape.surface.evaluate`.
      stacked: the members, leaves ``(M, ...)``.
      spec: the model's :class:`PermutationSpec`.
      num: points on ``[0, 1]`` of each line.
      data: the batches.
      metric: the loss among ``fn``'s outputs, as for :func:`barrier`.
      chunk_size: evaluations per compiled call (default: automatic), as for :func:`landscape.surface.evaluate`;
        memory is bounded by it and the numbers do not depend on it.
      shortcut: use the first-layer shortcut when ``fn`` offers it (exact; the built-in MLP).
      checkpoint: a file that holds progress; the same call after an interruption resumes from it.
      keep_checkpoint: leave the checkpoint for the caller to delete once the result is saved.
      save_every_s: minimum seconds between checkpoint writes.
      progress: show a progress bar.
      mesh: a :func:`landscape.distributed.make_mesh` mesh to shard the points over (``None``: one device).
      desc: the progress bar's label.

    Returns:
      ``{"barrier", "barrier_midpoint", "distance"}``, each ``(M, M)``; ``distance`` between
      ``i`` and the aligned ``j``.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> ens = ls.train_ensemble(ls.MLP(hidden=(4,)), data, key=jax.random.key(0), seeds=3,
      ...                         loss="cross_entropy", steps=30, progress=False)
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
    res = barriers_between(fn, a, aligned, num=num, data=data, metric=metric, chunk_size=chunk_size,
                           shortcut=shortcut, checkpoint=checkpoint, keep_checkpoint=keep_checkpoint,
                           save_every_s=save_every_s, progress=progress, mesh=mesh, desc=desc)
    res["distance"] = np.asarray(jax.vmap(lambda u, v: tree.norm(tree.sub(u, v)))(a, aligned))
    for k in out:
        out[k][pr[:, 0], pr[:, 1]] = res[k]
        out[k][pr[:, 1], pr[:, 0]] = res[k]
    return out


def distance_matrix(stacked: PyTree) -> np.ndarray:
    """Euclidean distances ``||theta_i - theta_j||`` between members, ``(M, M)``.

    Args:
      stacked: the members, leaves ``(M, ...)``.

    Returns:
      ``(M, M)`` float64, zero diagonal (computed on the host).

    Examples:
      >>> stacked = ls.tree.stack([{"w": jnp.array([0.0, 0.0])}, {"w": jnp.array([3.0, 4.0])}])
      >>> ls.minima.distance_matrix(stacked).tolist()
      [[0.0, 5.0], [5.0, 0.0]]
    """
    flat = tree.member_rows(stacked)
    sq = np.sum(flat**2, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * flat @ flat.T, 0.0)
    np.fill_diagonal(d2, 0.0)
    return np.sqrt(d2)


def cosine_matrix(stacked: PyTree) -> np.ndarray:
    """Cosine similarity of the members' parameter vectors, ``(M, M)``.

    Args:
      stacked: the members, leaves ``(M, ...)``.

    Returns:
      ``(M, M)`` float64.

    Examples:
      >>> stacked = ls.tree.stack([{"w": jnp.array([1.0, 0.0])}, {"w": jnp.array([0.0, 2.0])}])
      >>> ls.minima.cosine_matrix(stacked).tolist()
      [[1.0, 0.0], [0.0, 1.0]]
    """
    flat = tree.member_rows(stacked)
    n = np.linalg.norm(flat, axis=1)
    return (flat @ flat.T) / np.maximum(n[:, None] * n[None, :], 1e-30)


def disagreement_matrix(predict: Callable[[PyTree, jax.Array], jax.Array], stacked: PyTree, x) -> np.ndarray:
    """Fraction of inputs ``x`` on which two members predict different classes (Fort et al. 2019).

    Args:
      predict: ``(params, x) -> outputs (N, K)`` of one member (``model.apply``).
      stacked: the members, leaves ``(M, ...)``.
      x: ``(N, ...)`` inputs (the test set).

    Returns:
      ``(M, M)``, the share of inputs whose arg-max class differs.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> ens = ls.train_ensemble(ls.MLP(hidden=(4,)), data, key=jax.random.key(0), seeds=3,
      ...                         loss="cross_entropy", steps=30, progress=False)
      >>> fn = ls.models.metrics_fn(ens.model, "cross_entropy")
      >>> d = ls.minima.disagreement_matrix(ens.model.apply, ens.params, data.test.x)
      >>> d.shape, float(d[0, 0])                            # (M, M), zero on the diagonal
      ((3, 3), 0.0)
    """
    labels = np.asarray(jax.jit(jax.vmap(lambda p: jnp.argmax(predict(p, x), axis=-1)))(stacked))
    return np.mean(labels[:, None, :] != labels[None, :, :], axis=-1)


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


# ---------------------------------------------------------------------- permutation alignment




# ---------------------------------------------------------------------- connecting curves


class BezierCurve(NamedTuple):
    """A trained quadratic Bézier curve between two minima.

    ``bend``: the control point.  ``t (n,)``; ``curve_loss`` and ``line_loss`` ``(n,)``: the
    loss along the curve and along the straight line; ``train_loss (steps,)``: the
    objective during training.

    Attributes:
      bend: the control point, a parameter pytree.
      t: ``(n,)`` curve parameters.
      curve_loss: ``(n,)`` the loss along the curve.
      line_loss: ``(n,)`` the loss along the straight line.
      train_loss: ``(steps,)`` the training objective.

    Examples:
      >>> well = lambda p: (p["w"][0] ** 2 - 1.0) ** 2 + p["w"][1] ** 2     # minima at w = (-1, 0), (1, 0)
      >>> left, right = {"w": jnp.array([-1.0, 0.0])}, {"w": jnp.array([1.0, 0.0])}
      >>> c = ls.minima.bezier_curve(well, left, right, key=jax.random.key(0), steps=300, num=11)
      >>> c.t.shape, c.curve_loss.shape, c.train_loss.shape
      ((11,), (11,), (300,))
    """

    bend: PyTree
    t: np.ndarray
    curve_loss: np.ndarray
    line_loss: np.ndarray
    train_loss: np.ndarray


def bezier_point(theta_a: PyTree, bend: PyTree, theta_b: PyTree, t) -> PyTree:
    """``(1-t)² A + 2t(1-t) bend + t² B``.

    Args:
      theta_a: the curve's start.
      bend: its control point.
      theta_b: its end.
      t: the curve parameter in ``[0, 1]``.

    Returns:
      the parameters at ``t`` (Garipov et al. 2018's quadratic Bézier curve).

    Examples:
      >>> a, bend, b = {"w": jnp.zeros(1)}, {"w": jnp.ones(1)}, {"w": jnp.full(1, 2.0)}
      >>> ls.minima.bezier_point(a, bend, b, 0.5)["w"].tolist()   # 0.25 a + 0.5 bend + 0.25 b
      [1.0]
    """
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

    Garipov et al. (2018): low-loss curves connect minima that a straight line separates by a barrier.

    Args:
      loss_fn: ``params -> scalar``.
      theta_a: one minimum (no member axis).
      theta_b: the other.
      key: PRNG key of the ``t`` samples.
      steps: optimizer steps.
      optimizer: an optax transformation (default Adam at 0.01).
      samples_per_step: ``t`` values per step.
      num: points on ``[0, 1]`` at which the trained curve and the line are evaluated.

    Returns:
      a :class:`BezierCurve`: the bend, ``t``, the loss along the curve and along the line.

    Examples:
      >>> ring = lambda p: (p["w"][0] ** 2 + p["w"][1] ** 2 - 1.0) ** 2   # minima on the unit circle
      >>> a, b = {"w": jnp.array([-1.0, 0.0])}, {"w": jnp.array([0.0, 1.0])}
      >>> c = ls.minima.bezier_curve(ring, a, b, key=jax.random.key(0), steps=200, num=21)
      >>> float(c.line_loss.max()), bool(c.curve_loss.max() < 0.01)   # the chord cuts inside; the curve follows the ring
      (0.25, True)
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
    chunk_size: int | None = None,
    shortcut: bool = True,
    checkpoint=None,
    keep_checkpoint: bool = False,
    save_every_s: float = 5.0,
    progress: bool = False,
    mesh=None,
    desc: str = "barriers",
) -> dict[str, np.ndarray]:
    """Every pairwise comparison of the members of ``stacked`` in one dict of ``(M, M)`` matrices.

    ``barrier``, ``barrier_midpoint`` (on ``data``), ``distance``, ``cosine``, ``basin (M,)``
    (barrier below ``tol``) and, given ``predict`` and ``test_x``, ``disagreement``.  With
    ``aligned=True`` also ``aligned_barrier``, ``aligned_barrier_midpoint``,
    ``aligned_distance`` and ``aligned_basin`` after weight matching of each pair (with the
    model's :class:`PermutationSpec` ``spec``).
    ``checkpoint``: a directory; the two barrier evaluations save their progress to
    ``barrier.npz`` and ``aligned.npz`` in it and resume from them (``keep_checkpoint=True``
    leaves them for the caller to remove after saving the result).  ``chunk_size``,
    ``shortcut``, ``save_every_s``, ``progress``, ``mesh`` and ``desc`` are as for
    :func:`landscape.surface.evaluate`; none changes the numbers.

    Args:
      fn: the metric function, as for :func:`landscape.surface.evaluate`.
      stacked: the members, leaves ``(M, ...)``.
      data: the batches the barriers are measured on.
      predict: ``(params, x) -> outputs`` of one member, for ``disagreement``.
      test_x: the inputs of ``disagreement``.
      num: points on ``[0, 1]`` of each line.
      tol: the basin tolerance (loss units).
      aligned: also every pair after weight matching (Ainsworth et al. 2023).
      spec: the model's :class:`PermutationSpec` (needed with ``aligned``).
      metric: the loss among ``fn``'s outputs, as for :func:`barrier`.
      chunk_size: evaluations per compiled call.
      shortcut: use the first-layer shortcut when ``fn`` offers it.
      checkpoint: the directory described above.
      keep_checkpoint: leave the checkpoints for the caller to remove.
      save_every_s: minimum seconds between checkpoint writes.
      progress: show progress bars.
      mesh: a mesh to shard the points over.
      desc: the progress bars' label.

    Returns:
      the dict of matrices above.

    Raises:
      ConfigError: a bad ``tol``, or ``aligned`` without ``spec``.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> ens = ls.train_ensemble(ls.MLP(hidden=(4,)), data, key=jax.random.key(0), seeds=3,
      ...                         loss="cross_entropy", steps=30, progress=False)
      >>> fn = ls.models.metrics_fn(ens.model, "cross_entropy")
      >>> out = ls.minima.compare_members(fn, ens.params, data=data.train, predict=ens.model.apply,
      ...                                  test_x=data.test.x, num=9)
      >>> sorted(out)[:4], out["barrier"].shape
      (['barrier', 'barrier_midpoint', 'basin', 'cosine'], (3, 3))
    """
    kw = dict(chunk_size=chunk_size, shortcut=shortcut, keep_checkpoint=keep_checkpoint, save_every_s=save_every_s,
              progress=progress, mesh=mesh, desc=desc)
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
        al = aligned_barrier_matrix(fn, stacked, spec=spec, num=num, data=data, metric=metric,
                                    checkpoint=ckpt("aligned"), **kw)
        out.update({f"aligned_{k}": v for k, v in al.items()})
        out["aligned_basin"] = basins(al["barrier"], tol)
    return out


# ---------------------------------------------------------------------- basins of attraction

#: Label of a start whose end point is in none of the reference minima's basins.
ELSEWHERE = -1
#: Label of a start whose training diverged.
DIVERGED = -2
#: Label of a start whose end point is joined by a low barrier to two or more minima (between basins).
SHARED = -3


class BasinMap(NamedTuple):
    """Which reference minimum each start of a grid on a plane ends in (:func:`basins_of_attraction`).

    Attributes:
      a: ``(G,)`` grid coordinates along the plane's first direction.
      b: ``(H,)`` along its second.
      points: ``(R, 2)`` the reference minima's coordinates on the plane.
      labels: ``(G, H)`` int: ``i`` = the end point is in minimum ``i``'s basin and no other's
        (the barrier on the straight line from minimum ``i`` to the end point, aligned to it, is
        below ``tol``; to every other minimum it is not); :data:`SHARED` (−3) = below ``tol``
        to two or more minima; :data:`ELSEWHERE` (−1) = to none; :data:`DIVERGED` (−2).
      start_loss: ``(G, H)`` training cost at the starts (the plane's cost surface).
      final_loss: ``(G, H)`` training cost after training.
      distance: ``(G, H, R)`` distance from each end point (aligned to each minimum) to it.
      barrier: ``(G, H, R)`` the barrier between each minimum and the end point aligned to it.
      ends: ``(G, H, 2)`` the end points projected onto the plane (least squares in the
        plane's basis; a training that leaves the plane lands where its shadow falls).
      fractions: ``(R + 3,)`` share of the starts per label: minima ``0..R-1``, shared,
        elsewhere, diverged.
      reference_barriers: ``(R, R)`` barriers between the minima themselves (each pair aligned
        first, with a spec) — the scale ``tol`` stays below for the basins to be separate.
      tol: the tolerance used.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> ens = ls.train_ensemble(ls.MLP(hidden=(4,)), data, key=jax.random.key(0), seeds=3,
      ...                         loss="cross_entropy", steps=30, progress=False)
      >>> fn = ls.models.metrics_fn(ens.model, "cross_entropy")
      >>> m = ls.minima.basins_of_attraction(ens.model, data, ens.params, key=jax.random.key(1),
      ...                                     loss="cross_entropy", steps=20, grid=3, num=5)
      >>> m.labels.shape, m.points.shape                     # a label per start of the 3 x 3 grid; the 3 minima
      ((3, 3), (3, 2))
    """

    a: np.ndarray
    b: np.ndarray
    points: np.ndarray
    labels: np.ndarray
    start_loss: np.ndarray
    final_loss: np.ndarray
    distance: np.ndarray
    barrier: np.ndarray
    ends: np.ndarray
    fractions: np.ndarray
    reference_barriers: np.ndarray
    tol: float


def label_fractions(labels: np.ndarray, r: int) -> np.ndarray:
    """Share of ``labels`` per minimum ``0..r-1``, then shared, elsewhere, diverged: ``(r + 3,)``.

    Args:
      labels: labels from :func:`label_ends` (any shape).
      r: the number of minima.

    Returns:
      ``(r + 3,)`` shares summing to 1.

    Examples:
      >>> labels = np.array([0, 0, 1, ls.minima.SHARED, ls.minima.ELSEWHERE, ls.minima.DIVERGED])
      >>> ls.minima.label_fractions(labels, r=2).round(3).tolist()   # minimum 0, 1, shared, elsewhere, diverged
      [0.333, 0.167, 0.167, 0.167, 0.167]
    """
    labels = np.asarray(labels).ravel()
    order = list(range(r)) + [SHARED, ELSEWHERE, DIVERGED]
    return np.array([np.mean(labels == k) for k in order])


def plane_of(references: PyTree, *, grid: int = 41, margin: float = 0.25, span: float = 1.0,
             key: jax.Array | None = None, spec: PermutationSpec | None = None):
    """The plane of a basin map, a race or an in-plane descent, and its grid.

    With three references (leaves ``(3, ...)``) the plane through them (Garipov et al. 2018;
    with ``spec`` the second and third are first aligned to the first by weight matching,
    Ainsworth et al. 2023), gridded like :func:`landscape.surface.three_point`; with one, a
    random filter-normalised plane around it (Li et al. 2018) over ``[-span, span]²``.

    Args:
      references: stacked minima, leaves ``(R, ...)`` with ``R`` 1 or 3.
      grid: points per axis.
      margin: the three-point grid's margin around the minima.
      span: the random plane's half-width.
      key: its directions' PRNG key (required for ``R = 1``).
      spec: the model's :class:`PermutationSpec`, to align the minima first (optional).

    Returns:
      ``(references, origin, basis, a, b, points)``: the (aligned) references, the plane's
      origin and two directions, the grid axes ``(G,)``, ``(G,)`` and the minima's coordinates
      ``(R, 2)``.

    Examples:
      >>> well = lambda p: (p["w"][0] ** 2 - 1.0) ** 2 + p["w"][1] ** 2     # minima at w = (-1, 0), (1, 0)
      >>> left, right = {"w": jnp.array([-1.0, 0.0])}, {"w": jnp.array([1.0, 0.0])}
      >>> stacked = ls.tree.stack([left, right, {"w": jnp.array([-1.0, 0.1])}])
      >>> refs, origin, basis, a, b, points = ls.minima.plane_of(stacked, grid=5)
      >>> a.shape, b.shape, points.shape
      ((5,), (5,), (3, 2))
    """
    r = tree.num_members(references)
    if r not in (1, 3):
        raise ConfigError(f"a basin map needs one minimum (a random plane) or three (their plane), got {r}")
    if not isinstance(grid, (int, np.integer)) or grid < 2:
        raise ConfigError(f"grid must be an integer >= 2, got {grid!r}")
    if r == 3:
        if spec is not None:
            first = tree.take(references, 0)
            references = tree.stack([first, *tree.unstack(align_to(first, jax.tree_util.tree_map(
                lambda x: x[1:], references), spec=spec))])
        pl = dirs.three_point_plane(*tree.unstack(references))
        origin, basis, points = pl.origin, [pl.u, pl.v], pl.coords
        a, b = surface._box(points, margin, grid)
    else:
        if key is None:
            raise ConfigError("a random plane around one minimum needs a key")
        if not (np.isfinite(span) and span > 0):
            raise ConfigError(f"span must be finite and positive, got {span}")
        origin = tree.take(references, 0)
        basis = dirs.random_directions(key, origin, 2)
        points = np.zeros((1, 2))
        a = b = np.linspace(-span, span, grid)
    return references, origin, basis, a, b, points


def on_plane(origin: PyTree, basis: Sequence[PyTree], coords: np.ndarray) -> PyTree:
    """The parameters at plane coordinates: ``origin + c₀ u + c₁ v`` for every row of ``coords (K, 2)``,
    as numpy leaves ``(K, ...)`` (:func:`landscape.tree.lincomb`, vmapped).

    Args:
      origin: the plane's origin, a parameter pytree.
      basis: its two directions, shaped like ``origin``.
      coords: ``(K, 2)`` plane coordinates.

    Returns:
      the points, numpy leaves ``(K, ...)``.

    Examples:
      >>> origin, basis = {"w": jnp.zeros(2)}, [{"w": jnp.array([1.0, 0.0])}, {"w": jnp.array([0.0, 1.0])}]
      >>> ls.minima.on_plane(origin, basis, np.array([[1.0, 2.0], [0.5, 0.0]]))["w"].tolist()
      [[1.0, 2.0], [0.5, 0.0]]
    """
    coords = jnp.asarray(np.asarray(coords, np.float32))
    out = jax.vmap(lambda c: tree.lincomb(origin, c, list(basis)))(coords)
    return jax.tree_util.tree_map(np.asarray, out)


def plane_starts(references: PyTree, *, grid: int = 41, margin: float = 0.25, span: float = 1.0,
                 key: jax.Array | None = None, spec: PermutationSpec | None = None):
    """The plane of :func:`plane_of` and its grid of starts.

    Args:
      references: stacked minima, leaves ``(R, ...)``, ``R`` 1 or 3.
      grid: points per axis.
      margin: the three-point grid's margin around the minima.
      span: a random plane's half-width (``R = 1``).
      key: its directions' PRNG key (required for ``R = 1``).
      spec: a :class:`PermutationSpec`: align the minima to the first before the plane is laid.

    Returns:
      ``(references, origin, basis, a, b, points, starts)``: as :func:`plane_of`, and the
      starts, leaves ``(G·G, ...)`` (row-major in ``a``).

    Examples:
      >>> well = lambda p: (p["w"][0] ** 2 - 1.0) ** 2 + p["w"][1] ** 2     # minima at w = (-1, 0), (1, 0)
      >>> left, right = {"w": jnp.array([-1.0, 0.0])}, {"w": jnp.array([1.0, 0.0])}
      >>> stacked = ls.tree.stack([left, right, {"w": jnp.array([-1.0, 0.1])}])
      >>> *_, starts = ls.minima.plane_starts(stacked, grid=4)
      >>> starts["w"].shape                                  # 4 x 4 starts, row-major in a
      (16, 2)
    """
    references, origin, basis, a, b, points = plane_of(references, grid=grid, margin=margin, span=span, key=key,
                                                       spec=spec)
    aa, bb = np.meshgrid(a, b, indexing="ij")
    return references, origin, basis, a, b, points, on_plane(origin, basis, np.stack([aa.ravel(), bb.ravel()], 1))


def plane_coords(points: PyTree, origin: PyTree, basis: Sequence[PyTree]) -> np.ndarray:
    """Least-squares coordinates ``(K, 2)`` of stacked points (leaves ``(K, ...)``) in a plane's
    basis (orthonormal or not): where each point's shadow falls on the plane.

    Args:
      points: stacked points, leaves ``(K, ...)``.
      origin: the plane's origin.
      basis: its two directions.

    Returns:
      ``(K, 2)`` host array.

    Examples:
      >>> origin, basis = {"w": jnp.zeros(2)}, [{"w": jnp.array([1.0, 0.0])}, {"w": jnp.array([1.0, 1.0])}]
      >>> ls.minima.plane_coords({"w": np.array([[2.0, 1.0]])}, origin, basis).round(6).tolist()   # 1 u + 1 v
      [[1.0, 1.0]]
    """
    gram = np.array([[float(tree.vdot(u, v)) for v in basis] for u in basis])
    return np.linalg.solve(gram, dirs.project(points, origin, list(basis)).T).T


def label_ends(fn: Callable, data, references: PyTree, ends: PyTree, *, spec: PermutationSpec | None = None,
               tol: float = 0.05, num: int = 25, diverged: np.ndarray | None = None, chunk_size: int | None = None,
               ) -> dict[str, np.ndarray]:
    """The reference minimum each end point belongs to (the labelling of :func:`basins_of_attraction`).

    Each end point is aligned to each reference (weight matching with ``spec``; none without)
    and the loss barrier on the straight line from that reference to it is measured.  Label
    ``i`` when that barrier is below ``tol`` for minimum ``i`` only; :data:`SHARED` when for
    several; :data:`ELSEWHERE` when for none; :data:`DIVERGED` for ``diverged`` ends.

    Args:
      fn: ``(params, batch) -> {"loss", ...}`` (:func:`landscape.models.metrics_fn`).
      data: the batch ``(x, y)`` the barriers are measured on.
      references: minima, leaves ``(R, ...)``.
      ends: end points, leaves ``(P, ...)``.
      spec: the model's :class:`PermutationSpec` (``None``: no alignment).
      tol: the barrier tolerance (loss units).
      num: points per line.
      diverged: ``(P,)`` bool.
      chunk_size: of the evaluation.

    Returns:
      ``{"labels": (P,) int, "distance": (P, R), "barrier": (P, R)}``.

    Examples:
      >>> well = lambda p: (p["w"][0] ** 2 - 1.0) ** 2 + p["w"][1] ** 2     # minima at w = (-1, 0), (1, 0)
      >>> left, right = {"w": jnp.array([-1.0, 0.0])}, {"w": jnp.array([1.0, 0.0])}
      >>> refs = ls.tree.stack([left, right])
      >>> ends = ls.tree.stack([{"w": jnp.array([0.9, 0.0])}, {"w": jnp.array([-1.1, 0.0])}])
      >>> fn = lambda p: {"loss": well(p)}                   # labels go by the "loss" metric
      >>> ls.minima.label_ends(fn, None, refs, ends, tol=0.05)["labels"].tolist()
      [1, 0]
    """
    if not (np.isfinite(tol) and tol >= 0):
        raise ConfigError(f"tol must be finite and >= 0, got {tol}")
    refs = tree.unstack(references)
    p = tree.num_members(ends)
    dist, bars = [], []
    for i, ref in enumerate(refs):
        al = align_to(ref, ends, spec=spec) if spec is not None else ends
        dist.append(np.asarray(jax.vmap(lambda e, r=ref: tree.norm(tree.sub(e, r)))(al)))
        source = jax.tree_util.tree_map(lambda x, i=i: np.repeat(np.asarray(x)[i:i + 1], p, 0), references)
        bars.append(np.asarray(barriers_between(fn, source, al, num=num, data=data, metric="loss",
                                                chunk_size=chunk_size)["barrier"]))
    distance, barrier = np.stack(dist, axis=1), np.stack(bars, axis=1)  # (P, R)
    low = barrier < tol
    count = low.sum(axis=1)
    labels = np.where(count == 1, np.argmax(low, axis=1), np.where(count > 1, SHARED, ELSEWHERE))
    if diverged is not None:
        labels = np.where(np.asarray(diverged), DIVERGED, labels)
    return {"labels": labels, "distance": distance, "barrier": barrier}


def basins_of_attraction(
    model,
    data,
    references: PyTree,
    *,
    key: jax.Array,
    optimizer=None,
    loss: str = "mse",
    steps: int = 1000,
    batch_size: int | None = None,
    grid: int = 41,
    margin: float = 0.25,
    span: float = 1.0,
    spec: PermutationSpec | None = None,
    tol: float | None = None,
    num: int = 25,
    metrics: Callable | None = None,
    progress: bool = False,
    mesh=None,
    chunk_size: int | None = None,
) -> BasinMap:
    """Basins of attraction on a plane: every grid point is a start in the full parameter space,
    all starts are trained as one ensemble, and each is labelled by the minimum it ends in.

    The plane is the one through three minima or a random plane around one
    (:func:`plane_starts`).  The starts train with ``optimizer``, ``loss``, ``steps`` and
    ``batch_size`` (minibatch orders keyed by the grid index: the map is a function of the
    arguments).  An end point is aligned to each reference by weight matching (with
    ``spec``) and belongs to a minimum's basin when the loss barrier on the straight line
    between them is below ``tol`` (:func:`label_ends`) — a start still descending into a basin
    at the end of training counts for it; one joined to several minima is :data:`SHARED`, one
    joined to none :data:`ELSEWHERE`.  ``tol=None`` takes half the smallest barrier between
    the (aligned) minima themselves, so that no end point can belong to two minima that a
    barrier separates; with one minimum, 0.05.

    Args:
      model: the model (:func:`landscape.models.as_model`), bound to ``data``.
      data: the :class:`~landscape.data.Dataset`; training and barriers use its train split.
      references: the minima, leaves ``(R, ...)``, ``R`` 1 or 3.
      key: PRNG key of the training (minibatch orders) and of a random plane.
      optimizer: an :class:`~landscape.optim.OptimizerSpec` or optax transformation (default
        plain SGD at 1).
      loss: ``"mse"`` or ``"cross_entropy"``, as :func:`landscape.train.train_ensemble`.
      steps: optimizer steps of every start.
      batch_size: minibatch size (``None``: full batch), as :func:`landscape.train.train_ensemble`.
      grid: points per side of the plane's grid (:func:`plane_starts`).
      margin: the three-point grid's margin around the minima (as in :func:`plane_of`).
      span: the half-width of a random plane around one minimum.
      spec: the model's :class:`PermutationSpec` for alignment (``None``: no alignment).
      tol: barrier below which an end point belongs to a minimum's basin (loss units); ``None``:
        half the smallest barrier between the minima (0.05 with one minimum).
      num: points on each straight line for the barrier.
      metrics: ``(params, (x, y)) -> {"loss", ...}`` for the barriers (default
        :func:`landscape.models.metrics_fn`; a model with BatchNorm needs one with its
        statistics chosen, :func:`landscape.models.with_statistics`).
      progress: show the training's progress bar.
      mesh: the device mesh the starts are sharded over (``None``: the default).
      chunk_size: points per compiled call of the barrier evaluation.

    Returns:
      a :class:`BasinMap`.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> ens = ls.train_ensemble(ls.MLP(hidden=(4,)), data, key=jax.random.key(0), seeds=3,
      ...                         loss="cross_entropy", steps=30, progress=False)
      >>> fn = ls.models.metrics_fn(ens.model, "cross_entropy")
      >>> m = ls.minima.basins_of_attraction(ens.model, data, ens.params, key=jax.random.key(1),
      ...                                     loss="cross_entropy", steps=20, grid=3, num=5)
      >>> round(float(ls.minima.label_fractions(m.labels, 3).sum()), 6)
      1.0
    """
    from . import models, optim
    from . import train as train_mod

    if tol is not None and not (np.isfinite(tol) and tol >= 0):
        raise ConfigError(f"tol must be finite and >= 0, got {tol}")
    model = models.as_model(model).for_data(data)
    if spec is not None:
        check_alignable(spec, tree.take(references, 0))
    references, origin, basis, a, b, points, starts = plane_starts(
        references, grid=grid, margin=margin, span=span, key=jax.random.fold_in(key, 1), spec=spec)
    ens = train_mod.train_ensemble(
        model, data, key=key, starts=starts, optimizer=optimizer or optim.OptimizerSpec("sgd", 1.0), loss=loss,
        steps=steps, batch_size=batch_size, log_every=steps, progress=progress, mesh=mesh)
    fn = metrics if metrics is not None else models.metrics_fn(model, loss)
    data_xy = (data.train.x, data.train.y)
    r = tree.num_members(references)
    if r == 1:
        ref_bars = np.zeros((1, 1))
    elif spec is not None:  # each pair aligned as label_ends aligns an end point to each minimum
        ref_bars = aligned_barrier_matrix(fn, references, spec=spec, num=num, data=data_xy, metric="loss",
                                          chunk_size=chunk_size)["barrier"]
    else:
        ref_bars = barrier_matrix(fn, references, num=num, data=data_xy, metric="loss", chunk_size=chunk_size)["barrier"]
    if tol is None:
        tol = 0.5 * float(np.min(ref_bars[~np.eye(r, dtype=bool)])) if r > 1 else 0.05
        tol = max(tol, 0.0)
    lab = label_ends(fn, data_xy, references, ens.params, spec=spec, tol=tol, num=num, diverged=ens.diverged,
                     chunk_size=chunk_size)
    shape = (a.size, b.size)
    return BasinMap(
        a=a, b=b, points=points, labels=lab["labels"].reshape(shape),
        start_loss=ens.history.train_loss[:, 0].reshape(shape),
        final_loss=ens.history.train_loss[:, -1].reshape(shape),
        distance=lab["distance"].reshape(shape + (r,)), barrier=lab["barrier"].reshape(shape + (r,)),
        ends=plane_coords(ens.params, origin, basis).reshape(shape + (2,)),
        fractions=label_fractions(lab["labels"], r), reference_barriers=np.asarray(ref_bars), tol=float(tol))
