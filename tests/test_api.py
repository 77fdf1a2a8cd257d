"""The public API and the house it lives in.

* every exported name imports, from every namespace a user calls;
* the layout: the folders are the floors, imports only go down and form no cycle, the top
  level stays small, no module is over 800 lines (no command-line file over 400);
* few wide signatures: execution options travel as one object;
* the figures floor (and the store below it, and the NumPy density) imports no JAX.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import landscape

ROOT = Path(landscape.__file__).resolve().parent

#: The floors, bottom up: a module may import from its own floor's package (no cycle) or below.
FLOORS = {
    "core": 0,
    "data": 1,
    "models": 2,
    "geometry": 3, "curvature": 3,
    "training": 4,  # above curvature: it tracks the Hessian inside the training loop
    "minima": 5,
    "store": 6,
    "analyses": 7,
    "figures": 8,
    "cli": 9,
}


def _modules() -> dict[str, Path]:
    """``{"landscape.core.tree": path, …}`` for every module of the library."""
    out = {}
    for p in ROOT.rglob("*.py"):
        parts = list(p.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


_MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The library modules ``name`` imports (anywhere in it, lazy imports included)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found, mods = set(), _MODULES
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in mods]
            targets = subs if len(subs) == len(node.names) else [target, *subs]  # `from . import common`: the module
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        found |= {t for t in targets if t in mods and t != name}
    return found


def _floor(module: str) -> int | None:
    parts = module.split(".")
    return FLOORS.get(parts[1]) if len(parts) > 1 else None


def test_every_public_name_imports():
    for name in landscape.__all__:
        assert hasattr(landscape, name), name
    for name in landscape._NAMESPACES:
        m = getattr(landscape, name)
        assert importlib.import_module(f"landscape.{name}") is m  # `import landscape.NAME` is the same module
        for public in getattr(m, "__all__", []):
            assert hasattr(m, public), f"landscape.{name}.{public}"


def test_the_namespaces_users_call_keep_working():
    import landscape as ls

    for name in ("train_ensemble", "load_run", "save_run"):
        assert callable(getattr(ls, name))
    for ns, attr in (("data", "load"), ("models", "MLP"), ("directions", "random_direction"), ("surface", "plane"),
                     ("hessian", "top_eigenvalues"), ("minima", "barrier"), ("permutation", "align")):
        assert callable(getattr(getattr(ls, ns), attr)), f"ls.{ns}.{attr}"
    from landscape.hessian import top_eigenvalues  # noqa: F401
    from landscape.surface import plane  # noqa: F401


def test_the_plumbing_is_not_a_public_namespace():
    for name in ("files", "chunks", "timing", "results", "members", "load"):
        assert name not in landscape.__all__
        with pytest.raises(AttributeError):
            getattr(landscape, name)


def test_the_top_level_holds_at_most_14_modules_and_packages():
    entries = [p for p in ROOT.iterdir() if p.name != "__pycache__" and (p.suffix == ".py" or (p / "__init__.py").exists())]
    assert len(entries) <= 14, sorted(p.name for p in entries)
    assert {p.name for p in entries if p.is_dir()} == set(FLOORS) - {"data"}


def test_no_module_is_over_800_lines_and_no_command_line_file_over_400():
    for name, path in _modules().items():
        n = len(path.read_text().splitlines())
        assert n <= (400 if name.startswith("landscape.cli") else 800), f"{name}: {n} lines"


def test_imports_only_go_down_and_form_no_cycle():
    mods = _modules()
    graph = {name: _imports(name, path) for name, path in mods.items()}
    for name, targets in graph.items():
        for t in targets:
            a, b = _floor(name), _floor(t)
            if a is None or b is None:  # the package's own __init__: aliases only
                continue
            assert b <= a, f"{name} (floor {a}) imports {t} (floor {b}): an import upward"
            if a == b:
                assert name.split(".")[1] == t.split(".")[1], f"{name} imports {t}: two packages of one floor"
    # no cycle (Tarjan's strongly connected components, iteratively small enough to recurse)
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    assert cycles == []


def _public_functions():
    """Every function and method offered in some module's ``__all__``, once."""
    seen = {}
    for name in _modules():
        if name.endswith("__main__"):  # running it is the command
            continue
        m = importlib.import_module(name)
        for public in getattr(m, "__all__", []):
            obj = getattr(m, public)
            if inspect.isfunction(obj):
                seen[obj.__module__ + "." + obj.__qualname__] = obj
            elif inspect.isclass(obj) and obj.__module__ == m.__name__:
                for meth_name, meth in vars(obj).items():
                    if inspect.isfunction(meth) and not meth_name.startswith("_"):
                        seen[obj.__module__ + "." + meth.__qualname__] = meth
    return seen


def test_at_most_five_public_functions_take_twelve_or_more_parameters():
    wide = sorted(name for name, f in _public_functions().items()
                  if len([p for p in inspect.signature(f).parameters if p not in ("self", "cls")]) >= 12)
    assert len(wide) <= 5, wide


def test_no_private_name_is_imported_from_another_module():
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                private = [a.name for a in node.names if a.name.startswith("_") and a.name != "__version__"]
                assert not private, f"{name} imports {private} from {node.module}"


def test_the_figures_floor_imports_no_jax(tmp_path):
    """In a fresh interpreter: every module of the figures package, the store below it and the
    NumPy density, then a figure drawn from a saved result — and neither JAX, Flax nor optax
    was ever imported."""
    import numpy as np

    from landscape.store import save_result

    a = np.linspace(-1, 1, 5)
    save_result(tmp_path / "r", {"axis_0": a, "axis_1": a, "value/train_loss": np.add.outer(a**2, a**2)},
                {"kind": "plane"})
    code = (
        "import sys, pkgutil, importlib\n"
        "import landscape.figures as F\n"
        "for m in pkgutil.iter_modules(F.__path__): importlib.import_module('landscape.figures.' + m.name)\n"
        "import landscape.store, landscape.store.results, landscape.store.members, landscape.curvature.density\n"
        "F.result_figure(*landscape.store.load_result(sys.argv[1]), sys.argv[1] + '.png')\n"
        "bad = [m for m in ('jax', 'jaxlib', 'flax', 'optax') if m in sys.modules]\n"
        "sys.exit(f'imported {bad}' if bad else 0)\n"
    )
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "r")], capture_output=True, text=True, timeout=300,
                       env={"MPLBACKEND": "Agg", "PATH": "/usr/bin:/bin", "HOME": str(Path.home())})
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "r.png").stat().st_size > 0


def test_every_package_of_the_library_is_installed():
    """A non-editable install ships the packages ``pyproject.toml`` names: every directory of
    the library with an ``__init__.py`` must be one of them (an editable install would hide a
    missing one)."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11 on
    listed = set(tomllib.loads((ROOT.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT.parent).parts) for p in ROOT.rglob("__init__.py")}
    assert found == listed, found ^ listed


def test_no_package_offers_a_name_that_hides_one_of_its_modules():
    """``landscape.analyses.surface`` is a function; were a module of the package called
    ``surface`` too, which one a user got would depend on the order of imports."""
    import pkgutil

    for name, path in _MODULES.items():
        if path.name != "__init__.py" or name == "landscape":
            continue
        package = importlib.import_module(name)
        modules = {m.name for m in pkgutil.iter_modules(package.__path__)}
        assert not modules & set(getattr(package, "__all__", ())), f"{name}: {modules & set(package.__all__)}"
