"""The built-in ResNet (:class:`ResNet`, He et al. 2016): a configuration over a Flax Linen
module, run through :class:`~landscape.models.adapters.FlaxModel` for its BatchNorm state.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from ..core.errors import ConfigError
from .adapters import FlaxModel, from_linen
from .base import ACTIVATIONS, INITIALIZERS, ImageModel, check_units, for_init, known_fields, output_fn
from .permutation import PermutationSpec

__all__ = ["ResNet"]


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
        return output_fn(self.output_activation)(x)


@dataclasses.dataclass(frozen=True)
class ResNet(ImageModel):
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
        check_units(self.activation, self.output_activation, self.kernel_init)
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
        return dataclasses.replace(from_linen(module), name="ResNet", in_shape=(self.in_features,),
                                   out_features=self.out_features, has_state=self.stateful)

    def init(self, key: jax.Array) -> dict:
        """Fresh parameters from ``key`` (one compiled program per configuration).

        Args:
          key: PRNG key.

        Returns:
          a parameter pytree (no member axis).
        """
        return _compiled_init(for_init(self))[0](key)

    def init_state(self, key: jax.Array) -> dict:
        """Fresh state: ``{"batch_stats": ...}`` (means 0, variances 1) with BatchNorm, else ``{}``.

        Args:
          key: PRNG key.

        Returns:
          a state pytree (``{}`` without state).
        """
        return _compiled_init(for_init(self))[1](key)

    def apply(self, params, x: jax.Array) -> jax.Array:
        """Outputs ``(N, K)``; refused with BatchNorm (:func:`with_statistics`).

        Args:
          params: one member's parameters (no member axis).
          x: ``(N, ...)`` inputs.

        Returns:
          ``(N, K)`` outputs.
        """
        return self._flax().apply(params, x)

    def apply_train(self, params, state, x: jax.Array, rng: jax.Array | None = None):
        """``(outputs, new state)`` in training mode (batch statistics).

        Args:
          params: one member's parameters.
          state: its state.
          x: ``(N, ...)`` inputs.
          rng: ignored (no random layers).

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
        return cls(**{**known_fields(cls, d), "image_shape": None if shape is None else tuple(shape)})


@functools.lru_cache(maxsize=32)
def _compiled_init(model: ResNet):
    """Jitted ``init`` and ``init_state`` of a built-in configuration: run op by op, a ResNet's
    initialisation takes seconds of small compilations."""
    flax_model = model._flax()
    return jax.jit(flax_model.init), jax.jit(flax_model.init_state)
