"""XLA options of a program that runs once: a short compilation where it computes the same bits.

A program run once per call (the members' fresh parameters) is worth compiling quickly rather
than well: on a CPU, XLA's default LLVM optimisation level (3) spends seconds on code that runs
for milliseconds.  Level 1 compiles a vmapped initialisation of the built-in MLP, CNN or ResNet
3-7× faster with bitwise the same parameters; level 0 does not (it changes some by one unit in
the last place), and neither does level 1 once the program reduces (a filter-normalised random
direction of a ResNet differed in 66 of 144 elements of one kernel, by one unit in the last
place).  So the short compilation is used only for programs whose every element is computed on
its own — no reduction, contraction or linear algebra anywhere in them — and only on a CPU.
"""

from __future__ import annotations

from collections.abc import Callable

import jax

from .conv_lowering import inner_jaxprs

__all__ = ["accumulates", "run_once_options"]

# primitives whose results add or multiply many elements together (their rounding can depend on
# how the compiler orders the work), linear algebra and transforms (calls into libraries with their
# own order), and, to be safe, the other reductions over many elements (max, min, arg-max, sort)
_ACCUMULATING = frozenset({
    "reduce_sum", "reduce_prod", "reduce_max", "reduce_min", "argmax", "argmin", "dot_general",
    "conv_general_dilated", "cumsum", "cumprod", "cumlogsumexp", "cummax", "cummin", "reduce_precision",
    "psum", "all_reduce", "eigh", "eig", "svd", "qr", "geqrf", "householder_product", "lu", "cholesky",
    "triangular_solve", "tridiagonal", "tridiagonal_solve", "schur", "hessenberg", "custom_linear_solve",
    "fft", "sort",
})


def _live(jaxpr) -> list:
    """The equations of ``jaxpr`` that its outputs depend on (and those with side effects): a Linen
    module's ``init`` traces a forward pass whose outputs it throws away, and XLA removes it."""
    needed = {v for v in jaxpr.outvars if not hasattr(v, "val")}  # variables, not literals
    live = []
    for eqn in reversed(jaxpr.eqns):
        if eqn.effects or any(v in needed for v in eqn.outvars):
            live.append(eqn)
            needed.update(v for v in eqn.invars if not hasattr(v, "val"))
    return live[::-1]


def accumulates(jaxpr) -> bool:
    """Whether a traced program reduces, contracts or calls linear algebra anywhere its outputs
    depend on — in its body or in any call, loop or branch inside it (computations whose results
    are thrown away, as a Linen ``init``'s forward pass, are not counted).

    Args:
      jaxpr: a ``Jaxpr`` (``jax.make_jaxpr(f)(*args).jaxpr``).

    Returns:
      a bool: ``False`` when every output element is computed from its inputs on its own.

    Examples:
      >>> from landscape.core.compile_options import accumulates
      >>> x = jnp.ones((3, 4))
      >>> accumulates(jax.make_jaxpr(jnp.tanh)(x).jaxpr), accumulates(jax.make_jaxpr(jnp.sum)(x).jaxpr)
      (False, True)
      >>> accumulates(jax.make_jaxpr(lambda x: (x @ x.T, jnp.tanh(x))[1])(x).jaxpr)   # the product is unused
      False
    """
    for eqn in _live(jaxpr):
        if eqn.primitive.name in _ACCUMULATING:
            return True
        if any(accumulates(inner) for inner in inner_jaxprs(eqn)):  # call, loop and branch bodies
            return True
    return False


def run_once_options(fn: Callable, *args, **kwargs) -> dict | None:
    """``compiler_options`` for ``jax.jit`` of a program that runs once per call: on a CPU, LLVM's
    optimisation level 1 when ``fn(*args, **kwargs)`` computes every element on its own
    (:func:`accumulates` is false), else ``None`` (XLA's defaults).  Accelerators keep their defaults.

    Args:
      fn: the function to compile.
      *args: example arguments (arrays or shapes, as for ``jax.make_jaxpr``); only their shapes matter.
      **kwargs: example keyword arguments.

    Returns:
      a dict for ``jax.jit(..., compiler_options=...)``, or ``None``.

    Examples:
      >>> from landscape.core.compile_options import run_once_options
      >>> init = lambda key: {"w": jax.random.normal(key, (64, 32)), "b": jnp.zeros(32)}
      >>> run_once_options(init, jax.random.key(0))                        # on a CPU
      {'xla_backend_optimization_level': 1}
      >>> run_once_options(lambda key: init(key)["w"].sum(0), jax.random.key(0)) is None   # reduces
      True
    """
    if jax.default_backend() != "cpu":
        return None
    if accumulates(jax.make_jaxpr(fn)(*args, **kwargs).jaxpr):
        return None
    return {"xla_backend_optimization_level": 1}
