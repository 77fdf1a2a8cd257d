"""Named optimizer configurations that can be stored in run metadata and rebuilt.

A :class:`OptimizerSpec` is a frozen, JSON-serialisable description of an optax optimizer.
``spec.build(learning_rate)`` accepts a traced learning rate, so one compiled training
function can sweep learning rates as a vmapped axis.  An :class:`OptimizerChoice` goes one
step further: several optimizers in one compiled program, each member of an ensemble using
the one its (traced) index names — the optimizer races of ``landscape race``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import optax

from ..core.errors import ConfigError

__all__ = ["OPTIMIZERS", "OptimizerSpec", "OptimizerChoice", "parse", "check_learning_rate"]

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop")
#: The settings besides the learning rate that each named optimizer uses.
USES = {"sgd": (), "momentum": ("momentum",), "nesterov": ("momentum",), "adam": (), "adamw": ("weight_decay",),
        "rmsprop": ("momentum",)}


@dataclasses.dataclass(frozen=True)
class OptimizerSpec:
    """An optax optimizer by name.

    Attributes:
      name: ``sgd`` (plain gradient descent), ``momentum`` (heavy ball), ``nesterov``,
        ``adam``, ``adamw`` or ``rmsprop``.
      learning_rate: step size (the default of a learning-rate sweep's grid is separate).
      momentum: momentum coefficient for ``momentum`` / ``nesterov`` / ``rmsprop``.
      weight_decay: decoupled weight decay for ``adamw``.

    Examples:
      >>> spec = ls.OptimizerSpec("momentum", 0.1)
      >>> spec.build()                                          # an optax.GradientTransformation
      GradientTransformationExtraArgs(...)
    """

    name: str = "sgd"
    learning_rate: float = 1.0
    momentum: float = 0.9
    weight_decay: float = 1e-4

    def __post_init__(self):
        if self.name not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.name!r}; choose from {', '.join(OPTIMIZERS)}")
        check_learning_rate(self.learning_rate)
        if not (0.0 <= float(self.momentum) < 1.0):
            raise ConfigError(f"momentum must lie in [0, 1), got {self.momentum}")
        if not (math.isfinite(float(self.weight_decay)) and self.weight_decay >= 0):
            raise ConfigError(f"weight_decay must be finite and >= 0, got {self.weight_decay}")

    def build(self, learning_rate: Any = None) -> optax.GradientTransformation:
        """The optax transformation; ``learning_rate`` (may be a tracer) overrides the spec's.

        Args:
          learning_rate: the step size (default: the spec's own); may be a tracer, so a vmapped
            learning-rate sweep compiles once.

        Returns:
          an ``optax.GradientTransformation``.
        """
        lr = self.learning_rate if learning_rate is None else learning_rate
        if self.name == "sgd":
            return optax.sgd(lr)
        if self.name == "momentum":
            return optax.sgd(lr, momentum=self.momentum)
        if self.name == "nesterov":
            return optax.sgd(lr, momentum=self.momentum, nesterov=True)
        if self.name == "adam":
            return optax.adam(lr)
        if self.name == "adamw":
            return optax.adamw(lr, weight_decay=self.weight_decay)
        return optax.rmsprop(lr, momentum=self.momentum)

    def to_dict(self) -> dict:
        """JSON-ready fields: the name, the learning rate and only the settings this optimizer
        uses (plain SGD records no momentum, only ``adamw`` a weight decay), so that a run's
        ``meta.json`` never shows a setting as if it had been applied."""
        return {"name": self.name, "learning_rate": self.learning_rate,
                **{k: getattr(self, k) for k in USES[self.name]}}

    @classmethod
    def from_dict(cls, d: dict) -> OptimizerSpec:
        """Inverse of :meth:`to_dict`.

        Args:
          d: a dict from :meth:`to_dict` (or an older one with every field).

        Returns:
          the spec.
        """
        return cls(**d)


@dataclasses.dataclass(frozen=True)
class OptimizerChoice:
    """Several optimizers in one program: member ``m`` of an ensemble uses ``specs[choice[m]]``.

    Every member's optimizer state holds a slot for each optimizer (zeros for the unused
    ones: a few parameter-sized arrays per member); each update computes every optimizer's
    step and keeps the chosen one (:func:`jax.lax.select_n`), so a vmapped ensemble can race
    SGD against Adam in one compiled call.  A member's parameters are those of the chosen
    optimizer run alone, up to float32 rounding of the fused program.

    Attributes:
      specs: the optimizers, in the order ``choice`` indexes them (at least one).  Their
        ``learning_rate`` is each one's default; the training loop passes every member's
        own learning rate (a traced value).

    Examples:
      >>> choice = ls.optim.OptimizerChoice((ls.OptimizerSpec("sgd", 0.5), ls.OptimizerSpec("adam", 0.01)))
      >>> len(choice.specs)
      2
    """

    specs: tuple[OptimizerSpec, ...]

    def __post_init__(self):
        specs = tuple(self.specs)
        if not specs or not all(isinstance(s, OptimizerSpec) for s in specs):
            raise ConfigError("an OptimizerChoice needs one or more OptimizerSpec")
        object.__setattr__(self, "specs", specs)

    def build(self, learning_rate: Any, choice: Any) -> optax.GradientTransformation:
        """The transformation of optimizer ``choice`` (an int, may be traced) at ``learning_rate``.

        Args:
          learning_rate: the member's step size (scalar, may be traced).
          choice: index into :attr:`specs` (scalar int, may be traced).

        Returns:
          an optax ``GradientTransformation`` whose state is a tuple of every optimizer's state.
        """
        parts = [s.build(learning_rate) for s in self.specs]
        choice = jnp.asarray(choice, jnp.int32)

        def init(params):
            return tuple(p.init(params) for p in parts)

        def update(updates, state, params=None):
            outs = [p.update(updates, s, params) for p, s in zip(parts, state)]
            chosen = jax.tree_util.tree_map(lambda *u: jax.lax.select_n(choice, *u), *[o[0] for o in outs])
            kept = tuple(
                jax.tree_util.tree_map(lambda new, old, i=i: jnp.where(choice == i, new, old), o[1], s)
                for i, (o, s) in enumerate(zip(outs, state)))
            return chosen, kept

        return optax.GradientTransformation(init, update)

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        return {"choices": [s.to_dict() for s in self.specs]}


def parse(text: str, *, learning_rate: float = 1.0, momentum: float = 0.9) -> OptimizerSpec:
    """An optimizer from a command-line word: ``NAME`` or ``NAME@LR`` (``adam@0.01``).

    Args:
      text: the word.
      learning_rate: the learning rate when the word names none.
      momentum: the momentum of ``momentum``, ``nesterov`` and ``rmsprop``.

    Returns:
      the :class:`OptimizerSpec`.

    Raises:
      ConfigError: an unknown name or a bad learning rate.

    Examples:
      >>> ls.optim.parse("adam@0.01")
      OptimizerSpec(name='adam', learning_rate=0.01, momentum=0.9, weight_decay=0.0001)
      >>> ls.optim.parse("sgd", learning_rate=3.0).learning_rate
      3.0
    """
    name, _, lr = text.strip().partition("@")
    if lr:
        try:
            learning_rate = float(lr)
        except ValueError:
            raise ConfigError(f"bad learning rate in {text!r}; write NAME@LR, e.g. adam@0.01") from None
    return OptimizerSpec(name, learning_rate, momentum=momentum)


def check_learning_rate(lr) -> None:
    """Refuse a learning rate that is not a finite positive number with one clear line.

    Args:
      lr: the learning rate.

    Raises:
      ConfigError: ``lr`` is not finite and positive.

    Examples:
      >>> ls.optim.check_learning_rate(0.1)
      >>> ls.optim.check_learning_rate(0.0)
      Traceback (most recent call last):
      ...
      landscape.core.errors.ConfigError: learning rate must be a finite positive number, got 0.0
    """
    try:
        ok = math.isfinite(float(lr)) and float(lr) > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(f"learning rate must be a finite positive number, got {lr!r}")
