"""The built-in small convolutional network (:class:`CNN`) and its Flax Linen module.
"""

from __future__ import annotations

import dataclasses
import math

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp

from ..core.errors import ConfigError
from .base import ACTIVATIONS, INITIALIZERS, ImageModel, Stateless, check_units, for_init, known_fields, output_fn
from .permutation import PermutationSpec

__all__ = ["CNN"]


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
        return output_fn(self.output_activation)(x)


@dataclasses.dataclass(frozen=True)
class CNN(Stateless, ImageModel):
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
        check_units(self.activation, self.output_activation, self.kernel_init)
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
        return flax.core.unfreeze(for_init(self)._module().init(key, jnp.zeros((1, self.in_features),
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
        return cls(**{**known_fields(cls, d), "channels": tuple(d.get("channels", ())),
                      "image_shape": None if shape is None else tuple(shape)})
