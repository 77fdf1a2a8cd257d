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

# The `landscape` script imports this package on every command, to look for a server: its
# modules import only the standard library at the top; what only a server, or a command handed
# to one, needs (socket, threading, queue, signal …) is imported where it is used.

from .client import autostart_target, route, start_in_background
from .daemon import serve
from .environment import ENV, VOLATILE, differences, fingerprint, identity, socket_path
from .lifecycle import others, start_detached, stop
from .protocol import request

__all__ = ["ENV", "VOLATILE", "identity", "fingerprint", "differences", "socket_path", "route", "request", "serve",
           "start_detached", "stop", "others", "autostart_target", "start_in_background"]
