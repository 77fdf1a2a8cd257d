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
import re
import shlex
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


def command_lines(text: str) -> list[str]:
    """The logical lines of a shell block or synopsis (continuations joined, comments dropped)."""
    joined = re.sub(r"\\\n\s*", " ", text)
    out = []
    for line in joined.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        if line:
            out.append(line)
    return out


#: What a synopsis's placeholders stand for when its line is parsed.
PLACEHOLDERS = {"RUN": "runs/x", "RESULT": "runs/x/results/r.npz", "DIR": "d", "NAME": "n", "FILE": "f",
                "FILE.pdf": "f.pdf", "N": "3", "K": "2", "B": "16", "T": "0.1", "X": "0.5", "I": "0",
                "SECONDS": "5", "HOST:PORT": "h:1", "PATH.py:FACTORY": "m.py:make"}


def landscape_argv(line: str) -> list[str] | None:
    """A documented ``landscape …`` line as the argument list a user would type: optional
    ``[…]`` parts included, the first of ``a|b`` alternatives, placeholders filled in; ``None``
    for a line that is not a landscape command."""
    words = shlex.split(line)
    while words and re.match(r"^[A-Z_]+=", words[0]):  # VAR=value prefixes
        words = words[1:]
    if not words or words[0] != "landscape":
        return None
    argv = []
    for w in words[1:]:
        w = w.strip("[]")
        if not w or w == "...":
            continue
        if re.fullmatch(r"[A-Z]+>=(\d+)", w):
            w = w.split(">=")[1]
        if "|" in w and not w.startswith("-"):
            w = w.split("|")[0]
        argv.append(PLACEHOLDERS.get(w, w))
    return argv
