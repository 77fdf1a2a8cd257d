"""Lines, planes, interpolations and trajectory planes: slices of parameter space, each a
:class:`Surface` of metric values computed by the one evaluator
(:func:`landscape.geometry.evaluator.evaluate`, offered here as ``ls.surface.evaluate``).

The slices (:func:`line`, :func:`plane`, :func:`interpolation`, :func:`three_point`,
:func:`trajectory_plane`, :func:`random_planes`) return a :class:`Surface`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..core import tree
from ..core.errors import ConfigError
from ..core.execution import Execution
from . import directions as dirs
from .evaluator import check_points, default_chunk_size, evaluate

__all__ = [
    "Surface",
    "line",
    "plane",
    "random_planes",
    "interpolation",
    "barrier_of_curve",
    "three_point",
    "trajectory_plane",
    # the evaluator every slice is computed by, offered in the user's namespace (its home: evaluator)
    "evaluate",
    "default_chunk_size",
]

PyTree = Any


@dataclasses.dataclass(frozen=True, eq=False)
class Surface:
    """Metric values on a 1-D or 2-D grid of a slice.

    Attributes:
      kind: ``line``, ``plane``, ``interpolation``, ``three_point`` or ``trajectory``.
      axes: one coordinate array per grid axis (``(n0,)`` or ``(n0,)``, ``(n1,)``).
      values: ``{metric: array}``, each shaped like the grid, ``(n0,)`` or ``(n0, n1)`` with
        ``values[m][i, j]`` at ``(axes[0][i], axes[1][j])``; with a leading seed axis
        ``(S, ...)`` for stacked evaluations.
      extras: further arrays (solution coordinates, projected paths ...).
      meta: JSON-ready description (directions, normalisation, cosine, barriers, seeds ...).

    Examples:
      >>> s = ls.surface.line(lambda p: jnp.sum(p["w"] ** 2), {"w": jnp.ones(2)}, {"w": jnp.array([1.0, 0.0])}, num=3)
      >>> s.kind, s.axes[0].tolist(), s.values["value"].tolist()
      ('line', [-1.0, 0.0, 1.0], [1.0, 2.0, 5.0])
      >>> sorted(s.to_arrays())                      # what ls.io.save_result stores
      ['axis_0', 'value/value']
    """

    kind: str
    axes: list
    values: dict
    extras: dict = dataclasses.field(default_factory=dict)
    meta: dict = dataclasses.field(default_factory=dict)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Flat ``{name: array}`` for storage (inverse: :meth:`from_arrays`)."""
        out = {f"axis_{i}": np.asarray(a) for i, a in enumerate(self.axes)}
        out.update({f"value/{k}": np.asarray(v) for k, v in self.values.items()})
        out.update({f"extra/{k}": np.asarray(v) for k, v in self.extras.items()})
        return out

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], meta: dict) -> Surface:
        """Rebuild from :meth:`to_arrays` output and the metadata.

        Args:
          arrays: ``{"axis_i", "value/<metric>", "extra/<name>"}`` as :meth:`to_arrays` writes them.
          meta: the metadata; its ``kind`` names the slice.

        Returns:
          the :class:`Surface`.
        """
        n_axes = sum(1 for k in arrays if k.startswith("axis_"))
        axes = [arrays[f"axis_{i}"] for i in range(n_axes)]
        values = {k[6:]: v for k, v in arrays.items() if k.startswith("value/")}
        extras = {k[6:]: v for k, v in arrays.items() if k.startswith("extra/")}
        return cls(meta.get("kind", "plane"), axes, values, extras, dict(meta))


def _grid_axis(span, num: int, name: str) -> np.ndarray:
    if not isinstance(num, (int, np.integer)) or num < 2:
        raise ConfigError(f"{name} needs at least 2 grid points, got {num!r}")
    if num > 10**6:
        raise ConfigError(f"{name}: {num} grid points per axis is too many (at most 1,000,000)")
    if np.isscalar(span):
        span = (-float(span), float(span))
    lo, hi = (float(s) for s in span)
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
        raise ConfigError(f"{name} span must be finite with min < max, got {span!r}")
    return np.linspace(lo, hi, int(num))


def _finish(values: dict, shape: tuple[int, ...], stacked: bool) -> dict:
    return {k: v.reshape(((v.shape[0],) if stacked else ()) + shape) for k, v in values.items()}


def line(
    fn: Callable,
    center: PyTree,
    direction: PyTree,
    *,
    span=1.0,
    num: int = 51,
    data=None,
    stacked: bool = False,
    shortcut: bool = True,
    execution: Execution = Execution(),
) -> Surface:
    """Metrics along ``center + a d`` for ``num`` values of ``a`` in ``[-span, span]``.

    Args:
      fn: the metric function, as for :func:`evaluate`.
      center: the line's origin; leaves ``(S, ...)`` with ``stacked`` (one line per member).
      direction: a pytree shaped like ``center``.
      span: half-width of the line, or ``(lo, hi)``.
      num: points on the line.
      data: the batches, as for :func:`evaluate`.
      stacked: ``center`` and ``direction`` carry a leading member axis.
      shortcut: use the first-layer shortcut when ``fn`` offers it (exact; the built-in MLP).
      execution: how to run it — chunking, checkpoint, progress bar, devices
        (:class:`~landscape.core.execution.Execution`); changes no number.

    Returns:
      a :class:`Surface` of kind ``"line"``: ``axes[0]`` ``(num,)``, values ``(num,)`` (``(S, num)``
      stacked).

    Examples:
      >>> s = ls.surface.line(lambda p: jnp.sum(p["w"] ** 2), {"w": jnp.array([1.0, 0.0])},
      ...                     {"w": jnp.array([1.0, 0.0])}, span=1.0, num=3)
      >>> s.values["value"].tolist()                 # at w = (0, 0), (1, 0), (2, 0)
      [0.0, 1.0, 4.0]
    """
    a = _grid_axis(span, num, "line")
    check_points(a.size, tree.num_members(center) if stacked else 1)
    vals = evaluate(fn, center, [direction], a[:, None], data=data, stacked=stacked, execution=execution,
                    shortcut=shortcut)
    return Surface("line", [a], _finish(vals, (a.size,), stacked))


def plane(
    fn: Callable,
    center: PyTree,
    directions: Sequence[PyTree],
    *,
    span=1.0,
    num: int = 51,
    span_y=None,
    num_y: int | None = None,
    data=None,
    stacked: bool = False,
    shortcut: bool = True,
    execution: Execution = Execution(),
) -> Surface:
    """Metrics on the ``num × num`` grid ``center + a d_1 + b d_2``, ``a, b`` in ``[-span, span]``
    (Li et al. 2018: with random filter-normalised directions, the paper's 2-D plots).

    Args:
      fn: the metric function, as for :func:`evaluate`.
      center: the plane's origin; leaves ``(S, ...)`` with ``stacked`` (one plane per member).
      directions: two pytrees shaped like ``center``.
      span: half-width along ``d_1`` (and ``d_2``), or ``(lo, hi)``.
      num: grid points along ``d_1`` (and ``d_2``).
      span_y: the extent along ``d_2`` when it differs.
      num_y: grid points along ``d_2`` when they differ.
      data: the batches, as for :func:`evaluate`.
      stacked: ``center`` and ``directions`` carry a leading member axis.
      shortcut: use the first-layer shortcut when ``fn`` offers it (exact; the built-in MLP).
      execution: how to run it — chunking, checkpoint, progress bar, devices
        (:class:`~landscape.core.execution.Execution`); changes no number.

    Returns:
      a :class:`Surface` of kind ``"plane"``: values ``(num, num_y)`` (``(S, num, num_y)``
      stacked), ``meta["cosine"]`` the directions' cosine (per member when stacked).

    Examples:
      >>> s = ls.surface.plane(lambda p: jnp.sum(p["w"] ** 2), {"w": jnp.array([1.0, 0.0])},
      ...                      [{"w": jnp.array([1.0, 0.0])}, {"w": jnp.array([0.0, 1.0])}], num=3)
      >>> s.values["value"].tolist()                 # [i, j]: i-th x coordinate, j-th y coordinate
      [[1.0, 0.0, 1.0], [2.0, 1.0, 2.0], [5.0, 4.0, 5.0]]
    """
    if len(directions) != 2:
        raise ConfigError("a plane needs exactly two directions")
    a = _grid_axis(span, num, "plane")
    b = _grid_axis(span if span_y is None else span_y, num if num_y is None else num_y, "plane")
    check_points(a.size * b.size, tree.num_members(center) if stacked else 1)
    aa, bb = np.meshgrid(a, b, indexing="ij")
    coords = np.stack([aa.ravel(), bb.ravel()], axis=1)
    vals = evaluate(fn, center, directions, coords, data=data, stacked=stacked, execution=execution,
                    shortcut=shortcut)
    cos = dirs.cosine(*directions) if not stacked else jax.jit(jax.vmap(dirs.cosine))(*directions)
    meta = {"cosine": np.asarray(cos).tolist()}
    return Surface("plane", [a, b], _finish(vals, (a.size, b.size), stacked), meta=meta)


def random_planes(
    fn: Callable,
    centers: PyTree,
    *,
    key: jax.Array,
    norm: str = "filter",
    ignore_biases: bool = True,
    orthogonal: bool = False,
    span=1.0,
    num: int = 51,
    data=None,
    shortcut: bool = True,
    execution: Execution = Execution(),
) -> Surface:
    """Each member's own random plane (Li et al. 2018), all in one stacked evaluation.

    Args:
      fn: the metric function, as for :func:`evaluate`.
      centers: the members' parameters, leaves ``(S, ...)``.
      key: member ``s`` draws its directions from ``fold_in(key, s)``
        (:func:`landscape.directions.random_directions`), normalised to its own parameters.
      norm: ``"filter"``, ``"layer"``, ``"model"`` or ``"none"`` (:mod:`landscape.directions`).
      ignore_biases: one-axis leaves get a zero direction (else a copy of themselves).
      orthogonal: Gram–Schmidt the two directions.
      span: half-width of the grid.
      num: grid points per axis.
      data: the batches, as for :func:`evaluate`.
      shortcut: use the first-layer shortcut when ``fn`` offers it (exact; the built-in MLP).
      execution: how to run it — chunking, checkpoint, progress bar, devices
        (:class:`~landscape.core.execution.Execution`); changes no number.

    Returns:
      a :class:`Surface`: values ``(S, num, num)``; ``meta["cosine"]`` each member's direction cosine.

    Examples:
      >>> centers = ls.tree.stack([{"w": jnp.array([1.0, 0.0])}, {"w": jnp.array([0.0, 2.0])}])
      >>> s = ls.surface.random_planes(lambda p: jnp.sum(p["w"] ** 2), centers, key=jax.random.key(0), num=3)
      >>> s.values["value"].shape, s.values["value"][:, 1, 1].tolist()   # each member's centre in the middle
      ((2, 3, 3), [1.0, 4.0])
    """
    s = tree.num_members(centers)

    def draw(i, c):
        return dirs.random_directions(jax.random.fold_in(key, i), c, 2, norm=norm, ignore_biases=ignore_biases,
                                      orthogonal=orthogonal)

    d1, d2 = jax.vmap(draw)(jnp.arange(s), centers)
    surf = plane(fn, centers, [d1, d2], span=span, num=num, data=data, stacked=True, execution=execution,
                 shortcut=shortcut)
    surf.meta.update({"norm": norm, "ignore_biases": ignore_biases, "orthogonal": orthogonal})
    return surf


def barrier_of_curve(t: np.ndarray, values: np.ndarray) -> dict[str, float]:
    """Both barrier definitions from a loss curve along ``theta(t) = (1-t) theta_A + t theta_B``.

    ``t`` must contain 0 and 1; only points with ``0 <= t <= 1`` count.  Returns
    ``{"barrier": max_t [L(t) - ((1-t) L_A + t L_B)], "barrier_midpoint": max_t L(t) - (L_A + L_B)/2,
    "t_max": argmax of the first, "loss_a", "loss_b"}``.  ``values`` may have leading axes;
    then every entry is an array.

    Args:
      t: ``(T,)`` the curve's parameters.
      values: ``(..., T)`` the loss along it.

    Returns:
      the dict above (floats, or arrays of the leading shape).

    Raises:
      ConfigError: ``t`` lacks 0 or 1.

    Examples:
      >>> b = ls.surface.barrier_of_curve(np.linspace(0, 1, 5), np.array([1.0, 1.5, 2.0, 1.5, 1.0]))
      >>> b["barrier"], b["t_max"]                   # above the straight line between the ends
      (1.0, 0.5)
    """
    t = np.asarray(t, float)
    values = np.asarray(values, float)
    i0 = np.flatnonzero(np.isclose(t, 0.0, atol=1e-9))
    i1 = np.flatnonzero(np.isclose(t, 1.0, atol=1e-9))
    if i0.size == 0 or i1.size == 0:
        raise ConfigError("barrier needs t = 0 and t = 1 on the grid")
    inside = (t >= -1e-9) & (t <= 1 + 1e-9)
    la, lb = values[..., i0[0]], values[..., i1[0]]
    tt = t[inside]
    lv = values[..., inside]
    chord = (1 - tt) * la[..., None] + tt * lb[..., None]
    excess = lv - chord
    arg = np.argmax(excess, axis=-1)
    out = {
        "barrier": np.max(excess, axis=-1),
        "barrier_midpoint": np.max(lv, axis=-1) - 0.5 * (la + lb),
        "t_max": tt[arg],
        "loss_a": la,
        "loss_b": lb,
    }
    return {k: (float(v) if np.ndim(v) == 0 else np.asarray(v)) for k, v in out.items()}


def interpolation_grid(num: int = 61, extend: float = 0.5) -> np.ndarray:
    """``num`` points spanning ``[0, 1]`` evenly, continued with the same spacing to ``[-extend, 1 + extend]``.

    Args:
      num: points on ``[0, 1]``, both ends included (at least 2).
      extend: how far to continue beyond each end (``>= 0``).

    Returns:
      ``(num + 2 n,)`` with ``n = floor(extend (num - 1))`` points added on each side.

    Raises:
      ConfigError: ``num < 2``, a negative or non-finite ``extend``, or too many points.
    """
    if not isinstance(num, (int, np.integer)) or num < 2:
        raise ConfigError(f"interpolation needs at least 2 points in [0, 1], got {num!r}")
    if not (np.isfinite(extend) and extend >= 0):
        raise ConfigError(f"extend must be finite and >= 0, got {extend}")
    h = 1.0 / (num - 1)
    n_out = float(np.floor(extend / h + 1e-9))
    check_points(int(min(num + 2 * n_out, 2.0**62)))  # before the grid is allocated
    n_out = int(n_out)
    return np.arange(-n_out, num + n_out) * h


def interpolation(
    fn: Callable,
    theta_a: PyTree,
    theta_b: PyTree,
    *,
    num: int = 61,
    extend: float = 0.5,
    data=None,
    stacked: bool = False,
    shortcut: bool = True,
    execution: Execution = Execution(),
) -> Surface:
    """Metrics along ``theta(t) = (1 - t) theta_A + t theta_B``, ``t`` from ``-extend`` to
    ``1 + extend`` (Goodfellow et al. 2015's linear interpolation), with both barriers.

    Args:
      fn: the metric function, as for :func:`evaluate`.
      theta_a: the first solution (``t = 0``); leaves ``(S, ...)`` with ``stacked``.
      theta_b: the second (``t = 1``), shaped likewise.
      num: points in ``[0, 1]``, both ends included (the grid continues with the same
        spacing to ``[-extend, 1 + extend]``: :func:`interpolation_grid`).
      extend: how far the line continues beyond each solution, in units of their distance.
      data: the batches, as for :func:`evaluate`.
      stacked: one line per member pair ``(theta_a[i], theta_b[i])``.
      shortcut: use the first-layer shortcut when ``fn`` offers it (exact; the built-in MLP).
      execution: how to run it — chunking, checkpoint, progress bar, devices
        (:class:`~landscape.core.execution.Execution`); changes no number.

    Returns:
      a :class:`Surface` of kind ``"interpolation"``: ``axes[0]`` the ``t`` grid;
      ``meta["barriers"]`` :func:`barrier_of_curve` for every loss-like metric (names ending in
      ``loss``, or ``value``); ``meta["distance"]`` ``||theta_b - theta_a||``.

    Examples:
      >>> double_well = lambda p: (p["w"][0] ** 2 - 1.0) ** 2
      >>> s = ls.surface.interpolation(double_well, {"w": jnp.array([-1.0])}, {"w": jnp.array([1.0])},
      ...                              num=5, extend=0.0)
      >>> s.values["value"].tolist(), s.meta["barriers"]["value"]["barrier"]
      ([0.0, 0.5625, 1.0, 0.5625, 0.0], 1.0)
    """
    t = interpolation_grid(num, extend)
    vals = evaluate(fn, theta_a, [dirs.between(theta_a, theta_b)], t[:, None], data=data, stacked=stacked,
                    execution=execution, shortcut=shortcut)
    vals = _finish(vals, (t.size,), stacked)
    barriers = {k: _jsonable_barrier(barrier_of_curve(t, v)) for k, v in vals.items()
                if k.endswith("loss") or k == "value"}
    dist = tree.norm(dirs.between(theta_a, theta_b)) if not stacked else jax.jit(jax.vmap(
        lambda a, b: tree.norm(dirs.between(a, b))))(theta_a, theta_b)
    return Surface("interpolation", [t], vals, meta={"barriers": barriers, "distance": np.asarray(dist).tolist()})


def _jsonable_barrier(b: dict) -> dict:
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in b.items()}


def _box(points: np.ndarray, margin: float, num: int):
    """A square grid (equal extent on both axes, so distances are not distorted) around ``points``."""
    if not (np.isfinite(margin) and margin >= 0):
        raise ConfigError(f"margin must be finite and >= 0, got {margin}")
    if not isinstance(num, (int, np.integer)) or num < 2:
        raise ConfigError(f"a plane needs at least 2 grid points per axis, got {num!r}")
    check_points(num * num)
    lo, hi = points.min(axis=0), points.max(axis=0)
    mid = 0.5 * (lo + hi)
    half = 0.5 * max(float(np.max(hi - lo)), 1e-12) * (1.0 + 2.0 * margin)
    return (
        np.linspace(mid[0] - half, mid[0] + half, num),
        np.linspace(mid[1] - half, mid[1] + half, num),
    )


def three_point(
    fn: Callable,
    theta_0: PyTree,
    theta_1: PyTree,
    theta_2: PyTree,
    *,
    num: int = 41,
    margin: float = 0.25,
    data=None,
    paths: Sequence[PyTree] | None = None,
    shortcut: bool = True,
    execution: Execution = Execution(),
) -> Surface:
    """Metrics on the plane through three solutions (Garipov et al. 2018), grid around them.

    Args:
      fn: the metric function, as for :func:`evaluate`.
      theta_0: the first solution (the plane's origin), a parameter pytree.
      theta_1: the second.
      theta_2: the third.
      num: grid points per axis.
      margin: the grid's margin around the solutions (and paths), as a fraction of their extent.
      data: the batches, as for :func:`evaluate`.
      paths: optional training paths, one per solution, each with leaves ``(K, ...)``.
      shortcut: use the first-layer shortcut when ``fn`` offers it (exact; the built-in MLP).
      execution: how to run it — chunking, checkpoint, progress bar, devices
        (:class:`~landscape.core.execution.Execution`); changes no number.

    Returns:
      a :class:`Surface` of kind ``"three_point"``: axes are Euclidean distances along the
      orthonormal ``u, v`` of :func:`landscape.directions.three_point_plane`;
      ``extras["points"] (3, 2)`` the solutions' coordinates; ``extras["path_<i>"] (K, 2)``
      each path projected onto the plane.

    Examples:
      >>> fn = lambda p: jnp.sum(p["w"] ** 2)
      >>> s = ls.surface.three_point(fn, {"w": jnp.array([-1.0, 1.0])}, {"w": jnp.array([1.0, 1.0])},
      ...                            {"w": jnp.array([0.0, -1.0])}, num=5)
      >>> s.kind, s.values["value"].shape, s.extras["points"].shape   # the three solutions' coordinates
      ('three_point', (5, 5), (3, 2))
    """
    pl = dirs.three_point_plane(theta_0, theta_1, theta_2)
    extras = {"points": pl.coords}
    pts = [pl.coords]
    for i, path in enumerate(paths or []):
        xy = dirs.project(path, pl.origin, [pl.u, pl.v])
        extras[f"path_{i}"] = xy
        pts.append(xy)
    a, b = _box(np.concatenate(pts), margin, num)
    aa, bb = np.meshgrid(a, b, indexing="ij")
    vals = evaluate(fn, pl.origin, [pl.u, pl.v], np.stack([aa.ravel(), bb.ravel()], 1), data=data,
                    execution=execution, shortcut=shortcut)
    return Surface("three_point", [a, b], _finish(vals, (a.size, b.size), False), extras)


def trajectory_plane(
    fn: Callable,
    snapshots: PyTree,
    *,
    num: int = 41,
    margin: float = 0.25,
    data=None,
    member: int | None = None,
    shortcut: bool = True,
    execution: Execution = Execution(),
) -> Surface:
    """Metrics on the trajectory-PCA plane (Li et al. 2018, §7) with the path projected onto it.

    Args:
      fn: the metric function, as for :func:`evaluate`.
      snapshots: one path, leaves ``(K, ...)``, the last being the final parameters (the
        origin); or an ensemble's ``(M, K, ...)`` (``ens.trajectory.params``) with ``member``.
      num: grid points per axis.
      margin: the grid's margin around the path, as a fraction of its extent.
      data: the batches, as for :func:`evaluate`.
      member: with ensemble snapshots, whose path.
      shortcut: use the first-layer shortcut when ``fn`` offers it (exact; the built-in MLP).
      execution: how to run it — chunking, checkpoint, progress bar, devices
        (:class:`~landscape.core.execution.Execution`); changes no number.

    Returns:
      a :class:`Surface` of kind ``"trajectory"``: ``extras["path"] (K, 2)`` the path's
      coordinates, ``meta["explained_variance_ratio"]`` of the two axes
      (:func:`landscape.directions.trajectory_pca`).

    Examples:
      >>> snaps = ls.tree.stack([{"w": jnp.array([t, 0.5 * t])} for t in (4.0, 3.0, 2.0, 1.0, 0.0)])
      >>> s = ls.surface.trajectory_plane(lambda p: jnp.sum(p["w"] ** 2), snaps, num=5)
      >>> s.values["value"].shape, s.extras["path"].shape, len(s.meta["explained_variance_ratio"])
      ((5, 5), (5, 2), 2)
    """
    pca = dirs.trajectory_pca(snapshots, k=2, member=member)
    a, b = _box(np.concatenate([pca.coords, np.zeros((1, 2))]), margin, num)
    aa, bb = np.meshgrid(a, b, indexing="ij")
    vals = evaluate(fn, pca.origin, pca.directions, np.stack([aa.ravel(), bb.ravel()], 1), data=data,
                    execution=execution, shortcut=shortcut)
    meta = {"explained_variance_ratio": pca.explained_variance_ratio.tolist()}
    extras = {"path": pca.coords, "points": np.zeros((1, 2))}
    return Surface("trajectory", [a, b], _finish(vals, (a.size, b.size), False), extras, meta)
