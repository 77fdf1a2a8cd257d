"""The code blocks of the documentation (README.md and docs/), for the executable-docs tests.

A fenced block's language says what it is (``python``, ``bash``, or none for a command
synopsis); an HTML comment on the line just before the fence can say more:

* ``<!-- docs: illustration -->`` — a Python fragment that is only checked to parse;
* ``<!-- docs: file NAME -->`` — the block is the file ``NAME``, written into the working
  directory before the blocks after it run;
* ``<!-- docs: run -->`` — a shell block run as written (the slow suite);
* ``<!-- docs: skip -->`` — a shell block not meant for this machine (GPU installs, several
  hosts); its ``landscape`` lines are still checked against the parser.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```(\w*)\s*$")
MARK = re.compile(r"^<!--\s*docs:\s*(\w+)(?:\s+(\S+))?\s*-->\s*$")


@dataclasses.dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    mark: str | None
    arg: str | None
    text: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def documents() -> list[Path]:
    """README.md, then every page of docs/ in name order."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    out, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        j = i + 1
        while j < len(lines) and lines[j].rstrip() != "```":
            j += 1
        prev = next((lines[k] for k in range(i - 1, -1, -1) if lines[k].strip()), "")
        mark = MARK.match(prev.strip())
        out.append(Block(path, i + 1, m.group(1), mark.group(1) if mark else None,
                         mark.group(2) if mark else None, "\n".join(lines[i + 1 : j]) + "\n"))
        i = j + 1
    return out


def command_lines(text: str, synopsis: bool = False) -> list[str]:
    """The logical lines of a shell block or synopsis: backslash continuations joined, comments
    dropped, ``a && b`` split into its commands; in a synopsis (``synopsis=True``) an indented line that starts with ``[`` or ``-``
    also continues the command above it (``[--dims 1|2] [--keep-biases]`` under ``surface``)."""
    joined = re.sub(r"\\\n\s*", " ", text)
    out = []
    for raw in joined.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if not line:
            continue
        if synopsis and out and raw[:1].isspace() and line[0] in "[-":
            out[-1] += " " + line
        else:
            out.extend(part.strip() for part in line.split(" && "))  # one command per part
    return out


#: What a synopsis's placeholders stand for when its line is parsed.
PLACEHOLDERS = {"RUN": "runs/x", "RESULT": "runs/x/results/r.npz", "DIR": "d", "NAME": "n", "FILE": "f",
                "FILE.pdf": "f.pdf", "N": "3", "K": "2", "B": "16", "T": "0.1", "X": "0.5", "I": "0",
                "SECONDS": "5", "HOST:PORT": "h:1", "PATH.py:FACTORY": "m.py:make"}


def _groups(words: list[str]) -> list[list[list[str]]]:
    """A line's words as a sequence of choices: each choice a list of alternatives, each
    alternative a list of words.  ``[--log | --linear]`` is one choice of two alternatives,
    ``--kind contour|filled`` one choice of two (``--kind contour``, ``--kind filled``), a plain
    word a choice of one.  Optional parts are included (a synopsis shows what works together)."""
    out: list[list[list[str]]] = []
    i = 0
    while i < len(words):
        w = words[i]
        if w.startswith("["):  # an optional group, possibly several words and "|"
            group, depth = [], 0
            while i < len(words):
                depth += words[i].count("[") - words[i].count("]")
                group.append(words[i])
                i += 1
                if depth <= 0:
                    break
            inner = " ".join(group)[1:-1].strip()
            alts = [a.split() for a in re.split(r"\s\|\s", inner)] if " | " in inner else [inner.split()]
            if len(alts) == 1:
                out.extend(_groups(alts[0]))
            else:
                out.append(alts)
            continue
        if "|" in w and not w.startswith("-"):
            out.append([[a] for a in w.split("|")])
        else:
            out.append([[w]])
        i += 1
    return out


def landscape_variants(line: str, placeholders: dict[str, str] = PLACEHOLDERS) -> list[list[str]]:
    """Every argument list a documented ``landscape …`` line stands for: the first with every
    optional part and the first of every set of alternatives, then one per other alternative
    (that alternative swapped in, the rest as in the first); placeholders filled in.  An empty
    list for a line that is not a landscape command."""
    words = shlex.split(line)[len(env_prefix(line)):]  # past any VAR=value prefixes
    if not words or words[0] != "landscape":
        return []
    choices = _groups([w for w in words[1:] if w != "..."])

    def argv(pick):
        out = []
        for choice, k in zip(choices, pick):
            for w in choice[k]:
                m = re.fullmatch(r"[A-Z]+>=(\d+)", w)
                out.append(m.group(1) if m else placeholders.get(w, w))
        return out

    first = [0] * len(choices)
    variants = [argv(first)]
    for c, choice in enumerate(choices):
        for k in range(1, len(choice)):
            variants.append(argv(first[:c] + [k] + first[c + 1:]))
    return variants


def landscape_argv(line: str) -> list[str] | None:
    """A documented ``landscape …`` line as the argument list a user would type: optional
    ``[…]`` parts included, the first of ``a|b`` alternatives, placeholders filled in; ``None``
    for a line that is not a landscape command."""
    variants = landscape_variants(line)
    return variants[0] if variants else None


def env_prefix(line: str) -> dict[str, str]:
    """The ``VAR=value`` assignments in front of a command line."""
    out = {}
    for w in shlex.split(line):
        m = re.match(r"^([A-Z_]+)=(.*)$", w)
        if not m:
            break
        out[m.group(1)] = m.group(2)
    return out


def subprocess_env() -> dict[str, str]:
    """The environment the documentation's code runs in: this interpreter's scripts first on
    ``PATH`` (``landscape``), the CPU unless told otherwise, no display for matplotlib."""
    env = dict(os.environ)
    env.setdefault("JAX_PLATFORMS", "cpu")
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["MPLBACKEND"] = "Agg"
    return env
