"""The messages between a command and the server: one JSON object per line over a Unix socket.
"""

from __future__ import annotations

import json
from pathlib import Path

from .environment import socket_path

__all__ = ["request"]


def send(conn, msg: dict) -> None:
    conn.sendall((json.dumps(msg) + "\n").encode())


class Lines:
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


def connect(path: Path, timeout: float | None = 2.0):
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
      >>> from landscape.cli import serve as server
      >>> server.request({"status": True}, Path("/nonexistent/landscape.sock")) is None   # nobody answers
      True
    """
    path = path or socket_path()
    conn = connect(path) if path is not None and path.exists() else None
    if conn is None:
        return None
    with conn:
        conn.settimeout(30.0)  # a hung server answers nothing: say so rather than wait forever
        try:
            send(conn, message)
        except OSError:
            return None
        return Lines(conn).next()
