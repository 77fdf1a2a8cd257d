"""Minima: what lies between the places different starts settle, and which start goes where.

One concept per module, every public name offered here (``ls.minima.barrier``, …):

* :mod:`~landscape.minima.barriers` — barriers on straight lines between minima (raw and after
  weight matching), basins joined by low barriers, :func:`compare_members`;
* :mod:`~landscape.minima.measures` — distances, cosines and prediction disagreement;
* :mod:`~landscape.minima.curves` — Bézier curves with a trained bend (Garipov et al. 2018);
* :mod:`~landscape.minima.attraction` — basins of attraction on a plane through minima;
* :mod:`~landscape.minima.connectivity` — barriers between children spawned from one parent
  (Frankle et al. 2020);
* :mod:`~landscape.minima.race` — optimizer races on a fixed plane (its own namespace,
  ``ls.race``).

Weight matching itself is a model concept: :mod:`landscape.permutation`.
"""

from __future__ import annotations

from .attraction import (
    DIVERGED,
    ELSEWHERE,
    SHARED,
    BasinMap,
    basins_of_attraction,
    label_ends,
    label_fractions,
    on_plane,
    plane_coords,
    plane_of,
    plane_starts,
)
from .barriers import aligned_barrier_matrix, barrier, barrier_matrix, barriers_between, basins, compare_members, pairs
from .curves import BezierCurve, bezier_curve, bezier_point
from .connectivity import instability
from .measures import cosine_matrix, disagreement_matrix, distance_matrix

__all__ = [
    "pairs", "barrier", "barriers_between", "barrier_matrix", "aligned_barrier_matrix", "basins", "compare_members",
    "distance_matrix", "cosine_matrix", "disagreement_matrix",
    "BezierCurve", "bezier_point", "bezier_curve",
    "BasinMap", "ELSEWHERE", "DIVERGED", "SHARED", "label_fractions", "plane_of", "on_plane", "plane_starts",
    "plane_coords", "label_ends", "basins_of_attraction", "instability",
]
