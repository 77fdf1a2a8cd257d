"""Every member of an ensemble at once: one point's curvature function vmapped over members.

On a CPU the members run in vmapped groups of at most :data:`CPU_GROUP`, one group after
another, which keeps each group's activations in cache (and, for large members, bounds the
memory of their Lanczos vectors: :data:`GROUP_PARAMETERS`); elsewhere all at once.  Member ``i`` always
uses ``fold_in(key, i)``, so the answers do not depend on the grouping.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from ..core.conv_lowering import traces_convolution
from ..core.programs import split

__all__ = ["CPU_GROUP", "GROUP_PARAMETERS"]

#: Members per vmapped group on a single CPU device: the HVPs of 64 members at once stream
#: ``(64, N, width)`` activations through memory, groups of 8 stay in cache (measured by
#: ``experiments/benchmark.py``: 64-member top eigenvalues 0.43 s -> 0.35 s on 2 cores).
CPU_GROUP = 8

#: The most parameters (summed over a group's members) a CPU group holds per vector: the
#: Lanczos basis and the Hessian-vector product's vectors all scale with the group's
#: parameters.  The top eigenvalue (10 steps) of 16 members of 784-128-10 (101,770 parameters
#: each): groups of 8 need 63 MiB of temporaries besides the data, groups of 4 33 MiB, in the
#: same time (``experiments/curvature_memory.py``; groups of 2 are 25 % slower).  At this size
#: the cache motive of :data:`CPU_GROUP` is gone anyway.
GROUP_PARAMETERS = 2**19


def member_group(num_members: int, convolutional: bool = False, member_size: int = 0) -> int | None:
    """Members per sequential vmapped group: on a CPU, :data:`CPU_GROUP`, halved while the
    group's parameters exceed :data:`GROUP_PARAMETERS` (1 for a loss with convolutions:
    vmapped per-member kernels interleave the members' feature maps, and one member at a time
    is faster); elsewhere all at once (stacked curvature runs on one device, so only the
    backend matters).  Curvature is computed per member either way; only the memory and the
    time depend on the group.

    Args:
      num_members: ``M``.
      convolutional: the loss traces to convolutions
        (:func:`landscape.core.conv_lowering.traces_convolution`).
      member_size: ``P``, the parameters of one member.

    Returns:
      the group size, or ``None`` for all members at once.

    Examples:
      >>> from landscape.curvature.stacked import member_group
      >>> [member_group(64, member_size=p) for p in (3_498, 101_770, 600_000)]   # on a CPU
      [8, 4, 1]
    """
    if jax.default_backend() != "cpu":
        return None
    group = 1 if convolutional else CPU_GROUP
    while group > 1 and group * member_size > GROUP_PARAMETERS:
        group //= 2
    return None if num_members <= group else group


def _convolutional(loss_fn, stacked) -> bool:
    """Whether the loss of one member traces to convolutions (checked on a CPU only; the
    library's losses once per structure and shapes: :func:`traces_convolution` caches them)."""
    if jax.default_backend() != "cpu":
        return False
    try:
        return traces_convolution(loss_fn, jax.tree_util.tree_map(lambda a: a[0], stacked))
    except Exception:  # noqa: BLE001 - the curvature call itself reports what is wrong with the loss
        return False


def _program(fn: Callable, rebuild, options: tuple, group: int | None):
    """``jit`` of ``fn`` at member ``i`` (key ``fold_in(key, i)``) over every member; the loss's
    arrays are the program's first argument.  ``group=None`` vmaps all members at once; an
    integer runs vmapped groups of that many one after another (``lax.map`` with
    ``batch_size``; the last group may be smaller)."""
    opts = dict(options)

    def f(arrays, params, key, i):
        return fn(rebuild(arrays), params, key=jax.random.fold_in(key, i), **opts)

    if group is None:
        return jax.jit(jax.vmap(f, in_axes=(None, 0, None, 0)))
    return jax.jit(lambda arrays, params, key, idx: jax.lax.map(lambda a: f(arrays, a[0], key, a[1]), (params, idx),
                                                                 batch_size=group))


@functools.lru_cache(maxsize=32)
def _cached(fn: Callable, structure, options: tuple, group: int | None):
    """:func:`_program` for a loss given by its static structure (never its data or identity)."""
    return _program(fn, lambda arrays: jax.tree_util.tree_unflatten(structure, arrays), options, group)


def run_stacked(fn: Callable, loss_fn: Any, stacked: Any, key: jax.Array, **options):
    """``fn(loss_fn, member_i, key=fold_in(key, i), **options)`` for every member ``i`` in one
    compiled call.  The library's losses pass their examples as an argument and reuse the
    program compiled for their structure; another callable is compiled for this call
    (:func:`landscape.core.programs.split`).

    Args:
      fn: a curvature function of one point (``top_eigenvalues``, ``trace``, ``spectral_density``).
      loss_fn: its loss.
      stacked: every member's parameters, leaves ``(M, ...)``.
      key: the root key.
      **options: ``fn``'s other keywords (hashable values).

    Returns:
      ``fn``'s result with a leading member axis ``(M, ...)``.
    """
    n = jax.tree_util.tree_leaves(stacked)[0].shape[0]
    size = sum(leaf.size for leaf in jax.tree_util.tree_leaves(stacked)) // n
    select = options.get("select")
    if select is not None and not isinstance(select, str) and not callable(select):
        options["select"] = tuple(select)  # hashable: the compiled program is cached on it
    structure, arrays, rebuild = split(loss_fn)
    opts, group = tuple(sorted(options.items())), member_group(n, _convolutional(loss_fn, stacked), size)
    cacheable = structure is not None and not callable(options.get("select"))
    run = _cached(fn, structure, opts, group) if cacheable else _program(fn, rebuild, opts, group)
    return run(arrays, stacked, key, jnp.arange(n))
