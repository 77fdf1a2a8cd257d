"""Losses and metrics: the classic squared-difference cost (``mse`` on one-hot targets),
cross-entropy, accuracy; the loss of an ensemble member as a function of its parameters.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..core.errors import ConfigError
from ..core.loss_names import LOSS_NAMES, loss_name
from ..data import Dataset
from .base import ACTIVATIONS, output_fn
from .mlp import MLP
from .resolve import as_model, lowered

__all__ = ["LOSSES", "LOSS_NAMES", "loss_name", "mse", "cross_entropy", "accuracy", "output_loss", "for_loss", "metrics",
           "loss_fn", "LossParts", "ModelLoss", "LossOf", "BatchedLoss", "minibatch_loss", "per_example_loss", "metrics_fn", "MLPMetrics",
           "ModelMetrics"]


def mse(outputs: jax.Array, labels: jax.Array) -> jax.Array:
    """The classic squared-difference cost on one-hot targets.

    ``mean_n sum_k (outputs[n, k] - onehot(labels)[n, k])**2``: the sum over classes of the
    squared differences, averaged over examples.  ``outputs (N, K)``, ``labels (N,)`` int.

    Args:
      outputs: ``(N, K)``.
      labels: ``(N,)`` int.

    Returns:
      a scalar.

    Examples:
      >>> outputs, labels = jnp.array([[0.2, 0.9], [0.8, 0.1]]), jnp.array([1, 0])
      >>> round(float(ls.models.mse(outputs, labels)), 6)     # mean over examples of the summed squared differences
      0.05
    """
    target = jax.nn.one_hot(labels, outputs.shape[-1], dtype=outputs.dtype)
    return jnp.mean(jnp.sum((outputs - target) ** 2, axis=-1))


def cross_entropy(outputs: jax.Array, labels: jax.Array) -> jax.Array:
    """Softmax cross-entropy of logits ``outputs (N, K)`` against labels ``(N,)``, averaged.

    Args:
      outputs: ``(N, K)`` logits.
      labels: ``(N,)`` int.

    Returns:
      a scalar.

    Examples:
      >>> outputs, labels = jnp.array([[0.2, 0.9], [0.8, 0.1]]), jnp.array([1, 0])
      >>> round(float(ls.models.cross_entropy(outputs, labels)), 4)
      0.4032
    """
    logp = jax.nn.log_softmax(outputs, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, labels[:, None].astype(jnp.int32), axis=-1))


def accuracy(outputs: jax.Array, labels: jax.Array) -> jax.Array:
    """Fraction of rows whose arg-max equals the label.

    Args:
      outputs: ``(N, K)``.
      labels: ``(N,)`` int.

    Returns:
      a scalar in ``[0, 1]``.

    Examples:
      >>> outputs, labels = jnp.array([[0.2, 0.9], [0.8, 0.1]]), jnp.array([1, 0])
      >>> float(ls.models.accuracy(outputs, labels))
      1.0
    """
    return jnp.mean((jnp.argmax(outputs, axis=-1) == labels).astype(jnp.float32))


LOSSES: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {"mse": mse, "cross_entropy": cross_entropy}


def output_loss(name: str) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """The loss of a network's outputs called ``name`` — not of its parameters (that is :func:`loss_fn`).

    Args:
      name: ``"mse"`` or ``"cross_entropy"``, or an alias of :data:`LOSS_NAMES` (:func:`loss_name`).

    Returns:
      ``(outputs (N, K), labels (N,)) -> scalar``, the mean over examples.

    Raises:
      ConfigError: an unknown name.

    Examples:
      >>> outputs, labels = jnp.array([[0.2, 0.9], [0.8, 0.1]]), jnp.array([1, 0])
      >>> ls.models.output_loss("mse") is ls.models.mse, float(ls.models.output_loss("cross_entropy")(outputs, labels)) > 0
      (True, True)
    """
    return LOSSES[loss_name(name)]


def for_loss(model, loss: str):
    """A built-in model whose ``output_activation="auto"`` is decided by ``loss``: sigmoid outputs
    for ``mse`` (the classic squared-difference network), identity (logits) for
    ``cross_entropy`` — the command line's rule.  Any other model is returned as it is.

    Args:
      model: a model (:func:`as_model`).
      loss: ``"mse"`` or ``"cross_entropy"``.

    Returns:
      the model with a decided output non-linearity.

    Raises:
      ConfigError: an unknown loss.

    Examples:
      >>> ls.models.for_loss(ls.MLP(), "mse").output_activation, ls.models.for_loss(ls.MLP(), "cross_entropy").output_activation
      ('sigmoid', 'identity')
    """
    f = output_loss(loss)  # validates the name and resolves its aliases
    if getattr(model, "output_activation", None) != "auto":
        return model
    return dataclasses.replace(model, output_activation="sigmoid" if f is mse else "identity")


def metrics(model, params, x: jax.Array, y: jax.Array, loss: str) -> dict[str, jax.Array]:
    """``{"loss": scalar, "accuracy": scalar}`` of ``params`` on inputs ``x (N, D)``, labels ``y (N,)``.

    Args:
      model: a bound model.
      params: one member's parameters.
      x: ``(N, ...)`` inputs.
      y: ``(N,)`` labels.
      loss: ``"mse"`` or ``"cross_entropy"``.

    Returns:
      the two scalars.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> model = ls.MLP(hidden=(4,), output_activation="identity").for_data(data)
      >>> theta = model.init(jax.random.key(0))
      >>> m = ls.models.metrics(model, theta, data.test.x, data.test.y, "cross_entropy")
      >>> sorted(m), 0.0 <= float(m["accuracy"]) <= 1.0
      (['accuracy', 'loss'], True)
    """
    model = for_loss(model, loss)
    out = lowered(model, model.apply)(params, x)
    return {"loss": output_loss(loss)(out, y), "accuracy": accuracy(out, y)}


def per_example_loss(name: str) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """Per-example losses ``(outputs (N, K), labels (N,)) -> (N,)`` whose mean is :func:`output_loss`'s.

    Args:
      name: ``"mse"`` or ``"cross_entropy"``.

    Returns:
      the function.

    Examples:
      >>> outputs, labels = jnp.array([[0.2, 0.9], [0.8, 0.1]]), jnp.array([1, 0])
      >>> np.asarray(ls.models.per_example_loss("mse")(outputs, labels), float).round(4).tolist()
      [0.05, 0.05]
    """
    name = output_loss(name).__name__  # validates the name and resolves its aliases
    if name == "mse":
        return lambda out, y: jnp.sum((out - jax.nn.one_hot(y, out.shape[-1], dtype=out.dtype)) ** 2, axis=-1)
    if name == "cross_entropy":
        return lambda out, y: -jnp.take_along_axis(jax.nn.log_softmax(out, axis=-1),
                                                   y[:, None].astype(jnp.int32), axis=-1)[:, 0]
    raise ConfigError(f"unknown loss {name!r}; choose 'mse' or 'cross_entropy'")


@dataclasses.dataclass(frozen=True, eq=False)
class LossParts:
    """A loss ``params -> scalar`` that also exposes its structure ``output_loss(outputs(params))``
    and its per-example losses — what Gauss–Newton and empirical-Fisher curvature need
    (:func:`landscape.hessian.ggn_vp`, :func:`landscape.hessian.fisher_vp`).

    Attributes:
      outputs: ``params -> (N, K)`` the model's outputs on the data.
      output_loss: ``(N, K) -> scalar`` the loss of those outputs (labels closed over).
      per_example: ``params -> (N,)`` per-example losses; the loss is their mean.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> model = ls.MLP(hidden=(4,), output_activation="identity").for_data(data)
      >>> theta = model.init(jax.random.key(0))
      >>> loss = ls.models.loss_fn(model, data.train, "cross_entropy")
      >>> loss.outputs(theta).shape, loss.per_example(theta).shape
      ((64, 3), (64,))
      >>> bool(jnp.allclose(loss(theta), loss.output_loss(loss.outputs(theta))))
      True
    """

    outputs: Callable[[Any], jax.Array]
    output_loss: Callable[[jax.Array], jax.Array]
    per_example: Callable[[Any], jax.Array]

    def __call__(self, params) -> jax.Array:
        return self.output_loss(self.outputs(params))


@dataclasses.dataclass(frozen=True)
class ModelLoss:
    """The mean loss of a model on fixed examples, as a function of the parameters
    (:func:`loss_fn`), with the structure Gauss–Newton and empirical-Fisher curvature need.

    A pytree: the examples ``x``, ``y`` are its leaves, the model and the loss's name its
    static structure.  A compiled program takes it as an argument
    (:func:`landscape.core.programs.split`): the same model and loss on other or equal data
    reuse the program, and no cache holds the examples.

    Attributes:
      model: the bound model (its output decided by the loss).
      loss: ``"mse"`` or ``"cross_entropy"``.
      x: ``(N, ...)`` the inputs.
      y: ``(N,)`` the labels.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> model = ls.MLP(hidden=(4,), output_activation="identity").for_data(data)
      >>> loss = ls.models.loss_fn(model, data.train, "cross_entropy")
      >>> type(loss).__name__, [leaf.shape for leaf in jax.tree_util.tree_leaves(loss)]
      ('ModelLoss', [(64, 2), (64,)])
    """

    model: Any
    loss: str
    x: Any
    y: Any

    def outputs(self, params) -> jax.Array:
        """The model's outputs ``(N, K)`` on the examples.

        Args:
          params: one point's parameters.

        Returns:
          ``(N, K)``.
        """
        return lowered(self.model, self.model.apply)(params, self.x)

    def output_loss(self, out: jax.Array) -> jax.Array:
        """The loss of outputs ``out (N, K)`` against the labels (their mean).

        Args:
          out: ``(N, K)``.

        Returns:
          a scalar.
        """
        return output_loss(self.loss)(out, self.y)

    def per_example(self, params) -> jax.Array:
        """Every example's loss ``(N,)``; the loss is their mean.

        Args:
          params: one point's parameters.

        Returns:
          ``(N,)``.
        """
        return per_example_loss(self.loss)(self.outputs(params), self.y)

    def __call__(self, params) -> jax.Array:
        return self.output_loss(self.outputs(params))


jax.tree_util.register_dataclass(ModelLoss, data_fields=["x", "y"], meta_fields=["model", "loss"])


@dataclasses.dataclass(frozen=True)
class LossOf:
    """``(x, y) -> ModelLoss``: the loss of ``model`` on one batch (a :class:`BatchedLoss`'s ``loss_of``).

    Attributes:
      model: the bound model (its output decided by the loss).
      loss: ``"mse"`` or ``"cross_entropy"``.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> model = ls.MLP(hidden=(4,), output_activation="identity").for_data(data)
      >>> batched = ls.models.loss_fn(model, data.train, "cross_entropy", batch_size=16)
      >>> type(batched.loss_of(data.train.x[:16], data.train.y[:16])).__name__
      'ModelLoss'
    """

    model: Any
    loss: str

    def __call__(self, x, y) -> ModelLoss:
        return ModelLoss(self.model, self.loss, x, y)


@dataclasses.dataclass(frozen=True, eq=False)
class BatchedLoss:
    """A loss spread over mini-batches, ``sum_g weight_g sum_k loss_of(x[g][k], y[g][k])(params)``.

    The curvature functions of :mod:`landscape.hessian` accumulate its products batch by batch
    (a ``lax.scan``), so only one batch's activations are ever live: the full-data curvature of
    a set too large for one evaluation.  :func:`minibatch_loss` builds one whose batches are a
    random sample, for per-batch estimates (:func:`landscape.hessian.minibatch_curvature`).

    Attributes:
      loss_of: ``(x (B, D), y (B,)) -> loss``, the loss of one batch (its mean; a
        :class:`LossOf` for :func:`loss_fn`'s, whose batches then pass to compiled programs as
        arguments).
      groups: ``(((x (K, B, D), y (K, B)), weight), ...)``: K batches of one size B each,
        every batch of a group weighted ``weight`` (two groups when the last batch is smaller).

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> model = ls.MLP(hidden=(4,), output_activation="identity").for_data(data)
      >>> theta = model.init(jax.random.key(0))
      >>> batched = ls.models.loss_fn(model, data.train, "cross_entropy", batch_size=24)   # 24 + 24 + 16
      >>> [x.shape for (x, y), w in batched.groups]
      [(2, 24, 2), (1, 16, 2)]
    """

    loss_of: Callable[[jax.Array, jax.Array], Any]
    groups: tuple

    @property
    def num_batches(self) -> int:
        """Batches over all groups."""
        return sum(int(xs.shape[0]) for (xs, _), _ in self.groups)

    def __call__(self, params) -> jax.Array:
        total = 0.0
        for (xs, ys), w in self.groups:
            total = total + w * jnp.sum(jax.lax.map(lambda b: self.loss_of(*b)(params), (xs, ys)))
        return total


# a pytree: the batches are leaves; how a batch's loss is taken and the weights, its structure
jax.tree_util.register_pytree_node(
    BatchedLoss,
    lambda b: (tuple(xy for xy, _ in b.groups), (b.loss_of, tuple(w for _, w in b.groups))),
    lambda aux, xys: BatchedLoss(aux[0], tuple(zip(xys, aux[1]))),
)


def _split_arrays(split) -> tuple[Any, Any]:
    """``(x, y)`` of a :class:`~landscape.data.Split` (or an ``(x, y)`` pair), still where they are:
    numpy arrays on the host (sliced and reshaped there as views, then transferred once), JAX
    arrays as they are.  A whole :class:`~landscape.data.Dataset` or anything else is refused
    with one clear line."""
    if isinstance(split, Dataset):
        raise ConfigError("expected one split of the data set (data.train or data.test), got the whole "
                          f"{type(split).__name__}")
    try:
        x, y = split
    except (TypeError, ValueError):
        raise ConfigError(f"expected a Split (data.train) or an (x, y) pair, got {type(split).__name__}") from None
    return tuple(a if isinstance(a, jax.Array) else np.asarray(a) for a in (x, y))


def loss_fn(model: MLP, split, loss: str, *, batch_size: int | None = None) -> ModelLoss | BatchedLoss:
    """``params -> scalar`` mean loss of ``model`` on a fixed :class:`~landscape.data.Split`.

    Args:
      model: a bound :class:`MLP`.
      split: the examples, ``x (N, D)``, ``y (N,)``.
      loss: ``"mse"`` or ``"cross_entropy"``.
      batch_size: ``None`` (one evaluation over all ``N`` examples), or ``B``: the same loss as
        a :class:`BatchedLoss` over consecutive batches of ``B`` (the last one holds the
        ``N mod B`` rest), weighted ``B/N`` (rest: ``(N mod B)/N``) so that its value and every
        curvature product equal the one-evaluation loss's while only ``B`` examples are live.

    Returns:
      a :class:`ModelLoss` (Gauss–Newton and Fisher curvature available) or a :class:`BatchedLoss`;
      both pytrees whose leaves are the examples (compiled programs take them as arguments).

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> model = ls.MLP(hidden=(4,), output_activation="identity").for_data(data)
      >>> theta = model.init(jax.random.key(0))
      >>> loss = ls.models.loss_fn(model, data.train, "cross_entropy")
      >>> batched = ls.models.loss_fn(model, data.train, "cross_entropy", batch_size=16)
      >>> bool(jnp.allclose(loss(theta), batched(theta)))      # the same loss, 16 examples live at a time
      True
    """
    return _make_loss_fn(model, split, loss, batch_size)


def _make_loss_fn(model, split, loss: str, batch_size: int | None):
    output_loss(loss)  # validates the name
    of = LossOf(for_loss(model, loss), loss)
    x, y = _split_arrays(split)
    n = int(x.shape[0])
    if batch_size is None or batch_size >= n:
        return of(*jax.device_put((x, y)))  # a transfer; jnp.asarray would compile a program per array
    if batch_size < 1:
        raise ConfigError(f"batch_size must be positive, got {batch_size}")
    b = int(batch_size)
    k, rest = divmod(n, b)
    # batches cut on the host (numpy views) and transferred once: the device holds one copy
    groups = [(jax.device_put((x[: k * b].reshape(k, b, *x.shape[1:]), y[: k * b].reshape(k, b))), b / n)]
    if rest:
        groups.append((jax.device_put((x[k * b:][None], y[k * b:][None])), rest / n))
    return BatchedLoss(of, tuple(groups))


def minibatch_loss(model: MLP, split, loss: str, *, batch_size: int, num_batches: int, key: jax.Array) -> BatchedLoss:
    """``num_batches`` disjoint random mini-batches of ``batch_size`` examples (without
    replacement, one permutation drawn from ``key``), each weighted ``1/num_batches``: the
    batches whose curvature :func:`landscape.hessian.minibatch_curvature` estimates one by one.

    Args:
      model: a bound model.
      split: the examples to draw from (``data.train``).
      loss: ``"mse"`` or ``"cross_entropy"``.
      batch_size: examples per batch.
      num_batches: how many batches.
      key: PRNG key of the permutation.

    Returns:
      a :class:`BatchedLoss`.

    Raises:
      ConfigError: ``batch_size * num_batches`` exceeds the number of examples.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> model = ls.MLP(hidden=(4,), output_activation="identity").for_data(data)
      >>> theta = model.init(jax.random.key(0))
      >>> batches = ls.models.minibatch_loss(model, data.train, "cross_entropy", batch_size=16, num_batches=3,
      ...                                    key=jax.random.key(1))
      >>> [x.shape for (x, y), w in batches.groups]           # 3 disjoint random batches of 16
      [(3, 16, 2)]
    """
    x, y = _split_arrays(split)
    n = int(x.shape[0])
    if batch_size < 1 or num_batches < 1:
        raise ConfigError(f"mini-batches need a positive size and count, got {num_batches} of {batch_size}")
    if batch_size * num_batches > n:
        raise ConfigError(f"{num_batches} disjoint mini-batches of {batch_size} need {batch_size * num_batches} "
                          f"examples; the training set has {n}")
    idx = jax.random.permutation(key, n)[: batch_size * num_batches].reshape(num_batches, batch_size)
    output_loss(loss)  # validates the name
    take = [a[idx] if isinstance(a, jax.Array) else a[np.asarray(idx)] for a in (x, y)]  # host rows stay on the host
    return BatchedLoss(LossOf(for_loss(model, loss), loss), ((tuple(jax.device_put(take)), 1.0 / num_batches),))


@dataclasses.dataclass(frozen=True)
class MLPMetrics:
    """``(params, (x, y)) -> {"loss", "accuracy"}`` for the built-in MLP, split at the first layer.

    Calling it is the plain evaluation.  ``first_layer`` and ``head`` expose the structure
    that :mod:`landscape.surface` exploits: the first layer's pre-activations are affine in
    the parameters, so on a slice ``theta = c + sum_i a_i d_i`` they equal
    ``first_layer(c, x) + sum_i a_i first_layer(d_i, x)`` (with ``first_layer(d, x) = x W_d + b_d``),
    computed once per slice instead of once per point.

    Attributes:
      model: the bound :class:`MLP` (its output decided).
      loss: ``"mse"`` or ``"cross_entropy"``.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> model = ls.MLP(hidden=(4,), output_activation="identity").for_data(data)
      >>> theta = model.init(jax.random.key(0))
      >>> fn = ls.models.metrics_fn(model, "cross_entropy")
      >>> type(fn).__name__, fn.first_layer(theta, data.test.x).shape   # pre-activations of the first layer
      ('MLPMetrics', (32, 4))
    """

    model: MLP
    loss: str

    def __post_init__(self):
        output_loss(self.loss)  # validate early
        object.__setattr__(self, "model", for_loss(self.model, self.loss))  # an "auto" output decided here too
        self.model._require_bound()

    def __call__(self, params: dict, batch) -> dict[str, jax.Array]:
        return metrics(self.model, params, batch[0], batch[1], self.loss)

    def first_layer(self, params: dict, x: jax.Array) -> jax.Array:
        """Pre-activations ``x W_0 + b_0`` of the first Dense layer, ``(N, H_1)``.

        Args:
          params: one member's parameters.
          x: ``(N, D)`` inputs.

        Returns:
          ``(N, H_1)``.
        """
        layer = params[self.model.layer_names[0]]
        return x @ layer["kernel"] + layer["bias"]

    def head(self, params: dict, z: jax.Array, y: jax.Array) -> dict[str, jax.Array]:
        """Metrics from the first layer's pre-activations ``z``; the first layer's parameters are not used.

        Args:
          params: one member's parameters.
          z: ``(N, H_1)`` first-layer pre-activations (:meth:`first_layer`, or a combination of them).
          y: ``(N,)`` labels.

        Returns:
          ``{"loss", "accuracy"}``.
        """
        names = self.model.layer_names
        for i, name in enumerate(names):
            if i > 0:
                z = z @ params[name]["kernel"] + params[name]["bias"]
            last = i == len(names) - 1
            z = output_fn(self.model.output_activation)(z) if last else ACTIVATIONS[self.model.activation](z)
        return {"loss": output_loss(self.loss)(z, y), "accuracy": accuracy(z, y)}


@dataclasses.dataclass(frozen=True, eq=False)
class ModelMetrics:
    """``(params, (x, y)) -> {"loss", "accuracy"}`` for any model with ``apply(params, x)``.

    Attributes:
      model: a bound model without state.
      loss: ``"mse"`` or ``"cross_entropy"``.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> import flax.linen as nn
      >>> model = ls.models.as_model(nn.Dense(3)).for_data(data)
      >>> fn = ls.models.metrics_fn(model, "cross_entropy")
      >>> type(fn).__name__, sorted(fn(model.init(jax.random.key(0)), (data.test.x, data.test.y)))
      ('ModelMetrics', ['accuracy', 'loss'])
    """

    model: Any
    loss: str

    def __post_init__(self):
        output_loss(self.loss)  # validate early

    def __call__(self, params, batch) -> dict[str, jax.Array]:
        return metrics(self.model, params, batch[0], batch[1], self.loss)


# Metric functions are pytrees of static configuration only (no arrays): compiled slice
# programs are cached on the model and the loss (landscape.core.programs), never on identity.
jax.tree_util.register_dataclass(MLPMetrics, data_fields=[], meta_fields=["model", "loss"])
jax.tree_util.register_dataclass(ModelMetrics, data_fields=[], meta_fields=["model", "loss"])


def metrics_fn(model, loss: str) -> MLPMetrics | ModelMetrics:
    """``(params, (x, y)) -> {"loss", "accuracy"}``: the generic metric signature of ``surface``.
    For the built-in :class:`MLP` an :class:`MLPMetrics`, which also exposes the first-layer
    structure the surface evaluator's shortcut uses; for any other model a plain
    :class:`ModelMetrics` (``model`` as :func:`as_model` takes it, bound to its data).

    Args:
      model: a bound model (:func:`as_model`; with BatchNorm state, :func:`with_statistics` first).
      loss: ``"mse"`` or ``"cross_entropy"``.

    Returns:
      the metric function, ``fn(params, (x, y))``.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> model = ls.MLP(hidden=(4,), output_activation="identity").for_data(data)
      >>> theta = model.init(jax.random.key(0))
      >>> fn = ls.models.metrics_fn(model, "cross_entropy")   # what every surface evaluates
      >>> sorted(fn(theta, (data.test.x, data.test.y)))
      ['accuracy', 'loss']
    """
    model = for_loss(model, loss)
    if isinstance(model, MLP):
        return MLPMetrics(model, loss)
    model = as_model(model)
    if model.stateful:
        raise ConfigError(f"{getattr(model, 'name', type(model).__name__)} has state (BatchNorm statistics): "
                          "choose them first with landscape.models.with_statistics(model, 'recompute', x=...)")
    return ModelMetrics(model, loss)
