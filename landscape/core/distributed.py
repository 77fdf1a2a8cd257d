"""Devices, meshes and multi-host start-up: the same code on one CPU, one GPU, a TPU slice or many hosts.

A :class:`Placement` decides where the arrays of a computation live.  With a mesh, the
member axis (seeds, pairs) or the point axis (surfaces) is sharded over every device of every
process and everything else is replicated; counts that do not divide evenly are padded and
the results un-padded.  Without one (a single device) every method is the identity.  The
library's computations take ``mesh=`` and do the rest themselves; results come back as full
numpy arrays on every process.

Multi-host: :func:`initialize` wraps ``jax.distributed.initialize`` (coordinator address,
process count and id from arguments or the usual environment variables), uses gloo
collectives on CPU, and turns peers that never join into a one-line error instead of a hang.
Only process 0 writes files (:func:`is_writer`).
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from .errors import ConfigError, LandscapeError

__all__ = [
    "AXIS",
    "DistributedError",
    "initialize",
    "make_mesh",
    "default_mesh",
    "Placement",
    "placement",
    "is_writer",
    "process_count",
    "EXIT_NO_PEERS",
]

#: Name of the one mesh axis that members and points are sharded over.
AXIS = "batch"

PyTree = Any


class DistributedError(LandscapeError):
    """Multi-host start-up failed (bad address, peers that never joined, ...).

    Examples:
      >>> issubclass(ls.distributed.DistributedError, ls.LandscapeError)
      True
    """


def _env(*names: str) -> str | None:
    for n in names:
        v = os.environ.get(n)
        if v not in (None, ""):
            return v
    return None


def initialize(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    timeout_s: int = 120,
) -> bool:
    """Join a multi-process JAX run; returns whether one was started.

    Arguments default to ``LANDSCAPE_COORDINATOR`` / ``JAX_COORDINATOR_ADDRESS``,
    ``LANDSCAPE_NUM_PROCESSES`` / ``JAX_NUM_PROCESSES`` and ``LANDSCAPE_PROCESS_ID`` /
    ``JAX_PROCESS_ID``.  With none of them set this is a single-process run and nothing
    happens.  Bad arguments raise :class:`DistributedError`.  If the peers have not all joined
    within ``timeout_s`` the process prints one line to stderr and exits with status
    :data:`EXIT_NO_PEERS` (JAX's runtime would otherwise abort it, much later, with a C++ stack
    trace).  Must run before any other JAX computation.

    Args:
      coordinator: ``HOST:PORT`` of process 0.
      num_processes: how many processes.
      process_id: this process's index.
      timeout_s: seconds to wait for every process to join.

    Examples:
      >>> ls.distributed.initialize()      # no coordinator set: a single-process run, nothing started
      False
    """
    coordinator = coordinator or _env("LANDSCAPE_COORDINATOR", "JAX_COORDINATOR_ADDRESS")
    n = num_processes if num_processes is not None else _env("LANDSCAPE_NUM_PROCESSES", "JAX_NUM_PROCESSES")
    pid = process_id if process_id is not None else _env("LANDSCAPE_PROCESS_ID", "JAX_PROCESS_ID")
    if coordinator is None and n is None and pid is None:
        return False
    if coordinator is None or n is None or pid is None:
        raise DistributedError("a multi-process run needs --coordinator HOST:PORT, --num-processes and --process-id")
    try:
        n, pid = int(n), int(pid)
    except ValueError:
        raise DistributedError(f"num-processes and process-id must be integers, got {n!r} and {pid!r}") from None
    if n < 1 or not 0 <= pid < n:
        raise DistributedError(f"process id must lie in [0, {n}), got {pid}")
    if ":" not in coordinator:
        raise DistributedError(f"coordinator must be HOST:PORT, got {coordinator!r}")
    # CPU collectives across processes go through gloo (GPUs and TPUs use their own interconnects)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    message = f"process {pid} of {n} could not join the run at {coordinator} within {timeout_s} s"
    # The runtime aborts the whole process (a C++ fatal error) when peers never join; a watchdog
    # ends it first with one clear line and exit status EXIT_NO_PEERS.
    watchdog = threading.Timer(float(timeout_s), _give_up, args=(message,))
    watchdog.daemon = True
    watchdog.start()
    try:
        jax.distributed.initialize(coordinator, num_processes=n, process_id=pid,
                                   initialization_timeout=int(timeout_s) + 60)
    except Exception as exc:  # the runtime raises assorted XLA errors for bad addresses
        raise DistributedError(f"{message}: {' '.join(str(exc).split())[:300]}") from None
    finally:
        watchdog.cancel()
    return True


#: Exit status of a process whose peers never joined.
EXIT_NO_PEERS = 3


def _give_up(message: str) -> None:
    sys.stderr.write(f"landscape: error: {message} (are all processes started, with the same coordinator?)\n")
    sys.stderr.flush()
    os._exit(EXIT_NO_PEERS)


def process_count() -> int:
    """Number of JAX processes in this run.

    Examples:
      >>> ls.distributed.process_count()
      1
    """
    return jax.process_count()


def is_writer() -> bool:
    """Whether this process writes result files (process 0).

    Examples:
      >>> ls.distributed.is_writer()      # process 0 of a single-process run
      True
    """
    return jax.process_index() == 0


def make_mesh(devices: int | None = None) -> Mesh:
    """A one-axis mesh over the first ``devices`` devices of all processes (default: all).

    Args:
      devices: how many devices (``None``: every device of every process).

    Returns:
      a ``jax.sharding.Mesh`` with one axis.

    Raises:
      ConfigError: more devices than there are.

    Examples:
      >>> mesh = ls.distributed.make_mesh()
      >>> mesh.devices.size == jax.device_count()
      True
    """
    devs = jax.devices()
    if devices is not None:
        if not isinstance(devices, int) or devices < 1 or devices > len(devs):
            raise ConfigError(f"--devices must lie in [1, {len(devs)}], got {devices!r}")
        if jax.process_count() > 1 and devices != len(devs):
            raise ConfigError("a multi-process run uses every device of every process")
        devs = devs[:devices]
    return Mesh(np.asarray(devs), (AXIS,))


def default_mesh() -> Mesh | None:
    """A mesh over every device when there is more than one, else ``None`` (plain single-device code).

    Examples:
      >>> (ls.distributed.default_mesh() is None) == (jax.device_count() == 1)
      True
    """
    return make_mesh() if jax.device_count() > 1 else None


class Placement:
    """Where the arrays of one computation live (see the module docstring).

    ``size``: the number of devices the sharded axis is split over (1 without a mesh).

    Attributes:
      mesh: the mesh (``None``: one device).
      size: its device count.
      multi_process: whether it spans several processes.

    Examples:
      >>> place = ls.distributed.placement(None)                   # one device
      >>> place.size, place.padded(3), place.pad(np.arange(3.0), 3).tolist()   # nothing to pad on one device
      (1, 3, [0.0, 1.0, 2.0])
    """

    def __init__(self, mesh: Mesh | None):
        self.mesh = mesh
        self.size = 1 if mesh is None else int(mesh.devices.size)
        self.multi_process = jax.process_count() > 1

    def padded(self, n: int) -> int:
        """``n`` rounded up to a multiple of the device count.

        Args:
          n: a count.

        Returns:
          the padded count.
        """
        return -(-n // self.size) * self.size

    def pad(self, tree: PyTree, n: int) -> PyTree:
        """Pad the leading axis of every leaf from ``n`` to :meth:`padded` by repeating the last entry.

        Args:
          tree: a pytree whose leaves are ``(n, ...)``.
          n: the leading axis's length.

        Returns:
          the padded pytree (numpy leaves).
        """
        m = self.padded(n)
        if m == n:
            return tree
        idx = np.minimum(np.arange(m), n - 1)
        return jax.tree_util.tree_map(lambda x: np.asarray(x)[idx], tree)

    def _put(self, tree: PyTree, spec: P) -> PyTree:
        if self.mesh is None:  # one device: transfer once, uncommitted (no program compiled per leaf)
            return jax.device_put(tree)
        sharding = NamedSharding(self.mesh, spec)

        def put(x):
            x = np.asarray(x) if not isinstance(x, jax.Array) or self.multi_process else x
            if isinstance(x, np.ndarray) and x.dtype.kind == "V":  # PRNG key data is not placed here
                raise ConfigError("cannot place opaque arrays")
            if not self.multi_process:
                return jax.device_put(x, sharding)
            host = np.asarray(x)
            return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

        return jax.tree_util.tree_map(put, tree)

    def shard(self, tree: PyTree) -> PyTree:
        """Leaves sharded along their leading axis (already padded to a multiple of the devices).

        Args:
          tree: a pytree whose leaves are ``(padded n, ...)``.

        Returns:
          the pytree on the mesh.
        """
        return self._put(tree, P(AXIS))

    def replicate(self, tree: PyTree) -> PyTree:
        """Leaves replicated on every device.

        Args:
          tree: a pytree.

        Returns:
          the pytree on every device.
        """
        return self._put(tree, P())

    def gather(self, tree: PyTree) -> PyTree:
        """Full numpy arrays on every process.

        Args:
          tree: a pytree of (sharded) arrays.

        Returns:
          the pytree with numpy leaves.
        """
        if self.mesh is None or not self.multi_process:
            return jax.tree_util.tree_map(np.asarray, jax.device_get(tree))
        from jax.experimental import multihost_utils

        def get(x):
            if not isinstance(x, jax.Array):
                return np.asarray(x)
            if x.is_fully_replicated:
                return np.asarray(x.addressable_shards[0].data)
            return np.asarray(multihost_utils.process_allgather(x, tiled=True))

        return jax.tree_util.tree_map(get, tree)


def placement(mesh: Mesh | None) -> Placement:
    """The :class:`Placement` of a mesh (``None``: a single device, no sharding).

    Args:
      mesh: a mesh or ``None``.

    Returns:
      the placement.

    Examples:
      >>> place = ls.distributed.placement(ls.distributed.make_mesh())
      >>> place.size == jax.device_count()
      True
    """
    return Placement(mesh)
