"""The public API: every exported name imports; plotting imports no JAX."""

import ast
import importlib
from pathlib import Path

import landscape


def test_every_public_name_imports():
    for name in landscape.__all__:
        assert hasattr(landscape, name), name
    for mod in ("tree", "data", "models", "optim", "train", "directions", "surface", "hessian", "minima", "distributed", "io", "plot", "errors", "cli",
                "results", "compilation_cache", "timing", "permutation", "model_files", "precision", "analyses",
                "members", "report", "files", "chunks"):
        m = importlib.import_module(f"landscape.{mod}")
        for name in getattr(m, "__all__", []):
            assert hasattr(m, name), f"landscape.{mod}.{name}"


def test_plot_module_imports_no_jax():
    src = Path(landscape.__file__).with_name("plot.py").read_text()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        for n in names:
            assert not n.split(".")[0] in ("jax", "jaxlib", "flax", "optax"), n
            assert n.lstrip(".") not in ("tree", "train", "models", "surface", "hessian"), n


def test_deprecated_names_warn_and_still_work():
    import warnings

    import pytest

    import landscape as ls

    with pytest.warns(DeprecationWarning, match="use landscape.data.load"):
        load = ls.load
    assert load is ls.data.load
    with pytest.warns(DeprecationWarning, match="use output_loss"):
        f = ls.models.loss_function("mse")
    assert f is ls.models.output_loss("mse")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert callable(ls.data.load) and callable(ls.load_run) and callable(ls.models.output_loss)


def test_every_package_of_the_library_is_installed():
    """A non-editable install ships the packages ``pyproject.toml`` names: every directory of
    the library with an ``__init__.py`` must be one of them (an editable install would hide a
    missing one)."""
    import pytest

    tomllib = pytest.importorskip("tomllib")  # Python 3.11 on
    root = Path(landscape.__file__).resolve().parent
    listed = set(tomllib.loads((root.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(root.parent).parts) for p in root.rglob("__init__.py")}
    assert found == listed, found ^ listed
