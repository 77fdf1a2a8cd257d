"""Shared plumbing of the studies in ``experiments/``: time the steps, publish figures.

The studies call the library (``landscape.analyses`` with settings objects, ``landscape.figures``
for figures) exactly as the ``landscape`` command does, never the command's internals.

Each study script keeps its configuration at the top, writes its results under a run
directory (``runs/<study>`` by default), draws every figure from the saved results, and
copies the figures the README shows into ``figures/``.  ``--quick`` shrinks the
configuration so the whole study finishes in well under a minute (a smoke test, exercised
by ``tests/test_studies.py``); quick runs never overwrite the published figures unless
``--figures`` says where to put them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def parser(doc: str, name: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc.strip().splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=f"runs/{name}", help="run directory of the study (default: %(default)s)")
    p.add_argument("--figures", default=None,
                   help="where to copy the published figures (default: figures/, or none with --quick)")
    p.add_argument("--quick", action="store_true", help="a tiny configuration that finishes in under a minute")
    p.add_argument("--style", choices=("paper", "slides"), default="paper",
                   help="figure style (default: %(default)s); slides figures are published with a _slides suffix")
    return p


class Study:
    """Times the steps of one study and publishes its figures."""

    def __init__(self, name: str, args: argparse.Namespace, config: dict):
        self.name = name
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        figures = args.figures if args.figures is not None else (None if args.quick else ROOT / "figures")
        self.figures = Path(figures) if figures is not None else None
        self.config = config
        self.quick = args.quick
        self.steps: dict[str, float] = {}
        self.published: list[str] = []
        self.t0 = time.perf_counter()
        import landscape as ls

        self.style = getattr(args, "style", "paper")
        self._style = contextlib.ExitStack()  # the figure style holds until finish()
        self._style.enter_context(ls.figures.using(self.style))

        try:  # as every `landscape` command does: compiled programs are reused across runs
            ls.compilation_cache.enable()
        except ls.ConfigError:
            pass

    @contextlib.contextmanager
    def timed(self, label: str):
        """Time the enclosed block as step ``label``."""
        t = time.perf_counter()
        try:
            yield
        finally:
            self.steps[label] = self.steps.get(label, 0.0) + time.perf_counter() - t

    def publish(self, src: Path, name: str) -> None:
        """Copy a figure drawn from saved results to ``figures/<study>_<name>`` (``<study>`` when ``name`` is empty)."""
        src = Path(src)
        if not src.exists():
            raise FileNotFoundError(f"expected figure {src} was not drawn")
        if self.figures is None:
            return
        self.figures.mkdir(parents=True, exist_ok=True)
        suffix = "" if self.style == "paper" else f"_{self.style}"
        dst = self.figures / f"{self.name}{'_' + name if name else ''}{suffix}{src.suffix}"
        shutil.copyfile(src, dst)
        try:
            self.published.append(str(dst.resolve().relative_to(ROOT)))
        except ValueError:  # published outside the repository (tests)
            self.published.append(str(dst))

    def finish(self, summary: dict) -> dict:
        """Write ``RUN/study.json`` (configuration, summary, step times) and print the summary."""
        record = {"study": self.name, "quick": self.quick, "config": self.config, "summary": summary,
                  "seconds": {k: round(v, 1) for k, v in self.steps.items()},
                  "total_seconds": round(time.perf_counter() - self.t0, 1), "figures": self.published,
                  "date": time.strftime("%Y-%m-%d %H:%M")}
        (self.out / "study.json").write_text(json.dumps(record, indent=2))
        print(json.dumps(record, indent=2))
        self._style.close()
        return record



def widths(text: str) -> tuple[int, ...]:
    """``"16,16"`` -> ``(16, 16)`` (configurations keep widths as the command line writes them)."""
    return tuple(int(t) for t in str(text).split(",") if t.strip())
