"""The arithmetic of float32 matrix products and convolutions, and how results record it.

On NVIDIA GPUs since Ampere (A100, H100) JAX computes float32 matmuls and convolutions with
TensorFloat-32 tensor cores by default: inputs rounded to 10 mantissa bits, about three
significant digits, and on TPUs with one bfloat16 pass. Measured on an H100 against float64
references (the test suite, README "GPU and TPU"): loss values of a surface off by 0.1 %,
Hessian-vector products by up to 1.5 % per entry, Gauss–Newton products by 0.4 %, and one
test example of 40 classified differently. The ``landscape``
command therefore sets exact float32 (``--matmul-precision float32``, its default); Python
users choose with :func:`set_matmul_precision` or JAX's own ``jax_default_matmul_precision``.

Every result records the arithmetic it was computed with (:func:`matmul_precision`, in
:func:`landscape.io.environment`), and a result computed with anything but exact float32
carries it in its provenance, so a saved result is never reused for a computation of another
precision. On a CPU float32 products are exact whatever the setting.
"""

from __future__ import annotations

from .errors import ConfigError

__all__ = ["CHOICES", "set_matmul_precision", "matmul_precision"]

#: the names :func:`set_matmul_precision` accepts: exact float32; TensorFloat-32 tensor cores;
#: one bfloat16 pass; and JAX's backend default (TF32 on recent NVIDIA GPUs, bfloat16 on TPUs)
CHOICES = ("float32", "tensorfloat32", "bfloat16", "default")

_EXACT = ("highest", "float32", "F32_F32_F32")


def set_matmul_precision(name: str) -> None:
    """Set the arithmetic of every float32 matmul and convolution JAX traces from now on.

    A process-wide JAX setting (``jax_default_matmul_precision``); programs compiled under
    another setting are not reused (the setting is part of JAX's compilation key).

    Args:
      name: one of :data:`CHOICES`.

    Raises:
      ConfigError: for another name.

    Examples:
      >>> ls.precision.set_matmul_precision("float32"); ls.precision.matmul_precision()
      'float32'
    """
    import jax

    if name not in CHOICES:
        raise ConfigError(f"matmul precision must be one of {', '.join(CHOICES)}, got {name!r}")
    jax.config.update("jax_default_matmul_precision", None if name == "default" else name)


def matmul_precision() -> str:
    """The arithmetic float32 matmuls and convolutions get now, on the default backend.

    Returns:
      ``"float32"`` when products are exact float32 (always on a CPU; elsewhere when JAX's
      ``jax_default_matmul_precision`` is ``highest``/``float32``); otherwise the setting's name
      (``"tensorfloat32"``, ``"bfloat16"``, ``"high"`` …), or ``"default"`` for JAX's backend default.

    Examples:
      >>> ls.precision.matmul_precision() in ("float32", "tensorfloat32", "bfloat16", "default")
      True
    """
    import jax

    value = jax.config.jax_default_matmul_precision
    name = getattr(value, "name", value)  # a jax.lax.DotAlgorithmPreset, or a string, or None
    if jax.default_backend() == "cpu" or name in _EXACT:
        return "float32"
    return str(name) if name else "default"
