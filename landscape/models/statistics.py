"""BatchNorm statistics at a point of parameter space: the running averages training kept, or
statistics recomputed for those parameters (:func:`with_statistics`).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..core.errors import ConfigError
from ..core.tree import key_paths
from .adapters import FlaxModel, input_shape
from .resolve import as_model

__all__ = ["STATISTICS", "with_statistics", "population_statistics", "running_average_rates"]


STATISTICS = ("recompute", "running")


def running_average_rates(model, x: jax.Array) -> Any:
    """The rate ``m`` of every state leaf's running average, ``new = m * old + (1 - m) * batch``.

    Measured, not read from the module: three training-mode passes on ``x`` from states of
    0, 1 and 2 at fresh parameters give ``m = new(1) - new(0)``; a leaf whose update is not such
    an average (``new(2) - new(0) != 2 m``, ``m`` not one number in ``[0, 1)``) is refused.
    Flax's ``BatchNorm`` (mean and biased variance, ``momentum`` = ``m``) passes.

    Args:
      model: a bound model with state (:func:`as_model`).
      x: ``(N, ...)`` inputs to probe with (a few hundred examples are plenty).

    Returns:
      a pytree shaped like the state whose leaves are Python floats ``m``.

    Raises:
      ConfigError: a state leaf that is not a running average (its statistics cannot be recomputed).

    Examples:
      >>> digits = ls.data.load("digits")
      >>> net = ls.models.ResNet(depth=6, width=4, output_activation="identity").for_data(digits)
      >>> params, state = net.init(jax.random.key(0)), net.init_state(jax.random.key(0))
      >>> rates = ls.models.running_average_rates(net, jnp.asarray(digits.train.x[:64]))
      >>> sorted({round(r, 6) for r in jax.tree.leaves(rates)})   # Flax BatchNorm momentum
      [0.9]
    """
    key = jax.random.key(0)
    params, template = model.init(key), model.init_state(key)
    news = [model.apply_train(params, jax.tree_util.tree_map(lambda a, c=c: jnp.full(a.shape, c, a.dtype), template),
                              x, **_fixed_noise(model))[1] for c in (0.0, 1.0, 2.0)]
    names = key_paths(template)
    leaves = [jax.tree_util.tree_leaves(n) for n in news]
    rates = []
    for name, s0, s1, s2 in zip(names, *leaves):
        s0, s1, s2 = (np.asarray(a, np.float64) for a in (s0, s1, s2))
        m = s1 - s0
        rate = float(np.mean(m)) if m.size else 0.0
        if (not np.issubdtype(np.asarray(s0).dtype, np.floating) or not np.allclose(s2 - s0, 2 * m, atol=1e-4)
                or not np.allclose(m, rate, atol=1e-5) or not 0.0 <= rate < 1.0 - 1e-6):
            raise ConfigError(f"state {name!r} of {getattr(model, 'name', type(model).__name__)} is not a running "
                              "average of batch statistics (new = m * old + (1 - m) * batch); its statistics cannot "
                              "be recomputed")
        rates.append(rate)
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(template), rates)


def population_statistics(model, params, x: jax.Array, rates) -> Any:
    """The state whose running averages equal the batch statistics of all of ``x`` at ``params``.

    One training-mode pass from a zero state gives ``(1 - m) * batch`` for every leaf; dividing
    by ``1 - m`` (:func:`running_average_rates`) leaves the statistics of ``x`` itself — for
    BatchNorm, the mean and variance of every normalised layer's inputs over the whole set, each
    layer's computed with the statistics of the layers below (as mode-connectivity work
    recomputes them, Garipov et al. 2018).  A model with dropout is in training mode here, as
    when its running averages were kept: its masks are drawn from one fixed key (``key(0)``), so
    the statistics are a function of ``params`` alone.  Float32 rounding is amplified by ``1 / (1 - m)``
    (relative error about ``1e-7 / (1 - m)``).

    Args:
      model: a bound model with state.
      params: its parameters (no member axis).
      x: ``(N, ...)`` the examples (the training set).
      rates: :func:`running_average_rates`.

    Returns:
      the state, shaped like ``model.init_state``.

    Examples:
      >>> digits = ls.data.load("digits")
      >>> net = ls.models.ResNet(depth=6, width=4, output_activation="identity").for_data(digits)
      >>> params, state = net.init(jax.random.key(0)), net.init_state(jax.random.key(0))
      >>> x = jnp.asarray(digits.train.x[:256])
      >>> stats = ls.models.population_statistics(net, params, x, ls.models.running_average_rates(net, x))
      >>> jax.tree.structure(stats) == jax.tree.structure(state)
      True
    """
    zeros = jax.tree_util.tree_map(lambda a: jnp.zeros(a.shape, a.dtype),
                                   jax.eval_shape(model.init_state, jax.random.key(0)))
    _, new = model.apply_train(params, zeros, x, **_fixed_noise(model))
    return jax.tree_util.tree_map(lambda s, m: s / jnp.asarray(1.0 - m, s.dtype), new, rates)


def _fixed_noise(model) -> dict:
    """``{"rng": key(0)}`` for a model with random streams (the training-mode passes above), else ``{}``."""
    return {"rng": jax.random.key(0)} if getattr(model, "random_streams", ()) else {}


def with_statistics(model, statistics: str, *, state=None, x: jax.Array | None = None) -> FlaxModel:
    """A model with state (BatchNorm) as a plain ``apply(params, x)``, for landscapes.

    A BatchNorm network's outputs depend on its statistics as well as its parameters, so every
    point of a surface, interpolation or curve needs statistics that belong to it:

    * ``"recompute"``: at every evaluated ``params``, the statistics of the training inputs
      ``x`` under those parameters (:func:`population_statistics`) — the network a user would
      get by re-estimating BatchNorm after moving to that point.  A pure function of
      ``params``: it works for stacked members, interpolations, curves and Hessians (which then
      differentiate through the statistics).  One extra forward pass over ``x`` per point.
    * ``"running"``: one member's saved running averages ``state`` at every point — right at that
      member's minimum only, wrong away from it (the statistics no longer match the weights).
      For comparison with the naive surface.

    Args:
      model: a bound model with state (an :class:`MLP` or other model without it is refused).
      statistics: ``"recompute"`` or ``"running"``.
      state: ``"running"``: one member's state (no member axis).
      x: ``"recompute"``: ``(N, ...)`` training inputs.

    Returns:
      a bound :class:`FlaxModel` without state whose ``apply`` uses those statistics.

    Raises:
      ConfigError: the model has no state, an unknown choice, or its missing argument.

    Examples:
      >>> digits = ls.data.load("digits")
      >>> net = ls.models.ResNet(depth=6, width=4, output_activation="identity").for_data(digits)
      >>> params, state = net.init(jax.random.key(0)), net.init_state(jax.random.key(0))
      >>> plain = ls.models.with_statistics(net, "recompute", x=digits.train.x[:256])
      >>> plain.apply(params, digits.test.x[:5]).shape        # statistics of x recomputed at params
      (5, 10)
    """
    model = as_model(model)
    model._require_bound()
    name = getattr(model, "name", type(model).__name__)
    if not model.stateful:
        raise ConfigError(f"{name} has no state (no BatchNorm statistics) to choose")
    def view(apply, how):
        return FlaxModel(lambda key, x0: model.init(key), apply, f"{name} ({how} statistics)", input_shape(model),
                         model.out_features)

    if statistics == "running":
        if state is None:
            raise ConfigError("running statistics need the member's state")
        state = jax.tree_util.tree_map(jnp.asarray, state)
        return view(lambda params, xs: model.apply_eval(params, state, xs), "running")
    if statistics == "recompute":
        if x is None:
            raise ConfigError("recomputed statistics need the training inputs x")
        x = jnp.asarray(x)
        rates = running_average_rates(model, x[:256])
        return view(lambda params, xs: model.apply_eval(params, population_statistics(model, params, x, rates), xs),
                    "recomputed")
    raise ConfigError(f"statistics must be one of {', '.join(STATISTICS)}, got {statistics!r}")
