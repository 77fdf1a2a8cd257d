"""Any model a user brings, as one of the model kinds (:func:`as_model`); built-in models from a
run's description; what a model's traced program says about it (:func:`convolutional`), and
the forward pass to compute with on this backend (:func:`lowered`).
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax

from ..core.conv_lowering import as_matmuls, contains_convolution
from ..core.errors import ConfigError
from .adapters import FlaxModel, forward_jaxpr, from_linen, from_nnx
from .cnn import CNN
from .mlp import MLP
from .resnet import ResNet

__all__ = ["BUILTIN", "model_from_dict", "as_model", "convolutional", "lowered"]


def convolutional(model) -> bool:
    """Whether a bound model's forward pass contains a convolution (read from its traced
    program, nested programs included, so it holds for user models too).

    Args:
      model: a bound model.

    Returns:
      a bool.

    Examples:
      >>> digits = ls.data.load("digits")
      >>> cnn = ls.CNN(output_activation="identity").for_data(digits)
      >>> ls.models.convolutional(cnn), ls.models.convolutional(ls.MLP(output_activation="identity").for_data(digits))
      (True, False)
    """
    model = as_model(model)
    try:
        return _has_conv(model)
    except TypeError:  # a model that cannot be a cache key: traced again
        return contains_convolution(forward_jaxpr(model))


@functools.lru_cache(maxsize=64)
def _has_conv(model) -> bool:
    return contains_convolution(forward_jaxpr(model))


def lowered(model, fn):
    """``fn`` — one of ``model``'s forward passes (``apply``, ``apply_eval``, ``apply_train``) —
    as it is best computed on this backend: on a CPU, a model with convolutions
    (:func:`convolutional`) has them computed as matrix products
    (:func:`landscape.core.conv_lowering.as_matmuls`: XLA:CPU's convolutions with per-member
    kernels and inside loops are several times slower than the same arithmetic as products);
    elsewhere, or without convolutions, ``fn`` itself (cuDNN's convolutions on a GPU).

    Args:
      model: a bound model.
      fn: one of its forward passes.

    Returns:
      a function with ``fn``'s signature and results (to float32 rounding where lowered).

    Examples:
      >>> digits = ls.data.load("digits")
      >>> cnn = ls.CNN(output_activation="identity").for_data(digits)
      >>> p = cnn.init(jax.random.key(0))
      >>> fast = ls.models.lowered(cnn, cnn.apply)           # on a CPU: no convolution left
      >>> bool(jnp.allclose(fast(p, digits.test.x), cnn.apply(p, digits.test.x), atol=1e-5))
      True
    """
    if jax.default_backend() != "cpu":
        return fn
    try:
        if not convolutional(model):
            return fn
    except (AttributeError, TypeError, ValueError, ConfigError):  # a view of a model: as_matmuls reads fn's own program
        pass
    return as_matmuls(fn)


#: The built-in models a run directory can describe, by the ``type`` it records.
BUILTIN = {"MLP": MLP, "CNN": CNN, "ResNet": ResNet}


def model_from_dict(d: dict):
    """A built-in model from a run's ``{"type": ..., **to_dict()}`` description.

    Args:
      d: the run's model description.

    Returns:
      an :class:`MLP`, :class:`CNN` or :class:`ResNet`.

    Raises:
      ConfigError: an unknown type or invalid fields.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> model = ls.MLP(hidden=(4,), output_activation="identity").for_data(data)
      >>> ls.models.model_from_dict({"type": "MLP", **model.to_dict()}) == model   # as a run stores it
      True
    """
    d = dict(d)
    kind = d.pop("type", None)
    if kind not in BUILTIN:
        raise ConfigError(f"unknown model type {kind!r}; a run can hold {', '.join(BUILTIN)}")
    return BUILTIN[kind].from_dict(d)


def as_model(model) -> MLP | CNN | ResNet | FlaxModel:
    """What :func:`landscape.train.train_ensemble` trains: the built-in :class:`MLP` as it is, a
    Flax Linen module (``module.init`` / ``module.apply`` on a batch of inputs), a pair
    ``(init(key) -> params, apply(params, x) -> outputs)``, or a Flax NNX model given as a
    factory ``lambda rngs: Net(..., rngs=rngs)`` (its ``nnx.Param`` state, as nested dicts, is
    the parameter pytree).

    Args:
      model: any of the above.

    Raises:
      ConfigError: anything else (the message says what is accepted).

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> init = lambda key: {"w": jax.random.normal(key, (2, 3))}
      >>> apply = lambda p, x: x @ p["w"]
      >>> model = ls.models.as_model((init, apply)).for_data(data)   # a plain pair of functions
      >>> model.apply(model.init(jax.random.key(0)), data.test.x).shape
      (32, 3)
    """
    if isinstance(model, (MLP, CNN, ResNet, FlaxModel)):
        return model
    if isinstance(model, nn.Module):
        return from_linen(model)
    if isinstance(model, tuple) and len(model) == 2 and all(callable(f) for f in model):
        init, apply = model
        return FlaxModel(lambda key, x: init(key), apply, "init/apply pair")
    if callable(model) and (not isinstance(model, type) or _is_nnx_class(model)):
        return from_nnx(model)  # a factory rngs -> nnx.Module, or an NNX class built as Net(rngs)
    raise ConfigError(f"a model must be a landscape.MLP, a flax.linen.Module, an (init, apply) pair or an NNX factory "
                      f"rngs -> nnx.Module; got {type(model).__name__}")


def _is_nnx_class(cls) -> bool:
    from flax import nnx

    return isinstance(cls, type) and issubclass(cls, nnx.Module)
