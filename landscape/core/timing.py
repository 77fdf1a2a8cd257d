"""Where one command's wall time goes: start-up, loading, compilation, compute and figures.

A :class:`Timings` is created when a command starts; the command marks its loading and figure
phases; JAX's own monitoring events (tracing, lowering to MLIR, and backend compilation or
retrieval from the persistent cache) give the compilation time wherever it happens; compute
is what remains.  ``landscape COMMAND --timings FILE`` writes :meth:`Timings.report` as JSON,
which ``experiments/benchmark.py`` (section ``ttr``) reads.
"""

from __future__ import annotations

import contextlib
import time

__all__ = ["Timings", "COMPILE_EVENTS"]

#: JAX monitoring events whose durations add up to compilation (trace, lower, compile or load).
COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)


class Timings:
    """Wall-time phases of one command.

    ``started`` is the wall-clock time (``time.time()``) the object was made; ``startup_s`` is
    the time from then until :meth:`begin_command`; within the command, :meth:`phase` times
    named phases (``load``, ``figure``), compilation is summed from JAX's events (and taken
    out of the phase it happened in), and ``compute_s`` is the rest of the command's time.

    Attributes:
      started: ``time.time()`` when the object was made.
      phases: seconds per named phase.
      compile_s: seconds of compilation (tracing, lowering, compiling or loading).

    Examples:
      >>> from landscape.core import timing
      >>> t = timing.Timings()
      >>> t.begin_command()
      >>> with t.phase("load"):
      ...     _ = ls.data.load("blobs")
      >>> sorted(t.report())[:3]
      ['compile_s', 'compute_s', 'figure_s']
    """

    def __init__(self) -> None:
        self.started = time.time()
        self._t0 = time.perf_counter()
        self._command_t0: float | None = None
        self._end: float | None = None
        self.phases: dict[str, float] = {}
        self.compile_s = 0.0
        self._listener = None

    def listen_to_jax(self) -> None:
        """Count JAX's compilation events from now on (imports JAX)."""
        if self._listener is not None:
            return
        import jax.monitoring

        def on_event(event: str, duration: float, **_) -> None:
            if event in COMPILE_EVENTS:
                self.compile_s += duration

        self._listener = on_event
        jax.monitoring.register_event_duration_secs_listener(on_event)

    def close(self) -> None:
        """Stop listening and fix the command's end time."""
        if self._end is None:
            self._end = time.perf_counter()
        if self._listener is not None:
            import jax.monitoring

            jax.monitoring.unregister_event_duration_listener(self._listener)
            self._listener = None

    def begin_command(self) -> None:
        """Start-up ends here: the command's own work begins."""
        self._command_t0 = time.perf_counter()

    @contextlib.contextmanager
    def phase(self, name: str):
        """Time a named phase (compilation inside it is counted as compilation, not as the phase).

        Args:
          name: the phase (``load``, ``figure``).
        """
        t0, c0 = time.perf_counter(), self.compile_s
        try:
            yield
        finally:
            spent = time.perf_counter() - t0 - (self.compile_s - c0)
            self.phases[name] = self.phases.get(name, 0.0) + spent

    def report(self) -> dict:
        """``{"started", "startup_s", "load_s", "compile_s", "compute_s", "figure_s", "total_s"}``
        (seconds; ``started`` is the epoch time the process's clock began)."""
        end = self._end if self._end is not None else time.perf_counter()
        begin = self._command_t0 if self._command_t0 is not None else end
        command = end - begin
        load, figure = self.phases.get("load", 0.0), self.phases.get("figure", 0.0)
        return {
            "started": self.started,
            "startup_s": begin - self._t0,
            "load_s": load,
            "compile_s": self.compile_s,
            "compute_s": max(command - load - figure - self.compile_s, 0.0),
            "figure_s": figure,
            "total_s": end - self._t0,
        }
