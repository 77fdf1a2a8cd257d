"""Figures, tables and the markdown report of a run, drawn from saved results only.

Nothing here computes: every function reads arrays a run or a result already holds and hands
them to :mod:`landscape.plot`.  Members are named as (seed, learning rate) throughout
(:mod:`landscape.members`); a Hessian result is quoted only when it is current for the run's
parameters, and ``RUN/report.md`` is rebuilt whenever the results it quotes change.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = [
    "training_figures",
    "result_figure",
    "hessian_lines",
    "curvature_map_lines",
    "curvature_map_figure",
    "hessian_figures",
    "compare_lines",
    "write_report",
    "refresh_report",
    "density_curves",
    "curvature_figures",
    "basin_lines",
    "race_lines",
    "race_figures",
    "descent_lines",
    "descent_figures",
]


def training_figures(ens, run: str | Path, fmt: str = "png") -> list[Path]:
    """Training curves (coloured by learning rate in a sweep; diverged red, did-not-learn
    dashed) and the histogram of final costs, under ``RUN/figures/``.

    Args:
      ens: the trained or loaded ensemble.
      run: the run directory.
      fmt: ``png``, ``pdf`` or ``svg``.

    Returns:
      the figures written.

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10))
      >>> [p.name for p in ls.report.training_figures(ens, run)]
      ['training_curves.png', 'final_cost_histogram.png']
    """
    from . import plot
    from .train import learned

    fig_dir = Path(run) / "figures"
    h, loss = ens.history, ens.config["loss"]
    stalled = ~learned(ens) & ~ens.diverged
    return [
        plot.save_figure(plot.training_curves(h.step, h.train_loss, h.test_accuracy, diverged=ens.diverged,
                                              not_learned=stalled, learning_rates=ens.learning_rates,
                                              loss_name=loss), fig_dir / f"training_curves.{fmt}"),
        plot.save_figure(plot.final_cost_histogram(h.train_loss[:, -1], diverged=ens.diverged, loss_name=loss),
                         fig_dir / f"final_cost_histogram.{fmt}"),
    ]


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
      >>> ls.report.result_figure(s.arrays, s.meta, f"{run}/plane.pdf", kind="contour").name
      'plane.pdf'
    """
    from . import plot

    if kind == "curvature":
        if not any(k.startswith("curvature/") for k in arrays):
            raise ValueError("the result holds no curvature map: compute it with `landscape surface --curvature`")
        return curvature_map_figure(arrays, meta, path)
    return plot.save_figure(plot.from_result(arrays, meta, kind=kind, metric=metric, log=log, clip=clip), path)


def basin_lines(arrays: dict, meta: dict) -> list[str]:
    """Lines for a basins result: the minima's own barriers, the tolerance, and the share of starts
    per basin (then shared, elsewhere, diverged) with their final cost.

    Args:
      arrays: the result's arrays (:func:`landscape.io.load_result`).
      meta: its metadata.

    Returns:
      the lines.

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10))
      >>> b = ls.analyses.basins(run, ls.analyses.BasinsSpec(seeds="0,1,2", grid=3, steps=10))
      >>> len(ls.report.basin_lines(b.arrays, b.meta)) > 3        # barriers, tolerance, a line per basin
      True
    """
    labels, final = np.asarray(arrays["labels"]).ravel(), np.asarray(arrays["final_loss"]).ravel()
    names = list(meta.get("point_labels") or [])
    r = np.asarray(arrays["points"]).shape[0]
    out = [f"{labels.size} starts ({np.asarray(arrays['axis_0']).size}x{np.asarray(arrays['axis_1']).size}), "
           f"{meta.get('steps')} steps each"]
    ref = np.asarray(arrays.get("reference_barriers", np.zeros((1, 1))))
    if r > 1:
        off = ref[~np.eye(r, dtype=bool)]
        out.append(f"barriers between the minima{' (aligned)' if meta.get('aligned') else ''}: "
                   f"{off.min():.4g} to {off.max():.4g}")
    out.append(f"in a basin: barrier to that minimum below {meta.get('tol'):.4g}"
               + ("" if meta.get("tol_given", True) or r == 1 else " (half the smallest barrier between the minima)")
               + (", after weight matching" if meta.get("aligned") else ""))
    rows = [(names[i] if i < len(names) else f"minimum {i}", i) for i in range(r)]
    rows += [("shared", -3), ("elsewhere", -1), ("diverged", -2)]
    for name, lab in rows:
        mask = labels == lab
        if lab in (-2, -3) and not mask.any():
            continue
        cost = f", final cost median {np.median(final[mask]):.4g}" if mask.any() and lab != -2 else ""
        out.append(f"  {name:<14} {mask.sum():>6} starts ({100 * mask.mean():5.1f} %){cost}")
    return out


def race_lines(arrays: dict, meta: dict) -> list[str]:
    """Lines for a race result: per entrant, the final cost over the starts and how far the paths left the plane.

    Args:
      arrays: the result's arrays (:func:`landscape.io.load_result`).
      meta: its metadata.

    Returns:
      the lines.

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10))
      >>> r = ls.analyses.race(run, ls.analyses.RaceSpec(optimizers="sgd,adam", starts=2, steps=10, grid=5))
      >>> [line.split()[0] for line in ls.report.race_lines(r.arrays, r.meta)][-2:]
      ['sgd@0.5', 'adam@0.01']
    """
    loss, off = np.asarray(arrays["loss"]), np.asarray(arrays["off_plane"])
    dead = np.asarray(arrays["diverged"])
    out = [f"{loss.shape[0]} starts x {loss.shape[1]} entrants, {int(arrays['steps'][-1])} steps"]
    out.append(f"  {'entrant':<28} {'final cost: median':>18} {'min':>9} {'max':>9}  {'off the plane (max)':>19}")
    for j, name in enumerate(meta["entrants"]):
        f = loss[:, j, -1]
        note = f"  {int(dead[:, j].sum())} diverged" if dead[:, j].any() else ""
        out.append(f"  {name:<28} {np.nanmedian(f):>18.4g} {np.nanmin(f):>9.4g} {np.nanmax(f):>9.4g}  "
                   f"{np.nanmax(off[:, j]):>19.3g}{note}")
    return out


def race_figures(arrays: dict, meta: dict, stem: str | Path, fmt: str = "png", *, animation: bool = True) -> list[Path]:
    """The race's still (``STEM.FMT``) and, with ``animation``, its animation (``STEM.gif``).

    Args:
      arrays: the result's arrays (:func:`landscape.io.load_result`).
      meta: its metadata.
      stem: the figures' path without suffix.
      fmt: the still's format.
      animation: also the GIF.

    Returns:
      the files written.

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10))
      >>> r = ls.analyses.race(run, ls.analyses.RaceSpec(optimizers="sgd,adam", starts=2, steps=10, grid=5))
      >>> [p.suffix for p in ls.report.race_figures(r.arrays, r.meta, f"{run}/race")]
      ['.png', '.gif']
    """
    from . import plot

    stem = Path(stem)
    paths = [plot.save_figure(plot.from_result(arrays, meta), stem.with_name(f"{stem.name}.{fmt}"))]
    if animation:
        labels = meta.get("axis_labels", ["u", "v"])
        anim = plot.race_animation(arrays["axis_0"], arrays["axis_1"], arrays["cost"], arrays["paths"],
                                   arrays["path_steps"], meta["entrants"], points=arrays.get("points"),
                                   point_labels=meta.get("point_labels"), xlabel=labels[0], ylabel=labels[1],
                                   title=meta.get("title"))
        paths.append(plot.save_animation(anim, stem.with_name(f"{stem.name}.gif")))
    return paths


def descent_lines(arrays: dict, meta: dict) -> list[str]:
    """Lines for an in-plane descent: how many paths ended at each minimum, and their final cost.

    Args:
      arrays: the result's arrays (:func:`landscape.io.load_result`).
      meta: its metadata.

    Returns:
      the lines.

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10))
      >>> d = ls.analyses.animate(run, ls.analyses.AnimateSpec(starts=3, steps=20, grid=5))
      >>> len(ls.report.descent_lines(d.arrays, d.meta)) >= 1
      True
    """
    basin, final = np.asarray(arrays["basin"]), np.asarray(arrays["final_loss"])
    names = list(meta.get("point_labels") or [])
    out = [f"{basin.size} starts, {meta.get('steps')} steps of in-plane gradient descent at lr {meta.get('lr'):g}; "
           f"final cost {np.nanmin(final):.4g} to {np.nanmax(final):.4g}"]
    for k in range(np.asarray(arrays["points"]).shape[0]):
        n = int(np.sum(basin == k))
        out.append(f"  ended at {names[k] if k < len(names) else f'minimum {k}'}: {n}")
    if np.any(basin < 0):
        out.append(f"  at none of the minima yet (further than a quarter of their spacing): {int(np.sum(basin < 0))}")
    return out


def descent_figures(arrays: dict, meta: dict, stem: str | Path, fmt: str = "png", *, movie: str = "gif",
                    pixels: int = 1600, frames: int = 90, animation: bool = True) -> list[Path]:
    """The in-plane descent's still (``STEM.FMT``) and animation (``STEM.gif`` or ``.mp4``, ``pixels``
    wide, 16:9, paths coloured by the minimum they end at, ``frames`` log-spaced steps so the
    fast start is not a blur).

    Args:
      arrays: the result's arrays (:func:`landscape.io.load_result`).
      meta: its metadata.
      stem: the figures' path without suffix.
      fmt: the still's format.
      movie: ``"gif"`` or ``"mp4"``.
      pixels: the animation's width in pixels.
      frames: how many frames.
      animation: also the animation.

    Returns:
      the files written.

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10))
      >>> d = ls.analyses.animate(run, ls.analyses.AnimateSpec(starts=3, steps=20, grid=5))
      >>> [p.suffix for p in ls.report.descent_figures(d.arrays, d.meta, f"{run}/descent", pixels=480, frames=4)]
      ['.png', '.gif']
    """
    from . import plot

    stem = Path(stem)
    out = [plot.save_figure(plot.from_result(arrays, meta), stem.with_name(f"{stem.name}.{fmt}"))]
    if animation:
        paths = np.asarray(arrays["paths"])
        steps = paths.shape[1] - 1
        pick = np.unique(np.round(np.geomspace(1, steps + 1, frames)).astype(int) - 1)
        names = list(meta.get("point_labels") or [])
        labels = meta.get("axis_labels", ["u", "v"])
        width = 8.0
        colours, legend = plot.paths_by_basin(arrays["basin"], names)
        anim = plot.descent_animation(
            arrays["axis_0"], arrays["axis_1"], arrays["cost"], paths[:, pick], steps=pick,
            points=arrays.get("points"), point_labels=names, tail=0, title=meta.get("title"),
            colors=colours, legend=legend,
            xlabel=labels[0], ylabel=labels[1], size=(width, width * 9 / 16), linewidth=0.6, dot_size=10)
        dpi = pixels / (width * plot.scale())  # the frame is `pixels` wide whatever the style
        out.append(plot.save_animation(anim, stem.with_name(f"{stem.name}.{movie}"), dpi=dpi))
    return out


#: The ratio ``|λ_min| / λ_max`` from which curvature maps call negative curvature large.
RATIO_MARK = 0.1


def _curvature_parts(arrays: dict) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
    axes = [arrays[f"curvature/axis_{i}"] for i in range(sum(1 for k in arrays if k.startswith("curvature/axis_")))]
    maps = {k[len("curvature/"):]: v for k, v in arrays.items()
            if k.startswith("curvature/") and not k.startswith("curvature/axis_")}
    return axes, maps


def curvature_map_lines(arrays: dict, meta: dict) -> list[str]:
    """Headline numbers of a slice's curvature map (``landscape surface --curvature``): per
    member, the share of points where ``|λ_min| / λ_max`` exceeds :data:`RATIO_MARK`, the largest
    ratio, and λ_max / λ_min at the centre.  Empty when the result has no map.

    Args:
      arrays: the result's arrays (:func:`landscape.io.load_result`).
      meta: its metadata.

    Returns:
      the lines.

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10))
      >>> s = ls.analyses.surface(run, ls.analyses.SurfaceSpec(grid=5, curvature=True, curvature_grid=3))
      >>> len(ls.report.curvature_map_lines(s.arrays, s.meta))      # one line per member
      1
    """
    axes, maps = _curvature_parts(arrays)
    if not axes:
        return []
    dims = len(axes)
    ratio = maps["ratio"].reshape((-1,) + maps["ratio"].shape[-dims:])
    lmax = maps["lambda_max"].reshape(ratio.shape)
    lmin = maps["lambda_min"].reshape(ratio.shape)
    labels = meta.get("labels") or [f"member {i}" for i in range(ratio.shape[0])]
    centre = tuple(int(np.argmin(np.abs(a))) for a in axes)
    n = " × ".join(str(a.size) for a in axes)
    at = "the centre" if all(a[j] == 0 for a, j in zip(axes, centre)) else \
        "(" + ", ".join(f"{a[j]:.3g}" for a, j in zip(axes, centre)) + "), nearest the centre"
    lines = []
    for i in range(ratio.shape[0]):
        r = ratio[i]
        lines.append(f"curvature map ({n}) {labels[i]}: |λ_min|/λ_max > {RATIO_MARK:g} at "
                     f"{100 * np.mean(r > RATIO_MARK):.0f} % of the points (largest {np.nanmax(r):.3g}); "
                     f"at {at} λ_max {lmax[i][centre]:.4g}, λ_min {lmin[i][centre]:.4g}")
    return lines


def curvature_map_figure(arrays: dict, meta: dict, path: str | Path) -> Path:
    """Draw a slice result's curvature map (:func:`landscape.plot.curvature_map`) with its loss.

    Args:
      arrays: the result's arrays (:func:`landscape.io.load_result`).
      meta: its metadata.
      path: the figure file.

    Returns:
      the path.

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10))
      >>> s = ls.analyses.surface(run, ls.analyses.SurfaceSpec(grid=5, curvature=True, curvature_grid=3))
      >>> ls.report.curvature_map_figure(s.arrays, s.meta, f"{run}/curvature.png").name
      'curvature.png'
    """
    from . import plot

    axes, maps = _curvature_parts(arrays)
    loss_axes = [arrays[f"axis_{i}"] for i in range(len(axes))]
    loss = arrays.get("value/train_loss")
    labels = meta.get("axis_labels", [r"$\alpha$ (direction 1)", r"$\beta$ (direction 2)"])
    fig = plot.curvature_map(axes, maps, loss_axes=loss_axes, loss=loss, threshold=RATIO_MARK,
                             titles=meta.get("labels"), xlabel=labels[0], ylabel=labels[1],
                             title=" — ".join(t for t in (meta.get("title"), "Hessian curvature over the slice") if t),
                             warnings=meta.get("warnings"))
    return plot.save_figure(fig, path)


def _member_keys(arrays) -> list[tuple[int, float]]:
    lrs = arrays.get("learning_rates")
    seeds = arrays["seeds"].astype(int)
    if lrs is None:
        lrs = np.full(seeds.shape, np.nan)
    return [(int(s), round(float(v), 12)) for s, v in zip(seeds, lrs)]


def _healthy(arrays) -> np.ndarray:
    ok = ~arrays["diverged"].astype(bool)
    if "learned" in arrays:
        ok &= arrays["learned"].astype(bool)
    return ok


def hessian_lines(arrays: dict) -> list[str]:
    """The Hessian table, one line per member (with its learning rate in a sweep and its
    status), then the medians over the members that learned, per learning rate.

    Args:
      arrays: a ``hessian`` result's arrays.

    Returns:
      the lines.

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10))
      >>> h = ls.analyses.hessian(run, ls.analyses.HessianSpec(top=2, probes=5, density=True))
      >>> ls.report.hessian_lines(h.arrays)[0].split()            # the table's header
      ['seed', 'top', 'eigenvalue', 'smallest', 'trace']
    """
    keys = _member_keys(arrays)
    lrs = np.array([k[1] for k in keys])
    rates = np.unique(lrs[np.isfinite(lrs)])
    swept = rates.size > 1
    ok = _healthy(arrays)
    lines = [f"{'seed':>5} " + (f"{'lr':>8} " if swept else "") + f"{'top eigenvalue':>15} {'smallest':>10} "
             f"{'trace':>10}"]
    for i, (seed, lr) in enumerate(keys):
        flag = ""
        if arrays["diverged"][i]:
            flag = "  (diverged)"
        elif not ok[i]:
            flag = "  (did not learn)"
        lines.append(f"{seed:>5} " + (f"{lr:>8.4g} " if swept else "") + f"{arrays['top'][i, 0]:>15.5g} "
                     f"{arrays['smallest'][i]:>10.4g} {arrays['trace'][i]:>10.4g}{flag}")
    groups = [(f" at lr {r:g}", np.isclose(lrs, r)) for r in rates] if swept else [("", np.ones(len(keys), bool))]
    layers = _layers(arrays)
    for title, sel in groups:
        good = sel & ok
        if not good.any():
            lines.append(f"no member learned{title}: no median")
            continue
        lines.append(f"median over {int(good.sum())} members that learned{title}: top eigenvalue "
                     f"{np.median(arrays['top'][good, 0]):.5g}, trace {np.median(arrays['trace'][good]):.5g}")
        if "batch_top" in arrays:
            lines.append("  " + _minibatch_line(arrays, good))
        for layer in layers:  # the Hessian block of each layer, the others held fixed
            a = _layer(arrays, layer)
            lines.append(f"  layer {layer}: top eigenvalue {np.median(a['top'][good, 0]):.5g}, smallest "
                         f"{np.median(a['smallest'][good]):.4g}, trace {np.median(a['trace'][good]):.5g}")
            if "batch_top" in a:
                lines.append("    " + _minibatch_line(a, good))
    return lines


def _member_ticks(arrays: dict, ok: np.ndarray) -> list[str]:
    """``"seed"`` per selected member, ``"seed\nrate"`` in a learning-rate sweep."""
    keys = [k for k, good in zip(_member_keys(arrays), ok) if good]
    swept = len({lr for _, lr in _member_keys(arrays) if np.isfinite(lr)}) > 1
    return [f"{seed}" + (f"\n{lr:g}" if swept else "") for seed, lr in keys]


def _minibatch_line(arrays: dict, good: np.ndarray) -> str:
    """Medians over the ``good`` members of the per-batch estimates' mean and spread."""
    top = arrays["batch_top"][good, :, 0].astype(float)
    tr = arrays["batch_trace"][good].astype(float)
    k = top.shape[1]
    sd = (lambda a: np.std(a, axis=1, ddof=1)) if k > 1 else (lambda a: np.zeros(a.shape[0]))
    ratio = np.max(top, axis=1) / np.min(top, axis=1)
    return (f"{k} mini-batches of {int(arrays['minibatch_size'])}: top eigenvalue {np.median(top.mean(axis=1)):.5g} "
            f"± {np.median(sd(top)):.3g} per batch (full data {np.median(arrays['top'][good, 0]):.5g}), largest / "
            f"smallest batch {np.median(ratio):.3g}×; trace {np.median(tr.mean(axis=1)):.5g} ± "
            f"{np.median(sd(tr)):.3g} (full data {np.median(arrays['trace'][good]):.5g})")


def _layers(arrays: dict) -> list[str]:
    out: list[str] = []
    for k in arrays:
        if k.startswith("layer/") and k.endswith("/top"):
            out.append(k[len("layer/"):-len("/top")])
    return out


def _layer(arrays: dict, layer: str) -> dict:
    """A per-layer Hessian result as the arrays of a whole-network one (with the members' fields)."""
    prefix = f"layer/{layer}/"
    out = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
    return {**{k: v for k, v in arrays.items() if not k.startswith("layer/") and k not in out}, **out}


def density_curves(nodes: np.ndarray, weights: np.ndarray, num: int = 600) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed spectral densities on one grid from SLQ nodes and weights ``(M, probes, m)``:
    ``(grid (num,), density (M, num))`` with a Gaussian of 1 % of the spectrum's range
    (Ghorbani et al. 2019).

    Args:
      nodes: ``(M, probes, m)`` Ritz values.
      weights: ``(M, probes, m)``.
      num: grid points.

    Examples:
      >>> nodes = np.array([[[1.0, 2.0, 3.0]]]); weights = np.full((1, 1, 3), 1 / 3)    # (M, probes, m)
      >>> grid, density = ls.report.density_curves(nodes, weights, num=301)
      >>> density.shape, round(float(density.sum() * (grid[1] - grid[0])), 2)
      ((1, 301), 1.0)
    """
    from . import hessian

    lo, hi = float(np.min(nodes)), float(np.max(nodes))
    pad = 0.05 * (hi - lo + 1e-12)
    grid = np.linspace(lo - pad, hi + pad, num)
    sigma = 0.01 * (hi - lo + 1e-12)
    rho = np.stack([hessian.density_on_grid(hessian.Density(n, w), grid, sigma=sigma)
                    for n, w in zip(nodes, weights)])
    return grid, rho


#: How figures name each curvature matrix.
CURVATURE_NAMES = {"hessian": "Hessian", "ggn": "Gauss–Newton", "fisher": "empirical Fisher"}


def hessian_figures(arrays: dict, run: str | Path, fmt: str = "png", groups=None, prefix: str = "hessian",
                    per_layer: bool = True, matrix: str = "Hessian") -> list[Path]:
    """Sharpness against test accuracy (coloured by ``groups`` — basins — when given, else by
    learning rate in a sweep) and, when computed, the spectral densities, as
    ``RUN/figures/<prefix>_sharpness.<fmt>`` and ``<prefix>_density``, and the same per layer
    (``<prefix>_<layer>_sharpness``) for a ``--per-layer`` result, and with mini-batch
    estimates ``<prefix>_minibatch`` (:func:`landscape.plot.minibatch_spread`); members that
    diverged or did not learn are left out.  ``matrix`` names the curvature matrix in the labels.

    Args:
      arrays: a ``hessian`` (or ``ggn`` / ``fisher``) result's arrays.
      run: the run directory.
      fmt: the figures' format.
      groups: ``(M,)`` basin labels to colour by.
      prefix: the figures' name prefix.
      per_layer: also the per-layer figures of a ``--per-layer`` result.
      matrix: the curvature matrix's name in the labels.

    Returns:
      the figures written.

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10))
      >>> h = ls.analyses.hessian(run, ls.analyses.HessianSpec(top=2, probes=5, density=True))
      >>> [p.name for p in ls.report.hessian_figures(h.arrays, run)]
      ['hessian_sharpness.png', 'hessian_density.png']
    """
    from . import plot

    ok = _healthy(arrays)
    fd = Path(run) / "figures"
    names, given = None, groups
    if groups is None:
        lrs = np.array([k[1] for k in _member_keys(arrays)])
        rates = np.unique(lrs[np.isfinite(lrs)])
        if rates.size > 1:
            groups = np.array([int(np.argmin(np.abs(rates - v))) for v in lrs])[ok]
            names = [f"lr {r:g}" for r in rates]
    elif len(groups) == len(ok):
        groups = np.asarray(groups)[ok]
    paths = [plot.save_figure(plot.scatter(
        arrays["top"][ok, 0], arrays["test_accuracy"][ok], xlabel=f"top {matrix} eigenvalue (sharpness)",
        ylabel="test accuracy", log_x=True, groups=groups, group_names=names,
        title=f"sharpness vs test accuracy, {int(ok.sum())} members"), fd / f"{prefix}_sharpness.{fmt}")]
    if "density_nodes" in arrays and ok.any():
        grid, rho = density_curves(arrays["density_nodes"][ok], arrays["density_weights"][ok])
        paths.append(plot.save_figure(plot.spectral_density(grid, rho, title=f"{matrix} spectral density (SLQ)"),
                                      fd / f"{prefix}_density.{fmt}"))
    if "batch_top" in arrays and ok.any():
        k = arrays["batch_top"].shape[1]
        paths.append(plot.save_figure(plot.minibatch_spread(
            {f"top {matrix} eigenvalue": arrays["top"][ok, 0], "trace": arrays["trace"][ok]},
            {f"top {matrix} eigenvalue": arrays["batch_top"][ok, :, 0], "trace": arrays["batch_trace"][ok]},
            batch_size=int(arrays["minibatch_size"]), full_stderr={"trace": arrays["trace_stderr"][ok]},
            labels=_member_ticks(arrays, ok),
            title=f"{k} mini-batches of {int(arrays['minibatch_size'])} vs the full training set"),
            fd / f"{prefix}_minibatch.{fmt}"))
    for layer in _layers(arrays) if per_layer else []:  # one set per layer, named in its labels
        paths += hessian_figures(_layer(arrays, layer), run, fmt, groups=given, prefix=f"{prefix}_{layer}",
                                 per_layer=False, matrix=f"{matrix} (layer {layer})")
    return paths


def _summary_line(name: str, b, labels) -> str:
    off = b[np.triu_indices(b.shape[0], 1)]
    sizes = np.bincount(labels)
    if off.size == 0:
        return f"{name}: one member, no pairs"
    return (f"{name}: {sizes.size} basin(s) (sizes {', '.join(map(str, sizes[:12]))}"
            f"{', ...' if sizes.size > 12 else ''}); barrier median {np.median(off):.4g}, "
            f"min {np.min(off):.4g}, max {np.max(off):.4g}")


def compare_lines(arrays: dict, meta: dict) -> list[str]:
    """The headline lines of a comparison: basins and barriers before (and after) alignment,
    prediction disagreement, the curve against the straight line, and what was left out.

    Args:
      arrays: the result's arrays (:func:`landscape.io.load_result`).
      meta: its metadata.

    Returns:
      the lines.

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10))
      >>> c = ls.analyses.compare(run, ls.analyses.CompareSpec(align=True, grid=9))
      >>> [line.split(":")[0] for line in ls.report.compare_lines(c.arrays, c.meta)][:2]
      ['before alignment', 'after alignment']
    """
    lines = [_summary_line("before alignment", arrays["barrier"], arrays["basin"])]
    if "aligned_barrier" in arrays:
        lines.append(_summary_line("after alignment", arrays["aligned_barrier"], arrays["aligned_basin"]))
    if "disagreement" in arrays and len(arrays["seeds"]) > 1:
        off = arrays["disagreement"][np.triu_indices(len(arrays["seeds"]), 1)]
        lines.append(f"prediction disagreement on test data: median {np.median(off):.4f}")
    if "curve_loss" in arrays:
        a, b = meta.get("curve_labels") or ("A", "B")
        lines.append(f"Bezier curve {a} to {b}: max loss along the curve {arrays['curve_loss'].max():.4g} "
                     f"vs {arrays['line_loss'].max():.4g} along the straight line")
    return lines + [str(w) for w in meta.get("warnings") or []]


def write_report(run: str | Path, arrays: dict, meta: dict, *, name: str = "compare", fmt: str = "png",
                 figures: bool = True) -> tuple[Path, list[Path]]:
    """Write ``RUN/report.md`` (and its figures) for the saved comparison ``name``, quoting the
    current Hessian result's eigenvalue and trace of each member, matched by (seed, learning
    rate).  The report names its comparison, so :func:`refresh_report` can rebuild it.

    Args:
      run: the run directory.
      arrays: the result's arrays (:func:`landscape.io.load_result`).
      meta: its metadata.
      name: the comparison's result name.
      fmt: the figures' format.
      figures: draw the figures too.

    Returns:
      ``(report path, figure paths)``.

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10))
      >>> c = ls.analyses.compare(run, ls.analyses.CompareSpec(align=True, grid=9))
      >>> report, figures = ls.report.write_report(run, c.arrays, c.meta, name=c.name)
      >>> report.name, "| member | final train loss" in report.read_text()
      ('report.md', True)
    """
    from . import files, io, plot, results

    run = io.run_path(run)
    loss = io.read_meta(run).get("train", {}).get("loss", "loss")
    settings = meta.get("settings", {})
    labels = meta.get("labels") or [f"seed {int(s)}" for s in arrays["seeds"]]
    keys = _member_keys(arrays)
    saved = results.load_if_current(run, "hessian")  # quoted only when computed from these parameters
    hess = None if saved is None else saved[0]
    hmap = {}
    if hess is not None:
        hmap = {k: (hess["top"][i, 0], hess["trace"][i]) for i, k in enumerate(_member_keys(hess))}
    lines = [f"<!-- landscape report of result {name} -->", f"# Comparison of {len(keys)} minima", "",
             f"Run `{run}`; {loss} loss; barrier tolerance for basins {settings.get('tol')}; "
             f"{settings.get('grid')} interpolation points in [0, 1].", ""]
    lines += [f"- {line}" for line in compare_lines(arrays, meta)]
    if hess is None:
        lines.append("- no current Hessian result: run `landscape hessian` to add eigenvalues and traces")
    aligned = "aligned_basin" in arrays
    lines += ["", "| member | final train loss | test accuracy | top eigenvalue | trace | basin |"
              + (" basin (aligned) |" if aligned else ""),
              "|---|---:|---:|---:|---:|---:|" + ("---:|" if aligned else "")]
    for i, key in enumerate(keys):
        top, tr = hmap.get(key, (float("nan"), float("nan")))
        row = (f"| {labels[i]} | {arrays['final_train_loss'][i]:.5g} | {arrays['final_test_accuracy'][i]:.4f} | "
               f"{top:.4g} | {tr:.4g} | {arrays['basin'][i]} |")
        lines.append(row + (f" {arrays['aligned_basin'][i]} |" if aligned else ""))
    figs: list[Path] = []
    if figures:
        fd = run / "figures"
        short = [lab.replace("seed ", "") for lab in labels]
        figs.append(plot.save_figure(plot.final_cost_histogram(arrays["final_train_loss"], loss_name=loss),
                                     fd / f"compare_final_costs.{fmt}"))
        # each matrix ordered and divided by its own basins
        figs.append(plot.save_figure(plot.matrix(arrays["barrier"], groups=arrays["basin"], labels=short,
                                                 title="loss barrier, ordered by basin", cbar_label="barrier"),
                                     fd / f"compare_barriers.{fmt}"))
        if aligned:
            figs.append(plot.save_figure(plot.matrix(arrays["aligned_barrier"], groups=arrays["aligned_basin"],
                                                     labels=short,
                                                     title="barrier after alignment, ordered by basin",
                                                     cbar_label="barrier"), fd / f"compare_barriers_aligned.{fmt}"))
            iu = np.triu_indices(len(keys), 1)
            if iu[0].size:
                figs.append(plot.save_figure(plot.scatter(
                    arrays["barrier"][iu], arrays["aligned_barrier"][iu], xlabel="barrier before alignment",
                    ylabel="barrier after alignment", diagonal=True,
                    title=f"{len(iu[0])} pairs: median {np.median(arrays['barrier'][iu]):.3g} → "
                          f"{np.median(arrays['aligned_barrier'][iu]):.3g}"), fd / f"compare_alignment.{fmt}"))
        if "curve_loss" in arrays:
            a, b = meta.get("curve_labels") or ("A", "B")
            figs.append(plot.save_figure(plot.curve(arrays["curve_t"], {"straight line": arrays["line_loss"],
                                                                        "Bézier curve": arrays["curve_loss"]},
                                                    xlabel="t", marks={"A": 0.0, "B": 1.0}, title=f"{a} to {b}"),
                                         fd / f"compare_curve.{fmt}"))
        if hess is not None:
            where = {k: i for i, k in enumerate(_member_keys(hess))}
            pick = np.array([where[k] for k in keys if k in where])
            if pick.size == len(keys):
                n = len(hess["seeds"])
                sub = {k: (v[pick] if hasattr(v, "shape") and v.shape[:1] == (n,) else v) for k, v in hess.items()}
                order_by = arrays["aligned_basin"] if aligned else arrays["basin"]
                figs += hessian_figures(sub, run, fmt, groups=order_by, prefix="compare",  # not hessian's own
                                        per_layer=False)
        lines += ["", "## Figures", ""] + [f"![{p.stem}](figures/{p.name})" for p in figs]
    path = run / "report.md"
    files.atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())
    return path, figs


def refresh_report(run: str | Path, fmt: str = "png") -> Path | None:
    """Rebuild ``RUN/report.md`` from the comparison it was written for, when that result is
    still current (after the results it quotes changed, e.g. a new Hessian); ``None`` when
    there is no report or its comparison is gone or stale.

    Args:
      run: the run directory.
      fmt: the figures' format.

    Returns:
      the report's path, or ``None``.

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10))
      >>> c = ls.analyses.compare(run, ls.analyses.CompareSpec(align=True, grid=9))
      >>> _ = ls.report.write_report(run, c.arrays, c.meta, name=c.name, figures=False)
      >>> ls.report.refresh_report(run).name                      # rebuilt from the comparison it names
      'report.md'
    """
    import re

    from . import io, results

    run = io.run_path(run)
    try:
        first = (run / "report.md").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    m = re.fullmatch(r"<!-- landscape report of result ([A-Za-z0-9_-][A-Za-z0-9._-]*) -->", first.strip())
    saved = None if m is None else results.load_if_current(run, m.group(1))
    if saved is None:
        return None
    return write_report(run, saved[0], saved[1], name=m.group(1), fmt=fmt)[0]


def curvature_figures(run: str | Path, fmt: str = "png") -> list[Path]:
    """The top eigenvalue of the Gauss–Newton matrix and of the empirical Fisher against the
    Hessian's, member by member (matched by seed and learning rate), for whichever of the
    current results ``hessian``, ``ggn`` and ``fisher`` exist; ``RUN/figures/curvature_<name>_vs_hessian``.

    Args:
      run: the run directory.
      fmt: the figures' format.

    Returns:
      the figures written.

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10))
      >>> _ = ls.analyses.hessian(run, ls.analyses.HessianSpec(top=1, probes=5))
      >>> _ = ls.analyses.hessian(run, ls.analyses.HessianSpec(top=1, probes=5, curvature="ggn"))
      >>> [p.name for p in ls.report.curvature_figures(run)]
      ['curvature_ggn_vs_hessian.png']
    """
    from . import io, plot, results

    run = io.run_path(run)
    saved = results.load_if_current(run, "hessian")
    if saved is None:
        return []
    hess = saved[0]
    where = {k: i for i, k in enumerate(_member_keys(hess))}
    paths = []
    for name in ("ggn", "fisher"):
        label = CURVATURE_NAMES[name]
        saved = results.load_if_current(run, name)
        if saved is None:
            continue
        other = saved[0]
        ok = _healthy(other)
        pairs = [(where[k], j) for j, k in enumerate(_member_keys(other)) if k in where and ok[j]]
        if not pairs:
            continue
        i, j = np.asarray(pairs).T
        paths.append(plot.save_figure(plot.scatter(
            hess["top"][i, 0], other["top"][j, 0], xlabel="top Hessian eigenvalue",
            ylabel=f"top {label} eigenvalue", diagonal=True,
            title=f"{label} vs Hessian, {len(pairs)} members"), run / "figures" / f"curvature_{name}_vs_hessian.{fmt}"))
    return paths
