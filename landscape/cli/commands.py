"""One small function per ``landscape`` command: arguments in, a library call, lines printed.

Everything a Python user would need lives in the library (:mod:`landscape.analyses`,
:mod:`landscape.report`, :mod:`landscape.members`); these functions only map flags to
settings, print, and ask for the figures.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from .tools import NO_COMPUTE, cmd_cache, cmd_export, cmd_plot, cmd_prepare, cmd_serve

__all__ = ["COMMANDS", "NO_COMPUTE"]


def _spec(cls, args, **override):
    """``cls`` (a settings dataclass) filled from the parsed flags of the same names."""
    fields = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
    return cls(**{**fields, **override})


def _execution(args, **override):
    from ..core.distributed import is_writer
    from ..core.execution import Execution

    return Execution(progress=not args.quiet and is_writer(), mesh=args.mesh,
                     chunk_size=getattr(args, "chunk_size", None), save_every_s=getattr(args, "save_every", 5.0),
                     clock=args.clock, model=getattr(args, "model_file", None), **override)


def _warn(lines, command: str) -> None:
    for line in lines:
        print(f"landscape {command}: warning: {line}", file=sys.stderr)


def _writer() -> bool:
    from ..core.distributed import is_writer

    return is_writer()


# ---------------------------------------------------------------------- runs
def cmd_train(args) -> int:
    from .. import analyses, figures

    out = Path(args.out)
    spec = _spec(analyses.TrainSpec, args, lr=tuple(args.lr))
    ens = analyses.train(out, spec, overwrite=args.overwrite, execution=_execution(args),
                         extra={"command": args.argv})
    if not _writer():
        return 0
    print(f"saved run: {out}")
    if not args.no_plot:
        with args.clock.phase("figure"):
            paths = figures.training_figures(ens, out)
        for path in paths:
            print(f"figure: {path}")
    _print_members(ens)
    return 0


def _print_members(ens) -> None:
    from ..training.ensemble import summarize

    s = summarize(ens)
    swept = bool(s["spread_by_lr"])
    print(f"{'seed':>5} " + (f"{'lr':>8} " if swept else "")
          + f"{'train loss':>11} {'train acc':>9} {'test loss':>10} {'test acc':>8}  status")
    for m in s["members"]:
        lr = f"{m['learning_rate']:>8.4g} " if swept else ""
        print(f"{m['seed']:>5} {lr}{m['train_loss']:>11.5g} {m['train_accuracy']:>9.4f} "
              f"{m['test_loss']:>10.5g} {m['test_accuracy']:>8.4f}  {m['status']}")
    print()

    def names(who):
        return ", ".join(f"{w['seed']}" + (f" (lr {w['learning_rate']:g})" if swept else "") for w in who)

    if s["num_diverged"]:
        print(f"{s['num_diverged']} of {s['num_members']} members diverged and are excluded from the spread: "
              f"seeds {names(s['excluded'])}")
    if s["num_not_learned"]:
        print(f"{s['num_not_learned']} of {s['num_members']} members did not learn (training accuracy no better "
              f"than the most frequent class, or the loss did not fall): seeds {names(s['not_learned'])}")
    groups = {f"lr {lr}": v for lr, v in s["spread_by_lr"].items()} if swept else {"": s["spread"]}
    for title, spread in groups.items():
        if not spread:
            print(f"{title + ': ' if title else ''}every member diverged: no spread to report")
            continue
        n = sum(1 for m in s["members"] if not m["diverged"]
                and (not swept or f"lr {m['learning_rate']:g}" == title))
        print(f"spread over {n} members" + (f" at {title}" if title else ""))
        print(f"  {'metric':<15} {'mean':>10} {'std':>10} {'min':>10} {'median':>10} {'max':>10}")
        for metric, v in spread.items():
            print(f"  {metric:<15} {v['mean']:>10.4g} {v['std']:>10.3g} {v['min']:>10.4g} "
                  f"{v['median']:>10.4g} {v['max']:>10.4g}")


def cmd_info(args) -> int:
    from ..core import files
    from ..store import runs as io
    from ..store.results import run_status
    from ..training.ensemble import summarize

    with args.clock.phase("load"):
        ens = io.load_run(args.run, model=args.model_file)
        status = run_status(args.run)
    if args.json:
        print(json.dumps(files.jsonable({**summarize(ens), "results": status}), indent=2))
        return 0
    cfg, m = ens.config, ens.model
    print(f"run {args.run}: {m.describe()}, loss {cfg['loss']}, {cfg['steps']} steps, "
          f"batch {cfg['batch_size'] or 'full'}, data {cfg['data']['name']}")
    _print_members(ens)
    if status:
        print(f"\nresults ({sum(r['current'] for r in status)} of {len(status)} current):")
        for r in status:
            print(f"  {r['name']:<40} {r['kind'] or '?':<14} {r['why']}")
    return 0


def cmd_demo(args) -> int:
    from .. import analyses, figures
    from ..core import files
    from ..core.errors import ConfigError
    from ..store import runs as io

    out = Path(args.out)
    spec = analyses.demo_spec(args.seeds, args.steps)
    run, marker = out / "run", out / "demo.json"
    wanted = {"seeds": args.seeds, "steps": args.steps}
    resume, earlier = False, {}
    if out.exists() and not args.overwrite:
        try:
            earlier = files.read_json(marker)
            resume = {k: earlier.get(k) for k in wanted} == wanted
        except Exception:
            resume = False
        if not resume:
            raise ConfigError(f"{out} already exists (and is not a demo with --seeds {args.seeds} "
                              f"--steps {args.steps}); pass --overwrite to replace it")
    if not resume:
        with files.staged_directory(out, overwrite=args.overwrite) as stage:
            files.atomic_write_json(stage / "demo.json", wanted)
    ex = _execution(args)
    if resume and (run / "meta.json").exists():
        ens = io.load_run(run)
        print(f"run: {run} (kept from the " + ("completed demo; its results are reused)" if earlier.get("complete")
                                              else "interrupted demo)"))
    else:
        ens = analyses.train(run, spec, overwrite=True, execution=ex, extra={"command": args.argv})
        print(f"saved run: {run}")
    for path in figures.training_figures(ens, run):
        print(f"figure: {path}")
    _print_members(ens)
    steps = [
        ("surface --seeds 0 --test --grid 51",
         lambda: analyses.surface(run, analyses.SurfaceSpec(seeds="0", test=True, grid=51), execution=ex)),
        ("interpolate --seeds 0,1 --test",
         lambda: analyses.interpolate(run, analyses.InterpolationSpec(seeds="0,1", test=True), execution=ex)),
        ("plane --seeds 0,1,2", lambda: analyses.plane(run, analyses.PlaneSpec(seeds="0,1,2"), execution=ex)),
        ("trajectory --seeds 0", lambda: analyses.trajectory(run, analyses.TrajectorySpec(seeds="0"), execution=ex)),
    ]
    for what, call in steps:
        print(f"\n$ landscape {what.split()[0]} {run} {' '.join(what.split()[1:])}")
        _finish(args, call(), fmt="png")
    files.atomic_write_json(marker, {**wanted, "complete": True})
    print(f"\ndemo complete: run directory {run}, figures in {run / 'figures'}")
    return 0


# ---------------------------------------------------------------------- results
def _finish(args, outcome, *, fmt: str | None = None) -> None:
    """Print a slice result's path and headline numbers and draw its figure."""
    from .. import figures

    _warn(outcome.warnings, args.command)
    if not _writer():
        return
    meta = outcome.meta
    if meta.get("cosine") is not None:
        print(f"cosine between the two directions: {meta['cosine']}")
    for metric, bar in (meta.get("barriers") or {}).items():
        print(f"{metric}: barrier {bar['barrier']:.5g} (above the chord), "
              f"{bar['barrier_midpoint']:.5g} (max minus the endpoints' mean), at t = {bar['t_max']:.3g}")
    if meta.get("explained_variance_ratio") is not None:
        ev = meta["explained_variance_ratio"]
        print(f"explained variance ratio: PC1 {ev[0]:.3f}, PC2 {ev[1]:.3f}")
    print(f"result: {outcome.path}" + (" (saved and current: reused, nothing computed)" if outcome.reused else ""))
    curvature_lines = figures.curvature_map_lines(outcome.arrays, meta)
    for line in curvature_lines:
        print(line)
    if not getattr(args, "no_plot", False):
        with args.clock.phase("figure"):
            paths = [figures.result_figure(outcome.arrays, meta, outcome.run / "figures"
                                          / f"{outcome.name}.{fmt or args.format}")]
            if curvature_lines:
                paths.append(figures.curvature_map_figure(outcome.arrays, meta, outcome.run / "figures"
                                                         / f"{outcome.name}_curvature.{fmt or args.format}"))
        for path in paths:
            print(f"figure: {path}")


def _slice(kind: str):
    def command(args) -> int:
        from .. import analyses

        spec_cls, fn = {
            "surface": (analyses.SurfaceSpec, analyses.surface),
            "interpolate": (analyses.InterpolationSpec, analyses.interpolate),
            "plane": (analyses.PlaneSpec, analyses.plane),
            "trajectory": (analyses.TrajectorySpec, analyses.trajectory),
        }[kind]
        override = {}
        if kind == "plane":
            override["paths"] = not args.no_paths
        outcome = fn(args.run, _spec(spec_cls, args, **override), name=args.name, overwrite=args.overwrite,
                     execution=_execution(args))
        _finish(args, outcome)
        return 0

    command.__name__ = f"cmd_{kind}"
    return command


def cmd_hessian(args) -> int:
    from .. import analyses, figures

    outcome = analyses.hessian(args.run, _spec(analyses.HessianSpec, args), name=args.name,
                               overwrite=args.overwrite, execution=_execution(args))
    _warn(outcome.warnings, args.command)
    if args.curvature != "hessian":
        print(f"curvature: {'generalised Gauss-Newton' if args.curvature == 'ggn' else 'empirical Fisher'} matrix")
    for line in figures.hessian_lines(outcome.arrays):
        print(line)
    print(f"result: {outcome.path}" + (" (saved and current: reused, nothing computed)" if outcome.reused else ""))
    if not args.no_plot:
        with args.clock.phase("figure"):
            paths = figures.hessian_figures(outcome.arrays, outcome.run, args.format, prefix=outcome.name,
                                           matrix=figures.curvature.CURVATURE_NAMES[args.curvature])
            paths += figures.curvature_figures(outcome.run, args.format)  # Gauss-Newton / Fisher vs Hessian
        for path in paths:
            print(f"figure: {path}")
    if not outcome.reused and outcome.name == "hessian":  # the result the report quotes
        refreshed = figures.refresh_report(outcome.run, fmt=args.format)  # report.md quotes these numbers
        if refreshed is not None:
            print(f"report: {refreshed} (updated)")
    return 0


def cmd_sharpness(args) -> int:
    from .. import analyses, figures

    override = {} if args.measures is None else {"measures": args.measures}
    outcome = analyses.sharpness(args.run, _spec(analyses.SharpnessSpec, args, **override), name=args.name,
                                 overwrite=args.overwrite, execution=_execution(args))
    _warn(outcome.warnings, args.command)
    for line in figures.sharpness_lines(outcome.arrays, outcome.meta):
        print(line)
    print(f"result: {outcome.path}" + (" (saved and current: reused, nothing computed)" if outcome.reused else ""))
    if not args.no_plot:
        with args.clock.phase("figure"):
            paths = figures.sharpness_figures(outcome.arrays, outcome.meta, outcome.run, args.format,
                                              prefix=outcome.name)
        for path in paths:
            print(f"figure: {path}")
    return 0


def cmd_spawn(args) -> int:
    from .. import analyses, figures

    outcome = analyses.spawn(args.run, _spec(analyses.SpawnSpec, args), args.out, overwrite=args.overwrite,
                             execution=_execution(args))
    _warn(outcome.warnings, args.command)
    print(f"children: {outcome.run}")
    for line in figures.instability_lines(outcome.arrays, outcome.meta):
        print(line)
    print(f"result: {outcome.path}" + (" (saved and current: reused, nothing computed)" if outcome.reused else ""))
    if not args.no_plot:
        with args.clock.phase("figure"):
            paths = figures.instability_figures(outcome.arrays, outcome.meta, outcome.run, args.format)
        for path in paths:
            print(f"figure: {path}")
    return 0


def cmd_compare(args) -> int:
    from .. import analyses, figures
    from ..core.errors import ConfigError

    curve = None
    if args.curve is not None:
        try:
            curve = tuple(int(t) for t in args.curve.split(","))
        except ValueError:
            raise ConfigError(f"--curve must be two seeds A,B, got {args.curve!r}") from None
        if len(curve) != 2:
            raise ConfigError(f"--curve must be two seeds A,B, got {args.curve!r}")
    outcome = analyses.compare(args.run, _spec(analyses.CompareSpec, args, curve=curve), name=args.name,
                               overwrite=args.overwrite, execution=_execution(args))
    _warn(outcome.warnings, args.command)
    for line in figures.compare_lines(outcome.arrays, {**outcome.meta, "warnings": []}):
        print(line)
    print(f"result: {outcome.path}" + (" (saved and current: reused, nothing computed)" if outcome.reused else ""))
    with args.clock.phase("figure"):
        path, figs = figures.write_report(outcome.run, outcome.arrays, outcome.meta, name=outcome.name,
                                         fmt=args.format, figures=not args.no_plot)
    for p in figs:
        print(f"figure: {p}")
    print(f"report: {path}")
    return 0


def _starts_command(args, analysis, spec, lines, figures) -> int:
    """basins / race / animate: run ``analysis`` with ``spec``, print ``lines(arrays, meta)``, draw
    ``figures(outcome)`` (a list of paths) unless ``--no-plot``."""
    outcome = analysis(args.run, spec, name=args.name, overwrite=args.overwrite, execution=_execution(args))
    _warn(outcome.warnings, args.command)
    for line in lines(outcome.arrays, outcome.meta):
        print(line)
    print(f"result: {outcome.path}" + (" (saved and current: reused, nothing computed)" if outcome.reused else ""))
    if not args.no_plot:
        with args.clock.phase("figure"):
            paths = figures(outcome)
        for path in paths:
            print(f"figure: {path}")
    return 0


def _align(args) -> bool | None:
    return {"auto": None, "yes": True, "no": False}[args.align]


def cmd_basins(args) -> int:
    from .. import analyses, figures

    return _starts_command(
        args, analyses.basins, _spec(analyses.BasinsSpec, args, align=_align(args)), figures.basin_lines,
        lambda o: [figures.result_figure(o.arrays, o.meta, o.run / "figures" / f"{o.name}.{args.format}")])


def cmd_race(args) -> int:
    from .. import analyses, figures

    spec = _spec(analyses.RaceSpec, args, align=_align(args), lr=None if args.lr is None else tuple(args.lr))
    return _starts_command(
        args, analyses.race, spec, figures.race_lines,
        lambda o: figures.race_figures(o.arrays, o.meta, o.run / "figures" / o.name, args.format,
                                      animation=not args.no_animation))


def cmd_animate(args) -> int:
    from .. import analyses, figures

    if args.frames > args.steps + 1:
        print(f"--frames {args.frames}: a descent of {args.steps} steps has {args.steps + 1} positions; "
              f"the animation shows each of them")
    return _starts_command(
        args, analyses.animate, _spec(analyses.AnimateSpec, args, align=_align(args)), figures.descent_lines,
        lambda o: figures.descent_figures(o.arrays, o.meta, o.run / "figures" / o.name, args.format,
                                         movie=args.movie, pixels=args.pixels, frames=args.frames))


#: Commands that compute nothing: no devices, no compilation cache (and no JAX start-up).

COMMANDS = {
    "train": cmd_train,
    "info": cmd_info,
    "demo": cmd_demo,
    "surface": _slice("surface"),
    "interpolate": _slice("interpolate"),
    "plane": _slice("plane"),
    "trajectory": _slice("trajectory"),
    "hessian": cmd_hessian,
    "sharpness": cmd_sharpness,
    "spawn": cmd_spawn,
    "compare": cmd_compare,
    "basins": cmd_basins,
    "race": cmd_race,
    "animate": cmd_animate,
    "plot": cmd_plot,
    "export": cmd_export,
    "prepare": cmd_prepare,
    "cache": cmd_cache,
    "serve": cmd_serve,
}
