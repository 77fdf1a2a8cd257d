"""Instability of children spawned from one parent: the loss and error barriers on the straight
lines between them (Frankle et al. 2020, "Linear mode connectivity and the lottery ticket
hypothesis").  A network is *stable* at a spawn step when children trained from it on different
data orders end in minima joined by a straight line without a barrier.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from ..core import tree
from ..core.errors import ConfigError
from ..core.execution import Execution
from ..geometry import surface
from .barriers import pairs

__all__ = ["instability"]


def instability(fn: Callable, children: Any, *, num_children: int, num: int = 25, data=None,
                loss: str = "loss", accuracy: str = "accuracy", execution: Execution = Execution()) -> dict:
    """The barriers between the children of every spawn, all lines in one stacked evaluation.

    The children of one spawn (a parent at a spawn step) are ``num_children`` consecutive members;
    every pair of them is joined by a straight line of ``num`` points on ``[0, 1]``.  Two
    definitions are returned for the loss and for the error (``1 − accuracy``): Frankle et al.'s
    *instability*, ``max_t f(t) − (f(0) + f(1)) / 2`` (``*_barrier``), and the height above the
    chord, ``max_t f(t) − ((1 − t) f(0) + t f(1))`` (``*_barrier_chord``;
    :func:`landscape.surface.barrier_of_curve`).

    Args:
      fn: ``(params, batch) -> {loss, accuracy, ...}`` (:func:`landscape.models.metrics_fn`), or
        ``params -> {…}`` without ``data``.
      children: the children, leaves ``(G · C, ...)``: ``G`` spawns of ``C = num_children``
        children each, child fastest.
      num_children: ``C`` (at least 2).
      num: points on each line.
      data: the batch the metrics are taken on (the training set), or named batches
        ``{"train": (x, y), "test": (x, y)}`` evaluated in the same pass (every key of the
        result is then prefixed by the batch's name: ``test_error_barrier``).
      loss: the loss among ``fn``'s outputs.
      accuracy: the accuracy among them.
      execution: how to run it — chunking, checkpoint, progress bar, devices
        (:class:`~landscape.core.execution.Execution`); changes no number.

    Returns:
      ``{"pairs": (Q, 2), "loss_barrier", "error_barrier", "loss_barrier_chord",
      "error_barrier_chord": (G, Q), "loss_instability", "error_instability": (G,)}`` with
      ``Q = C(C−1)/2`` the pairs of one spawn (child indices within it); the instabilities are
      the mean over its pairs.

    Examples:
      >>> def fn(p):                              # a double well: minima at w = -1 and w = 1
      ...     w = p["w"][0]
      ...     return {"loss": (w ** 2 - 1.0) ** 2, "accuracy": 1.0 - 0.5 * (w ** 2 - 1.0) ** 2}
      >>> kids = {"w": jnp.array([[-1.0], [1.0], [1.0], [1.0]])}      # two spawns of two children
      >>> out = ls.minima.instability(fn, kids, num_children=2, num=5)
      >>> out["loss_barrier"].tolist(), out["error_instability"].tolist()
      ([[1.0], [0.0]], [0.5, 0.0])
    """
    c = int(num_children)
    if c < 2:
        raise ConfigError(f"instability needs at least 2 children per spawn, got {num_children}")
    n = tree.num_members(children)
    if n % c:
        raise ConfigError(f"{n} children do not split into spawns of {c}")
    g = n // c
    pr = pairs(c)
    first = (np.arange(g)[:, None] * c + pr[None, :, 0]).ravel()
    second = (np.arange(g)[:, None] * c + pr[None, :, 1]).ravel()
    a = jax.tree_util.tree_map(lambda x: np.asarray(x)[first], children)
    b = jax.tree_util.tree_map(lambda x: np.asarray(x)[second], children)
    t = surface.interpolation_grid(num, 0.0)
    vals = surface.evaluate(fn, a, [tree.sub(b, a)], t[:, None], data=data, stacked=True,
                            execution=execution.labelled("instability"))
    out = {"pairs": pr}
    for split in (list(data) if isinstance(data, dict) else [""]):
        pre = f"{split}_" if split else ""
        for name in (loss, accuracy):
            if pre + name not in vals:
                raise ConfigError(f"fn returns no {name!r} (the evaluation gives {', '.join(vals)})")
        for m, curve in (("loss", np.asarray(vals[pre + loss], float)),
                         ("error", 1.0 - np.asarray(vals[pre + accuracy], float))):
            b_ = surface.barrier_of_curve(t, curve.reshape(g * len(pr), -1))
            out[f"{pre}{m}_barrier"] = np.asarray(b_["barrier_midpoint"]).reshape(g, len(pr))
            out[f"{pre}{m}_barrier_chord"] = np.asarray(b_["barrier"]).reshape(g, len(pr))
            out[f"{pre}{m}_instability"] = out[f"{pre}{m}_barrier"].mean(axis=1)
    return out
