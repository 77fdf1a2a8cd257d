"""Any Flax Linen module, Flax NNX model or ``(init, apply)`` pair as a model
(:class:`FlaxModel`): parameters, state (BatchNorm) and the training flag, read from the model.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp

from ..core.errors import ConfigError
from ..core.tree import key_paths
from .permutation import PermutationSpec

__all__ = ["FlaxModel", "is_module_instance", "TRAIN_FLAGS"]


@dataclasses.dataclass(frozen=True, eq=False)
class FlaxModel:
    """Any model as ``init(key) -> params`` and ``apply(params, x) -> outputs``: a Flax Linen
    module, an NNX model or a plain pair of functions, bound to a data set's input shape.

    Build it with :func:`as_model`.  ``params`` is the module's ``"params"`` collection (any
    pytree for a pair).  A Linen module's other collections (BatchNorm's ``batch_stats``) are
    its *state*: ``init_state``, ``apply_train`` (training mode: batch statistics, the state's
    running averages updated) and ``apply_eval`` (the running averages).  A model with state
    has no plain ``apply``: a landscape of it needs a choice of statistics
    (:func:`with_statistics`).

    Attributes:
      init_fn: ``(key, x (1, ...)) -> params``.
      apply_fn: ``(params, x (N, ...)) -> (N, K)`` in evaluation mode, ignoring any state.
      name: how the model is described (its class name).
      in_shape: one example's shape, ``None`` until bound by :meth:`for_data`.
      out_features: ``K``, likewise.
      state_fn: ``(key, x (1, ...)) -> state`` (``None``: no state).
      train_fn: ``(params, state, x) -> (outputs, state)`` in training mode (``None``: ``apply_fn``).
      eval_fn: ``(params, state, x) -> outputs`` (``None``: ``apply_fn``).
      has_state: whether ``state_fn`` returns any array (decided when bound).
      source: where the model came from, ``{"file", "factory", "sha256", "code_sha256"}`` for a model read by
        :func:`landscape.model_files.from_file` (recorded with a run), else ``None``.
      spec: its :class:`~landscape.permutation.PermutationSpec` when the user gave one (a model
        file's ``permutation_spec``), for weight matching; ``None``: unknown.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> import flax.linen as nn
      >>> model = ls.models.as_model(nn.Dense(3)).for_data(data)      # a Linen module, as a FlaxModel
      >>> type(model).__name__, model.apply(model.init(jax.random.key(0)), data.test.x).shape
      ('FlaxModel', (32, 3))
    """

    init_fn: Callable[[jax.Array, jax.Array], Any]
    apply_fn: Callable[[Any, jax.Array], jax.Array]
    name: str = "model"
    in_shape: tuple | None = None
    out_features: int | None = None
    state_fn: Callable[[jax.Array, jax.Array], Any] | None = None
    train_fn: Callable[[Any, Any, jax.Array], tuple[jax.Array, Any]] | None = None
    eval_fn: Callable[[Any, Any, jax.Array], jax.Array] | None = None
    has_state: bool = False
    source: dict | None = None
    spec: PermutationSpec | None = None

    def for_data(self, data) -> FlaxModel:
        """This model bound to a :class:`~landscape.data.Dataset`: its input shape and classes,
        checked by evaluating the model on one example (its outputs must be ``(1, K)``, in
        training and in evaluation mode).

        Args:
          data: a :class:`~landscape.data.Dataset`.

        Returns:
          the bound model.
        """
        shape = tuple(int(n) for n in data.train.x.shape[1:])
        if self.in_shape not in (None, shape) or self.out_features not in (None, data.num_classes):
            raise ConfigError(f"{self.name} was bound to inputs {self.in_shape} and {self.out_features} classes; "
                              f"data set {data.name!r} has {shape} and {data.num_classes}")
        return self.bind(shape, data.num_classes)

    @property
    def in_features(self) -> int | None:
        """Inputs per example (``None`` until bound)."""
        return None if self.in_shape is None else math.prod(self.in_shape)

    def bind(self, in_shape: tuple, num_classes: int) -> FlaxModel:
        """This model bound to inputs of one example's shape ``in_shape`` and ``num_classes``
        outputs, checked by evaluating it on one example in both modes (:meth:`for_data` binds
        to a data set; a saved run binds to what it recorded).

        Args:
          in_shape: one example's input shape.
          num_classes: ``K``.

        Returns:
          the bound model.

        Raises:
          ConfigError: the model fails on an example or its outputs are not ``(1, K)``.
        """
        shape = tuple(int(n) for n in in_shape)
        k = int(num_classes)
        bound = dataclasses.replace(self, in_shape=shape, out_features=k)
        x = jax.ShapeDtypeStruct((1, *shape), jnp.float32)
        try:
            params = jax.eval_shape(bound.init, jax.random.key(0))
            state = jax.eval_shape(bound._state, jax.random.key(0))
            bound = dataclasses.replace(bound, has_state=bool(jax.tree_util.tree_leaves(state)))
            outs = [jax.eval_shape(bound.apply_train, params, state, x)[0],
                    jax.eval_shape(bound.apply_eval, params, state, x)]
        except ConfigError:
            raise
        except Exception as exc:  # a module that cannot run here: one line that says why
            raise ConfigError(f"{self.name} cannot be evaluated on one example of shape {shape}: "
                              f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
        for out in outs:
            if getattr(out, "shape", None) != (1, k):
                raise ConfigError(f"{self.name} maps one example of shape {shape} to outputs of shape "
                                  f"{getattr(out, 'shape', type(out).__name__)}; the data set has {k} classes, "
                                  f"so (1, {k}) is needed")
        return bound

    def _require_bound(self):
        if self.in_shape is None:
            raise ConfigError(f"{self.name} is not bound to data: call model.for_data(dataset) first")

    def _example(self) -> jax.Array:
        return jnp.zeros((1, *self.in_shape), jnp.float32)

    def _state(self, key: jax.Array):
        return {} if self.state_fn is None else self.state_fn(key, self._example())

    @property
    def stateful(self) -> bool:
        """Whether the model carries state besides its parameters (BatchNorm statistics)."""
        return self.has_state

    def init(self, key: jax.Array):
        """Fresh parameters from ``key``.

        Args:
          key: PRNG key.

        Returns:
          a parameter pytree (no member axis).
        """
        self._require_bound()
        return self.init_fn(key, self._example())

    def init_state(self, key: jax.Array):
        """Fresh state from ``key`` (the same key as :meth:`init`; ``{}`` for a model without state).

        Args:
          key: PRNG key.

        Returns:
          a state pytree (``{}`` without state).
        """
        self._require_bound()
        return self._state(key)

    def apply(self, params, x: jax.Array) -> jax.Array:
        """Outputs ``(N, K)`` for inputs ``x (N, ...)``.

        Args:
          params: one member's parameters (no member axis).
          x: ``(N, ...)`` inputs.

        Returns:
          ``(N, K)`` outputs.

        Raises:
          ConfigError: the model has state: its outputs depend on statistics, chosen with
            :func:`with_statistics` (or :meth:`apply_eval` with a state).
        """
        if self.has_state:
            raise ConfigError(f"{self.name} has state (BatchNorm statistics): evaluate it with apply_eval(params, "
                              "state, x), or make a landscape of it through landscape.models.with_statistics")
        return self.apply_fn(params, x)

    def apply_train(self, params, state, x: jax.Array):
        """``(outputs (N, K), new state)`` in training mode.

        Args:
          params: one member's parameters.
          state: its state.
          x: ``(N, ...)`` inputs.

        Returns:
          ``(outputs (N, K), new state)``.
        """
        if self.train_fn is None:
            return self.apply_fn(params, x), state
        return self.train_fn(params, state, x)

    def apply_eval(self, params, state, x: jax.Array) -> jax.Array:
        """Outputs ``(N, K)`` in evaluation mode, with the state's running statistics.

        Args:
          params: one member's parameters.
          state: its state (running statistics).
          x: ``(N, ...)`` inputs.

        Returns:
          ``(N, K)`` outputs.
        """
        if self.eval_fn is None:
            return self.apply_fn(params, x)
        return self.eval_fn(params, state, x)

    def num_params(self) -> int:
        """Number of trainable scalars."""
        return sum(math.prod(s) for s in self.param_shapes().values())

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """``{"path/to/leaf": shape}`` of the parameters."""
        return _shapes(jax.eval_shape(self.init, jax.random.key(0)))

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        """``{"path/to/leaf": shape}`` of the state (``{}`` without state)."""
        return _shapes(jax.eval_shape(self.init_state, jax.random.key(0)))

    def activation_width(self) -> int:
        """Floats of every intermediate value of a forward pass on one example (an upper
        estimate of its activations), counted from the traced program."""
        return int(sum(math.prod(v.aval.shape) for eqn in forward_jaxpr(self).eqns for v in eqn.outvars
                       if hasattr(v.aval, "shape")))

    def describe(self) -> str:
        """One line: the model's class name, its input shape and where it came from."""
        where = f", {self.source['file']}:{self.source['factory']}" if self.source else ""
        return f"{self.name} (user model, inputs {self.in_shape}{where})"

    def permutation_spec(self) -> PermutationSpec:
        """The permutation structure the user gave (``spec``).

        Raises:
          ConfigError: none was given — it cannot be guessed safely from parameter names.
        """
        if self.spec is None:
            raise ConfigError(f"{self.name} is a user model: weight matching needs its permutation structure; define "
                              "permutation_spec (a landscape.permutation.PermutationSpec) in its model file, or pass "
                              "spec= to landscape.minima.align")
        return self.spec

    def to_dict(self) -> dict:
        """JSON-ready description for a run directory: name, input shape, classes, where it came
        from, and its parameter and state shapes (a model given to load the run must match
        them; :func:`landscape.model_files.restore`)."""
        self._require_bound()
        return {"name": self.name, "in_shape": list(self.in_shape), "out_features": self.out_features,
                "source": self.source, "param_shapes": {k: list(v) for k, v in self.param_shapes().items()},
                "state_shapes": {k: list(v) for k, v in self.state_shapes().items()}}


def _shapes(abstract) -> dict[str, tuple[int, ...]]:
    return dict(zip(key_paths(abstract), (tuple(x.shape) for x in jax.tree_util.tree_leaves(abstract))))


#: Keyword arguments of a Linen module's ``__call__`` that say whether it is training, and the
#: value each takes in training (``deterministic`` and ``use_running_average`` are negated).
TRAIN_FLAGS = {"train": True, "training": True, "is_training": True, "deterministic": False,
               "use_running_average": False}


def _train_flag(module) -> str | None:
    """The first :data:`TRAIN_FLAGS` keyword of the module's ``__call__``, or ``None``."""
    import inspect

    try:
        names = inspect.signature(type(module).__call__).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return None
    return next((n for n in names if n in TRAIN_FLAGS), None)


def from_linen(module) -> FlaxModel:
    """A Linen module as a :class:`FlaxModel`: ``"params"`` are the parameters, every other
    collection (``batch_stats`` ...) the state, updated in training (``mutable``); a training
    flag of its ``__call__`` (:data:`TRAIN_FLAGS`) is passed in both modes."""
    flag = _train_flag(module)

    def mode(training: bool) -> dict:
        return {} if flag is None else {flag: training if TRAIN_FLAGS[flag] else not training}

    def variables(key, x):
        return flax.core.unfreeze(module.init(key, x, **mode(False)))

    def init(key, x):
        return variables(key, x).get("params", {})

    def state(key, x):
        return {k: v for k, v in variables(key, x).items() if k != "params"}

    def apply(params, x):
        return module.apply({"params": params}, x, **mode(False))

    def train(params, st, x):
        if not st:
            return module.apply({"params": params}, x, **mode(True)), st
        out, new = module.apply({"params": params, **st}, x, **mode(True), mutable=list(st))
        return out, {**st, **flax.core.unfreeze(new)}

    def evaluate(params, st, x):
        return module.apply({"params": params, **st}, x, **mode(False))

    return FlaxModel(init, apply, type(module).__name__, state_fn=state, train_fn=train, eval_fn=evaluate)


def from_nnx(factory) -> FlaxModel:
    """An NNX model given as ``factory(rngs) -> nnx.Module``: parameters are the pure-dict form
    of its ``nnx.Param`` state; its ``nnx.BatchStat`` variables (BatchNorm's running averages)
    are its state, ``{"batch_stats": ...}``.  ``apply`` merges them into a clone of the module's
    structure; a module with state runs in ``train()`` mode in training steps (its statistics
    read back afterwards) and in ``eval()`` mode otherwise."""
    from flax import nnx

    try:
        probe = nnx.eval_shape(lambda: factory(nnx.Rngs(0)))
    except Exception as exc:  # not a factory of rngs: say what is accepted
        raise ConfigError(f"a model must be a landscape.MLP, a flax.linen.Module, an (init, apply) pair or an NNX "
                          f"factory rngs -> nnx.Module; calling {getattr(factory, '__name__', factory)!r} with "
                          f"nnx.Rngs failed: {exc}") from None
    if not isinstance(probe, nnx.Module):
        raise ConfigError(f"an NNX factory must return an nnx.Module, got {type(probe).__name__}")
    graphdef, template, stats, rest = nnx.split(factory(nnx.Rngs(0)), nnx.Param, nnx.BatchStat, ...)
    stateful = bool(jax.tree_util.tree_leaves(stats))

    def init(key, x):
        return nnx.to_pure_dict(nnx.split(factory(nnx.Rngs(key)), nnx.Param, ...)[1])

    def state(key, x):
        if not stateful:
            return {}
        return {"batch_stats": nnx.to_pure_dict(nnx.split(factory(nnx.Rngs(key)), nnx.Param, nnx.BatchStat, ...)[2])}

    def merged(params, st):
        p = nnx.clone(template)
        nnx.replace_by_pure_dict(p, params)
        if not stateful:
            return nnx.merge(graphdef, p, rest)
        s = nnx.clone(stats)
        nnx.replace_by_pure_dict(s, st["batch_stats"])
        return nnx.merge(graphdef, p, s, rest)

    def apply(params, x):
        return merged(params, None)(x)

    def train(params, st, x):
        if not stateful:
            return apply(params, x), st
        module = merged(params, st)
        module.train()  # batch statistics; the running averages are updated in place
        out = module(x)
        return out, {"batch_stats": nnx.to_pure_dict(nnx.split(module, nnx.Param, nnx.BatchStat, ...)[2])}

    def evaluate(params, st, x):
        if not stateful:
            return apply(params, x)
        module = merged(params, st)
        module.eval()  # the running averages
        return module(x)

    return FlaxModel(init, apply, type(probe).__name__, state_fn=state, train_fn=train, eval_fn=evaluate)


def input_shape(model) -> tuple:
    """One example's input shape: a user model's own, a built-in model's flattened row."""
    return model.in_shape if isinstance(model, FlaxModel) else (model.in_features,)


def forward_jaxpr(model):
    """The traced training-mode forward pass of a bound model on one example (abstract:
    nothing is computed)."""
    model._require_bound()
    params = jax.eval_shape(model.init, jax.random.key(0))
    state = jax.eval_shape(model.init_state, jax.random.key(0))
    return jax.make_jaxpr(lambda p, s, x: model.apply_train(p, s, x)[0])(
        params, state, jax.ShapeDtypeStruct((1, *input_shape(model)), jnp.float32)).jaxpr


def is_module_instance(obj) -> bool:
    """Whether ``obj`` is a Flax Linen module instance (what :func:`as_model` wraps as it is).

    Args:
      obj: anything.

    Returns:
      a bool.

    Examples:
      >>> import flax.linen as nn
      >>> ls.models.is_module_instance(nn.Dense(3)), ls.models.is_module_instance(ls.MLP())
      (True, False)
    """
    return isinstance(obj, nn.Module)
