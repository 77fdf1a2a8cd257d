"""A model's permutation structure read from its traced program (:func:`infer_spec`).

The evaluation-mode forward pass is traced to a jaxpr.  Every axis of every value is split
into *factors* (a flattened ``(H, W, C)`` feature map's axis has three); factors that one
hidden permutation must reorder together are joined (union-find), operation by operation:

* elementwise operations and broadcasts join their operands' axes with the result's;
* ``dot_general`` joins each contracted pair (reordering both leaves the sum unchanged) and
  carries batch and free axes to the result; a convolution joins its input's features with
  its kernel's input features and its kernel's outputs with the result's features, and fixes
  the spatial axes (they are mixed);
* reductions (a mean, LayerNorm's statistics) carry the kept axes; a reduced axis may be
  reordered freely; pooling windows fix the axes they slide over;
* reshapes that merge axes keep the merged factors (so a Dense layer reading a flattened
  feature map sees its channels); splits that do not undo a merge fix the axes;
* a residual addition is elementwise, so it ties the permutations of what it adds.

Factors that reach the input, the outputs, a constant or a size-1 axis are fixed.  An
operation without a rule is refused by name — never guessed.  Each remaining group of factors
is one named permutation.  :func:`landscape.permutation.infer_spec` makes a
:class:`~landscape.models.permutation.PermutationSpec` of it and certifies it: a copy permuted
at random by it must give the same outputs on the batch.
"""

from __future__ import annotations

from typing import Any

import jax
from jax.extend.core import Literal
import jax.numpy as jnp
import numpy as np

from ..core import tree
from ..core.errors import ConfigError

__all__ = ["trace_structure"]

#: Primitives that act elementwise on operands of the result's shape (scalars broadcast).
ELEMENTWISE = frozenset("""
    abs acos acosh add and asin asinh atan atan2 atanh cbrt ceil clamp convert_element_type copy copy_p cos cosh
    div eq erf erf_inv erfc exp exp2 expm1 floor ge gt imag integer_pow is_finite le lgamma log log1p logistic lt
    max min mul ne neg nextafter not or pow real reduce_precision rem round rsqrt select_n sign sin sinh sqrt square
    stop_gradient sub tan tanh xor digamma sharding_constraint
""".split())

#: Reductions over ``axes`` whose value does not depend on the order along the reduced axes.
REDUCTIONS = frozenset({"reduce_sum", "reduce_max", "reduce_min", "reduce_prod", "reduce_and", "reduce_or"})

#: Pooling (a window sliding over some axes; the others must have windows of one).
WINDOWS = frozenset({"reduce_window_sum", "reduce_window_max", "reduce_window_min", "reduce_window"})


class _Factors:
    """Union-find over factors, each with a size; one extra class, ``FIXED``, that nothing may reorder."""

    def __init__(self):
        self.parent = [0]
        self.size = [0]
        self.members = [1]
        self.FIXED = 0

    def new(self, size: int) -> int:
        self.parent.append(len(self.parent))
        self.size.append(int(size))
        self.members.append(1)
        f = len(self.parent) - 1
        return self.fix(f) if size <= 1 else f

    def alone(self, f: int) -> bool:
        """Whether ``f`` is free and joined with nothing."""
        root = self.find(f)
        return root != self.FIXED and self.members[root] == 1

    def product(self, factors: list[int]) -> int:
        return int(np.prod([self.size[f] for f in factors]))

    def find(self, f: int) -> int:
        while self.parent[f] != f:
            self.parent[f] = self.parent[self.parent[f]]
            f = self.parent[f]
        return f

    def join(self, a: int, b: int) -> int:
        a, b = self.find(a), self.find(b)
        if a == b:
            return a
        if self.FIXED in (a, b) or self.size[a] != self.size[b]:
            self.parent[a] = self.parent[b] = self.FIXED
            return self.FIXED
        self.parent[b] = a
        self.members[a] += self.members[b]
        return a

    def fix(self, f: int) -> int:
        self.parent[self.find(f)] = self.FIXED
        return self.FIXED

    def fixed(self, f: int) -> bool:
        return self.find(f) == self.FIXED


class _Tracer:
    """Walks a jaxpr, giving every value's every axis a list of factors."""

    def __init__(self):
        self.u = _Factors()
        self.axes: dict[Any, list[list[int]]] = {}

    # -- values
    def fresh(self, shape) -> list[list[int]]:
        return [[self.u.new(n)] for n in shape]

    def fixed(self, shape) -> list[list[int]]:
        """Axes nothing may reorder (a constant's, a literal's, a random draw's)."""
        return [[self.u.fix(self.u.new(n))] for n in shape]

    def of(self, v) -> list[list[int]]:
        if isinstance(v, Literal) or v not in self.axes:  # a literal or a constant: nothing reorders it
            return self.fixed(np.shape(v.val) if isinstance(v, Literal) else v.aval.shape)
        return self.axes[v]

    def join_axis(self, a: list[int], b: list[int]) -> list[int]:
        """Join two axes of one size factor by factor.  An axis that is one factor joined with
        nothing yet (a Dense kernel's rows meeting a flattened feature map) is refined, in place,
        into the other's factors; axes whose factors cannot be matched are fixed."""
        if len(a) != len(b):
            for one, other in ((a, b), (b, a)):
                if len(one) == 1 and self.u.alone(one[0]) and self.u.size[one[0]] == self.u.product(other):
                    one[:] = [self.u.new(self.u.size[f]) for f in other]
                    break
        if len(a) == len(b) and all(self.u.size[x] == self.u.size[y] for x, y in zip(a, b)):
            for x, y in zip(a, b):
                self.u.join(x, y)
            return a
        for x in a + b:
            self.u.fix(x)
        return a

    # -- the walk
    def run(self, jaxpr, ins: list) -> list:
        for v, axes in zip(jaxpr.invars, ins):
            self.axes[v] = axes
        for v in jaxpr.constvars:
            self.axes[v] = self.fixed(v.aval.shape)
        for eqn in jaxpr.eqns:
            self.equation(eqn)
        return [self.of(v) for v in jaxpr.outvars]

    def equation(self, eqn) -> None:
        name = eqn.primitive.name
        ins = [self.of(v) for v in eqn.invars]
        outs = eqn.outvars
        sub = _subjaxpr(eqn)
        if sub is not None:
            jaxpr, skip = sub
            results = self.run(jaxpr, ins[skip:])
            for v, axes in zip(outs, results):
                self.axes[v] = axes
            return
        out_shape = outs[0].aval.shape if outs else ()
        if name in ELEMENTWISE:
            axes = self.fresh(out_shape)
            for v, a in zip(eqn.invars, ins):
                if len(a) == len(axes):  # same rank; a size-1 axis is broadcast, not joined
                    shape = np.shape(v.val) if isinstance(v, Literal) else v.aval.shape
                    axes = [x if m != n else self.join_axis(x, y) for x, y, m, n in zip(axes, a, shape, out_shape)]
            for v in outs:
                self.axes[v] = axes
        elif name == "broadcast_in_dim":
            axes = self.fresh(out_shape)
            for i, d in enumerate(eqn.params["broadcast_dimensions"]):
                if eqn.invars[0].aval.shape[i] == out_shape[d]:
                    axes[d] = self.join_axis(axes[d], ins[0][i])
            self.axes[outs[0]] = axes
        elif name == "dot_general":
            self.axes[outs[0]] = self._dot(eqn, ins)
        elif name == "conv_general_dilated":
            self.axes[outs[0]] = self._conv(eqn, ins)
        elif name in REDUCTIONS:
            reduced = set(eqn.params["axes"])
            self.axes[outs[0]] = [a for i, a in enumerate(ins[0]) if i not in reduced]
        elif name in WINDOWS:
            dims, strides = eqn.params["window_dimensions"], eqn.params["window_strides"]
            pads = eqn.params.get("padding", ((0, 0),) * len(dims))
            axes = []
            for a, d, s, p, n_in, n_out in zip(ins[0], dims, strides, pads, eqn.invars[0].aval.shape, out_shape):
                if d == 1 and s == 1 and tuple(p) == (0, 0) and n_in == n_out:
                    axes.append(a)
                else:
                    for f in a:
                        self.u.fix(f)
                    axes.extend(self.fixed((n_out,)))
            self.axes[outs[0]] = axes
        elif name == "reshape":
            self.axes[outs[0]] = self._reshape(ins[0], eqn.invars[0].aval.shape, out_shape)
        elif name == "transpose":
            self.axes[outs[0]] = [ins[0][p] for p in eqn.params["permutation"]]
        elif name == "squeeze":
            drop = {d % len(ins[0]) for d in eqn.params["dimensions"]}
            self.axes[outs[0]] = [a for i, a in enumerate(ins[0]) if i not in drop]
        elif name in ("concatenate", "pad", "slice", "dynamic_slice", "rev"):
            self.axes[outs[0]] = self._partial(eqn, ins)
        elif name in ("iota", "random_bits", "random_wrap", "random_seed", "random_unwrap", "threefry2x32"):
            for v in outs:
                self.axes[v] = self.fixed(v.aval.shape)
        else:
            raise ConfigError(f"cannot infer the permutation structure through the operation {name!r} (no rule "
                              "proves it permutation-equivariant); give the model a PermutationSpec by hand")

    def _dot(self, eqn, ins) -> list:
        (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
        lhs, rhs = ins
        for i, j in zip(lc, rc):
            self.join_axis(lhs[i], rhs[j])
        batch = [self.join_axis(lhs[i], rhs[j]) for i, j in zip(lb, rb)]
        free_l = [a for i, a in enumerate(lhs) if i not in lc and i not in lb]
        free_r = [a for j, a in enumerate(rhs) if j not in rc and j not in rb]
        return batch + free_l + free_r

    def _conv(self, eqn, ins) -> list:
        if eqn.params["feature_group_count"] != 1 or eqn.params["batch_group_count"] != 1:
            raise ConfigError("cannot infer the permutation structure through a grouped convolution "
                              "(conv_general_dilated with feature_group_count > 1); give a PermutationSpec by hand")
        dn = eqn.params["dimension_numbers"]
        lhs, rhs = ins
        out_shape = eqn.outvars[0].aval.shape
        self.join_axis(lhs[dn.lhs_spec[1]], rhs[dn.rhs_spec[1]])  # input features
        for d in dn.lhs_spec[2:]:
            for f in lhs[d]:
                self.u.fix(f)
        for d in dn.rhs_spec[2:]:
            for f in rhs[d]:
                self.u.fix(f)
        out = self.fixed(out_shape)
        out[dn.out_spec[0]] = lhs[dn.lhs_spec[0]]  # the batch
        out[dn.out_spec[1]] = rhs[dn.rhs_spec[0]]  # the kernel's output features
        return out

    def _reshape(self, axes, shape_in, shape_out) -> list:
        """Groups of input and output axes with equal products: one-to-one joins, a merge keeps
        the merged factors, a split that matches the factors distributes them; else fixed."""
        ins = [(a, n) for a, n in zip(axes, shape_in) if n != 1]
        for a, n in zip(axes, shape_in):
            if n == 1:
                for f in a:
                    self.u.fix(f)
        outs_idx = [i for i, n in enumerate(shape_out) if n != 1]
        out: list = [[self.u.fix(self.u.new(1))] if n == 1 else None for n in shape_out]
        i = j = 0
        while i < len(ins) or j < len(outs_idx):
            gi, gj = [ins[i]], [outs_idx[j]]
            i, j = i + 1, j + 1
            pi, pj = gi[0][1], shape_out[gj[0]]
            while pi != pj:
                if pi < pj:
                    gi.append(ins[i])
                    pi *= ins[i][1]
                    i += 1
                else:
                    gj.append(outs_idx[j])
                    pj *= shape_out[outs_idx[j]]
                    j += 1
            factors = [f for a, _ in gi for f in a]
            if len(gj) == 1:
                out[gj[0]] = factors
                continue
            pieces, k = [], 0  # a split: the factors must fall into the output axes' sizes
            for d in gj:
                piece, prod = [], 1
                while k < len(factors) and prod < shape_out[d]:
                    piece.append(factors[k])
                    prod *= self.u.size[factors[k]]
                    k += 1
                pieces.append(piece if prod == shape_out[d] else None)
            if any(p is None for p in pieces):
                for f in factors:
                    self.u.fix(f)
                pieces = self.fixed([shape_out[d] for d in gj])
            for d, piece in zip(gj, pieces):
                out[d] = piece
        return out

    def _partial(self, eqn, ins) -> list:
        """Concatenation, padding, slicing, reversal: the axes they touch are fixed, the others carried."""
        name, shape_out = eqn.primitive.name, eqn.outvars[0].aval.shape
        p = eqn.params
        shape_in = eqn.invars[0].aval.shape
        if name == "concatenate":
            touched = {p["dimension"]}
        elif name == "pad":
            touched = {d for d, cfg in enumerate(p["padding_config"]) if tuple(cfg) != (0, 0, 0)}
        elif name == "rev":
            touched = set(p["dimensions"])
        else:
            touched = {d for d in range(len(shape_out)) if shape_out[d] != shape_in[d]}
        operands = ins if name == "concatenate" else ins[:1]
        out = []
        for d, n in enumerate(shape_out):
            if d in touched:
                for a in operands:
                    for f in a[d]:
                        self.u.fix(f)
                out.extend(self.fixed((n,)))
            else:
                axis = operands[0][d]
                for a in operands[1:]:
                    axis = self.join_axis(axis, a[d])
                out.append(axis)
        for extra in ins[len(operands):]:  # slice starts, padding values: constants of no axis
            for a in extra:
                for f in a:
                    self.u.fix(f)
        return out


#: Primitives that call a jaxpr once on their operands (loops and conditionals are not among them).
CALLS = frozenset({"pjit", "jit", "closed_call", "core_call", "custom_jvp_call", "custom_vjp_call",
                   "custom_vjp_call_jaxpr", "remat", "checkpoint"})


def _subjaxpr(eqn):
    """``(jaxpr, number of leading operands that are not its inputs)`` of a call (:data:`CALLS`),
    else ``None``."""
    if eqn.primitive.name not in CALLS:
        return None
    for key in ("jaxpr", "call_jaxpr", "fun_jaxpr"):
        j = eqn.params.get(key)
        if j is None:
            continue
        inner = j.jaxpr if hasattr(j, "jaxpr") and hasattr(j, "consts") else j
        if hasattr(inner, "eqns"):
            return inner, len(eqn.invars) - len(inner.invars)
    return None


def _name(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else path


def _spec_of(t: _Tracer, param_axes: dict, state_axes: dict) -> tuple[dict, dict, dict]:
    """``(axes, views, state)``: one name per free class (the first leaf, in tree order, whose
    last axis holds it names it), views where a leaf's axis holds several factors of which one
    is free."""
    names: dict[int, str] = {}
    for path, axes in list(param_axes.items()) + list(state_axes.items()):
        for axis in reversed(axes):
            for f in axis:
                root = t.u.find(f)
                if t.u.alone(f):  # used by nothing (or only reduced over): no symmetry to claim
                    t.u.fix(f)
                elif root != t.u.FIXED and root not in names:
                    base = _name(path)
                    names[root] = base if base not in names.values() else f"{base}_{len(names)}"

    def leaf(axes):
        parts, shape = [], []
        for axis in axes:
            merged: list = []  # consecutive fixed factors become one axis
            for f in axis:
                name = names.get(t.u.find(f))
                size = t.u.size[f]
                if name is None and merged and merged[-1][0] is None:
                    merged[-1] = (None, merged[-1][1] * size)
                else:
                    merged.append((name, size))
            if len(merged) == 1 or all(n is None for n, _ in merged):
                parts.append(merged[0][0] if len(merged) == 1 else None)
                shape.append(int(np.prod([s for _, s in merged])))
            else:
                parts.extend(n for n, _ in merged)
                shape.extend(s for _, s in merged)
        return tuple(parts), tuple(shape)

    axes, views, state = {}, {}, {}
    for group, out in ((param_axes, axes), (state_axes, state)):
        for path, leaf_axes in group.items():
            names_, shape = leaf(leaf_axes)
            out[path] = names_
            if len(names_) != len(leaf_axes):
                views[path] = shape
    return axes, views, state


def trace_structure(model, params, state, x: jax.Array) -> tuple[dict, dict, dict]:
    """Which parameter and state axes one hidden permutation reorders, read from the traced
    evaluation-mode forward pass ``model.apply_eval(params, state, x)`` (the module's description).

    Args:
      model: a bound model (``apply_eval(params, state, x)``).
      params: one member's parameters (no member axis; only their shapes matter).
      state: its state (``{}`` without).
      x: ``(N, ...)`` example inputs.

    Returns:
      ``(axes, views, state_axes)`` as :class:`~landscape.models.permutation.PermutationSpec` takes them.

    Raises:
      ConfigError: an operation without a rule, named.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> model = ls.MLP(hidden=(5,), output_activation="identity").for_data(data)
      >>> from landscape.models.spec_inference import trace_structure
      >>> axes, views, _ = trace_structure(model, model.init(jax.random.key(0)), {}, data.test.x[:4])
      >>> axes["Dense_0/kernel"], views
      ((None, 'Dense_0'), {})
    """
    x = jnp.asarray(x, jnp.float32)
    closed = jax.make_jaxpr(lambda p, s, v: model.apply_eval(p, s, v))(params, state, x)
    p_leaves, s_leaves = jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(state)
    t = _Tracer()
    ins = [t.fresh(np.shape(a)) for a in p_leaves + s_leaves] + [t.fresh(x.shape)]
    for axis in ins[-1]:  # the input is what it is
        for f in axis:
            t.u.fix(f)
    outs = t.run(closed.jaxpr, ins)
    for axes in outs:
        for axis in axes:
            for f in axis:
                t.u.fix(f)
    param_axes = dict(zip(tree.flatten_with_paths(params), ins[:len(p_leaves)]))
    state_axes = dict(zip(tree.flatten_with_paths(state), ins[len(p_leaves):len(p_leaves) + len(s_leaves)]))
    return _spec_of(t, param_axes, state_axes)
