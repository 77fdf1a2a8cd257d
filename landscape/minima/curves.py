"""Curves between minima: a quadratic Bézier curve with a trained bend (Garipov et al. 2018)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..core import tree
from ..core.errors import ConfigError

PyTree = Any

__all__ = ["BezierCurve", "bezier_point", "bezier_curve"]


class BezierCurve(NamedTuple):
    """A trained quadratic Bézier curve between two minima.

    ``bend``: the control point.  ``t (n,)``; ``curve_loss`` and ``line_loss`` ``(n,)``: the
    loss along the curve and along the straight line; ``train_loss (steps,)``: the
    objective during training.

    Attributes:
      bend: the control point, a parameter pytree.
      t: ``(n,)`` curve parameters.
      curve_loss: ``(n,)`` the loss along the curve.
      line_loss: ``(n,)`` the loss along the straight line.
      train_loss: ``(steps,)`` the training objective.

    Examples:
      >>> well = lambda p: (p["w"][0] ** 2 - 1.0) ** 2 + p["w"][1] ** 2     # minima at w = (-1, 0), (1, 0)
      >>> left, right = {"w": jnp.array([-1.0, 0.0])}, {"w": jnp.array([1.0, 0.0])}
      >>> c = ls.minima.bezier_curve(well, left, right, key=jax.random.key(0), steps=300, num=11)
      >>> c.t.shape, c.curve_loss.shape, c.train_loss.shape
      ((11,), (11,), (300,))
    """

    bend: PyTree
    t: np.ndarray
    curve_loss: np.ndarray
    line_loss: np.ndarray
    train_loss: np.ndarray


def bezier_point(theta_a: PyTree, bend: PyTree, theta_b: PyTree, t) -> PyTree:
    """``(1-t)² A + 2t(1-t) bend + t² B``.

    Args:
      theta_a: the curve's start.
      bend: its control point.
      theta_b: its end.
      t: the curve parameter in ``[0, 1]``.

    Returns:
      the parameters at ``t`` (Garipov et al. 2018's quadratic Bézier curve).

    Examples:
      >>> a, bend, b = {"w": jnp.zeros(1)}, {"w": jnp.ones(1)}, {"w": jnp.full(1, 2.0)}
      >>> ls.minima.bezier_point(a, bend, b, 0.5)["w"].tolist()   # 0.25 a + 0.5 bend + 0.25 b
      [1.0]
    """
    return jax.tree_util.tree_map(
        lambda a, c, b: (1 - t) ** 2 * a + 2 * t * (1 - t) * c + t**2 * b, theta_a, bend, theta_b
    )


def bezier_curve(
    loss_fn: Callable[[PyTree], jax.Array],
    theta_a: PyTree,
    theta_b: PyTree,
    *,
    key: jax.Array,
    steps: int = 1000,
    optimizer: optax.GradientTransformation | None = None,
    samples_per_step: int = 8,
    num: int = 61,
) -> BezierCurve:
    """Train the bend of a quadratic Bézier curve to minimise ``E_{t~U(0,1)} L(curve(t))``.

    The bend starts at the midpoint of A and B (the straight line); each step draws
    ``samples_per_step`` values of ``t`` from ``fold_in(key, step)``.  The whole loop is one
    ``lax.scan``.

    Garipov et al. (2018): low-loss curves connect minima that a straight line separates by a barrier.

    Args:
      loss_fn: ``params -> scalar``.
      theta_a: one minimum (no member axis).
      theta_b: the other.
      key: PRNG key of the ``t`` samples.
      steps: optimizer steps.
      optimizer: an optax transformation (default Adam at 0.01).
      samples_per_step: ``t`` values per step.
      num: points on ``[0, 1]`` at which the trained curve and the line are evaluated.

    Returns:
      a :class:`BezierCurve`: the bend, ``t``, the loss along the curve and along the line.

    Examples:
      >>> ring = lambda p: (p["w"][0] ** 2 + p["w"][1] ** 2 - 1.0) ** 2   # minima on the unit circle
      >>> a, b = {"w": jnp.array([-1.0, 0.0])}, {"w": jnp.array([0.0, 1.0])}
      >>> c = ls.minima.bezier_curve(ring, a, b, key=jax.random.key(0), steps=200, num=21)
      >>> float(c.line_loss.max()), bool(c.curve_loss.max() < 0.01)   # the chord cuts inside; the curve follows the ring
      (0.25, True)
    """
    if steps < 1 or samples_per_step < 1:
        raise ConfigError("steps and samples_per_step must be positive")
    opt = optimizer if optimizer is not None else optax.adam(1e-2)
    bend0 = tree.scale(0.5, tree.add(theta_a, theta_b))

    def objective(bend, ts):
        return jnp.mean(jax.vmap(lambda t: loss_fn(bezier_point(theta_a, bend, theta_b, t)))(ts))

    def step(carry, i):
        bend, state = carry
        ts = jax.random.uniform(jax.random.fold_in(key, i), (samples_per_step,))
        value, grad = jax.value_and_grad(objective)(bend, ts)
        updates, state = opt.update(grad, state, bend)
        return (optax.apply_updates(bend, updates), state), value

    @jax.jit
    def run(bend):
        (bend, _), values = jax.lax.scan(step, (bend, opt.init(bend)), jnp.arange(steps))
        return bend, values

    bend, values = run(bend0)
    t = np.linspace(0.0, 1.0, num)
    curve = jax.jit(jax.vmap(lambda s: loss_fn(bezier_point(theta_a, bend, theta_b, s))))(jnp.asarray(t))
    line = jax.jit(jax.vmap(lambda s: loss_fn(bezier_point(theta_a, bend0, theta_b, s))))(jnp.asarray(t))
    return BezierCurve(bend, t, np.asarray(curve), np.asarray(line), np.asarray(values))
