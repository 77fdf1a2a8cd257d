"""Distances, cosines and prediction disagreement between the members of an ensemble."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..core import tree

PyTree = Any

__all__ = ["distance_matrix", "cosine_matrix", "disagreement_matrix"]


def distance_matrix(stacked: PyTree) -> np.ndarray:
    """Euclidean distances ``||theta_i - theta_j||`` between members, ``(M, M)``.

    Args:
      stacked: the members, leaves ``(M, ...)``.

    Returns:
      ``(M, M)`` float64, zero diagonal (computed on the host).

    Examples:
      >>> stacked = ls.tree.stack([{"w": jnp.array([0.0, 0.0])}, {"w": jnp.array([3.0, 4.0])}])
      >>> ls.minima.distance_matrix(stacked).tolist()
      [[0.0, 5.0], [5.0, 0.0]]
    """
    flat = tree.member_rows(stacked)
    sq = np.sum(flat**2, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * flat @ flat.T, 0.0)
    np.fill_diagonal(d2, 0.0)
    return np.sqrt(d2)


def cosine_matrix(stacked: PyTree) -> np.ndarray:
    """Cosine similarity of the members' parameter vectors, ``(M, M)``.

    Args:
      stacked: the members, leaves ``(M, ...)``.

    Returns:
      ``(M, M)`` float64.

    Examples:
      >>> stacked = ls.tree.stack([{"w": jnp.array([1.0, 0.0])}, {"w": jnp.array([0.0, 2.0])}])
      >>> ls.minima.cosine_matrix(stacked).tolist()
      [[1.0, 0.0], [0.0, 1.0]]
    """
    flat = tree.member_rows(stacked)
    n = np.linalg.norm(flat, axis=1)
    return (flat @ flat.T) / np.maximum(n[:, None] * n[None, :], 1e-30)


def disagreement_matrix(predict: Callable[[PyTree, jax.Array], jax.Array], stacked: PyTree, x) -> np.ndarray:
    """Fraction of inputs ``x`` on which two members predict different classes (Fort et al. 2019).

    Args:
      predict: ``(params, x) -> outputs (N, K)`` of one member (``model.apply``).
      stacked: the members, leaves ``(M, ...)``.
      x: ``(N, ...)`` inputs (the test set).

    Returns:
      ``(M, M)``, the share of inputs whose arg-max class differs.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> ens = ls.train_ensemble(ls.MLP(hidden=(4,)), data, key=jax.random.key(0), seeds=3,
      ...                         loss="cross_entropy", steps=30, execution=ls.Execution(progress=False))
      >>> fn = ls.models.metrics_fn(ens.model, "cross_entropy")
      >>> d = ls.minima.disagreement_matrix(ens.model.apply, ens.params, data.test.x)
      >>> d.shape, float(d[0, 0])                            # (M, M), zero on the diagonal
      ((3, 3), 0.0)
    """
    labels = np.asarray(jax.jit(jax.vmap(lambda p: jnp.argmax(predict(p, x), axis=-1)))(stacked))
    return np.mean(labels[:, None, :] != labels[None, :, :], axis=-1)
