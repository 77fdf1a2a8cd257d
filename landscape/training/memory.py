"""The memory budget of ensemble training, and the groups members are vmapped in.

A member's device memory is estimated before training (:func:`device_bytes_per_member`); an
ensemble that does not fit the budget is trained in member chunks, one after another, with the
same results.  On a CPU members run in vmapped groups of :data:`GROUP`, which makes a member
bitwise the same whichever sweep it is part of.
"""

from __future__ import annotations

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


def group_size(num_devices: int, model=None) -> int | None:
    """Members per group on a single CPU device: :data:`GROUP`, or 1 for a model with
    convolutions (:func:`landscape.models.convolutional`: vmapped per-member kernels become
    grouped convolutions, which XLA's CPU backend runs about 3× slower than one member at a
    time; measured by experiments/benchmark.py's ``cnn`` section).  ``None`` (no grouping: one
    vmapped batch of all members) on accelerators or when a mesh spreads the members."""
    if num_devices > 1 or jax.default_backend() != "cpu":
        return None
    if model is not None and convolutional(model):
        return 1
    return GROUP


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
