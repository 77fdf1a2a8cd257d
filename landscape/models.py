"""The built-in Flax MLP, its functional view, losses and accuracy.

The Flax (Linen) module lives here and nowhere else: the rest of the library sees only the
pure functions ``model.init(key) -> params`` and ``model.apply(params, x) -> outputs`` on
plain nested-dict parameter pytrees ``{"Dense_0": {"kernel": (D, H1), "bias": (H1,)}, ...}``.
Kernels are ``(in, out)`` as everywhere in Flax.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from .data import Dataset
from .errors import ConfigError
from .permutation import PermutationSpec
from .tree import key_paths

__all__ = [
    "ACTIVATIONS",
    "INITIALIZERS",
    "LOSSES",
    "MLP",
    "CNN",
    "BUILTIN",
    "model_from_dict",
    "FlaxModel",
    "as_model",
    "is_module_instance",
    "convolutional",
    "ResNet",
    "STATISTICS",
    "TRAIN_FLAGS",
    "with_statistics",
    "population_statistics",
    "running_average_rates",
    "mse",
    "cross_entropy",
    "accuracy",
    "output_loss",
    "for_loss",
    "loss_function",
    "metrics",
    "loss_fn",
    "LossParts",
    "BatchedLoss",
    "minibatch_loss",
    "per_example_loss",
    "metrics_fn",
    "MLPMetrics",
    "ModelMetrics",
]

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


class _MLPModule(nn.Module):
    widths: tuple[int, ...]
    activation: str
    output_activation: str
    kernel_init: str

    @nn.compact
    def __call__(self, x):
        act = ACTIVATIONS[self.activation]
        init = INITIALIZERS[self.kernel_init]()
        for i, w in enumerate(self.widths):
            x = nn.Dense(w, kernel_init=init, name=f"Dense_{i}")(x)
            x = act(x) if i < len(self.widths) - 1 else _output_fn(self.output_activation)(x)
        return x


def _output_fn(name: str) -> Callable[[jax.Array], jax.Array]:
    """The output non-linearity ``name``; ``"auto"`` must have been decided by the loss first."""
    if name == "auto":
        raise ConfigError("output_activation='auto' is decided by the loss (sigmoid for mse, identity for "
                          "cross_entropy): train with train_ensemble, evaluate with metrics_fn / loss_fn, or call "
                          "landscape.models.for_loss(model, loss) first")
    return ACTIVATIONS[name]


def _for_init(model):
    """``model`` with an undecided output non-linearity set to identity: initial parameters do
    not depend on it."""
    return dataclasses.replace(model, output_activation="identity") if model.output_activation == "auto" else model


def _check_units(activation: str, output_activation: str, kernel_init: str) -> None:
    """The options the built-in models share, validated with one clear message each."""
    if activation not in ACTIVATIONS or activation == "identity":
        raise ConfigError(f"unknown activation {activation!r}; choose from sigmoid, tanh, relu, gelu")
    if output_activation not in ("auto", "identity", "sigmoid"):
        raise ConfigError(f"output_activation must be 'auto', 'identity' or 'sigmoid', got {output_activation!r}")
    if kernel_init not in INITIALIZERS:
        raise ConfigError(f"unknown kernel_init {kernel_init!r}; choose from {', '.join(INITIALIZERS)}")


def _known_fields(cls, d: dict) -> dict:
    """``d`` if every key is a field of the dataclass ``cls`` (a stored configuration), else a ConfigError."""
    unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ConfigError(f"unknown model fields {sorted(unknown)}")
    return dict(d)


class _Stateless:
    """The state protocol of a model without mutable state: every model offers
    ``init_state(key) -> state``, ``apply_train(params, state, x) -> (outputs, state)`` and
    ``apply_eval(params, state, x) -> outputs``; here the state is ``{}`` and both are ``apply``."""

    stateful = False  # a class attribute, not a dataclass field

    def init_state(self, key: jax.Array) -> dict:
        """No state: ``{}``."""
        return {}

    def apply_train(self, params, state, x: jax.Array):
        """Outputs for a training step and the (empty) state."""
        return self.apply(params, x), state

    def apply_eval(self, params, state, x: jax.Array) -> jax.Array:
        """Outputs for evaluation."""
        return self.apply(params, x)

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        """No state arrays."""
        return {}


@dataclasses.dataclass(frozen=True)
class MLP(_Stateless):
    """Configuration of a fully connected network ``D -> hidden... -> K``.

    Attributes:
      hidden: widths of the hidden layers, e.g. ``(16, 16)``; ``()`` is a linear model.
      activation: hidden non-linearity: ``sigmoid``, ``tanh``, ``relu`` or ``gelu``.
      output_activation: applied to the last layer: ``identity`` (logits; use with
        cross-entropy), ``sigmoid`` (the classic squared-difference network), or ``auto``
        (the default, as the command line's): decided by the loss — sigmoid for ``mse``,
        identity for ``cross_entropy`` — when the model meets it (:func:`for_loss`).
      kernel_init: ``lecun_normal`` (Flax's default), ``glorot_uniform``, ``glorot_normal``,
        ``he_normal`` or ``normal`` (N(0, 1)); biases start at zero.
      in_features: ``D`` and ``K``; ``None`` until bound to a data set by
      out_features: ``D`` and ``K``; ``None`` until bound to a data set by
        :meth:`for_data`.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> model = ls.MLP(hidden=(16, 16), activation="tanh", output_activation="identity").for_data(data)
      >>> model.describe(), model.num_params()
      ('MLP 2-16-16-3 tanh (output identity)', 371)
      >>> model.apply(model.init(jax.random.key(0)), data.test.x).shape
      (32, 3)
    """

    hidden: tuple[int, ...] = (16, 16)
    activation: str = "sigmoid"
    output_activation: str = "auto"
    kernel_init: str = "lecun_normal"
    in_features: int | None = None
    out_features: int | None = None

    def __post_init__(self):
        try:
            hidden = tuple(int(h) for h in self.hidden)
        except (TypeError, ValueError):
            raise ConfigError(f"hidden widths must be integers, got {self.hidden!r}") from None
        object.__setattr__(self, "hidden", hidden)
        if any(h < 1 for h in hidden):
            raise ConfigError(f"hidden widths must be positive, got {hidden}")
        _check_units(self.activation, self.output_activation, self.kernel_init)
        for name in ("in_features", "out_features"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 1):
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")

    # ------------------------------------------------------------------ binding and description
    def for_data(self, data) -> MLP:
        """This configuration with ``in_features``/``out_features`` taken from a :class:`Dataset`.

        Args:
          data: a :class:`~landscape.data.Dataset`.

        Returns:
          the bound model.

        Raises:
          ConfigError: the model was bound to other sizes (or cannot take these inputs).
        """
        d, k = data.input_dim, data.num_classes
        if self.in_features not in (None, d) or self.out_features not in (None, k):
            raise ConfigError(
                f"model expects {self.in_features} inputs and {self.out_features} classes, "
                f"data set {data.name!r} has {d} and {k}"
            )
        return dataclasses.replace(self, in_features=d, out_features=k)

    @property
    def widths(self) -> tuple[int, ...]:
        """Output width of every Dense layer, ``hidden + (K,)``."""
        self._require_bound()
        return self.hidden + (self.out_features,)

    @property
    def layer_names(self) -> tuple[str, ...]:
        """Names of the Dense layers in the parameter pytree, input to output."""
        return tuple(f"Dense_{i}" for i in range(len(self.hidden) + 1))

    def describe(self) -> str:
        """One line: ``MLP 64-16-16-10 sigmoid (output sigmoid)``."""
        return (f"MLP {self.in_features}-{'-'.join(map(str, self.widths))} {self.activation} "
                f"(output {self.output_activation})")

    def to_dict(self) -> dict:
        """JSON-ready configuration (inverse of :meth:`from_dict`)."""
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> MLP:
        """Rebuild from :meth:`to_dict` output.

        Args:
          d: the dict :meth:`to_dict` wrote (a run's ``meta.json`` model entry).

        Returns:
          the configuration.
        """
        return cls(**{**_known_fields(cls, d), "hidden": tuple(d.get("hidden", ()))})

    def _require_bound(self):
        if self.in_features is None or self.out_features is None:
            raise ConfigError("model is not bound to data: call model.for_data(dataset) first")

    def _module(self) -> _MLPModule:
        return _MLPModule(self.widths, self.activation, self.output_activation, self.kernel_init)

    # ------------------------------------------------------------------ functional view
    def init(self, key: jax.Array) -> dict:
        """Fresh parameters ``{"Dense_i": {"kernel": (in, out), "bias": (out,)}}`` from ``key``.

        Args:
          key: PRNG key.

        Returns:
          a parameter pytree (no member axis).
        """
        self._require_bound()
        variables = _for_init(self)._module().init(key, jnp.zeros((1, self.in_features), jnp.float32))
        return flax.core.unfreeze(variables["params"])

    def apply(self, params: dict, x: jax.Array) -> jax.Array:
        """Network outputs ``(N, K)`` for inputs ``x`` of shape ``(N, D)``.

        Args:
          params: one member's parameters (no member axis).
          x: ``(N, ...)`` inputs.

        Returns:
          ``(N, K)`` outputs.
        """
        self._require_bound()
        return self._module().apply({"params": params}, x)

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """``{"Dense_i/kernel": (in, out), "Dense_i/bias": (out,)}`` from the configuration alone."""
        dims = (self.in_features,) + self.widths
        out = {}
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            out[f"Dense_{i}/kernel"] = (a, b)
            out[f"Dense_{i}/bias"] = (b,)
        return out

    def num_params(self) -> int:
        """Number of trainable scalars."""
        return sum(math.prod(s) for s in self.param_shapes().values())

    def permutation_spec(self) -> PermutationSpec:
        """Each hidden layer's units, named after the layer (``"Dense_0"``, ...): its kernel's
        columns and bias, and the next kernel's rows (:mod:`landscape.permutation`)."""
        names = self.layer_names
        axes = {}
        for i, name in enumerate(names):
            out = name if i < len(names) - 1 else None
            axes[f"{name}/kernel"] = (names[i - 1] if i else None, out)
            axes[f"{name}/bias"] = (out,)
        return PermutationSpec(axes)

    def activation_width(self) -> int:
        """Floats of forward activations per example (the summed layer widths): the unit of
        :func:`landscape.train.device_bytes_per_member`'s activation estimate."""
        return sum(self.widths)


class _ImageModel:
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


class _CNNModule(nn.Module):
    channels: tuple[int, ...]
    kernel: int
    activation: str
    output_activation: str
    image_shape: tuple[int, int, int]
    num_classes: int
    kernel_init: str

    @nn.compact
    def __call__(self, x):
        init = INITIALIZERS[self.kernel_init]()
        x = x.reshape((x.shape[0], *self.image_shape))
        for c in self.channels:
            x = ACTIVATIONS[self.activation](nn.Conv(c, (self.kernel, self.kernel), padding="SAME", kernel_init=init)(x))
            if x.shape[1] >= 2 and x.shape[2] >= 2:
                x = nn.avg_pool(x, (2, 2), (2, 2))
        x = nn.Dense(self.num_classes, kernel_init=init)(x.reshape(x.shape[0], -1))
        return _output_fn(self.output_activation)(x)


@dataclasses.dataclass(frozen=True)
class CNN(_Stateless, _ImageModel):
    """Configuration of a small convolutional network for image data sets.

    Each layer: a ``kernel × kernel`` convolution (``SAME`` padding, ``channels[i]`` output
    channels), the activation, and 2×2 average pooling while the image is at least 2×2; then
    one Dense layer to the ``K`` classes.  Inputs are the data set's flattened rows, folded back
    into its ``image_shape`` (digits: 8×8×1).  Parameters ``{"Conv_i": {"kernel": (k, k, in,
    out), "bias": (out,)}, "Dense_0": {...}}``.

    Attributes:
      channels: output channels of the convolutions, e.g. ``(8, 16)``.
      kernel: convolution size.
      activation: as for :class:`MLP`.
      output_activation: as for :class:`MLP`.
      kernel_init: as for :class:`MLP`.
      image_shape: ``(H, W, C)``; ``None`` until bound by :meth:`for_data`.
      out_features: ``K``; ``None`` until bound.

    Examples:
      >>> digits = ls.data.load("digits")                      # 8 x 8 x 1 images
      >>> cnn = ls.CNN(channels=(2,), output_activation="identity").for_data(digits)
      >>> {k: v["kernel"].shape for k, v in cnn.init(jax.random.key(0)).items()}
      {'Conv_0': (3, 3, 1, 2), 'Dense_0': (32, 10)}
    """

    channels: tuple[int, ...] = (8, 16)
    kernel: int = 3
    activation: str = "relu"
    output_activation: str = "auto"
    kernel_init: str = "lecun_normal"
    image_shape: tuple[int, ...] | None = None
    out_features: int | None = None

    def __post_init__(self):
        try:
            channels = tuple(int(c) for c in self.channels)
        except (TypeError, ValueError):
            raise ConfigError(f"channels must be integers, got {self.channels!r}") from None
        object.__setattr__(self, "channels", channels)
        if not channels or any(c < 1 for c in channels):
            raise ConfigError(f"a CNN needs at least one convolution with positive channels, got {channels}")
        if not isinstance(self.kernel, int) or self.kernel < 1:
            raise ConfigError(f"kernel must be a positive integer, got {self.kernel!r}")
        _check_units(self.activation, self.output_activation, self.kernel_init)
        if self.image_shape is not None:
            object.__setattr__(self, "image_shape", tuple(int(n) for n in self.image_shape))

    def _module(self) -> _CNNModule:
        return _CNNModule(self.channels, self.kernel, self.activation, self.output_activation, self.image_shape,
                          self.out_features, self.kernel_init)

    def init(self, key: jax.Array) -> dict:
        """Fresh parameters from ``key`` (biases zero).

        Args:
          key: PRNG key.

        Returns:
          a parameter pytree (no member axis).
        """
        self._require_bound()
        return flax.core.unfreeze(_for_init(self)._module().init(key, jnp.zeros((1, self.in_features),
                                                                               jnp.float32))["params"])

    def apply(self, params: dict, x: jax.Array) -> jax.Array:
        """Outputs ``(N, K)`` for flattened images ``x (N, H W C)``.

        Args:
          params: one member's parameters (no member axis).
          x: ``(N, ...)`` inputs.

        Returns:
          ``(N, K)`` outputs.
        """
        self._require_bound()
        return self._module().apply({"params": params}, x)

    def _spatial(self) -> list[tuple[int, int]]:
        h, w, _ = self.image_shape
        out = []
        for _ in self.channels:
            out.append((h, w))
            if h >= 2 and w >= 2:
                h, w = h // 2, w // 2
        return out + [(h, w)]

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """``{"Conv_i/kernel": (k, k, in, out), "Conv_i/bias": (out,), "Dense_0/...": ...}`` from
        the configuration alone."""
        self._require_bound()
        out, c_in = {}, self.image_shape[2]
        for i, c in enumerate(self.channels):
            out[f"Conv_{i}/kernel"] = (self.kernel, self.kernel, c_in, c)
            out[f"Conv_{i}/bias"] = (c,)
            c_in = c
        h, w = self._spatial()[-1]
        out["Dense_0/kernel"] = (h * w * c_in, self.out_features)
        out["Dense_0/bias"] = (self.out_features,)
        return out

    def num_params(self) -> int:
        """Number of trainable scalars."""
        return sum(math.prod(s) for s in self.param_shapes().values())

    def permutation_spec(self) -> PermutationSpec:
        """Each convolution's output channels, named after it (``"Conv_0"``, ...): its kernel's
        last axis and bias, the next kernel's input channels, and — for the last — the Dense
        read-out's rows, its kernel seen as ``(H W, C, K)`` (the flattened feature map)."""
        self._require_bound()
        convs = [f"Conv_{i}" for i in range(len(self.channels))]
        axes = {}
        for i, name in enumerate(convs):
            axes[f"{name}/kernel"] = (None, None, convs[i - 1] if i else None, name)
            axes[f"{name}/bias"] = (name,)
        h, w = self._spatial()[-1]
        axes["Dense_0/kernel"] = (None, convs[-1], None)
        axes["Dense_0/bias"] = (None,)
        return PermutationSpec(axes, views={"Dense_0/kernel": (h * w, self.channels[-1], self.out_features)})

    def activation_width(self) -> int:
        """Floats of forward activations per example: every convolution's output (before and
        after pooling) and the outputs."""
        sizes = self._spatial()
        conv = sum(h * w * c for (h, w), c in zip(sizes[:-1], self.channels))
        pooled = sum(h * w * c for (h, w), c in zip(sizes[1:], self.channels))
        return conv + pooled + self.out_features

    def describe(self) -> str:
        """One line: ``CNN 8x8x1 conv 8-16 (3x3, relu, avg-pool 2x2) -> 10 (output identity)``."""
        shape = "x".join(map(str, self.image_shape)) if self.image_shape else "?"
        return (f"CNN {shape} conv {'-'.join(map(str, self.channels))} ({self.kernel}x{self.kernel}, "
                f"{self.activation}, avg-pool 2x2) -> {self.out_features} (output {self.output_activation})")

    def to_dict(self) -> dict:
        """JSON-ready configuration (inverse of :meth:`from_dict`)."""
        d = dataclasses.asdict(self)
        d["channels"] = list(self.channels)
        d["image_shape"] = None if self.image_shape is None else list(self.image_shape)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> CNN:
        """Rebuild from :meth:`to_dict` output.

        Args:
          d: the dict :meth:`to_dict` wrote (a run's ``meta.json`` model entry).

        Returns:
          the configuration.
        """
        shape = d.get("image_shape")
        return cls(**{**_known_fields(cls, d), "channels": tuple(d.get("channels", ())),
                      "image_shape": None if shape is None else tuple(shape)})


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
      source: where the model came from, ``{"file", "factory", "sha256"}`` for a model read by
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
        return int(sum(math.prod(v.aval.shape) for eqn in _forward_jaxpr(self).eqns for v in eqn.outvars
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


NORMS = ("batch", "layer", "none")


class _ResNetModule(nn.Module):
    stages: tuple[int, ...]
    blocks: int
    skip: bool
    norm: str
    activation: str
    output_activation: str
    image_shape: tuple[int, int, int]
    num_classes: int
    kernel_init: str
    momentum: float

    @nn.compact
    def __call__(self, x, train: bool = False):
        act, init = ACTIVATIONS[self.activation], INITIALIZERS[self.kernel_init]()
        bias = self.norm == "none"  # a normalisation layer brings its own bias

        def conv(h, width, size, stride, name):
            return nn.Conv(width, (size, size), strides=stride, padding="SAME", use_bias=bias, kernel_init=init,
                           name=name)(h)

        def normalize(h, name):
            if self.norm == "batch":
                return nn.BatchNorm(use_running_average=not train, momentum=self.momentum, name=name)(h)
            if self.norm == "layer":  # over each example's whole feature map
                return nn.LayerNorm(reduction_axes=(-3, -2, -1), feature_axes=-1, name=name)(h)
            return h

        x = x.reshape((x.shape[0], *self.image_shape))
        x = act(normalize(conv(x, self.stages[0], 3, 1, "stem"), "stem_norm"))
        for s, width in enumerate(self.stages):
            for b in range(self.blocks):
                stride = 2 if s > 0 and b == 0 else 1
                name = f"stage{s}_block{b}"
                h = act(normalize(conv(x, width, 3, stride, f"{name}_conv0"), f"{name}_norm0"))
                h = normalize(conv(h, width, 3, 1, f"{name}_conv1"), f"{name}_norm1")
                if self.skip:
                    shortcut = x
                    if stride != 1 or x.shape[-1] != width:  # a 1x1 projection where the shape changes
                        shortcut = normalize(conv(x, width, 1, stride, f"{name}_proj"), f"{name}_proj_norm")
                    h = h + shortcut
                x = act(h)
        x = nn.Dense(self.num_classes, kernel_init=init, name="head")(jnp.mean(x, axis=(1, 2)))
        return _output_fn(self.output_activation)(x)


@dataclasses.dataclass(frozen=True)
class ResNet(_ImageModel):
    """Configuration of a residual network for image data sets (He et al. 2016), with or without
    its skip connections (Li et al. 2018's "ResNet" vs "ResNet-noshort").

    A 3×3 stem convolution of ``width`` channels, then ``stages`` stages of residual blocks;
    stage ``i`` has ``width * 2**i`` channels and starts with a stride-2 convolution.  A block is
    conv 3×3 → norm → activation → conv 3×3 → norm, plus its input (a 1×1 convolution and norm
    where the shape changes) when ``skip``, then the activation.  Global average pooling and one
    Dense layer to the ``K`` classes.  ``depth`` counts the weighted layers, ``2 · stages ·
    blocks + 2`` (as ResNet-20/56/110 on CIFAR-10 with 3 stages): depth 10 with 2 stages is two
    blocks per stage.  Inputs are the data set's flattened rows, folded into its ``image_shape``.

    Attributes:
      depth: weighted layers, ``2 · stages · n + 2`` for ``n >= 1`` blocks per stage.
      width: channels of the first stage.
      stages: number of stages.
      skip: keep the identity (and projection) connections.
      norm: ``"batch"`` (BatchNorm, running averages with ``momentum``: the model then has
        state), ``"layer"`` (LayerNorm over each example's feature map) or ``"none"``.
      momentum: BatchNorm's running-average rate (0.9: short trainings still settle).
      activation: as for :class:`MLP`.
      output_activation: as for :class:`MLP`.
      kernel_init: as for :class:`MLP`.
      image_shape: ``(H, W, C)``; ``None`` until bound by :meth:`for_data`.
      out_features: ``K``; ``None`` until bound.

    Examples:
      >>> digits = ls.data.load("digits")
      >>> net = ls.models.ResNet(depth=6, width=4, output_activation="identity").for_data(digits)
      >>> params, state = net.init(jax.random.key(0)), net.init_state(jax.random.key(0))
      >>> net.describe(), net.stateful                          # BatchNorm: running averages are state
      ('ResNet-6 8x8x1 widths 4-8 (skip, batch norm, relu) -> 10 (output identity)', True)
    """

    depth: int = 10
    width: int = 8
    stages: int = 2
    skip: bool = True
    norm: str = "batch"
    momentum: float = 0.9
    activation: str = "relu"
    output_activation: str = "auto"
    kernel_init: str = "lecun_normal"
    image_shape: tuple[int, ...] | None = None
    out_features: int | None = None

    def __post_init__(self):
        for name in ("depth", "width", "stages"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if self.depth < 2 * self.stages + 2 or (self.depth - 2) % (2 * self.stages):
            ok = ", ".join(str(2 * self.stages * n + 2) for n in (1, 2, 3, 4))
            raise ConfigError(f"a ResNet of {self.stages} stages has depth 2*{self.stages}*n+2 ({ok}, ...), "
                              f"got {self.depth}")
        norm = "none" if self.norm is None else self.norm
        if norm not in NORMS:
            raise ConfigError(f"norm must be one of {', '.join(NORMS)}, got {self.norm!r}")
        object.__setattr__(self, "norm", norm)
        if not isinstance(self.skip, bool):
            raise ConfigError(f"skip must be True or False, got {self.skip!r}")
        if not 0.0 <= float(self.momentum) < 1.0:
            raise ConfigError(f"momentum must lie in [0, 1), got {self.momentum!r}")
        _check_units(self.activation, self.output_activation, self.kernel_init)
        if self.image_shape is not None:
            object.__setattr__(self, "image_shape", tuple(int(n) for n in self.image_shape))

    @property
    def blocks(self) -> int:
        """Residual blocks per stage."""
        return (self.depth - 2) // (2 * self.stages)

    @property
    def stateful(self) -> bool:
        """BatchNorm networks carry running statistics."""
        return self.norm == "batch"

    def _flax(self) -> FlaxModel:
        """The functional view of this configuration's Linen module (:func:`as_model`'s)."""
        self._require_bound()
        module = _ResNetModule(tuple(self.width * 2**i for i in range(self.stages)), self.blocks, self.skip,
                               self.norm, self.activation, self.output_activation, self.image_shape,
                               self.out_features, self.kernel_init, float(self.momentum))
        return dataclasses.replace(_linen(module), name="ResNet", in_shape=(self.in_features,),
                                   out_features=self.out_features, has_state=self.stateful)

    def init(self, key: jax.Array) -> dict:
        """Fresh parameters from ``key`` (one compiled program per configuration).

        Args:
          key: PRNG key.

        Returns:
          a parameter pytree (no member axis).
        """
        return _compiled_init(_for_init(self))[0](key)

    def init_state(self, key: jax.Array) -> dict:
        """Fresh state: ``{"batch_stats": ...}`` (means 0, variances 1) with BatchNorm, else ``{}``.

        Args:
          key: PRNG key.

        Returns:
          a state pytree (``{}`` without state).
        """
        return _compiled_init(_for_init(self))[1](key)

    def apply(self, params, x: jax.Array) -> jax.Array:
        """Outputs ``(N, K)``; refused with BatchNorm (:func:`with_statistics`).

        Args:
          params: one member's parameters (no member axis).
          x: ``(N, ...)`` inputs.

        Returns:
          ``(N, K)`` outputs.
        """
        return self._flax().apply(params, x)

    def apply_train(self, params, state, x: jax.Array):
        """``(outputs, new state)`` in training mode (batch statistics).

        Args:
          params: one member's parameters.
          state: its state.
          x: ``(N, ...)`` inputs.

        Returns:
          ``(outputs (N, K), new state)``.
        """
        return self._flax().apply_train(params, state, x)

    def apply_eval(self, params, state, x: jax.Array) -> jax.Array:
        """Outputs in evaluation mode (running statistics).

        Args:
          params: one member's parameters.
          state: its state (running statistics).
          x: ``(N, ...)`` inputs.

        Returns:
          ``(N, K)`` outputs.
        """
        return self._flax().apply_eval(params, state, x)

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """``{"stage0_block0_conv0/kernel": (3, 3, in, out), ...}``."""
        return self._flax().param_shapes()

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        """``{"batch_stats/<norm layer>/mean": (channels,), ...}`` (``{}`` without BatchNorm)."""
        return self._flax().state_shapes()

    def num_params(self) -> int:
        """Number of trainable scalars."""
        return sum(math.prod(s) for s in self.param_shapes().values())

    def permutation_spec(self) -> PermutationSpec:
        """The channel permutations (:mod:`landscape.permutation`).  With skip connections the
        channels a residual connection adds are one permutation per stage (``"stage0"``, ...:
        the stem's or projection's outputs and every block's second convolution in the stage);
        each block's inner channels are their own (``"stage0_block0_inner"``).  Without them
        every convolution's outputs are free (``"stem"``, ``"<block>_out"``).  BatchNorm /
        LayerNorm scales and biases, and BatchNorm's running means and variances, follow their
        channels; the read-out's rows follow the last stage (global average pooling)."""
        axes, state = {}, {}

        def conv(name, into, out):
            axes[f"{name}/kernel"] = (None, None, into, out)
            if self.norm == "none":
                axes[f"{name}/bias"] = (out,)

        def normalize(name, out):
            if self.norm != "none":
                axes[f"{name}/scale"] = axes[f"{name}/bias"] = (out,)
            if self.norm == "batch":
                state[f"batch_stats/{name}/mean"] = state[f"batch_stats/{name}/var"] = (out,)

        stream = "stage0" if self.skip else "stem"
        conv("stem", None, stream)
        normalize("stem_norm", stream)
        for s in range(self.stages):
            for b in range(self.blocks):
                name, inner = f"stage{s}_block{b}", f"stage{s}_block{b}_inner"
                conv(f"{name}_conv0", stream, inner)
                normalize(f"{name}_norm0", inner)
                if self.skip:
                    out = f"stage{s}"
                    if s > 0 and b == 0:  # the stride-2 start of a stage: a projection
                        conv(f"{name}_proj", stream, out)
                        normalize(f"{name}_proj_norm", out)
                else:
                    out = f"{name}_out"
                conv(f"{name}_conv1", inner, out)
                normalize(f"{name}_norm1", out)
                stream = out
        axes["head/kernel"] = (stream, None)
        axes["head/bias"] = (None,)
        return PermutationSpec(axes, state=state)

    def activation_width(self) -> int:
        """Floats of every intermediate value of a training-mode forward pass on one example."""
        return self._flax().activation_width()

    def describe(self) -> str:
        """One line: ``ResNet-10 8x8x1 widths 8-16 (skip, batch norm, relu) -> 10``."""
        shape = "x".join(map(str, self.image_shape)) if self.image_shape else "?"
        widths = "-".join(str(self.width * 2**i) for i in range(self.stages))
        return (f"ResNet-{self.depth} {shape} widths {widths} ({'skip' if self.skip else 'no skip'}, "
                f"{self.norm} norm, {self.activation}) -> {self.out_features} (output {self.output_activation})")

    def to_dict(self) -> dict:
        """JSON-ready configuration (inverse of :meth:`from_dict`)."""
        d = dataclasses.asdict(self)
        d["image_shape"] = None if self.image_shape is None else list(self.image_shape)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ResNet:
        """Rebuild from :meth:`to_dict` output.

        Args:
          d: the dict :meth:`to_dict` wrote (a run's ``meta.json`` model entry).

        Returns:
          the configuration.
        """
        shape = d.get("image_shape")
        return cls(**{**_known_fields(cls, d), "image_shape": None if shape is None else tuple(shape)})


@functools.lru_cache(maxsize=32)
def _compiled_init(model: ResNet):
    """Jitted ``init`` and ``init_state`` of a built-in configuration: run op by op, a ResNet's
    initialisation takes seconds of small compilations."""
    flax_model = model._flax()
    return jax.jit(flax_model.init), jax.jit(flax_model.init_state)


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


def _linen(module) -> FlaxModel:
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


def _nnx(factory) -> FlaxModel:
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
                              x)[1] for c in (0.0, 1.0, 2.0)]
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
    recomputes them, Garipov et al. 2018).  Float32 rounding is amplified by ``1 / (1 - m)``
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
    _, new = model.apply_train(params, zeros, x)
    return jax.tree_util.tree_map(lambda s, m: s / jnp.asarray(1.0 - m, s.dtype), new, rates)


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
        return FlaxModel(lambda key, x0: model.init(key), apply, f"{name} ({how} statistics)", _input_shape(model),
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


def _input_shape(model) -> tuple:
    """One example's input shape: a user model's own, a built-in model's flattened row."""
    return model.in_shape if isinstance(model, FlaxModel) else (model.in_features,)


def _forward_jaxpr(model):
    """The traced training-mode forward pass of a bound model on one example (abstract:
    nothing is computed)."""
    model._require_bound()
    params = jax.eval_shape(model.init, jax.random.key(0))
    state = jax.eval_shape(model.init_state, jax.random.key(0))
    return jax.make_jaxpr(lambda p, s, x: model.apply_train(p, s, x)[0])(
        params, state, jax.ShapeDtypeStruct((1, *_input_shape(model)), jnp.float32)).jaxpr


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
    def has_conv(jaxpr) -> bool:
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "conv_general_dilated":
                return True
            for value in eqn.params.values():  # jit, scan, cond ... carry their bodies as parameters
                for inner in value if isinstance(value, (tuple, list)) else (value,):
                    inner = getattr(inner, "jaxpr", inner)  # a ClosedJaxpr's Jaxpr
                    if hasattr(inner, "eqns") and has_conv(inner):
                        return True
        return False

    return has_conv(_forward_jaxpr(as_model(model)))


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
        return _linen(model)
    if isinstance(model, tuple) and len(model) == 2 and all(callable(f) for f in model):
        init, apply = model
        return FlaxModel(lambda key, x: init(key), apply, "init/apply pair")
    if callable(model) and not isinstance(model, type):
        return _nnx(model)
    raise ConfigError(f"a model must be a landscape.MLP, a flax.linen.Module or an (init, apply) pair; got "
                      f"{type(model).__name__}")


# ---------------------------------------------------------------------- losses and metrics


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
      name: ``"mse"`` or ``"cross_entropy"`` (also ``"ce"``, ``"xent"``).

    Returns:
      ``(outputs (N, K), labels (N,)) -> scalar``, the mean over examples.

    Raises:
      ConfigError: an unknown name.

    Examples:
      >>> outputs, labels = jnp.array([[0.2, 0.9], [0.8, 0.1]]), jnp.array([1, 0])
      >>> ls.models.output_loss("mse") is ls.models.mse, float(ls.models.output_loss("cross_entropy")(outputs, labels)) > 0
      (True, True)
    """
    aliases = {"ce": "cross_entropy", "xent": "cross_entropy", "crossentropy": "cross_entropy"}
    name = aliases.get(name, name)
    if name not in LOSSES:
        raise ConfigError(f"unknown loss {name!r}; choose 'mse' or 'cross_entropy'")
    return LOSSES[name]


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


def loss_function(name: str) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """Deprecated alias of :func:`output_loss` (kept for one release; the name was too close to
    :func:`loss_fn`, which is a loss of the parameters).

    Args:
      name: as for :func:`output_loss`.

    Returns:
      as :func:`output_loss`.

    Examples:
      >>> outputs, labels = jnp.array([[0.2, 0.9], [0.8, 0.1]]), jnp.array([1, 0])
      >>> import warnings
      >>> with warnings.catch_warnings():
      ...     warnings.simplefilter("ignore", DeprecationWarning)   # use output_loss
      ...     ls.models.loss_function("mse") is ls.models.mse
      True
    """
    import warnings

    warnings.warn("landscape.models.loss_function is deprecated and will be removed in the next release: use "
                  "output_loss (a loss of outputs) or loss_fn (a loss of parameters)", DeprecationWarning, stacklevel=2)
    return output_loss(name)


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
    out = for_loss(model, loss).apply(params, x)
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


@dataclasses.dataclass(frozen=True, eq=False)
class BatchedLoss:
    """A loss spread over mini-batches, ``sum_g weight_g sum_k loss_of(x[g][k], y[g][k])(params)``.

    The curvature functions of :mod:`landscape.hessian` accumulate its products batch by batch
    (a ``lax.scan``), so only one batch's activations are ever live: the full-data curvature of
    a set too large for one evaluation.  :func:`minibatch_loss` builds one whose batches are a
    random sample, for per-batch estimates (:func:`landscape.hessian.minibatch_curvature`).

    Attributes:
      loss_of: ``(x (B, D), y (B,)) -> LossParts``, the loss of one batch (its mean).
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

    loss_of: Callable[[jax.Array, jax.Array], LossParts]
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


def _batch_loss(model: MLP, loss: str) -> Callable[[jax.Array, jax.Array], LossParts]:
    f, per = output_loss(loss), per_example_loss(loss)
    model = for_loss(model, loss)

    def of(x, y):
        return LossParts(outputs=lambda params: model.apply(params, x), output_loss=lambda out: f(out, y),
                         per_example=lambda params: per(model.apply(params, x), y))

    return of


def _split_arrays(split) -> tuple[jax.Array, jax.Array]:
    """``(x, y)`` of a :class:`~landscape.data.Split` (or an ``(x, y)`` pair) on the device; a
    whole :class:`~landscape.data.Dataset` or anything else is refused with one clear line."""
    if isinstance(split, Dataset):
        raise ConfigError("expected one split of the data set (data.train or data.test), got the whole "
                          f"{type(split).__name__}")
    try:
        x, y = split
    except (TypeError, ValueError):
        raise ConfigError(f"expected a Split (data.train) or an (x, y) pair, got {type(split).__name__}") from None
    return jax.device_put((x, y))  # a transfer; jnp.asarray would compile a program per array


def loss_fn(model: MLP, split, loss: str, *, batch_size: int | None = None) -> LossParts | BatchedLoss:
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
      a :class:`LossParts` (Gauss–Newton and Fisher curvature available) or a :class:`BatchedLoss`.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> model = ls.MLP(hidden=(4,), output_activation="identity").for_data(data)
      >>> theta = model.init(jax.random.key(0))
      >>> loss = ls.models.loss_fn(model, data.train, "cross_entropy")
      >>> batched = ls.models.loss_fn(model, data.train, "cross_entropy", batch_size=16)
      >>> bool(jnp.allclose(loss(theta), batched(theta)))      # the same loss, 16 examples live at a time
      True
    """
    memo = _same_loss(model, split, loss, batch_size)
    if memo is not None and "loss" in memo:
        return memo["loss"]
    made = _make_loss_fn(model, split, loss, batch_size)
    if memo is not None:
        memo["loss"] = made
    return made


#: Largest data set (bytes of x and y) whose loss functions :func:`loss_fn` keeps for reuse.
_SAME_LOSS_MAX_BYTES = 64 * 2**20


def _same_loss(model, split, loss: str, batch_size: int | None) -> dict | None:
    """A slot shared by every :func:`loss_fn` call with this built-in model configuration, loss,
    batching and data *content* (a SHA-256 of the arrays), or ``None`` (another model, a large
    or unreadable data set).  The same loss function then means the same traced programs in
    :mod:`landscape.hessian`, also in the next command of a resident process."""
    import hashlib

    if type(model) not in (MLP, CNN, ResNet) or isinstance(split, Dataset):
        return None
    try:
        x, y = (np.asarray(a) for a in split)
        if x.nbytes + y.nbytes > _SAME_LOSS_MAX_BYTES:
            return None
        digest = hashlib.sha256()
        for a in (x, y):
            digest.update(f"{a.dtype.str}{a.shape}".encode())
            digest.update(np.ascontiguousarray(a).tobytes())
        return _loss_slot(model, loss, batch_size, digest.hexdigest())
    except (TypeError, ValueError):  # not an (x, y) pair of arrays, or an unhashable model: no reuse
        return None


@functools.lru_cache(maxsize=4)
def _loss_slot(model, loss: str, batch_size: int | None, digest: str) -> dict:
    return {}


def _make_loss_fn(model, split, loss: str, batch_size: int | None):
    of = _batch_loss(model, loss)
    x, y = _split_arrays(split)
    n = int(x.shape[0])
    if batch_size is None or batch_size >= n:
        return of(x, y)
    if batch_size < 1:
        raise ConfigError(f"batch_size must be positive, got {batch_size}")
    k, rest = divmod(n, int(batch_size))
    groups = [((x[: k * batch_size].reshape(k, batch_size, *x.shape[1:]), y[: k * batch_size].reshape(k, batch_size)),
               batch_size / n)]
    if rest:
        groups.append(((x[k * batch_size:][None], y[k * batch_size:][None]), rest / n))
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
    return BatchedLoss(_batch_loss(model, loss), (((x[idx], y[idx]), 1.0 / num_batches),))


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
            z = _output_fn(self.model.output_activation)(z) if last else ACTIVATIONS[self.model.activation](z)
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
