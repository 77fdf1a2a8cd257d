"""Which server may run a command: the environment's identity and fingerprint, and where its socket is.

A server serves only commands of its own environment: the socket's name holds a fingerprint of
the Python executable, the environment variables (all but the volatile ones in
:data:`VOLATILE`), the landscape sources and the installed libraries.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

# The `landscape` script imports this module on every command, to look for a server: what only
# a server, or a command handed to one, needs (socket, threading, queue, signal …) is imported
# where it is used.

__all__ = ["ENV", "VOLATILE", "identity", "fingerprint", "differences", "socket_path"]

#: ``$LANDSCAPE_SERVE``: ``0``, ``off``, ``false`` or ``no`` — never hand commands to a server;
#: ``auto`` — also start one (in the background, once a command has run in its own process).
ENV = "LANDSCAPE_SERVE"
OFF = ("0", "off", "false", "no")
AUTO = "auto"
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
LOCAL_COMMANDS = ("serve",)
MULTI_PROCESS_ENV = ("LANDSCAPE_COORDINATOR", "JAX_COORDINATOR_ADDRESS", "LANDSCAPE_NUM_PROCESSES",
                      "JAX_NUM_PROCESSES")

EXIT_INTERNAL = 1
#: The landscape package's own directory (this file is ``landscape/cli/serve/environment.py``):
#: every source file under it is part of a server's identity, and its modules stay loaded.
PACKAGE = Path(__file__).resolve().parents[2]

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
      >>> from landscape.cli import serve as server
      >>> a = server.identity({"HOME": "/h", "XLA_FLAGS": "--x", "PWD": "/a"})
      >>> sorted(a["env"])                                  # PWD is volatile: left out
      ['HOME', 'XLA_FLAGS']
      >>> server.differences(a, server.identity({"HOME": "/h", "PWD": "/b"}))
      ['XLA_FLAGS']
    """
    import importlib.util

    env = os.environ if environ is None else environ

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
            "sources": _digest("\0".join(stat(p) for p in sorted(PACKAGE.rglob("*.py")))),
            "libraries": _digest("\0".join(libraries))}


def fingerprint(environ: dict[str, str] | None = None) -> str:
    """:func:`identity` as 16 hex digits: the name of this environment's server's socket.

    Args:
      environ: the environment (default ``os.environ``).

    Returns:
      a SHA-256 prefix of :func:`identity`.

    Examples:
      >>> from landscape.cli import serve as server
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
      >>> from landscape.cli import serve as server
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
      >>> from landscape.cli import serve as server
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


# ---------------------------------------------------------------------- the client side


# ---------------------------------------------------------------------- the server side
