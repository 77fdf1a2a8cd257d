"""A resident ``landscape`` process: repeated commands without start-up or re-tracing.

Every ``landscape`` command started from a shell pays a fixed cost before it computes anything:
importing JAX, Flax, optax and matplotlib, then tracing and lowering its programs again (JAX's
persistent compilation cache keeps compiled programs, not traces).  On small runs that is most
of the wall time.  ``landscape serve`` starts one process that has paid it: while it runs, the
``landscape`` script hands each command (its arguments, working directory and umask) to it over
a Unix socket and relays the command's output and exit status, so that the command runs with
JAX imported and its programs already traced.

Correctness comes first; a command runs in its own process, exactly as without a server, when

* no server was started for *this environment*: the socket's name holds a fingerprint of the
  Python executable, the environment variables (all of them but the volatile ones in
  :data:`VOLATILE`), the landscape sources and the installed JAX, Flax, optax, NumPy and
  matplotlib; edit a source file, upgrade a library or change ``XLA_FLAGS`` and the old
  server is no longer found;
* the server is busy with another command (commands never wait for each other);
* the command joins a multi-process run, turns the compilation cache off for itself, or is
  ``serve`` itself; or ``$LANDSCAPE_SERVE`` is ``0``/``off``.

Inside the server each command runs in the main thread, one at a time, with its own working
directory, umask, warning filters and output streams; Python modules it imported from outside
the installed environment (a user's own model code) are forgotten afterwards, so an edited
model file is read again.  Ctrl-C (or a kill) of the waiting ``landscape`` command interrupts
the command in the server as Ctrl-C would interrupt it locally: the files on disk are complete
old or new versions.  The server leaves after ``--idle`` seconds without a command, and as
soon as it is idle once the Python, the landscape sources or the libraries it was started with
change on disk (no command can reach it then: their fingerprint differs).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import time
from pathlib import Path

# The `landscape` script imports this module on every command, to look for a server: what only
# a server, or a command handed to one, needs (socket, threading, queue, signal …) is imported
# where it is used.

__all__ = ["ENV", "VOLATILE", "identity", "fingerprint", "differences", "socket_path", "route", "request", "serve",
           "start_detached", "stop", "others", "autostart_target", "start_in_background"]

#: ``$LANDSCAPE_SERVE``: ``0``, ``off``, ``false`` or ``no`` — never hand commands to a server;
#: ``auto`` — also start one (in the background, once a command has run in its own process).
ENV = "LANDSCAPE_SERVE"
_OFF = ("0", "off", "false", "no")
_AUTO = "auto"
#: How long a server started by ``LANDSCAPE_SERVE=auto`` waits for a command before it leaves.
AUTO_IDLE_S = 1800.0

#: Environment variables that differ between two terminals of one user and change no result:
#: left out of the fingerprint.  Every other variable must match the server's exactly.
VOLATILE = frozenset({
    "PWD", "OLDPWD", "SHLVL", "_", "COLUMNS", "LINES", "PS1", "PS2", "PS3", "PS4", "PROMPT_COMMAND",
    "TERM_SESSION_ID", "WINDOWID", "TMUX_PANE", "STY", "WINDOW", "SSH_TTY", "SSH_CLIENT", "SSH_CONNECTION",
    "SSH_AUTH_SOCK", "GPG_TTY", "XDG_SESSION_ID", "XDG_VTNR", "PYTEST_CURRENT_TEST", ENV,
    # terminals' own window and session names
    "ITERM_SESSION_ID", "KITTY_WINDOW_ID", "KITTY_PID", "WEZTERM_PANE", "ALACRITTY_WINDOW_ID",
    "GNOME_TERMINAL_SCREEN", "KONSOLE_DBUS_WINDOW", "KONSOLE_DBUS_SESSION", "SHELL_SESSION_ID",
    "SECURITYSESSIONID", "STARSHIP_SESSION_KEY", "VSCODE_GIT_IPC_HANDLE", "JPY_PARENT_PID",
})

#: Libraries whose installed files take part in the fingerprint (an upgrade makes a new one).
_LIBRARIES = ("jax", "jaxlib", "flax", "optax", "numpy", "matplotlib", "tensorflow_datasets")

#: Commands whose options make them run in their own process.
_LOCAL_COMMANDS = ("serve",)
_MULTI_PROCESS_ENV = ("LANDSCAPE_COORDINATOR", "JAX_COORDINATOR_ADDRESS", "LANDSCAPE_NUM_PROCESSES",
                      "JAX_NUM_PROCESSES")

EXIT_INTERNAL = 1
#: How often an idle server checks that the sources and libraries it runs are still the installed ones.
STALE_CHECK_S = 10.0
EXIT_INTERRUPTED = 130
NO_SOCKET = ("no private directory with a short path for the server's socket ($XDG_RUNTIME_DIR, or a "
             "landscape-UID directory in the temporary directory, that only you can enter)")


# ---------------------------------------------------------------------- where the server is


def _digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def identity(environ: dict[str, str] | None = None) -> dict:
    """What a command must share with a server to run in it, part by part (digests, no values).

    Args:
      environ: the environment (default ``os.environ``).

    Returns:
      ``{"python": …, "env": {NAME: digest of its value}, "sources": …, "libraries": …}``: the
      Python executable and version; every environment variable but :data:`VOLATILE`; the
      size, modification time and inode of every landscape source file; those of the
      installed JAX, jaxlib, Flax, optax, NumPy, matplotlib and tensorflow-datasets (their
      ``__init__.py`` and directory).  Nothing is imported.  :func:`fingerprint` hashes it; a
      server stores it beside its socket, so that ``landscape serve --status`` can say what
      differs.

    Examples:
      >>> from landscape.cli import server
      >>> a = server.identity({"HOME": "/h", "XLA_FLAGS": "--x", "PWD": "/a"})
      >>> sorted(a["env"])                                  # PWD is volatile: left out
      ['HOME', 'XLA_FLAGS']
      >>> server.differences(a, server.identity({"HOME": "/h", "PWD": "/b"}))
      ['XLA_FLAGS']
    """
    import importlib.util

    env = os.environ if environ is None else environ
    here = Path(__file__).resolve().parent.parent

    def stat(path: Path) -> str:
        st = path.stat()
        return f"{path}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"

    libraries = []
    for name in _LIBRARIES:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        origin = Path(spec.origin) if spec is not None and spec.origin else None
        libraries.append(f"{stat(origin)};{stat(origin.parent)}" if origin else f"{name}:absent")
    return {"python": _digest(f"{sys.executable}\0{sys.version}"),
            "env": {k: _digest(v) for k, v in sorted(env.items()) if k not in VOLATILE},
            "sources": _digest("\0".join(stat(p) for p in sorted(here.rglob("*.py")))),
            "libraries": _digest("\0".join(libraries))}


def fingerprint(environ: dict[str, str] | None = None) -> str:
    """:func:`identity` as 16 hex digits: the name of this environment's server's socket.

    Args:
      environ: the environment (default ``os.environ``).

    Returns:
      a SHA-256 prefix of :func:`identity`.

    Examples:
      >>> from landscape.cli import server
      >>> a = server.fingerprint({"HOME": "/h", "PWD": "/a"})
      >>> a == server.fingerprint({"HOME": "/h", "PWD": "/b"})       # the working directory is sent
      True
      >>> a == server.fingerprint({"HOME": "/h", "XLA_FLAGS": "--x"})  # anything else must match
      False
    """
    return _digest(json.dumps(identity(environ), sort_keys=True))


def differences(server_identity: dict, here: dict) -> list[str]:
    """What keeps a command from a server: the parts of two :func:`identity` values that differ.

    Args:
      server_identity: the server's identity.
      here: the command's.

    Returns:
      names: environment variables set differently or on one side only, ``"the Python
      executable"``, ``"the landscape sources"``, ``"the installed libraries"``.

    Examples:
      >>> from landscape.cli import server
      >>> server.differences(server.identity({"A": "1"}), server.identity({"A": "2", "B": "3"}))
      ['A', 'B']
    """
    a, b = server_identity.get("env", {}), here.get("env", {})
    out = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    for part, what in (("python", "the Python executable"), ("sources", "the landscape sources"),
                       ("libraries", "the installed libraries")):
        if server_identity.get(part) != here.get(part):
            out.append(what)
    return out


def _private(where: Path, create: bool) -> bool:
    """Whether ``where`` is a directory of this user's that nobody else may enter."""
    try:
        if create:
            where.mkdir(mode=0o700, exist_ok=True)
        st = where.stat()
    except OSError:
        return False
    return os.path.isdir(where) and st.st_uid == os.getuid() and not st.st_mode & 0o077


def socket_path(fp: str | None = None) -> Path | None:
    """The socket of the server for this environment (``fp``: its :func:`fingerprint`).

    Returns:
      ``DIR/landscape-<fingerprint>.sock``, DIR ``$XDG_RUNTIME_DIR`` or else
      ``landscape-UID`` in the temporary directory — the first that only this user can enter
      and whose socket path fits a Unix socket's 107 bytes — or ``None`` where neither does
      (and on a system that is not POSIX: there every command runs in its own process).

    Examples:
      >>> from landscape.cli import server
      >>> server.socket_path("0123456789abcdef").name
      'landscape-0123456789abcdef.sock'
    """
    import tempfile

    if os.name != "posix" or not hasattr(os, "getuid"):  # Unix sockets and user ids: POSIX only
        return None
    name = f"landscape-{fp or fingerprint()}.sock"
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    for where, create in ((Path(runtime), False) if runtime else (None, False),
                          (Path(tempfile.gettempdir()) / f"landscape-{os.getuid()}", True)):
        if where is not None and len(os.fsencode(where / name)) < 100 and _private(where, create):
            return where / name
    return None


# ---------------------------------------------------------------------- messages: one JSON object per line


def _send(conn, msg: dict) -> None:
    conn.sendall((json.dumps(msg) + "\n").encode())


class _Lines:
    """The JSON messages arriving on a socket, one per line; ``None`` at end of stream."""

    def __init__(self, conn) -> None:
        self._conn = conn
        self._buf = bytearray()

    def next(self) -> dict | None:
        while b"\n" not in self._buf:
            try:
                chunk = self._conn.recv(1 << 16)
            except OSError:
                return None
            if not chunk:
                return None
            self._buf += chunk
        line, _, rest = bytes(self._buf).partition(b"\n")
        self._buf = bytearray(rest)
        try:
            msg = json.loads(line)
        except ValueError:
            return None
        return msg if isinstance(msg, dict) else None


def _connect(path: Path, timeout: float | None = 2.0):
    import socket

    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(timeout)
    try:
        conn.connect(str(path))
    except OSError:
        conn.close()
        return None
    conn.settimeout(None)
    return conn


def request(message: dict, path: Path | None = None) -> dict | None:
    """Send one control message (``{"status": true}`` or ``{"stop": true}``) to the server.

    Args:
      message: the message.
      path: the socket (default: :func:`socket_path` of this environment).

    Returns:
      the server's answer, or ``None`` when no server answers there.

    Examples:
      >>> from pathlib import Path
      >>> from landscape.cli import server
      >>> server.request({"status": True}, Path("/nonexistent/landscape.sock")) is None   # nobody answers
      True
    """
    path = path or socket_path()
    conn = _connect(path) if path is not None and path.exists() else None
    if conn is None:
        return None
    with conn:
        conn.settimeout(30.0)  # a hung server answers nothing: say so rather than wait forever
        try:
            _send(conn, message)
        except OSError:
            return None
        return _Lines(conn).next()


# ---------------------------------------------------------------------- the client side


def _mode() -> str:
    """``$LANDSCAPE_SERVE`` as compared: stripped, lower case (``""`` when unset)."""
    return os.environ.get(ENV, "").strip().lower()


def _routable(argv: list[str], path: Path | None = None) -> Path | None:
    """The socket a server for ``landscape ARGV`` would listen on, or ``None`` where the command
    must run in its own process (``LANDSCAPE_SERVE=0``, a multi-process run, a usage error,
    ``--help``, ``serve`` itself, ``--no-compile-cache``, no private socket directory)."""
    if _mode() in _OFF:
        return None
    if any(os.environ.get(k) for k in _MULTI_PROCESS_ENV):
        return None
    path = path or socket_path()
    if path is None:
        return None
    from .parser import UsageError, build_parser

    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            args = build_parser().parse_args(argv)
    except (UsageError, SystemExit):  # a usage error, --help, --version: the local run prints them
        return None
    if args.command is None or args.command in _LOCAL_COMMANDS:
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
      >>> from landscape.cli import server
      >>> os.environ["LANDSCAPE_SERVE"] = "0"            # never hand commands to a server
      >>> server.route(["info", "runs/demo"]) is None     # None: run it in this process
      True
      >>> server.route(["serve", "--status"]) is None     # and never `serve` itself
      True
      >>> del os.environ["LANDSCAPE_SERVE"]
    """
    if _mode() in _OFF:
        return None
    path = socket_path()
    if path is None or not path.exists():  # the common case, decided before the parser is imported
        return None
    path = _routable(argv, path)
    conn = _connect(path) if path is not None else None
    if conn is None:  # a server that was killed left its socket behind
        return None
    mask = os.umask(0)
    os.umask(mask)
    tty = [_isatty(sys.stdout), _isatty(sys.stderr)]
    with conn:
        _send(conn, {"argv": list(argv), "cwd": os.getcwd(), "umask": mask, "tty": tty,
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
      >>> from landscape.cli import server
      >>> os.environ["LANDSCAPE_SERVE"] = "auto"
      >>> server.autostart_target(["serve", "--status"]) is None     # never for `serve` itself
      True
      >>> target = server.autostart_target(["info", "runs/demo"])
      >>> target["socket"] == server.socket_path() and target["env"]["LANDSCAPE_SERVE"] == "auto"
      True
      >>> del os.environ["LANDSCAPE_SERVE"]
    """
    if _mode() != _AUTO:
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
      >>> from landscape.cli import server
      >>> server.start_in_background(None) is None
      True
    """
    if target is None:
        return None
    path = Path(target["socket"])
    if request({"status": True}, path) is not None:
        return None
    with contextlib.suppress(OSError):
        return _spawn(idle_s, path.with_suffix(".log"), env=target["env"], cwd="/").pid
    return None


def _spawn(idle_s: float, log_path: Path, *, env: dict | None = None, cwd: str | None = None):
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
            _send(conn, {"cancel": signum})
        if signum != signal.SIGINT:
            raise _Leave(128 + signum)
        if cancelled:
            raise KeyboardInterrupt
        cancelled.append(signum)

    old = {s: signal.signal(s, cancel) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    lines = _Lines(conn)
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


# ---------------------------------------------------------------------- the server side


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
                    _send(self._conn, {self._kind: s})
            except OSError:  # the client is gone; the watcher interrupts the command
                self.gone = True
        return len(s)


class _NoDirectory(Exception):
    """The client's working directory cannot be entered (removed, or no permission)."""


class _Server:
    def __init__(self, path: Path, idle_s: float, log, started_as: dict | None = None) -> None:
        import queue
        import threading

        self.path, self.idle_s, self.log = path, idle_s, log
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
            lines = _Lines(conn)
            msg = lines.next()
            conn.settimeout(None)
            if msg is None:
                conn.close()
            elif msg.get("status"):
                with conn, contextlib.suppress(OSError):
                    _send(conn, {"pid": os.getpid(), "started": self.started, "served": self.served,
                                 "busy": self.busy, "idle_s": self.idle_s, "socket": str(self.path)})
            elif msg.get("stop"):
                with self.lock:
                    self.stopping = True
                with conn, contextlib.suppress(OSError):
                    _send(conn, {"stopping": True, "pid": os.getpid()})
                self.jobs.put(None)
            elif "argv" in msg:
                with self.lock:
                    take = not self.busy and not self.stopping
                    self.busy = self.busy or take
                if take:
                    try:
                        _send(conn, {"accepted": True})
                    except OSError:  # the client has gone already
                        with self.lock:
                            self.busy = False
                        conn.close()
                        continue
                    self.jobs.put((conn, lines, msg))
                else:
                    with conn, contextlib.suppress(OSError):
                        _send(conn, {"busy": True})
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

    def run(self, conn, lines: _Lines, msg: dict) -> None:
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
                    status = _execute(list(msg["argv"]))
            except KeyboardInterrupt:
                status = EXIT_INTERRUPTED
            except _NoDirectory as exc:
                with contextlib.suppress(OSError):
                    _send(conn, {"err": f"{exc}\n"})
                status = 2
            except BaseException:  # noqa: BLE001 - the server outlives any one command
                with contextlib.suppress(OSError):
                    _send(conn, {"err": traceback.format_exc()})
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
            _send(conn, {"exit": status})
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_RDWR)  # wakes the watcher's read (closing alone would not)
        conn.close()
        if watcher.is_alive():
            watcher.join(timeout=5)
        self.served = job
        print(f"landscape serve: [{time.strftime('%H:%M:%S')}] exit {status} in "
              f"{time.perf_counter() - t0:.2f} s: landscape {' '.join(msg['argv'])}", file=self.log, flush=True)

    def watch(self, lines: _Lines, job: int) -> None:
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


def _execute(argv: list[str]) -> int:
    from . import run_resident

    return run_resident(argv)


def _forget_user_modules(before: set[str]) -> None:
    """Drop modules a command imported from outside the installed environment (a user's own
    code, which may be edited before the next command); the library's stay."""
    roots = tuple({os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)})
    package = os.path.realpath(Path(__file__).resolve().parent.parent)
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

    from .. import analyses, directions, hessian, models, plot, report, surface, train  # noqa: F401
    import matplotlib.backends.backend_agg  # noqa: F401


def serve(idle_s: float = 1800.0, log=None) -> int:
    """Serve this environment's commands until stopped, interrupted or idle for ``idle_s`` seconds
    — or, checked every :data:`STALE_CHECK_S` seconds while idle, until the Python, the
    landscape sources or the libraries it was started with change (an edit, an upgrade).

    Args:
      idle_s: leave after this many seconds without a command (0: never for that reason).
      log: where to write one line per command (default ``sys.stderr``).

    Returns:
      0 when it left, 2 when it could not start (another server holds the socket, no private
      directory for it).

    Examples:
      >>> import io
      >>> from landscape.cli import server
      >>> log = io.StringIO()
      >>> server.serve(idle_s=0.5, log=log)               # nobody sends a command: it leaves
      0
      >>> log.getvalue().splitlines()[-1]
      'landscape serve: no command for 0.5 s; leaving'
    """
    import signal
    import socket
    import threading

    from .. import files
    from ..errors import ConfigError

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
    server = _Server(path, idle_s, log, started_as)
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


def others(here: dict | None = None) -> list[dict]:
    """The running servers of *other* environments of this user, and why a command here does
    not reach them.

    Args:
      here: this environment's :func:`identity` (default: computed).

    Returns:
      ``[{"pid": …, "socket": …, "differs": [...]}]``, ``differs`` as :func:`differences` says.

    Examples:
      >>> from landscape.cli import server
      >>> all(set(o) == {"pid", "socket", "differs"} for o in server.others())
      True
    """
    path = socket_path()
    if path is None:
        return []
    here = identity() if here is None else here
    out = []
    for described in sorted(path.parent.glob("landscape-*.json")):
        sock = described.with_suffix(".sock")
        if sock == path:
            continue
        try:
            info = json.loads(described.read_text())
        except (OSError, ValueError):
            continue
        answer = request({"status": True}, sock)
        if answer is not None and isinstance(info, dict):
            out.append({"pid": answer.get("pid"), "socket": str(sock),
                        "differs": differences(info.get("identity", {}), here)})
    return out


def start_detached(idle_s: float = 1800.0, log_path: Path | None = None,
                   timeout_s: float = 120.0) -> tuple[dict, bool]:
    """Make sure this environment's server runs: start ``landscape serve`` in the background
    (its own session, output to ``log_path``) unless one already answers, and wait until it
    answers.

    Args:
      idle_s: the new server leaves after this many seconds without a command (0: never); a
        server that already runs keeps its own.
      log_path: the new server's output (default: its socket's path with ``.log``).
      timeout_s: how long to wait for the new server's first answer.

    Returns:
      ``(status, started)``: the server's status message (``pid``, ``socket`` …) and whether
      this call started it (``False``: one was running, or another call started it meanwhile).

    Raises:
      ConfigError: no private directory for the socket; or the new server left or did not
        answer within ``timeout_s`` (its log says why).

    Examples:
      >>> import tempfile
      >>> from pathlib import Path
      >>> from landscape.cli import server
      >>> answer, started = server.start_detached(60, Path(tempfile.mkdtemp()) / "serve.log")
      >>> server.start_detached(60)[0]["pid"] == answer["pid"]      # it runs: nothing is started
      True
      >>> server.stop()[0]["pid"] == answer["pid"]
      True
    """
    from ..errors import ConfigError

    path = socket_path()
    if path is None:
        raise ConfigError(NO_SOCKET)
    answer = request({"status": True}, path)
    if answer is not None:
        return answer, False
    log_path = log_path or path.with_suffix(".log")
    proc = _spawn(idle_s, log_path)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answer = request({"status": True}, path)
        if answer is not None and answer.get("pid") == proc.pid:
            return answer, True
        if proc.poll() is not None:
            if answer is not None:  # another `serve` won the race: that one serves
                return answer, False
            raise ConfigError(f"the server left at once (exit {proc.returncode}); see {log_path}")
        time.sleep(0.1)
    raise ConfigError(f"the server did not answer within {timeout_s:g} s; see {log_path}")


def stop(path: Path | None = None, timeout_s: float = 600.0) -> tuple[dict, bool] | None:
    """Ask a server to leave (after the command it is running) and wait until it has.

    Args:
      path: its socket (default: this environment's, :func:`socket_path`).
      timeout_s: how long to wait for it to stop answering.

    Returns:
      ``None`` when no server answers there; else ``(status, stopped)``: the status it
      answered with (``pid`` …) and whether it has left within ``timeout_s`` (``False``: it is
      still finishing its current command, and leaves after it).

    Examples:
      >>> from pathlib import Path
      >>> from landscape.cli import server
      >>> server.stop(Path("/nonexistent/landscape.sock")) is None      # nobody answers
      True
    """
    path = path or socket_path()
    answer = request({"stop": True}, path) if path is not None else None
    if answer is None:
        return None
    path = Path(answer.get("socket") or path)
    deadline = time.monotonic() + timeout_s
    while request({"status": True}, path) is not None:
        if time.monotonic() >= deadline:
            return answer, False
        time.sleep(0.1)
    return answer, True
