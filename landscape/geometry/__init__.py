"""Geometry: directions in parameter space and the slices through it.

* :mod:`~landscape.geometry.directions` — random, filter-normalised (Li et al. 2018), solution
  and PCA directions — ``ls.directions``;
* :mod:`~landscape.geometry.evaluator` — the one evaluator of any metric at many points of an
  affine subspace (chunked, vmapped, sharded, resumable);
* :mod:`~landscape.geometry.surface` — lines, planes, interpolations, planes through three
  minima and trajectory planes built on it — ``ls.surface``.
"""
