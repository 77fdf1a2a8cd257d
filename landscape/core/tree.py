"""Pytree maths used everywhere else.

Every function takes parameter pytrees (nested dicts of arrays, as Flax produces, or any
other pytree) and returns new pytrees; nothing is modified in place.  "Stacked" pytrees
carry a leading member axis (one entry per seed / learning rate) on every leaf.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

PyTree = Any

__all__ = [
    "add",
    "sub",
    "scale",
    "axpy",
    "lincomb",
    "with_member_axis",
    "vdot",
    "norm",
    "zeros_like",
    "random_like",
    "stack",
    "member_rows",
    "unstack",
    "take",
    "num_members",
    "ravel",
    "size",
    "all_finite",
    "path_name",
    "key_paths",
    "flatten_with_paths",
    "unflatten_with_paths",
]


@jax.jit  # one compiled program per tree structure, not one per leaf operation
def add(a: PyTree, b: PyTree) -> PyTree:
    """Leafwise ``a + b``.

    Args:
      a: a pytree.
      b: a pytree of the same structure and shapes.

    Returns:
      a pytree.
    """
    return jax.tree_util.tree_map(jnp.add, a, b)


@jax.jit  # one compiled program per tree structure, not one per leaf operation
def sub(a: PyTree, b: PyTree) -> PyTree:
    """Leafwise ``a - b``.

    Args:
      a: a pytree.
      b: a pytree of the same structure and shapes.

    Returns:
      a pytree.
    """
    return jax.tree_util.tree_map(jnp.subtract, a, b)


@jax.jit  # one compiled program per tree structure, not one per leaf operation
def scale(alpha: Any, a: PyTree) -> PyTree:
    """Leafwise ``alpha * a`` for a scalar ``alpha``.

    Args:
      alpha: a scalar (may be traced).
      a: a pytree.

    Returns:
      a pytree.
    """
    return jax.tree_util.tree_map(lambda x: alpha * x, a)


@jax.jit  # one compiled program per tree structure, not one per leaf operation
def axpy(alpha: Any, x: PyTree, y: PyTree) -> PyTree:
    """Leafwise ``alpha * x + y``.

    Args:
      alpha: a scalar.
      x: a pytree.
      y: a pytree of the same structure.

    Returns:
      a pytree.
    """
    return jax.tree_util.tree_map(lambda u, v: alpha * u + v, x, y)


@jax.jit  # one compiled program per tree structure, not one per leaf operation
def with_member_axis(a: PyTree) -> PyTree:
    """Every leaf with a leading member axis of length 1: ``x[None]``.

    Args:
      a: a pytree (host or device leaves).

    Returns:
      the pytree with leaves ``(1, ...)``, on the device; one compiled program per tree structure.
    """
    return jax.tree_util.tree_map(lambda x: jnp.asarray(x)[None], a)


def lincomb(center: PyTree, coefficients: Any, directions: Sequence[PyTree]) -> PyTree:
    """``center + sum_i coefficients[i] * directions[i]``.

    ``coefficients`` has shape ``(k,)`` and ``directions`` holds ``k`` pytrees shaped like
    ``center``.

    Args:
      center: a pytree.
      coefficients: ``(k,)``.
      directions: ``k`` pytrees shaped like ``center``.

    Returns:
      a pytree shaped like ``center``.

    Examples:
      >>> theta = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}
      >>> d = {"w": jnp.full((3, 2), 0.5), "b": jnp.ones(2)}
      >>> ls.tree.lincomb(theta, [2.0], [d])["b"].tolist()     # theta + 2 d
      [2.0, 2.0]
    """
    out = center
    for i, d in enumerate(directions):
        out = axpy(coefficients[i], d, out)
    return out


@jax.jit  # one compiled program per tree structure, not one per leaf operation
def vdot(a: PyTree, b: PyTree) -> jax.Array:
    """Inner product of two pytrees, summed over every leaf.

    Args:
      a: a pytree.
      b: a pytree of the same structure and shapes.

    Returns:
      a scalar.
    """
    leaves = jax.tree_util.tree_leaves(jax.tree_util.tree_map(lambda x, y: jnp.vdot(x, y), a, b))
    return sum(leaves, jnp.zeros((), dtype=leaves[0].dtype if leaves else jnp.float32))


@jax.jit  # one compiled program per tree structure, not one per leaf operation
def norm(a: PyTree) -> jax.Array:
    """Euclidean norm of the whole pytree (all leaves flattened together).

    Args:
      a: a pytree.

    Returns:
      a scalar.
    """
    return jnp.sqrt(vdot(a, a))


def zeros_like(a: PyTree) -> PyTree:
    """A pytree of zeros shaped like ``a``.

    Args:
      a: a pytree.

    Returns:
      a pytree.

    Examples:
      >>> ls.tree.zeros_like({"w": jnp.ones((3, 2))})["w"].sum().item()
      0.0
    """
    return jax.tree_util.tree_map(jnp.zeros_like, a)


def random_like(key: jax.Array, a: PyTree) -> PyTree:
    """Standard Gaussian noise shaped like ``a``: one independent key per leaf.

    Args:
      key: PRNG key.
      a: a pytree (shapes and dtypes are copied).

    Returns:
      a pytree.

    Examples:
      >>> d = ls.tree.random_like(jax.random.key(0), {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)})
      >>> d["w"].shape, d["b"].shape
      ((3, 2), (2,))
    """
    leaves, treedef = jax.tree_util.tree_flatten(a)
    keys = jax.random.split(key, max(len(leaves), 1))
    noise = [jax.random.normal(k, jnp.shape(x), dtype=jnp.result_type(x)) for k, x in zip(keys, leaves)]
    return jax.tree_util.tree_unflatten(treedef, noise)


def stack(trees: Sequence[PyTree]) -> PyTree:
    """Stack pytrees of equal structure along a new leading member axis.

    Args:
      trees: pytrees of one structure and shapes.

    Returns:
      one pytree with leaves ``(len(trees), ...)``.

    Raises:
      ValueError: no pytrees.

    Examples:
      >>> s = ls.tree.stack([{"w": jnp.zeros(3)}, {"w": jnp.ones(3)}])
      >>> s["w"].shape                      # the member axis first
      (2, 3)
    """
    if not trees:
        raise ValueError("stack needs at least one pytree")
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)


def num_members(stacked: PyTree) -> int:
    """Length of the leading member axis of a stacked pytree.

    Args:
      stacked: a pytree whose leaves are ``(M, ...)``.

    Returns:
      ``M``.

    Raises:
      ValueError: an empty pytree.

    Examples:
      >>> ls.tree.num_members({"w": jnp.zeros((5, 3)), "b": jnp.zeros((5,))})
      5
    """
    leaves = jax.tree_util.tree_leaves(stacked)
    if not leaves:
        raise ValueError("empty pytree has no member axis")
    return int(jnp.shape(leaves[0])[0])


def take(stacked: PyTree, i: int) -> PyTree:
    """Member ``i`` of a stacked pytree (the leading axis removed).

    Args:
      stacked: a pytree whose leaves are ``(M, ...)``.
      i: the member.

    Returns:
      a pytree.

    Examples:
      >>> ls.tree.take({"w": jnp.arange(6.0).reshape(2, 3)}, 1)["w"].tolist()
      [3.0, 4.0, 5.0]
    """
    return jax.tree_util.tree_map(lambda x: x[i], stacked)


def unstack(stacked: PyTree) -> list[PyTree]:
    """Inverse of :func:`stack`: a list with one pytree per member.

    Args:
      stacked: a pytree whose leaves are ``(M, ...)``.

    Returns:
      ``M`` pytrees.

    Examples:
      >>> members = ls.tree.unstack({"w": jnp.arange(6.0).reshape(2, 3)})
      >>> len(members), members[1]["w"].tolist()
      (2, [3.0, 4.0, 5.0])
    """
    return [take(stacked, i) for i in range(num_members(stacked))]


def ravel(a: PyTree) -> jax.Array:
    """All leaves flattened into one vector (for dense references in tests and PCA).

    Args:
      a: a pytree.

    Returns:
      ``(P,)``, leaves in tree order, each raveled (``jax.flatten_util.ravel_pytree``).

    Examples:
      >>> ls.tree.ravel({"b": jnp.zeros(2), "w": jnp.ones((2, 2))}).tolist()
      [0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    """
    flat, _ = ravel_pytree(a)
    return flat


def member_rows(stacked: PyTree, dtype=np.float64) -> np.ndarray:
    """The members' parameter vectors as the rows of one host matrix.

    Args:
      stacked: a pytree whose leaves are ``(M, ...)``.
      dtype: the matrix's dtype (float64 by default, for the dense algebra done with it).

    Returns:
      ``(M, P)`` NumPy array; row ``i`` is member ``i``'s leaves, each raveled, in tree order
      (the order of :func:`ravel`).  Computed on the host: no program is compiled for it.

    Examples:
      >>> s = ls.tree.stack([{"b": jnp.zeros(2), "w": jnp.ones(3)}, {"b": jnp.ones(2), "w": jnp.ones(3)}])
      >>> ls.tree.member_rows(s).tolist()   # one float64 row per member, leaves in tree order
      [[0.0, 0.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0, 1.0]]
    """
    leaves = jax.tree_util.tree_leaves(stacked)
    m = int(np.shape(leaves[0])[0])
    return np.concatenate([np.asarray(x).reshape(m, -1).astype(dtype, copy=False) for x in leaves], axis=1)


def size(a: PyTree) -> int:
    """Total number of scalars in the pytree.

    Args:
      a: a pytree.

    Returns:
      an int.

    Examples:
      >>> ls.tree.size({"w": jnp.ones((3, 2)), "b": jnp.zeros(2)})
      8
    """
    return int(sum(np.size(x) for x in jax.tree_util.tree_leaves(a)))


def all_finite(a: PyTree) -> jax.Array:
    """Scalar bool: every entry of every leaf is finite.

    Args:
      a: a pytree.

    Returns:
      a scalar bool (may be traced).

    Examples:
      >>> bool(ls.tree.all_finite({"w": jnp.array([1.0, jnp.nan])}))
      False
    """
    leaves = jax.tree_util.tree_leaves(a)
    out = jnp.array(True)
    for x in leaves:
        out = out & jnp.all(jnp.isfinite(x))
    return out


def path_name(path: tuple) -> str:
    """The slash-joined name of one key path of :func:`jax.tree_util.tree_flatten_with_path`.

    Args:
      path: a key path (dict keys, sequence indices, attributes).

    Returns:
      ``"Dense_0/kernel"``.

    Examples:
      >>> path, _ = jax.tree_util.tree_flatten_with_path({"Dense_0": {"kernel": jnp.ones(2)}})[0][0]
      >>> ls.tree.path_name(path)
      'Dense_0/kernel'
    """
    parts = []
    for p in path:
        if isinstance(p, jax.tree_util.DictKey):
            parts.append(str(p.key))
        elif isinstance(p, jax.tree_util.SequenceKey):
            parts.append(str(p.idx))
        elif isinstance(p, jax.tree_util.GetAttrKey):
            parts.append(str(p.name))
        else:  # pragma: no cover - other key types are not produced by dict pytrees
            parts.append(str(p))
    return "/".join(parts)


def key_paths(a: PyTree) -> list[str]:
    """Slash-joined key paths of the leaves, in flattening order (``Dense_0/kernel``).

    Args:
      a: a pytree of dicts (and sequences).

    Returns:
      the paths.

    Examples:
      >>> ls.tree.key_paths({"params": {"Dense_0": {"kernel": jnp.ones((2, 3)), "bias": jnp.zeros(3)}}})
      ['params/Dense_0/bias', 'params/Dense_0/kernel']
    """
    return [path_name(p) for p, _ in jax.tree_util.tree_flatten_with_path(a)[0]]


def flatten_with_paths(a: PyTree) -> dict[str, np.ndarray]:
    """A flat ``{path: numpy array}`` dict of a nested-dict pytree (for storage).

    Args:
      a: a nested-dict pytree.

    Returns:
      ``{"Dense_0/kernel": array, …}``.

    Examples:
      >>> flat = ls.tree.flatten_with_paths({"params": {"Dense_0": {"bias": jnp.zeros(3)}}})
      >>> list(flat), type(flat["params/Dense_0/bias"]).__name__
      (['params/Dense_0/bias'], 'ndarray')
    """
    return {path_name(p): np.asarray(x) for p, x in jax.tree_util.tree_flatten_with_path(a)[0]}


def unflatten_with_paths(flat: dict[str, Any]) -> dict:
    """Inverse of :func:`flatten_with_paths` for nested-dict pytrees.

    Args:
      flat: ``{"a/b/c": value}``.

    Returns:
      the nested dict.

    Examples:
      >>> ls.tree.unflatten_with_paths({"params/Dense_0/bias": np.zeros(2)})
      {'params': {'Dense_0': {'bias': array([0., 0.])}}}
    """
    out: dict = {}
    for path, value in flat.items():
        parts = path.split("/")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"inconsistent parameter paths at {path!r}")
        if parts[-1] in node:
            raise ValueError(f"duplicate parameter path {path!r}")
        node[parts[-1]] = value
    return out
