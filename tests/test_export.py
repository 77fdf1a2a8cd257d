"""Exports of saved results: VTK XML for ParaView and a self-contained interactive HTML page."""

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from landscape.errors import ConfigError

from landscape import export


def plane_result(g=7, h=5):
    """A saved-plane-like result: cost = 2 + a² + b² on a 7 × 5 grid, three minima, two paths."""
    a, b = np.linspace(-1, 1, g), np.linspace(-2, 2, h)
    A, B = np.meshgrid(a, b, indexing="ij")
    arrays = {"axis_0": a, "axis_1": b, "value/train_loss": 2 + A**2 + B**2, "value/train_accuracy": 0 * A + 0.5,
              "extra/points": np.array([[0.0, 0.0], [0.5, 1.0], [-0.5, -1.0]]),
              "extra/path_0": np.array([[-1.0, -2.0], [0.0, 0.0]]), "extra/path_1": np.array([[1.0, 2.0], [0.5, 1.0],
                                                                                           [0.25, 0.5]])}
    meta = {"kind": "three_point", "point_labels": ["seed 0", "seed 1", "seed 2"],
            "path_labels": ["seed 0 path", "seed 1 path"], "title": "plane"}
    return arrays, meta


def floats(el):
    return np.array([float(v) for v in el.text.split()])


def test_vtk_structured_grid_and_paths_parse_with_the_right_counts(tmp_path):
    arrays, meta = plane_result()
    written = export.export(arrays, meta, tmp_path / "plane.vts", "vtk")
    assert [p.name for p in written] == ["plane.vts", "plane_paths.vtp"]
    root = ET.parse(written[0]).getroot()
    assert root.get("type") == "StructuredGrid"
    piece = root.find("StructuredGrid/Piece")
    assert piece.get("Extent") == "0 6 0 4 0 0"
    pts = floats(piece.find("Points/DataArray")).reshape(-1, 3)
    assert pts.shape == (35, 3)
    loss = floats(piece.find("PointData/DataArray[@Name='train_loss']"))
    assert loss.size == 35
    # VTK order: x (a) fastest; the height is the value (it spans less than a decade: linear)
    np.testing.assert_allclose(pts[:, 2], 2 + pts[:, 0] ** 2 + pts[:, 1] ** 2, rtol=1e-8)
    np.testing.assert_allclose(loss, pts[:, 2], rtol=1e-8)
    np.testing.assert_allclose(pts[:7, 0], np.linspace(-1, 1, 7))
    poly = ET.parse(written[1]).getroot().find("PolyData/Piece")
    assert poly.get("NumberOfPoints") == "5" and poly.get("NumberOfLines") == "2"
    assert floats(poly.find("Lines/DataArray[@Name='offsets']")).tolist() == [2, 5]


def test_drape_is_exact_for_a_bilinear_function():
    a, b = np.linspace(0, 3, 4), np.linspace(-1, 1, 5)
    z = 2 + 3 * a[:, None] - b[None, :] + 0.5 * a[:, None] * b[None, :]
    xy = np.random.default_rng(0).uniform([0, -1], [3, 1], size=(20, 2))
    want = 2 + 3 * xy[:, 0] - xy[:, 1] + 0.5 * xy[:, 0] * xy[:, 1]
    np.testing.assert_allclose(export._drape(a, b, z, xy), want, rtol=1e-12)


def test_html_is_self_contained(tmp_path):
    arrays, meta = plane_result()
    (path,) = export.export(arrays, meta, tmp_path / "plane.html", "html")
    text = path.read_text()
    assert 'id="landscape-surface"' in text
    assert not re.search(r"<script[^>]+src=", text)  # plotly.js is inside the file: no network
    assert path.stat().st_size > 1_000_000


def _scene_titles(text):
    """The page's 3-D axis titles, as plotly's JSON in the page spells them."""
    import json

    titles = []
    for axis in ("xaxis", "yaxis"):
        found = re.search('"' + axis + r'":\{"title":\{"text":("(?:[^"\\]|\\.)*")', text)
        titles.append(json.loads(found.group(1)))
    return titles


@pytest.mark.parametrize("labels", [None, ["distance along u", "distance along v"],
                                    [r"$\alpha$ (direction 1)", r"$\beta$ (direction 2)"]])
def test_html_axes_carry_the_png_figure_s_labels(tmp_path, labels):
    """The page said "a"/"b" where the PNG says "distance along u/v"."""
    from landscape import figures

    arrays, meta = plane_result()
    if labels is not None:
        meta["axis_labels"] = labels
    (path,) = export.export(arrays, meta, tmp_path / "plane.html", "html")
    fig = figures.from_result(arrays, meta)
    png = [fig.axes[0].get_xlabel(), fig.axes[0].get_ylabel()]
    plain = {None: ["α", "β"], "distance along u": ["distance along u", "distance along v"]}.get(
        (labels or [None])[0], ["α (direction 1)", "β (direction 2)"])
    assert _scene_titles(path.read_text()) == plain
    assert re.search(r'"legend":\{[^}]*"x":0\.01', path.read_text())  # top left, clear of the colour bar's title
    assert [t.replace("$\\alpha$", "α").replace("$\\beta$", "β") for t in png] == plain


def test_html_pages_can_share_one_plotly_js(tmp_path):
    """Each self-contained page is 4.8 MB; several pages of a lecture can load one copy beside them."""
    from plotly.offline import get_plotlyjs

    arrays, meta = plane_result()
    first = export.export(arrays, meta, tmp_path / "a.html", "html", plotly_js="shared")
    second = export.export(arrays, meta, tmp_path / "b.html", "html", plotly_js="shared", metric="train_accuracy")
    assert [p.name for p in first] == ["a.html", "plotly.min.js"] and second[1] == first[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.html", "b.html", "plotly.min.js"]
    assert first[1].read_text() == get_plotlyjs()
    for page in (first[0], second[0]):
        text = page.read_text()
        assert re.findall(r"<script[^>]+src=\"([^\"]+)\"", text) == ["plotly.min.js"]
        assert page.stat().st_size < 100_000 and get_plotlyjs()[:2000] not in text
    first[1].write_text("an older plotly")  # a stale copy beside the pages is replaced, not trusted
    export.export(arrays, meta, tmp_path / "a.html", "html", plotly_js="shared")
    assert first[1].read_text() == get_plotlyjs()
    with pytest.raises(ConfigError, match="plotly_js must be one of inline, shared"):
        export.export(arrays, meta, tmp_path / "c.html", "html", plotly_js="cdn")


def test_bad_exports_are_refused(tmp_path):
    arrays, meta = plane_result()
    with pytest.raises(ConfigError, match="unknown metric"):
        export.export(arrays, meta, tmp_path / "x.html", "html", metric="test_loss")
    with pytest.raises(ConfigError, match="export format"):
        export.export(arrays, meta, tmp_path / "x.obj", "obj")
    line = {"axis_0": np.linspace(0, 1, 5), "value/loss": np.ones(5)}
    with pytest.raises(ConfigError, match="only 2-D results"):
        export.export(line, {"kind": "interpolation"}, tmp_path / "x.html", "html")


BROWSER = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


@pytest.mark.skipif(BROWSER is None, reason="no Chromium installed (Debian: apt-get install chromium)")
@pytest.mark.parametrize("plotly_js", ["inline", "shared"])
def test_html_page_loads_without_errors_and_draws_in_a_headless_browser(tmp_path, plotly_js):
    arrays, meta = plane_result()
    path = export.export(arrays, meta, tmp_path / "plane.html", "html", plotly_js=plotly_js)[0]
    hook = ("<script>window.addEventListener('error', function (e) {"
            " document.documentElement.setAttribute('data-page-error', String(e.message)); });</script>")
    page = tmp_path / "page.html"  # beside plotly.min.js when it is shared
    page.write_text(path.read_text().replace("<head>", "<head>" + hook, 1))
    r = subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--use-angle=swiftshader",
                        "--enable-unsafe-swiftshader", "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    dom = r.stdout
    errors = re.findall(r'data-page-error="[^"]*"', dom[:5000])  # set on <html> by the hook on any error
    assert not errors, errors
    assert 'class="gl-container"' in dom and "<canvas" in dom  # the WebGL scene was drawn
    assert 'class="main-svg"' in dom and "seed 1 path" in dom  # and its legend
