"""Executable documentation: every code block of README.md and docs/ is checked.

Default suite: every Python block parses, and every documented ``landscape …`` line — in
runnable blocks and in synopses alike — is accepted by the command's own parser (the flags
exist, their values parse).  Slow suite: the Python blocks of each document run, in order,
as written, in one fresh interpreter; the shell blocks marked ``run`` run as written.
"""

from __future__ import annotations

import ast
import functools
import os
import subprocess
import sys

import pytest

from .docblocks import ROOT, blocks, command_lines, documents, landscape_argv

ALL = [b for doc in documents() for b in blocks(doc)]
PYTHON = [b for b in ALL if b.lang == "python"]
SHELL = [b for b in ALL if b.lang in ("bash", "")]
MARKS = {None, "illustration", "file", "run", "skip"}


def test_the_documents_have_blocks_and_only_known_marks():
    assert len(PYTHON) >= 5 and len(SHELL) >= 5
    assert {b.mark for b in ALL} <= MARKS, [b.where for b in ALL if b.mark not in MARKS]


@pytest.mark.parametrize("block", PYTHON, ids=lambda b: b.where)
def test_python_block_parses(block):
    ast.parse(block.text, filename=block.where)


@pytest.mark.parametrize("block", [b for b in SHELL if any(landscape_argv(x) for x in command_lines(b.text))],
                         ids=lambda b: b.where)
def test_documented_command_lines_are_accepted_by_the_parser(block):
    from landscape.cli import build_parser
    from landscape.cli.parser import UsageError

    parser = build_parser()
    for line in command_lines(block.text):
        argv = landscape_argv(line)
        if argv is None:
            continue
        try:
            parser.parse_args(argv)
        except (UsageError, SystemExit) as exc:
            pytest.fail(f"{block.where}: `{line}` is refused by the parser: {exc}")


def _runner(doc) -> str:
    """A script that runs a document's Python blocks in order in one namespace and names the
    block that fails."""
    cells = [(b.line, b.text, b.mark, b.arg) for b in blocks(doc) if b.lang == "python" or b.mark == "file"]
    return (
        "import sys, traceback\n"
        f"cells = {cells!r}\n"
        "ns = {'__name__': '__main__'}\n"
        "for line, text, mark, arg in cells:\n"
        "    if mark == 'file':\n"
        "        open(arg, 'w').write(text)\n"
        "        continue\n"
        "    if mark == 'illustration':\n"
        "        continue\n"
        "    print(f'--- block at line {line}', flush=True)\n"
        "    try:\n"
        f"        exec(compile(text, {doc.name!r} + f':{{line}}', 'exec'), ns)\n"
        "    except BaseException:\n"
        "        traceback.print_exc()\n"
        f"        sys.exit(f'{doc.name}: the block at line {{line}} failed')\n"
    )


def _env() -> dict:
    env = dict(os.environ)
    env.setdefault("JAX_PLATFORMS", "cpu")
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["MPLBACKEND"] = "Agg"
    return env


@pytest.mark.slow
@pytest.mark.parametrize("doc", [d for d in documents() if any(b.lang == "python" for b in blocks(d))],
                         ids=lambda d: str(d.relative_to(ROOT)))
def test_python_blocks_run_in_order_in_a_fresh_interpreter(doc, tmp_path):
    script = tmp_path / "run_blocks.py"
    script.write_text(_runner(doc))
    r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                       timeout=1800, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"{r.stdout[-3000:]}\n{r.stderr[-6000:]}"


@pytest.mark.slow
@pytest.mark.parametrize("block", [b for b in SHELL if b.mark == "run"], ids=lambda b: b.where)
def test_shell_blocks_marked_run_run_as_written(block, tmp_path):
    for b in blocks(block.path):  # files the document defines before this block
        if b.mark == "file" and b.line < block.line:
            (tmp_path / b.arg).write_text(b.text)
    r = subprocess.run(["bash", "-euo", "pipefail", "-c", block.text], cwd=tmp_path, env=_env(),
                       capture_output=True, text=True, timeout=1800, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"{block.where}\n{r.stdout[-3000:]}\n{r.stderr[-6000:]}"


def test_the_documentation_site_builds_with_warnings_as_errors(tmp_path):
    """``mkdocs build --strict`` (the README's command): every page, every README section it
    includes, every cross-page link and every docstring of the API reference (an ``Args``
    entry that names no parameter is a warning, hence an error)."""
    pytest.importorskip("mkdocs")  # installed with .[test]; an accelerator machine may lack it
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                       cwd=ROOT, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr[-4000:]
    api = (tmp_path / "site" / "api" / "landscapes" / "index.html").read_text(encoding="utf-8")
    assert "landscape.surface.evaluate" in api and "coords" in api
    lecture = (tmp_path / "site" / "lecture" / "index.html").read_text(encoding="utf-8")
    assert "landscape basins runs/lecture" in lecture and "figures/lecture_basins.png" in lecture
    cli = (tmp_path / "site" / "cli" / "index.html").read_text(encoding="utf-8")
    assert 'href="../performance/#time-to-result"' in cli  # a README anchor on another page


@functools.lru_cache(maxsize=1)
def _package():
    import logging

    griffe = pytest.importorskip("griffe")
    logging.getLogger("griffe").setLevel(logging.ERROR)  # missing types: the signatures have them
    return griffe.load("landscape", search_paths=[str(ROOT)], docstring_parser="google")


def _public(kind: str) -> list:
    """Every public function (``kind="function"``) or class of the package as griffe reads it
    statically (the ``cli`` package aside: its flags are documented by ``--help``)."""
    found = []

    def visit(obj):
        for name, m in obj.members.items():
            if name.startswith("_") or m.is_alias or (m.is_module and name == "cli"):
                continue
            if m.is_module or m.is_class:
                visit(m)
            if (kind == "function" and m.is_function) or (kind == "class" and m.is_class):
                found.append(m)

    visit(_package())
    return found


def _entries(obj, *kinds: str) -> list:
    return [e for s in (obj.docstring.parse("google") if obj.docstring else []) if s.kind.value in kinds
            for e in s.value]


def test_no_docstring_entry_hides_another_parameter():
    """``x: …  y: …`` on one line documents only ``x`` in the reference; each parameter gets
    its own entry."""
    import re

    hidden = []
    for f in _public("function"):
        params = [p.name for p in f.parameters if p.name not in ("self", "cls")]
        for e in _entries(f, "parameters"):
            hidden.extend(f"{f.path}: {e.name} hides {o}" for o in params
                          if o != e.name and re.search(rf"(^|\.\s+|;\s+){re.escape(o)}:\s", e.description))
    assert hidden == []


def test_every_public_function_documents_every_parameter():
    """The API reference shows each argument: every public function and method has an
    ``Args`` entry for every parameter of its signature."""
    missing = []
    for f in _public("function"):
        documented = {e.name.lstrip("*") for e in _entries(f, "parameters")}
        missing.extend(f"{f.path}: {p.name}" for p in f.parameters
                       if p.name not in ("self", "cls") and p.name not in documented)
    assert missing == []


def test_every_public_class_documents_its_fields():
    """Result types, settings objects and configurations list their fields under ``Attributes``
    (or ``Args``), one entry each, so the API reference shows what each holds."""
    missing = []
    for c in _public("class"):
        fields = [a for a, v in c.members.items()
                  if v.is_attribute and "property" not in v.labels and not a.startswith("_") and not a.isupper()]
        documented = {e.name for e in _entries(c, "attributes", "parameters")}
        missing.extend(f"{c.path}.{f}" for f in fields if f not in documented)
    assert missing == []
