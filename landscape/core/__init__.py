"""The ground floor: what every other floor stands on; imports nothing of the library above it.

* :mod:`~landscape.core.tree` — pytree maths over parameter pytrees (``ls.tree``);
* :mod:`~landscape.core.errors` — the library's errors, one clear line each (``ls.errors``);
* :mod:`~landscape.core.execution` — how a computation runs (devices, chunking, progress,
  checkpoints) as one object;
* :mod:`~landscape.core.distributed` — device meshes, multi-host start-up (``ls.distributed``);
* :mod:`~landscape.core.precision` — the float32 matmul arithmetic (``ls.precision``);
* :mod:`~landscape.core.loss_names` — the names the built-in losses are known by (``ls.models.loss_name``);
* :mod:`~landscape.core.compilation_cache` — JAX's persistent compilation cache
  (``ls.compilation_cache``);
* :mod:`~landscape.core.files` — atomic writes, bounded reads, locks (internal);
* :mod:`~landscape.core.chunks` — the resumable chunk loop (internal);
* :mod:`~landscape.core.timing` — a command's wall-time phases (internal);
* :mod:`~landscape.core.namespace` — lazy package namespaces (internal).
"""
