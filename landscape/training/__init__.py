"""Training many members at once — ``ls.train``.

* :mod:`~landscape.training.engine` — :func:`train_ensemble`: every (seed, learning rate or
  optimizer) member in one compiled program, ``jit(vmap)`` over members, ``lax.scan`` over
  steps, sharded over every device;
* :mod:`~landscape.training.ensemble` — what it returns: :class:`Ensemble`, :class:`History`,
  :class:`Trajectory`, and summaries;
* :mod:`~landscape.training.tracking` — curvature tracked inside the training loop
  (:class:`Tracking`, :class:`Tracked`);
* :mod:`~landscape.training.children` — :func:`spawn`: children of snapshots, trained as one ensemble;
* :mod:`~landscape.training.orders` — per-member keys and data orders;
* :mod:`~landscape.training.memory` — the memory budget and member groups;
* :mod:`~landscape.training.optim` — named optax optimizers (``ls.optim``).
"""

from .engine import train_ensemble
from .ensemble import LEARNED_MARGIN, Ensemble, History, Trajectory, learned, status, summarize
from .orders import member_keys, noise_key
from .children import spawn
from .tracking import Tracked, Tracking, member_curvature

__all__ = ["train_ensemble", "Ensemble", "History", "Trajectory", "summarize", "learned", "status", "member_keys",
           "noise_key", "LEARNED_MARGIN", "Tracking", "Tracked", "member_curvature",
           "spawn"]
