"""Executable documentation: every code block of README.md and docs/ is checked.

Default suite: every Python block parses, and every documented ``landscape …`` line — in
runnable blocks and in synopses alike — is accepted by the command's own parser (the flags
exist, their values parse).  Slow suite: the Python blocks of each document run, in order,
as written, in one fresh interpreter; the shell blocks marked ``run`` run as written.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from .clirun import run
from .docblocks import (
    ROOT,
    blocks,
    command_lines,
    documents,
    env_prefix,
    landscape_argv,
    landscape_variants,
    subprocess_env,
)

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


def _lines(block):
    return command_lines(block.text, synopsis=block.lang == "")


@pytest.mark.parametrize("block", [b for b in SHELL if any(landscape_argv(x) for x in _lines(b))],
                         ids=lambda b: b.where)
def test_documented_command_lines_are_accepted_by_the_parser(block):
    """Every variant of every line: optional parts included, each alternative of ``a|b`` and of
    ``[--x | --y]`` in turn."""
    from landscape.cli import build_parser
    from landscape.cli.parser import UsageError

    parser = build_parser()
    for line in _lines(block):
        for argv in landscape_variants(line):
            try:
                parser.parse_args(argv)
            except (UsageError, SystemExit) as exc:
                pytest.fail(f"{block.where}: `{' '.join(argv)}` (from `{line}`) is refused by the parser: {exc}")


def test_a_synopsis_continuation_line_belongs_to_its_command():
    text = ("landscape surface RUN --seeds 0 [--grid 51]\n"
            "                  [--dims 2|1] [--keep-biases]   # a comment\n"
            "        # a comment line\n"
            "landscape plot RESULT [--log | --linear]\n")
    lines = command_lines(text, synopsis=True)
    assert lines == ["landscape surface RUN --seeds 0 [--grid 51] [--dims 2|1] [--keep-biases]",
                     "landscape plot RESULT [--log | --linear]"]
    assert landscape_variants(lines[0]) == [
        ["surface", "runs/x", "--seeds", "0", "--grid", "51", "--dims", "2", "--keep-biases"],
        ["surface", "runs/x", "--seeds", "0", "--grid", "51", "--dims", "1", "--keep-biases"]]
    assert landscape_variants(lines[1]) == [["plot", "runs/x/results/r.npz", "--log"],
                                            ["plot", "runs/x/results/r.npz", "--linear"]]


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


@pytest.mark.slow
@pytest.mark.parametrize("doc", [d for d in documents() if any(b.lang == "python" for b in blocks(d))],
                         ids=lambda d: str(d.relative_to(ROOT)))
def test_python_blocks_run_in_order_in_a_fresh_interpreter(doc, tmp_path):
    script = tmp_path / "run_blocks.py"
    script.write_text(_runner(doc))
    r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True,
                       timeout=1800, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"{r.stdout[-3000:]}\n{r.stderr[-6000:]}"


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the lecture's block trains 41² starts: about 5 minutes alone on 2 cores
@pytest.mark.parametrize("block", [b for b in SHELL if b.mark == "run"], ids=lambda b: b.where)
def test_shell_blocks_marked_run_run_as_written(block, tmp_path):
    for b in blocks(block.path):  # files the document defines before this block
        if b.mark == "file" and b.line < block.line:
            (tmp_path / b.arg).write_text(b.text)
    r = subprocess.run(["bash", "-euo", "pipefail", "-c", block.text], cwd=tmp_path, env=subprocess_env(),
                       capture_output=True, text=True, timeout=1800, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"{block.where}\n{r.stdout[-3000:]}\n{r.stderr[-6000:]}"


#: How a documented command is made small for the run test: each flag's value at most this.
SMALL = {"--grid": 5, "--curvature-grid": 3, "--steps": 20, "--probes": 3, "--curve-steps": 20, "--frames": 4,
         "--pixels": 320, "--starts": 3}
#: ``train`` and ``demo`` only (elsewhere ``--seeds`` picks members): the number of random starts.
SMALL_TRAIN = {"--seeds": 3}
#: Flags whose defaults are lecture-sized: a line that leaves them out runs them at ``SMALL`` too
#: (``landscape basins RUN --seeds 0,1,2`` would train 41² starts).
SMALL_OMITTED = {"basins": ("--grid", "--steps"), "race": ("--starts", "--steps"),
                 "animate": ("--starts", "--steps", "--grid", "--frames", "--pixels"), "hessian": ("--probes",),
                 "spawn": ("--steps",)}
#: Placeholders that need a value of their own when the command runs (the rest: PLACEHOLDERS).
RUN_VALUES = {("--metric", "n"): "test_loss", ("--iters", "3"): "12"}
#: Lines that cannot run on this machine, and why (each is parsed by the test above).
NOT_HERE = {"prepare": "downloads a data set (no internet here)",
            "--coordinator": "several processes (tests/test_distributed.py runs them)",
            "--movie mp4": "needs ffmpeg"}


def _small(argv: list[str], results: dict[str, str]) -> list[str]:
    out = list(argv)
    trains = out[0] in ("train", "demo")
    caps = {**SMALL, **(SMALL_TRAIN if trains else {})}
    for i in range(1, len(out)):
        flag, value = out[i - 1], out[i]
        if flag in caps and value.isdigit():
            out[i] = str(min(int(value), caps[flag]))
        out[i] = RUN_VALUES.get((flag, out[i]), out[i])
    if trains:  # "..." (or the quick start) leaves out the sizes: the defaults are 64 x 2000
        out += [x for flag in ("--seeds", "--steps") if flag not in out for x in (flag, str(caps[flag]))]
    out += [x for flag in SMALL_OMITTED.get(out[0], ()) if flag not in out for x in (flag, str(caps[flag]))]
    return [results.get(a, a) for a in out]


def _documented_commands():
    """The ``landscape`` lines of every shell block and synopsis not marked ``run`` or
    ``skip`` (those run as written above, or are not for this machine), in document order."""
    return [(b, line) for b in SHELL if b.mark is None for line in _lines(b) if landscape_argv(line)]


def _not_here(line: str) -> str | None:
    return next((why for what, why in NOT_HERE.items() if what in line), None)


#: The documents with ``landscape`` lines to run, each a test of its own (so the slow suite's
#: workers share them out).
COMMAND_DOCUMENTS = list(dict.fromkeys(b.path for b, _ in _documented_commands()))


def test_the_documented_commands_cover_every_command_and_few_cannot_run_here():
    lines = [line for _, line in _documented_commands()]
    runnable = {landscape_argv(x)[0] for x in lines if not _not_here(x)}
    assert len(lines) >= 20 and {"surface", "hessian", "compare", "basins", "animate", "race", "export", "plot",
                                 "demo", "info", "cache", "serve", "train"} <= runnable
    assert len([x for x in lines if _not_here(x)]) <= 4


def _run_documented_commands(sh, tmp_path, doc):
    """Run every documented line of ``doc`` (``sh(argv, extra_env, where)``) on the small run;
    returns (ran, skipped).  A run the page names without training it first (``landscape info
    runs/digits`` on the reference page) is a copy of the small run; a page that uses ``RESULT``
    before any ``surface`` line of its own gets the small run's 5-point plane."""
    small = tmp_path / "runs" / "x"
    sh(["train", "--seeds", "3", "--hidden", "8", "--steps", "60", "--lr", "1", "--snapshot-every", "20",
        "--log-every", "20", "--quiet", "--no-plot", "--out", "runs/x"], where="the small run")
    results: dict[str, str] = {}
    ran, skipped = [], []

    def command(argv, extra=None, where=""):
        """``sh``, noting the plane the first ``surface`` line on RUN writes as RESULT."""
        first = argv[:2] == ["surface", "runs/x"] and "runs/x/results/r.npz" not in results
        before = set((small / "results").glob("*.npz"))
        r = sh(argv, extra, where=where)
        if first:
            new = set((small / "results").glob("*.npz")) - before
            assert len(new) == 1, new
            results["runs/x/results/r.npz"] = str(new.pop())
        return r

    for block, line in _documented_commands():
        if block.path != doc:
            continue
        reason = _not_here(line)
        if reason:
            skipped.append((line, reason))
            continue
        if "runs/x/results/r.npz" in _small(landscape_argv(line), results):
            command(_small(["surface", "runs/x", "--seeds", "0", "--grid", "5"], {}), where=f"RESULT for `{line}`")
        argv = _small(landscape_argv(line), results)
        if argv[0] not in ("train", "demo") and len(argv) > 1 and argv[1].startswith("runs/") \
                and "/results/" not in argv[1] and not (tmp_path / argv[1]).exists():
            shutil.copytree(small, tmp_path / argv[1], ignore=shutil.ignore_patterns("results", "figures"))
        extra = env_prefix(line)
        if argv[0] == "cache":  # never the suite's own cache
            extra["LANDSCAPE_COMPILE_CACHE"] = str(tmp_path / "cache")
        if "--devices" in argv:
            n = argv[argv.index("--devices") + 1]
            extra["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={n}"
        r = command(argv, extra, where=f"{block.where}: `{line}`")
        if argv == ["serve", "--status"]:  # the commands after `serve --detach` went to the server
            served = int(r.stdout.split(" command(s) served")[0].split()[-1])
            assert served >= 1, f"{block.where}: no command reached the server: {r.stdout}"
        ran.append(line)
    return ran, skipped


@pytest.mark.slow
@pytest.mark.parametrize("doc", COMMAND_DOCUMENTS, ids=lambda d: str(d.relative_to(ROOT)))
def test_documented_commands_run_on_a_small_run(doc, tmp_path):
    """Every documented ``landscape …`` line of a synopsis or an unmarked shell block of ``doc``
    runs, in document order, in one directory — every optional part included, the first of
    each set of alternatives — on a small run: ``RUN`` is a 3-seed digits network trained with
    snapshots, ``RESULT`` the plane the first ``surface`` line on ``RUN`` wrote, and the sizes are
    capped by ``SMALL`` (a 51-point grid runs as 5 points, 2000 steps as 20, 64 seeds as 3;
    lecture-sized defaults a line leaves out too: ``SMALL_OMITTED``).  Each line must exit 0;
    ``landscape serve`` lines start, query and stop a real server, which runs the commands
    between them (``serve --status`` must report at least one)."""
    env = subprocess_env()
    env["LANDSCAPE_COMPILE_CACHE"] = os.environ.get("LANDSCAPE_COMPILE_CACHE", "off")
    # `landscape serve` lines start a real server: its socket in a private directory of the
    # test's own (short: a Unix socket's path has at most 107 bytes), and the commands between
    # `serve --detach` and `serve --stop` are handed to it, as they are for a user
    sockets = Path(tempfile.mkdtemp(prefix="ls-"))
    env["XDG_RUNTIME_DIR"] = str(sockets)
    env.pop("LANDSCAPE_SERVE", None)

    def sh(argv, extra_env=None, where=""):
        r = run(*argv, cwd=tmp_path, env={**env, **(extra_env or {})}, timeout=900)
        assert r.returncode == 0, f"{where}: `landscape {' '.join(argv)}` failed\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}"
        return r

    try:
        ran, skipped = _run_documented_commands(sh, tmp_path, doc)
    finally:  # no server outlives the test, whatever happened
        for described in sockets.glob("*.json"):
            with contextlib.suppress(OSError, ValueError, ProcessLookupError):
                os.kill(int(json.loads(described.read_text())["pid"]), signal.SIGTERM)
        shutil.rmtree(sockets, ignore_errors=True)
    assert ran, f"{doc}: no documented command ran"
    assert all(reason for _, reason in skipped), skipped


#: Where the other commands of the documents' shell blocks run (not ``landscape`` lines, not
#: blocks marked ``run`` or ``skip``).
RUN_ELSEWHERE = {
    "python3 -m venv": ".ci/run (a fresh virtual environment)",
    ". .venv/bin/activate": ".ci/run (a fresh virtual environment)",
    "pip install -e .": ".ci/run installs the project with .[test]",
    "pip install -e '.[test]'": ".ci/run",
    "pip install -e '.[bench]'": "the benchmark's peers; experiments/benchmark.py runs without them too",
    "python -m pytest": ".ci/run runs both suites",
    "python experiments/accelerator_check.py": "tests/test_accelerator_check.py (slow), on the CPU",
    "python experiments/benchmark.py": "tests/test_accelerator_check.py runs every section in tiny sizes",
    "mkdocs build": "test_the_documentation_site_builds_with_warnings_as_errors, and .ci/run",
}


def test_every_other_documented_command_runs_somewhere():
    """A shell line that is not a ``landscape`` command is one CI or a named test runs."""
    for block in SHELL:
        if block.mark is not None or block.lang != "bash":
            continue
        for line in _lines(block):
            if not landscape_argv(line):
                assert any(line.startswith(p) for p in RUN_ELSEWHERE), f"{block.where}: `{line}` runs nowhere"


def test_the_documentation_site_builds_with_warnings_as_errors(tmp_path):
    """``mkdocs build --strict`` (the README's command): every page, every README section it
    includes, every cross-page link and every docstring of the API reference (an ``Args``
    entry that names no parameter is a warning, hence an error)."""
    pytest.importorskip("mkdocs")  # installed with .[test]; an accelerator machine may lack it
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                       cwd=ROOT, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr[-4000:]
    site = tmp_path / "site"
    api = (site / "reference" / "api" / "landscapes" / "index.html").read_text(encoding="utf-8")
    assert "landscape.geometry.evaluator.evaluate" in api and "coords" in api
    lecture = (site / "tutorials" / "lecture" / "index.html").read_text(encoding="utf-8")
    assert "landscape basins runs/lecture" in lecture and "figures/lecture_basins.png" in lecture
    cli = (site / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    assert 'href="../../explanation/performance/#time-to-result"' in cli  # an anchor on another page


@functools.lru_cache(maxsize=1)
def _package():
    import logging

    griffe = pytest.importorskip("griffe")
    logging.getLogger("griffe").setLevel(logging.ERROR)  # missing types: the signatures have them
    return griffe.load("landscape", search_paths=[str(ROOT)], docstring_parser="google")


def _public(kind: str) -> list:
    """Every public function (``kind="function"``) or class of the package as griffe reads it
    statically: what each module offers in its ``__all__`` and defines itself, with the public
    methods of those classes (the ``cli`` package aside: its flags are documented by ``--help``)."""
    found = []

    def visit(mod):
        for name, m in mod.members.items():
            if not m.is_alias and m.is_module and not name.startswith("_") and not (name == "cli" and mod.path == "landscape"):
                visit(m)
        exported = {e for e in (mod.exports or []) if isinstance(e, str)} if hasattr(mod, "exports") else set()
        for name in sorted(exported):
            m = mod.members.get(name)
            if m is None or m.is_alias:
                continue
            if kind == "function" and m.is_function:
                found.append(m)
            if m.is_class:
                if kind == "class":
                    found.append(m)
                elif kind == "function":
                    found.extend(f for n, f in m.members.items() if f.is_function and not n.startswith("_")
                                 and not f.is_alias)

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


def test_the_readme_is_short_and_the_site_has_pages_of_their_own():
    """The README says what the project is and how to start (at most 400 lines); the site's
    pages hold their own text — tutorials, how-to guides, explanation, reference — none of them
    a copy of the README."""
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 400
    pages = [p for p in (ROOT / "docs").rglob("*.md") if "api" not in p.parts]
    own = [p for p in pages if "--8<--" not in p.read_text(encoding="utf-8")
           and len(p.read_text(encoding="utf-8").split()) > 300]
    assert len(own) >= 6, own
    for part in ("tutorials", "how-to", "explanation", "reference"):
        assert any(part in p.parts for p in own), part


def test_git_ignores_what_the_commands_write_by_default():
    """The demo's default output directory is in .gitignore (it listed a directory nothing wrote)."""
    from landscape.cli.parser import build_parser

    demo = build_parser().parse_args(["demo"])
    ignored = {line.strip().strip("/") for line in (ROOT / ".gitignore").read_text().splitlines()}
    assert demo.out.strip("/") in ignored
