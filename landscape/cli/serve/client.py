"""The ``landscape`` script's side: hand a command to this environment's server and relay its output, or run it here.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path

from .environment import (
    AUTO,
    AUTO_IDLE_S,
    ENV,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    LOCAL_COMMANDS,
    MULTI_PROCESS_ENV,
    OFF,
    socket_path,
)
from .protocol import Lines, connect, request, send

__all__ = ["route", "autostart_target", "start_in_background"]


def _mode() -> str:
    """``$LANDSCAPE_SERVE`` as compared: stripped, lower case (``""`` when unset)."""
    return os.environ.get(ENV, "").strip().lower()


def _routable(argv: list[str], path: Path | None = None) -> Path | None:
    """The socket a server for ``landscape ARGV`` would listen on, or ``None`` where the command
    must run in its own process (``LANDSCAPE_SERVE=0``, a multi-process run, a usage error,
    ``--help``, ``serve`` itself, ``--no-compile-cache``, no private socket directory)."""
    if _mode() in OFF:
        return None
    if any(os.environ.get(k) for k in MULTI_PROCESS_ENV):
        return None
    path = path or socket_path()
    if path is None:
        return None
    from ..parser import UsageError, build_parser

    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            args = build_parser().parse_args(argv)
    except (UsageError, SystemExit):  # a usage error, --help, --version: the local run prints them
        return None
    if args.command is None or args.command in LOCAL_COMMANDS:
        return None
    if getattr(args, "no_compile_cache", False) or any(
            getattr(args, k, None) is not None for k in ("coordinator", "num_processes", "process_id")):
        return None
    return path


def route(argv: list[str]) -> int | None:
    """Run ``landscape ARGV`` in this environment's server, if one is running and may run it.

    Args:
      argv: the command line after ``landscape``.

    Returns:
      the command's exit status after relaying its output, or ``None``: run it here (no
      server, a busy one, a command that must run in its own process, a usage error for the
      local parser to report).

    Examples:
      >>> import os
      >>> from landscape.cli import serve as server
      >>> os.environ["LANDSCAPE_SERVE"] = "0"            # never hand commands to a server
      >>> server.route(["info", "runs/demo"]) is None     # None: run it in this process
      True
      >>> server.route(["serve", "--status"]) is None     # and never `serve` itself
      True
      >>> del os.environ["LANDSCAPE_SERVE"]
    """
    if _mode() in OFF:
        return None
    path = socket_path()
    if path is None or not path.exists():  # the common case, decided before the parser is imported
        return None
    path = _routable(argv, path)
    conn = connect(path) if path is not None else None
    if conn is None:  # a server that was killed left its socket behind
        return None
    mask = os.umask(0)
    os.umask(mask)
    tty = [_isatty(sys.stdout), _isatty(sys.stderr)]
    with conn:
        send(conn, {"argv": list(argv), "cwd": os.getcwd(), "umask": mask, "tty": tty,
                     "columns": _columns(), "pid": os.getpid()})
        return _relay(conn)


def autostart_target(argv: list[str]) -> dict | None:
    """With ``LANDSCAPE_SERVE=auto``: what :func:`start_in_background` needs to start a server
    for ``landscape ARGV`` once it has run in its own process.  Taken *before* the command runs,
    so that the server gets the environment the command was typed in.

    Args:
      argv: the command line after ``landscape``.

    Returns:
      ``{"socket": Path, "env": {…}}``, or ``None``: ``LANDSCAPE_SERVE`` is not ``auto``, or the
      command must run in its own process (:func:`route`'s rules).

    Examples:
      >>> import os
      >>> from landscape.cli import serve as server
      >>> os.environ["LANDSCAPE_SERVE"] = "auto"
      >>> server.autostart_target(["serve", "--status"]) is None     # never for `serve` itself
      True
      >>> target = server.autostart_target(["info", "runs/demo"])
      >>> target["socket"] == server.socket_path() and target["env"]["LANDSCAPE_SERVE"] == "auto"
      True
      >>> del os.environ["LANDSCAPE_SERVE"]
    """
    if _mode() != AUTO:
        return None
    path = _routable(argv)
    return None if path is None else {"socket": path, "env": dict(os.environ)}


def start_in_background(target: dict | None, idle_s: float = AUTO_IDLE_S) -> int | None:
    """Start ``landscape serve --idle IDLE_S`` in the background for :func:`autostart_target`'s
    target, unless a server answers there already; return at once (the server imports and
    warms up on its own, its output in the socket's ``.log``).  Called after a command has run
    in its own process, so that the two never hold the same accelerator at once.

    Args:
      target: :func:`autostart_target`'s answer (``None``: do nothing).
      idle_s: the server leaves after this many seconds without a command.

    Returns:
      the new server's process id, or ``None`` when none was started.

    Examples:
      >>> from landscape.cli import serve as server
      >>> server.start_in_background(None) is None
      True
    """
    if target is None:
        return None
    path = Path(target["socket"])
    if request({"status": True}, path) is not None:
        return None
    with contextlib.suppress(OSError):
        return spawn(idle_s, path.with_suffix(".log"), env=target["env"], cwd="/").pid
    return None


def spawn(idle_s: float, log_path: Path, *, env: dict | None = None, cwd: str | None = None):
    """``landscape serve --idle IDLE_S`` in a session of its own (no terminal's Ctrl-C or hang-up
    reaches it), its output appended to ``log_path``; returns the process at once."""
    import subprocess

    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "landscape.cli", "serve", "--idle", f"{idle_s:g}"],
                                env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True)


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _columns() -> int:
    import shutil

    return shutil.get_terminal_size().columns


class _Leave(Exception):
    """Raised by the client's handler of SIGTERM / SIGHUP: leave now with this status."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _relay(conn) -> int | None:
    """Copy the server's output to ours until its exit status.

    Ctrl-C cancels the command there and waits for it to stop (its "interrupted" line comes
    back); a second Ctrl-C stops waiting.  SIGTERM or SIGHUP cancel it and leave at once, as a
    killed command would.  The server interrupts the command as soon as it runs Python again.
    """
    import signal

    cancelled = []

    def cancel(signum, _frame):
        with contextlib.suppress(OSError):
            send(conn, {"cancel": signum})
        if signum != signal.SIGINT:
            raise _Leave(128 + signum)
        if cancelled:
            raise KeyboardInterrupt
        cancelled.append(signum)

    old = {s: signal.signal(s, cancel) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    lines = Lines(conn)
    try:
        conn.settimeout(30.0)  # a server that does not answer at once is hung: run the command here
        msg = lines.next()
        conn.settimeout(None)
        if msg is None or msg.get("busy"):
            return None
        while msg is not None:
            if "out" in msg:
                sys.stdout.write(msg["out"])
                sys.stdout.flush()
            elif "err" in msg:
                sys.stderr.write(msg["err"])
                sys.stderr.flush()
            elif "exit" in msg:
                return int(msg["exit"])
            msg = lines.next()
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except _Leave as leave:
        return leave.status
    except BrokenPipeError:  # our output piped into `head` and the like: as the command itself does
        return 0
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    print("landscape: error: the landscape server stopped during the command (see its log); files on disk are "
          "complete old or new versions — run the command again", file=sys.stderr)
    return EXIT_INTERNAL
