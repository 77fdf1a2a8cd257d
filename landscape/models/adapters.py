"""Any Flax Linen module, Flax NNX model or ``(init, apply)`` pair as a model
(:class:`FlaxModel`): parameters, state (BatchNorm) and the training flag, read from the model.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import zlib
from collections.abc import Callable
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ..core.errors import ConfigError
from ..core.tree import key_paths
from .permutation import PermutationSpec

__all__ = ["FlaxModel", "is_module_instance", "TRAIN_FLAGS", "stream_key"]


def stream_key(key: jax.Array, name: str) -> jax.Array:
    """The key of one random stream (a Linen ``rngs`` name, an NNX ``RngKey``'s path) drawn
    from a training-mode pass's noise key: ``fold_in(key, crc32(name) mod 2**31)``.

    Streams get keys of their own, each depending only on its name, so adding a stream to a
    model changes no other stream's masks.

    Args:
      key: the pass's noise key (a training step's: :func:`landscape.train.noise_key`).
      name: the stream's name.

    Returns:
      a PRNG key.

    Examples:
      >>> k = ls.models.stream_key(jax.random.key(0), "dropout")
      >>> bool(jnp.all(jax.random.key_data(k) == jax.random.key_data(jax.random.fold_in(jax.random.key(0),
      ...      __import__("zlib").crc32(b"dropout") % 2**31))))
      True
    """
    return jax.random.fold_in(key, zlib.crc32(name.encode()) % 2**31)


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
      train_fn: ``(params, state, x) -> (outputs, state)`` in training mode (``None``: ``apply_fn``);
        with random streams ``(params, state, x, rng, random_streams)``.
      eval_fn: ``(params, state, x) -> outputs`` (``None``: ``apply_fn``).
      has_state: whether ``state_fn`` returns any array (decided when bound).
      source: where the model came from, ``{"file", "factory", "sha256", "code_sha256"}`` for a model read by
        :func:`landscape.model_files.from_file` (recorded with a run), else ``None``.
      spec: its :class:`~landscape.permutation.PermutationSpec` when the user gave one (a model
        file's ``permutation_spec``), for weight matching; ``None``: unknown.
      random_streams: the names of the random streams its training mode draws from (a Linen
        module's ``rngs`` names such as ``"dropout"``, found when bound; an NNX module's
        ``RngKey`` paths); empty: none.  A training-mode pass of such a model needs a noise key
        (``apply_train(..., rng=key)``), from which every stream gets :func:`stream_key`.
      streams_fn: ``(params, state, x) -> names`` finds the streams when bound (Linen).

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
    random_streams: tuple[str, ...] = ()
    streams_fn: Callable[[Any, Any, jax.Array], tuple[str, ...]] | None = None

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

    def for_inputs(self, x) -> FlaxModel:
        """This model bound to inputs shaped like ``x``'s examples, with as many classes as it
        outputs on them (for a model met without a data set: :func:`landscape.permutation.infer_spec`).

        Args:
          x: ``(N, ...)`` example inputs (only their shape matters).

        Returns:
          the bound model (:meth:`bind`).

        Examples:
          >>> import flax.linen as nn
          >>> ls.models.as_model(nn.Dense(3)).for_inputs(jnp.zeros((5, 4))).out_features
          3
        """
        x1 = jax.ShapeDtypeStruct((1, *np.shape(x)[1:]), jnp.float32)
        params = jax.eval_shape(self.init_fn, jax.random.key(0), x1)
        state = {} if self.state_fn is None else jax.eval_shape(self.state_fn, jax.random.key(0), x1)
        out = jax.eval_shape(self.eval_fn or (lambda p, s, v: self.apply_fn(p, v)), params, state, x1)
        return self.bind(np.shape(x)[1:], int(out.shape[-1]))

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
            if bound.streams_fn is not None:
                bound = dataclasses.replace(bound, random_streams=tuple(bound.streams_fn(params, state, x)))
            outs = [jax.eval_shape(functools.partial(bound.apply_train, rng=jax.random.key(0)), params, state, x)[0],
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

    def apply_train(self, params, state, x: jax.Array, rng: jax.Array | None = None):
        """``(outputs (N, K), new state)`` in training mode (dropout active, batch statistics).

        Args:
          params: one member's parameters.
          state: its state.
          x: ``(N, ...)`` inputs.
          rng: the pass's noise key, needed when the model has :attr:`random_streams` (each stream
            draws from :func:`stream_key`); ignored otherwise.

        Returns:
          ``(outputs (N, K), new state)``.

        Raises:
          ConfigError: a model with random streams and no ``rng``.
        """
        if self.train_fn is None:
            return self.apply_fn(params, x), state
        if not self.random_streams:
            return self.train_fn(params, state, x)
        if rng is None:
            raise ConfigError(f"{self.name} draws random numbers in training mode (streams "
                              f"{', '.join(self.random_streams)}): pass the pass's noise key, apply_train(..., rng=key)")
        return self.train_fn(params, state, x, rng, self.random_streams)

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
        """One line: the model's class name, its input shape, its random streams and where it came from."""
        where = f", {self.source['file']}:{self.source['factory']}" if self.source else ""
        noise = f", random streams {', '.join(self.random_streams)}" if self.random_streams else ""
        return f"{self.name} (user model, inputs {self.in_shape}{noise}{where})"

    def permutation_spec(self) -> PermutationSpec:
        """The permutation structure the user gave (``spec``), else the one read from the traced
        model (:func:`landscape.permutation.infer_spec` on 8 random examples, certified; never
        from parameter names).

        Returns:
          a :class:`~landscape.permutation.PermutationSpec`.

        Raises:
          ConfigError: none was given and the model has an operation the inference cannot
            prove equivariant (named), with how to give one.
        """
        if self.spec is not None:
            return self.spec
        self._require_bound()
        return _inferred_spec(self)

    def to_dict(self) -> dict:
        """JSON-ready description for a run directory: name, input shape, classes, where it came
        from, and its parameter and state shapes (a model given to load the run must match
        them; :func:`landscape.model_files.restore`)."""
        self._require_bound()
        return {"name": self.name, "in_shape": list(self.in_shape), "out_features": self.out_features,
                "source": self.source, "param_shapes": {k: list(v) for k, v in self.param_shapes().items()},
                "state_shapes": {k: list(v) for k, v in self.state_shapes().items()},
                **({"random_streams": list(self.random_streams)} if self.random_streams else {})}


@functools.lru_cache(maxsize=32)
def _inferred_spec(model: FlaxModel) -> PermutationSpec:
    """A bound user model's inferred spec, traced once per model object."""
    from .permutation import infer_spec

    try:
        return infer_spec(model, jax.random.normal(jax.random.key(0), (8, *model.in_shape)))
    except ConfigError as exc:
        raise ConfigError(f"{model.name}: weight matching needs its permutation structure, and it could not be "
                          f"inferred ({exc}); define permutation_spec (a landscape.permutation.PermutationSpec) in "
                          "its model file, or pass spec= to landscape.minima.align") from None


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
    flag of its ``__call__`` (:data:`TRAIN_FLAGS`) is passed in both modes.  The random streams
    its training mode asks for (``self.make_rng(name)``: ``nn.Dropout``'s ``"dropout"``, any
    other name) are found when it is bound, and each is given :func:`stream_key` of the pass's
    noise key; evaluation mode draws nothing."""
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

    def train(params, st, x, rng=None, streams=()):
        rngs = {} if rng is None else {name: stream_key(rng, name) for name in streams}
        if not st:
            return module.apply({"params": params}, x, **mode(True), rngs=rngs), st
        out, new = module.apply({"params": params, **st}, x, **mode(True), mutable=list(st), rngs=rngs)
        return out, {**st, **flax.core.unfreeze(new)}

    def evaluate(params, st, x):
        return module.apply({"params": params, **st}, x, **mode(False))

    def streams(params, st, x):
        """The names the training mode asks for, one at a time: Linen says which one is missing."""
        found: list[str] = []
        for _ in range(64):
            try:
                jax.eval_shape(lambda p, s, v: train(p, s, v, jax.random.key(0), tuple(found)), params, st, x)
            except flax.errors.InvalidRngError as exc:
                name = re.search(r'needs PRNG for "([^"]+)"', str(exc))
                if name is None or name.group(1) in found:
                    raise
                found.append(name.group(1))
                continue
            break
        return tuple(sorted(found))

    return FlaxModel(init, apply, type(module).__name__, state_fn=state, train_fn=train, eval_fn=evaluate,
                     streams_fn=streams)


def from_nnx(factory) -> FlaxModel:
    """An NNX model given as ``factory(rngs) -> nnx.Module``: parameters are the pure-dict form
    of its ``nnx.Param`` state; its ``nnx.BatchStat`` variables (BatchNorm's running averages)
    are its state, ``{"batch_stats": ...}``.  ``apply`` merges them into a clone of the module's
    structure; a module with state or random streams (``nnx.Dropout``) runs in ``train()`` mode in
    training steps (its statistics read back afterwards) and in ``eval()`` mode otherwise.  Its
    random streams are its ``nnx.RngKey`` variables, named by their paths: in a training step each
    is replaced by :func:`stream_key` of the step's noise key (its count zero), inside the trace,
    so the module's own ``nnx.Rngs`` are never mutated across jit and vmap."""
    from flax import nnx

    try:
        probe = nnx.eval_shape(lambda: factory(nnx.Rngs(0)))
    except Exception as exc:  # not a factory of rngs: say what is accepted
        raise ConfigError(f"a model must be a landscape.MLP, a flax.linen.Module, an (init, apply) pair or an NNX "
                          f"factory rngs -> nnx.Module; calling {getattr(factory, '__name__', factory)!r} with "
                          f"nnx.Rngs failed: {exc}") from None
    if not isinstance(probe, nnx.Module):
        raise ConfigError(f"an NNX factory must return an nnx.Module, got {type(probe).__name__}")
    graphdef, template, stats, keys, counts, rest = nnx.split(factory(nnx.Rngs(0)), nnx.Param, nnx.BatchStat,
                                                               nnx.RngKey, nnx.RngCount, ...)
    stateful = bool(jax.tree_util.tree_leaves(stats))
    key_dict = nnx.to_pure_dict(keys)
    streams = tuple(key_paths(key_dict))
    modal = stateful or bool(streams)  # train() / eval() matter

    def init(key, x):
        return nnx.to_pure_dict(nnx.split(factory(nnx.Rngs(key)), nnx.Param, ...)[1])

    def state(key, x):
        if not stateful:
            return {}
        return {"batch_stats": nnx.to_pure_dict(nnx.split(factory(nnx.Rngs(key)), nnx.Param, nnx.BatchStat, ...)[2])}

    def merged(params, st, rng=None):
        """A fresh module from the pure parameters and state; its random streams (cloned inside
        the trace, so that jit and vmap may mutate them) keyed by ``rng``, their counts zero."""
        p = nnx.clone(template)
        nnx.replace_by_pure_dict(p, params)
        s = nnx.clone(stats)
        if stateful:
            nnx.replace_by_pure_dict(s, st["batch_stats"])
        k, c = nnx.clone(keys), nnx.clone(counts)
        if rng is not None:
            leaves = [stream_key(rng, name) for name in streams]
            nnx.replace_by_pure_dict(k, jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(key_dict), leaves))
        return nnx.merge(graphdef, p, s, k, c, rest)

    def apply(params, x):
        module = merged(params, None)
        if modal:
            module.eval()  # dropout off
        return module(x)

    def train(params, st, x, rng=None, names=()):
        if not modal:
            return apply(params, x), st
        module = merged(params, st, rng)
        module.train()  # dropout on, batch statistics; the running averages are updated in place
        out = module(x)
        if not stateful:
            return out, st
        return out, {"batch_stats": nnx.to_pure_dict(nnx.split(module, nnx.Param, nnx.BatchStat, ...)[2])}

    def evaluate(params, st, x):
        if not modal:
            return apply(params, x)
        module = merged(params, st)
        module.eval()  # the running averages, dropout off
        return module(x)

    return FlaxModel(init, apply, type(probe).__name__, state_fn=state, train_fn=train, eval_fn=evaluate,
                     random_streams=streams)


def input_shape(model) -> tuple:
    """One example's input shape: a user model's own, a built-in model's flattened row."""
    return model.in_shape if isinstance(model, FlaxModel) else (model.in_features,)


def forward_jaxpr(model):
    """The traced training-mode forward pass of a bound model on one example (abstract:
    nothing is computed)."""
    model._require_bound()
    params = jax.eval_shape(model.init, jax.random.key(0))
    state = jax.eval_shape(model.init_state, jax.random.key(0))
    return jax.make_jaxpr(lambda p, s, x: model.apply_train(p, s, x, rng=jax.random.key(0))[0])(
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
