"""The server's side: run the commands handed to it one at a time, each with its own directory, umask and streams.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import time
from pathlib import Path

from .environment import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    NO_SOCKET,
    PACKAGE,
    STALE_CHECK_S,
    identity,
    socket_path,
)
from .protocol import Lines, request, send

__all__ = ["serve"]


class _Stream(io.TextIOBase):
    """A text stream whose writes go to the client as ``{"out": ...}`` or ``{"err": ...}``."""

    def __init__(self, conn, kind: str, tty: bool, lock) -> None:
        self._conn, self._kind, self._tty, self._lock = conn, kind, tty, lock
        self.gone = False

    @property
    def encoding(self) -> str:
        return "utf-8"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self._tty

    def write(self, s: str) -> int:
        if s and not self.gone:
            try:
                with self._lock:
                    send(self._conn, {self._kind: s})
            except OSError:  # the client is gone; the watcher interrupts the command
                self.gone = True
        return len(s)


class _NoDirectory(Exception):
    """The client's working directory cannot be entered (removed, or no permission)."""


class _Server:
    def __init__(self, path: Path, idle_s: float, log, started_as: dict | None = None, run=None) -> None:
        import queue
        import threading

        self.path, self.idle_s, self.log, self.run_command = path, idle_s, log, run
        self.environ = dict(os.environ)  # as started: what its socket's name was computed from
        self.started_as = identity(self.environ) if started_as is None else started_as
        self.jobs: queue.Queue = queue.Queue()
        self.lock = threading.Lock()
        self.busy = False           # a command was taken (queued or executing)
        self.running = 0            # the number of the command executing in the main thread (0: none)
        self.stopping = False
        self.served = 0
        self.started = time.time()

    # -- the acceptor thread: answers control messages at once, takes one command at a time
    def accept_forever(self, listener) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.settimeout(5.0)  # a client that connects and says nothing must not hold up the others
            lines = Lines(conn)
            msg = lines.next()
            conn.settimeout(None)
            if msg is None:
                conn.close()
            elif msg.get("status"):
                with conn, contextlib.suppress(OSError):
                    send(conn, {"pid": os.getpid(), "started": self.started, "served": self.served,
                                 "busy": self.busy, "idle_s": self.idle_s, "socket": str(self.path)})
            elif msg.get("stop"):
                with self.lock:
                    self.stopping = True
                with conn, contextlib.suppress(OSError):
                    send(conn, {"stopping": True, "pid": os.getpid()})
                self.jobs.put(None)
            elif "argv" in msg:
                with self.lock:
                    take = not self.busy and not self.stopping
                    self.busy = self.busy or take
                if take:
                    try:
                        send(conn, {"accepted": True})
                    except OSError:  # the client has gone already
                        with self.lock:
                            self.busy = False
                        conn.close()
                        continue
                    self.jobs.put((conn, lines, msg))
                else:
                    with conn, contextlib.suppress(OSError):
                        send(conn, {"busy": True})
            else:
                conn.close()

    # -- the main thread: runs the commands
    def stale(self) -> bool:
        """Whether the Python, the landscape sources or the libraries it was started with have
        changed on disk since: then no command can reach it (their fingerprint differs)."""
        now = identity(self.environ)
        return any(now[k] != self.started_as.get(k) for k in ("python", "sources", "libraries"))

    def loop(self) -> None:
        import queue

        last = time.monotonic()  # the end of the last command (or the start)
        while not self.stopping:
            left = last + self.idle_s - time.monotonic() if self.idle_s else STALE_CHECK_S
            try:
                job = self.jobs.get(timeout=max(0.05, min(left, STALE_CHECK_S)))
            except queue.Empty:
                if self.idle_s and time.monotonic() - last >= self.idle_s:
                    why = f"no command for {self.idle_s:g} s"
                elif self.stale():
                    why = "the landscape sources or the libraries it runs have changed (no command can reach it)"
                else:
                    continue
                with self.lock:
                    if self.busy:  # a command was taken as the time ran out: it runs, then we wait again
                        continue
                    self.stopping = True  # from here on every command is refused (runs in its own process)
                print(f"landscape serve: {why}; leaving", file=self.log, flush=True)
                return
            if job is None:
                print("landscape serve: asked to stop; leaving", file=self.log, flush=True)
                return
            try:
                self.run(*job)
            finally:
                with self.lock:
                    self.busy = False
                last = time.monotonic()
        print("landscape serve: asked to stop; leaving", file=self.log, flush=True)

    def run(self, conn, lines: Lines, msg: dict) -> None:
        import socket
        import threading
        import traceback
        import warnings

        out_lock = threading.Lock()
        tty_out, tty_err = (list(msg.get("tty", [])) + [False, False])[:2]
        out, err = _Stream(conn, "out", tty_out, out_lock), _Stream(conn, "err", tty_err, out_lock)
        job = self.served + 1
        watcher = threading.Thread(target=self.watch, args=(lines, job), daemon=True)
        status = EXIT_INTERNAL
        before = set(sys.modules)
        mask = os.umask(int(msg.get("umask", 0o022)))
        t0 = time.perf_counter()
        try:  # at most one KeyboardInterrupt comes from the watcher (it fires once, only while running)
            try:
                try:
                    os.chdir(msg["cwd"])
                except OSError as exc:
                    raise _NoDirectory(f"landscape: error: cannot enter {msg['cwd']}: {exc.strerror}") from None
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                        _columns_env(msg.get("columns")), warnings.catch_warnings():
                    with self.lock:
                        self.running = job
                    watcher.start()
                    status = self.run_command(list(msg["argv"]))
            except KeyboardInterrupt:
                status = EXIT_INTERRUPTED
            except _NoDirectory as exc:
                with contextlib.suppress(OSError):
                    send(conn, {"err": f"{exc}\n"})
                status = 2
            except BaseException:  # noqa: BLE001 - the server outlives any one command
                with contextlib.suppress(OSError):
                    send(conn, {"err": traceback.format_exc()})
                status = EXIT_INTERNAL
            finally:
                while True:  # stop the watcher firing, and take back a cancel that came too late
                    try:
                        with self.lock:
                            self.running = 0
                            _raise_in_main(None)
                        break
                    except KeyboardInterrupt:  # it fired as the command ended
                        status = EXIT_INTERRUPTED
        except KeyboardInterrupt:
            status = EXIT_INTERRUPTED
        os.chdir("/")  # between commands the server holds no directory of anyone's
        os.umask(mask)
        _forget_user_modules(before)
        with contextlib.suppress(OSError):
            send(conn, {"exit": status})
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_RDWR)  # wakes the watcher's read (closing alone would not)
        conn.close()
        if watcher.is_alive():
            watcher.join(timeout=5)
        self.served = job
        print(f"landscape serve: [{time.strftime('%H:%M:%S')}] exit {status} in "
              f"{time.perf_counter() - t0:.2f} s: landscape {' '.join(msg['argv'])}", file=self.log, flush=True)

    def watch(self, lines: Lines, job: int) -> None:
        """Interrupt command ``job``, as Ctrl-C would, when its client cancels it or goes away."""
        while True:
            msg = lines.next()
            if msg is not None and "cancel" not in msg:
                continue
            with self.lock:
                if self.running == job:
                    _raise_in_main(KeyboardInterrupt)
            return


def _raise_in_main(exc) -> None:
    """Raise ``exc`` in the main thread at its next Python instruction (``None``: take back one
    not raised yet) — CPython's ``PyThreadState_SetAsyncExc``, which, unlike a signal, can be
    taken back when the command has already finished."""
    import ctypes
    import threading

    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(threading.main_thread().ident),
                                               None if exc is None else ctypes.py_object(exc))


@contextlib.contextmanager
def _columns_env(columns):
    """The client's terminal width for the command's progress bars (``$COLUMNS``)."""
    old = os.environ.get("COLUMNS")
    if columns:
        os.environ["COLUMNS"] = str(int(columns))
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old


def _forget_user_modules(before: set[str]) -> None:
    """Drop modules a command imported from outside the installed environment (a user's own
    code, which may be edited before the next command); the library's stay."""
    roots = tuple({os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)})
    package = os.path.realpath(PACKAGE)
    for name in set(sys.modules) - before:
        mod = sys.modules.get(name)
        where = getattr(mod, "__file__", None)
        if not where:
            continue
        real = os.path.realpath(where)
        if not real.startswith(roots) and not real.startswith(package):
            sys.modules.pop(name, None)


def _warm_up() -> None:
    """Import what commands need, so that the first routed command does not pay for it."""
    import jax  # noqa: F401
    import matplotlib.backends.backend_agg  # noqa: F401

    from ... import analyses, figures, models, training  # noqa: F401
    from ...curvature import ensemble, spectra  # noqa: F401
    from ...geometry import directions, surface  # noqa: F401


def serve(idle_s: float = 1800.0, log=None, *, run=None) -> int:
    """Serve this environment's commands until stopped, interrupted or idle for ``idle_s`` seconds
    — or, checked every :data:`STALE_CHECK_S` seconds while idle, until the Python, the
    landscape sources or the libraries it was started with change (an edit, an upgrade).

    Args:
      idle_s: leave after this many seconds without a command (0: never for that reason).
      log: where to write one line per command (default ``sys.stderr``).
      run: ``run(argv) -> exit status``, what runs one command in this process (the command line
        passes :func:`landscape.cli.run_resident`; the server itself knows no command).

    Returns:
      0 when it left, 2 when it could not start (another server holds the socket, no private
      directory for it).

    Examples:
      >>> import io
      >>> from landscape.cli import serve as server
      >>> log = io.StringIO()
      >>> server.serve(idle_s=0.5, log=log)               # nobody sends a command: it leaves
      0
      >>> log.getvalue().splitlines()[-1]
      'landscape serve: no command for 0.5 s; leaving'
    """
    import signal
    import socket
    import threading

    from ...core import files
    from ...core.errors import ConfigError

    log = log or sys.stderr
    path = socket_path()
    if path is None:
        print(f"landscape serve: error: {NO_SOCKET}", file=log)
        return 2
    try:
        with files.exclusive(str(path) + ".lock", "another landscape server is starting for this environment"):
            answer = request({"status": True}, path)
            if answer is not None:
                print(f"landscape serve: error: a server for this environment is already running (pid "
                      f"{answer.get('pid')}, {path})", file=log)
                return 2
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # a killed server's socket
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(str(path))
            listener.listen(8)
    except ConfigError as exc:
        print(f"landscape serve: error: {exc}", file=log)
        return 2
    ours = path.stat().st_ino
    described = path.with_suffix(".json")  # what this server serves, for `serve --status` elsewhere
    started_as = identity()
    files.atomic_write_json(described, {"pid": os.getpid(), "identity": started_as})
    os.chdir("/")
    _warm_up()
    server = _Server(path, idle_s, log, started_as, run)
    print(f"landscape serve: ready (pid {os.getpid()}, socket {path}"
          + (f", leaves after {idle_s:g} s idle)" if idle_s else ")"), file=log, flush=True)
    threading.Thread(target=server.accept_forever, args=(listener,), daemon=True).start()

    def on_term(signum, frame):  # `kill`: finish as Ctrl-C would (a running command is interrupted)
        server.stopping = True
        raise KeyboardInterrupt

    old_term = signal.signal(signal.SIGTERM, on_term)
    try:
        server.loop()
    except KeyboardInterrupt:
        print("landscape serve: interrupted; leaving", file=log, flush=True)
    finally:
        server.stopping = True
        signal.signal(signal.SIGTERM, old_term)
        with contextlib.suppress(OSError):
            if path.stat().st_ino == ours:
                path.unlink()
        with contextlib.suppress(OSError, ValueError):
            if json.loads(described.read_text()).get("pid") == os.getpid():
                described.unlink()
        listener.close()
    return 0
