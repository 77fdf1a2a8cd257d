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

def _library_modules() -> list[str]:
    """Every module of the library (names relative to ``landscape``) that declares ``__all__``."""
    import pkgutil

    import landscape

    out = []
    for m in pkgutil.walk_packages(landscape.__path__, "landscape."):
        if m.name.endswith("__main__") or (m.name.startswith("landscape.cli") and ".serve" not in m.name):
            continue  # the command line's own modules: its flags are documented by --help
        if hasattr(importlib.import_module(m.name), "__all__"):
            out.append(m.name[len("landscape."):])
    return sorted(out)


#: Every module with a public API (``__all__``).
MODULES = tuple(_library_modules())
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
    """Each floor's modules are found, and a package offers only names its modules define."""
    assert {"core.tree", "geometry.surface", "curvature.spectra", "minima.barriers", "figures.styles",
            "analyses.landscapes", "cli.serve.daemon"} <= set(MODULES)
    for module in MODULES:
        mod = importlib.import_module(f"landscape.{module}")
        if hasattr(mod, "__path__"):  # a package: re-exports, one home each
            for name in mod.__all__:
                home = getattr(getattr(mod, name), "__module__", None)
                assert home is None or home.startswith("landscape."), f"landscape.{module}.{name}"


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
@pytest.mark.parametrize("module", sorted({n.split(".")[0] for n, _ in EXAMPLES}))  # one interpreter per package
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
