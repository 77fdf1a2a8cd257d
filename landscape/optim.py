"""Named optimizer configurations that can be stored in run metadata and rebuilt.

A :class:`OptimizerSpec` is a frozen, JSON-serialisable description of an optax optimizer.
``spec.build(learning_rate)`` accepts a traced learning rate, so one compiled training
function can sweep learning rates as a vmapped axis.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import optax

from .errors import ConfigError

__all__ = ["OPTIMIZERS", "OptimizerSpec"]

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop")


@dataclasses.dataclass(frozen=True)
class OptimizerSpec:
    """An optax optimizer by name.

    Attributes:
      name: ``sgd`` (plain gradient descent), ``momentum`` (heavy ball), ``nesterov``,
        ``adam``, ``adamw`` or ``rmsprop``.
      learning_rate: step size (the default of a learning-rate sweep's grid is separate).
      momentum: momentum coefficient for ``momentum`` / ``nesterov`` / ``rmsprop``.
      weight_decay: decoupled weight decay for ``adamw``.
    """

    name: str = "sgd"
    learning_rate: float = 1.0
    momentum: float = 0.9
    weight_decay: float = 1e-4

    def __post_init__(self):
        if self.name not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.name!r}; choose from {', '.join(OPTIMIZERS)}")
        _check_lr(self.learning_rate)
        if not (0.0 <= float(self.momentum) < 1.0):
            raise ConfigError(f"momentum must lie in [0, 1), got {self.momentum}")
        if not (math.isfinite(float(self.weight_decay)) and self.weight_decay >= 0):
            raise ConfigError(f"weight_decay must be finite and >= 0, got {self.weight_decay}")

    def build(self, learning_rate: Any = None) -> optax.GradientTransformation:
        """The optax transformation; ``learning_rate`` (may be a tracer) overrides the spec's."""
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
        """JSON-ready fields."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> OptimizerSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(**d)


def _check_lr(lr) -> None:
    try:
        ok = math.isfinite(float(lr)) and float(lr) > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(f"learning rate must be a finite positive number, got {lr!r}")
