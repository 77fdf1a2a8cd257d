"""One generic evaluator of metrics on affine slices of parameter space, and the slices built on it.

:func:`evaluate` computes ``fn(center + sum_i c_i d_i, batch)`` at many coefficient vectors
``c`` (rows of ``coords``): vmapped over points, in fixed-size chunks so memory does not grow
with the number of points, optionally vmapped over a leading seed axis (each seed with its
own center and directions), resumable through a checkpoint file.  ``fn`` is any function of a
parameter pytree (``fn(params)`` or ``fn(params, batch)``) returning a scalar or a dict of
scalars.  For the built-in MLP's :class:`~landscape.models.MLPMetrics` the first layer's
pre-activations are computed once per direction instead of once per point (exact).

The slices (:func:`line`, :func:`plane`, :func:`interpolation`, :func:`three_point`,
:func:`trajectory_plane`, :func:`random_planes`) return a :class:`Surface`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import directions as dirs
from . import chunks, tree
from .data import Dataset
from .distributed import placement
from .errors import ConfigError

__all__ = [
    "Surface",
    "evaluate",
    "default_chunk_size",
    "line",
    "plane",
    "random_planes",
    "interpolation",
    "barrier_of_curve",
    "three_point",
    "trajectory_plane",
]

PyTree = Any

#: Largest number of points one :func:`evaluate` call accepts (a 10,000 × 10,000 grid).
MAX_POINTS = 10**7
#: Most values of one metric a call may hold (members × points): checked before allocating.
MAX_VALUES = 5 * 10**7


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


# ---------------------------------------------------------------------- the evaluator


def default_chunk_size(num_examples: int | None = None, width: int | None = None) -> int:
    """Points per compiled call: cache-sized on CPU, large on accelerators.

    Bounded so that a chunk's activations (points × examples × width floats) stay near
    32 MiB on CPU and 1 GiB on GPU/TPU.

    Args:
      num_examples: examples per evaluation (``None``: unknown).
      width: the widest layer (``None``: unknown).

    Returns:
      points per compiled call, at least 1 (64 on a CPU and 1024 elsewhere when unknown).

    Examples:
      >>> ls.surface.default_chunk_size(num_examples=1000, width=64) >= 1
      True
    """
    backend = jax.default_backend()
    budget = (32 if backend == "cpu" else 1024) * 2**20
    cap = 256 if backend == "cpu" else 4096
    if num_examples and width:
        return int(np.clip(budget // (4 * 3 * num_examples * width), 1, cap))
    return 64 if backend == "cpu" else 1024


def _as_batches(data) -> dict[str, Any] | None:
    """The ``data=`` of every slice function as ``{name: batch}``: a mapping as it is, a
    :class:`~landscape.data.Dataset` as its ``train`` and ``test`` splits (metrics then named
    ``train_loss``, ``test_loss`` …), one batch — an ``(x, y)`` pair, a
    :class:`~landscape.data.Split`, or whatever ``fn`` takes — unnamed (``loss`` …)."""
    if data is None:
        return None
    if isinstance(data, Dataset):
        data = {"train": tuple(data.train), "test": tuple(data.test)}
    if isinstance(data, Mapping):
        # (x, y) pairs as arrays, kept where they are: the placement moves them to the devices once
        host = lambda a: a if isinstance(a, jax.Array) else np.asarray(a)  # noqa: E731
        return {str(k): (host(v[0]), host(v[1])) if isinstance(v, tuple) else v for k, v in data.items()}
    return {"": data}


def _named(prefix: str, out) -> dict[str, jax.Array]:
    if isinstance(out, Mapping):
        return {(f"{prefix}_{k}" if prefix else str(k)): v for k, v in out.items()}
    return {prefix or "value": out}


def _fingerprint(center, directions, coords, batches, extra: str) -> str:
    named = [batches[k] for k in sorted(batches)] if batches else []
    return chunks.fingerprint(extra, np.asarray(coords, np.float64), center, list(directions), sorted(batches or {}),
                              named)


def _shortcut_applies(fn, center, batches) -> bool:
    """The metric function declares its affine first layer (``first_layer`` / ``head``, as
    :class:`landscape.models.MLPMetrics` does): the evaluator asks the model, it never looks
    for parameter names itself."""
    if not (hasattr(fn, "first_layer") and hasattr(fn, "head")) or not batches:
        return False
    return all(isinstance(b, tuple) and len(b) == 2 for b in batches.values())


def _slice_functions(fn, use_shortcut: bool):
    """``build(center, directions, batches) -> cache`` (once per slice) and
    ``at(cache, coeffs, batches) -> {metric: scalar}`` (once per point)."""

    def build(center, directions, batches):
        cache = {"center": center, "dirs": list(directions)}
        if use_shortcut:
            cache["z"] = {
                name: (fn.first_layer(center, x), [fn.first_layer(d, x) for d in directions])
                for name, (x, _) in batches.items()
            }
        return cache

    def at(cache, c, batches):
        params = tree.lincomb(cache["center"], c, cache["dirs"])
        if batches is None:
            return _named("", fn(params))
        out = {}
        for name, batch in batches.items():
            if use_shortcut:
                zc, zd = cache["z"][name]
                z = zc + sum(c[i] * zd[i] for i in range(len(zd)))
                out.update(_named(name, fn.head(params, z, batch[1])))
            else:
                out.update(_named(name, fn(params, batch)))
        return out

    return build, at


@functools.lru_cache(maxsize=32)
def _compiled(fn, use_shortcut: bool):
    """Jitted ``build`` (per seed chunk) and ``chunk_fn`` (per point chunk) for ``fn``.

    Cached on ``fn`` (by value for the built-in :class:`~landscape.models.MLPMetrics`, by
    identity for other callables), so repeated slices of the same model reuse the compiled code.
    """
    build_one, at = _slice_functions(fn, use_shortcut)
    build = jax.jit(jax.vmap(build_one, in_axes=(0, 0, None)))
    chunk_fn = jax.jit(jax.vmap(jax.vmap(at, in_axes=(None, 0, None)), in_axes=(0, None, None)))
    return build, chunk_fn


def evaluate(
    fn: Callable,
    center: PyTree,
    directions: Sequence[PyTree],
    coords: np.ndarray,
    *,
    data=None,
    stacked: bool = False,
    chunk_size: int | None = None,
    shortcut: bool = True,
    checkpoint: str | Path | None = None,
    keep_checkpoint: bool = False,
    save_every_s: float = 5.0,
    progress: bool = False,
    desc: str = "surface",
    mesh=None,
) -> dict[str, np.ndarray]:
    """Metric values at ``center + sum_i coords[p, i] * directions[i]`` for every row ``p``.

    Args:
      fn: ``fn(params)`` (``data=None``) or ``fn(params, batch)``; scalar or dict of scalars.
      center: parameter pytree; with ``stacked=True`` every leaf has a leading seed axis ``S``.
      directions: ``k`` pytrees shaped like ``center`` (stacked likewise).
      coords: ``(P, k)`` coefficients.
      data: ``None`` (``fn(params)``; result key ``"value"``, or ``fn``'s own keys), one batch
        (an ``(x, y)`` pair or :class:`~landscape.data.Split`: keys ``"loss"``, ``"accuracy"`` …
        as ``fn`` names them), ``{"train": batch, "test": batch}`` (keys
        ``"<name>_<metric>"``), or a :class:`~landscape.data.Dataset` (its train and test
        splits: ``"train_loss"``, ``"test_loss"`` …).
      chunk_size: evaluations (seeds × points) per compiled call (default
        :func:`default_chunk_size`); memory is bounded by it and results do not depend on it.
      shortcut: use the first-layer shortcut when ``fn`` offers it (built-in MLP).
      checkpoint: file that holds progress; an interrupted call with the same arguments
        resumes from it and computes only the missing chunks (:func:`landscape.chunks.run_chunks`).
        Deleted on completion unless ``keep_checkpoint`` (then the caller deletes it once it
        has saved the result).
      save_every_s: minimum seconds between checkpoint writes.
      stacked: ``center`` and ``directions`` carry a leading member axis ``S``: each member's
        own slice, all in one call.
      keep_checkpoint: leave the checkpoint for the caller to delete (see ``checkpoint``).
      progress: show a progress bar.
      desc: the bar's label.
      mesh: a :func:`landscape.distributed.make_mesh` mesh: each chunk's points are sharded over
        its devices (of every process); ``None``: one device.

    Returns:
      ``{metric: (P,)}`` or, stacked, ``{metric: (S, P)}`` numpy arrays.

    Examples:
      >>> fn = lambda p: jnp.sum(p["w"] ** 2)
      >>> center, direction = {"w": jnp.array([1.0, 0.0])}, {"w": jnp.array([1.0, 0.0])}
      >>> ls.surface.evaluate(fn, center, [direction], np.array([[-1.0], [0.0], [1.0]]))["value"].tolist()
      [0.0, 1.0, 4.0]
    """
    coords = np.asarray(coords, dtype=np.float32)
    if coords.ndim != 2 or coords.shape[1] != len(directions):
        raise ConfigError(f"coords must have shape (P, {len(directions)}), got {coords.shape}")
    if coords.shape[0] == 0:
        raise ConfigError("no points to evaluate")
    _check_points(coords.shape[0], tree.num_members(center) if stacked else 1)
    if not np.all(np.isfinite(coords)):
        raise ConfigError("coordinates must be finite")
    batches = _as_batches(data)
    use_shortcut = shortcut and _shortcut_applies(fn, center, batches)
    if chunk_size is None:
        if use_shortcut:
            n = max(int(np.shape(b[0])[0]) for b in batches.values())
            w = max(int(np.shape(leaf)[-1]) for leaf in jax.tree_util.tree_leaves(center))
            chunk_size = default_chunk_size(n, w)
        else:
            chunk_size = default_chunk_size()
    if not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ConfigError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    num_points = coords.shape[0]
    if not stacked:  # one code path: a seed axis of length 1
        center = tree.with_member_axis(center)
        directions = [tree.with_member_axis(d) for d in directions]
    directions = list(directions)
    num_seeds = tree.num_members(center)
    # a compiled call evaluates s_chunk seeds x p_chunk points, about chunk_size evaluations;
    # with a mesh the points of a chunk are sharded over its devices, so p_chunk is a multiple of them
    pl = placement(mesh)
    p_chunk = int(min(chunk_size, num_points))
    s_chunk = int(max(1, min(num_seeds, chunk_size // p_chunk)))
    p_chunk = pl.padded(p_chunk)
    n_pc, n_sc = -(-num_points // p_chunk), -(-num_seeds // s_chunk)
    padded = np.zeros((n_pc * p_chunk, coords.shape[1]), np.float32)
    padded[:num_points] = coords
    build, chunk_fn = _compiled(fn, use_shortcut)
    placed_batches = pl.replicate(batches)

    built = {"si": None, "caches": None}  # the seed chunk's first-layer cache, built once per seed chunk

    def compute(b: int) -> dict[str, np.ndarray]:
        si, pi = divmod(b, n_pc)
        if built["si"] != si:
            seeds = np.arange(si * s_chunk, (si + 1) * s_chunk) % num_seeds  # the last chunk wraps
            built["caches"] = build(pl.replicate(jax.tree_util.tree_map(lambda x: np.asarray(x)[seeds], center)),
                                    pl.replicate([jax.tree_util.tree_map(lambda x: np.asarray(x)[seeds], d)
                                                  for d in directions]), placed_batches)
            built["si"] = si
        return pl.gather(chunk_fn(built["caches"], pl.shard(padded[pi * p_chunk : (pi + 1) * p_chunk]),
                                  placed_batches))

    def allocate(out):
        return {k: np.full((num_seeds, n_pc * p_chunk), np.nan, np.float32) for k in out}

    def store(results, b, out):
        si, pi = divmod(b, n_pc)
        real = min(s_chunk, num_seeds - si * s_chunk)
        for k, v in out.items():
            results[k][si * s_chunk : si * s_chunk + real, pi * p_chunk : (pi + 1) * p_chunk] = v[:real]

    key = None
    if checkpoint is not None:
        key = _fingerprint(center, directions, coords, batches, (
            f"{type(fn).__qualname__}|{getattr(fn, '__dict__', '')!r}|{p_chunk}|{s_chunk}|{stacked}|{use_shortcut}"))
    results = chunks.run_chunks(
        compute, n_sc * n_pc, allocate=allocate, store=store, checkpoint=checkpoint, key=key,
        keep_checkpoint=keep_checkpoint, save_every_s=save_every_s, progress=progress, desc=desc, unit="pt",
        sizes=[_block_size(b, n_pc, s_chunk, p_chunk, num_seeds, num_points) for b in range(n_sc * n_pc)])
    out = {k: v[:, :num_points] for k, v in results.items()}
    return out if stacked else {k: v[0] for k, v in out.items()}


def _block_size(b: int, n_pc: int, s_chunk: int, p_chunk: int, num_seeds: int, num_points: int) -> int:
    si, pi = divmod(b, n_pc)
    return min(s_chunk, num_seeds - si * s_chunk) * min(p_chunk, num_points - pi * p_chunk)


# ---------------------------------------------------------------------- slices


def _check_points(n: int, members: int = 1) -> None:
    """Refuse, before anything is allocated, more points than one call holds, or more
    members × points values than one metric may take."""
    if n > MAX_POINTS:
        raise ConfigError(f"{n} points is more than one evaluation holds ({MAX_POINTS}); split the grid")
    if n * members > MAX_VALUES:
        raise ConfigError(f"{members} members × {n} points = {n * members} values per metric is more than one "
                          f"evaluation holds ({MAX_VALUES}); use fewer members or a smaller grid")


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
    chunk_size: int | None = None,
    shortcut: bool = True,
    checkpoint: str | Path | None = None,
    keep_checkpoint: bool = False,
    save_every_s: float = 5.0,
    progress: bool = False,
    mesh=None,
    desc: str = "surface",
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
      chunk_size: evaluations per compiled call (default: automatic), as for :func:`evaluate`;
        memory is bounded by it and the numbers do not depend on it.
      shortcut: use the first-layer shortcut when ``fn`` offers it (exact; the built-in MLP).
      checkpoint: a file that holds progress; the same call after an interruption resumes from it.
      keep_checkpoint: leave the checkpoint for the caller to delete once the result is saved.
      save_every_s: minimum seconds between checkpoint writes.
      progress: show a progress bar.
      mesh: a :func:`landscape.distributed.make_mesh` mesh to shard the points over (``None``: one device).
      desc: the progress bar's label.

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
    _check_points(a.size, tree.num_members(center) if stacked else 1)
    vals = evaluate(fn, center, [direction], a[:, None], data=data, stacked=stacked, chunk_size=chunk_size,
                    shortcut=shortcut, checkpoint=checkpoint, keep_checkpoint=keep_checkpoint,
                    save_every_s=save_every_s, progress=progress, mesh=mesh, desc=desc)
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
    chunk_size: int | None = None,
    shortcut: bool = True,
    checkpoint: str | Path | None = None,
    keep_checkpoint: bool = False,
    save_every_s: float = 5.0,
    progress: bool = False,
    mesh=None,
    desc: str = "surface",
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
      chunk_size: evaluations per compiled call (default: automatic), as for :func:`evaluate`;
        memory is bounded by it and the numbers do not depend on it.
      shortcut: use the first-layer shortcut when ``fn`` offers it (exact; the built-in MLP).
      checkpoint: a file that holds progress; the same call after an interruption resumes from it.
      keep_checkpoint: leave the checkpoint for the caller to delete once the result is saved.
      save_every_s: minimum seconds between checkpoint writes.
      progress: show a progress bar.
      mesh: a :func:`landscape.distributed.make_mesh` mesh to shard the points over (``None``: one device).
      desc: the progress bar's label.

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
    _check_points(a.size * b.size, tree.num_members(center) if stacked else 1)
    aa, bb = np.meshgrid(a, b, indexing="ij")
    coords = np.stack([aa.ravel(), bb.ravel()], axis=1)
    vals = evaluate(fn, center, directions, coords, data=data, stacked=stacked, chunk_size=chunk_size,
                    shortcut=shortcut, checkpoint=checkpoint, keep_checkpoint=keep_checkpoint,
                    save_every_s=save_every_s, progress=progress, mesh=mesh, desc=desc)
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
    chunk_size: int | None = None,
    shortcut: bool = True,
    checkpoint: str | Path | None = None,
    keep_checkpoint: bool = False,
    save_every_s: float = 5.0,
    progress: bool = False,
    mesh=None,
    desc: str = "surface",
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
      chunk_size: evaluations per compiled call (default: automatic), as for :func:`evaluate`;
        memory is bounded by it and the numbers do not depend on it.
      shortcut: use the first-layer shortcut when ``fn`` offers it (exact; the built-in MLP).
      checkpoint: a file that holds progress; the same call after an interruption resumes from it.
      keep_checkpoint: leave the checkpoint for the caller to delete once the result is saved.
      save_every_s: minimum seconds between checkpoint writes.
      progress: show a progress bar.
      mesh: a :func:`landscape.distributed.make_mesh` mesh to shard the points over (``None``: one device).
      desc: the progress bar's label.

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
    surf = plane(fn, centers, [d1, d2], span=span, num=num, data=data, stacked=True, chunk_size=chunk_size,
                 shortcut=shortcut, checkpoint=checkpoint, keep_checkpoint=keep_checkpoint,
                 save_every_s=save_every_s, progress=progress, mesh=mesh, desc=desc)
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
    _check_points(int(min(num + 2 * n_out, 2.0**62)))  # before the grid is allocated
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
    chunk_size: int | None = None,
    shortcut: bool = True,
    checkpoint: str | Path | None = None,
    keep_checkpoint: bool = False,
    save_every_s: float = 5.0,
    progress: bool = False,
    mesh=None,
    desc: str = "surface",
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
      chunk_size: evaluations per compiled call (default: automatic), as for :func:`evaluate`;
        memory is bounded by it and the numbers do not depend on it.
      shortcut: use the first-layer shortcut when ``fn`` offers it (exact; the built-in MLP).
      checkpoint: a file that holds progress; the same call after an interruption resumes from it.
      keep_checkpoint: leave the checkpoint for the caller to delete once the result is saved.
      save_every_s: minimum seconds between checkpoint writes.
      progress: show a progress bar.
      mesh: a :func:`landscape.distributed.make_mesh` mesh to shard the points over (``None``: one device).
      desc: the progress bar's label.

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
                    chunk_size=chunk_size, shortcut=shortcut, checkpoint=checkpoint, keep_checkpoint=keep_checkpoint,
                    save_every_s=save_every_s, progress=progress, mesh=mesh, desc=desc)
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
    _check_points(num * num)
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
    chunk_size: int | None = None,
    shortcut: bool = True,
    checkpoint: str | Path | None = None,
    keep_checkpoint: bool = False,
    save_every_s: float = 5.0,
    progress: bool = False,
    mesh=None,
    desc: str = "surface",
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
      chunk_size: evaluations per compiled call (default: automatic), as for :func:`evaluate`;
        memory is bounded by it and the numbers do not depend on it.
      shortcut: use the first-layer shortcut when ``fn`` offers it (exact; the built-in MLP).
      checkpoint: a file that holds progress; the same call after an interruption resumes from it.
      keep_checkpoint: leave the checkpoint for the caller to delete once the result is saved.
      save_every_s: minimum seconds between checkpoint writes.
      progress: show a progress bar.
      mesh: a :func:`landscape.distributed.make_mesh` mesh to shard the points over (``None``: one device).
      desc: the progress bar's label.

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
                    chunk_size=chunk_size, shortcut=shortcut, checkpoint=checkpoint, keep_checkpoint=keep_checkpoint,
                    save_every_s=save_every_s, progress=progress, mesh=mesh, desc=desc)
    return Surface("three_point", [a, b], _finish(vals, (a.size, b.size), False), extras)


def trajectory_plane(
    fn: Callable,
    snapshots: PyTree,
    *,
    num: int = 41,
    margin: float = 0.25,
    data=None,
    member: int | None = None,
    chunk_size: int | None = None,
    shortcut: bool = True,
    checkpoint: str | Path | None = None,
    keep_checkpoint: bool = False,
    save_every_s: float = 5.0,
    progress: bool = False,
    mesh=None,
    desc: str = "surface",
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
      chunk_size: evaluations per compiled call (default: automatic), as for :func:`evaluate`;
        memory is bounded by it and the numbers do not depend on it.
      shortcut: use the first-layer shortcut when ``fn`` offers it (exact; the built-in MLP).
      checkpoint: a file that holds progress; the same call after an interruption resumes from it.
      keep_checkpoint: leave the checkpoint for the caller to delete once the result is saved.
      save_every_s: minimum seconds between checkpoint writes.
      progress: show a progress bar.
      mesh: a :func:`landscape.distributed.make_mesh` mesh to shard the points over (``None``: one device).
      desc: the progress bar's label.

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
                    chunk_size=chunk_size, shortcut=shortcut, checkpoint=checkpoint, keep_checkpoint=keep_checkpoint,
                    save_every_s=save_every_s, progress=progress, mesh=mesh, desc=desc)
    meta = {"explained_variance_ratio": pca.explained_variance_ratio.tolist()}
    extras = {"path": pca.coords, "points": np.zeros((1, 2))}
    return Surface("trajectory", [a, b], _finish(vals, (a.size, b.size), False), extras, meta)
