""""""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .animations import descent_of_result
from .basins import basin_map_of_result
from .curvature import curvature_map_figure
from .races import race_of_result
from .dynamics import instability_figure
from .sharpness import sharpness_figure
from .styles import Labels, named_points, save_figure, with_warnings
from .surfaces import curve, landscape_2d, metric_label, small_multiples

__all__ = ["from_result", "result_figure"]


def from_result(arrays: dict[str, np.ndarray], meta: dict, *, kind: str | None = None,
                metric: str | None = None, log: bool | None = None, clip: float | None = None) -> Figure:
    """The figure of a saved surface result (``landscape.io.load_result`` output).

    ``kind``: ``line`` for 1-D results; ``contour`` / ``filled`` / ``heatmap`` / ``surface``
    for 2-D ones (default ``filled``; several seeds become small multiples).  ``metric``
    defaults to the training loss.

    Args:
      arrays: the result's arrays.
      meta: its metadata.
      kind: the figure kind (see above).
      metric: which metric.
      log: log levels / axis (default: the command's choice).
      clip: the top of the colour range.

    Returns:
      the figure.

    Raises:
      ValueError: an unknown metric or kind, or a result it does not draw.

    Examples:
      >>> s = ls.surface.plane(lambda p: jnp.sum(p["w"] ** 2), {"w": jnp.ones(2)},
      ...                      [{"w": jnp.array([1.0, 0.0])}, {"w": jnp.array([0.0, 1.0])}], num=9)
      >>> fig = ls.figures.from_result(s.to_arrays(), {**s.meta, "kind": s.kind}, kind="heatmap")
      >>> fig.axes[0].collections[0].get_array().shape            # the 9 x 9 grid, one cell per point
      (9, 9)
    """
    kinds = {"race": (race_of_result, "a race result is drawn as its paths and costs only"),
             "descent": (descent_of_result, "an in-plane descent is drawn as its paths only"),
             "basins": (basin_map_of_result, "a basins result is drawn as its map only"),
             "sharpness": (sharpness_figure, "a sharpness result is drawn as its measures across members only"),
             "instability": (instability_figure, "an instability result is drawn against the spawn step only")}
    if meta.get("kind") in kinds:
        draw, only = kinds[meta["kind"]]
        if kind is not None or metric is not None or clip is not None or log is not None:
            raise ValueError(f"{only} (no --kind, --metric, --clip or --log)")
        return draw(arrays, meta)
    values = {k[6:]: v for k, v in arrays.items() if k.startswith("value/")}
    if not values:
        if not meta.get("kind") or meta.get("kind") in ("plane", "line", "interpolation", "three_point", "trajectory"):
            raise ValueError("the result holds no values")
        raise ValueError(f"`plot` draws surfaces, lines, interpolations, planes, trajectories, basin maps, races, sharpness, instability and "
                         f"in-plane descents; a {meta['kind']} result has its own figures (written by its command: "
                         "rerun it without --no-plot)")
    axes = [arrays[f"axis_{i}"] for i in range(sum(1 for k in arrays if k.startswith("axis_")))]
    rkind = meta.get("kind", "plane")
    title = meta.get("title")
    if len(axes) == 1:
        if kind not in (None, "line"):
            raise ValueError(f"a 1-D result is drawn as a line, not {kind!r}")
        if metric is not None:
            if metric not in values:
                raise ValueError(f"unknown metric {metric!r}; the result has {', '.join(values)}")
            values = {metric: values[metric]}
        marks = {"A": 0.0, "B": 1.0} if rkind == "interpolation" else None
        xlabel = "t  (θ = (1−t)·θ_A + t·θ_B)" if rkind == "interpolation" else meta.get("xlabel", "α")
        return with_warnings(curve(axes[0], values, xlabel=xlabel, log_scale=bool(log), title=title, marks=marks), meta)
    if kind == "line":
        raise ValueError("a 2-D result is drawn as contour, filled, heatmap or surface")
    kind = kind or "filled"
    if metric is None:
        metric = "train_loss" if "train_loss" in values else next(
            (k for k in sorted(values) if k.endswith("loss")), next(iter(values)))
    if metric not in values:
        raise ValueError(f"unknown metric {metric!r}; the result has {', '.join(values)}")
    z = values[metric]
    log_levels = (not metric.endswith("accuracy")) if log is None else log
    if clip is None and metric.endswith("accuracy"):
        clip = np.inf  # higher is better: show the whole range
    xlabel, ylabel = meta.get("axis_labels", [r"$\alpha$", r"$\beta$"])
    if z.ndim == 3:
        if kind == "surface":
            raise ValueError(f"a result of {z.shape[0]} members is drawn as small multiples (filled, contour or "
                             "heatmap); for a rotatable 3-D view of one member use `landscape export RESULT "
                             "--format html --member I`")
        titles = meta.get("labels") or [f"member {i}" for i in range(z.shape[0])]
        return with_warnings(small_multiples(axes[0], axes[1], z, titles=titles, kind=kind, log_levels=log_levels,
                                             clip=clip, labels=Labels(x=xlabel, y=ylabel, z=metric_label(metric),
                                                                      title=title)), meta)
    points = arrays.get("extra/points")
    paths = [arrays[k] for k in sorted(arrays) if k.startswith("extra/path")]
    path_names = meta.get("path_labels")
    return with_warnings(landscape_2d(axes[0], axes[1], z, kind=kind, log_levels=log_levels, clip=clip,
                                      labels=Labels(x=xlabel, y=ylabel, z=metric_label(metric), title=title),
                                      points=named_points(points, meta.get("point_labels")),
                                      paths=dict(zip(path_names, paths)) if path_names and len(path_names) == len(paths)
                                      else (paths or None)), meta)


def result_figure(arrays: dict, meta: dict, path: str | Path, *, kind: str | None = None, metric: str | None = None,
                  log: bool | None = None, clip: float | None = None) -> Path:
    """Draw a saved slice result (:func:`landscape.plot.from_result`) to ``path``; with
    ``kind="curvature"`` its curvature map (:func:`curvature_map_figure`).

    Args:
      arrays: the result's arrays (:func:`landscape.io.load_result`).
      meta: its metadata.
      path: the figure file.
      kind: the figure kind (:func:`landscape.plot.from_result`), or ``"curvature"``.
      metric: which metric.
      log: log levels / axis.
      clip: the top of the colour range.

    Returns:
      the path.

    Raises:
      ValueError: ``kind="curvature"`` for a result without a curvature map (or another
        option the result cannot be drawn with).

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10))
      >>> s = ls.analyses.surface(run, ls.analyses.SurfaceSpec(grid=5))
      >>> ls.figures.result_figure(s.arrays, s.meta, f"{run}/plane.pdf", kind="contour").name
      'plane.pdf'
    """

    if kind == "curvature":
        if not any(k.startswith("curvature/") for k in arrays):
            raise ValueError("the result holds no curvature map: compute it with `landscape surface --curvature`")
        return curvature_map_figure(arrays, meta, path)
    return save_figure(from_result(arrays, meta, kind=kind, metric=metric, log=log, clip=clip), path)
