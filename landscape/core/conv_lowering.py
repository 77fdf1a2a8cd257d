"""Convolutions as matrix products: a rewrite of a traced program that any model can go through.

XLA's CPU backend runs a convolution whose kernel differs per ensemble member (what ``vmap``
over members makes of it: a grouped convolution) and convolutions inside ``lax.scan`` loops
far below the machine's matrix-product speed.  :func:`as_matmuls` traces a function once per
call and evaluates its program with every ``conv_general_dilated`` replaced by the same
arithmetic written as shifted slices of the padded input (one per kernel offset),
concatenated along the feature axis, times the kernel reshaped to a matrix (im2col; Chellapilla
et al. 2006, "High performance convolutional neural networks for document processing").
Everything else in the program is bound unchanged, so ``grad``, ``vmap`` and ``scan`` apply
to the rewritten program as to the original: the gradient of a slice is a pad, of the product
two products — no convolution is left in the forward or the backward pass.

Under ``vmap`` over members the rewrite pays twice: a first layer's input is the same for
every member, so its patches are built once and all members' kernels multiply them in one wide
product; and each later layer is a batched matrix product, which XLA:CPU runs at matrix speed.
The results equal the convolution's to float32 rounding (a different summation order), not
bitwise.  Convolutions it does not cover — grouped (``feature_group_count`` or
``batch_group_count`` above 1) or with input dilation (transposed convolutions) — and any inside
a custom derivative rule are left as they are.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax
from jax.extend import core as jcore

from .programs import split

__all__ = ["as_matmuls", "contains_convolution", "conv_as_matmul", "count_convolutions", "inner_jaxprs",
           "traces_convolution"]

#: Call primitives whose body is evaluated (and rewritten) inline.
_INLINE = frozenset({"pjit", "jit", "closed_call", "core_call"})


def conv_as_matmul(lhs: jax.Array, rhs: jax.Array, *, window_strides, padding, lhs_dilation, rhs_dilation,
                   dimension_numbers, feature_group_count=1, batch_group_count=1, precision=None,
                   preferred_element_type=None) -> jax.Array:
    """``lax.conv_general_dilated``'s result, computed as shifted slices times a matrix.

    Takes the parameters of a traced ``conv_general_dilated`` equation (explicit ``padding``
    pairs, ``dimension_numbers`` a ``ConvDimensionNumbers``).  Only ungrouped convolutions
    without input dilation are lowered; any other is computed by ``lax.conv_general_dilated``.

    Args:
      lhs: the input, its axes as ``dimension_numbers.lhs_spec`` says (batch, feature, spatial...).
      rhs: the kernel, axes as ``rhs_spec`` says (output feature, input feature, spatial...).
      window_strides: the stride of each spatial axis.
      padding: ``(low, high)`` padding of each spatial axis.
      lhs_dilation: input dilation of each spatial axis (above 1: not lowered).
      rhs_dilation: kernel dilation of each spatial axis.
      dimension_numbers: a ``lax.ConvDimensionNumbers``.
      feature_group_count: feature groups (above 1: not lowered).
      batch_group_count: batch groups (above 1: not lowered).
      precision: the product's precision, as ``lax.dot_general`` takes it.
      preferred_element_type: the product's result type.

    Returns:
      the output, axes as ``out_spec`` says; equal to the convolution's to float32 rounding.

    Examples:
      >>> from jax import lax
      >>> from landscape.core.conv_lowering import conv_as_matmul
      >>> x = jax.random.normal(jax.random.key(0), (2, 7, 7, 3))
      >>> k = jax.random.normal(jax.random.key(1), (3, 3, 3, 4))
      >>> dn = lax.conv_dimension_numbers(x.shape, k.shape, ("NHWC", "HWIO", "NHWC"))
      >>> ref = lax.conv_general_dilated(x, k, (2, 1), [(1, 1), (0, 2)], dimension_numbers=dn)
      >>> out = conv_as_matmul(x, k, window_strides=(2, 1), padding=((1, 1), (0, 2)), lhs_dilation=(1, 1),
      ...                      rhs_dilation=(1, 1), dimension_numbers=dn)
      >>> out.shape, bool(jnp.allclose(out, ref, atol=1e-5))
      ((2, 4, 7, 4), True)
    """
    lhs_dilation = tuple(lhs_dilation or (1,) * (lhs.ndim - 2))
    rhs_dilation = tuple(rhs_dilation or (1,) * (lhs.ndim - 2))

    def native():  # what is not lowered: XLA's own convolution
        return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                                        dimension_numbers, feature_group_count, batch_group_count, precision,
                                        preferred_element_type)

    if not _lowerable(dict(feature_group_count=feature_group_count, batch_group_count=batch_group_count,
                           lhs_dilation=lhs_dilation, padding=padding)):
        return native()
    lhs_spec, rhs_spec, out_spec = dimension_numbers
    spatial = len(lhs_spec) - 2
    x = jnp.transpose(lhs, (lhs_spec[0], *lhs_spec[2:], lhs_spec[1]))  # (N, *S, C)
    k = jnp.transpose(rhs, (*rhs_spec[2:], rhs_spec[1], rhs_spec[0]))  # (*K, C, O)
    x = lax.pad(x, jnp.zeros((), x.dtype), ((0, 0, 0), *((lo, hi, 0) for lo, hi in padding), (0, 0, 0)))
    window = k.shape[:spatial]
    size = x.shape[1:1 + spatial]
    out_size = [(s - (w - 1) * d - 1) // st + 1 for s, w, d, st in zip(size, window, rhs_dilation, window_strides)]
    if any(o <= 0 for o in out_size):
        return native()
    slices = []
    for offset in itertools.product(*(range(w) for w in window)):  # kernel offsets, row-major like k's axes
        start = (0, *(o * d for o, d in zip(offset, rhs_dilation)), 0)
        limit = (x.shape[0], *(s + (n - 1) * st + 1 for s, n, st in zip(start[1:-1], out_size, window_strides)),
                 x.shape[-1])
        slices.append(lax.slice(x, start, limit, (1, *window_strides, 1)))
    patches = slices[0] if len(slices) == 1 else jnp.concatenate(slices, axis=-1)  # (N, *out, prod(K) * C)
    # One matrix (N·prod(out), prod(K)·C): the kernel's gradient is then one product contracting a
    # single leading axis of two matrices, which XLA:CPU runs without first copying the output's
    # gradient into another layout (with the spatial axes kept apart it transposed it, then ran the
    # product in its fallback kernel)
    out = lax.dot_general(patches.reshape(-1, patches.shape[-1]), k.reshape(-1, k.shape[-1]), (((1,), (0,)), ((), ())),
                          precision=precision, preferred_element_type=preferred_element_type)
    out = out.reshape(*patches.shape[:-1], k.shape[-1])  # (N, *out, O)
    order = [0] * out.ndim  # out's axes (N, *spatial, O) placed where out_spec puts them
    order[out_spec[0]], order[out_spec[1]] = 0, out.ndim - 1
    for i, d in enumerate(out_spec[2:]):
        order[d] = 1 + i
    return jnp.transpose(out, order)


_CONV_PARAMS = ("window_strides", "padding", "lhs_dilation", "rhs_dilation", "dimension_numbers",
                "feature_group_count", "batch_group_count", "precision", "preferred_element_type")


def _lowerable(params) -> bool:
    """Whether :func:`conv_as_matmul` lowers a traced convolution with these parameters."""
    return (params.get("feature_group_count", 1) == 1 and params.get("batch_group_count", 1) == 1
            and all(d == 1 for d in params.get("lhs_dilation") or ()) and not isinstance(params.get("padding"), str))


#: A lowered convolution, staged as a call named ``conv_as_matmul`` (inlined by XLA) so that a
#: program's reader (:func:`traces_convolution`) still sees where a convolution was.
_lowered_conv = jax.jit(conv_as_matmul, static_argnames=_CONV_PARAMS)


def _eval(jaxpr, consts, args):
    """Evaluate ``jaxpr`` on ``args`` (tracers or arrays) with convolutions lowered, call
    bodies (jit) evaluated inline so their convolutions are lowered too."""
    env = {}

    def read(v):
        return v.val if isinstance(v, jcore.Literal) else env[v]

    for v, x in zip(jaxpr.constvars, consts):
        env[v] = x
    for v, x in zip(jaxpr.invars, args):
        env[v] = x
    for eqn in jaxpr.eqns:
        invals = [read(v) for v in eqn.invars]
        name = eqn.primitive.name
        if name == "conv_general_dilated" and _lowerable(eqn.params):
            outs = [_lowered_conv(*invals, **{k: eqn.params[k] for k in _CONV_PARAMS if k in eqn.params})]
        elif name in _INLINE and _call_body(eqn) is not None:
            inner = _call_body(eqn)
            body, body_consts = (inner.jaxpr, inner.consts) if hasattr(inner, "consts") else (inner, ())
            outs = _eval(body, body_consts, invals)
        else:
            params = eqn.primitive.get_bind_params(eqn.params)
            subfuns = ()
            if isinstance(params, tuple):  # older JAX: (subfunctions, params)
                subfuns, params = params
            ctx = getattr(getattr(eqn, "ctx", None), "manager", None)
            with ctx if ctx is not None else contextlib.nullcontext():
                outs = eqn.primitive.bind(*subfuns, *invals, **params)
            if not eqn.primitive.multiple_results:
                outs = [outs]
        for v, x in zip(eqn.outvars, outs):
            env[v] = x
    return [read(v) for v in jaxpr.outvars]


def as_matmuls(fn: Callable) -> Callable:
    """``fn`` with every convolution it traces computed as a matrix product (:func:`conv_as_matmul`).

    The returned function traces ``fn`` on its arguments' shapes at each call (inside ``jit``:
    once per compilation) and evaluates the traced program with its convolutions lowered; it
    composes with ``jit``, ``vmap``, ``grad`` and ``lax.scan`` like ``fn``.  A function with no
    convolution computes exactly what ``fn`` does.

    Args:
      fn: a function of pytrees of arrays (a model's ``apply``), returning a pytree of arrays.

    Returns:
      a function with ``fn``'s signature and results (to float32 rounding where a convolution
      was lowered).

    Examples:
      >>> import flax.linen as nn
      >>> from landscape.core.conv_lowering import as_matmuls, count_convolutions
      >>> net = nn.Conv(4, (3, 3))
      >>> x = jnp.ones((2, 8, 8, 1))
      >>> p = net.init(jax.random.key(0), x)
      >>> fast = as_matmuls(net.apply)
      >>> count_convolutions(net.apply, p, x), count_convolutions(fast, p, x)
      (1, 0)
      >>> bool(jnp.allclose(fast(p, x), net.apply(p, x), atol=1e-5))
      True
    """
    @functools.wraps(fn)
    def lowered(*args, **kwargs):
        flat, in_tree = jax.tree_util.tree_flatten((args, kwargs))
        out_tree = []

        def flat_fn(*leaves):
            a, kw = jax.tree_util.tree_unflatten(in_tree, leaves)
            out, tree_ = jax.tree_util.tree_flatten(fn(*a, **kw))
            out_tree.append(tree_)
            return out

        closed = jax.make_jaxpr(flat_fn)(*flat)
        return jax.tree_util.tree_unflatten(out_tree[0], _eval(closed.jaxpr, closed.consts, flat))

    return lowered


def count_convolutions(fn: Callable, *args, **kwargs) -> int:
    """How many ``conv_general_dilated`` operations ``fn(*args, **kwargs)`` traces to (call
    bodies included, loops and custom-derivative bodies not).

    Args:
      fn: a function.
      *args: its positional arguments (arrays, as for ``jax.make_jaxpr``).
      **kwargs: its keyword arguments.

    Returns:
      an int.

    Examples:
      >>> import flax.linen as nn
      >>> from landscape.core.conv_lowering import count_convolutions
      >>> net = nn.Conv(4, (3, 3))
      >>> x = jnp.ones((2, 8, 8, 1))
      >>> count_convolutions(net.apply, net.init(jax.random.key(0), x), x)
      1
    """
    def count(jaxpr) -> int:
        n = 0
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "conv_general_dilated":
                n += 1
            elif eqn.primitive.name in _INLINE:
                inner = _call_body(eqn)
                if inner is not None:
                    n += count(getattr(inner, "jaxpr", inner))
        return n

    return count(jax.make_jaxpr(lambda: fn(*args, **kwargs))().jaxpr)


def traces_convolution(fn: Callable, *args, **kwargs) -> bool:
    """Whether ``fn(*args, **kwargs)`` traces to a convolution — XLA's own or one lowered by
    :func:`as_matmuls` (call bodies, loops and branches included).  A function that is a pytree
    of arrays and static structure (the library's losses and metrics,
    :func:`landscape.core.programs.split`) is traced once per structure and argument shapes
    (cached), since the answer depends on nothing else; any other callable, on every call.

    Args:
      fn: a function.
      *args: its positional arguments (arrays or ``jax.ShapeDtypeStruct``).
      **kwargs: its keyword arguments.

    Returns:
      a bool.

    Examples:
      >>> import flax.linen as nn
      >>> from landscape.core.conv_lowering import as_matmuls, traces_convolution
      >>> net = nn.Conv(4, (3, 3))
      >>> x = jnp.ones((2, 8, 8, 1))
      >>> p = net.init(jax.random.key(0), x)
      >>> traces_convolution(net.apply, p, x), traces_convolution(as_matmuls(net.apply), p, x)
      (True, True)
      >>> traces_convolution(lambda v: v @ v.T, x[0, 0])
      False
    """
    structure, arrays, _ = split(fn)
    if structure is not None and not kwargs:  # the answer depends on the structure and shapes only
        (array_spec, array_tree), (arg_spec, arg_tree) = _spec(arrays), _spec(list(args))
        return _traces_structure(structure, array_tree, array_spec, arg_tree, arg_spec)
    return contains_convolution(jax.make_jaxpr(lambda: fn(*args, **kwargs))().jaxpr)


def _call_body(eqn):
    """The body of a call equation (a ``ClosedJaxpr`` or ``Jaxpr``), or ``None``."""
    return eqn.params.get("jaxpr", eqn.params.get("call_jaxpr"))


def _spec(tree) -> tuple[tuple, object]:
    """``(((shape, dtype), ...), treedef)`` of a pytree of arrays: what a trace depends on."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    return tuple((tuple(jnp.shape(a)), a.dtype if hasattr(a, "dtype") else jnp.asarray(a).dtype) for a in leaves), treedef


@functools.lru_cache(maxsize=64)
def _traces_structure(structure, array_tree, array_spec, arg_tree, arg_spec) -> bool:
    def run(arrays, args):
        return jax.tree_util.tree_unflatten(structure, arrays)(*args)

    def abstract(spec, tree):
        return jax.tree_util.tree_unflatten(tree, [jax.ShapeDtypeStruct(shape, dtype) for shape, dtype in spec])

    return contains_convolution(jax.make_jaxpr(run)(abstract(array_spec, array_tree), abstract(arg_spec, arg_tree)).jaxpr)


def contains_convolution(jaxpr) -> bool:
    """Whether a traced program holds a convolution — XLA's own (``conv_general_dilated``) or
    one lowered by :func:`as_matmuls` — in its body or in any call, loop or branch inside it.

    Args:
      jaxpr: a ``Jaxpr`` (``jax.make_jaxpr(f)(*args).jaxpr``).

    Returns:
      a bool.

    Examples:
      >>> from landscape.core.conv_lowering import contains_convolution
      >>> x = jnp.ones((1, 5, 5, 1))
      >>> conv = lambda x: jax.lax.conv_general_dilated(x, jnp.ones((3, 3, 1, 2)), (1, 1), "SAME",
      ...                                               dimension_numbers=("NHWC", "HWIO", "NHWC"))
      >>> contains_convolution(jax.make_jaxpr(conv)(x).jaxpr), contains_convolution(jax.make_jaxpr(jnp.sin)(x).jaxpr)
      (True, False)
    """
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "conv_general_dilated" or eqn.params.get("name") == "conv_as_matmul":
            return True
        if any(contains_convolution(inner) for inner in inner_jaxprs(eqn)):
            return True
    return False


def inner_jaxprs(eqn) -> list:
    """The programs an equation holds: the bodies of a call, a loop, a branch or a custom rule.

    Args:
      eqn: one equation of a ``Jaxpr``.

    Returns:
      a list of ``Jaxpr`` (empty for a plain primitive).

    Examples:
      >>> from landscape.core.conv_lowering import inner_jaxprs
      >>> jaxpr = jax.make_jaxpr(lambda x: jax.lax.cond(x > 0, jnp.sin, jnp.cos, x))(1.0).jaxpr
      >>> len(inner_jaxprs(jaxpr.eqns[-1]))                        # the two branches
      2
    """
    found = []
    for value in eqn.params.values():
        for inner in value if isinstance(value, (tuple, list)) else (value,):
            inner = getattr(inner, "jaxpr", inner)  # a ClosedJaxpr's Jaxpr
            if hasattr(inner, "eqns"):
                found.append(inner)
    return found
