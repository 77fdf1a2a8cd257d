"""Hidden-unit permutations: a model's permutation structure, permuting, and weight matching.

A network's hidden units (a convolution's channels) can be reordered — with the inputs of the
layers that read them — without changing its function.  Each model describes which axes of
which arrays one permutation reorders (a :class:`PermutationSpec`, from
``model.permutation_spec()``), so nothing here knows a parameter name.  Weight matching
(Ainsworth et al. 2023, "Git Re-Basin") picks the permutations that bring one network closest
to another; :mod:`landscape.minima` uses it for barriers after alignment.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..core import tree
from ..core.errors import ConfigError

__all__ = ["PermutationSpec", "permute", "weight_matching", "align", "align_to", "check_alignable", "infer_spec"]

PyTree = Any


class PermutationSpec(NamedTuple):
    """Which axes of a network's arrays one hidden-unit (or channel) permutation reorders.

    Permuting the units of a hidden layer — and, with them, the matching inputs of every layer
    that reads them — leaves the network's function unchanged (Hecht-Nielsen 1990); weight
    matching (Ainsworth et al. 2023) chooses such permutations to bring one network close to
    another.  A model describes its own structure (``model.permutation_spec()``); this module
    never reads parameter names.  Permutations are named; the units a residual connection adds
    together share one name (their permutations are tied).

    Attributes:
      axes: ``{"path/to/leaf": (name or None per axis)}`` for **every** parameter leaf (paths
        as :func:`landscape.tree.key_paths` writes them); ``None`` marks an axis nothing
        permutes (the inputs, the classes, a kernel's spatial axes).
      views: ``{"path": shape}``: the leaf is seen as this shape before permuting, its ``axes``
        index the view — a Dense layer that reads a flattened ``(H, W, C)`` feature map views
        its kernel ``(H W C, K)`` as ``(H W, C, K)`` so that the channels can follow.
      state: ``axes`` for the model's state (BatchNorm's running means and variances follow
        their channels).

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> model = ls.MLP(hidden=(5,), output_activation="identity").for_data(data)
      >>> spec, theta = model.permutation_spec(), model.init(jax.random.key(0))
      >>> spec.axes["Dense_0/kernel"], spec.axes["Dense_1/kernel"]   # the hidden units: columns, then rows
      ((None, 'Dense_0'), ('Dense_0', None))
    """

    axes: Mapping[str, tuple]
    views: Mapping[str, tuple] = {}
    state: Mapping[str, tuple] = {}


def _viewed(flat: dict, axes: Mapping[str, tuple], views: Mapping[str, tuple]) -> dict:
    return {k: np.reshape(np.asarray(v), views.get(k, np.shape(v))) for k, v in flat.items() if k in axes}


def _sizes(spec: PermutationSpec, params: PyTree, state: PyTree = None) -> dict[str, int]:
    """``{name: units}`` of every permutation, checked against the arrays: every leaf is in the
    spec (none is silently left unpermuted), views hold their leaf, and every axis a name
    permutes has that name's size."""
    groups = [(tree.flatten_with_paths(params), spec.axes, "parameter")]
    if state is not None and jax.tree_util.tree_leaves(state):
        groups.append((tree.flatten_with_paths(state), spec.state, "state"))
    sizes: dict[str, int] = {}
    for flat, axes, what in groups:
        missing = sorted(set(flat) - set(axes))
        if missing:  # never permute some arrays and leave others: "aligned" would be a lie
            raise ConfigError(f"alignment cannot permute {', '.join(missing[:6])}"
                              f"{' ...' if len(missing) > 6 else ''}: the model's permutation spec does not cover "
                              f"this {what}")
        for k, v in flat.items():
            shape = tuple(spec.views.get(k, np.shape(v)))
            if math.prod(shape) != np.size(v) or len(axes[k]) != len(shape):
                raise ConfigError(f"the permutation spec of {k!r} ({axes[k]}, view {shape}) does not fit its "
                                  f"shape {np.shape(v)}")
            for name, n in zip(axes[k], shape):
                if name is not None and sizes.setdefault(name, n) != n:
                    raise ConfigError(f"permutation {name!r} reorders {sizes[name]} units elsewhere but {n} in {k!r}")
    return sizes


def permute(params: PyTree, spec: PermutationSpec, perms: Mapping[str, np.ndarray], *, state: PyTree = None):
    """Reorder the units of ``params`` (and ``state``): along every axis named ``p``, entry
    ``i`` of the result is entry ``perms[p][i]`` of the input.  The network computes exactly
    the same function (up to float32 summation order).

    Args:
      params: one member's parameters (no member axis).
      spec: the model's :class:`PermutationSpec`.
      perms: ``{name: (n,) int}`` for every name of the spec.
      state: optional model state.

    Returns:
      the permuted parameters, or ``(params, state)`` when ``state`` is given.

    Raises:
      ConfigError: a leaf outside the spec, a missing permutation or one of the wrong size.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> model = ls.MLP(hidden=(5,), output_activation="identity").for_data(data)
      >>> spec, theta = model.permutation_spec(), model.init(jax.random.key(0))
      >>> swapped = ls.permutation.permute(theta, spec, {"Dense_0": np.array([4, 3, 2, 1, 0])})
      >>> x = jnp.asarray(data.test.x)
      >>> bool(jnp.allclose(model.apply(theta, x), model.apply(swapped, x), atol=1e-6))   # the same function
      True
    """
    sizes = _sizes(spec, params, state)
    for name, n in sizes.items():
        if name not in perms:
            raise ConfigError(f"no permutation {name!r} given (need {', '.join(sorted(sizes))})")
        if sorted(np.asarray(perms[name]).tolist()) != list(range(n)):
            raise ConfigError(f"permutation {name!r} must reorder range({n})")

    def apply(tree_, axes):
        flat = tree.flatten_with_paths(tree_)
        out = {}
        for k, w in _viewed(flat, axes, spec.views).items():
            v = flat[k]
            for ax, name in enumerate(axes[k]):
                if name is not None:
                    w = np.take(w, np.asarray(perms[name]), axis=ax)
            out[k] = jnp.asarray(w.reshape(np.shape(v)), dtype=jnp.asarray(v).dtype)
        return tree.unflatten_with_paths(out)

    p = apply(params, spec.axes)
    return p if state is None else (p, apply(state, spec.state))


def _similarity(name: str, n: int, fa: dict, fb: dict, axes, perms: dict, known=None) -> np.ndarray | None:
    """``sum_leaves <A, B permuted>`` as an ``(n, n)`` matrix over the units ``name`` reorders,
    B's other axes permuted by the current ``perms``; with ``known``, only leaves whose other
    permutations are all known (``None`` if there is none)."""
    sim, used = np.zeros((n, n)), False
    for k, names in axes.items():
        if name not in names:
            continue
        others = [m for m in names if m is not None and m != name]
        if known is not None and not all(m in known for m in others):
            continue
        wb = fb[k]
        for ax, m in enumerate(names):
            if m is not None and m != name:
                wb = np.take(wb, perms[m], axis=ax)
        for ax in (i for i, m in enumerate(names) if m == name):
            a_rows = np.moveaxis(fa[k], ax, 0).reshape(n, -1)
            b_rows = np.moveaxis(wb, ax, 0).reshape(n, -1)
            sim += a_rows @ b_rows.T
            used = True
    return sim if used else None


def weight_matching(theta_a: PyTree, theta_b: PyTree, spec: PermutationSpec, *, key: jax.Array | None = None,
                    max_iters: int = 100) -> dict[str, np.ndarray]:
    """The permutations of ``theta_b``'s units that best match ``theta_a`` (Ainsworth et al. 2023).

    Maximises ``sum_leaves <A, permute(B)>`` (every parameter, biases and normalisation scales
    included).  Start: a pass that fixes one permutation at a time from the leaves whose other
    permutations are fixed already (input to output for a chain; exact for a permuted copy of
    A).  Then coordinate descent — each permutation in turn (a random order per sweep from
    ``key``, else by name) solved as a linear assignment with the others held — accepting only
    strict improvements, until a sweep changes nothing or ``max_iters`` sweeps.

    Args:
      theta_a: the reference member's parameters (no member axis).
      theta_b: the other member's, the same structure.
      spec: the model's :class:`PermutationSpec`.
      key: randomises the order of the sweeps (``None``: by name).
      max_iters: the most sweeps.

    Returns:
      ``{name: (n,) int}``: apply with :func:`permute` to ``theta_b``.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> model = ls.MLP(hidden=(5,), output_activation="identity").for_data(data)
      >>> spec, theta = model.permutation_spec(), model.init(jax.random.key(0))
      >>> swapped = ls.permutation.permute(theta, spec, {"Dense_0": np.array([4, 3, 2, 1, 0])})
      >>> ls.permutation.weight_matching(theta, swapped, spec)["Dense_0"].tolist()
      [4, 3, 2, 1, 0]
    """
    from scipy.optimize import linear_sum_assignment

    if jax.tree_util.tree_structure(theta_a) != jax.tree_util.tree_structure(theta_b):
        raise ConfigError("the two networks have different layers")
    sizes = _sizes(spec, theta_a)
    if _sizes(spec, theta_b) != sizes or [np.shape(x) for x in jax.tree_util.tree_leaves(theta_a)] != [
            np.shape(x) for x in jax.tree_util.tree_leaves(theta_b)]:
        raise ConfigError("the two networks have different widths")
    fa = {k: np.asarray(v, np.float64) for k, v in _viewed(tree.flatten_with_paths(theta_a), spec.axes,
                                                           spec.views).items()}
    fb = {k: np.asarray(v, np.float64) for k, v in _viewed(tree.flatten_with_paths(theta_b), spec.axes,
                                                           spec.views).items()}
    perms = {name: np.arange(n) for name, n in sizes.items()}
    names = sorted(sizes)
    known: set[str] = set()
    while len(known) < len(names):  # the start: whatever can be fixed from fixed neighbours
        for name in names:
            if name in known:
                continue
            sim = _similarity(name, sizes[name], fa, fb, spec.axes, perms, known)
            if sim is not None:
                perms[name] = linear_sum_assignment(sim, maximize=True)[1]
                known.add(name)
                break
        else:  # a cycle of unknowns: fix the first with the others as they stand
            name = next(n for n in names if n not in known)
            perms[name] = linear_sum_assignment(_similarity(name, sizes[name], fa, fb, spec.axes, perms),
                                                maximize=True)[1]
            known.add(name)
    rng = np.random.default_rng(None if key is None else np.asarray(jax.random.key_data(key)).ravel())
    for _ in range(max_iters):
        changed = False
        for i in (rng.permutation(len(names)) if key is not None else range(len(names))):
            name = names[i]
            sim = _similarity(name, sizes[name], fa, fb, spec.axes, perms)
            cols = linear_sum_assignment(sim, maximize=True)[1]
            old, new = np.trace(sim[:, perms[name]]), np.trace(sim[:, cols])
            if not np.array_equal(cols, perms[name]) and new > old + 1e-12 * max(1.0, abs(old)):
                perms[name] = cols  # only a strict improvement: ties cannot cycle
                changed = True
        if not changed:
            break
    return perms


def align(theta_a: PyTree, theta_b: PyTree, *, spec: PermutationSpec, key: jax.Array | None = None,
          max_iters: int = 100) -> tuple[PyTree, dict[str, np.ndarray]]:
    """Weight matching: ``theta_b`` with its units permuted to best match ``theta_a`` — the same
    function as ``theta_b``, usually much closer to ``theta_a`` (Ainsworth et al. 2023).

    Args:
      theta_a: the reference member's parameters (no member axis).
      theta_b: the member to permute, the same structure.
      spec: the model's :class:`PermutationSpec` (``model.permutation_spec()``).
      key: randomises the order of the coordinate-descent sweeps (``None``: a fixed order).
      max_iters: the most sweeps.

    Returns:
      ``(aligned_b, perms)``; ``perms`` as :func:`weight_matching` returns them.

    Raises:
      ConfigError: a leaf the spec does not cover (never left unaligned), different networks.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> model = ls.MLP(hidden=(5,), output_activation="identity").for_data(data)
      >>> spec, theta = model.permutation_spec(), model.init(jax.random.key(0))
      >>> swapped = ls.permutation.permute(theta, spec, {"Dense_0": np.array([4, 3, 2, 1, 0])})
      >>> aligned, perms = ls.permutation.align(theta, swapped, spec=spec)
      >>> float(ls.tree.norm(jax.tree.map(jnp.subtract, aligned, theta)))   # swapped brought back onto theta
      0.0
    """
    perms = weight_matching(theta_a, theta_b, spec, key=key, max_iters=max_iters)
    return permute(theta_b, spec, perms), perms


def check_alignable(spec: PermutationSpec, params: PyTree, state: PyTree = None) -> None:
    """Raise at once when :func:`align` cannot permute every array of ``params`` (and ``state``)
    with ``spec`` (before any barrier is computed).

    Args:
      spec: the model's :class:`PermutationSpec`.
      params: one member's parameters (no member axis).
      state: its model state (optional).

    Raises:
      ConfigError: names the arrays the spec does not cover.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> model = ls.MLP(hidden=(5,), output_activation="identity").for_data(data)
      >>> spec, theta = model.permutation_spec(), model.init(jax.random.key(0))
      >>> ls.permutation.check_alignable(spec, theta)          # None: every leaf described, sizes agree
      >>> ls.permutation.check_alignable(spec, {**theta, "Extra": {"scale": jnp.ones(5)}})
      Traceback (most recent call last):
      ...
      landscape.core.errors.ConfigError: ...Extra/scale...
    """
    _sizes(spec, params, state)


def align_to(reference: PyTree, stacked: PyTree, *, spec: PermutationSpec) -> PyTree:
    """Every member of ``stacked`` aligned to ``reference`` (leaves ``(M, ...)``).

    Args:
      reference: the member to align to (no member axis).
      stacked: the members to permute, leaves ``(M, ...)``.
      spec: the model's :class:`PermutationSpec`.

    Returns:
      the aligned members, leaves ``(M, ...)``; each computes the same function as before.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> model = ls.MLP(hidden=(5,), output_activation="identity").for_data(data)
      >>> spec, theta = model.permutation_spec(), model.init(jax.random.key(0))
      >>> swapped = ls.permutation.permute(theta, spec, {"Dense_0": np.array([4, 3, 2, 1, 0])})
      >>> aligned = ls.permutation.align_to(theta, ls.tree.stack([theta, swapped]), spec=spec)
      >>> float(jnp.abs(aligned["Dense_0"]["kernel"][1] - theta["Dense_0"]["kernel"]).max())
      0.0
    """
    out = [align(reference, tree.take(stacked, i), spec=spec)[0] for i in range(tree.num_members(stacked))]
    return tree.stack(out)


def infer_spec(model, x, *, key: jax.Array | None = None, params=None, state=None,
               certify: bool = True) -> PermutationSpec:
    """The permutation structure of any model, read from its traced evaluation-mode forward pass.

    Which parameter (and state) axes one hidden permutation reorders is derived operation by
    operation (:mod:`landscape.models.spec_inference`): through dense and convolution
    contractions, elementwise functions, BatchNorm and LayerNorm (their scales, biases and
    running statistics follow their channels), pooling, reshapes that flatten feature maps (a
    view of the reading kernel), attention's heads, and residual additions (which tie the
    permutations they add).  Axes that reach the input or the outputs are fixed; an operation
    without a rule is refused by name, never guessed.  The symmetry is Hecht-Nielsen (1990)'s;
    weight matching over it is Ainsworth et al. (2023, Git Re-Basin), whose code writes such
    specs by hand.  A user model without a spec of its own uses this
    (:meth:`landscape.models.FlaxModel.permutation_spec`).

    The result is certified before it is returned: a copy of ``params`` (and ``state``) permuted
    at random by every permutation at once must give the original's outputs on ``x``.

    Args:
      model: a bound model — ``ens.model``, a built-in bound with ``for_data``, or
        ``ls.models.as_model(module)`` (bound to ``x`` here when it is not yet).
      x: ``(N, ...)`` an example batch (a few examples; the certificate runs on them).
      key: PRNG key of the parameters traced and certified and of the random permutations
        (default ``key(0)``).
      params: one member's parameters to certify on (default: fresh ones from ``key``).
      state: its state (default: fresh ones).
      certify: check the spec on ``x`` (default); ``False`` only traces.

    Returns:
      a :class:`PermutationSpec` covering every parameter and state leaf.

    Raises:
      ConfigError: an operation the inference has no rule for (named), a model that is not
        wrapped, or a spec that fails its certificate.

    Examples:
      >>> import flax.linen as nn
      >>> class Net(nn.Module):
      ...     @nn.compact
      ...     def __call__(self, x):
      ...         h = nn.relu(nn.Dense(5)(x))                         # Dense_0: 5 hidden units
      ...         return nn.Dense(3)(h)
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> spec = ls.permutation.infer_spec(ls.models.as_model(Net()), data.test.x[:8])
      >>> spec.axes["Dense_0/kernel"], spec.axes["Dense_1/kernel"]    # the 5 hidden units
      ((None, 'Dense_0'), ('Dense_0', None))
    """
    from .spec_inference import trace_structure

    if not hasattr(model, "apply_eval"):
        raise ConfigError(f"infer_spec takes a model as train_ensemble holds it (ens.model, or "
                          f"ls.models.as_model(...) of a Flax module or pair); got {type(model).__name__}")
    x = jnp.asarray(x, jnp.float32)
    if getattr(model, "in_shape", ()) is None:  # a wrapped model not yet bound: bind it to x
        model = model.for_inputs(x)
    if getattr(model, "in_features", 1) is None:
        raise ConfigError(f"{type(model).__name__} is not bound to data: call model.for_data(dataset) first")
    key = jax.random.key(0) if key is None else key
    params = model.init(key) if params is None else params
    state = model.init_state(key) if state is None else state
    spec = PermutationSpec(*trace_structure(model, params, state, x))
    if certify:
        _certify(model, spec, params, state, x, key)
    return spec


def _certify(model, spec: PermutationSpec, params, state, x, key) -> None:
    """Every permutation of ``spec`` at once, drawn at random: the outputs must not change."""
    with_state = bool(jax.tree_util.tree_leaves(state))
    sizes = _sizes(spec, params, state if with_state else None)
    rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())
    perms = {name: rng.permutation(n) for name, n in sizes.items()}
    p2, s2 = permute(params, spec, perms, state=state) if with_state else (permute(params, spec, perms), state)
    a = np.asarray(model.apply_eval(params, state, x), np.float64)
    b = np.asarray(model.apply_eval(p2, s2, x), np.float64)
    scale = max(float(np.max(np.abs(a))), 1.0)
    if not np.allclose(a, b, rtol=1e-4, atol=1e-4 * scale):
        raise ConfigError(f"the inferred permutation structure of {getattr(model, 'name', type(model).__name__)} "
                          f"fails its certificate (outputs change by up to {float(np.max(np.abs(a - b))):.3g} under "
                          "a random permutation): give a PermutationSpec by hand, and please report the model")
