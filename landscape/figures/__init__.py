"""Figures from saved results — ``ls.figures`` (also ``ls.plot`` and ``ls.report``): matplotlib only, no JAX.

Every figure function takes plain NumPy arrays and metadata and returns a
:class:`matplotlib.figure.Figure` built without pyplot (no global figure state, no display), or
draws into an ``ax`` it is given; the writers (``*_figures``, :func:`write_report`) read a
run's saved results and write its figures and ``report.md``.  Nothing here computes.  One
module per figure family:

* :mod:`~landscape.figures.styles` — the paper and slides styles, saving figures and animations;
* :mod:`~landscape.figures.training` — training curves, final costs, summaries of sweeps;
* :mod:`~landscape.figures.surfaces` — curves, planes (contour, filled, heat map, 3-D), small multiples;
* :mod:`~landscape.figures.minima` — matrices between members, scatter plots;
* :mod:`~landscape.figures.curvature` — spectra, curvature maps, mini-batch spread, the Hessian report;
* :mod:`~landscape.figures.sharpness` — sharpness measures across members;
* :mod:`~landscape.figures.dynamics` — curvature tracked during training, instability of spawned children;
* :mod:`~landscape.figures.basins` — basins of attraction;
* :mod:`~landscape.figures.races` — optimizer races;
* :mod:`~landscape.figures.animations` — descent animations for lectures;
* :mod:`~landscape.figures.result` — the figure of any saved result;
* :mod:`~landscape.figures.report` — ``report.md``;
* :mod:`~landscape.figures.export` — interactive HTML and VTK (``ls.export``).
"""

from .animations import (AnimationStyle, descent_animation, descent_figures, descent_lines, descent_paths, frame_steps,
                         paths_by_basin)
from .basins import basin_lines, basin_map
from .curvature import (
    curvature_figures,
    curvature_map,
    curvature_map_figure,
    curvature_map_lines,
    density_curves,
    hessian_figures,
    hessian_lines,
    minibatch_spread,
    spectral_density,
)
from .dynamics import (
    curvature_tracking,
    instability_figure,
    instability_figures,
    instability_lines,
    stability_threshold,
    stable_from,
)
from .minima import matrix, scatter
from .races import race_animation, race_figure, race_figures, race_lines
from .report import compare_lines, refresh_report, write_report
from .result import from_result, result_figure
from .sharpness import SHARPNESS_TITLES, sharpness_figure, sharpness_figures, sharpness_lines
from .styles import FIGURE_FORMATS, STYLES, Labels, save_animation, save_figure, scale, style, using
from .surfaces import MAX_LABELLED_PATHS, SURFACE_KINDS, curve, landscape_2d, small_multiples
from .training import final_cost_histogram, sweep, training_curves, training_figures

__all__ = [
    "style", "using", "scale", "STYLES", "save_figure", "save_animation", "FIGURE_FORMATS", "Labels",
    "training_curves", "final_cost_histogram", "sweep", "training_figures",
    "SURFACE_KINDS", "MAX_LABELLED_PATHS", "curve", "landscape_2d", "small_multiples",
    "matrix", "scatter",
    "spectral_density", "curvature_map", "minibatch_spread", "curvature_map_lines", "curvature_map_figure",
    "hessian_lines", "density_curves", "hessian_figures", "curvature_figures",
    "SHARPNESS_TITLES", "sharpness_lines", "sharpness_figure", "sharpness_figures",
    "stability_threshold", "curvature_tracking", "stable_from", "instability_lines", "instability_figure", "instability_figures",
    "basin_map", "basin_lines",
    "race_figure", "race_animation", "race_lines", "race_figures",
    "AnimationStyle", "descent_animation", "paths_by_basin", "descent_paths", "descent_lines", "descent_figures",
    "frame_steps",
    "from_result", "result_figure",
    "compare_lines", "write_report", "refresh_report",
]
