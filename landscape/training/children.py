"""Spawning children: copies of a trained member's snapshot at a step, trained on from there with
different data orders, all children of all parents and steps as one ensemble (Frankle et al.
2020's instability analysis; the barriers between them are :func:`landscape.minima.instability`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import numpy as np

from ..core.errors import ConfigError
from ..core.execution import Execution
from ..data import Dataset
from .engine import train_ensemble
from .ensemble import Ensemble
from .optim import OptimizerSpec

__all__ = ["spawn"]


def spawn(ens: Ensemble, data: Dataset, *, at: Sequence[int], children: int, steps: int, key: jax.Array,
          parents: Sequence[int] | None = None, batch_size: int | None = None, log_every: int | None = None, snapshot_every: int | None = None,
          execution: Execution | None = None) -> Ensemble:
    """Children of every parent member at every spawn step, trained as one ensemble.

    Each child starts exactly from its parent's snapshot at the spawn step and trains ``steps``
    more steps with the parent's optimizer and learning rate (a named
    :class:`~landscape.optim.OptimizerSpec`; a fresh optimizer state: exact for plain SGD,
    momentum and Adam restart their averages) and its own minibatch order: the
    children of one spawn differ only in their data order.  The children's members are ordered
    by parent, then spawn step, then child (child fastest); child ``i`` of the ensemble has seed
    label ``i`` and the data order :func:`~landscape.train.member_keys` derives from
    ``(key, i)``.  ``config["spawn"]`` records the layout (``member_parent``,
    ``member_step``, ``member_child``, the parents' seeds and learning rate).

    Args:
      ens: the parents' run, with snapshots (``snapshot_every``) at every spawn step.
      data: the data set it was trained on.
      at: the spawn steps (each a snapshot step of ``ens``).
      children: children per parent and spawn step (at least 2).
      steps: training steps of every child.
      key: the root key of the children's data orders.
      parents: the parent members' indices (default: every member); all of one learning rate.
      batch_size: the children's minibatch size (default: the parents'); full batch is refused,
        since children that see the same batches are identical.
      log_every: history interval of the children (default ``steps``: their start and end).
      snapshot_every: keep the children's snapshots every this many steps (``None``: none).
      execution: how to run it (:class:`~landscape.core.execution.Execution`); changes no number.

    Returns:
      the children's :class:`Ensemble` (``P · S · C`` members).

    Raises:
      ConfigError: a spawn step without a snapshot (with how to train one), parents of several
        learning rates, full-batch children, bad counts.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> ens = ls.train_ensemble(ls.MLP(hidden=(4,)), data, key=jax.random.key(0), seeds=2, loss="cross_entropy",
      ...                         steps=20, log_every=10, snapshot_every=10, batch_size=16,
      ...                         optimizer=ls.OptimizerSpec("sgd", 0.5), execution=ls.Execution(progress=False))
      >>> kids = ls.train.spawn(ens, data, at=[0, 10], children=2, steps=10, key=jax.random.key(1),
      ...                       execution=ls.Execution(progress=False))
      >>> kids.num_members, kids.config["spawn"]["member_step"][:4]      # parent, then step, then child
      (8, [0, 0, 10, 10])
    """
    if not isinstance(ens, Ensemble):
        raise ConfigError(f"spawn needs a trained Ensemble, got {type(ens).__name__}")
    at = [int(s) for s in np.atleast_1d(np.asarray(at))]
    if not at:
        raise ConfigError("spawn: give at least one spawn step")
    if len(set(at)) != len(at):
        raise ConfigError(f"spawn steps must be distinct, got {at}")
    if isinstance(children, bool) or not isinstance(children, (int, np.integer)) or children < 2:
        raise ConfigError(f"spawn needs at least 2 children per parent and step (their barrier), got {children!r}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ConfigError(f"children's steps must be a positive integer, got {steps!r}")
    traj = ens.trajectory
    have = [] if traj is None else [int(s) for s in traj.step]
    missing = [s for s in at if s not in have]
    if missing:
        where = (f"its snapshots are at steps {', '.join(map(str, have))}" if have else "it kept no snapshots")
        raise ConfigError(f"no snapshot at spawn step(s) {', '.join(map(str, missing))}: {where}; train the parents "
                          "with snapshot_every= (landscape train --snapshot-every N) dividing every spawn step")
    idx = list(range(ens.num_members)) if parents is None else [int(i) for i in parents]
    if not idx or min(idx) < 0 or max(idx) >= ens.num_members or len(set(idx)) != len(idx):
        raise ConfigError(f"parents must be distinct member indices in [0, {ens.num_members}), got {parents!r}")
    lrs = np.asarray(ens.learning_rates, float)[idx]
    if lrs.size > 1 and not np.allclose(lrs, lrs[0], equal_nan=True):
        raise ConfigError("spawn children of parents of one learning rate at a time (these have "
                          f"{', '.join(f'{v:g}' for v in np.unique(lrs))})")
    lr = float(lrs[0])
    cfg = ens.config.get("optimizer", {})
    if "spec" not in cfg:
        raise ConfigError("the children train with their parents' optimizer, which is not a named one here (an "
                          "optax object or a factory was passed to train_ensemble): train the parents with an "
                          "OptimizerSpec")
    optimizer = OptimizerSpec.from_dict(cfg["spec"])
    if np.isfinite(lr):
        optimizer = dataclasses.replace(optimizer, learning_rate=lr)
    batch_size = ens.config.get("batch_size") if batch_size is None else batch_size
    if batch_size is None or batch_size >= data.train.x.shape[0]:
        raise ConfigError("the parents trained with full-batch gradient descent: children that see the same "
                          "batches are identical; give the children a batch_size")
    c = int(children)
    pos = {s: have.index(s) for s in at}
    member_parent = np.repeat(idx, len(at) * c)
    member_step = np.tile(np.repeat(at, c), len(idx))
    member_child = np.tile(np.arange(c), len(idx) * len(at))
    starts = jax.tree_util.tree_map(
        lambda a: np.asarray(a)[member_parent, [pos[s] for s in member_step]], traj.params)
    kids = train_ensemble(ens.model, data, key=key, seeds=np.arange(member_parent.size), optimizer=optimizer,
                          loss=ens.config["loss"], steps=int(steps), batch_size=int(batch_size),
                          log_every=int(steps if log_every is None else log_every), starts=starts,
                          snapshot_every=snapshot_every, execution=execution)
    layout = {"parents": [int(i) for i in idx], "parent_seeds": [int(ens.seeds[i]) for i in idx],
              "learning_rate": lr if np.isfinite(lr) else None, "at": at, "children": c,
              "member_parent": [int(i) for i in member_parent], "member_step": [int(s) for s in member_step],
              "member_child": [int(i) for i in member_child]}
    return dataclasses.replace(kids, config={**kids.config, "spawn": layout})
