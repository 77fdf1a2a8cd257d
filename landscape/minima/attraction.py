"""Basins of attraction: every point of a plane through the minima starts a training run; each is labelled by the minimum it ends in."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..core import tree
from ..core.errors import ConfigError
from ..core.execution import Execution
from ..geometry import directions as dirs
from ..geometry import surface
from ..models.permutation import PermutationSpec, align_to, check_alignable
from .barriers import aligned_barrier_matrix, barrier_matrix, barriers_between

PyTree = Any

__all__ = ["ELSEWHERE", "DIVERGED", "SHARED", "BasinMap", "label_fractions", "plane_of", "on_plane", "plane_starts",
           "plane_coords", "label_ends", "basins_of_attraction"]

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
      ...                         loss="cross_entropy", steps=30, execution=ls.Execution(progress=False))
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
               tol: float = 0.05, num: int = 25, diverged: np.ndarray | None = None,
               execution: Execution = Execution()) -> dict[str, np.ndarray]:
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
      execution: how to run it — chunking, checkpoint, progress bar, devices
        (:class:`~landscape.core.execution.Execution`); changes no number.

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
                                                execution=execution)["barrier"]))
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
    execution: Execution = Execution(),
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
      execution: how to run it — chunking, checkpoint, progress bar, devices
        (:class:`~landscape.core.execution.Execution`); changes no number.

    Returns:
      a :class:`BasinMap`.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> ens = ls.train_ensemble(ls.MLP(hidden=(4,)), data, key=jax.random.key(0), seeds=3,
      ...                         loss="cross_entropy", steps=30, execution=ls.Execution(progress=False))
      >>> fn = ls.models.metrics_fn(ens.model, "cross_entropy")
      >>> m = ls.minima.basins_of_attraction(ens.model, data, ens.params, key=jax.random.key(1),
      ...                                     loss="cross_entropy", steps=20, grid=3, num=5)
      >>> round(float(ls.minima.label_fractions(m.labels, 3).sum()), 6)
      1.0
    """
    from .. import models
    from ..training import engine as train_mod
    from ..training import optim

    if tol is not None and not (np.isfinite(tol) and tol >= 0):
        raise ConfigError(f"tol must be finite and >= 0, got {tol}")
    model = models.as_model(model).for_data(data)
    if spec is not None:
        check_alignable(spec, tree.take(references, 0))
    references, origin, basis, a, b, points, starts = plane_starts(
        references, grid=grid, margin=margin, span=span, key=jax.random.fold_in(key, 1), spec=spec)
    ens = train_mod.train_ensemble(
        model, data, key=key, starts=starts, optimizer=optimizer or optim.OptimizerSpec("sgd", 1.0), loss=loss,
        steps=steps, batch_size=batch_size, log_every=steps, execution=execution)
    fn = metrics if metrics is not None else models.metrics_fn(model, loss)
    data_xy = (data.train.x, data.train.y)
    r = tree.num_members(references)
    if r == 1:
        ref_bars = np.zeros((1, 1))
    elif spec is not None:  # each pair aligned as label_ends aligns an end point to each minimum
        ref_bars = aligned_barrier_matrix(fn, references, spec=spec, num=num, data=data_xy, metric="loss",
                                          execution=execution)["barrier"]
    else:
        ref_bars = barrier_matrix(fn, references, num=num, data=data_xy, metric="loss", execution=execution)["barrier"]
    if tol is None:
        tol = 0.5 * float(np.min(ref_bars[~np.eye(r, dtype=bool)])) if r > 1 else 0.05
        tol = max(tol, 0.0)
    lab = label_ends(fn, data_xy, references, ens.params, spec=spec, tol=tol, num=num, diverged=ens.diverged,
                     execution=execution)
    shape = (a.size, b.size)
    return BasinMap(
        a=a, b=b, points=points, labels=lab["labels"].reshape(shape),
        start_loss=ens.history.train_loss[:, 0].reshape(shape),
        final_loss=ens.history.train_loss[:, -1].reshape(shape),
        distance=lab["distance"].reshape(shape + (r,)), barrier=lab["barrier"].reshape(shape + (r,)),
        ends=plane_coords(ens.params, origin, basis).reshape(shape + (2,)),
        fractions=label_fractions(lab["labels"], r), reference_barriers=np.asarray(ref_bars), tol=float(tol))
