"""The built-in fully connected network (:class:`MLP`) and its Flax Linen module.
"""

from __future__ import annotations

import dataclasses
import math

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from ..core.errors import ConfigError
from .base import ACTIVATIONS, INITIALIZERS, Stateless, check_units, for_init, known_fields, output_fn
from .permutation import PermutationSpec

__all__ = ["MLP"]


class _DenseFeaturesMajor(nn.Module):
    """A Dense layer (parameters ``kernel (in, out)`` and ``bias (out,)``, as Linen's ``nn.Dense``
    names and initialises them) on feature-major activations: ``(in, N) -> (out, N)``."""

    features: int
    kernel_init: object

    @nn.compact
    def __call__(self, h):
        kernel = self.param("kernel", self.kernel_init, (h.shape[0], self.features), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,), jnp.float32)
        h, kernel, bias = nn.dtypes.promote_dtype(h, kernel, bias)
        return lax.dot_general(kernel, h, (((0,), (0,)), ((), ()))) + bias[:, None]


class _MLPModule(nn.Module):
    """The network, computed feature-major: the examples on the last axis of every activation.

    The parameters, their names and their initialisation are ``nn.Dense``'s; only the layout of
    the activations differs (``(width, N)`` instead of ``(N, width)``), which keeps every product of
    the forward and backward pass in a form XLA:CPU's matrix kernels take without copies — in
    particular the weight gradients, which contract over the examples (a 64-seed full-batch sweep
    about a quarter faster on 2 cores; measured in docs/explanation/performance.md).  The numbers
    equal ``nn.Dense``'s to float32 rounding."""

    widths: tuple[int, ...]
    activation: str
    output_activation: str
    kernel_init: str

    @nn.compact
    def __call__(self, x):
        act = ACTIVATIONS[self.activation]
        init = INITIALIZERS[self.kernel_init]()
        lead = x.shape[:-1]
        h = x.reshape(-1, x.shape[-1]).T
        for i, w in enumerate(self.widths):
            h = _DenseFeaturesMajor(w, init, name=f"Dense_{i}")(h)
            if i < len(self.widths) - 1:
                h = act(h)
        return output_fn(self.output_activation)(h.T.reshape(lead + (h.shape[0],)))


@dataclasses.dataclass(frozen=True)
class MLP(Stateless):
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
        check_units(self.activation, self.output_activation, self.kernel_init)
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
        return cls(**{**known_fields(cls, d), "hidden": tuple(d.get("hidden", ()))})

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
        variables = for_init(self)._module().init(key, jnp.zeros((1, self.in_features), jnp.float32))
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
