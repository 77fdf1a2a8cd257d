"""One generic evaluator of metrics on affine slices of parameter space.

:func:`evaluate` computes ``fn(center + sum_i c_i d_i, batch)`` at many coefficient vectors
``c`` (rows of ``coords``): vmapped over points, in fixed-size chunks so memory does not grow
with the number of points, optionally vmapped over a leading seed axis (each seed with its
own center and directions), resumable through a checkpoint file.  ``fn`` is any function of a
parameter pytree (``fn(params)`` or ``fn(params, batch)``) returning a scalar or a dict of
scalars.  For the built-in MLP's :class:`~landscape.models.MLPMetrics` the first layer's
pre-activations are computed once per direction instead of once per point (exact)."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from ..core import chunks, tree
from ..core.conv_lowering import traces_convolution
from ..core.distributed import placement
from ..core.errors import ConfigError, LandscapeError
from ..core.execution import Execution
from ..core.programs import split
from ..data import Dataset

PyTree = Any

__all__ = ["evaluate", "default_chunk_size"]

#: Largest number of points one :func:`evaluate` call accepts (a 10,000 × 10,000 grid).
MAX_POINTS = 10**7


#: Most values of one metric a call may hold (members × points): checked before allocating.
MAX_VALUES = 5 * 10**7


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


def _slice_functions(rebuild, use_shortcut: bool):
    """``build(arrays, center, directions, batches) -> cache`` (once per slice) and
    ``at(arrays, cache, coeffs, batches) -> {metric: scalar}`` (once per point); the metric
    function is ``rebuild(arrays)`` (its arrays, if any, an argument of the programs)."""

    def build(arrays, center, directions, batches):
        fn = rebuild(arrays)
        cache = {"center": center, "dirs": list(directions)}
        if use_shortcut:
            cache["z"] = {
                name: (fn.first_layer(center, x), [fn.first_layer(d, x) for d in directions])
                for name, (x, _) in batches.items()
            }
        return cache

    def at(arrays, cache, c, batches):
        fn = rebuild(arrays)
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


def _programs(rebuild, use_shortcut: bool, one_by_one: bool = False):
    """Jitted ``build`` (per seed chunk) and ``chunk_fn`` (per point chunk): the points of a
    chunk vmapped, or with ``one_by_one`` evaluated one after another (``lax.map``)."""
    build_one, at = _slice_functions(rebuild, use_shortcut)
    build = jax.jit(jax.vmap(build_one, in_axes=(None, 0, 0, None)))
    if one_by_one:
        def chunk(arrays, caches, coords, batches):
            return jax.lax.map(lambda cache: jax.lax.map(lambda c: at(arrays, cache, c, batches), coords), caches)

        return build, jax.jit(chunk)
    chunk_fn = jax.jit(jax.vmap(jax.vmap(at, in_axes=(None, None, 0, None)), in_axes=(None, 0, None, None)))
    return build, chunk_fn


@functools.lru_cache(maxsize=32)
def _compiled(structure, use_shortcut: bool, one_by_one: bool):
    """:func:`_programs` of a metric function given by its static structure (the built-in
    :class:`~landscape.models.MLPMetrics` and :class:`~landscape.models.ModelMetrics`: their
    model and loss), so that repeated slices of one model reuse the compiled code — never keyed
    on a function's identity, never holding data."""
    return _programs(lambda arrays: jax.tree_util.tree_unflatten(structure, arrays), use_shortcut, one_by_one)


def _one_by_one(fn, center, batches) -> bool:
    """Evaluate points one after another: on a CPU, when ``fn`` traces to convolutions (which
    it then computes as matrix products, :func:`landscape.models.lowered`).  A vmapped batch of
    points with per-point kernels interleaves the points' feature maps (layout transposes,
    working sets beyond the caches): on the digits CNN a point at a time is 2.5× faster.
    The library's metrics are traced once per structure and shapes (:func:`traces_convolution` caches them)."""
    if jax.default_backend() != "cpu":
        return False
    args = (center,) if batches is None else (center, next(iter(batches.values())))
    try:
        return traces_convolution(fn, *args)
    except Exception:  # noqa: BLE001 - the evaluation itself reports what is wrong with fn
        return False


def evaluate(
    fn: Callable,
    center: PyTree,
    directions: Sequence[PyTree],
    coords: np.ndarray,
    *,
    data=None,
    stacked: bool = False,
    shortcut: bool = True,
    execution: Execution = Execution(),
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
      shortcut: use the first-layer shortcut when ``fn`` offers it (built-in MLP).
      stacked: ``center`` and ``directions`` carry a leading member axis ``S``: each member's
        own slice, all in one call.
      execution: how to run it — chunking, checkpoint, progress bar, devices
        (:class:`~landscape.core.execution.Execution`); changes no number.

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
    check_points(coords.shape[0], tree.num_members(center) if stacked else 1)
    if not np.all(np.isfinite(coords)):
        raise ConfigError("coordinates must be finite")
    batches = _as_batches(data)
    use_shortcut = shortcut and _shortcut_applies(fn, center, batches)
    chunk_size, mesh = execution.chunk_size, execution.mesh
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
    original_center = center
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
    structure, fn_arrays, rebuild = split(fn)  # a user's own function: compiled for this call only
    one_by_one = not use_shortcut and _one_by_one(fn, original_center if not stacked else jax.tree_util.tree_map(
        lambda a: a[0], original_center), batches)
    build, chunk_fn = (_compiled(structure, use_shortcut, one_by_one) if structure is not None
                       else _programs(rebuild, use_shortcut, one_by_one))
    fn_arrays = pl.replicate(fn_arrays)
    placed_batches = pl.replicate(batches)

    built = {"si": None, "caches": None}  # the seed chunk's first-layer cache, built once per seed chunk

    def compute(b: int) -> dict[str, np.ndarray]:
        si, pi = divmod(b, n_pc)
        if built["si"] != si:
            seeds = np.arange(si * s_chunk, (si + 1) * s_chunk) % num_seeds  # the last chunk wraps
            built["caches"] = build(fn_arrays,
                                    pl.replicate(jax.tree_util.tree_map(lambda x: np.asarray(x)[seeds], center)),
                                    pl.replicate([jax.tree_util.tree_map(lambda x: np.asarray(x)[seeds], d)
                                                  for d in directions]), placed_batches)
            built["si"] = si
        # dispatched, not fetched: run_chunks fetches it (pl.gather) while the next chunk computes
        return chunk_fn(fn_arrays, built["caches"], pl.shard(padded[pi * p_chunk : (pi + 1) * p_chunk]), placed_batches)

    def allocate(out):
        return {k: np.full((num_seeds, n_pc * p_chunk), np.nan, np.float32) for k in out}

    def store(results, b, out):
        si, pi = divmod(b, n_pc)
        real = min(s_chunk, num_seeds - si * s_chunk)
        for k, v in out.items():
            results[k][si * s_chunk : si * s_chunk + real, pi * p_chunk : (pi + 1) * p_chunk] = v[:real]

    key = None
    if execution.checkpoint is not None:
        key = _fingerprint(center, directions, coords, batches, (
            f"{type(fn).__qualname__}|{getattr(fn, '__dict__', '')!r}|{p_chunk}|{s_chunk}|{stacked}|{use_shortcut}"))
    try:
        results = chunks.run_chunks(
            compute, n_sc * n_pc, allocate=allocate, store=store, key=key, unit="pt",
            execution=dataclasses.replace(execution, label=execution.label or "surface"),
            sizes=[_block_size(b, n_pc, s_chunk, p_chunk, num_seeds, num_points) for b in range(n_sc * n_pc)],
            fetch=pl.gather)
    except (LandscapeError, OSError, MemoryError):
        raise
    except Exception:  # the user's function failed (a raw shape error): is a member axis what is wrong?
        _explain_member_axis(fn, original_center, batches, stacked)
        raise
    out = {k: v[:, :num_points] for k, v in results.items()}
    return out if stacked else {k: v[0] for k, v in out.items()}


def _explain_member_axis(fn, center, batches, stacked: bool) -> None:
    """After ``fn`` failed on the slice: raise one clear error when the member axis is what is
    wrong.  ``fn`` is traced (never run) on ``center`` as given and on its leading-axis slice:
    ``stacked=False`` and only the slice gives scalars (a member axis was passed), or
    ``stacked=True`` and only ``center`` as given does (one network was passed)."""
    whole = jax.eval_shape(lambda p: p, center)
    leading = {s.shape[0] if s.shape else None for s in jax.tree_util.tree_leaves(whole)}
    # the tree without its leading axis, when every leaf has one of the same size
    sliced = (jax.tree_util.tree_map(lambda s: jax.ShapeDtypeStruct(s.shape[1:], s.dtype), whole)
              if len(leading) == 1 and None not in leading else None)
    batch = None if batches is None else next(iter(batches.values()))

    def gives_scalars(params) -> bool:
        try:
            out = jax.eval_shape(lambda p: fn(p) if batch is None else fn(p, batch), params)
        except Exception:  # noqa: BLE001 - any failure of the user's function answers "no"
            return False
        return all(np.shape(o) == () for o in jax.tree_util.tree_leaves(out))

    if not stacked and sliced is not None and not gives_scalars(whole) and gives_scalars(sliced):
        raise ConfigError(f"the parameters carry a member axis (every leaf starts with {leading.pop()}: an "
                          "ensemble's stacked parameters, ens.params): pass one member, ens.member(i), or "
                          "stacked=True for every member's own slice in one call") from None
    if stacked and gives_scalars(whole) and (sliced is None or not gives_scalars(sliced)):
        raise ConfigError("stacked=True, but these are one network's parameters (fn takes them as they are): "
                          "pass stacked=False, or stack members with ls.tree.stack, or use ens.params") from None


def _block_size(b: int, n_pc: int, s_chunk: int, p_chunk: int, num_seeds: int, num_points: int) -> int:
    si, pi = divmod(b, n_pc)
    return min(s_chunk, num_seeds - si * s_chunk) * min(p_chunk, num_points - pi * p_chunk)


def check_points(n: int, members: int = 1) -> None:
    """Refuse, before anything is allocated, more points than one call holds, or more
    members × points values than one metric may take."""
    if n > MAX_POINTS:
        raise ConfigError(f"{n} points is more than one evaluation holds ({MAX_POINTS}); split the grid")
    if n * members > MAX_VALUES:
        raise ConfigError(f"{members} members × {n} points = {n * members} values per metric is more than one "
                          f"evaluation holds ({MAX_VALUES}); use fewer members or a smaller grid")
