""""""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .minima import scatter
from .styles import COLUMN_WIDTH, PAGE_WIDTH, Labels, font_size, new_figure, save_figure, style_rc, with_warnings
from .surfaces import contour_levels, landscape_2d, similar_ranges

__all__ = ["spectral_density", "curvature_map", "minibatch_spread", "curvature_map_lines", "curvature_map_figure", "hessian_lines", "density_curves", "hessian_figures", "curvature_figures"]


def spectral_density(grid: np.ndarray, density: np.ndarray, *, title: str | None = None,
                     log_y: bool = True, eigenvalues: np.ndarray | None = None, ax=None) -> Figure:
    """A Hessian eigenvalue density (stochastic Lanczos quadrature), log density axis by default.

    ``density`` is ``(n,)`` or ``(S, n)`` (one curve per seed, median in black); ``eigenvalues``
    marks top eigenvalues as ticks on the axis.

    Args:
      grid: ``(n,)`` eigenvalues.
      density: ``(n,)`` or ``(S, n)``.
      title: the axes' title.
      log_y: a log density axis.
      eigenvalues: top eigenvalues to mark.
      ax: draw into these axes (default: a new figure); the legend stays inside them.

    Returns:
      the figure.

    Examples:
      >>> grid = np.linspace(-1, 4, 200)
      >>> density = np.exp(-(grid - 1.0) ** 2 / 0.1)
      >>> ls.figures.spectral_density(grid, density, eigenvalues=np.array([3.0])).axes[0].get_yscale()
      'log'
    """
    import matplotlib

    d = np.atleast_2d(np.asarray(density, float))
    with matplotlib.rc_context(style_rc()):
        if ax is None:
            ax = new_figure(COLUMN_WIDTH, 2.3).subplots()
        fig = ax.figure
        alpha = float(np.clip(4.0 / d.shape[0], 0.05, 1.0))
        floor = 1e-6 * np.nanmax(d)
        for row in d:
            ax.plot(grid, np.maximum(row, floor), color="tab:purple", lw=0.7, alpha=alpha)
        if d.shape[0] > 1:
            ax.plot(grid, np.maximum(np.median(d, axis=0), floor), color="black", lw=1.2, label="median over seeds")
            ax.legend(frameon=False)
        if eigenvalues is not None:
            for ev in np.ravel(eigenvalues):
                ax.axvline(ev, ymax=0.05, color="tab:red", lw=0.6)
        if log_y:
            ax.set_yscale("log")
        ax.set_xlabel("Hessian eigenvalue")
        ax.set_ylabel("density")
        if title:
            ax.set_title(title)
    return fig


def _ratio_panel(ax, a, b, ratio, la, lb, loss, threshold, colorbar: bool):
    """``|λ_min| / λ_max`` as a heat map (0 … 1) with the loss's contours and the threshold's."""
    import matplotlib
    from matplotlib import colors as mcolors

    A, B = np.meshgrid(a, b, indexing="ij")
    r = np.clip(np.asarray(ratio, float), 0.0, 1.0)
    mesh = ax.pcolormesh(A, B, r, cmap=matplotlib.colormaps["viridis"], norm=mcolors.Normalize(0.0, 1.0),
                         shading="nearest", rasterized=True)
    if loss is not None:
        levels, top, use_log = contour_levels(np.asarray(loss, float), log=True, clip=None, num=12)
        LA, LB = np.meshgrid(la, lb, indexing="ij")
        z = np.where(np.isfinite(loss), np.minimum(loss, top), top)
        ax.contour(LA, LB, z, levels=levels, colors="white", linewidths=0.4, alpha=0.8)
    if np.nanmin(r) < threshold < np.nanmax(r):
        ax.contour(A, B, r, levels=[threshold], colors="tab:red", linewidths=1.0)
    if similar_ranges(a, b):
        ax.set_aspect("equal", adjustable="datalim")
    ax.set_box_aspect(1)
    if colorbar:
        cb = ax.figure.colorbar(mesh, cax=ax.inset_axes([1.04, 0.0, 0.045, 1.0]))  # as tall as the axes
        cb.set_label(r"$|\lambda_{min}| / \lambda_{max}$" + (", clipped at 1" if np.nanmax(ratio) > 1 else ""))
        cb.ax.axhline(threshold, color="tab:red", lw=1.0)
    return mesh


def curvature_map(
    axes: list[np.ndarray],
    maps: dict[str, np.ndarray],
    *,
    loss_axes: list[np.ndarray] | None = None,
    loss: np.ndarray | None = None,
    threshold: float = 0.1,
    titles: list[str] | None = None,
    labels: Labels = Labels(),
    warnings: list[str] | None = None,
) -> Figure:
    """Where a slice's apparent convexity hides negative curvature (Li et al. 2018, section 6).

    On a plane (two ``axes``): left, the loss (``loss`` on ``loss_axes``) with the region where
    ``|λ_min| / λ_max > threshold`` outlined in red; right, the ratio itself (0 … 1, loss
    contours in white).  On a line (one axis): λ_max and λ_min along it, the loss on a second
    axis, the points above the threshold shaded.  With a leading member axis ``(S, ...)`` one
    ratio panel per member (``titles``).

    Args:
      axes: the curvature grid's coordinates, ``[(n0,)]`` or ``[(n0,), (n1,)]``.
      maps: ``lambda_max``, ``lambda_min``, ``ratio`` shaped like the grid (``(S, ...)`` stacked).
      loss_axes: the grid axes of the loss surface of the same slice (its own, usually finer, grid).
      loss: that loss surface.
      threshold: the ratio marked as "large" (Li et al. call ``|λ_min/λ_max|`` above a few
        per cent significant non-convexity).
      titles: one title per member's panel (default ``member i``).
      labels: the axes' labels (default: directions 1 and 2) and the figure's title
        (:class:`~landscape.figures.styles.Labels`).
      warnings: lines printed in red under the figure (members that diverged or did not learn).

    Returns:
      the figure.

    Examples:
      >>> a = np.linspace(-1, 1, 5)
      >>> maps = {"lambda_max": np.ones((5, 5)), "lambda_min": -0.05 * np.ones((5, 5)), "ratio": 0.05 * np.ones((5, 5))}
      >>> fig = ls.figures.curvature_map([a, a], maps)
      >>> len(fig.axes) >= 1
      True
    """
    labels = labels.over(x=r"$\alpha$ (direction 1)", y=r"$\beta$ (direction 2)")
    xlabel, ylabel, title = labels.x, labels.y, labels.title
    import matplotlib

    ratio = np.asarray(maps["ratio"], float)
    with matplotlib.rc_context(style_rc()):
        if len(axes) == 1:
            fig = new_figure(COLUMN_WIDTH, 2.8)
            ax = fig.subplots()
            x = np.asarray(axes[0])
            rows = ratio if ratio.ndim == 2 else ratio[None]
            lmax = np.atleast_2d(maps["lambda_max"])
            lmin = np.atleast_2d(maps["lambda_min"])
            losses = None if loss is None else np.atleast_2d(loss)
            twin = ax.twinx() if loss is not None else None
            single = rows.shape[0] == 1
            for i in range(rows.shape[0]):
                color = "tab:blue" if single else f"C{i % 10}"
                name = "" if single else (titles[i] if titles else f"member {i}") + ": "
                ax.plot(x, lmax[i], color=color, lw=1.0, label=name + r"$\lambda_{max}$")
                ax.plot(x, lmin[i], color="tab:orange" if single else color, lw=1.0, ls="-" if single else ":",
                        label=name + r"$\lambda_{min}$")
                big = rows[i] > threshold
                if single:
                    ax.fill_between(x, 0, 1, where=big, color="tab:red", alpha=0.12, lw=0,
                                    transform=ax.get_xaxis_transform(),
                                    label=rf"$|\lambda_{{min}}|/\lambda_{{max}} > {threshold:g}$")
                else:
                    ax.plot(x[big], lmin[i][big], "o", color=color, ms=2.5,
                            label=rf"$|\lambda_{{min}}|/\lambda_{{max}} > {threshold:g}$" if i == 0 else None)
                if twin is not None:
                    twin.plot(loss_axes[0], losses[i], color="black" if single else color, lw=0.8, ls="--")
            ax.axhline(0, color="0.5", lw=0.5)
            ax.set_xlabel(xlabel.split(" (")[0])
            ax.set_ylabel("Hessian eigenvalue")
            if twin is not None:
                twin.set_ylabel("loss (dashed)")
                twin.spines["right"].set_visible(True)
            fig.legend(frameon=False, fontsize=font_size(6), loc="outside lower center", ncol=3 if single else 2)
        elif ratio.ndim == 3:
            n = ratio.shape[0]
            cols = min(n, 4)
            fig = new_figure(PAGE_WIDTH, 1.9 * -(-n // cols) + 0.3)
            grid = np.atleast_1d(fig.subplots(-(-n // cols), cols, squeeze=False)).ravel()
            for i in range(n):
                _ratio_panel(grid[i], axes[0], axes[1], ratio[i], *(loss_axes or [None, None]),
                             None if loss is None else loss[i], threshold, colorbar=(i == n - 1))
                grid[i].set_title(titles[i] if titles else f"member {i}", fontsize=font_size(7))
            grid[0].set_xlabel(xlabel)
            grid[0].set_ylabel(ylabel)
            for ax in grid[n:]:
                ax.set_visible(False)
        else:
            fig = new_figure(PAGE_WIDTH, 2.9)
            left, right = fig.subplots(1, 2)
            if loss is not None:
                landscape_2d(loss_axes[0], loss_axes[1], loss, kind="filled", ax=left, labels=Labels(x=xlabel, y=ylabel),
                             legend=False)
                A, B = np.meshgrid(axes[0], axes[1], indexing="ij")
                if np.nanmin(ratio) < threshold < np.nanmax(ratio):
                    left.contour(A, B, ratio, levels=[threshold], colors="tab:red", linewidths=1.0)
                    with matplotlib.rc_context({"hatch.color": "white", "hatch.linewidth": 0.4}):
                        left.contourf(A, B, ratio, levels=[threshold, np.inf], colors="none", hatches=["///"])
                left.set_title(rf"loss; red: $|\lambda_{{min}}|/\lambda_{{max}} > {threshold:g}$")
            else:
                left.set_visible(False)
            _ratio_panel(right, axes[0], axes[1], ratio, *(loss_axes or [None, None]), loss, threshold, colorbar=True)
            right.set_xlabel(xlabel)
            right.set_title(r"$|\lambda_{min}| / \lambda_{max}$ (white: loss contours)")
        if title:
            fig.suptitle(title, fontsize=font_size(8))
    return with_warnings(fig, {"warnings": warnings})


def minibatch_spread(full: dict[str, np.ndarray], batches: dict[str, np.ndarray], *, batch_size: int,
                     full_stderr: dict[str, np.ndarray] | None = None, names: list[str] | None = None,
                     title: str | None = None) -> Figure:
    """One-batch curvature estimates against the full-data value, member by member.

    ``full`` maps a quantity's axis label (``"top eigenvalue"``, ``"trace"``) to the full-data
    values ``(M,)``; ``batches`` maps the same names to the per-batch values ``(M, K)``.  One
    panel per quantity: members along x (ordered by the first quantity's full-data value), every
    batch a grey dot, the batches' mean ± one standard deviation in blue, the full-data value a
    black bar (with ``full_stderr[label]`` as black error bars where the full-data value is itself
    an estimate, e.g. Hutchinson's trace) — how far a number measured on one mini-batch of
    ``batch_size`` can stray.  ``names`` name the members on the x axis (``(M,)``).

    Args:
      full: ``{label: (M,)}`` full-data values.
      batches: ``{label: (M, K)}`` per-batch values.
      batch_size: the batches' size (in the title).
      full_stderr: ``{label: (M,)}`` the full-data values' standard errors.
      names: ``(M,)`` member names.
      title: the figure's title.

    Returns:
      the figure.

    Examples:
      >>> rng = np.random.default_rng(0)
      >>> fig = ls.figures.minibatch_spread({"λ_max": np.array([1.0, 1.2])}, {"λ_max": rng.normal(1.2, 0.2, (2, 10))},
      ...                                batch_size=128)
      >>> len(fig.axes)
      1
    """
    import matplotlib

    quantities = list(full)
    first = np.asarray(full[quantities[0]], float)
    order = np.argsort(first)
    m = first.size
    with matplotlib.rc_context(style_rc()):
        fig = new_figure(COLUMN_WIDTH if m <= 24 else PAGE_WIDTH, 1.9 * len(quantities) + 0.3)
        axes = np.atleast_1d(fig.subplots(len(quantities), 1, sharex=True))
        x = np.arange(m)
        for ax, name in zip(axes, quantities):
            f = np.asarray(full[name], float)[order]
            b = np.asarray(batches[name], float)[order]
            k = b.shape[1]
            ax.scatter(np.repeat(x, k) + np.tile(np.linspace(-0.2, 0.2, k), m), b.ravel(), s=3, color="0.6",
                       lw=0, label=f"one batch of {batch_size} ({k} per member)")
            ax.errorbar(x, b.mean(axis=1), yerr=b.std(axis=1, ddof=1) if k > 1 else None, fmt="o", ms=2.5,
                        color="tab:blue", lw=0.8, capsize=1.5, label="batch mean ± sd")
            ax.scatter(x, f, marker="_", s=60, color="black", lw=1.2, label="full training set", zorder=3)
            if full_stderr and name in full_stderr:
                ax.errorbar(x, f, yerr=np.asarray(full_stderr[name], float)[order], fmt="none", color="black",
                            lw=0.6, capsize=0, zorder=3)
            ax.set_ylabel(name)
        axes[0].legend(frameon=False, fontsize=font_size(6), loc="upper left")
        what = "member" if names is None else ("seed" + (" / learning rate" if any("\n" in str(t) for t in names)
                                                          else ""))
        axes[-1].set_xlabel(f"{what}, ordered by full-data {quantities[0]}")
        ticks = x if m <= 24 else x[:: max(1, m // 12)]
        axes[-1].set_xticks(ticks)
        if names is not None:
            axes[-1].set_xticklabels([str(names[i]) for i in order[ticks]], fontsize=font_size(5))
        if title:
            axes[0].set_title(title)
    return fig


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
      >>> len(ls.figures.curvature_map_lines(s.arrays, s.meta))      # one line per member
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
      >>> ls.figures.curvature_map_figure(s.arrays, s.meta, f"{run}/curvature.png").name
      'curvature.png'
    """

    axes, maps = _curvature_parts(arrays)
    loss_axes = [arrays[f"axis_{i}"] for i in range(len(axes))]
    loss = arrays.get("value/train_loss")
    labels = meta.get("axis_labels", [r"$\alpha$ (direction 1)", r"$\beta$ (direction 2)"])
    fig = curvature_map(axes, maps, loss_axes=loss_axes, loss=loss, threshold=RATIO_MARK,
                             titles=meta.get("labels"),
                             labels=Labels(x=labels[0], y=labels[1], title=" — ".join(
                                 t for t in (meta.get("title"), "Hessian curvature over the slice") if t)),
                             warnings=meta.get("warnings"))
    return save_figure(fig, path)


def result_members(arrays) -> list[tuple[int, float]]:
    lrs = arrays.get("learning_rates")
    seeds = arrays["seeds"].astype(int)
    if lrs is None:
        lrs = np.full(seeds.shape, np.nan)
    return [(int(s), round(float(v), 12)) for s, v in zip(seeds, lrs)]


def healthy(arrays) -> np.ndarray:
    """Members that neither diverged nor failed to learn, ``(M,)`` bool, from a result's arrays."""
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
      >>> ls.figures.hessian_lines(h.arrays)[0].split()            # the table's header
      ['seed', 'top', 'eigenvalue', 'smallest', 'trace']
    """
    keys = result_members(arrays)
    lrs = np.array([k[1] for k in keys])
    rates = np.unique(lrs[np.isfinite(lrs)])
    swept = rates.size > 1
    ok = healthy(arrays)
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
    keys = [k for k, good in zip(result_members(arrays), ok) if good]
    swept = len({lr for _, lr in result_members(arrays) if np.isfinite(lr)}) > 1
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
      >>> grid, density = ls.figures.density_curves(nodes, weights, num=301)
      >>> density.shape, round(float(density.sum() * (grid[1] - grid[0])), 2)
      ((1, 301), 1.0)
    """
    from ..curvature.density import Density, density_on_grid

    lo, hi = float(np.min(nodes)), float(np.max(nodes))
    pad = 0.05 * (hi - lo + 1e-12)
    grid = np.linspace(lo - pad, hi + pad, num)
    sigma = 0.01 * (hi - lo + 1e-12)
    rho = np.stack([density_on_grid(Density(n, w), grid, sigma=sigma)
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
      >>> [p.name for p in ls.figures.hessian_figures(h.arrays, run)]
      ['hessian_sharpness.png', 'hessian_density.png']
    """

    ok = healthy(arrays)
    fd = Path(run) / "figures"
    names, given = None, groups
    if groups is None:
        lrs = np.array([k[1] for k in result_members(arrays)])
        rates = np.unique(lrs[np.isfinite(lrs)])
        if rates.size > 1:
            groups = np.array([int(np.argmin(np.abs(rates - v))) for v in lrs])[ok]
            names = [f"lr {r:g}" for r in rates]
    elif len(groups) == len(ok):
        groups = np.asarray(groups)[ok]
    paths = [save_figure(scatter(
        arrays["top"][ok, 0], arrays["test_accuracy"][ok], xlabel=f"top {matrix} eigenvalue (sharpness)",
        ylabel="test accuracy", log_x=True, groups=groups, group_names=names,
        title=f"sharpness vs test accuracy, {int(ok.sum())} members"), fd / f"{prefix}_sharpness.{fmt}")]
    if "density_nodes" in arrays and ok.any():
        grid, rho = density_curves(arrays["density_nodes"][ok], arrays["density_weights"][ok])
        paths.append(save_figure(spectral_density(grid, rho, title=f"{matrix} spectral density (SLQ)"),
                                      fd / f"{prefix}_density.{fmt}"))
    if "batch_top" in arrays and ok.any():
        k = arrays["batch_top"].shape[1]
        paths.append(save_figure(minibatch_spread(
            {f"top {matrix} eigenvalue": arrays["top"][ok, 0], "trace": arrays["trace"][ok]},
            {f"top {matrix} eigenvalue": arrays["batch_top"][ok, :, 0], "trace": arrays["batch_trace"][ok]},
            batch_size=int(arrays["minibatch_size"]), full_stderr={"trace": arrays["trace_stderr"][ok]},
            names=_member_ticks(arrays, ok),
            title=f"{k} mini-batches of {int(arrays['minibatch_size'])} vs the full training set"),
            fd / f"{prefix}_minibatch.{fmt}"))
    for layer in _layers(arrays) if per_layer else []:  # one set per layer, named in its labels
        paths += hessian_figures(_layer(arrays, layer), run, fmt, groups=given, prefix=f"{prefix}_{layer}",
                                 per_layer=False, matrix=f"{matrix} (layer {layer})")
    return paths


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
      >>> [p.name for p in ls.figures.curvature_figures(run)]
      ['curvature_ggn_vs_hessian.png']
    """
    from ..store import results
    from ..store import runs as io

    run = io.run_path(run)
    saved = results.load_if_current(run, "hessian")
    if saved is None:
        return []
    hess = saved[0]
    where = {k: i for i, k in enumerate(result_members(hess))}
    paths = []
    for name in ("ggn", "fisher"):
        label = CURVATURE_NAMES[name]
        saved = results.load_if_current(run, name)
        if saved is None:
            continue
        other = saved[0]
        ok = healthy(other)
        pairs = [(where[k], j) for j, k in enumerate(result_members(other)) if k in where and ok[j]]
        if not pairs:
            continue
        i, j = np.asarray(pairs).T
        paths.append(save_figure(scatter(
            hess["top"][i, 0], other["top"][j, 0], xlabel="top Hessian eigenvalue",
            ylabel=f"top {label} eigenvalue", diagonal=True,
            title=f"{label} vs Hessian, {len(pairs)} members"), run / "figures" / f"curvature_{name}_vs_hessian.{fmt}"))
    return paths
