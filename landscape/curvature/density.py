"""Spectral densities as NumPy: the result of stochastic Lanczos quadrature and its smoothing.

:func:`landscape.hessian.spectral_density` computes a :class:`Density` (Lanczos, JAX); this
module holds the type and :func:`density_on_grid`, which need no JAX, so that figures drawn
from saved results can smooth a saved density without importing it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

__all__ = ["Density", "density_on_grid"]


class Density(NamedTuple):
    """Stochastic Lanczos quadrature: ``nodes (probes, m)`` Ritz values, ``weights (probes, m)``.

    Each probe's weights sum to 1; the spectral measure is their average over probes.

    Attributes:
      nodes: ``(probes, m)`` Ritz values (``(M, probes, m)`` stacked).
      weights: the same shape; each probe's sum to 1.

    Examples:
      >>> quad = lambda p: 0.5 * jnp.sum(jnp.array([3.0, 2.0, 1.0]) * p["w"] ** 2)   # Hessian diag(3, 2, 1)
      >>> theta = {"w": jnp.ones(3)}
      >>> d = ls.hessian.spectral_density(quad, theta, key=jax.random.key(0), num_probes=2, num_iters=3)
      >>> d.nodes.shape, d.weights.sum(axis=1).round(4).tolist()   # each probe's weights sum to 1
      ((2, 3), [1.0, 1.0])
    """

    nodes: Any
    weights: Any


def density_on_grid(density: Density, grid: np.ndarray, *, sigma: float | None = None) -> np.ndarray:
    """Gaussian-smoothed density on ``grid``: ``mean_probes sum_j w_j N(grid; node_j, sigma²)``.

    ``sigma`` defaults to 1% of the node range.  Integrates to 1 over a grid that covers the
    nodes (up to the tails of the Gaussians).

    Args:
      density: a :class:`Density` (one point's; no member axis).
      grid: ``(G,)`` eigenvalues to evaluate the density at.
      sigma: the Gaussians' width.

    Returns:
      ``(G,)`` density values.

    Examples:
      >>> quad = lambda p: 0.5 * jnp.sum(jnp.array([3.0, 2.0, 1.0]) * p["w"] ** 2)   # Hessian diag(3, 2, 1)
      >>> theta = {"w": jnp.ones(3)}
      >>> d = ls.hessian.spectral_density(quad, theta, key=jax.random.key(0), num_probes=2, num_iters=3)
      >>> grid = np.linspace(0, 4, 401)
      >>> round(float(np.sum(ls.hessian.density_on_grid(d, grid, sigma=0.1)) * (grid[1] - grid[0])), 3)
      1.0
    """
    nodes = np.asarray(density.nodes, float)
    weights = np.asarray(density.weights, float)
    grid = np.asarray(grid, float)
    if sigma is None:
        sigma = max(1e-2 * float(np.ptp(nodes)), 1e-8)
    z = (grid[None, None, :] - nodes[..., None]) / sigma
    kern = np.exp(-0.5 * z**2) / (sigma * np.sqrt(2 * np.pi))
    return np.mean(np.sum(weights[..., None] * kern, axis=1), axis=0)
