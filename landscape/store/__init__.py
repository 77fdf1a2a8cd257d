"""The run store — ``ls.io``: run directories, result files, provenance, members.

* :mod:`~landscape.store.runs` — run directories (``meta.json`` and ``.npz`` arrays, read
  without pickle) and result files, each committed by one atomic rename;
* :mod:`~landscape.store.results` — a result's provenance, its reuse only when computed from
  exactly the current inputs, the writer's lock (internal to the analyses);
* :mod:`~landscape.store.members` — members addressed as (seed, learning rate): selection,
  labels, health (internal to the analyses and reports).

Nothing here imports JAX: figures and reports read stored results through it.
"""

from .runs import (
    FORMAT,
    FORMAT_VERSION,
    environment,
    load_result,
    load_run,
    read_meta,
    result_paths,
    run_path,
    save_result,
    save_run,
    update_meta,
)

__all__ = ["FORMAT", "FORMAT_VERSION", "environment", "save_run", "load_run", "read_meta", "update_meta", "run_path",
           "save_result", "load_result", "result_paths"]
