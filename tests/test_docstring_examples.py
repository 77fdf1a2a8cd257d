"""The ``Examples:`` sections of the public docstrings run as doctests.

Every example assumes only ``import jax``, ``import jax.numpy as jnp``, ``import numpy as np``
and ``import landscape as ls`` (the README says so) and builds what it uses, so a reader can
paste it as it stands.  The default suite checks that every example parses and that every
public function and class of every module has one; the slow suite runs them all, each
module's in a fresh interpreter, comparing the printed values.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import re

import pytest

#: Every module with a public API (``__all__``).
MODULES = ("errors", "files", "tree", "distributed", "timing", "precision", "data", "permutation", "models.base",
           "models.mlp", "models.cnn", "models.adapters", "models.resnet", "models.resolve", "models.statistics",
           "models.losses", "model_files", "optim", "train", "directions", "chunks", "surface", "hessian", "minima", "race", "io",
           "results", "members", "analyses", "plot", "export", "report", "compilation_cache", "cli.server")
#: Examples only parsed, never run, and why.
NOT_RUN = {"data.prepare_tfds": "downloads a data set (needs the internet)"}
SECTION = re.compile(r"^Examples:[ \t]*$", re.M)
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _public(module: str):
    mod = importlib.import_module(f"landscape.{module}")
    for name in mod.__all__:
        obj = getattr(mod, name)
        if (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__ == mod.__name__:
            yield f"{module}.{name}", obj


def _example(obj) -> str | None:
    """The text of a docstring's ``Examples:`` section (up to the next section or the end)."""
    doc = inspect.getdoc(obj) or ""
    m = SECTION.search(doc)
    if not m:
        return None
    lines = []
    for line in doc[m.end():].splitlines()[1:]:  # [0]: the rest of the "Examples:" line
        if line and not line.startswith(" "):  # the next section
            break
        lines.append(line)
    return "\n".join(lines)


OBJECTS = [(name, obj) for module in MODULES for name, obj in _public(module)]
EXAMPLES = [(name, text) for name, obj in OBJECTS if (text := _example(obj))]


def test_every_module_with_a_public_api_is_checked():
    import pkgutil

    import landscape

    found = set()
    for m in pkgutil.iter_modules(landscape.__path__):
        if not m.ispkg:
            if hasattr(importlib.import_module(f"landscape.{m.name}"), "__all__"):
                found.add(m.name)
        elif m.name != "cli":  # a package of the library: its modules (the cli: its server, below)
            package = importlib.import_module(f"landscape.{m.name}")
            parts = {f"{m.name}.{s.name}" for s in pkgutil.iter_modules(package.__path__)}
            found |= {p for p in parts if hasattr(importlib.import_module(f"landscape.{p}"), "__all__")}
            # the package offers every public name of its modules, and nothing else
            offered = {n for p in parts for n in getattr(importlib.import_module(f"landscape.{p}"), "__all__", ())}
            assert set(package.__all__) == offered, set(package.__all__) ^ offered
    assert found == set(MODULES) - {"cli.server"}, found ^ set(MODULES)


def test_every_public_function_and_class_has_an_example():
    missing = [name for name, obj in OBJECTS if _example(obj) is None]
    assert not missing, f"no Examples: section: {missing}"


@pytest.mark.parametrize("name, text", EXAMPLES, ids=[n for n, _ in EXAMPLES])
def test_example_parses_and_runs_as_written(name, text):
    examples = doctest.DocTestParser().get_examples(text, name)
    assert examples, f"{name}: its Examples: section has no >>> lines"
    for ex in examples:
        compile(ex.source, name, "single" if "\n" not in ex.source.strip() else "exec")
        assert (doctest.SKIP in ex.options) == (name in NOT_RUN), f"{name}: +SKIP only where NOT_RUN says why"


def _run_module(module: str) -> int:
    """Run the examples of ``module`` as doctests in this interpreter; print the failures."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    import landscape as ls

    parser, failed = doctest.DocTestParser(), 0
    for name, text in EXAMPLES:
        if name.split(".")[0] != module or name in NOT_RUN:
            continue
        globs = {"jax": jax, "jnp": jnp, "np": np, "ls": ls}
        runner = doctest.DocTestRunner(optionflags=FLAGS)
        runner.run(doctest.DocTest(parser.get_examples(text, name), globs, name, None, None, text))
        failed += runner.failures
    return 1 if failed else 0


@pytest.mark.slow
@pytest.mark.parametrize("module", sorted({n.split(".")[0] for n, _ in EXAMPLES}))
def test_examples_run_as_doctests(module, tmp_path):
    """Each module's examples in a fresh interpreter (an example may turn on the compilation
    cache or set the matmul precision: nothing carries over to the next module or the suite)."""
    import subprocess
    import sys

    from .docblocks import ROOT, subprocess_env

    code = ("import sys; sys.path.insert(0, sys.argv[1]); "
            "from tests.test_docstring_examples import _run_module; sys.exit(_run_module(sys.argv[2]))")
    r = subprocess.run([sys.executable, "-c", code, str(ROOT), module], cwd=tmp_path, env=subprocess_env(),
                       capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout[-8000:] + r.stderr[-3000:]
