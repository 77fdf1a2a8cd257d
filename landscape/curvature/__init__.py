"""Curvature of any loss of any parameter pytree — ``ls.hessian``.

* :mod:`~landscape.curvature.operators` — Hessian-, Gauss–Newton- and Fisher-vector products
  (reverse-over-forward ``grad(jvp(f))``), blocks of parameters, the dense Hessian;
* :mod:`~landscape.curvature.spectra` — Lanczos with full re-orthogonalisation: top and
  smallest eigenvalues (Ghorbani et al. 2019; Yao et al. 2020), Hutchinson traces with
  Rademacher probes, spectral densities by stochastic Lanczos quadrature;
* :mod:`~landscape.curvature.density` — a density as NumPy (no JAX: figures use it);
* :mod:`~landscape.curvature.stacked` — every member of an ensemble at once;
* :mod:`~landscape.curvature.ensemble` — every member's curvature in resumable chunks, and
  curvature maps over a slice (Li et al. 2018, section 6).

Every public name is offered here, imported on first use.
"""

from ..core.namespace import lazy

__getattr__, __dir__, __all__ = lazy(__name__, {
    "operators": ["hvp", "ggn_vp", "fisher_vp", "CURVATURES", "dense_hessian", "selection_mask", "restrict", "layers"],
    "spectra": ["Tridiagonal", "lanczos", "ritz_values", "Eigen", "top_eigenpairs", "top_eigenvalues",
                "smallest_eigenvalue", "trace", "spectral_density"],
    "density": ["Density", "density_on_grid"],
    "stacked": ["CPU_GROUP", "GROUP_PARAMETERS"],
    "ensemble": ["minibatch_curvature", "ensemble_curvature", "curvature_map"],
})
