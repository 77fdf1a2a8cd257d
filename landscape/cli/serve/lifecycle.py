"""Starting, finding and stopping servers: ``landscape serve --detach``, ``--status`` and ``--stop``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from .client import spawn
from .environment import NO_SOCKET, differences, identity, socket_path
from .protocol import request

__all__ = ["others", "start_detached", "stop"]


def others(here: dict | None = None) -> list[dict]:
    """The running servers of *other* environments of this user, and why a command here does
    not reach them.

    Args:
      here: this environment's :func:`identity` (default: computed).

    Returns:
      ``[{"pid": …, "socket": …, "differs": [...]}]``, ``differs`` as :func:`differences` says.

    Examples:
      >>> from landscape.cli import serve as server
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
      >>> from landscape.cli import serve as server
      >>> answer, started = server.start_detached(60, Path(tempfile.mkdtemp()) / "serve.log")
      >>> server.start_detached(60)[0]["pid"] == answer["pid"]      # it runs: nothing is started
      True
      >>> server.stop()[0]["pid"] == answer["pid"]
      True
    """
    from ...core.errors import ConfigError

    path = socket_path()
    if path is None:
        raise ConfigError(NO_SOCKET)
    answer = request({"status": True}, path)
    if answer is not None:
        return answer, False
    log_path = log_path or path.with_suffix(".log")
    proc = spawn(idle_s, log_path)
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
      >>> from landscape.cli import serve as server
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
