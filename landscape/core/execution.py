"""How a computation runs — devices, chunking, progress, checkpoints — as one object.

Every computation of the library that can run long takes ``execution=``: an
:class:`Execution` holds what changes how it runs and never what it computes, so that results
do not depend on it and it never enters a result's provenance.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from typing import Any

__all__ = ["Execution"]


@dataclasses.dataclass(frozen=True)
class Execution:
    """How to run a computation; nothing here changes its numbers.

    Every long computation of the library (surfaces, barriers, curvature, training, races,
    basins of attraction, the analyses) takes one ``execution=``; a field a computation does
    not use is ignored by it.

    Attributes:
      progress: show progress bars.
      mesh: a :func:`landscape.distributed.make_mesh` mesh to shard members or points over
        (``None``: one device).
      chunk_size: evaluations per compiled call (default: automatic); memory is bounded by it.
      checkpoint: a file for progress: the same call after an interruption resumes from it,
        computing only what is missing, with the same result (``None``: no checkpoint).
      keep_checkpoint: leave the checkpoint for the caller to delete once it has saved the
        result (else it is deleted on completion).
      save_every_s: minimum seconds between checkpoint writes.
      label: the progress bar's label (default: the computation's own).
      max_device_bytes: memory training may take on each device (default: half of what the
        device reports); a larger ensemble is trained in member chunks, with the same results.
      max_trajectory_bytes: refuse a training trajectory that would need more host memory.
      min_calls: training runs in at least this many compiled calls (progress updates); calls
        are also kept to about two seconds each.
      clock: a :class:`landscape.core.timing.Timings` to charge load / figure time to, or ``None``.
      model: for runs of a user model: the model again, ``"PATH.py:FACTORY"`` (executed; the
        file the run was trained from, checked by SHA-256) or the object
        (:func:`landscape.io.load_run`'s ``model``).

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10, snapshot_every=10))
      >>> ex = ls.analyses.Execution(progress=False, chunk_size=64)      # changes no number
      >>> a = ls.analyses.surface(run, ls.analyses.SurfaceSpec(grid=5), execution=ex)
      >>> b = ls.analyses.surface(run, ls.analyses.SurfaceSpec(grid=5), execution=ls.analyses.Execution(chunk_size=7),
      ...                         name="again")
      >>> bool(np.array_equal(a.arrays["value/train_loss"], b.arrays["value/train_loss"]))
      True
    """

    progress: bool = False
    mesh: Any = None
    chunk_size: int | None = None
    checkpoint: str | os.PathLike | None = None
    keep_checkpoint: bool = False
    save_every_s: float = 5.0
    label: str | None = None
    max_device_bytes: int | None = None
    max_trajectory_bytes: int = 2 * 1024**3
    min_calls: int = 20
    clock: Any = None
    model: Any = None

    def labelled(self, label: str) -> Execution:
        """This execution, its progress bar labelled ``label`` unless it has a label already.

        Args:
          label: the computation's own label.

        Returns:
          an :class:`Execution`.
        """
        return self if self.label else dataclasses.replace(self, label=label)

    def phase(self, name: str):
        """A context that charges its time to phase ``name`` of :attr:`clock` (nothing without one).

        Args:
          name: the phase (``load``, ``figure``).
        """
        return self.clock.phase(name) if self.clock is not None else contextlib.nullcontext()
