"""What the built-in models share: activations, initialisers, option checks, the state protocol
of a model without state, and the binding of image models to a data set.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ..core.errors import ConfigError

__all__ = ["ACTIVATIONS", "INITIALIZERS"]


ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "gelu": jax.nn.gelu,
    "identity": lambda x: x,
}

INITIALIZERS: dict[str, Callable[[], Any]] = {
    # Flax's default for Dense: LeCun normal (truncated normal, variance 1/fan_in).
    "lecun_normal": nn.initializers.lecun_normal,
    "glorot_uniform": nn.initializers.glorot_uniform,
    "glorot_normal": nn.initializers.glorot_normal,
    "he_normal": nn.initializers.he_normal,
    # The textbook choice of the classic sigmoid networks: every weight ~ N(0, 1).
    "normal": lambda: nn.initializers.normal(stddev=1.0),
}


def output_fn(name: str) -> Callable[[jax.Array], jax.Array]:
    """The output non-linearity ``name``; ``"auto"`` must have been decided by the loss first."""
    if name == "auto":
        raise ConfigError("output_activation='auto' is decided by the loss (sigmoid for mse, identity for "
                          "cross_entropy): train with train_ensemble, evaluate with metrics_fn / loss_fn, or call "
                          "landscape.models.for_loss(model, loss) first")
    return ACTIVATIONS[name]


def for_init(model):
    """``model`` with an undecided output non-linearity set to identity: initial parameters do
    not depend on it."""
    return dataclasses.replace(model, output_activation="identity") if model.output_activation == "auto" else model


def check_units(activation: str, output_activation: str, kernel_init: str) -> None:
    """The options the built-in models share, validated with one clear message each."""
    if activation not in ACTIVATIONS or activation == "identity":
        raise ConfigError(f"unknown activation {activation!r}; choose from sigmoid, tanh, relu, gelu")
    if output_activation not in ("auto", "identity", "sigmoid"):
        raise ConfigError(f"output_activation must be 'auto', 'identity' or 'sigmoid', got {output_activation!r}")
    if kernel_init not in INITIALIZERS:
        raise ConfigError(f"unknown kernel_init {kernel_init!r}; choose from {', '.join(INITIALIZERS)}")


def known_fields(cls, d: dict) -> dict:
    """``d`` if every key is a field of the dataclass ``cls`` (a stored configuration), else a ConfigError."""
    unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ConfigError(f"unknown model fields {sorted(unknown)}")
    return dict(d)


class Stateless:
    """The state protocol of a model without mutable state: every model offers
    ``init_state(key) -> state``, ``apply_train(params, state, x) -> (outputs, state)`` and
    ``apply_eval(params, state, x) -> outputs``; here the state is ``{}`` and both are ``apply``.
    A model with random layers also has ``random_streams`` and takes ``apply_train(..., rng=key)``."""

    stateful = False  # a class attribute, not a dataclass field

    def init_state(self, key: jax.Array) -> dict:
        """No state: ``{}``."""
        return {}

    def apply_train(self, params, state, x: jax.Array, rng: jax.Array | None = None):
        """Outputs for a training step and the (empty) state (``rng``: no random layers, ignored)."""
        return self.apply(params, x), state

    def apply_eval(self, params, state, x: jax.Array) -> jax.Array:
        """Outputs for evaluation."""
        return self.apply(params, x)

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        """No state arrays."""
        return {}


class ImageModel:
    """Binding of the built-in image models (``image_shape`` and ``out_features`` fields)."""

    def for_data(self, data):
        """This configuration bound to an image :class:`~landscape.data.Dataset`.

        Raises:
          ConfigError: the data set is not a set of images, or not the one bound before.
        """
        if data.image_shape is None:
            raise ConfigError(f"a {type(self).__name__} needs images; data set {data.name!r} holds feature vectors "
                              "(no image_shape)")
        if self.image_shape not in (None, data.image_shape) or self.out_features not in (None, data.num_classes):
            raise ConfigError(f"model expects images {self.image_shape} and {self.out_features} classes, data set "
                              f"{data.name!r} has {data.image_shape} and {data.num_classes}")
        return dataclasses.replace(self, image_shape=data.image_shape, out_features=data.num_classes)

    @property
    def in_features(self) -> int | None:
        """Inputs per example, ``H W C`` (``None`` until bound)."""
        return None if self.image_shape is None else math.prod(self.image_shape)

    def _require_bound(self):
        if self.image_shape is None or self.out_features is None:
            raise ConfigError("model is not bound to data: call model.for_data(dataset) first")
