"""MkDocs hook: the site's pages are sections of README.md (one source, no copies).

A page whose Markdown is the line ``--8<-- "README.md:NAME"`` gets the README's text between
``<!-- --8<-- [start:NAME] -->`` and ``<!-- --8<-- [end:NAME] -->``; a link to a heading of
the README (``](#anchor)``) that lies in another section is pointed at that section's page.
"""

from __future__ import annotations

import re
from pathlib import Path

from markdown.extensions.toc import slugify

README = Path(__file__).resolve().parent / "README.md"
INCLUDE = re.compile(r'^--8<-- "README\.md:([\w-]+)"\s*$', re.M)
START = re.compile(r"^<!-- --8<-- \[start:([\w-]+)\] -->\s*$")
END = re.compile(r"^<!-- --8<-- \[end:([\w-]+)\] -->\s*$")


def _sections() -> dict[str, str]:
    out, name, buf = {}, None, []
    for line in README.read_text(encoding="utf-8").splitlines():
        if m := START.match(line):
            name, buf = m.group(1), []
        elif (m := END.match(line)) and name == m.group(1):
            out[name], name = "\n".join(buf) + "\n", None
        elif name is not None:
            buf.append(line)
    return out


def _anchors(text: str) -> set[str]:
    inside, found = False, set()
    for line in text.splitlines():
        if line.startswith("```"):
            inside = not inside
        elif not inside and (m := re.match(r"^#{1,6}\s+(.*?)\s*$", line)):
            found.add(slugify(re.sub(r"[`*]", "", m.group(1)), "-"))
    return found


def on_page_markdown(markdown, page, config, files):
    sections = _sections()
    m = INCLUDE.search(markdown)
    if not m:
        return markdown
    if m.group(1) not in sections:
        raise ValueError(f"{page.file.src_path}: README.md has no section {m.group(1)!r}")
    pages = {}  # section name -> the page that includes it
    for f in files.documentation_pages():
        if s := INCLUDE.search(Path(f.abs_src_path).read_text(encoding="utf-8")):
            pages[s.group(1)] = f.src_uri
    here = m.group(1)
    where = {a: name for name, text in sections.items() for a in _anchors(text)}

    def relink(link: re.Match) -> str:
        anchor = link.group(1)
        name = where.get(anchor)
        if name is None or name == here or name not in pages:
            return link.group(0)
        target = Path(pages[name])
        rel = Path(*[".."] * len(Path(page.file.src_uri).parent.parts), target) if target else target
        return f"]({rel.as_posix()}#{anchor})"

    text = re.sub(r"\]\(#([\w-]+)\)", relink, sections[here])
    return markdown[: m.start()] + text + markdown[m.end():]
