"""The ``landscape`` command: parse arguments, call the library, save, plot.

Every error a user can cause ends as one line on stderr and exit status 2; an internal
error prints one line too (``--debug`` shows the traceback) and exits 1.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

from .errors import ConfigError, LandscapeError

__all__ = ["main", "build_parser"]

EXIT_USAGE = 2
EXIT_INTERNAL = 1
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line, not usage plus message."""

    def error(self, message):  # noqa: D401 - argparse API
        raise _UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


class _UsageError(Exception):
    pass


# ---------------------------------------------------------------------- argument types


def _number(cast, ok, what: str):
    """An argparse type: ``cast(text)`` that must satisfy ``ok``, else "expected <what>"."""

    def parse(text: str):
        try:
            v = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not ok(v):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return v

    return parse


_positive_int = _number(int, lambda v: v >= 1, "a positive integer")
_nonneg_int = _number(int, lambda v: v >= 0, "a non-negative integer")
_positive_float = _number(float, lambda v: math.isfinite(v) and v > 0, "a finite positive number")
_nonneg_float = _number(float, lambda v: math.isfinite(v) and v >= 0, "a finite non-negative number")
_unit_float = _number(float, lambda v: 0.0 <= v < 1.0, "a number in [0, 1)")


def _widths(text: str) -> tuple[int, ...]:
    if text.strip().lower() in ("", "none"):
        return ()
    try:
        widths = tuple(int(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"widths must be comma-separated integers like 16,16, got {text!r}") from None
    if any(w < 1 for w in widths):
        raise argparse.ArgumentTypeError(f"widths must be positive, got {text!r}")
    return widths


def _positive_floats(text: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if any(not math.isfinite(v) or v <= 0 for v in vals):
        raise argparse.ArgumentTypeError(f"learning rates must be finite and positive, got {text!r}")
    return vals


# ---------------------------------------------------------------------- parser


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.add_argument("--debug", action="store_true", help="show the full traceback of an internal error")
    g = p.add_argument_group("devices and hosts")
    g.add_argument("--devices", type=_positive_int, default=None,
                   help="shard over the first N devices (default: every device of every process)")
    g.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                   help="multi-process run: address of process 0 (or $LANDSCAPE_COORDINATOR / $JAX_COORDINATOR_ADDRESS)")
    g.add_argument("--num-processes", type=_positive_int, default=None,
                   help="multi-process run: number of processes (or $LANDSCAPE_NUM_PROCESSES / $JAX_NUM_PROCESSES)")
    g.add_argument("--process-id", type=_nonneg_int, default=None,
                   help="multi-process run: this process's index (or $LANDSCAPE_PROCESS_ID / $JAX_PROCESS_ID)")
    g.add_argument("--join-timeout", type=_positive_int, default=120,
                   help="seconds to wait for every process to join (default: %(default)s)")
    g = p.add_argument_group("compilation and timing")
    g.add_argument("--no-compile-cache", action="store_true",
                   help="do not use JAX's persistent compilation cache for this command (see `landscape cache`)")
    g.add_argument("--timings", default=None, metavar="FILE",
                   help="write this command's wall time, split into start-up, load, compile, compute and figure, "
                        "as JSON")


def _add_train_options(p: argparse.ArgumentParser, *, defaults: dict) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--dataset", default=defaults.get("dataset", "digits"),
                   help="digits (offline default), spirals, blobs, or a tensorflow-datasets name such as mnist")
    g.add_argument("--data-dir", default=None, help="tensorflow-datasets data directory")
    g.add_argument("--download", action="store_true",
                   help="prepare a tensorflow-datasets set first if it is missing (needs internet)")
    g = p.add_argument_group("model")
    g.add_argument("--hidden", type=_widths, default=defaults.get("hidden", (16, 16)),
                   help="hidden widths, comma-separated (default: %(default)s)")
    g.add_argument("--activation", choices=("sigmoid", "tanh", "relu", "gelu"),
                   default=defaults.get("activation", "sigmoid"), help="hidden activation (default: %(default)s)")
    g.add_argument("--output-activation", choices=("identity", "sigmoid", "auto"), default="auto",
                   help="last-layer activation; auto = sigmoid for mse, identity (logits) for cross_entropy")
    g.add_argument("--init", choices=("lecun_normal", "glorot_uniform", "glorot_normal", "he_normal", "normal"),
                   default="lecun_normal", help="kernel initialiser (default: %(default)s); biases start at 0")
    g = p.add_argument_group("training")
    g.add_argument("--loss", choices=("mse", "cross_entropy"), default=defaults.get("loss", "mse"),
                   help="mse: squared difference to one-hot targets, summed over classes, averaged over examples")
    g.add_argument("--optimizer", choices=("sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop"),
                   default="sgd", help="(default: %(default)s)")
    g.add_argument("--lr", type=_positive_floats, default=defaults.get("lr", (1.0,)),
                   help="learning rate; a comma-separated list sweeps seeds × learning rates (default: %(default)s)")
    g.add_argument("--momentum", type=_unit_float, default=0.9, help="for momentum / nesterov / rmsprop")
    g.add_argument("--steps", type=_positive_int, default=defaults.get("steps", 2000), help="(default: %(default)s)")
    g.add_argument("--batch-size", type=_positive_int, default=None, help="minibatch size; omit for full-batch GD")
    g.add_argument("--seeds", type=_positive_int, default=defaults.get("seeds", 64),
                   help="number of random starts, seeds 0..N-1 (default: %(default)s)")
    g.add_argument("--key", type=_nonneg_int, default=0, help="root PRNG seed of the sweep (default: %(default)s)")
    g.add_argument("--log-every", type=_positive_int, default=defaults.get("log_every", 20),
                   help="record train/test loss and accuracy every N steps (default: %(default)s)")
    g.add_argument("--snapshot-every", type=_positive_int, default=defaults.get("snapshot_every"),
                   help="keep parameter snapshots every N steps (multiple of --log-every) for trajectory plots")


def _add_run(p, *, seeds_flag: str, seeds_help: str, default: str = "0") -> None:
    p.add_argument("run", help="run directory written by `landscape train`")
    p.add_argument(seeds_flag, dest="seeds", default=default, help=seeds_help)
    p.add_argument("--lr", type=_positive_float, default=None,
                   help="the learning rate of the members, when the run swept several")


def _add_output(p) -> None:
    p.add_argument("--overwrite", action="store_true", help="recompute and replace a saved result")
    p.add_argument("--no-plot", action="store_true", help="do not draw the figures")
    p.add_argument("--format", choices=("png", "pdf", "svg"), default="png", help="figure format (default: %(default)s)")
    _add_common(p)


def _add_save_every(p) -> None:
    p.add_argument("--save-every", type=_nonneg_float, default=5.0, metavar="SECONDS",
                   help="save progress (for resuming) at most this often (default: %(default)s)")


def _add_eval(p) -> None:
    p.add_argument("--test", action="store_true", help="evaluate on the test split too")
    p.add_argument("--chunk-size", type=_positive_int, default=None, help="points per compiled call (default: auto)")
    _add_save_every(p)
    p.add_argument("--name", default=None, help="result name (default: derived from the settings)")
    _add_output(p)


def _add_grid_margin(p, grid: int) -> None:
    p.add_argument("--grid", type=_positive_int, default=grid, help="points per axis (default: %(default)s)")
    p.add_argument("--margin", type=_nonneg_float, default=0.3,
                   help="grid margin, fraction of the extent (default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``landscape`` command."""
    parser = _Parser(
        prog="landscape",
        description="Train many small networks from many random starts at once and explore their loss landscapes.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"landscape {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("train", help="train an ensemble of MLPs from many seeds and save it as a run directory",
                       description="Train an ensemble of MLPs from many random starts in one compiled call.")
    _add_train_options(p, defaults={})
    p.add_argument("--out", required=True, help="run directory to create")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    p.add_argument("--no-plot", action="store_true", help="do not draw the training-curve figures")
    _add_common(p)

    p = sub.add_parser("info", help="per-seed final metrics, diverged seeds and the spread across seeds",
                       description="Summarise a run directory.")
    p.add_argument("run", help="run directory")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    _add_common(p)

    p = sub.add_parser("demo", help="the main job on the embedded digits, offline, in a few minutes",
                       description="Train 64 sigmoid networks 64-16-16-10 with the squared-difference cost "
                                   "on the bundled digits, then compute and draw a filter-normalised plane "
                                   "around seed 0, the interpolation from seed 0 to seed 1, the plane through "
                                   "seeds 0, 1, 2 with their trajectories, and seed 0's trajectory-PCA plane.")
    p.add_argument("--out", default="landscape-demo", help="output directory (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    p.add_argument("--seeds", type=_positive_int, default=64, help="(default: %(default)s)")
    p.add_argument("--steps", type=_positive_int, default=2000, help="(default: %(default)s)")
    _add_common(p)

    p = sub.add_parser("surface", help="loss and accuracy on a random (filter-normalised) plane or line around a seed",
                       description="Evaluate the cost surface on a slice through one or more seeds' minima.")
    _add_run(p, seeds_flag="--seed", seeds_help="seed(s) whose minimum is the centre: 0 | 0,1,2 | all (default: 0)")
    p.add_argument("--directions", choices=("random", "hessian"), default="random",
                   help="random (normalised Gaussian) or hessian (the top eigenvectors, unit length; "
                        "--norm does not apply) (default: %(default)s)")
    p.add_argument("--norm", choices=("filter", "layer", "model", "none"), default="filter",
                   help="direction normalisation (default: %(default)s)")
    p.add_argument("--keep-biases", action="store_true",
                   help="give biases a direction (a copy of the weights, as the reference tool does) "
                        "instead of zero")
    p.add_argument("--orthogonal", action="store_true", help="Gram-Schmidt the second direction against the first")
    p.add_argument("--dims", type=int, choices=(1, 2), default=2, help="1: a line, 2: a plane (default: %(default)s)")
    p.add_argument("--grid", type=_positive_int, default=51, help="points per axis (default: %(default)s)")
    p.add_argument("--span", type=_positive_float, default=1.0, help="coefficients in [-span, span] (default: %(default)s)")
    p.add_argument("--key", type=_nonneg_int, default=0, help="PRNG seed of the directions (default: %(default)s)")
    _add_eval(p)

    p = sub.add_parser("interpolate", help="loss along the straight line between two seeds' minima, with barriers",
                       description="theta(t) = (1-t) theta_A + t theta_B, t beyond [0, 1] too; both barrier definitions.")
    _add_run(p, seeds_flag="--seeds", seeds_help="two seeds A,B (default: 0,1)", default="0,1")
    p.add_argument("--grid", type=_positive_int, default=61, help="points in [0, 1] (default: %(default)s)")
    p.add_argument("--extend", type=_nonneg_float, default=0.5, help="continue to [-e, 1+e] (default: %(default)s)")
    _add_eval(p)

    p = sub.add_parser("plane", help="the plane through three seeds' minima, with their trajectories",
                       description="The plane through three solutions (Garipov et al. 2018), solutions marked.")
    _add_run(p, seeds_flag="--seeds", seeds_help="three seeds (default: 0,1,2)", default="0,1,2")
    _add_grid_margin(p, 41)
    p.add_argument("--no-paths", action="store_true", help="do not project the training trajectories")
    _add_eval(p)

    p = sub.add_parser("trajectory", help="the trajectory-PCA plane of one seed with its path",
                       description="PCA of the saved snapshots around the final parameters (Li et al. 2018, section 7).")
    _add_run(p, seeds_flag="--seed", seeds_help="seed (default: 0)", default="0")
    _add_grid_margin(p, 41)
    _add_eval(p)

    p = sub.add_parser("hessian", help="Hessian spectra of every seed: top eigenvalues, smallest, trace, density",
                       description="Curvature of the training loss at every member's final parameters "
                                   "(Lanczos with full re-orthogonalisation, Hutchinson trace, stochastic "
                                   "Lanczos quadrature).")
    p.add_argument("run", help="run directory written by `landscape train`")
    p.add_argument("--top", type=_positive_int, default=5, help="number of top eigenvalues (default: %(default)s)")
    p.add_argument("--iters", type=_positive_int, default=None, help="Lanczos iterations (default: max(2k+20, 40))")
    p.add_argument("--probes", type=_positive_int, default=50, help="Hutchinson probes (default: %(default)s)")
    p.add_argument("--density", action="store_true", help="also the spectral density (SLQ)")
    p.add_argument("--key", type=_nonneg_int, default=0, help="PRNG seed of the probes (default: %(default)s)")
    p.add_argument("--chunk-size", type=_positive_int, default=16, help="members per compiled call (default: %(default)s)")
    p.add_argument("--name", default=None, help="result name (default: hessian)")
    _add_output(p)

    p = sub.add_parser("compare", help="compare the seeds' minima: barriers, basins, alignment, curves; a report",
                       description="Pairwise barriers, distances, cosines and prediction disagreement between "
                                   "the members that did not diverge; basins; optionally permutation alignment "
                                   "and a trained Bezier curve; writes RUN/report.md and figures.")
    p.add_argument("run", help="run directory written by `landscape train`")
    p.add_argument("--align", action="store_true", help="also barriers after weight-matching alignment of each pair")
    p.add_argument("--curve", default=None, metavar="A,B", help="train a Bezier curve between seeds A and B")
    p.add_argument("--curve-steps", type=_positive_int, default=1000, help="(default: %(default)s)")
    p.add_argument("--tol", type=_nonneg_float, default=0.05,
                   help="seeds whose barrier is below this share a basin (default: %(default)s)")
    p.add_argument("--limit", type=_positive_int, default=None, metavar="N",
                   help="compare only the first N seeds that did not diverge (pairs grow as N^2)")
    p.add_argument("--grid", type=_positive_int, default=25, help="interpolation points in [0, 1] (default: %(default)s)")
    p.add_argument("--lr", type=_positive_float, default=None, help="the learning rate, when the run swept several")
    p.add_argument("--key", type=_nonneg_int, default=0, help="PRNG seed of the curve training (default: %(default)s)")
    p.add_argument("--chunk-size", type=_positive_int, default=None, help="points per compiled call (default: auto)")
    p.add_argument("--name", default=None, help="result name (default: compare)")
    _add_save_every(p)
    _add_output(p)

    p = sub.add_parser("plot", help="draw a saved result (no recomputation)",
                       description="Draw a saved surface / line / interpolation result file.")
    p.add_argument("result", help="a result file (.npz or .json) under RUN/results/")
    p.add_argument("--kind", choices=("contour", "filled", "heatmap", "surface", "line"), default=None,
                   help="figure kind (default: line for 1-D results, filled for 2-D)")
    p.add_argument("--metric", default=None, help="which metric, e.g. train_loss, test_accuracy (default: train loss)")
    p.add_argument("--log", dest="log", action="store_true", default=None, help="log scale / log-spaced levels")
    p.add_argument("--linear", dest="log", action="store_false", help="linear scale / levels")
    p.add_argument("--clip", type=_positive_float, default=None, help="clip values above this (default: 95th percentile)")
    p.add_argument("--out", default=None, help="figure file (.png, .pdf, .svg); default next to the run's figures")
    _add_common(p)

    p = sub.add_parser("cache", help="where JAX's persistent compilation cache is, its size; --clear empties it",
                       description="Every command keeps the programs it compiles in JAX's persistent compilation "
                                   "cache, so that a repeated command (same shapes, another seed) skips "
                                   "compilation. The directory is $LANDSCAPE_COMPILE_CACHE if set (0 or off turns "
                                   "the cache off), else the user cache directory's landscape/jax "
                                   "(~/.cache/landscape/jax on Linux); at most 2 GiB, least recently used "
                                   "programs evicted first.")
    p.add_argument("--clear", action="store_true", help="remove every cached program")
    _add_common(p)

    p = sub.add_parser("prepare", help="download and prepare a tensorflow-datasets set (needs internet)",
                       description="Prepare a tensorflow-datasets set in the random-access array_record format.")
    p.add_argument("dataset", help="tensorflow-datasets name, e.g. mnist")
    p.add_argument("--data-dir", default=None, help="tensorflow-datasets data directory")
    _add_common(p)
    return parser


# ---------------------------------------------------------------------- commands


def _train_from_args(args, out: Path):
    import jax

    from . import data as data_mod
    from . import io, models, optim, train

    with args.clock.phase("load"):
        dataset = data_mod.load(args.dataset, data_dir=args.data_dir, download=args.download)
    out_act = args.output_activation
    if out_act == "auto":
        out_act = "sigmoid" if args.loss == "mse" else "identity"
    model = models.MLP(hidden=args.hidden, activation=args.activation, output_activation=out_act,
                       kernel_init=args.init)
    spec = optim.OptimizerSpec(args.optimizer, args.lr[0], momentum=args.momentum)
    if not args.overwrite and out.exists():
        raise ConfigError(f"{out} already exists; pass --overwrite to replace it")
    ens = train.train_ensemble(
        model, dataset, key=jax.random.key(args.key), seeds=args.seeds, optimizer=spec, loss=args.loss,
        steps=args.steps, batch_size=args.batch_size,
        learning_rates=args.lr if len(args.lr) > 1 else None, log_every=args.log_every,
        snapshot_every=args.snapshot_every, progress=not args.quiet and _writer(), mesh=args.mesh,
    )
    if _writer():
        io.save_run(out, ens, overwrite=args.overwrite, extra={"command": sys.argv[1:]})
    return ens


def _training_figures(ens, out: Path) -> list[Path]:
    from . import io, plot

    fig_dir = out / "figures"
    h = ens.history
    name = ens.config["loss"]
    paths = [
        plot.save_figure(plot.training_curves(h.step, h.train_loss, h.test_accuracy, diverged=ens.diverged,
                                            loss_name=name), fig_dir / "training_curves.png"),
        plot.save_figure(plot.final_cost_histogram(h.train_loss[:, -1], diverged=ens.diverged, loss_name=name),
                       fig_dir / "final_cost_histogram.png"),
    ]
    return paths


def cmd_train(args) -> int:
    out = Path(args.out)
    ens = _train_from_args(args, out)
    if not _writer():
        return 0
    print(f"saved run: {out}")
    if not args.no_plot:
        with args.clock.phase("figure"):
            paths = _training_figures(ens, out)
        for path in paths:
            print(f"figure: {path}")
    _print_info(ens)
    return 0


def _print_info(ens) -> None:
    from .train import summarize

    s = summarize(ens)
    swept = len({m["learning_rate"] for m in s["members"]}) > 1
    header = f"{'seed':>5} " + (f"{'lr':>8} " if swept else "") + \
        f"{'train loss':>11} {'train acc':>9} {'test loss':>10} {'test acc':>8}  status"
    print(header)
    for m in s["members"]:
        lr = f"{m['learning_rate']:>8.4g} " if swept else ""
        status = f"diverged at step {m['diverged_step']}" if m["diverged"] else "ok"
        print(f"{m['seed']:>5} {lr}{m['train_loss']:>11.5g} {m['train_accuracy']:>9.4f} "
              f"{m['test_loss']:>10.5g} {m['test_accuracy']:>8.4f}  {status}")
    print()
    if s["num_diverged"]:
        print(f"{s['num_diverged']} of {s['num_members']} members diverged and are excluded from the spread: "
              f"seeds {', '.join(map(str, s['excluded']))}")
    if not s["spread"]:
        print("every member diverged: no spread to report")
        return
    print(f"spread over {s['num_members'] - s['num_diverged']} members")
    print(f"  {'metric':<15} {'mean':>10} {'std':>10} {'min':>10} {'median':>10} {'max':>10}")
    for metric, v in s["spread"].items():
        print(f"  {metric:<15} {v['mean']:>10.4g} {v['std']:>10.3g} {v['min']:>10.4g} "
              f"{v['median']:>10.4g} {v['max']:>10.4g}")


def cmd_info(args) -> int:
    from . import files, io
    from .train import summarize

    from .results import run_status

    with args.clock.phase("load"):
        ens = io.load_run(args.run)
        status = run_status(args.run)
    if args.json:
        print(json.dumps(files.jsonable({**summarize(ens), "results": status}), indent=2))
        return 0
    cfg = ens.config
    m = ens.model
    print(f"run {args.run}: MLP {m.in_features}-{'-'.join(map(str, m.widths))} {m.activation} "
          f"(output {m.output_activation}), loss {cfg['loss']}, {cfg['steps']} steps, "
          f"batch {cfg['batch_size'] or 'full'}, data {cfg['data']['name']}")
    _print_info(ens)
    if status:
        print(f"\nresults ({sum(r['current'] for r in status)} of {len(status)} current):")
        for r in status:
            print(f"  {r['name']:<40} {r['kind'] or '?':<14} {r['why']}")
    return 0


def cmd_demo(args) -> int:
    import jax

    from . import data, io, models, optim, train

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise ConfigError(f"{out} already exists; pass --overwrite to replace it")
    dataset = data.load("digits")
    model = models.MLP(hidden=(16, 16), activation="sigmoid", output_activation="sigmoid")
    ens = train.train_ensemble(
        model, dataset, key=jax.random.key(0), seeds=args.seeds, optimizer=optim.OptimizerSpec("sgd", 3.0),
        loss="mse", steps=args.steps, log_every=20, snapshot_every=100, progress=not args.quiet, mesh=args.mesh,
    )
    run = out / "run"
    io.save_run(run, ens, overwrite=args.overwrite, extra={"command": ["demo", *sys.argv[2:]]})
    print(f"saved run: {run}")
    for path in _training_figures(ens, run):
        print(f"figure: {path}")
    _print_info(ens)
    quiet = ["--quiet"] if args.quiet else []
    parser = build_parser()
    for argv in (
        ["surface", str(run), "--seed", "0", "--test", "--grid", "51", "--span", "1.0"],
        ["interpolate", str(run), "--seeds", "0,1", "--test"],
        ["plane", str(run), "--seeds", "0,1,2"],
        ["trajectory", str(run), "--seed", "0"],
    ):
        print(f"\n$ landscape {' '.join(argv)}")
        sub_args = parser.parse_args(argv + quiet)
        sub_args.mesh, sub_args.clock = args.mesh, args.clock
        COMMANDS[sub_args.command](sub_args)
    print(f"\ndemo complete: run directory {run}, figures in {run / 'figures'}")
    return 0


# ---------------------------------------------------------------------- landscape commands


def _select(args, ens, count: int | None) -> list[int]:
    """Member indices named by ``args.seeds`` (and ``args.lr`` when the run swept learning rates)."""
    import numpy as np

    text = args.seeds.strip()
    if text == "all":
        idx = list(range(ens.num_members)) if args.lr is None else [
            i for i in range(ens.num_members) if np.isclose(ens.learning_rates[i], args.lr)]
        if not idx:
            raise ConfigError(f"no member has learning rate {args.lr}")
    else:
        try:
            seeds = [int(t) for t in text.split(",")]
        except ValueError:
            raise ConfigError(f"seeds must be comma-separated integers, got {text!r}") from None
        if len(set(seeds)) != len(seeds):
            raise ConfigError(f"seeds must be distinct, got {text!r}")
        idx = [ens.index(s, args.lr) for s in seeds]
    if count is not None and len(idx) != count:
        raise ConfigError(f"expected {count} seed(s), got {len(idx)}: {text!r}")
    return idx


def _member_label(ens, i: int) -> str:
    import numpy as np

    lr = float(ens.learning_rates[i])
    swept = np.unique(ens.learning_rates[~np.isnan(ens.learning_rates)]).size > 1
    return f"seed {int(ens.seeds[i])}" + (f", lr {lr:g}" if swept else "")


def _tag(ens, idx: list[int]) -> str:
    """A file-name tag: seed numbers, plus learning rates when the run swept them."""
    labels = [_member_label(ens, i).replace("seed ", "").replace(", lr ", "lr") for i in idx]
    if len(idx) == 1:
        return f"seed{labels[0]}"
    return "seeds" + "-".join(labels) if len(idx) <= 4 else f"{len(idx)}members"


def run_dataset(ens):
    """The data set a loaded run was trained on, loaded as every command loads it."""
    from . import data as data_mod

    dcfg = ens.config.get("data", {})
    name = dcfg.get("name", "digits")
    dataset = data_mod.load(name, **_data_options(name, dcfg.get("options", {})))
    if dataset.input_dim != ens.model.in_features:
        raise ConfigError(f"data set {name!r} no longer matches the run's model inputs")
    return dataset


def _eval_setup(args):
    """(ensemble, metric fn, split names) for a run directory; :func:`_batches` loads the data
    only when a result has to be computed."""
    from . import io, models

    with args.clock.phase("load"):
        ens = io.load_run(args.run)
    return ens, models.metrics_fn(ens.model, ens.config["loss"]), ["test", "train"] if args.test else ["train"]


def _batches(args, ens) -> dict:
    """``{"train": (x, y)[, "test": (x, y)]}`` of the run's data set."""
    with args.clock.phase("load"):
        dataset = run_dataset(ens)
    batches = {"train": (dataset.train.x, dataset.train.y)}
    if args.test:
        batches["test"] = (dataset.test.x, dataset.test.y)
    return batches


def _data_options(name: str, options: dict) -> dict:
    if name in ("digits", "spirals", "blobs"):
        return dict(options)
    return {"data_dir": options.get("data_dir")}


class _Result:
    """The command's view of a named result (:class:`landscape.results.Result`): its figure
    path, and the saved value when one is current."""

    def __init__(self, args, default_name: str, config: dict):
        from . import results

        self.result = results.Result(args.run, getattr(args, "name", None) or default_name, config)
        self.run, self.name, self.stem = self.result.run, self.result.name, self.result.stem
        self.checkpoint = self.result.checkpoint
        self.figure = self.run / "figures" / f"{self.name}.{args.format}"
        self.saved = self.result.load_current(overwrite=args.overwrite)

    def writing(self):
        """The result's write lock for the computation (process 0 writes; the others compute)."""
        import contextlib

        return self.result.writing() if _writer() else contextlib.nullcontext()

    def save(self, surf, meta: dict):
        return self.save_arrays(surf.to_arrays(), {**surf.meta, **meta, "kind": surf.kind})

    def save_arrays(self, arrays: dict, meta: dict):
        """Commit the result (process 0 only) and return ``(arrays, meta)`` as read back."""
        from . import io

        from . import files

        if not _writer():
            return arrays, files.jsonable({**meta, "provenance": self.result.provenance})
        return self.result.commit(arrays, meta)


def _finish_result(args, res: _Result, arrays, meta, *, kind=None) -> None:
    from . import io

    npz, js = io.result_paths(res.stem)
    if not _writer():
        return
    print(f"result: {npz}")
    if not args.no_plot:
        with args.clock.phase("figure"):
            from . import plot

            path = plot.save_figure(plot.from_result(arrays, meta, kind=kind), res.figure)
        print(f"figure: {path}")


def _eval_kwargs(args, res: _Result, desc: str) -> dict:
    import jax

    single = jax.process_count() == 1  # checkpoints (and resuming) are single-process only
    return {"chunk_size": args.chunk_size, "checkpoint": res.checkpoint if single else None, "keep_checkpoint": True,
            "save_every_s": args.save_every, "progress": not args.quiet and _writer(), "desc": desc,
            "mesh": args.mesh}


def cmd_surface(args) -> int:
    import jax

    from . import directions, surface

    ens, fn, splits = _eval_setup(args)
    idx = _select(args, ens, None)
    seeds = [int(ens.seeds[i]) for i in idx]
    if args.directions == "hessian":
        args.norm = "none"  # unit eigenvectors: coefficients are distances in parameter space
    config = {"command": "surface", "members": idx, "directions": args.directions, "norm": args.norm,
              "ignore_biases": not args.keep_biases, "orthogonal": args.orthogonal, "dims": args.dims,
              "grid": args.grid, "span": args.span, "key": args.key, "splits": splits}
    kind = "line" if args.dims == 1 else "plane"
    res = _Result(args, f"{kind}_{_tag(ens, idx)}_{args.directions}_{args.norm}_g{args.grid}_s{args.span:g}", config)
    if res.saved is None:
        with res.writing():
            batches = _batches(args, ens)
            key = jax.random.key(args.key)
            centers = jax.tree_util.tree_map(lambda x: x[idx], ens.params)
            draw = lambda s, c: directions.random_directions(  # noqa: E731
                jax.random.fold_in(key, s), c, args.dims, norm=args.norm, ignore_biases=not args.keep_biases,
                orthogonal=args.orthogonal)
            if args.directions == "hessian":
                _single_process("--directions hessian")
                dirs = _hessian_directions(ens, batches, centers, args.dims, key)
            else:
                dirs = jax.jit(jax.vmap(draw))(jax.numpy.asarray(seeds), centers)  # one program, not one per op
            kw = {**_eval_kwargs(args, res, f"{kind} of {len(idx)} member(s)"), "data": batches, "stacked": True}
            if args.dims == 1:
                surf = surface.line(fn, centers, dirs[0], span=args.span, num=args.grid, **kw)
            else:
                surf = surface.plane(fn, centers, dirs, span=args.span, num=args.grid, **kw)
            if len(idx) == 1:  # store a single member without the member axis
                surf = surface.Surface(surf.kind, surf.axes, {k: v[0] for k, v in surf.values.items()},
                                       surf.extras, {**surf.meta, "cosine": surf.meta.get("cosine", [None])[0]})
            labels = [_member_label(ens, i) for i in idx]
            what = "top Hessian eigenvectors" if args.directions == "hessian" else f"{args.norm}-normalised directions"
            title = f"{labels[0]}, {what}" if len(idx) == 1 else None
            res.saved = res.save(surf, {"seeds": seeds, "labels": labels, "title": title,
                                        "axis_labels": [r"$\alpha$ (direction 1)", r"$\beta$ (direction 2)"],
                                        "xlabel": r"$\alpha$", "norm": args.norm,
                                        "ignore_biases": not args.keep_biases})
    arrays, meta = res.saved
    if meta.get("cosine") is not None:
        print(f"cosine between the two directions: {meta['cosine']}")
    _finish_result(args, res, arrays, meta)
    return 0


def _hessian_directions(ens, batches, centers, k: int, key):
    """The top-``k`` Hessian eigenvectors of the training loss at each centre (leaves ``(S, ...)``)."""
    import jax

    from . import hessian, models

    f = models.loss_fn(ens.model, _split(batches["train"]), ens.config["loss"])
    n = jax.tree_util.tree_leaves(centers)[0].shape[0]

    def one(c, i):
        return hessian.top_eigenpairs(f, c, k, key=jax.random.fold_in(key, i)).vectors

    return jax.jit(jax.vmap(one))(centers, jax.numpy.arange(n))


def _split(batch):
    from .data import Split

    return Split(*batch)


def cmd_interpolate(args) -> int:
    from . import surface

    ens, fn, splits = _eval_setup(args)
    a, b = _select(args, ens, 2)
    config = {"command": "interpolate", "members": [a, b], "grid": args.grid, "extend": args.extend,
              "splits": splits}
    res = _Result(args, f"interpolate_{_tag(ens, [a, b]).replace('seeds', 'seed').replace('-', '_')}_g{args.grid}",
                  config)
    if res.saved is None:
        with res.writing():
            la, lb = _member_label(ens, a), _member_label(ens, b)
            surf = surface.interpolation(fn, ens.member(a), ens.member(b), num=args.grid, extend=args.extend,
                                         data=_batches(args, ens), **_eval_kwargs(args, res, f"interpolation {la} -> {lb}"))
            res.saved = res.save(surf, {"seeds": [int(ens.seeds[a]), int(ens.seeds[b])], "labels": [la, lb],
                                        "title": f"{la} (t=0) to {lb} (t=1)"})
    arrays, meta = res.saved
    for metric, bar in (meta.get("barriers", {}) if _writer() else {}).items():
        print(f"{metric}: barrier {bar['barrier']:.5g} (above the chord), "
              f"{bar['barrier_midpoint']:.5g} (max minus the endpoints' mean), at t = {bar['t_max']:.3g}")
    _finish_result(args, res, arrays, meta)
    return 0


def _paths_for(ens, idx):
    import jax

    if ens.trajectory is None:
        return None
    return [jax.tree_util.tree_map(lambda x, i=i: x[i], ens.trajectory.params) for i in idx]


def cmd_plane(args) -> int:
    from . import surface

    ens, fn, splits = _eval_setup(args)
    idx = _select(args, ens, 3)
    use_paths = not args.no_paths and ens.trajectory is not None
    config = {"command": "plane", "members": idx, "grid": args.grid, "margin": args.margin, "paths": use_paths,
              "splits": splits}
    res = _Result(args, f"plane_{_tag(ens, idx).replace('seeds', 'seed').replace('-', '_')}_g{args.grid}", config)
    if res.saved is None:
        with res.writing():
            labels = [_member_label(ens, i) for i in idx]
            surf = surface.three_point(fn, *[ens.member(i) for i in idx], num=args.grid, margin=args.margin,
                                       data=_batches(args, ens), paths=_paths_for(ens, idx) if use_paths else None,
                                       **_eval_kwargs(args, res, "plane through three solutions"))
            res.saved = res.save(surf, {
                "seeds": [int(ens.seeds[i]) for i in idx], "labels": labels, "point_labels": labels,
                "path_labels": [f"{lab} path" for lab in labels] if use_paths else None,
                "axis_labels": ["distance along u", "distance along v"],
                "title": "plane through " + (
                    "seeds " + ", ".join(str(int(ens.seeds[i])) for i in idx) if all("lr" not in lab for lab in labels)
                    else "; ".join(labels))})
    arrays, meta = res.saved
    _finish_result(args, res, arrays, meta)
    return 0


def cmd_trajectory(args) -> int:
    from . import surface

    ens, fn, splits = _eval_setup(args)
    (i,) = _select(args, ens, 1)
    if ens.trajectory is None:
        raise ConfigError(f"{args.run} has no parameter snapshots; train with --snapshot-every")
    config = {"command": "trajectory", "member": i, "grid": args.grid, "margin": args.margin,
              "splits": splits}
    res = _Result(args, f"trajectory_{_tag(ens, [i])}_g{args.grid}", config)
    if res.saved is None:
        with res.writing():
            (path,) = _paths_for(ens, [i])
            label = _member_label(ens, i)
            surf = surface.trajectory_plane(fn, path, num=args.grid, margin=args.margin, data=_batches(args, ens),
                                            **_eval_kwargs(args, res, "trajectory plane"))
            ev = surf.meta["explained_variance_ratio"]
            res.saved = res.save(surf, {
                "seeds": [int(ens.seeds[i])], "labels": [label], "path_labels": [label], "point_labels": ["final"],
                "axis_labels": [f"PC 1 ({100 * ev[0]:.1f}% of variance)", f"PC 2 ({100 * ev[1]:.1f}%)"],
                "title": f"{label}: training path on its PCA plane"})
    arrays, meta = res.saved
    ev = meta["explained_variance_ratio"]
    print(f"explained variance ratio: PC1 {ev[0]:.3f}, PC2 {ev[1]:.3f}")
    _finish_result(args, res, arrays, meta)
    return 0


def _healthy(ens, lr) -> list[int]:
    import numpy as np

    idx = [i for i in range(ens.num_members) if not ens.diverged[i]
           and (lr is None or np.isclose(ens.learning_rates[i], lr))]
    if lr is None and np.unique(ens.learning_rates[~np.isnan(ens.learning_rates)]).size > 1:
        raise ConfigError("the run swept several learning rates: choose one with --lr")
    skipped = int(ens.diverged.sum())
    if skipped:
        print(f"excluding {skipped} diverged member(s): seeds "
              + ", ".join(str(int(s)) for s in ens.seeds[ens.diverged]))
    if not idx:
        raise ConfigError("no member to analyse: every selected member diverged")
    return idx


def cmd_hessian(args) -> int:
    import jax
    import numpy as np

    from . import hessian, io, models

    _single_process("landscape hessian")
    args.test = False
    ens, _, _ = _eval_setup(args)
    config = {"top": args.top, "iters": args.iters, "probes": args.probes, "density": args.density, "key": args.key}
    res = _Result(args, "hessian", config)
    run, stem = res.run, res.stem
    if res.saved is None:
        with res.writing():
            f = models.loss_fn(ens.model, _split(_batches(args, ens)["train"]), ens.config["loss"])
            curv = hessian.ensemble_curvature(
                f, ens.params, key=jax.random.key(args.key), top=args.top, num_iters=args.iters,
                trace_probes=args.probes, density=args.density, chunk_size=args.chunk_size,
                checkpoint=res.result.checkpoints / "hessian.npz", keep_checkpoint=True, progress=not args.quiet,
                mesh=args.mesh)
            res.saved = res.save_arrays(
                {**curv, "seeds": ens.seeds, "learning_rates": ens.learning_rates,
                 "test_accuracy": ens.history.test_accuracy[:, -1], "train_loss": ens.history.train_loss[:, -1],
                 "diverged": ens.diverged}, {"kind": "hessian"})
    arrays, meta = res.saved
    print(f"{'seed':>5} {'top eigenvalue':>15} {'smallest':>10} {'trace':>10}")
    for i in range(len(arrays["seeds"])):
        flag = "  (diverged)" if arrays["diverged"][i] else ""
        print(f"{int(arrays['seeds'][i]):>5} {arrays['top'][i, 0]:>15.5g} {arrays['smallest'][i]:>10.4g} "
              f"{arrays['trace'][i]:>10.4g}{flag}")
    ok = ~arrays["diverged"].astype(bool)
    print(f"median top eigenvalue {np.median(arrays['top'][ok, 0]):.5g}, median trace {np.median(arrays['trace'][ok]):.5g}")
    print(f"result: {io.result_paths(stem)[0]}")
    if not args.no_plot:
        with args.clock.phase("figure"):
            paths = _hessian_figures(arrays, run, args.format)
        for path in paths:
            print(f"figure: {path}")
    return 0


def _hessian_figures(arrays, run, fmt: str, groups=None) -> list:
    import numpy as np

    from . import hessian, io, plot

    ok = ~arrays["diverged"].astype(bool)
    paths = [plot.save_figure(plot.scatter(
        arrays["top"][ok, 0], arrays["test_accuracy"][ok], xlabel="top Hessian eigenvalue (sharpness)",
        ylabel="test accuracy", log_x=True, groups=None if groups is None else groups,
        title=f"sharpness vs test accuracy, {int(ok.sum())} seeds"), run / "figures" / f"hessian_sharpness.{fmt}")]
    if "density_nodes" in arrays:
        nodes, weights = arrays["density_nodes"][ok], arrays["density_weights"][ok]
        lo, hi = float(np.min(nodes)), float(np.max(nodes))
        pad = 0.05 * (hi - lo + 1e-12)
        grid = np.linspace(lo - pad, hi + pad, 600)
        sigma = 0.01 * (hi - lo + 1e-12)
        rho = np.stack([hessian.density_on_grid(hessian.Density(n, w), grid, sigma=sigma)
                        for n, w in zip(nodes, weights)])
        paths.append(plot.save_figure(plot.spectral_density(grid, rho, title="Hessian spectral density (SLQ)"),
                                    run / "figures" / f"hessian_density.{fmt}"))
    return paths


def cmd_compare(args) -> int:
    import jax
    import numpy as np

    from . import io, minima, models

    _single_process("landscape compare")
    args.test = True
    ens, fn, _ = _eval_setup(args)
    idx = _healthy(ens, args.lr)
    if args.limit is not None:
        idx = idx[:args.limit]
    curve_pair = None
    if args.curve is not None:
        args.seeds = args.curve
        curve_pair = _select(args, ens, 2)
    config = {"members": idx, "align": args.align, "tol": args.tol, "grid": args.grid, "curve": curve_pair,
              "curve_steps": args.curve_steps, "key": args.key}
    res = _Result(args, "compare", config)
    run, stem = res.run, res.stem
    if res.saved is None:
        with res.writing():
            batches = _batches(args, ens)
            stacked = jax.tree_util.tree_map(lambda x: x[np.asarray(idx)], ens.params)
            pairwise = minima.compare_members(fn, stacked, data=batches["train"], predict=ens.model.apply,
                                         test_x=batches["test"][0], num=args.grid, tol=args.tol, aligned=args.align,
                                         metric="loss", chunk_size=args.chunk_size, progress=not args.quiet,
                                         mesh=args.mesh, checkpoint=res.result.checkpoints, keep_checkpoint=True,
                                         save_every_s=args.save_every)
            arrays = {**pairwise, "members": np.asarray(idx), "seeds": ens.seeds[idx],
                      "final_train_loss": ens.history.train_loss[idx, -1],
                      "final_test_accuracy": ens.history.test_accuracy[idx, -1]}
            if curve_pair is not None:
                f = models.loss_fn(ens.model, _split(batches["train"]), ens.config["loss"])
                cv = minima.bezier_curve(f, ens.member(curve_pair[0]), ens.member(curve_pair[1]),
                                         key=jax.random.key(args.key), steps=args.curve_steps)
                arrays.update({"curve_t": cv.t, "curve_loss": cv.curve_loss, "line_loss": cv.line_loss,
                               "curve_train_loss": cv.train_loss})
            res.saved = res.save_arrays(arrays, {"kind": "compare"})
    arrays, meta = res.saved
    with args.clock.phase("figure"):
        report = _write_report(ens, run, arrays, config, args)
    print(f"result: {io.result_paths(stem)[0]}")
    print(f"report: {report}")
    return 0


def _summary_line(name: str, b, labels) -> str:
    import numpy as np

    off = b[np.triu_indices(b.shape[0], 1)]
    sizes = np.bincount(labels)
    return (f"{name}: {sizes.size} basin(s) (sizes {', '.join(map(str, sizes[:12]))}"
            f"{', ...' if sizes.size > 12 else ''}); barrier median {np.median(off):.4g}, "
            f"min {np.min(off):.4g}, max {np.max(off):.4g}")


def _write_report(ens, run, arrays, config, args):
    import numpy as np

    from . import files, io, plot

    seeds = arrays["seeds"].astype(int)
    labels = [f"{s}" for s in seeds]
    hess = None
    hstem = run / "results" / "hessian"
    if io.result_paths(hstem)[0].exists():
        hess, _ = io.load_result(hstem)
    lines = [f"# Comparison of {len(seeds)} minima", "",
             f"Run `{run}`; {ens.config['loss']} loss; barrier tolerance for basins {config['tol']}; "
             f"{config['grid']} interpolation points in [0, 1].", ""]
    print(_summary_line("before alignment", arrays["barrier"], arrays["basin"]))
    lines.append("- " + _summary_line("before alignment", arrays["barrier"], arrays["basin"]))
    if "aligned_barrier" in arrays:
        print(_summary_line("after alignment", arrays["aligned_barrier"], arrays["aligned_basin"]))
        lines.append("- " + _summary_line("after alignment", arrays["aligned_barrier"], arrays["aligned_basin"]))
    if "disagreement" in arrays:
        off = arrays["disagreement"][np.triu_indices(len(seeds), 1)]
        lines.append(f"- prediction disagreement on test data: median {np.median(off):.4f}")
    if "curve_loss" in arrays:
        msg = (f"Bezier curve {config['curve']}: max loss along the curve {arrays['curve_loss'].max():.4g} "
               f"vs {arrays['line_loss'].max():.4g} along the straight line")
        print(msg)
        lines.append("- " + msg)
    lines += ["", "| seed | final train loss | test accuracy | top eigenvalue | trace | basin |"
              + (" basin (aligned) |" if "aligned_basin" in arrays else ""),
              "|---:|---:|---:|---:|---:|---:|" + ("---:|" if "aligned_basin" in arrays else "")]
    hmap = {}
    if hess is not None:
        hmap = {int(s): (hess["top"][i, 0], hess["trace"][i]) for i, s in enumerate(hess["seeds"])}
    for i, s in enumerate(seeds):
        top, tr = hmap.get(int(s), (float("nan"), float("nan")))
        row = (f"| {s} | {arrays['final_train_loss'][i]:.5g} | {arrays['final_test_accuracy'][i]:.4f} | "
               f"{top:.4g} | {tr:.4g} | {arrays['basin'][i]} |")
        if "aligned_basin" in arrays:
            row += f" {arrays['aligned_basin'][i]} |"
        lines.append(row)
    figs = []
    if not args.no_plot:
        fmt = args.format
        fd = run / "figures"
        name = ens.config["loss"]
        figs.append(plot.save_figure(plot.final_cost_histogram(arrays["final_train_loss"], loss_name=name),
                                   fd / f"compare_final_costs.{fmt}"))
        order_by = arrays["aligned_basin"] if "aligned_basin" in arrays else arrays["basin"]
        figs.append(plot.save_figure(plot.matrix(arrays["barrier"], groups=order_by, labels=labels,
                                               title="loss barrier, ordered by basin", cbar_label="barrier"),
                                   fd / f"compare_barriers.{fmt}"))
        if "aligned_barrier" in arrays:
            figs.append(plot.save_figure(plot.matrix(arrays["aligned_barrier"], groups=order_by, labels=labels,
                                                   title="barrier after alignment, ordered by basin",
                                                   cbar_label="barrier"), fd / f"compare_barriers_aligned.{fmt}"))
            iu = np.triu_indices(len(seeds), 1)
            figs.append(plot.save_figure(plot.scatter(
                arrays["barrier"][iu], arrays["aligned_barrier"][iu], xlabel="barrier before alignment",
                ylabel="barrier after alignment", diagonal=True,
                title=f"{len(iu[0])} pairs: median {np.median(arrays['barrier'][iu]):.3g} → "
                      f"{np.median(arrays['aligned_barrier'][iu]):.3g}"), fd / f"compare_alignment.{fmt}"))
        if "curve_loss" in arrays:
            a, b = config["curve"]
            figs.append(plot.save_figure(plot.curve(arrays["curve_t"], {"straight line": arrays["line_loss"],
                                                                      "Bézier curve": arrays["curve_loss"]},
                                                  xlabel="t", marks={"A": 0.0, "B": 1.0},
                                                  title=f"seed {int(ens.seeds[a])} to seed {int(ens.seeds[b])}"),
                                       fd / f"compare_curve.{fmt}"))
        if hess is not None:
            order = {int(s): i for i, s in enumerate(hess["seeds"])}
            pick = np.array([order[int(s)] for s in seeds])
            sub = {k: (v[pick] if hasattr(v, "shape") and v.shape[:1] == hess["seeds"].shape else v)
                   for k, v in hess.items()}
            figs += _hessian_figures(sub, run, fmt, groups=order_by)
        lines += ["", "## Figures", ""] + [f"![{p.stem}](figures/{p.name})" for p in figs]
    path = run / "report.md"
    files.atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())
    for p in figs:
        print(f"figure: {p}")
    return path


def cmd_plot(args) -> int:
    from . import io

    with args.clock.phase("load"):
        arrays, meta = io.load_result(args.result)
    with args.clock.phase("figure"):
        from . import plot

        try:
            fig = plot.from_result(arrays, meta, kind=args.kind, metric=args.metric, log=args.log, clip=args.clip)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if args.out:
        out = Path(args.out)
    else:
        npz, _ = io.result_paths(args.result)
        suffix = f"_{args.kind}" if args.kind else ""
        out = npz.parent.parent / "figures" / f"{npz.stem}{suffix}{'_' + args.metric if args.metric else ''}.png"
    with args.clock.phase("figure"):
        path = plot.save_figure(fig, out)
    print(f"figure: {path}")
    return 0


def cmd_cache(args) -> int:
    from . import compilation_cache

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


def cmd_prepare(args) -> int:
    from .data import prepare_tfds

    where = prepare_tfds(args.dataset, data_dir=args.data_dir)
    print(f"prepared {args.dataset} in {where}")
    return 0


def _start_devices(args) -> None:
    """Turn on the compilation cache, join a multi-process run if asked, and choose the mesh
    every computation shards over."""
    from . import compilation_cache, distributed

    args.mesh = None
    if args.command in _NO_COMPUTE:
        return
    if not args.no_compile_cache:
        try:
            compilation_cache.enable()
        except ConfigError as exc:  # a read-only home, say: compile as before, and say so once
            print(f"landscape {args.command}: warning: {_one_line(exc)}; running without it", file=sys.stderr)
    from . import directions, models, surface, train  # noqa: F401  (start-up: the library's imports)

    distributed.initialize(args.coordinator, args.num_processes, args.process_id, timeout_s=args.join_timeout)
    args.mesh = distributed.make_mesh(args.devices) if args.devices is not None else distributed.default_mesh()


def _single_process(what: str) -> None:
    import jax

    if jax.process_count() > 1:
        raise ConfigError(f"{what} runs in one process (on any number of its devices, --devices)")


def _writer() -> bool:
    from .distributed import is_writer

    return is_writer()


def _quiet_absl() -> None:
    """tensorflow-datasets logs warnings through absl; the CLI reports problems itself."""
    try:
        from absl import logging as absl_logging
    except ImportError:  # pragma: no cover
        return
    absl_logging.set_verbosity(absl_logging.ERROR)


def _write_timings(path: str, clock) -> None:
    from . import files

    try:
        files.atomic_write_json(Path(path), clock.report())
    except OSError as exc:
        raise ConfigError(f"cannot write the timings to {path}: {exc.strerror}") from None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


#: Commands that compute nothing: no devices, no compilation cache (and no JAX start-up).
_NO_COMPUTE = ("info", "plot", "prepare", "cache")

COMMANDS = {
    "train": cmd_train,
    "info": cmd_info,
    "demo": cmd_demo,
    "surface": cmd_surface,
    "interpolate": cmd_interpolate,
    "plane": cmd_plane,
    "trajectory": cmd_trajectory,
    "hessian": cmd_hessian,
    "compare": cmd_compare,
    "plot": cmd_plot,
    "prepare": cmd_prepare,
    "cache": cmd_cache,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``landscape`` console script; returns the exit status."""
    from .timing import Timings

    clock = Timings()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    args.clock = clock
    try:
        _quiet_absl()
        _start_devices(args)
        clock.begin_command()
        if args.command not in _NO_COMPUTE:
            clock.listen_to_jax()
        try:
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
    except KeyboardInterrupt:
        print(f"landscape {args.command}: interrupted; files on disk are complete old or new versions",
              file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        # Interpreter shutdown while XLA is still executing can crash; everything is written or cleaned up.
        os._exit(EXIT_INTERRUPTED)
    except Exception as exc:  # an internal error: still one line unless --debug
        if getattr(args, "debug", False):
            raise
        print(f"landscape {args.command}: internal error: {type(exc).__name__}: {_one_line(exc)} "
              "(rerun with --debug for the traceback)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
