"""The ``landscape`` command: parse arguments, start the devices, call one command.

A thin package: :mod:`.parser` holds the flags, :mod:`.commands` one small function per
command that calls the library (:mod:`landscape.analyses`, :mod:`landscape.report`).
Every error a user can cause — a bad flag, file, environment variable or file-system fault —
ends as one line on stderr and exit status 2 (3 for the distributed join timeout); an
internal error prints one line too (``--debug`` shows the traceback) and exits 1.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from ..core.errors import ConfigError, LandscapeError
from .commands import COMMANDS, NO_COMPUTE
from .parser import UsageError, build_parser

__all__ = ["main", "entry", "run_resident", "build_parser", "COMMANDS"]

EXIT_USAGE = 2
EXIT_INTERNAL = 1
EXIT_INTERRUPTED = 130


def _start_devices(args) -> None:
    """Set the float32 matmul arithmetic, turn on the compilation cache, join a multi-process
    run if asked, and choose the mesh every computation shards over."""
    args.mesh = None
    args.joined = False
    if args.command in NO_COMPUTE:
        return
    try:
        import jax  # noqa: F401  (JAX reads its JAX_* variables here and at backend start-up)

        from ..core import compilation_cache, distributed, precision

        precision.set_matmul_precision(args.matmul_precision)
        if not args.no_compile_cache:
            try:
                compilation_cache.enable()
            except ConfigError as exc:  # a read-only home, say: compile as before, and say so once
                print(f"landscape {args.command}: warning: {_one_line(exc)}; running without it", file=sys.stderr)
        from .. import models, training  # noqa: F401  (start-up: the library's imports)
        from ..geometry import directions, surface  # noqa: F401

        args.joined = distributed.initialize(args.coordinator, args.num_processes, args.process_id, timeout_s=args.join_timeout)
        args.mesh = distributed.make_mesh(args.devices) if args.devices is not None else distributed.default_mesh()
    except LandscapeError:
        raise
    except (RuntimeError, ValueError, TypeError, AttributeError) as exc:
        # a garbage JAX_* value ends here (XLA_FLAGS are parsed by XLA itself, which aborts the process)
        env = ", ".join(f"{k}={v!r}" for k, v in sorted(os.environ.items()) if k.startswith(("JAX_", "XLA_")))
        raise ConfigError(f"JAX could not start ({type(exc).__name__}: {_one_line(exc)[:300]})"
                          + (f"; check the environment: {env}" if env else "")) from None


def _quiet_absl() -> None:
    """tensorflow-datasets logs warnings through absl; the CLI reports problems itself."""
    try:
        from absl import logging as absl_logging
    except ImportError:  # pragma: no cover
        return
    absl_logging.set_verbosity(absl_logging.ERROR)


def _write_timings(path: str, clock) -> None:
    from ..core import files

    try:
        files.atomic_write_json(Path(path), clock.report())
    except OSError as exc:
        raise ConfigError(f"cannot write the timings to {path}: {exc.strerror}") from None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def main(argv: list[str] | None = None) -> int:
    """Run one ``landscape`` command (``argv`` as on the command line, default ``sys.argv[1:]``);
    returns the exit status."""
    return _run(argv)[0]


def run_resident(argv: list[str]) -> int:
    """As :func:`main`, in a process that outlives the command (``landscape serve``): an
    interrupted command returns its status instead of ending the process."""
    return _run(argv, resident=True)[0]


def _run(argv: list[str] | None, resident: bool = False) -> tuple[int, bool]:
    """:func:`main`'s work: the exit status, and whether the process joined a multi-process run."""
    from ..core.timing import Timings

    clock = Timings()
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE, False
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE, False
    args.clock = clock
    args.argv = argv  # recorded with a trained run
    return _execute(args, clock, resident), getattr(args, "joined", False)


def _execute(args, clock, resident: bool = False) -> int:
    """Start the devices and run the parsed command; every failure becomes one line and a status."""
    try:
        _quiet_absl()
        _start_devices(args)
        clock.begin_command()
        if args.command not in NO_COMPUTE:
            clock.listen_to_jax()
        style = contextlib.nullcontext()
        if getattr(args, "style", "paper") != "paper":
            from ..figures.styles import using

            style = using(args.style)
        args.runner = run_resident  # what a resident server (`landscape serve`) runs each command with
        try:
            with style:
                status = COMMANDS[args.command](args)
        finally:
            clock.close()
        if args.timings:
            _write_timings(args.timings, clock)
        return status
    except LandscapeError as exc:
        print(f"landscape {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except OSError as exc:  # a file-system fault the library did not name: still one line, exit 2
        where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        print(f"landscape {args.command}: error:{where} {exc.strerror or _one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"landscape {args.command}: interrupted; files on disk are complete old or new versions",
              file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        if resident:
            return EXIT_INTERRUPTED
        # Interpreter shutdown while XLA is still executing can crash; everything is written or cleaned up.
        os._exit(EXIT_INTERRUPTED)
    except Exception as exc:  # an internal error: still one line unless --debug
        if getattr(args, "debug", False):
            raise
        print(f"landscape {args.command}: internal error: {type(exc).__name__}: {_one_line(exc)} "
              "(rerun with --debug for the traceback)", file=sys.stderr)
        return EXIT_INTERNAL


def entry() -> None:
    """The ``landscape`` console script: :func:`main`, then a quick exit.

    When a command has returned, every file it wrote is complete and closed (atomic writes), so
    the interpreter's own teardown — destroying XLA's client and thread pools, about 0.45 s on
    a 2-core CPU — buys nothing: the streams are flushed and the process leaves with
    ``os._exit``.  A multi-process run leaves normally, so that JAX's distributed shutdown runs.
    Python callers use :func:`main`, which returns and leaves the interpreter alone.

    Where ``landscape serve`` runs for this environment, the command runs there instead
    (:func:`.server.route`), unless it must run in a process of its own; with
    ``LANDSCAPE_SERVE=auto`` a command that found no server starts one when it is done
    (:func:`.serve.start_in_background`).
    """
    from .serve.client import autostart_target, route, start_in_background

    routed = route(sys.argv[1:])
    if routed is not None:
        status, joined = routed, False
    else:
        target = autostart_target(sys.argv[1:])  # LANDSCAPE_SERVE=auto: a server for the next command
        status, joined = _run(None)
        if not joined:
            start_in_background(target)
    if joined:
        sys.exit(status)
    if "logging" in sys.modules:
        import logging

        logging.shutdown()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):  # a closed pipe or stream: nothing more to say
        pass
    os._exit(status)


if __name__ == "__main__":  # pragma: no cover
    entry()
