"""Curvature of every member of an ensemble, and at every point of a slice."""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..core.errors import ConfigError
from ..core.execution import Execution
from ..core.programs import split
from .operators import LossFn, PyTree, Selection, is_batched, selection_mask
from .spectra import lanczos_steps, smallest_eigenvalue, spectral_density, top_eigenvalues, trace

__all__ = ["minibatch_curvature", "ensemble_curvature", "curvature_map"]


def _batches_of(loss: Any) -> tuple[jax.Array, jax.Array]:
    """Every batch of a :class:`~landscape.models.BatchedLoss` stacked ``(K, B, ...)`` (equal sizes only)."""
    if not is_batched(loss):
        raise ConfigError("mini-batch curvature needs a landscape.models.BatchedLoss "
                          "(landscape.models.minibatch_loss)")
    sizes = {int(xs.shape[1]) for (xs, _), _ in loss.groups}
    if len(sizes) != 1:
        raise ConfigError(f"mini-batch estimates need batches of one size, got sizes {sorted(sizes)}")
    return (jnp.concatenate([xs for (xs, _), _ in loss.groups]), jnp.concatenate([ys for (_, ys), _ in loss.groups]))


def minibatch_curvature(
    loss: Any, params: PyTree, *, key: jax.Array, top: int = 1, num_iters: int | None = None,
    trace_probes: int = 50, select: Selection = None, curvature: str = "hessian",
) -> dict[str, jax.Array]:
    """The curvature of every mini-batch on its own: how much a one-batch estimate varies.

    Sharpness measured on one mini-batch is a random variable: its spread over batches (often
    large — Jastrzębski et al. 2020 track λ_max on mini-batches; Sagun et al. 2018 show the
    top of the spectrum is set by the data) says how far one such number can be trusted.
    Batch ``b`` uses key ``fold_in(key, b)``; batches run one after another (``lax.map``).

    Args:
      loss: a :class:`~landscape.models.BatchedLoss` of equal-sized batches
        (:func:`landscape.models.minibatch_loss`).
      params: the point (no member axis).
      key: PRNG key of the Lanczos starts and Hutchinson probes.
      top: top eigenvalues per batch.
      num_iters: Lanczos iterations (default ``max(2 top + 20, 40)``, at most ``P``).
      trace_probes: Hutchinson probes per batch.
      select: the block of the curvature, as in :func:`top_eigenpairs`.
      curvature: ``"hessian"``, ``"ggn"`` or ``"fisher"``, as in :func:`top_eigenpairs`.

    Returns:
      ``{"top": (K, top), "trace": (K,), "trace_stderr": (K,)}``: one row per batch; their mean
      and standard deviation over batches are the mini-batch estimate and its spread.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> model = ls.MLP(hidden=(4,), output_activation="identity").for_data(data)
      >>> theta = model.init(jax.random.key(0))
      >>> loss = ls.models.loss_fn(model, data.train, "cross_entropy")     # a LossParts
      >>> batches = ls.models.minibatch_loss(model, data.train, "cross_entropy", batch_size=16, num_batches=3,
      ...                                    key=jax.random.key(2))
      >>> ls.hessian.minibatch_curvature(batches, theta, key=jax.random.key(0), top=1, trace_probes=5)["top"].shape
      (3, 1)
    """
    batches = _batches_of(loss)
    k_count = int(batches[0].shape[0])

    def one(args):
        (x, y), b = args
        f = loss.loss_of(x, y)
        k1, k2 = jax.random.split(jax.random.fold_in(key, b))
        ev = top_eigenvalues(f, params, top, key=k1, num_iters=num_iters, select=select, curvature=curvature)
        tr = trace(f, params, key=k2, num_probes=trace_probes, select=select, curvature=curvature)
        return {"top": ev, "trace": tr["trace"], "trace_stderr": tr["stderr"]}

    return jax.lax.map(one, (batches, jnp.arange(k_count)))


def _batch_shapes(loss) -> str:
    return repr([tuple(xs.shape[:2]) for (xs, _), _ in loss.groups]) if is_batched(loss) else "-"


def ensemble_curvature(
    loss_fn: LossFn,
    stacked: PyTree,
    *,
    key: jax.Array,
    top: int = 5,
    num_iters: int | None = None,
    trace_probes: int = 50,
    density: bool = False,
    density_probes: int = 2,
    density_iters: int = 60,
    select: Selection = None,
    curvature: str = "hessian",
    minibatches: Any = None,
    execution: Execution = Execution(),
) -> dict[str, np.ndarray]:
    """Curvature of every member: top eigenvalues, smallest eigenvalue, trace (and SLQ density).

    Members are vmapped in chunks of ``execution.chunk_size`` (default 16; one compilation);
    with ``execution.checkpoint`` finished chunks are saved and an interrupted call resumes
    (``execution.keep_checkpoint`` leaves the checkpoint for the caller to delete).  Member ``i`` uses
    ``fold_in(key, i)`` whatever the chunking.  Returns numpy arrays: ``top (M, top)``,
    ``smallest (M,)``, ``trace (M,)``, ``trace_stderr (M,)`` and, with ``density``,
    ``density_nodes`` / ``density_weights`` ``(M, probes, m)``.  With ``execution.mesh`` each chunk's
    members are sharded over its devices (single-process meshes; ``loss_fn`` closes over its data).
    ``select`` (:func:`selection_mask`) takes every quantity over one block of parameters
    (e.g. a layer: see :func:`layers`); ``curvature`` picks the matrix (:data:`CURVATURES`).
    A :class:`~landscape.models.BatchedLoss` as ``loss_fn`` accumulates the full-data curvature
    batch by batch (:func:`landscape.models.loss_fn` with ``batch_size``); ``minibatches`` (a
    BatchedLoss of equal batches, :func:`landscape.models.minibatch_loss`) adds every batch's own
    top eigenvalues and trace, ``batch_top (M, K, top)``, ``batch_trace`` and
    ``batch_trace_stderr (M, K)`` (:func:`minibatch_curvature`).

    Args:
      loss_fn: ``params -> scalar`` loss of one member.
      stacked: every member's parameters, leaves ``(M, ...)``.
      key: PRNG key (member ``i``: ``fold_in(key, i)``).
      top: top eigenvalues per member.
      num_iters: Lanczos iterations (default ``max(2 top + 20, 40)``).
      trace_probes: Hutchinson probes (``0``: no trace).
      density: also the SLQ density.
      density_probes: its probes.
      density_iters: its Lanczos steps.
      select: the block (a layer name, names, or ``(path, leaf) -> bool``; :func:`selection_mask`); ``None``: all.
      curvature: ``"hessian"``, ``"ggn"`` or ``"fisher"``.
      minibatches: a :class:`~landscape.models.BatchedLoss` of random batches: also each batch's
        curvature (:func:`minibatch_curvature`), as ``batch_*`` arrays ``(M, K, ...)``.
      execution: how to run it — chunking, checkpoint, progress bar, devices
        (:class:`~landscape.core.execution.Execution`); changes no number.

    Returns:
      the dict of numpy arrays described above.

    Examples:
      >>> quad = lambda p: 0.5 * jnp.sum(jnp.array([3.0, 2.0, 1.0]) * p["w"] ** 2)   # Hessian diag(3, 2, 1)
      >>> theta = {"w": jnp.ones(3)}
      >>> out = ls.hessian.ensemble_curvature(quad, ls.tree.stack([theta, theta]), key=jax.random.key(0), top=2,
      ...                                      num_iters=3, trace_probes=4)
      >>> out["top"].round(4).tolist(), out["smallest"].round(4).tolist(), out["trace"].round(4).tolist()
      ([[3.0, 2.0], [3.0, 2.0]], [1.0, 1.0], [6.0, 6.0])
    """
    from ..core import chunks, tree

    if trace_probes < 1:  # the trace is part of every member's curvature here (curvature_map may omit it)
        raise ConfigError("num_probes must be positive")
    m_total = tree.num_members(stacked)
    run, arrays, options = _point_curvature(loss_fn, tree.take(stacked, 0), top=top, num_iters=num_iters,
                                            trace_probes=trace_probes, density=density, density_probes=density_probes,
                                            density_iters=density_iters, select=select, curvature=curvature,
                                            minibatches=minibatches)
    fp = chunks.fingerprint(options, key, stacked) if execution.checkpoint is not None else None
    take = lambda idx: jax.tree_util.tree_map(lambda x: np.asarray(x)[idx], stacked)  # noqa: E731
    return chunks.map_points(run, arrays, take, m_total, key, depends_on=fp, execution=execution.labelled("Hessian"),
                             unit="member")


def _point_curvature(loss_fn, point, *, top, num_iters, trace_probes, density=False, density_probes=2,
                     density_iters=60, select=None, curvature="hessian", minibatches=None):
    """``(run, arrays, a string of every option)``: ``run(arrays, params, i, key) -> {name: value}``
    the curvature at members ``params`` (vmapped, compiled), member ``i`` with key
    ``fold_in(key, i)``; ``arrays`` the examples of the loss (and ``minibatches``), which are an
    argument of the program, never part of it; ``trace_probes=0`` leaves the trace out.

    The library's losses (pytrees: :func:`landscape.core.programs.split`) get the program
    compiled for their structure, the point's shapes and the options (unless ``select`` is a
    predicate, which may look at values): another call on equal or other data of the same
    shapes traces nothing.  Any other callable is compiled for this call only."""
    leaves, treedef = jax.tree_util.tree_flatten(point)
    shapes = tuple((tuple(np.shape(x)), np.dtype(x.dtype if hasattr(x, "dtype") else np.result_type(x)).str)
                   for x in leaves)
    (lkey, larrays, lrebuild), (mkey, marrays, mrebuild) = split(loss_fn), split(minibatches)
    static = (treedef, shapes, top, num_iters, trace_probes, density, density_probes, density_iters,
              tuple(select) if isinstance(select, list) else select, curvature)
    if lkey is not None and mkey is not None and not callable(select):
        one, (m_iter, d_iter) = _point_function(lkey, mkey, *static)
        run = _vmapped_point(one)
    else:
        one, (m_iter, d_iter) = _point_function.__wrapped__(lkey, mkey, *static, point=point,
                                                            rebuild=(lrebuild, mrebuild))
        run = jax.jit(jax.vmap(one, in_axes=(None, 0, 0, None)))
    options = (f"{top}|{m_iter}|{trace_probes}|{density}|{density_probes}|{d_iter}|{select!r}|{curvature}|"
               f"{_batch_shapes(loss_fn)}|{_batch_shapes(minibatches)}")
    return run, (larrays, marrays), options


@functools.lru_cache(maxsize=8)
def _point_function(lkey, mkey, treedef, shapes, top, num_iters, trace_probes, density, density_probes, density_iters,
                    select, curvature, point=None, rebuild=None):
    """:func:`_point_curvature`'s ``one(arrays, params, i, key)`` and its ``(Lanczos steps,
    density steps)``; the loss and the mini-batches are rebuilt from ``arrays`` and their
    structures ``lkey`` / ``mkey`` (or ``rebuild``); ``point`` (for a predicate ``select``) or else
    the shapes give the parameters' layout."""
    if point is None:
        point = jax.tree_util.tree_unflatten(treedef, [jax.ShapeDtypeStruct(s, np.dtype(d)) for s, d in shapes])
    if rebuild is None:
        rebuild = (lambda a: jax.tree_util.tree_unflatten(lkey, a), lambda a: jax.tree_util.tree_unflatten(mkey, a))
    mask = selection_mask(point, select)
    p = int(sum(math.prod(s) for (s, _), m in zip(shapes, mask) if m))
    m_iter = lanczos_steps(p, top, num_iters)
    d_iter = int(min(density_iters, p))

    def one(arrays, params, i, key):  # data and key are arguments: a program compiled once serves them all
        loss_fn, minibatches = rebuild[0](arrays[0]), rebuild[1](arrays[1])
        k = jax.random.fold_in(key, i)
        k1, k2, k3, k4 = jax.random.split(k, 4)
        kw = {"select": select, "curvature": curvature}
        ev = top_eigenvalues(loss_fn, params, top, key=k1, num_iters=m_iter, **kw)
        out = {"top": ev, "smallest": smallest_eigenvalue(loss_fn, params, key=k2, num_iters=m_iter, shift=ev[0], **kw)}
        if trace_probes:
            tr = trace(loss_fn, params, key=k3, num_probes=trace_probes, **kw)
            out["trace"], out["trace_stderr"] = tr["trace"], tr["stderr"]
        if density:
            den = spectral_density(loss_fn, params, key=k4, num_probes=density_probes, num_iters=d_iter, **kw)
            out["density_nodes"], out["density_weights"] = den.nodes, den.weights
        if minibatches is not None:
            per = minibatch_curvature(minibatches, params, key=jax.random.fold_in(k, 1), top=top, num_iters=m_iter,
                                      trace_probes=trace_probes, **kw)
            out.update({f"batch_{n}": v for n, v in per.items()})
        return out

    return one, (m_iter, d_iter)


@functools.lru_cache(maxsize=8)
def _vmapped_point(one):
    """The jitted, member-vmapped ``one`` of a loss structure (cached on it: traced once)."""
    return jax.jit(jax.vmap(one, in_axes=(None, 0, 0, None)))


def curvature_map(
    loss_fn: LossFn,
    center: PyTree,
    directions: list,
    coords: np.ndarray,
    *,
    key: jax.Array,
    num_iters: int | None = None,
    trace_probes: int = 0,
    stacked: bool = False,
    select: Selection = None,
    curvature: str = "hessian",
    execution: Execution = Execution(),
) -> dict[str, np.ndarray]:
    """The curvature at every point ``center + sum_i coords[g, i] directions[i]`` of a slice.

    Li et al. (2018, section 6) map ``|λ_min / λ_max|`` over a plane to show where a surface
    that looks convex in two dimensions is not: a large ratio means strong negative curvature
    in some direction the plane does not show.  Each point's λ_max and λ_min come from Lanczos
    (as :func:`top_eigenvalues` / :func:`smallest_eigenvalue`), optionally its Hutchinson
    trace; points are vmapped in chunks, resumable with ``execution.checkpoint`` (as
    :func:`ensemble_curvature`); point ``g`` of member ``s`` uses ``fold_in(key, s G + g)``.

    Args:
      loss_fn: ``params -> scalar`` (a :class:`~landscape.models.LossParts` or
        :class:`~landscape.models.BatchedLoss` for ``curvature="ggn"|"fisher"`` or batching).
      center: the slice's origin; leaves ``(S, ...)`` with ``stacked`` (one slice per member).
      directions: the slice's directions (pytrees shaped like ``center``), ``D`` of them.
      coords: ``(G, D)`` coefficients of the points.
      key: PRNG key of the Lanczos starts and probes.
      num_iters: Lanczos iterations (default 40, at most ``P``).
      trace_probes: Hutchinson probes per point (``0``: no trace).
      stacked: ``center`` and ``directions`` carry a leading member axis (one slice per member).
      select: the block of the curvature, as in :func:`top_eigenpairs`.
      curvature: ``"hessian"``, ``"ggn"`` or ``"fisher"``, as in :func:`top_eigenpairs`.
      execution: how to run it — chunking, checkpoint, progress bar, devices
        (:class:`~landscape.core.execution.Execution`); changes no number.

    Returns:
      ``{"lambda_max", "lambda_min", "ratio"}`` (and ``"trace"``, ``"trace_stderr"``), each
      ``(G,)`` or ``(S, G)`` with ``stacked``; ``ratio = |λ_min| / |λ_max|``.

    Examples:
      >>> saddle = lambda p: p["w"][0] ** 2 - 0.5 * p["w"][1] ** 2 + p["w"][1] ** 4
      >>> out = ls.hessian.curvature_map(saddle, {"w": jnp.zeros(2)}, [{"w": jnp.array([0.0, 1.0])}],
      ...                                np.array([[0.0], [1.0]]), key=jax.random.key(0))
      >>> out["lambda_min"].round(3).tolist(), out["lambda_max"].round(3).tolist()   # -1 at the saddle, +11 at w1 = 1
      ([-1.0, 2.0], [2.0, 11.0])
    """
    from ..core import chunks, tree

    coords = np.asarray(coords, np.float32)
    if coords.ndim != 2 or coords.shape[1] != len(directions):
        raise ConfigError(f"coords must be (points, {len(directions)}), got shape {coords.shape}")
    if not stacked:
        center = tree.stack([center])
        directions = [tree.stack([d]) for d in directions]
    c_np = jax.tree_util.tree_map(np.asarray, center)
    d_np = [jax.tree_util.tree_map(np.asarray, d) for d in directions]
    s_count, g_count = tree.num_members(c_np), coords.shape[0]

    def take(idx):
        s, g = idx // g_count, idx % g_count
        out = jax.tree_util.tree_map(lambda x: x[s].astype(np.float32), c_np)
        for i, d in enumerate(d_np):
            a = coords[g, i]
            out = jax.tree_util.tree_map(lambda o, x, a=a: o + a.reshape((-1,) + (1,) * (x.ndim - 1)) * x[s], out, d)
        return out

    run, arrays, options = _point_curvature(loss_fn, tree.take(c_np, 0), top=1, num_iters=num_iters,
                                    trace_probes=trace_probes, select=select, curvature=curvature)
    fp = chunks.fingerprint("map", options, key, c_np, d_np, coords) if execution.checkpoint is not None else None
    out = chunks.map_points(run, arrays, take, s_count * g_count, key, depends_on=fp,
                            execution=execution.labelled("curvature map"), unit="point")
    res = {"lambda_max": out["top"][:, 0], "lambda_min": out["smallest"]}
    res["ratio"] = np.abs(res["lambda_min"]) / np.maximum(np.abs(res["lambda_max"]), np.finfo(np.float32).tiny)
    if trace_probes:
        res["trace"], res["trace_stderr"] = out["trace"], out["trace_stderr"]
    return {k: (v.reshape(s_count, g_count) if stacked else v) for k, v in res.items()}
