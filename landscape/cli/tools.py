"""The commands that compute nothing: ``plot``, ``export``, ``cache``, ``serve``, ``prepare``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

__all__ = ["cmd_plot", "cmd_export", "cmd_cache", "cmd_serve", "cmd_prepare", "NO_COMPUTE"]

#: Commands that compute nothing (no devices are started for them).
NO_COMPUTE = ("info", "plot", "export", "prepare", "cache", "serve")


def cmd_plot(args) -> int:
    from .. import figures
    from ..core.errors import ConfigError
    from ..store import runs as io

    with args.clock.phase("load"):
        arrays, meta = io.load_result(args.result)
    if args.out:
        out = Path(args.out)
    else:  # never the command's own figure: the name carries every option that changes the drawing
        npz, _ = io.result_paths(args.result)
        kind = {"curvature": "curvature_plot"}.get(args.kind, args.kind)  # `surface` draws NAME_curvature itself
        parts = [f"_{kind}" if kind else "", f"_{args.metric}" if args.metric else "",
                 "" if args.log is None else ("_log" if args.log else "_linear"),
                 f"_clip{args.clip:g}" if args.clip is not None else ""]
        suffix = "".join(parts) or "_replot"
        out = npz.parent.parent / "figures" / f"{npz.stem}{suffix}.{args.format}"
    with args.clock.phase("figure"):
        try:
            path = figures.result_figure(arrays, meta, out, kind=args.kind, metric=args.metric, log=args.log,
                                        clip=args.clip)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    print(f"figure: {path}")
    return 0


def cmd_export(args) -> int:
    from ..figures import export
    from ..store import runs as io

    with args.clock.phase("load"):
        arrays, meta = io.load_result(args.result)
    if args.out:
        out = Path(args.out)
    else:
        npz, _ = io.result_paths(args.result)
        suffix = {"html": ".html", "vtk": ".vts"}[args.format]
        out = npz.parent.parent / "exports" / f"{npz.stem}{'_' + args.metric if args.metric else ''}{suffix}"
    with args.clock.phase("figure"):
        paths = export.export(arrays, meta, out, args.format, metric=args.metric, member=args.member,
                              plotly_js=args.plotly_js)
    for path in paths:
        print(f"exported: {path}")
    return 0


def cmd_cache(args) -> int:
    from ..core import compilation_cache

    where = compilation_cache.cache_dir()
    if where is None:
        print(f"the compilation cache is turned off (${compilation_cache.ENV}={os.environ.get(compilation_cache.ENV)})")
        return 0
    if args.clear:
        freed = compilation_cache.clear(where)
        print(f"cleared {where}: {freed / 2**20:.1f} MiB freed")
        return 0
    u = compilation_cache.usage(where)
    print(f"compilation cache: {where}")
    print(f"{u['programs']} compiled programs, {u['bytes'] / 2**20:.1f} MiB "
          f"(limit {compilation_cache.DEFAULT_MAX_BYTES / 2**30:g} GiB)")
    return 0


def cmd_serve(args) -> int:
    from . import serve as server

    if args.status or args.stop:
        answer = server.request({"status": True}) if args.status else server.stop()
        if answer is None:
            print("no landscape server is running for this environment")
            for other in server.others():  # why a server that runs is not this one
                print(f"  a server of another environment runs (pid {other['pid']}); it differs in: "
                      f"{', '.join(other['differs']) or 'nothing (it is starting or stopping)'}")
            return 1
        if args.stop:
            answer, stopped = answer
            print(f"stopped the landscape server (pid {answer['pid']})" if stopped else
                  f"the landscape server (pid {answer['pid']}) leaves after its current command")
            return 0
        print(f"landscape server: pid {answer['pid']}, socket {answer['socket']}, "
              f"up {time.time() - answer['started']:.0f} s, {answer['served']} command(s) served, "
              f"{'busy' if answer['busy'] else 'idle'}")
        return 0
    if args.detach:
        answer, started = server.start_detached(args.idle)
        print(f"landscape server ready: pid {answer['pid']}, socket {answer['socket']}" if started else
              f"a landscape server for this environment is already running: pid {answer['pid']}, "
              f"socket {answer['socket']}")
        return 0
    return server.serve(args.idle, run=args.runner)


def cmd_prepare(args) -> int:
    from ..data import prepare_tfds

    where = prepare_tfds(args.dataset, data_dir=args.data_dir)
    print(f"prepared {args.dataset} in {where}")
    return 0
