"""What training returns: an :class:`Ensemble` of members with its :class:`History` and
:class:`Trajectory`, and the summaries read from it (which members learned, one line each).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

from ..core import tree
from ..core.errors import ConfigError

__all__ = ["LEARNED_MARGIN", "History", "Trajectory", "Ensemble", "learned", "status", "summarize"]

METRICS = ("train_loss", "train_accuracy", "test_loss", "test_accuracy")


#: A member learned when its final training accuracy beats always answering the most frequent
#: class by more than this (and its loss fell): see :func:`learned`.
LEARNED_MARGIN = 0.05


@dataclasses.dataclass(frozen=True, eq=False)
class History:
    """Metrics every ``log_every`` steps.

    ``step``: ``(T,)`` step numbers (0 = before training).  ``train_loss``, ``train_accuracy``,
    ``test_loss``, ``test_accuracy``: ``(M, T)`` per member, on the full splits.

    Attributes:
      step: ``(T,)`` the logged steps.
      train_loss: ``(M, T)``.
      train_accuracy: ``(M, T)``.
      test_loss: ``(M, T)``.
      test_accuracy: ``(M, T)``.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> ens = ls.train_ensemble(ls.MLP(hidden=(4,)), data, key=jax.random.key(0), seeds=3,
      ...                         loss="cross_entropy", steps=20, log_every=10, execution=ls.Execution(progress=False))
      >>> ens.history.step.tolist(), ens.history.train_loss.shape     # (members, logged steps)
      ([0, 10, 20], (3, 3))
    """

    step: np.ndarray
    train_loss: np.ndarray
    train_accuracy: np.ndarray
    test_loss: np.ndarray
    test_accuracy: np.ndarray

    def arrays(self) -> dict[str, np.ndarray]:
        """All fields as a ``{name: array}`` dict."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclasses.dataclass(frozen=True, eq=False)
class Trajectory:
    """Parameter snapshots: ``step (K,)`` and ``params``, a pytree with leaves ``(M, K, ...)``.

    Attributes:
      step: ``(K,)`` the snapshot steps.
      params: parameter pytree with leaves ``(M, K, ...)``.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> ens = ls.train_ensemble(ls.MLP(hidden=(4,)), data, key=jax.random.key(0), seeds=2, loss="cross_entropy",
      ...                         steps=20, log_every=10, snapshot_every=10, execution=ls.Execution(progress=False))
      >>> ens.trajectory.step.tolist(), ens.trajectory.params["Dense_0"]["kernel"].shape   # (M, K, ...)
      ([0, 10, 20], (2, 3, 2, 4))
    """

    step: np.ndarray
    params: Any

    def member(self, i: int) -> Any:
        """Snapshots of member ``i``: leaves ``(K, ...)``.

        Args:
          i: the member's index.

        Returns:
          its snapshots, leaves ``(K, ...)``.
        """
        return jax.tree_util.tree_map(lambda x: x[i], self.params)


@dataclasses.dataclass(frozen=True, eq=False)
class Ensemble:
    """A trained ensemble.

    Attributes:
      model: the bound model (:class:`~landscape.models.MLP`, ``CNN``, ``ResNet`` or a user's
        :class:`~landscape.models.FlaxModel`).
      params: parameter pytree with a leading member axis ``(M, ...)`` (numpy arrays).
      state: the members' model state, leaves ``(M, ...)`` (BatchNorm running statistics,
        ``{"batch_stats": ...}``); ``{}`` for a model without state.
      seeds: ``(M,)`` seed of each member.
      learning_rates: ``(M,)`` its learning rate.
      history: :class:`History`.
      trajectory: :class:`Trajectory` or ``None``.
      diverged: ``(M,)`` bool; a diverged member is frozen at its last finite parameters.
      diverged_step: ``(M,)`` the step whose update was non-finite, ``-1`` if none.
      config: JSON-ready training configuration (loss, steps, batch size, optimizer, data ...).
      timings: seconds spent compiling + running (``train_s``) and evaluating; how the
        members ran (``devices``, ``member_chunks``, ``concurrent_calls``: calls run at once
        from threads on a CPU); with tracking, ``tracking_s`` (one measured call of the
        tracking program times the tracked steps) and ``tracking_share`` (of ``train_s``).
      tracked: the curvature tracked during training (:class:`~landscape.train.Tracked`), or ``None``.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> ens = ls.train_ensemble(ls.MLP(hidden=(4,)), data, key=jax.random.key(0), seeds=3,
      ...                         loss="cross_entropy", steps=20, log_every=10, execution=ls.Execution(progress=False))
      >>> ens.num_members, ens.seeds.tolist(), ens.params["Dense_0"]["kernel"].shape   # member axis first
      (3, [0, 1, 2], (3, 2, 4))
      >>> ens.member(1)["Dense_0"]["kernel"].shape
      (2, 4)
    """

    model: Any
    params: Any
    state: Any
    seeds: np.ndarray
    learning_rates: np.ndarray
    history: History
    trajectory: Trajectory | None
    diverged: np.ndarray
    diverged_step: np.ndarray
    config: dict
    timings: dict = dataclasses.field(default_factory=dict)
    tracked: Any = None

    @property
    def num_members(self) -> int:
        """Number of members ``M`` (seeds × learning rates)."""
        return int(self.seeds.shape[0])

    def member(self, i: int) -> Any:
        """Parameters of member ``i`` (no member axis).

        Args:
          i: the member's index (:meth:`index` finds it from a seed).

        Returns:
          a parameter pytree.
        """
        return tree.take(self.params, i)

    def member_state(self, i: int) -> Any:
        """Model state of member ``i`` (no member axis; ``{}`` without state).

        Args:
          i: the member's index.

        Returns:
          a state pytree.
        """
        return tree.take(self.state, i)

    def index(self, seed: int, learning_rate: float | None = None) -> int:
        """Member index of ``seed`` (and ``learning_rate`` when the run swept several).

        Args:
          seed: the member's seed.
          learning_rate: its learning rate (needed only when the run swept several).

        Returns:
          the index into the member axis.

        Raises:
          ConfigError: no such member, or several (a sweep without ``learning_rate``).
        """
        mask = self.seeds == seed
        if learning_rate is not None:
            mask &= np.isclose(self.learning_rates, learning_rate)
        idx = np.flatnonzero(mask)
        if idx.size == 0:
            if learning_rate is not None and np.any(self.seeds == seed):
                raise ConfigError(f"no member with seed {seed} and learning rate {learning_rate:g} "
                                  f"(learning rates {', '.join(f'{v:g}' for v in np.unique(self.learning_rates))})")
            raise ConfigError(f"seed {seed} is not in this ensemble (seeds {_range_text(self.seeds)})")
        if idx.size > 1:
            raise ConfigError(f"seed {seed} has {idx.size} learning rates; give one")
        return int(idx[0])


def _range_text(seeds: np.ndarray) -> str:
    u = np.unique(seeds)
    if u.size and np.array_equal(u, np.arange(u[0], u[0] + u.size)):
        return f"{u[0]}..{u[-1]}"
    return ",".join(map(str, u[:10])) + ("..." if u.size > 10 else "")


def learned(ens: Ensemble, *, margin: float = LEARNED_MARGIN) -> np.ndarray:
    """Which members learned anything: ``(M,)`` booleans.

    A member that did not diverge *did not learn* when its final training accuracy is no
    better than always answering the training set's most frequent class plus ``margin``
    (``majority_rate`` recorded with the data set; ``1 / num_classes`` for older runs), or
    when its final training loss is not below its loss at the first logged step.  Examples:
    sigmoid/MSE at a learning rate of 300 ends at 10 % accuracy with a *lower* loss (the
    outputs saturate); relu/cross-entropy at 50 ends at a loss of ~11, far above chance (2.3).
    Diverged members count as not learned.

    Args:
      ens: a trained or loaded ensemble.
      margin: accuracy above the majority rate that counts as learning.

    Returns:
      ``(M,)`` bool, ``False`` for diverged members.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> ens = ls.train_ensemble(ls.MLP(hidden=(4,)), data, key=jax.random.key(0), seeds=3,
      ...                         loss="cross_entropy", steps=20, log_every=10, execution=ls.Execution(progress=False))
      >>> ls.train.learned(ens).tolist()          # beat the constant predictor by the margin
      [True, True, True]
    """
    h = ens.history
    d = ens.config.get("data", {}) if isinstance(ens.config.get("data"), dict) else {}
    rate = d.get("majority_rate")
    if not isinstance(rate, (int, float)):
        k = d.get("num_classes")
        rate = 1.0 / k if isinstance(k, int) and k >= 2 else 0.0
    acc = np.asarray(h.train_accuracy[:, -1], np.float64)
    loss, first = np.asarray(h.train_loss[:, -1], np.float64), np.asarray(h.train_loss[:, 0], np.float64)
    with np.errstate(invalid="ignore"):
        ok = (acc > rate + margin) & (loss < first) & np.isfinite(loss)
    return ok & ~np.asarray(ens.diverged, bool)


def status(ens: Ensemble) -> list[str]:
    """Each member's status: ``"ok"``, ``"diverged at step N"`` or ``"did not learn"`` (:func:`learned`).

    Args:
      ens: a trained :class:`Ensemble`.

    Returns:
      one string per member.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> ens = ls.train_ensemble(ls.MLP(hidden=(4,)), data, key=jax.random.key(0), seeds=3,
      ...                         loss="cross_entropy", steps=20, log_every=10, execution=ls.Execution(progress=False))
      >>> ls.train.status(ens)
      ['ok', 'ok', 'ok']
    """
    good = learned(ens)
    return [f"diverged at step {int(ens.diverged_step[i])}" if ens.diverged[i] else
            ("ok" if good[i] else "did not learn") for i in range(ens.num_members)]


def summarize(ens: Ensemble) -> dict:
    """Final metrics per member and their spread, per learning rate, over the members that did
    not diverge.

    Returns ``{"members": [{seed, learning_rate, diverged, learned, status, train_loss, ...}, ...],
    "spread": {metric: {mean, std, min, max, median}}, "spread_by_lr": {lr: spread},
    "num_diverged", "num_not_learned", "num_members", "excluded": [{seed, learning_rate}],
    "not_learned": [{seed, learning_rate}]}``.  ``spread`` pools the members of every learning
    rate only when the run has one (otherwise it is empty and ``spread_by_lr`` holds the
    figures); a spread is empty when every member diverged.  Members that did not learn
    (:func:`learned`) are in the spread and counted in ``num_not_learned``.

    Args:
      ens: a trained :class:`Ensemble`.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> ens = ls.train_ensemble(ls.MLP(hidden=(4,)), data, key=jax.random.key(0), seeds=3,
      ...                         loss="cross_entropy", steps=20, log_every=10, execution=ls.Execution(progress=False))
      >>> s = ls.train.summarize(ens)
      >>> s["num_members"], s["num_diverged"], s["members"][2]["seed"]
      (3, 0, 2)
    """
    h = ens.history
    final = {m: getattr(h, m)[:, -1] for m in METRICS}
    good, states = learned(ens), status(ens)
    members = []
    for i in range(ens.num_members):
        lr = float(ens.learning_rates[i])
        members.append(
            {
                "seed": int(ens.seeds[i]),
                "learning_rate": None if np.isnan(lr) else lr,
                "diverged": bool(ens.diverged[i]),
                "diverged_step": int(ens.diverged_step[i]),
                "learned": bool(good[i]),
                "status": states[i],
                **{m: float(final[m][i]) for m in METRICS},
            }
        )
    def spread_of(mask):
        out = {}
        if mask.any():
            for m in METRICS:
                v = final[m][mask]
                out[m] = {"mean": float(np.mean(v)), "std": float(np.std(v)), "min": float(np.min(v)),
                          "median": float(np.median(v)), "max": float(np.max(v))}
        return out

    ok = ~np.asarray(ens.diverged, bool)
    lrs = np.asarray(ens.learning_rates, np.float64)
    rates = sorted({float(v) for v in lrs[~np.isnan(lrs)]})
    by_lr = {f"{r:g}": spread_of(ok & np.isclose(lrs, r)) for r in rates} if len(rates) > 1 else {}

    def who(mask):
        return [{"seed": int(ens.seeds[i]), "learning_rate": None if np.isnan(lrs[i]) else float(lrs[i])}
                for i in np.flatnonzero(mask)]

    return {
        "members": members,
        "spread": {} if by_lr else spread_of(ok),
        "spread_by_lr": by_lr,
        "num_members": ens.num_members,
        "num_diverged": int((~ok).sum()),
        "num_not_learned": int((ok & ~good).sum()),
        "excluded": who(~ok),
        "not_learned": who(ok & ~good),
    }
