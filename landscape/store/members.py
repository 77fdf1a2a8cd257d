"""Members of an ensemble, addressed as (seed, learning rate): selection, labels, health.

A run that sweeps learning rates holds one member per (seed, learning rate).  Everything that
names, selects, tabulates or colours members goes through here, so that no report, table,
figure or median ever looks a member up by its seed alone or pools the rates.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..core.errors import ConfigError

__all__ = ["swept", "rates", "select", "label", "labels", "tag", "analysable", "warnings", "rate_groups"]


def rates(ens) -> np.ndarray:
    """The distinct learning rates of the run, sorted (empty when none is recorded).

    Args:
      ens: a trained :class:`~landscape.train.Ensemble` (or a loaded run).

    Returns:
      ``(L,)`` float.

    Examples:
      >>> from landscape.store import members
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> ens = ls.train_ensemble(ls.MLP(hidden=(4,)), data, key=jax.random.key(0), seeds=3,
      ...                         loss="cross_entropy", steps=20, log_every=10, execution=ls.Execution(progress=False))
      >>> members.rates(ens).tolist()
      [1.0]
    """
    lrs = np.asarray(ens.learning_rates, np.float64)
    return np.unique(lrs[np.isfinite(lrs)])


def swept(ens) -> bool:
    """Whether the run swept several learning rates.

    Args:
      ens: a trained :class:`~landscape.train.Ensemble` (or a loaded run).

    Returns:
      a bool.

    Examples:
      >>> from landscape.store import members
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> ens = ls.train_ensemble(ls.MLP(hidden=(4,)), data, key=jax.random.key(0), seeds=3,
      ...                         loss="cross_entropy", steps=20, log_every=10, execution=ls.Execution(progress=False))
      >>> members.swept(ens)                   # one learning rate
      False
    """
    return rates(ens).size > 1


def select(ens, seeds: str | Sequence[int] | int = "0", lr: float | None = None, count: int | None = None) -> list[int]:
    """Member indices named by seeds (and a learning rate when the run swept several).

    Args:
      ens: the ensemble.
      seeds: ``"all"``, ``"0,1,2"``, an int or a sequence of ints.
      lr: the learning rate of the members (required for named seeds of a sweep; with
        ``"all"`` it keeps that rate's members only).
      count: the number of members required, if any.

    Returns:
      member indices ``[i, ...]`` in the order asked.

    Raises:
      ConfigError: unknown or repeated seeds, a missing learning rate, a wrong count.

    Examples:
      >>> from landscape.store import members
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> ens = ls.train_ensemble(ls.MLP(hidden=(4,)), data, key=jax.random.key(0), seeds=3,
      ...                         loss="cross_entropy", steps=20, log_every=10, execution=ls.Execution(progress=False))
      >>> members.select(ens, "0,2"), members.select(ens, "all")
      ([0, 2], [0, 1, 2])
    """
    if isinstance(seeds, str) and seeds.strip() == "all":
        lrs = np.asarray(ens.learning_rates, np.float64)
        idx = list(range(ens.num_members)) if lr is None else [i for i in range(ens.num_members)
                                                                if np.isclose(lrs[i], lr)]
        if not idx:
            raise ConfigError(f"no member has learning rate {lr}")
    else:
        if isinstance(seeds, str):
            try:
                wanted = [int(t) for t in seeds.split(",")]
            except ValueError:
                raise ConfigError(f"seeds must be comma-separated integers, got {seeds!r}") from None
        else:
            wanted = [int(seeds)] if np.isscalar(seeds) else [int(s) for s in seeds]
        if len(set(wanted)) != len(wanted):
            raise ConfigError(f"seeds must be distinct, got {seeds!r}")
        idx = [ens.index(s, lr) for s in wanted]
    if count is not None and len(idx) != count:
        raise ConfigError(f"expected {count} seed(s), got {len(idx)}: {seeds!r}")
    return idx


def label(ens, i: int) -> str:
    """``"seed 3"``, or ``"seed 3, lr 0.5"`` when the run swept learning rates.

    Args:
      ens: a trained :class:`~landscape.train.Ensemble` (or a loaded run).
      i: a member index.

    Returns:
      the label.

    Examples:
      >>> from landscape.store import members
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> ens = ls.train_ensemble(ls.MLP(hidden=(4,)), data, key=jax.random.key(0), seeds=3,
      ...                         loss="cross_entropy", steps=20, log_every=10, execution=ls.Execution(progress=False))
      >>> members.label(ens, 1)
      'seed 1'
    """
    return f"seed {int(ens.seeds[i])}" + (f", lr {float(ens.learning_rates[i]):g}" if swept(ens) else "")


def labels(ens, idx: Sequence[int]) -> list[str]:
    """:func:`label` of each member of ``idx``.

    Args:
      ens: a trained :class:`~landscape.train.Ensemble` (or a loaded run).
      idx: member indices.

    Returns:
      one label per index.

    Examples:
      >>> from landscape.store import members
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> ens = ls.train_ensemble(ls.MLP(hidden=(4,)), data, key=jax.random.key(0), seeds=3,
      ...                         loss="cross_entropy", steps=20, log_every=10, execution=ls.Execution(progress=False))
      >>> members.labels(ens, [0, 2])
      ['seed 0', 'seed 2']
    """
    return [label(ens, i) for i in idx]


def tag(ens, idx: Sequence[int]) -> str:
    """A file-name tag of members: ``seed0``, ``seeds0-1-2``, ``seed0lr0.5``, ``12members``.

    Args:
      ens: a trained :class:`~landscape.train.Ensemble` (or a loaded run).
      idx: member indices.

    Returns:
      the tag.

    Examples:
      >>> from landscape.store import members
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> ens = ls.train_ensemble(ls.MLP(hidden=(4,)), data, key=jax.random.key(0), seeds=3,
      ...                         loss="cross_entropy", steps=20, log_every=10, execution=ls.Execution(progress=False))
      >>> members.tag(ens, [0, 1, 2]), members.tag(ens, [0, 2])   # for file names
      ('seeds0-1-2', 'seeds0-2')
    """
    parts = [label(ens, i).replace("seed ", "").replace(", lr ", "lr") for i in idx]
    if len(idx) == 1:
        return f"seed{parts[0]}"
    return "seeds" + "-".join(parts) if len(idx) <= 4 else f"{len(idx)}members"


def rate_groups(ens, idx: Sequence[int]) -> tuple[np.ndarray, list[str]] | None:
    """``(group (len(idx),) ints, names ["lr 0.1", ...])`` colouring members by learning rate;
    ``None`` when the run has one rate.

    Args:
      ens: a trained :class:`~landscape.train.Ensemble` (or a loaded run).
      idx: member indices.

    Examples:
      >>> from landscape.store import members
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> ens = ls.train_ensemble(ls.MLP(hidden=(4,)), data, key=jax.random.key(0), seeds=3,
      ...                         loss="cross_entropy", steps=20, log_every=10, execution=ls.Execution(progress=False))
      >>> members.rate_groups(ens, [0, 1]) is None   # a single learning rate: no groups
      True
    """
    if not swept(ens):
        return None
    r = rates(ens)
    lrs = np.asarray(ens.learning_rates, np.float64)[list(idx)]
    group = np.array([int(np.argmin(np.abs(r - v))) if np.isfinite(v) else 0 for v in lrs])
    return group, [f"lr {v:g}" for v in r]


def analysable(ens, lr: float | None = None, *, include_unlearned: bool = False
               ) -> tuple[list[int], list[int], list[int]]:
    """Members to compare: ``(kept, diverged, not_learned)`` member indices.

    ``kept`` holds the members (of learning rate ``lr``) that neither diverged nor failed to
    learn (:func:`landscape.train.learned`): barriers and basins between members that never
    left their start are meaningless (barriers of 1e8 and one "basin").  With
    ``include_unlearned`` the members that did not learn are kept too (still listed third).

    Args:
      ens: a trained :class:`~landscape.train.Ensemble` (or a loaded run).
      lr: the learning rate to compare at (required when the run swept several).
      include_unlearned: keep the members that did not learn.

    Raises:
      ConfigError: the run swept learning rates and ``lr`` is not given; nothing is left.

    Examples:
      >>> from landscape.store import members
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> ens = ls.train_ensemble(ls.MLP(hidden=(4,)), data, key=jax.random.key(0), seeds=3,
      ...                         loss="cross_entropy", steps=20, log_every=10, execution=ls.Execution(progress=False))
      >>> members.analysable(ens)             # (kept, diverged, did not learn)
      ([0, 1, 2], [], [])
    """
    from ..training.ensemble import learned

    if lr is None and swept(ens):
        raise ConfigError("the run swept several learning rates: choose one with --lr (lr=)")
    lrs = np.asarray(ens.learning_rates, np.float64)
    of_rate = np.ones(ens.num_members, bool) if lr is None else np.isclose(lrs, lr)
    if not of_rate.any():
        raise ConfigError(f"no member has learning rate {lr}")
    good = learned(ens)
    bad = np.asarray(ens.diverged, bool)
    kept = [int(i) for i in np.flatnonzero(of_rate & (good | (~bad if include_unlearned else False)))]
    diverged = [int(i) for i in np.flatnonzero(of_rate & bad)]
    stalled = [int(i) for i in np.flatnonzero(of_rate & ~bad & ~good)]
    if not kept:
        raise ConfigError("no member to analyse: every selected member diverged or did not learn "
                          f"({len(diverged)} diverged, {len(stalled)} did not learn)")
    return kept, diverged, stalled


def warnings(ens, idx: Sequence[int]) -> list[str]:
    """One line per member of ``idx`` that diverged or did not learn (empty when all are healthy);
    every analysis of such a member records and prints these.

    Args:
      ens: a trained :class:`~landscape.train.Ensemble` (or a loaded run).
      idx: member indices.

    Returns:
      the lines.

    Examples:
      >>> from landscape.store import members
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> ens = ls.train_ensemble(ls.MLP(hidden=(4,)), data, key=jax.random.key(0), seeds=3,
      ...                         loss="cross_entropy", steps=20, log_every=10, execution=ls.Execution(progress=False))
      >>> members.warnings(ens, [0, 1])       # one line per member that diverged or did not learn
      []
    """
    from ..training.ensemble import learned

    good = learned(ens)
    out = []
    for i in idx:
        if ens.diverged[i]:
            out.append(f"{label(ens, i)} diverged at step {int(ens.diverged_step[i])}: its parameters are the "
                       "last finite ones, not a minimum")
        elif not good[i]:
            out.append(f"{label(ens, i)} did not learn (training accuracy {float(ens.history.train_accuracy[i, -1]):.3f},"
                       f" loss {float(ens.history.train_loss[i, -1]):.4g}): this is not a trained minimum")
    return out
