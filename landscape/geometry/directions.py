"""Directions in parameter space: random (normalised), between solutions, trajectory PCA.

A direction is a pytree shaped like the parameters.  Conventions (Li et al. 2018, adapted to
Flax's ``(in, out)`` / ``(kh, kw, in, out)`` kernel layout):

* a *filter* is ``kernel[..., j]``: every axis but the last;
* ``filter`` normalisation: ``d_f <- d_f * ||w_f|| / (||d_f|| + 1e-10)`` for every filter;
* ``layer``: the whole tensor, ``d <- d * ||W|| / (||d|| + 1e-10)``;
* ``model``: all kernels (leaves with two or more axes) together, ``d_K <- d_K * ||theta_K|| /
  (||d_K|| + 1e-10)`` with ``theta_K`` the kernels of the parameters; the one-axis leaves
  follow the rule below (zero, or a copy of themselves) and enter neither norm;
* ``none``: unchanged;
* leaves with at most one axis (biases, norm scales): with ``ignore_biases=True`` (the
  default, the usual choice) their direction is zero; otherwise it is a copy of the
  parameters themselves, as in the reference implementation.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..core import tree
from ..core.compile_options import run_once_options
from ..core.errors import ConfigError

__all__ = [
    "NORMS",
    "EPS",
    "normalize",
    "random_direction",
    "random_directions",
    "member_directions",
    "cosine",
    "orthogonalize",
    "between",
    "ThreePointPlane",
    "three_point_plane",
    "project",
    "TrajectoryPCA",
    "trajectory_pca",
]

NORMS = ("filter", "layer", "model", "none")
EPS = 1e-10

PyTree = Any


def _check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise ConfigError(f"unknown normalisation {norm!r}; choose from {', '.join(NORMS)}")


def normalize(direction: PyTree, params: PyTree, *, norm: str = "filter", ignore_biases: bool = True) -> PyTree:
    """Rescale ``direction`` to the scale of ``params`` (Li et al. 2018, filter normalisation).

    Args:
      direction: a pytree shaped like ``params`` (no member axis).
      params: the point the direction is drawn at.
      norm: ``"filter"`` (each ``kernel[..., j]``), ``"layer"`` (each tensor), ``"model"`` (all
        kernels together) or ``"none"``; the formulas are in this module's docstring.
      ignore_biases: one-axis leaves (biases, norm scales) get a zero direction; ``False``: a
        copy of the parameters themselves, as in the reference implementation.

    Returns:
      the rescaled direction, shaped like ``params``.

    Raises:
      ConfigError: an unknown ``norm``.

    Examples:
      >>> theta = {"kernel": jnp.full((4, 3), 2.0), "bias": jnp.ones(3)}
      >>> d = ls.directions.normalize(ls.tree.random_like(jax.random.key(0), theta), theta)
      >>> jnp.linalg.norm(d["kernel"], axis=0).round(3).tolist()   # each filter as long as theta's
      [4.0, 4.0, 4.0]
      >>> d["bias"].tolist()                                        # biases left out (ignore_biases)
      [0.0, 0.0, 0.0]
    """
    _check_norm(norm)

    def leaf(d, w):
        if jnp.ndim(w) <= 1:
            return jnp.zeros_like(d) if ignore_biases else jnp.asarray(w, dtype=jnp.result_type(d))
        if norm == "filter":
            axes = tuple(range(jnp.ndim(w) - 1))
            dn = jnp.sqrt(jnp.sum(d * d, axis=axes, keepdims=True))
            wn = jnp.sqrt(jnp.sum(w * w, axis=axes, keepdims=True))
            return d * wn / (dn + EPS)
        if norm == "layer":
            return d * jnp.linalg.norm(w.ravel()) / (jnp.linalg.norm(d.ravel()) + EPS)
        return d

    out = jax.tree_util.tree_map(leaf, direction, params)
    if norm == "model":
        multi = jax.tree_util.tree_map(lambda w: jnp.ndim(w) > 1, params)
        masked_d = jax.tree_util.tree_map(lambda d, m: d if m else jnp.zeros_like(d), out, multi)
        masked_w = jax.tree_util.tree_map(lambda w, m: w if m else jnp.zeros_like(w), params, multi)
        factor = tree.norm(masked_w) / (tree.norm(masked_d) + EPS)
        out = jax.tree_util.tree_map(lambda d, m: d * factor if m else d, out, multi)
    return out


def _refuse_member_axis(params: PyTree, what: str) -> None:
    """One clear error for an ensemble's stacked parameters where one network's are expected.

    Shapes only, never names: a stacked tree has no 1-D leaf (a bias ``(h,)`` becomes ``(M, h)``),
    every leaf starts with the same ``M``, and its leaves differ in rank (kernels ``(M, in, out)``
    beside biases ``(M, out)``).  One network whose leaves are all that alike (no bias, no norm,
    every leaf of one rank, or a single leaf) is never refused."""
    shapes = [np.shape(x) for x in jax.tree_util.tree_leaves(params)]
    if len(shapes) < 2 or any(len(sh) < 2 for sh in shapes):
        return
    if len({sh[0] for sh in shapes}) == 1 and len({len(sh) for sh in shapes}) > 1:
        raise ConfigError(
            f"{what} takes one network's parameters, but every leaf of these starts with the same {shapes[0][0]} "
            "and none is a 1-D bias: an ensemble's stacked parameters (ens.params). Pass one member, "
            "ens.member(i), or use ls.directions.member_directions(key, ids, ens.params) for every member's own "
            "(ls.surface.random_planes / plane(..., stacked=True) draw and evaluate them)")


def random_direction(key: jax.Array, params: PyTree, *, norm: str = "filter", ignore_biases: bool = True) -> PyTree:
    """A random direction normalised to ``params`` (Li et al. 2018).

    Args:
      key: PRNG key; each tensor gets an independent standard Gaussian draw.
      params: the point, a parameter pytree (no member axis).
      norm: as for :func:`normalize`.
      ignore_biases: as for :func:`normalize`.

    Returns:
      a pytree shaped like ``params``.

    Raises:
      ConfigError: an unknown ``norm``, or an ensemble's stacked parameters (pass ``ens.member(i)``).

    Examples:
      >>> theta = {"kernel": jnp.full((4, 3), 2.0), "bias": jnp.ones(3)}
      >>> d = ls.directions.random_direction(jax.random.key(0), theta, norm="layer")
      >>> round(float(jnp.linalg.norm(d["kernel"])), 3)              # the layer's norm, 2 * sqrt(12)
      6.928
    """
    _check_norm(norm)
    _refuse_member_axis(params, "random_direction")
    return normalize(_gaussians(jnp.expand_dims(key, 0), params)[0], params, norm=norm, ignore_biases=ignore_biases)


def _draws(keys: jax.Array, params: PyTree) -> list[PyTree]:
    """``keys`` ``(k,)`` or ``(S, k)`` (one row per member of stacked ``params``) -> ``k`` pytrees of
    standard Gaussian noise, each ``tree.random_like(keys[..., j], ·)`` of one network's shapes."""
    if keys.ndim == 1:
        return [tree.random_like(keys[j], params) for j in range(keys.shape[0])]
    return [jax.vmap(tree.random_like)(keys[:, j], params) for j in range(keys.shape[1])]


@functools.lru_cache(maxsize=1)
def _draw_program():
    """``_draws`` jitted, one program per shape, compiled for a single run: the draws are
    integer hashing (threefry) and an element-wise transform, so on a CPU the short compilation
    gives the same bits (:func:`~landscape.core.compile_options.run_once_options`) and spares the
    seconds XLA's default level spends on the unrolled hash (8 members' two directions of a
    64-32-32 digits MLP, first call: 3.0 s compiled with their normalisation, 1.4 s drawn apart)."""
    example = {"kernel": jax.ShapeDtypeStruct((2, 3), jnp.float32)}
    return jax.jit(_draws, compiler_options=run_once_options(_draws, jax.random.split(jax.random.key(0), 2), example))


def _gaussians(keys: jax.Array, params: PyTree) -> list[PyTree]:
    """:func:`_draws` as its own compiled program, unless called inside a transformation (then
    the draws are traced into the caller's program, as ``tree.random_like`` would be)."""
    if any(isinstance(x, jax.core.Tracer) for x in (keys, *jax.tree_util.tree_leaves(params))):
        return _draws(keys, params)
    return _draw_program()(keys, params)


def random_directions(
    key: jax.Array,
    params: PyTree,
    k: int = 2,
    *,
    norm: str = "filter",
    ignore_biases: bool = True,
    orthogonal: bool = False,
) -> list[PyTree]:
    """``k`` independent random normalised directions (Li et al. 2018), from ``split(key, k)``.

    Args:
      key: PRNG key.
      params: the point, a parameter pytree (no member axis).
      k: how many directions.
      norm: as for :func:`normalize`.
      ignore_biases: as for :func:`normalize`.
      orthogonal: Gram–Schmidt the directions after normalisation, keeping each one's norm.
        It changes the per-filter scales slightly, which is why it is off by default
        (independent Gaussian directions are nearly orthogonal in high dimension: :func:`cosine`).

    Returns:
      a list of ``k`` pytrees shaped like ``params``.

    Raises:
      ConfigError: ``k < 1``, an unknown ``norm``, or an ensemble's stacked parameters (pass
        ``ens.member(i)``, or draw every member's with :func:`member_directions`).

    Examples:
      >>> theta = {"kernel": jnp.full((4, 3), 2.0), "bias": jnp.ones(3)}
      >>> d1, d2 = ls.directions.random_directions(jax.random.key(1), theta, 2, orthogonal=True)
      >>> abs(float(ls.tree.ravel(d1) @ ls.tree.ravel(d2))) < 1e-5
      True
    """
    if k < 1:
        raise ConfigError("need at least one direction")
    _refuse_member_axis(params, "random_directions")
    _check_norm(norm)  # before the draws compile
    return _normalized(_gaussians(jax.random.split(key, k), params), params, norm, ignore_biases, orthogonal)


def member_directions(
    key: jax.Array,
    ids: jax.Array,
    params: PyTree,
    k: int = 2,
    *,
    norm: str = "filter",
    ignore_biases: bool = True,
    orthogonal: bool = False,
) -> list[PyTree]:
    """:func:`random_directions` for every member of an ensemble at once (Li et al. 2018): member
    ``i``'s from ``fold_in(key, ids[i])``, so that a member's directions do not depend on which
    other members are drawn with it.  Two compiled programs, kept between calls: the Gaussian
    draws (a short compilation on a CPU, the same bits) and their normalisation.

    Args:
      key: PRNG key.
      ids: ``(S,)`` integers, one per member (the CLI passes the members' seeds).
      params: the members' points, member axis first (``(S, ...)`` leaves).
      k: how many directions.
      norm: as for :func:`normalize`.
      ignore_biases: as for :func:`normalize`.
      orthogonal: as for :func:`random_directions`.

    Returns:
      a list of ``k`` pytrees shaped like ``params`` (member axis first).

    Examples:
      >>> theta = {"kernel": jnp.stack([jnp.full((4, 3), 2.0), jnp.ones((4, 3))])}
      >>> d1, d2 = ls.directions.member_directions(jax.random.key(0), jnp.array([7, 9]), theta)
      >>> alone = ls.directions.random_directions(jax.random.fold_in(jax.random.key(0), 9), {"kernel": jnp.ones((4, 3))})
      >>> bool(jnp.allclose(d1["kernel"][1], alone[0]["kernel"]))      # member 1 = seed 9 drawn alone
      True
    """
    if k < 1:
        raise ConfigError("need at least one direction")
    _check_norm(norm)  # before the draws compile
    keys = _member_keys(key, jnp.asarray(ids), k)
    return _normalize_members(_gaussians(keys, params), params, norm=norm, ignore_biases=ignore_biases,
                              orthogonal=orthogonal)


@functools.partial(jax.jit, static_argnames=("k",))
def _member_keys(key: jax.Array, ids: jax.Array, k: int) -> jax.Array:
    """``(S, k)`` keys: row ``i`` is ``split(fold_in(key, ids[i]), k)``, as :func:`random_directions` splits."""
    return jax.vmap(lambda i: jax.random.split(jax.random.fold_in(key, i), k))(ids)


@functools.partial(jax.jit, static_argnames=("norm", "ignore_biases", "orthogonal"))
def _normalize_members(noise: list[PyTree], params: PyTree, *, norm: str, ignore_biases: bool,
                       orthogonal: bool) -> list[PyTree]:
    """Every member's Gaussian draws (member axis first) normalised to its own parameters, and
    Gram–Schmidt-ed when ``orthogonal``, as :func:`random_directions` does for one network."""
    return jax.vmap(lambda n, p: _normalized(n, p, norm, ignore_biases, orthogonal))(noise, params)


def _normalized(noise: list[PyTree], params: PyTree, norm: str, ignore_biases: bool, orthogonal: bool) -> list[PyTree]:
    """One network's Gaussian draws normalised to ``params``, then Gram–Schmidt in order when
    ``orthogonal`` (each direction keeping its norm)."""
    dirs = [normalize(d, params, norm=norm, ignore_biases=ignore_biases) for d in noise]
    if not orthogonal:
        return dirs
    out = []
    for d in dirs:
        n0 = tree.norm(d)
        for e in out:
            d = orthogonalize(d, e)
        out.append(tree.scale(n0 / (tree.norm(d) + EPS), d))
    return out


@jax.jit
def cosine(a: PyTree, b: PyTree) -> jax.Array:
    """Cosine of the angle between two pytrees.

    Args:
      a: a pytree.
      b: a pytree of the same structure and shapes.

    Returns:
      a scalar ``<a, b> / (||a|| ||b|| + 1e-10)``.
    """
    return tree.vdot(a, b) / (tree.norm(a) * tree.norm(b) + EPS)


def orthogonalize(d: PyTree, against: PyTree) -> PyTree:
    """``d`` minus its projection on ``against`` (one Gram–Schmidt step).

    Args:
      d: the direction to orthogonalise.
      against: the direction to remove from it, the same structure.

    Returns:
      ``d - (<d, against> / <against, against>) against``.

    Examples:
      >>> a, b = {"w": jnp.array([1.0, 1.0])}, {"w": jnp.array([1.0, 0.0])}
      >>> ls.directions.orthogonalize(a, b)["w"].tolist()
      [0.0, 1.0]
    """
    coef = tree.vdot(d, against) / (tree.vdot(against, against) + EPS)
    return tree.axpy(-coef, against, d)


def between(theta_a: PyTree, theta_b: PyTree) -> PyTree:
    """The direction from one solution to another.

    Args:
      theta_a: the start (no member axis).
      theta_b: the end, the same structure.

    Returns:
      ``theta_b - theta_a``, so that ``theta(t) = theta_a + t (theta_b - theta_a)`` interpolates.

    Examples:
      >>> ls.directions.between({"w": jnp.zeros(2)}, {"w": jnp.array([3.0, 4.0])})["w"].tolist()
      [3.0, 4.0]
    """
    return tree.sub(theta_b, theta_a)


class ThreePointPlane(NamedTuple):
    """The plane through three solutions (Garipov et al. 2018).

    ``origin`` is ``theta_0``; ``u = (theta_1 - theta_0)/||.||``; ``v`` is ``theta_2 - theta_0``
    made orthogonal to ``u``, unit length.  ``coords (3, 2)``: the three solutions' coordinates,
    ``(0, 0)``, ``(||theta_1 - theta_0||, 0)`` and ``(<theta_2 - theta_0, u>, ||v_perp||)`` — so
    distances on the plane are Euclidean distances in parameter space.

    Attributes:
      origin: ``theta_0``.
      u: the first unit direction.
      v: the second, orthogonal to ``u``.
      coords: ``(3, 2)`` the solutions' coordinates.

    Examples:
      >>> plane = ls.directions.three_point_plane({"w": jnp.zeros(2)}, {"w": jnp.array([3.0, 4.0])},
      ...                                         {"w": jnp.array([0.0, 4.0])})
      >>> plane.u["w"].tolist(), plane.coords.shape
      ([0.6000000238418579, 0.800000011920929], (3, 2))
    """

    origin: PyTree
    u: PyTree
    v: PyTree
    coords: np.ndarray


def three_point_plane(theta_0: PyTree, theta_1: PyTree, theta_2: PyTree) -> ThreePointPlane:
    """The orthonormal plane through three solutions (Garipov et al. 2018).

    Args:
      theta_0: the origin of the plane (no member axis).
      theta_1: fixes the first axis ``u``.
      theta_2: fixes the second axis ``v`` (its part orthogonal to ``u``).

    Returns:
      a :class:`ThreePointPlane`; distances on the plane are Euclidean distances in parameter space.

    Raises:
      ConfigError: the first two coincide, or the three are (nearly) collinear.

    Examples:
      >>> plane = ls.directions.three_point_plane({"w": jnp.zeros(2)}, {"w": jnp.array([3.0, 4.0])},
      ...                                         {"w": jnp.array([0.0, 4.0])})
      >>> np.asarray(plane.coords, float).round(2).tolist()     # theta_0 at the origin, theta_1 on the x axis
      [[0.0, 0.0], [5.0, 0.0], [3.2, 2.4]]
    """
    a = tree.sub(theta_1, theta_0)
    b = tree.sub(theta_2, theta_0)
    na = float(tree.norm(a))
    if na <= EPS:
        raise ConfigError("the first two solutions coincide: no plane through them")
    u = tree.scale(1.0 / na, a)
    bu = float(tree.vdot(b, u))
    v_perp = tree.axpy(-bu, u, b)
    nv = float(tree.norm(v_perp))
    if nv <= 1e-6 * max(na, 1.0):
        raise ConfigError("the three solutions are (nearly) collinear: no unique plane through them")
    v = tree.scale(1.0 / nv, v_perp)
    coords = np.array([[0.0, 0.0], [na, 0.0], [bu, nv]])
    return ThreePointPlane(theta_0, u, v, coords)


def project(points: PyTree, origin: PyTree, basis: Sequence[PyTree]) -> np.ndarray:
    """Coordinates of points on an orthonormal basis: ``<theta_i - origin, e_j>``.

    Args:
      points: stacked points (a path), leaves ``(K, ...)``.
      origin: the plane's origin (no leading axis).
      basis: orthonormal directions ``e_j`` shaped like ``origin``.

    Returns:
      ``(K, len(basis))`` host array: the least-squares position of each point in the plane
      (its shadow; the off-plane part is dropped).

    Examples:
      >>> origin, basis = {"w": jnp.zeros(2)}, [{"w": jnp.array([1.0, 0.0])}, {"w": jnp.array([0.0, 1.0])}]
      >>> points = ls.tree.stack([{"w": jnp.array([3.0, 4.0])}, {"w": jnp.array([-1.0, 2.0])}])
      >>> np.asarray(ls.directions.project(points, origin, basis), float).tolist()
      [[3.0, 4.0], [-1.0, 2.0]]
    """
    return np.asarray(_project(points, origin, list(basis)))


@jax.jit
def _project(points: PyTree, origin: PyTree, basis: list) -> jax.Array:
    diff = jax.tree_util.tree_map(lambda p, o: p - o[None], points, origin)
    cols = [
        sum(
            jnp.tensordot(x.reshape(x.shape[0], -1), y.reshape(-1), axes=1)
            for x, y in zip(jax.tree_util.tree_leaves(diff), jax.tree_util.tree_leaves(e))
        )
        for e in basis
    ]
    return jnp.stack(cols, axis=1)


class TrajectoryPCA(NamedTuple):
    """PCA of a training path around its end point (Li et al. 2018, §7).

    ``origin``: the final parameters.  ``directions``: ``k`` orthonormal principal directions
    (pytrees).  ``explained_variance_ratio (k,)``.  ``coords (K, k)``: each snapshot's
    coordinates, ``<theta_i - origin, e_j>``.

    Attributes:
      origin: the path's end (the final parameters).
      directions: ``k`` unit pytrees.
      explained_variance_ratio: ``(k,)``.
      coords: ``(K, k)`` the snapshots' coordinates.

    Examples:
      >>> snaps = ls.tree.stack([{"w": jnp.array([t, 0.5 * t])} for t in (4.0, 3.0, 2.0, 1.0, 0.0)])
      >>> pca = ls.directions.trajectory_pca(snaps, k=1)
      >>> pca.coords.shape, pca.explained_variance_ratio.round(3).tolist()   # a straight path: one direction
      ((5, 1), [1.0])
    """

    origin: PyTree
    directions: list
    explained_variance_ratio: np.ndarray
    coords: np.ndarray


def _unrow(row: np.ndarray, like: PyTree) -> PyTree:
    """A host vector in :func:`tree.member_rows`' order back as a pytree shaped and typed like ``like``."""
    leaves, treedef = jax.tree_util.tree_flatten(like)
    out, at = [], 0
    for x in leaves:
        n = int(np.size(x))
        out.append(row[at : at + n].reshape(np.shape(x)).astype(np.asarray(x).dtype))
        at += n
    return jax.tree_util.tree_unflatten(treedef, out)


def trajectory_pca(snapshots: PyTree, final: PyTree | None = None, k: int = 2, *,
                   member: int | None = None) -> TrajectoryPCA:
    """Principal directions of ``theta_i - theta_final`` over one training path (Li et al. 2018, §7).

    Args:
      snapshots: the path, leaves ``(K, ...)``; or an ensemble's snapshots, leaves
        ``(M, K, ...)`` (``ens.trajectory.params``), with ``member`` naming the path to use.
      final: the origin, the path's end (default: the last snapshot).
      k: how many directions.
      member: with ensemble snapshots, the member's index (``None``: ``snapshots`` is one path).

    Returns:
      a :class:`TrajectoryPCA`: the origin, ``k`` directions (pytrees), their explained variance
      ratios ``(k,)`` and the snapshots' coordinates ``(K, k)``.  The SVD is of the ``(K, P)``
      matrix of differences, not centred on its mean (the origin is the solution, as in Li et
      al.).  Signs are fixed so that the first snapshot has non-negative coordinates: the same
      path always gives the same axes.

    Raises:
      ConfigError: fewer than ``k + 1`` snapshots, a path that does not move, a bad ``member``.

    Examples:
      >>> snaps = ls.tree.stack([{"w": jnp.array([t, 0.5 * t])} for t in (4.0, 3.0, 2.0, 1.0, 0.0)])
      >>> pca = ls.directions.trajectory_pca(snaps, k=1)       # around the last snapshot
      >>> np.asarray(pca.coords[:, 0], float).round(3).tolist()   # signed so that the path starts positive
      [4.472, 3.354, 2.236, 1.118, 0.0]
    """
    if member is not None:
        m = int(np.shape(jax.tree_util.tree_leaves(snapshots)[0])[0])
        if not isinstance(member, (int, np.integer)) or not 0 <= member < m:
            raise ConfigError(f"member must be an index in [0, {m}), got {member!r}")
        snapshots = jax.tree_util.tree_map(lambda x: np.asarray(x)[member], snapshots)
    leaves = jax.tree_util.tree_leaves(snapshots)
    num = int(np.shape(leaves[0])[0])
    if num < k + 1:
        raise ConfigError(f"trajectory PCA with {k} components needs at least {k + 1} snapshots, got {num}")
    if final is None:
        final = jax.tree_util.tree_map(lambda x: np.asarray(x)[-1], snapshots)
    # on the host: the snapshots' rows (leaves in tree order, each raveled) minus the final point
    rows = tree.member_rows(snapshots)
    rows -= tree.member_rows(jax.tree_util.tree_map(lambda x: np.asarray(x)[None], final))
    _, s, vt = np.linalg.svd(rows, full_matrices=False)
    total = float(np.sum(s**2))
    if total <= 0:
        raise ConfigError("the trajectory does not move: no principal directions")
    comps = vt[:k]
    # a deterministic sign: the first snapshot has positive coordinates
    signs = np.sign(rows[0] @ comps.T)
    signs[signs == 0] = 1.0
    comps = comps * signs[:, None]
    directions = [jax.device_put(_unrow(c, final)) for c in comps]
    return TrajectoryPCA(final, directions, (s[:k] ** 2) / total, rows @ comps.T)
