"""Paths on one fixed plane: optimizer races, and gradient descent inside the plane.

Races: several optimizers (and step sizes, and minibatch noise) from the same starts, their
paths drawn on one fixed plane.  In-plane descent (:func:`descend_in_plane`): gradient descent
on the drawn surface itself — the lecture animation of ``landscape animate``.

The plane is the one through three minima (or a random plane around one), fixed before the race
(:func:`landscape.minima.plane_of`); the starts are points of that plane, so every path
begins on the surface that is drawn.  All optimizers of one batch size train in one vmapped
program (:class:`landscape.optim.OptimizerChoice`); each batch size is its own program (its
batches have another shape).  Every start keeps its minibatch order across optimizers (the
order is keyed by the start), so the optimizers see the same noise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np

from ..core import tree
from ..core.errors import ConfigError
from ..core.execution import Execution
from ..geometry import surface
from ..models.permutation import PermutationSpec
from ..training.optim import OptimizerSpec
from .attraction import on_plane, plane_coords, plane_of

__all__ = ["Race", "entrant_label", "plane_points", "race", "descend_in_plane", "basin_of_ends"]

PyTree = Any


class Race(NamedTuple):
    """The outcome of :func:`race`: ``S`` starts × ``E`` entrants (optimizer, batch size).

    Attributes:
      a: ``(G,)`` grid axes of the plane.
      b: ``(G,)`` grid axes of the plane.
      cost: ``(G, G)`` training cost on the plane.
      points: ``(R, 2)`` the minima's coordinates.
      starts: ``(S, 2)`` the starts' coordinates.
      steps: ``(T,)`` logged steps.
      loss: ``(S, E, T)`` training cost against steps.
      path_steps: ``(K,)`` the snapshot steps.
      paths: ``(S, E, K, 2)`` the parameters at those
        steps projected onto the plane (least squares in its basis: where their shadow falls).
      off_plane: ``(S, E, K)`` distance of each snapshot from the plane (how far the shadow is
        from the truth).
      labels: ``E`` entrant names (``adam@0.01``, ``sgd@3, batch 64``).
      diverged: ``(S, E)`` bool.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> ens = ls.train_ensemble(ls.MLP(hidden=(4,)), data, key=jax.random.key(0), seeds=3,
      ...                         loss="cross_entropy", steps=30, execution=ls.Execution(progress=False))
      >>> r = ls.race.race(ens.model, data, ens.params, key=jax.random.key(1), loss="cross_entropy",
      ...                  optimizers=[ls.OptimizerSpec("sgd", 0.5), ls.OptimizerSpec("adam", 0.05)],
      ...                  starts=2, steps=10, snapshot_every=5, grid=5)
      >>> r.loss.shape, r.paths.shape, r.labels                # (starts, entrants, steps 0, 5, 10); (S, E, K, 2)
      ((2, 2, 3), (2, 2, 3, 2), ['sgd@0.5', 'adam@0.05'])
    """

    a: np.ndarray
    b: np.ndarray
    cost: np.ndarray
    points: np.ndarray
    starts: np.ndarray
    steps: np.ndarray
    loss: np.ndarray
    path_steps: np.ndarray
    paths: np.ndarray
    off_plane: np.ndarray
    labels: list[str]
    diverged: np.ndarray


def entrant_label(spec: OptimizerSpec, batch_size: int | None) -> str:
    """``name@lr`` (``momentum`` and ``rmsprop`` with ``, m=…`` when not 0.9), ``, batch B`` for minibatches.

    Args:
      spec: the entrant's optimizer.
      batch_size: its batch size (``None``: full batch).

    Returns:
      the label, e.g. ``"adam@0.01, batch 64"``.

    Examples:
      >>> ls.race.entrant_label(ls.OptimizerSpec("adam", 0.01), 64)
      'adam@0.01, batch 64'
    """
    extra = f", m={spec.momentum:g}" if spec.name in ("momentum", "nesterov",
    "rmsprop") and spec.momentum != 0.9 else ""
    return f"{spec.name}@{spec.learning_rate:g}{extra}" + ("" if batch_size is None else f", batch {batch_size}")


def plane_points(key: jax.Array, a: np.ndarray, b: np.ndarray, count: int, *, inset: float = 0.1) -> np.ndarray:
    """``count`` uniform random points ``(count, 2)`` of the grid's box, kept ``inset`` (a
    fraction of each side) away from its edges.

    Args:
      key: PRNG key.
      a: ``(G,)`` the grid's first axis.
      b: ``(H,)`` its second.
      count: how many points.
      inset: the margin kept from each edge, as a fraction of the side.

    Returns:
      ``(count, 2)`` plane coordinates.

    Examples:
      >>> p = ls.race.plane_points(jax.random.key(0), np.linspace(-1, 1, 5), np.linspace(0, 2, 5), 4)
      >>> p.shape, bool(np.all((p[:, 0] > -0.8) & (p[:, 0] < 0.8)))   # kept 10% away from each edge
      ((4, 2), True)
    """
    if not isinstance(count, (int, np.integer)) or count < 1:
        raise ConfigError(f"the race needs at least one start, got {count!r}")
    lo = np.array([a.min(), b.min()])
    hi = np.array([a.max(), b.max()])
    pad = inset * (hi - lo)
    u = np.asarray(jax.random.uniform(key, (count, 2)), np.float64)
    return lo + pad + u * (hi - lo - 2 * pad)


def race(
    model,
    data,
    references: PyTree,
    *,
    key: jax.Array,
    optimizers: Sequence[OptimizerSpec],
    batch_sizes: Sequence[int | None] = (None,),
    starts: int | np.ndarray = 4,
    steps: int = 500,
    snapshot_every: int | None = None,
    loss: str = "mse",
    grid: int = 41,
    margin: float = 0.25,
    span: float = 1.0,
    spec: PermutationSpec | None = None,
    metrics: Callable | None = None,
    execution: Execution = Execution(),
) -> Race:
    """Race optimizers from the same starts on the plane through the minima.

    Args:
      model: the model, bound to ``data``.
      data: the :class:`~landscape.data.Dataset`.
      references: minima, leaves ``(R, ...)``, ``R`` 1 or 3 (the plane; see
        :func:`landscape.minima.plane_of`, aligned with ``spec`` when given).
      key: PRNG key: the starts' positions, a random plane, the minibatch orders.
      optimizers: the entrants' :class:`~landscape.optim.OptimizerSpec` (each with its own
        learning rate and momentum).
      batch_sizes: ``None`` (full batch) and/or minibatch sizes; every optimizer runs with each.
      starts: a count (uniform points of the plane's box, :func:`plane_points`) or ``(S, 2)``
        plane coordinates.
      steps: optimizer steps.
      snapshot_every: path resolution (default ``steps // 50``).
      loss: ``mse`` or ``cross_entropy``.
      grid: points per side of the plane's cost grid.
      margin: the three-point grid's margin around the minima (as in :func:`plane_of`).
      span: the half-width of a random plane around one minimum.
      spec: the model's :class:`~landscape.permutation.PermutationSpec`: align the minima to the
        first before the plane is laid (``None``: as they are).
      metrics: ``(params, (x, y)) -> {"loss", ...}`` for the plane's cost (default
        :func:`landscape.models.metrics_fn`).
      execution: how to run it — chunking, checkpoint, progress bar, devices
        (:class:`~landscape.core.execution.Execution`); changes no number.

    Returns:
      a :class:`Race`.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> ens = ls.train_ensemble(ls.MLP(hidden=(4,)), data, key=jax.random.key(0), seeds=3,
      ...                         loss="cross_entropy", steps=30, execution=ls.Execution(progress=False))
      >>> r = ls.race.race(ens.model, data, ens.params, key=jax.random.key(1), loss="cross_entropy",
      ...                  optimizers=[ls.OptimizerSpec("sgd", 0.5), ls.OptimizerSpec("adam", 0.05)],
      ...                  starts=2, steps=10, snapshot_every=5, grid=5)
      >>> r.cost.shape, r.starts.shape, bool(np.isfinite(r.loss).all())
      ((5, 5), (2, 2), True)
    """
    from .. import models
    from ..training import engine as train_mod

    specs = list(optimizers)
    if not specs or not all(isinstance(s, OptimizerSpec) for s in specs):
        raise ConfigError("a race needs one or more OptimizerSpec entrants")
    sizes = list(batch_sizes)
    if not sizes or len(set(sizes)) != len(sizes):
        raise ConfigError(f"batch sizes must be distinct, got {sizes}")
    if not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ConfigError(f"steps must be a positive integer, got {steps!r}")
    every = snapshot_every or max(1, steps // 50)
    model = models.as_model(model).for_data(data)
    k_plane, k_starts, k_train = jax.random.split(key, 3)
    _, origin, basis, a, b, points = plane_of(references, grid=grid, margin=margin, span=span, key=k_plane,
                                                     spec=spec)
    xy = plane_points(k_starts, a, b, starts) if np.isscalar(starts) else np.asarray(starts, np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ConfigError(f"starts must be a count or (S, 2) plane coordinates, got shape {xy.shape}")
    params0 = on_plane(origin, basis, xy)
    fn = metrics if metrics is not None else models.metrics_fn(model, loss)
    aa, bb = np.meshgrid(a, b, indexing="ij")
    cost = surface.evaluate(fn, origin, basis, np.stack([aa.ravel(), bb.ravel()], 1),
                            data=(data.train.x, data.train.y), execution=execution)["loss"].reshape(a.size, b.size)
    s, e_per = xy.shape[0], len(specs)
    labels, losses, paths, off, diverged = [], [], [], [], []
    for batch in sizes:
        ens = train_mod.train_ensemble(model, data, key=k_train, starts=params0, optimizer=specs, loss=loss,
                                       steps=steps, batch_size=batch, log_every=every, snapshot_every=every,
                                       execution=execution)
        labels += [entrant_label(sp, batch) for sp in specs]
        t = ens.history.train_loss.shape[1]
        losses.append(ens.history.train_loss.reshape(s, e_per, t))
        snaps = ens.trajectory.params  # leaves (M, K, ...)
        k = ens.trajectory.step.size
        flat = jax.tree_util.tree_map(lambda x: x.reshape((-1,) + x.shape[2:]), snaps)
        coords = plane_coords(flat, origin, basis)  # (M·K, 2)
        back = on_plane(origin, basis, coords)
        dist = np.asarray(jax.vmap(lambda p, q: tree.norm(tree.sub(p, q)))(flat, back))
        paths.append(coords.reshape(s, e_per, k, 2))
        off.append(dist.reshape(s, e_per, k))
        diverged.append(np.asarray(ens.diverged).reshape(s, e_per))
        steps_logged, path_steps = ens.history.step, ens.trajectory.step
    return Race(a=a, b=b, cost=np.asarray(cost), points=points, starts=xy, steps=np.asarray(steps_logged),
                loss=np.concatenate(losses, axis=1), path_steps=np.asarray(path_steps),
                paths=np.concatenate(paths, axis=1), off_plane=np.concatenate(off, axis=1), labels=labels,
                diverged=np.concatenate(diverged, axis=1))


def descend_in_plane(loss: Callable, origin: PyTree, basis: Sequence[PyTree], starts: np.ndarray, *, lr: float,
                     steps: int) -> np.ndarray:
    """Gradient descent restricted to a plane: ``c ← c − lr ∇_c L(origin + c₀ u + c₁ v)``.

    With an orthonormal basis (the plane through three minima) each step follows the
    projection of the true gradient onto the plane, so the path moves on exactly the surface
    a figure of the plane draws.  All starts run in one vmapped ``lax.scan``.

    Args:
      loss: ``params -> scalar`` (e.g. :func:`landscape.models.loss_fn` on the training set).
      origin: the plane's origin, a parameter pytree.
      basis: the plane's two directions, pytrees shaped like ``origin``.
      starts: ``(S, 2)`` plane coordinates.
      lr: step size.
      steps: number of steps.

    Returns:
      paths ``(S, steps + 1, 2)``, the starts first.

    Examples:
      >>> bowl = lambda p: jnp.sum((p["w"] - jnp.array([1.0, 2.0, 0.0])) ** 2)
      >>> origin, basis = {"w": jnp.zeros(3)}, [{"w": jnp.array([1.0, 0, 0])}, {"w": jnp.array([0, 1.0, 0])}]
      >>> paths = ls.race.descend_in_plane(bowl, origin, basis, np.zeros((1, 2)), lr=0.25, steps=20)
      >>> paths.shape, np.asarray(paths[0, -1], float).round(3).tolist()   # down to the bowl's bottom (1, 2)
      ((1, 21, 2), [1.0, 2.0])
    """
    import jax.numpy as jnp

    if not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ConfigError(f"steps must be a positive integer, got {steps!r}")
    if not (np.isfinite(lr) and lr > 0):
        raise ConfigError(f"lr must be finite and positive, got {lr}")
    def loss_at(c):
        return loss(tree.lincomb(origin, c, list(basis)))

    grad = jax.grad(loss_at)

    def descend(c0):
        def step(c, _):
            c = c - lr * grad(c)
            return c, c

        _, path = jax.lax.scan(step, c0, None, length=steps)
        return jnp.concatenate([c0[None], path])

    return np.asarray(jax.jit(jax.vmap(descend))(jnp.asarray(starts, jnp.float32)))


def basin_of_ends(ends: np.ndarray, points: np.ndarray, *, radius: float | None = None) -> np.ndarray:
    """The minimum each in-plane path ended at: the index of the nearest of ``points (R, 2)`` when
    the end ``(S, 2)`` lies within ``radius`` of it (default: a quarter of the smallest distance
    between the minima; with one minimum, a tenth of its distance to the farthest end), else −1.

    Args:
      ends: ``(S, 2)`` the paths' last points.
      points: ``(R, 2)`` the minima's coordinates.
      radius: how near an end must be (default as above).

    Returns:
      ``(S,)`` int.

    Examples:
      >>> ends = np.array([[0.02, 0.0], [1.0, 0.97], [0.5, 0.5]])
      >>> ls.race.basin_of_ends(ends, np.array([[0.0, 0.0], [1.0, 1.0]])).tolist()   # the last one is near neither
      [0, 1, -1]
    """
    ends, points = np.asarray(ends, float), np.asarray(points, float)
    d = np.linalg.norm(ends[:, None] - points[None], axis=-1)  # (S, R)
    if radius is None:
        if points.shape[0] > 1:
            pd = np.linalg.norm(points[:, None] - points[None], axis=-1)
            radius = 0.25 * pd[~np.eye(points.shape[0], dtype=bool)].min()
        else:
            radius = 0.1 * max(float(d.max()), 1e-12)
    nearest = np.argmin(d, axis=1)
    return np.where(d[np.arange(len(ends)), nearest] <= radius, nearest, -1)
