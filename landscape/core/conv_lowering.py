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

Where the image is narrow (at most :data:`BANDED_WIDTH` kernel widths: the digits' 8×8, not
CIFAR's 32×32) the same sum takes a second form (:func:`banded_product`; im2col is
:func:`patches_product`): the slices run over the leading spatial axes
only, and the last axis is folded into the kernel, unrolled into a block-Toeplitz (banded)
matrix ``(K_h·W·C, W_out·O)`` whose entries are kernel elements or zeros.  Its left matrix is
``K_w`` times smaller than im2col's (the memory the lowering of Cho & Brand 2017, "MEC:
memory-efficient convolution for deep neural network", also saves), for ``W / K_w`` times the
multiply-adds; on small images XLA:CPU's im2col product is bound by memory, and the banded one
is up to 5× faster (forward and backward, measured where :func:`banded_pays` takes it).  The output comes out in its own
layout (rows ``N·H_out``, columns ``W_out·O``), and the kernel's gradient is one product followed
by a fixed sum over the band.

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
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend import core as jcore

from .programs import split

__all__ = ["as_matmuls", "banded_pays", "banded_product", "contains_convolution", "conv_as_matmul", "count_convolutions",
           "inner_jaxprs", "patches_product", "traces_convolution"]

#: Call primitives whose body is evaluated (and rewritten) inline.
_INLINE = frozenset({"pjit", "jit", "closed_call", "core_call"})


def conv_as_matmul(lhs: jax.Array, rhs: jax.Array, *, window_strides, padding, lhs_dilation, rhs_dilation,
                   dimension_numbers, feature_group_count=1, batch_group_count=1, precision=None,
                   preferred_element_type=None) -> jax.Array:
    """``lax.conv_general_dilated``'s result, computed as shifted slices times a matrix.

    Takes the parameters of a traced ``conv_general_dilated`` equation (explicit ``padding``
    pairs, ``dimension_numbers`` a ``ConvDimensionNumbers``).  Only ungrouped convolutions
    without input dilation are lowered; any other, and one with an empty output, is computed
    by ``lax.conv_general_dilated``.  The product takes one of two forms of the same sum
    (module docstring): :func:`banded_product` where :func:`banded_pays`, else
    :func:`patches_product` (im2col).

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
    lhs_spec, rhs_spec, out_spec = dimension_numbers
    out_size = _out_size(lhs.shape, rhs.shape, lhs_spec, rhs_spec, window_strides, padding, rhs_dilation)
    if (not _lowerable(dict(feature_group_count=feature_group_count, batch_group_count=batch_group_count,
                            lhs_dilation=lhs_dilation, padding=padding)) or any(o <= 0 for o in out_size)):
        return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                                        dimension_numbers, feature_group_count, batch_group_count, precision,
                                        preferred_element_type)
    x = jnp.transpose(lhs, (lhs_spec[0], *lhs_spec[2:], lhs_spec[1]))  # (N, *S, C)
    k = jnp.transpose(rhs, (*rhs_spec[2:], rhs_spec[1], rhs_spec[0]))  # (*K, C, O)
    product = banded_product if banded_pays(x.shape, k.shape, window_strides, padding, rhs_dilation) else patches_product
    out = product(x, k, window_strides, padding, rhs_dilation, precision=precision,
                  preferred_element_type=preferred_element_type)
    order = [0] * out.ndim  # out's axes (N, *spatial, O) placed where out_spec puts them
    order[out_spec[0]], order[out_spec[1]] = 0, out.ndim - 1
    for i, d in enumerate(out_spec[2:]):
        order[d] = 1 + i
    return jnp.transpose(out, order)


def _out_size(lhs_shape, rhs_shape, lhs_spec, rhs_spec, strides, padding, dilation) -> list[int]:
    """The output's spatial sizes (zero or below: empty)."""
    return [(lhs_shape[i] + lo + hi - (rhs_shape[j] - 1) * d - 1) // st + 1
            for i, j, (lo, hi), d, st in zip(lhs_spec[2:], rhs_spec[2:], padding, dilation, strides)]


def patches_product(x: jax.Array, k: jax.Array, strides, padding, dilation, *, precision=None,
                    preferred_element_type=None) -> jax.Array:
    """A convolution as im2col: one shifted slice of the padded input per kernel offset,
    concatenated along the features, as one matrix ``(N·prod(out), prod(K)·C)`` times the kernel
    as a matrix ``(prod(K)·C, O)`` (Chellapilla et al. 2006).

    Args:
      x: the input ``(N, *S, C)``, channels last.
      k: the kernel ``(*K, C, O)``.
      strides: the stride of each spatial axis.
      padding: ``(low, high)`` padding of each spatial axis (explicit pairs).
      dilation: the kernel dilation of each spatial axis.
      precision: the product's precision, as ``lax.dot_general`` takes it.
      preferred_element_type: the product's result type.

    Returns:
      ``(N, *out, O)``: ``lax.conv_general_dilated``'s output (channels last) to float32
      rounding.  The output must not be empty.

    Examples:
      >>> from landscape.core.conv_lowering import patches_product
      >>> x, k = jnp.ones((2, 5, 5, 3)), jnp.ones((3, 3, 3, 4))
      >>> patches_product(x, k, (1, 1), ((1, 1), (1, 1)), (1, 1))[0, :, :, 0]   # 27 inputs inside, fewer at the edges
      Array([[12., 18., 18., 18., 12.],
             [18., 27., 27., 27., 18.],
             [18., 27., 27., 27., 18.],
             [18., 27., 27., 27., 18.],
             [12., 18., 18., 18., 12.]], dtype=float32)
    """
    spatial = x.ndim - 2
    x = lax.pad(x, jnp.zeros((), x.dtype), ((0, 0, 0), *((lo, hi, 0) for lo, hi in padding), (0, 0, 0)))
    window = k.shape[:spatial]
    out_size = [(s - (w - 1) * d - 1) // st + 1 for s, w, d, st in zip(x.shape[1:-1], window, dilation, strides)]
    slices = []
    for offset in itertools.product(*(range(w) for w in window)):  # kernel offsets, row-major like k's axes
        start = (0, *(o * d for o, d in zip(offset, dilation)), 0)
        limit = (x.shape[0], *(s + (n - 1) * st + 1 for s, n, st in zip(start[1:-1], out_size, strides)), x.shape[-1])
        slices.append(lax.slice(x, start, limit, (1, *strides, 1)))
    patches = slices[0] if len(slices) == 1 else jnp.concatenate(slices, axis=-1)  # (N, *out, prod(K) * C)
    # One matrix (N·prod(out), prod(K)·C): the kernel's gradient is then one product contracting a
    # single leading axis of two matrices, which XLA:CPU runs without first copying the output's
    # gradient into another layout (with the spatial axes kept apart it transposed it, then ran the
    # product in its fallback kernel)
    out = lax.dot_general(patches.reshape(-1, patches.shape[-1]), k.reshape(-1, k.shape[-1]), (((1,), (0,)), ((), ())),
                          precision=precision, preferred_element_type=preferred_element_type)
    return out.reshape(*patches.shape[:-1], k.shape[-1])


#: The banded form is taken while the input's last spatial axis is at most this many times the
#: kernel's (its multiply-adds are ``W / K_last`` times im2col's).  Measured on 2 cores, forward
#: and backward of one ``SAME`` convolution (``experiments/conv_forms.py``,
#: ``figures/conv_forms_cpu.json``), 3×3: banded 2.6-5.4× faster at widths 4 and 8 with up to 16
#: channels, 1.1× with 64, 1.9× at width 12; at 16 between 1.4× (few channels) and 0.61× (64),
#: at 32 0.65-0.95×; 5×5: 4.1× at width 8, 2.6× at 16.
BANDED_WIDTH = 4

#: The banded kernel matrix's largest size (elements per member): it is ``W / K_last`` times
#: the kernel's size times ``W_out``, and held once per member under ``vmap``.
BANDED_ELEMENTS = 2**21


def banded_pays(x_shape, k_shape, strides, padding, dilation) -> bool:
    """Whether :func:`conv_as_matmul` takes the banded form (:func:`banded_product`) for a
    convolution of these shapes: a kernel wider than one along the last spatial axis, an input
    at most :data:`BANDED_WIDTH` times as wide, and a banded matrix of at most
    :data:`BANDED_ELEMENTS` elements.

    Args:
      x_shape: the input's shape ``(N, *S, C)``.
      k_shape: the kernel's shape ``(*K, C, O)``.
      strides: the stride of each spatial axis.
      padding: ``(low, high)`` padding of each spatial axis.
      dilation: the kernel dilation of each spatial axis.

    Returns:
      a bool.

    Examples:
      >>> from landscape.core.conv_lowering import banded_pays
      >>> one = ((1, 1), (1, 1))
      >>> banded_pays((64, 8, 8, 1), (3, 3, 1, 8), (1, 1), one, (1, 1))      # digits
      True
      >>> banded_pays((64, 32, 32, 3), (3, 3, 3, 16), (1, 1), one, (1, 1))   # CIFAR-10
      False
    """
    spatial = len(x_shape) - 2
    width, window, c, o = x_shape[-2], k_shape[spatial - 1], x_shape[-1], k_shape[-1]
    (lo, hi), st, d = padding[-1], strides[-1], dilation[-1]
    out_w = (width + lo + hi - (window - 1) * d - 1) // st + 1
    band = math.prod(k_shape[:spatial - 1]) * width * c * max(out_w, 0) * o
    return window > 1 and width <= BANDED_WIDTH * window and band <= BANDED_ELEMENTS


def banded_product(x: jax.Array, k: jax.Array, strides, padding, dilation, *, precision=None,
                   preferred_element_type=None) -> jax.Array:
    """A convolution with its last spatial axis folded into the kernel: one shifted slice of the
    input per offset of the leading spatial axes, as a matrix ``(N·prod(out_lead), K_lead·W·C)``,
    times the kernel unrolled into a block-Toeplitz (banded) matrix ``(K_lead·W·C, W_out·O)``.
    Each entry of the band is one kernel element or zero, built by an exact ``einsum`` with a
    fixed 0/1 array that also holds the last axis's padding, stride and dilation; so the
    kernel's gradient is one product followed by a fixed sum over the band.  Against im2col
    (:func:`patches_product`): a ``K_last`` times smaller left matrix (the saving of Cho & Brand
    2017, "MEC: memory-efficient convolution for deep neural network") for ``W / K_last`` times
    the multiply-adds.

    Args:
      x: the input ``(N, *S, C)``, channels last.
      k: the kernel ``(*K, C, O)``.
      strides: the stride of each spatial axis.
      padding: ``(low, high)`` padding of each spatial axis (explicit pairs).
      dilation: the kernel dilation of each spatial axis.
      precision: the product's precision, as ``lax.dot_general`` takes it.
      preferred_element_type: the product's result type.

    Returns:
      ``(N, *out, O)``: ``lax.conv_general_dilated``'s output (channels last) to float32
      rounding.  The output must not be empty.

    Examples:
      >>> from landscape.core.conv_lowering import banded_product, patches_product
      >>> x = jax.random.normal(jax.random.key(0), (2, 6, 5, 3))
      >>> k = jax.random.normal(jax.random.key(1), (3, 2, 3, 4))
      >>> args = (x, k, (2, 1), ((1, 1), (0, 1)), (1, 2))
      >>> banded_product(*args).shape, bool(jnp.allclose(banded_product(*args), patches_product(*args), atol=1e-5))
      ((2, 3, 4, 4), True)
    """
    spatial = x.ndim - 2
    (lo, hi), st, d = padding[-1], strides[-1], dilation[-1]
    width, window = x.shape[-2], k.shape[spatial - 1]
    out_w = (width + lo + hi - (window - 1) * d - 1) // st + 1
    x = lax.pad(x, jnp.zeros((), x.dtype), ((0, 0, 0), *((a, b, 0) for a, b in padding[:-1]), (0, 0, 0), (0, 0, 0)))
    lead_window = k.shape[:spatial - 1]
    out_lead = [(s - (w - 1) * dd - 1) // s_ + 1
                for s, w, dd, s_ in zip(x.shape[1:spatial], lead_window, dilation[:-1], strides[:-1])]
    # reads[j, w_in, w_out] = 1 where the kernel's last-axis offset j of output column w_out reads
    # input column w_in (a column in the padding reads nothing)
    reads = np.zeros((window, width, out_w), np.float32)
    for j, w in itertools.product(range(window), range(out_w)):
        if 0 <= w * st + j * d - lo < width:
            reads[j, w * st + j * d - lo, w] = 1.0
    band = jnp.einsum("jab,...jco->...acbo", jnp.asarray(reads, k.dtype), k, precision=lax.Precision.HIGHEST)
    slices = []
    for offset in itertools.product(*(range(w) for w in lead_window)):  # row-major like the band's lead axes
        start = (0, *(o * dd for o, dd in zip(offset, dilation[:-1])), 0, 0)
        limit = (x.shape[0], *(s + (n - 1) * s_ + 1 for s, n, s_ in zip(start[1:-2], out_lead, strides[:-1])),
                 width, x.shape[-1])
        slices.append(lax.slice(x, start, limit, (1, *strides[:-1], 1, 1)))
    rows = jnp.stack(slices, axis=-3)  # (N, *out_lead, prod(K_lead), W, C)
    n_cols = rows.shape[-3] * width * x.shape[-1]
    out = lax.dot_general(rows.reshape(-1, n_cols), band.reshape(n_cols, -1), (((1,), (0,)), ((), ())),
                          precision=precision, preferred_element_type=preferred_element_type)
    return out.reshape(x.shape[0], *out_lead, out_w, k.shape[-1])


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
