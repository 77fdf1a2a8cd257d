"""The memory budget of ensemble training, and the groups members are vmapped in.

A member's device memory is estimated before training (:func:`device_bytes_per_member`); an
ensemble that does not fit the budget is trained in member chunks, one after another, with the
same results.  On a CPU members run in vmapped groups of :data:`GROUP`, which makes a member
bitwise the same whichever sweep it is part of.
"""

from __future__ import annotations

import dataclasses
import os

import jax

from ..core.distributed import placement
from ..core.errors import ConfigError
from ..models import MLP, convolutional

__all__ = []


def device_bytes_per_member(model: MLP, batch: int, eval_examples: int) -> int:
    """An upper estimate of one member's device memory during training, in bytes.

    Parameters, gradients and two optimizer slots (``16 P`` bytes), and the float32
    activations of a training step (forward values and their gradients, pre- and
    post-activation: ``16 · batch · W`` with ``W`` the summed layer widths) or of the metric
    evaluation on every train and test example (``8 · eval_examples · W``), whichever is larger.

    Args:
      model: the bound model.
      batch: the training batch size (the training set's size for full batch).
      eval_examples: train plus test examples evaluated for the history.

    Returns:
      bytes.
    """
    width = model.activation_width()
    return int(16 * model.num_params() + max(16 * batch * width, 8 * eval_examples * width))


def device_budget(mesh) -> int:
    """Half of the memory of the devices the members are sharded over (the host's on a CPU)."""
    pl = placement(mesh)
    dev = jax.local_devices()[0] if mesh is None else mesh.devices.flat[0]
    try:
        stats = dev.memory_stats() or {}
    except Exception:  # pragma: no cover - backends without memory statistics
        stats = {}
    limit = stats.get("bytes_limit") or physical_memory()
    return int(0.5 * limit * pl.size)


#: Members per vmapped group on a CPU.  Every step runs on groups of exactly this many members
#: (the last group padded), so a member's arithmetic — XLA's choice of kernels depends on the
#: batch shape — is the same whether it is trained alone or in a sweep of any size: its
#: parameters are bitwise identical.  Groups run side by side on the cores.  The price: a sweep
#: of fewer members costs as much as this many (8 rather than 16: faster for sweeps of up to a
#: few hundred members in experiments/benchmark.py; 16 is faster from about a thousand).
GROUP = 8


#: Groups side by side in one block; more members make more blocks, run one after another.
MAX_LISTED_GROUPS = 8


@dataclasses.dataclass(frozen=True)
class Layout:
    """How an ensemble's members are laid out in a training step.

    Attributes:
      group: members per vmapped group (``None``: one vmapped batch of all members).
      side_by_side: at most this many groups run side by side in one block (more members make
        more blocks, one after another).
      lowered: convolutions computed as matrix products
        (:func:`landscape.core.conv_lowering.as_matmuls`).
      calls: at most this many compiled calls run at once, each on its own share of the groups
        (whole groups, so a member's arithmetic does not change), from threads of their own.
    """

    group: int | None
    side_by_side: int = MAX_LISTED_GROUPS
    lowered: bool = False
    calls: int = 1


def layout(num_devices: int, model=None) -> Layout:
    """The members' layout on this backend.

    On accelerators, or when a mesh spreads the members: one vmapped batch (on accelerators the
    model's own convolutions: cuDNN's on a GPU).  On one CPU device: groups of :data:`GROUP`
    members, split over twice as many concurrent calls as the process has cores, each call's
    groups up to :data:`MAX_LISTED_GROUPS` side by side.  XLA:CPU runs one call's groups
    mostly on one core and calls made from separate threads on separate cores (measured on 2
    cores, 64 members of a 64-32-32-10 MLP: a minibatch sweep 2.8 → 1.7 s with 4 calls, the
    full-batch sweep 4.5 → 4.0 s; 4 calls beat 2 and 8).  On a CPU a model whose traced
    program holds a convolution (:func:`landscape.models.convolutional`) has its convolutions
    computed as matrix products (:func:`landscape.models.lowered`) —
    XLA:CPU runs a convolution with per-member kernels (a grouped convolution under ``vmap``),
    and convolutions inside loops, several times slower than the same arithmetic as products —
    one member per group, one group at a time in each of as many concurrent calls as the
    process has cores (measured on 2 cores against one call with 2 groups side by side, which
    had been the fastest of groups of 1/2/4/8 and 1/2/4/8 side by side: the built-in ResNet
    10.4 → 8.8 s for 8 members, the CNN 9.2–9.7 → 7.1–8.0 s for 64 and unchanged for 8).  A group
    of one member takes its steps unbatched (not under a ``vmap`` of size one) and a call's
    members are evaluated one after another (``lax.map``): under ``vmap`` XLA:CPU copied
    the first convolution's output gradient into another layout before its kernel gradient, and
    evaluated the vmapped members' feature maps interleaved (measured on 2 cores with the patches
    as one matrix, the benchmark's 64 members of the built-in CNN × 20 steps: 4.74 → 3.56–3.94 s).  Fixed groups keep a member bitwise the
    same alone and in any sweep: a call's share, like a block, is whole groups.

    Args:
      num_devices: devices the members are sharded over.
      model: the bound model (``None``: not inspected).

    Returns:
      a :class:`Layout`.
    """
    if jax.default_backend() != "cpu":
        return Layout(None)
    conv = model is not None and convolutional(model)
    if num_devices > 1:
        return Layout(None, lowered=conv)
    if conv:
        return Layout(1, side_by_side=1, lowered=True, calls=_cores())
    return Layout(GROUP, calls=2 * _cores())


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def check_memory(num_members: int, model: MLP) -> None:
    """Refuse an ensemble whose state (parameters, gradients, two optimizer slots) exceeds the host's memory."""
    state_bytes = 4 * 4 * num_members * model.num_params()
    if state_bytes > physical_memory():
        raise ConfigError(
            f"{num_members} members × {model.num_params()} parameters need about {state_bytes / 2**30:.1f} GiB, "
            f"more than this machine's {physical_memory() / 2**30:.1f} GiB of memory; train fewer members"
        )


def physical_memory() -> int:
    """Bytes of physical memory of this host (a generous bound when unknown)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 2**40
