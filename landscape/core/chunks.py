"""One resumable loop over the chunks of a long computation (surfaces, Hessians, barriers).

A long computation is split into chunks, each one compiled call.  :func:`run_chunks` runs the
missing ones, shows progress, and every ``save_every_s`` seconds saves what is done to a
checkpoint (atomically, :mod:`landscape.files`).  A checkpoint is tied to its computation by
a *fingerprint* (a hash of everything the values depend on: inputs, settings, chunking); an
interrupted call with the same fingerprint computes only the missing chunks, and a
checkpoint with another fingerprint, or a damaged one, is ignored and overwritten — never
trusted.  With ``keep_checkpoint`` the caller removes the checkpoint itself, after it has
committed the final result (:class:`landscape.results.Result` does), so that no instant
exists at which a kill loses finished work.

In a multi-process run every process computes every chunk (each chunk sharded over the
devices of all processes); process 0 alone reads and writes the checkpoint and, on resuming,
broadcasts what it holds to the others, so that all of them skip the same chunks — whether or
not the other hosts see the file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import files
from .errors import CorruptRunError, RunNotFoundError
from .execution import Execution

__all__ = ["fingerprint", "run_chunks", "map_points", "save_checkpoint", "load_checkpoint", "remove_checkpoint"]


def fingerprint(*parts: Any) -> str:
    """SHA-256 over ``parts``: strings, numbers, numpy/JAX arrays and pytrees of them (their
    leaves' bytes and shapes, in tree order).

    Args:
      *parts: what the computation depends on.

    Returns:
      a hex digest.

    Examples:
      >>> from landscape.core import chunks
      >>> chunks.fingerprint("plane", 51, np.zeros(3)) == chunks.fingerprint("plane", 51, np.zeros(3))
      True
      >>> chunks.fingerprint("plane", 51, np.zeros(3)) == chunks.fingerprint("plane", 51, np.ones(3))
      False
    """
    import jax

    h = hashlib.sha256()
    for part in parts:
        for leaf in jax.tree_util.tree_leaves(part):
            if isinstance(leaf, (str, int, float, bool)) or leaf is None:
                h.update(repr(leaf).encode())
                continue
            if jax.dtypes.issubdtype(getattr(leaf, "dtype", None), jax.dtypes.prng_key):
                leaf = jax.random.key_data(leaf)
            a = np.ascontiguousarray(np.asarray(leaf))
            h.update(f"{a.dtype}{a.shape}".encode())
            h.update(a.tobytes())
    return h.hexdigest()


def save_checkpoint(path: str | os.PathLike, key: str, results: dict[str, np.ndarray], done: np.ndarray) -> None:
    """Atomically save the partial ``results`` of a computation with fingerprint ``key`` and its
    ``done`` mask (one boolean per chunk).

    Args:
      path: the checkpoint file.
      key: the computation's :func:`fingerprint`.
      results: the arrays computed so far (full size; unfinished chunks hold anything).
      done: ``(C,)`` bool, the finished chunks.

    Examples:
      >>> from landscape.core import chunks
      >>> import tempfile, os
      >>> path = os.path.join(tempfile.mkdtemp(), "ck.npz")
      >>> chunks.save_checkpoint(path, "key1", {"v": np.array([1.0, np.nan])}, np.array([True, False]))
      >>> results, done = chunks.load_checkpoint(path, "key1")
      >>> done.tolist()
      [True, False]
    """
    path = Path(path)
    with files.storage_errors(path.parent, "create"):
        path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"result/{k}": v for k, v in results.items()}
    arrays["done"] = np.asarray(done, bool)
    arrays["fingerprint"] = np.frombuffer(key.encode(), dtype=np.uint8)
    files.atomic_save_npz(path, arrays)


def load_checkpoint(path: str | os.PathLike, key: str, num_chunks: int | None = None):
    """``(results, done)`` from a checkpoint of the computation with fingerprint ``key``, else ``None``.

    A checkpoint of another computation, with another number of chunks, or unreadable, is
    ignored (and will be overwritten), never trusted.

    Args:
      path: the checkpoint file.
      key: the computation's :func:`fingerprint`.
      num_chunks: the expected number of chunks (``None``: any).

    Returns:
      ``(results, done)`` or ``None``.

    Examples:
      >>> from landscape.core import chunks
      >>> import tempfile, os
      >>> path = os.path.join(tempfile.mkdtemp(), "ck.npz")
      >>> chunks.save_checkpoint(path, "key1", {"v": np.zeros(2)}, np.array([True, False]))
      >>> chunks.load_checkpoint(path, "another computation") is None   # never trusted
      True
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        arrays = files.load_npz(path)
    except (CorruptRunError, RunNotFoundError):
        return None
    stored = arrays.get("fingerprint")
    if stored is None or stored.dtype != np.uint8 or bytes(stored.tobytes()).decode(errors="replace") != key:
        return None
    done = arrays.get("done")
    results = {k[7:]: v.copy() for k, v in arrays.items() if k.startswith("result/")}
    if done is None or done.dtype != bool or done.ndim != 1 or not results:
        return None
    if num_chunks is not None and done.shape != (num_chunks,):
        return None
    return results, done


def remove_checkpoint(path: str | os.PathLike) -> None:
    """Delete a checkpoint (missing is fine).

    Args:
      path: the checkpoint file.

    Examples:
      >>> from landscape.core import chunks
      >>> import tempfile, os
      >>> path = os.path.join(tempfile.mkdtemp(), "ck.npz")
      >>> chunks.save_checkpoint(path, "k", {"v": np.zeros(2)}, np.array([True, True]))
      >>> chunks.remove_checkpoint(path); os.path.exists(path)
      False
    """
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def run_chunks(
    compute: Callable[[int], dict[str, np.ndarray]],
    num_chunks: int,
    *,
    allocate: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]],
    store: Callable[[dict[str, np.ndarray], int, dict[str, np.ndarray]], None],
    key: str | None = None,
    unit: str = "it",
    sizes: Sequence[int] | None = None,
    execution: Execution = Execution(),
    fetch: Callable[[Any], dict[str, np.ndarray]] | None = None,
) -> dict[str, np.ndarray]:
    """Run ``compute(c)`` for every chunk ``c`` not yet done; return the assembled results.

    With ``fetch``, ``compute`` may return device arrays still being computed: the next chunk
    is dispatched before the previous one is fetched to the host, so the device never waits
    for a host round trip (a chunk counts as done only once fetched and stored).

    Args:
      compute: ``compute(c) -> {name: array}`` for chunk ``c`` (numpy arrays, or whatever
        ``fetch`` turns into them).
      num_chunks: number of chunks.
      allocate: ``allocate(first_output) -> results``: the full result arrays (NaN-filled),
        called once.
      store: ``store(results, c, output)``: write chunk ``c``'s output into ``results``.
      key: the computation's :func:`fingerprint` (required with ``checkpoint``).
      unit: the bar's unit.
      sizes: work per chunk for the bar (default 1 each).
      execution: how to run it — chunking, checkpoint, progress bar, devices
        (:class:`~landscape.core.execution.Execution`); changes no number.
      fetch: ``fetch(output) -> {name: numpy array}``, applied one chunk behind ``compute``
        (``None``: ``compute`` returns numpy arrays).

    Returns:
      ``results`` as built by ``allocate`` and ``store``.

    Examples:
      >>> from landscape.core import chunks
      >>> compute = lambda c: {"square": np.arange(4.0 * c, 4.0 * c + 4) ** 2}    # chunk c: 4 values
      >>> allocate = lambda first: {"square": np.full(12, np.nan)}
      >>> def store(results, c, out):
      ...     results["square"][4 * c : 4 * c + 4] = out["square"]
      >>> chunks.run_chunks(compute, 3, allocate=allocate, store=store)["square"][:5].tolist()
      [0.0, 1.0, 4.0, 9.0, 16.0]
    """
    checkpoint, keep_checkpoint, save_every_s = execution.checkpoint, execution.keep_checkpoint, execution.save_every_s
    progress, desc = execution.progress, execution.label or ""
    if checkpoint is not None and key is None:
        raise ValueError("a checkpoint needs the computation's fingerprint (key=)")
    import jax

    done = np.zeros(num_chunks, bool)
    results = None
    writer = jax.process_index() == 0
    if checkpoint is not None:
        state = load_checkpoint(checkpoint, key, num_chunks) if writer else None
        if jax.process_count() > 1:
            state = _from_process_0(state)
        if state is not None:
            results, done = state
    sizes = [1] * num_chunks if sizes is None else list(sizes)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=int(sum(sizes)), desc=desc, unit=unit, leave=False, dynamic_ncols=True,
                   initial=int(sum(s for s, d in zip(sizes, done) if d)))
    last_save = time.monotonic()
    pending = None  # (chunk, output) dispatched, not yet fetched

    def finish(c, out):
        nonlocal results, last_save
        out = out if fetch is None else fetch(out)
        if results is None:
            results = allocate(out)
        store(results, c, out)
        done[c] = True
        if bar is not None:
            bar.update(sizes[c])
        due = time.monotonic() - last_save >= save_every_s
        if checkpoint is not None and writer and due and (keep_checkpoint or not done.all()):
            save_checkpoint(checkpoint, key, results, done)
            last_save = time.monotonic()

    try:
        for c in range(num_chunks):
            if done[c]:
                continue
            out = compute(c)
            if pending is not None:
                finish(*pending)
            pending = (c, out)
        if pending is not None:
            finish(*pending)
    finally:
        if bar is not None:
            bar.close()
    if checkpoint is not None and writer:
        if keep_checkpoint:
            save_checkpoint(checkpoint, key, results, done)  # complete: a rerun after a kill before the commit
        else:
            remove_checkpoint(checkpoint)
    return results


def _from_process_0(state):
    """Process 0's ``(results, done)`` (or ``None``) on every process of a multi-process run."""
    import io

    from jax.experimental import multihost_utils

    raw = np.zeros(0, np.uint8)
    if state is not None:  # only process 0 has read a checkpoint
        buf = io.BytesIO()
        np.savez(buf, done=state[1], **{f"result/{k}": v for k, v in state[0].items()})
        raw = np.frombuffer(buf.getvalue(), np.uint8)
    n = int(np.asarray(multihost_utils.broadcast_one_to_all(np.array([raw.size], np.int32)))[0])
    if n == 0:
        return None
    if raw.size != n:
        raw = np.zeros(n, np.uint8)
    raw = np.asarray(multihost_utils.broadcast_one_to_all(raw))
    with np.load(io.BytesIO(raw.tobytes()), allow_pickle=False) as z:
        return {k[7:]: z[k] for k in z.files if k.startswith("result/")}, z["done"]


#: Members (or points) per compiled call of :func:`map_points` unless ``execution.chunk_size`` says.
POINT_CHUNK = 16


def map_points(run: Callable, arrays: Any, take: Callable, total: int, key: Any, *, depends_on: str | None,
               execution: Execution, unit: str) -> dict[str, np.ndarray]:
    """``run(arrays, points, i, key)`` over ``total`` points (members of an ensemble, points of a
    grid) in chunks of ``execution.chunk_size`` (default :data:`POINT_CHUNK`), resumable
    (:func:`run_chunks`: with ``execution.checkpoint``, saved after every chunk) and sharded over
    ``execution.mesh``.  The last chunk wraps around to the first points (padding, dropped).

    Args:
      run: the compiled program, vmapped over its second and third arguments.
      arrays: the examples (replicated on every device, an argument of every call).
      take: ``take(idx) -> points idx`` stacked, leaves ``(len(idx), ...)``.
      total: the number of points.
      key: a PRNG key passed to every call.
      depends_on: the :func:`fingerprint` of what the values depend on (required with a
        checkpoint; the chunk size is added).
      execution: chunking, checkpoint, progress, devices; changes no number.
      unit: the progress bar's unit.

    Returns:
      ``{name: (total, ...)}`` float32 numpy arrays.

    Examples:
      >>> from landscape.core import chunks
      >>> run = jax.jit(jax.vmap(lambda arrays, p, i, key: {"sq": p * p + arrays}, in_axes=(None, 0, 0, None)))
      >>> points = np.arange(5.0)
      >>> chunks.map_points(run, 1.0, lambda idx: points[idx], 5, jax.random.key(0), depends_on=None,
      ...                   execution=ls.Execution(chunk_size=2), unit="point")["sq"].tolist()
      [1.0, 2.0, 5.0, 10.0, 17.0]
    """
    from .distributed import placement

    pl = placement(execution.mesh)
    chunk_size = pl.padded(int(max(1, min(execution.chunk_size or POINT_CHUNK, total))))
    n_chunks = -(-total // chunk_size)
    arrays = pl.replicate(arrays)

    def compute(c):  # dispatched: fetched (pl.gather) while the next chunk computes
        idx = np.arange(c * chunk_size, (c + 1) * chunk_size) % total
        return run(arrays, *pl.shard((take(idx), idx.astype(np.int32))), pl.replicate(key))

    def allocate(out):  # point axis last, so that every result is sliced along the same axis
        return {k: np.full(v.shape[1:] + (n_chunks * chunk_size,), np.nan, np.float32) for k, v in out.items()}

    def store(results, c, out):
        for k, v in out.items():
            results[k][..., c * chunk_size : (c + 1) * chunk_size] = np.moveaxis(v, 0, -1)

    fp = None if execution.checkpoint is None else fingerprint(depends_on, chunk_size)
    results = run_chunks(
        compute, n_chunks, allocate=allocate, store=store, key=fp, unit=unit,
        sizes=[min(chunk_size, total - c * chunk_size) for c in range(n_chunks)],
        execution=dataclasses.replace(execution, save_every_s=0.0), fetch=pl.gather)
    return {k: np.moveaxis(v[..., :total], -1, 0) for k, v in results.items()}

