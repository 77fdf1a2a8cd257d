"""Figures, tables and the markdown report of a run, drawn from saved results only.

Nothing here computes: every function reads arrays a run or a result already holds and hands
them to :mod:`landscape.plot`.  Members are named as (seed, learning rate) throughout
(:mod:`landscape.members`); a Hessian result is quoted only when it is current for the run's
parameters, and ``RUN/report.md`` is rebuilt whenever the results it quotes change.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .curvature import hessian_figures, result_members
from .minima import matrix, scatter
from .styles import save_figure
from .surfaces import curve
from .training import final_cost_histogram

__all__ = ["compare_lines", "write_report", "refresh_report"]


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
      >>> [line.split(":")[0] for line in ls.figures.compare_lines(c.arrays, c.meta)][:2]
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
      >>> report, figures = ls.figures.write_report(run, c.arrays, c.meta, name=c.name)
      >>> report.name, "| member | final train loss" in report.read_text()
      ('report.md', True)
    """
    from ..core import files
    from ..store import results
    from ..store import runs as io

    run = io.run_path(run)
    loss = io.read_meta(run).get("train", {}).get("loss", "loss")
    settings = meta.get("settings", {})
    labels = meta.get("labels") or [f"seed {int(s)}" for s in arrays["seeds"]]
    keys = result_members(arrays)
    saved = results.load_if_current(run, "hessian")  # quoted only when computed from these parameters
    hess = None if saved is None else saved[0]
    hmap = {}
    if hess is not None:
        hmap = {k: (hess["top"][i, 0], hess["trace"][i]) for i, k in enumerate(result_members(hess))}
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
        figs.append(save_figure(final_cost_histogram(arrays["final_train_loss"], loss_name=loss),
                                     fd / f"compare_final_costs.{fmt}"))
        # each matrix ordered and divided by its own basins
        figs.append(save_figure(matrix(arrays["barrier"], groups=arrays["basin"], names=short,
                                                 title="loss barrier, ordered by basin", cbar_label="barrier"),
                                     fd / f"compare_barriers.{fmt}"))
        if aligned:
            figs.append(save_figure(matrix(arrays["aligned_barrier"], groups=arrays["aligned_basin"],
                                                     names=short,
                                                     title="barrier after alignment, ordered by basin",
                                                     cbar_label="barrier"), fd / f"compare_barriers_aligned.{fmt}"))
            iu = np.triu_indices(len(keys), 1)
            if iu[0].size:
                figs.append(save_figure(scatter(
                    arrays["barrier"][iu], arrays["aligned_barrier"][iu], xlabel="barrier before alignment",
                    ylabel="barrier after alignment", diagonal=True,
                    title=f"{len(iu[0])} pairs: median {np.median(arrays['barrier'][iu]):.3g} → "
                          f"{np.median(arrays['aligned_barrier'][iu]):.3g}"), fd / f"compare_alignment.{fmt}"))
        if "curve_loss" in arrays:
            a, b = meta.get("curve_labels") or ("A", "B")
            figs.append(save_figure(curve(arrays["curve_t"], {"straight line": arrays["line_loss"],
                                                                        "Bézier curve": arrays["curve_loss"]},
                                                    xlabel="t", marks={"A": 0.0, "B": 1.0}, title=f"{a} to {b}"),
                                         fd / f"compare_curve.{fmt}"))
        if hess is not None:
            where = {k: i for i, k in enumerate(result_members(hess))}
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
      >>> _ = ls.figures.write_report(run, c.arrays, c.meta, name=c.name, figures=False)
      >>> ls.figures.refresh_report(run).name                      # rebuilt from the comparison it names
      'report.md'
    """
    import re

    from ..store import results
    from ..store import runs as io

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
