"""The ``landscape`` command: parse arguments, call the library, save, plot.

Every error a user can cause ends as one line on stderr and exit status 2; an internal
error prints one line too (``--debug`` shows the traceback) and exits 1.
"""

from __future__ import annotations

import argparse
import json
import math
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


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def _nonneg_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {v}")
    return v


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


def _unit_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (0.0 <= v < 1.0):
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {v}")
    return v


# ---------------------------------------------------------------------- parser


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.add_argument("--debug", action="store_true", help="show the full traceback of an internal error")


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
                                   "on the bundled digits and draw the figures.")
    p.add_argument("--out", default="landscape-demo", help="output directory (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    p.add_argument("--seeds", type=_positive_int, default=64, help="(default: %(default)s)")
    p.add_argument("--steps", type=_positive_int, default=2000, help="(default: %(default)s)")
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
        snapshot_every=args.snapshot_every, progress=not args.quiet,
    )
    io.save_run(out, ens, overwrite=args.overwrite, extra={"command": sys.argv[1:]})
    return ens


def _training_figures(ens, out: Path) -> list[Path]:
    from . import io, plot

    fig_dir = out / "figures"
    h = ens.history
    name = ens.config["loss"]
    paths = [
        io.save_figure(plot.training_curves(h.step, h.train_loss, h.test_accuracy, diverged=ens.diverged,
                                            loss_name=name), fig_dir / "training_curves.png"),
        io.save_figure(plot.final_cost_histogram(h.train_loss[:, -1], diverged=ens.diverged, loss_name=name),
                       fig_dir / "final_cost_histogram.png"),
    ]
    return paths


def cmd_train(args) -> int:
    out = Path(args.out)
    ens = _train_from_args(args, out)
    print(f"saved run: {out}")
    if not args.no_plot:
        for path in _training_figures(ens, out):
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
    from . import io
    from .train import summarize

    ens = io.load_run(args.run)
    if args.json:
        print(json.dumps(io._jsonable(summarize(ens)), indent=2))
        return 0
    cfg = ens.config
    m = ens.model
    print(f"run {args.run}: MLP {m.in_features}-{'-'.join(map(str, m.widths))} {m.activation} "
          f"(output {m.output_activation}), loss {cfg['loss']}, {cfg['steps']} steps, "
          f"batch {cfg['batch_size'] or 'full'}, data {cfg['data']['name']}")
    _print_info(ens)
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
        loss="mse", steps=args.steps, log_every=20, snapshot_every=100, progress=not args.quiet,
    )
    run = out / "run"
    io.save_run(run, ens, overwrite=args.overwrite, extra={"command": ["demo", *sys.argv[2:]]})
    print(f"saved run: {run}")
    for path in _training_figures(ens, run):
        print(f"figure: {path}")
    _print_info(ens)
    return 0


def cmd_prepare(args) -> int:
    from .data import prepare_tfds

    where = prepare_tfds(args.dataset, data_dir=args.data_dir)
    print(f"prepared {args.dataset} in {where}")
    return 0


def _quiet_absl() -> None:
    """tensorflow-datasets logs warnings through absl; the CLI reports problems itself."""
    try:
        from absl import logging as absl_logging
    except ImportError:  # pragma: no cover
        return
    absl_logging.set_verbosity(absl_logging.ERROR)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


COMMANDS = {"train": cmd_train, "info": cmd_info, "demo": cmd_demo, "prepare": cmd_prepare}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``landscape`` console script; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    _quiet_absl()
    try:
        return COMMANDS[args.command](args)
    except LandscapeError as exc:
        print(f"landscape {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"landscape {args.command}: interrupted; files on disk are complete old or new versions",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # an internal error: still one line unless --debug
        if getattr(args, "debug", False):
            raise
        print(f"landscape {args.command}: internal error: {type(exc).__name__}: {_one_line(exc)} "
              "(rerun with --debug for the traceback)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
