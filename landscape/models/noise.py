"""A model with random layers (dropout) evaluated in training mode with one fixed noise key: a
stochastic landscape (:func:`with_noise`).  Landscapes evaluate in evaluation mode unless asked.
"""

from __future__ import annotations

import jax

from ..core.errors import ConfigError
from .adapters import FlaxModel, input_shape
from .resolve import as_model

__all__ = ["with_noise"]


def with_noise(model, key: jax.Array) -> FlaxModel:
    """A model with random streams as a plain ``apply(params, x)`` in *training* mode, every call
    drawing its noise from the same ``key``: the loss a training step would see with those masks,
    a deterministic function of the parameters (common random numbers), so a surface, a Hessian
    or a barrier of it is the landscape of one fixed draw of the noise (the "stochastic
    landscape"; Srivastava et al. 2014 for dropout's training-mode network).

    The masks are drawn for the whole batch an ``apply`` is given: the same ``x`` and ``key``
    give the same masks.  A model with BatchNorm is in training mode throughout, so it uses the
    statistics of the batch it evaluates (not its running averages).

    Args:
      model: a bound model with :attr:`~landscape.models.FlaxModel.random_streams`.
      key: the fixed noise key.

    Returns:
      a bound :class:`~landscape.models.FlaxModel` without state or streams.

    Raises:
      ConfigError: the model draws no random numbers (it has no training-mode noise to fix).

    Examples:
      >>> import flax.linen as nn
      >>> class Net(nn.Module):
      ...     @nn.compact
      ...     def __call__(self, x, train=False):
      ...         return nn.Dense(3)(nn.Dropout(0.5, deterministic=not train)(x))
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> net = ls.models.as_model(Net()).for_data(data)
      >>> params = net.init(jax.random.key(0))
      >>> noisy = ls.models.with_noise(net, jax.random.key(7))
      >>> bool(jnp.array_equal(noisy.apply(params, data.test.x), noisy.apply(params, data.test.x)))  # one draw
      True
      >>> bool(jnp.array_equal(noisy.apply(params, data.test.x), net.apply(params, data.test.x)))    # not eval mode
      False
    """
    model = as_model(model)
    model._require_bound()
    name = getattr(model, "name", type(model).__name__)
    if not getattr(model, "random_streams", ()):
        raise ConfigError(f"{name} draws no random numbers in training mode (no dropout or other random stream): "
                          "there is no noise to fix; evaluate it as it is")
    state = model.init_state(jax.random.key(0))  # training mode: BatchNorm uses batch statistics, not these

    def apply(params, xs):
        return model.apply_train(params, state, xs, rng=key)[0]

    return FlaxModel(lambda k, x0: model.init(k), apply, f"{name} (training mode, fixed noise)", input_shape(model),
                     model.out_features)
