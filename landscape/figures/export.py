"""Saved results as files other tools open: one self-contained interactive HTML page (plotly),
and VTK XML for ParaView.  Nothing here computes; like :mod:`landscape.plot`, it only reads
the arrays a result holds.

* ``html``: a rotatable 3-D surface of the cost (log10 when it spans a decade or more, as the
  figures), the minima as markers and any paths draped on the surface, its axes labelled as the
  PNG figures label them, with plotly.js written into the file itself — it opens offline, e.g. in
  a lecture hall.  Several pages can instead share one ``plotly.min.js`` beside them
  (``plotly_js="shared"``): each page then holds its data only (39 kB for a 51 × 51 plane),
  not 4.8 MB.
* ``vtk``: the surface as a structured grid (``.vts``: points ``(a, b, z)``, every metric as
  point data), and paths, if any, as polylines (``_paths.vtp``), in the XML formats ParaView
  and VisIt read — the role of the reference tool's h5→vtp script.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from ..core.errors import ConfigError

__all__ = ["FORMATS", "PLOTLY_JS", "surface_of", "to_html", "to_vtk", "export"]

FORMATS = ("html", "vtk")

#: where an HTML page finds plotly.js: inside the page, or in one ``plotly.min.js`` beside it
PLOTLY_JS = ("inline", "shared")

#: the shared copy's file name (the name plotly's own ``include_plotlyjs="directory"`` refers to)
SHARED_PLOTLY = "plotly.min.js"

_TEX = {r"\alpha": "α", r"\beta": "β", r"\gamma": "γ", r"\theta": "θ", r"\lambda": "λ", r"\eta": "η",
        r"\cdot": "·", r"\times": "×"}


def _plain(label: str) -> str:
    """A matplotlib label as plain text for a page that has no TeX: ``$\\alpha$ (direction 1)`` →
    ``α (direction 1)``."""
    for tex, char in _TEX.items():
        label = label.replace(tex, char)
    return label.replace("$", "").replace("{", "").replace("}", "")


def surface_of(arrays: dict, meta: dict, *, metric: str | None = None, member: int = 0) -> dict:
    """The drawable parts of a saved 2-D result: ``{"a", "b", "values": {name: (G, H)}, "z_name",
    "points": (R, 2) | None, "paths": [(K, 2)], "path_labels", "point_labels", "title",
    "axis_labels"}``; ``axis_labels`` are the PNG figure's, as plain text.

    Surfaces, planes, trajectory planes (one member of a multi-member result: ``member``), basin
    maps (the cost at the starts, and the labels) and races (the plane's cost and every path).

    Args:
      arrays: the result's arrays (:func:`landscape.io.load_result`).
      meta: its metadata.
      metric: the height (default: the training loss).
      member: which member of a several-member result.

    Returns:
      the dict above.

    Raises:
      ConfigError: a 1-D result, or an unknown metric.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> ens = ls.train_ensemble(ls.MLP(hidden=(4,)), data, key=jax.random.key(0), seeds=3,
      ...                         loss="cross_entropy", steps=30, execution=ls.Execution(progress=False))
      >>> import tempfile
      >>> run = ls.save_run(tempfile.mkdtemp() + "/run", ens)
      >>> out = ls.analyses.surface(run, ls.analyses.SurfaceSpec(seeds="0", grid=5), execution=ls.analyses.Execution(progress=False))
      >>> s = ls.export.surface_of(out.arrays, out.meta)
      >>> s["a"].shape, s["values"][s["z_name"]].shape
      ((5,), (5, 5))
    """
    kind = meta.get("kind")
    axes = [arrays[k] for k in ("axis_0", "axis_1") if k in arrays]
    if len(axes) != 2 or any(k.startswith("axis_2") for k in arrays):
        raise ConfigError("only 2-D results (planes, basin maps, races) can be exported as a surface")
    a, b = (np.asarray(x, float) for x in axes)
    paths, path_labels = [], []
    if kind == "basins":
        values = {"start_loss": arrays["start_loss"], "final_loss": arrays["final_loss"],
                  "basin_label": arrays["labels"].astype(float)}
        default = "start_loss"
    elif kind == "race":
        values = {"loss": arrays["cost"]}
        default = "loss"
        p = np.asarray(arrays["paths"])
        for i in range(p.shape[0]):
            for j, name in enumerate(meta["entrants"]):
                paths.append(p[i, j])
                path_labels.append(f"{name}, start {i}")
    else:
        values = {k[6:]: np.asarray(v) for k, v in arrays.items() if k.startswith("value/")}
        if not values:
            raise ConfigError("the result holds no values to export")
        if next(iter(values.values())).ndim == 3:
            n = next(iter(values.values())).shape[0]
            if not 0 <= member < n:
                raise ConfigError(f"member must be in 0..{n - 1}, got {member}")
            values = {k: v[member] for k, v in values.items()}
        default = "train_loss" if "train_loss" in values else next(
            (k for k in sorted(values) if k.endswith("loss")), next(iter(values)))
        paths = [np.asarray(arrays[k]) for k in sorted(arrays) if k.startswith("extra/path")]
        path_labels = list(meta.get("path_labels") or [f"path {i}" for i in range(len(paths))])
    z_name = metric or default
    if z_name not in values:
        raise ConfigError(f"unknown metric {z_name!r}; the result has {', '.join(values)}")
    points = arrays.get("points", arrays.get("extra/points"))
    # the labels the PNG figure of the same result draws (landscape plot / the command's figure)
    axis_labels = meta.get("axis_labels") or (["u", "v"] if kind in ("basins", "race") else [r"$\alpha$", r"$\beta$"])
    return {"a": a, "b": b, "values": {k: np.asarray(v, float) for k, v in values.items()}, "z_name": z_name,
            "axis_labels": [_plain(str(t)) for t in axis_labels],
            "points": None if points is None else np.asarray(points, float), "paths": paths,
            "path_labels": path_labels, "point_labels": meta.get("point_labels"), "title": meta.get("title") or kind}


def _height(z: np.ndarray) -> tuple[np.ndarray, bool]:
    """The drawn height: log10 of a positive cost spanning a decade or more, else the value."""
    finite = z[np.isfinite(z)]
    use_log = finite.size > 0 and finite.min() > 0 and finite.max() / finite.min() >= 10
    return (np.log10(z) if use_log else z), use_log


def _drape(a, b, z, xy: np.ndarray) -> np.ndarray:
    """Bilinear interpolation of the grid ``z (G, H)`` at points ``xy (K, 2)`` (clamped to the grid)."""
    xy = np.asarray(xy, float)
    x = np.clip(xy[:, 0], a[0], a[-1])
    y = np.clip(xy[:, 1], b[0], b[-1])
    i = np.clip(np.searchsorted(a, x) - 1, 0, a.size - 2)
    j = np.clip(np.searchsorted(b, y) - 1, 0, b.size - 2)
    tx = (x - a[i]) / (a[i + 1] - a[i])
    ty = (y - b[j]) / (b[j + 1] - b[j])
    return ((1 - tx) * (1 - ty) * z[i, j] + tx * (1 - ty) * z[i + 1, j] + (1 - tx) * ty * z[i, j + 1]
            + tx * ty * z[i + 1, j + 1])


def to_html(surf: dict, path: str | Path, *, plotly_js: str = "inline") -> Path:
    """Write ``surf`` (:func:`surface_of`) as an HTML page that needs no network: plotly.js inside
    the page, or (``plotly_js="shared"``) in one ``plotly.min.js`` beside it that every page
    of the directory loads.  Its axes carry the PNG figure's labels.

    Args:
      surf: a dict from :func:`surface_of`.
      path: the ``.html`` file to write (atomically).
      plotly_js: ``"inline"`` (one self-contained page, about 4.8 MB) or ``"shared"`` (the page
        refers to ``plotly.min.js`` in its directory, written there, atomically, when it is
        missing or differs from the installed plotly's; keep the two together when copying).

    Returns:
      the path of the page.

    Raises:
      ConfigError: an unknown ``plotly_js``.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> ens = ls.train_ensemble(ls.MLP(hidden=(4,)), data, key=jax.random.key(0), seeds=3,
      ...                         loss="cross_entropy", steps=30, execution=ls.Execution(progress=False))
      >>> import tempfile
      >>> run = ls.save_run(tempfile.mkdtemp() + "/run", ens)
      >>> out = ls.analyses.surface(run, ls.analyses.SurfaceSpec(seeds="0", grid=5), execution=ls.analyses.Execution(progress=False))
      >>> page = ls.export.to_html(ls.export.surface_of(out.arrays, out.meta), run / "exports" / "plane.html")
      >>> page.name, page.stat().st_size > 1_000_000               # plotly.js inside: opens offline
      ('plane.html', True)
    """
    import plotly.graph_objects as go

    from ..core import files

    if plotly_js not in PLOTLY_JS:
        raise ConfigError(f"plotly_js must be one of {', '.join(PLOTLY_JS)}, got {plotly_js!r}")

    a, b = surf["a"], surf["b"]
    z = surf["values"][surf["z_name"]]
    h, use_log = _height(z)
    zlabel = surf["z_name"].replace("_", " ") + (" (log10)" if use_log else "")
    # plotly's surface takes z[row = y, column = x]
    traces = [go.Surface(x=a, y=b, z=h.T, colorscale="Viridis", colorbar={"title": {"text": zlabel}},
                         name=surf["z_name"], showscale=True)]
    lift = 0.01 * float(np.nanmax(h) - np.nanmin(h) or 1.0)  # paths drawn just above the surface
    for xy, label in zip(surf["paths"], surf["path_labels"]):
        traces.append(go.Scatter3d(x=xy[:, 0], y=xy[:, 1], z=_drape(a, b, h, xy) + lift, mode="lines",
                                   line={"width": 4}, name=label))
    if surf["points"] is not None:
        pts = surf["points"]
        names = surf["point_labels"] or [f"minimum {i}" for i in range(len(pts))]
        traces.append(go.Scatter3d(x=pts[:, 0], y=pts[:, 1], z=_drape(a, b, h, pts) + lift, mode="markers+text",
                                   marker={"size": 5, "color": "white", "line": {"color": "black", "width": 2}},
                                   text=list(names), name="minima"))
    fig = go.Figure(traces)
    fig.update_layout(title={"text": str(surf["title"]).replace("\n", "<br>")},
                      scene={"xaxis_title": surf["axis_labels"][0], "yaxis_title": surf["axis_labels"][1],
                             "zaxis_title": zlabel},
                      # the legend top left, clear of the colour bar and its title on the right
                      legend={"x": 0.01, "y": 0.98, "bgcolor": "rgba(255, 255, 255, 0.7)"},
                      margin={"l": 0, "r": 0, "t": 40, "b": 0})
    shared = plotly_js == "shared"
    text = fig.to_html(include_plotlyjs="directory" if shared else True, full_html=True, div_id="landscape-surface")
    path = Path(path)
    with files.storage_errors(path.parent, "create"):
        path.parent.mkdir(parents=True, exist_ok=True)
    if shared:
        from plotly.offline import get_plotlyjs

        js = get_plotlyjs().encode("utf-8")
        beside = path.parent / SHARED_PLOTLY
        if not beside.is_file() or beside.read_bytes() != js:  # another plotly's copy is replaced, never half-written
            files.atomic_write_bytes(beside, js)
    files.atomic_write_bytes(path, text.encode("utf-8"))
    return path


def _data_array(parent, name: str, values: np.ndarray, components: int = 1) -> None:
    el = ET.SubElement(parent, "DataArray", type="Float64", Name=name, NumberOfComponents=str(components),
                       format="ascii")
    el.text = " ".join(f"{v:.9g}" for v in np.asarray(values, float).ravel())


def _xml_bytes(root) -> bytes:
    ET.indent(root)
    return b'<?xml version="1.0"?>\n' + ET.tostring(root)


def to_vtk(surf: dict, path: str | Path) -> list[Path]:
    """Write ``surf`` as VTK XML: ``PATH`` (``.vts`` structured grid: points ``(a, b, height)``
    with the height of :func:`to_html`, every metric as point data) and, with paths,
    ``PATH_paths.vtp`` (one polyline per path, draped on the surface).  Returns the paths.

    Args:
      surf: a dict from :func:`surface_of`.
      path: the ``.vts`` file to write (atomically).

    Returns:
      the files written.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> ens = ls.train_ensemble(ls.MLP(hidden=(4,)), data, key=jax.random.key(0), seeds=3,
      ...                         loss="cross_entropy", steps=30, execution=ls.Execution(progress=False))
      >>> import tempfile
      >>> run = ls.save_run(tempfile.mkdtemp() + "/run", ens)
      >>> out = ls.analyses.surface(run, ls.analyses.SurfaceSpec(seeds="0", grid=5), execution=ls.analyses.Execution(progress=False))
      >>> files = ls.export.to_vtk(ls.export.surface_of(out.arrays, out.meta), run / "exports" / "plane.vts")
      >>> [f.name for f in files]                                  # no paths on a random plane
      ['plane.vts']
    """
    from ..core import files

    a, b = surf["a"], surf["b"]
    g, hh = a.size, b.size
    h, _ = _height(surf["values"][surf["z_name"]])
    # VTK's structured-grid order: x fastest, then y
    A, B = np.meshgrid(a, b, indexing="xy")  # (H, G): rows along b
    pts = np.stack([A.ravel(), B.ravel(), h.T.ravel()], axis=1)
    root = ET.Element("VTKFile", type="StructuredGrid", version="1.0", byte_order="LittleEndian")
    extent = f"0 {g - 1} 0 {hh - 1} 0 0"
    grid = ET.SubElement(root, "StructuredGrid", WholeExtent=extent)
    piece = ET.SubElement(grid, "Piece", Extent=extent)
    pdata = ET.SubElement(piece, "PointData", Scalars=surf["z_name"])
    for name, v in surf["values"].items():
        _data_array(pdata, name, np.nan_to_num(v.T.ravel(), nan=-1.0, posinf=1e300))
    _data_array(ET.SubElement(piece, "Points"), "Points", np.nan_to_num(pts, nan=0.0, posinf=1e300), 3)
    path = Path(path)
    with files.storage_errors(path.parent, "create"):
        path.parent.mkdir(parents=True, exist_ok=True)
    files.atomic_write_bytes(path, _xml_bytes(root))
    out = [path]
    if surf["paths"]:
        root = ET.Element("VTKFile", type="PolyData", version="1.0", byte_order="LittleEndian")
        poly = ET.SubElement(root, "PolyData")
        sizes = [len(p) for p in surf["paths"]]
        piece = ET.SubElement(poly, "Piece", NumberOfPoints=str(sum(sizes)), NumberOfLines=str(len(sizes)))
        xyz = np.concatenate([np.column_stack([p[:, 0], p[:, 1], _drape(a, b, h, p)]) for p in surf["paths"]])
        _data_array(ET.SubElement(piece, "Points"), "Points", np.nan_to_num(xyz), 3)
        lines = ET.SubElement(piece, "Lines")
        conn = ET.SubElement(lines, "DataArray", type="Int64", Name="connectivity", format="ascii")
        conn.text = " ".join(str(i) for i in range(sum(sizes)))
        offs = ET.SubElement(lines, "DataArray", type="Int64", Name="offsets", format="ascii")
        offs.text = " ".join(str(v) for v in np.cumsum(sizes))
        cdata = ET.SubElement(piece, "CellData", Scalars="path")
        pid = ET.SubElement(cdata, "DataArray", type="Int32", Name="path", format="ascii")
        pid.text = " ".join(str(i) for i in range(len(sizes)))
        second = path.with_name(f"{path.stem}_paths.vtp")
        files.atomic_write_bytes(second, _xml_bytes(root))
        out.append(second)
    return out


def export(arrays: dict, meta: dict, path: str | Path, fmt: str, *, metric: str | None = None,
           member: int = 0, plotly_js: str = "inline") -> list[Path]:
    """Export a saved 2-D result (:func:`surface_of`) as ``html`` or ``vtk``; returns the files written.

    Args:
      arrays: the result's arrays (:func:`landscape.io.load_result`).
      meta: its metadata.
      path: the file to write.
      fmt: ``"html"`` or ``"vtk"``.
      metric: the height (default: the training loss).
      member: which member of a several-member result.
      plotly_js: for ``html``: plotly.js ``"inline"`` in the page or ``"shared"`` beside it (:func:`to_html`).

    Returns:
      the files written (the page; with ``"shared"``, ``plotly.min.js`` after it).

    Raises:
      ConfigError: an unknown format, a 1-D result, an unknown metric.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> ens = ls.train_ensemble(ls.MLP(hidden=(4,)), data, key=jax.random.key(0), seeds=3,
      ...                         loss="cross_entropy", steps=30, execution=ls.Execution(progress=False))
      >>> import tempfile
      >>> run = ls.save_run(tempfile.mkdtemp() + "/run", ens)
      >>> out = ls.analyses.surface(run, ls.analyses.SurfaceSpec(seeds="0", grid=5), execution=ls.analyses.Execution(progress=False))
      >>> [p.suffix for p in ls.export.export(out.arrays, out.meta, run / "exports" / "plane.vts", "vtk")]
      ['.vts']
    """
    if fmt not in FORMATS:
        raise ConfigError(f"export format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    surf = surface_of(arrays, meta, metric=metric, member=member)
    if fmt == "html":
        page = to_html(surf, path, plotly_js=plotly_js)
        return [page] + ([page.parent / SHARED_PLOTLY] if plotly_js == "shared" else [])
    return to_vtk(surf, path)
