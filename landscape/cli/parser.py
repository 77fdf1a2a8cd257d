"""The ``landscape`` command's argument parser: flags, their types and their help."""

from __future__ import annotations

import argparse
import math

from .. import precision

__all__ = ["build_parser", "UsageError"]


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line, not usage plus message."""

    def error(self, message):  # noqa: D401 - argparse API
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")

    def parse_args(self, args=None, namespace=None):
        """As argparse's, but an unknown flag is reported by the subcommand it was given to
        (``landscape surface: unrecognized arguments: --grd``), with that command's help."""
        ns, extras = self.parse_known_args(args, namespace)
        if extras:
            command = getattr(ns, "command", None)
            prog = f"{self.prog} {command}" if command else self.prog
            raise UsageError(f"{prog}: unrecognized arguments: {' '.join(extras)} (see {prog} --help)")
        return ns


class UsageError(Exception):
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


def _csv(values) -> str:
    """A tuple default as the user types it: ``(16, 16)`` -> ``16,16``, ``(1.0,)`` -> ``1``."""
    return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


# ---------------------------------------------------------------------- parser


def _add_common(p: argparse.ArgumentParser, *, computes: bool = True) -> None:
    """Options every command takes; ``computes=False`` (commands that only read files: ``info``,
    ``plot``, ``export``, ``cache``, ``prepare``) leaves out devices, hosts, matmul precision
    and the compilation cache, which mean nothing to them."""
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.add_argument("--debug", action="store_true", help="show the full traceback of an internal error")
    if not computes:
        p.add_argument("--timings", default=None, metavar="FILE",
                       help="write this command's wall time, split into start-up, load and figure, as JSON")
        return
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
    g.add_argument("--matmul-precision", choices=precision.CHOICES, default="float32",
                   help="arithmetic of float32 matrix products on GPUs/TPUs (default: exact float32; JAX's own "
                        "default is TF32 on NVIDIA GPUs, about 3 digits; recorded with every result)")
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
    g.add_argument("--model", choices=("mlp", "cnn", "resnet"), default="mlp",
                   help="mlp: fully connected (--hidden); cnn: convolutions (--channels, --kernel) with 2x2 "
                        "average pooling and a Dense read-out; resnet: residual network (--depth, --width, "
                        "--stages, --no-skip, --norm-layer); cnn and resnet need image data sets "
                        "(default: %(default)s)")
    g.add_argument("--model-file", default=None, metavar="PATH.py:FACTORY",
                   help="train your own model instead: FACTORY in the Python file PATH (a Linen module or class, "
                        "or a function of no arguments returning a model); THE FILE IS EXECUTED. The run records "
                        "its path and SHA-256; later commands on the run need the same --model-file")
    hidden = defaults.get("hidden", (16, 16))
    g.add_argument("--hidden", type=_widths, default=hidden,
                   help=f"MLP hidden widths, comma-separated (default: {_csv(hidden)})")
    g.add_argument("--channels", type=_widths, default=(8, 16),
                   help="CNN convolution channels, comma-separated (default: 8,16)")
    g.add_argument("--kernel", type=_positive_int, default=3, help="CNN convolution size (default: %(default)s)")
    g.add_argument("--depth", type=_positive_int, default=10,
                   help="ResNet weighted layers, 2*stages*n+2 (default: %(default)s: 2 blocks per stage)")
    g.add_argument("--width", type=_positive_int, default=8,
                   help="ResNet channels of the first stage, doubled per stage (default: %(default)s)")
    g.add_argument("--stages", type=_positive_int, default=2,
                   help="ResNet stages, each after the first halving the image (default: %(default)s)")
    g.add_argument("--no-skip", dest="skip", action="store_false",
                   help="ResNet without its skip connections (Li et al. 2018's no-short networks)")
    g.add_argument("--norm-layer", dest="norm", choices=("batch", "layer", "none"), default="batch",
                   help="ResNet normalisation: batch (BatchNorm: running statistics kept per member), layer, "
                        "none (default: %(default)s)")
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
    lr = defaults.get("lr", (1.0,))
    g.add_argument("--lr", type=_positive_floats, default=lr,
                   help=f"learning rate; a comma-separated list sweeps seeds × learning rates (default: {_csv(lr)})")
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


def _add_model_file(p) -> None:
    p.add_argument("--model-file", default=None, metavar="PATH.py:FACTORY",
                   help="for a run of your own model: the file it was trained from (executed; checked by SHA-256)")


def _add_run(p, *, seeds_help: str, default: str = "0") -> None:
    """The run directory and the members to analyse: ``--seeds`` on every command (``--seed``
    is the same flag, for one member)."""
    p.add_argument("run", help="run directory written by `landscape train`")
    _add_model_file(p)
    p.add_argument("--seeds", "--seed", dest="seeds", default=default, help=seeds_help)
    p.add_argument("--lr", type=_positive_float, default=None,
                   help="the learning rate of the members, when the run swept several")


def _add_style(p) -> None:
    p.add_argument("--style", choices=("paper", "slides"), default="paper",
                   help="figure style: paper (a 3.4-inch journal column, 7-8 pt type) or slides (about twice the "
                        "size, 15-19 pt type, thicker lines) (default: %(default)s); PDFs embed TrueType fonts, "
                        "SVGs keep text editable")


def _add_output(p) -> None:
    p.add_argument("--overwrite", action="store_true", help="recompute and replace a saved result")
    p.add_argument("--no-plot", action="store_true", help="do not draw the figures")
    _add_style(p)
    p.add_argument("--format", choices=("png", "pdf", "svg"), default="png", help="figure format (default: %(default)s)")
    _add_common(p)


def _add_save_every(p) -> None:
    p.add_argument("--save-every", type=_nonneg_float, default=5.0, metavar="SECONDS",
                   help="save progress (for resuming) at most this often (default: %(default)s)")


def _add_statistics(p) -> None:
    p.add_argument("--statistics", choices=("recompute", "running"), default=None,
                   help="for a model with BatchNorm: recompute the training set's statistics at every evaluated "
                        "point (default), or use one member's saved running averages everywhere (right at its "
                        "minimum only)")


def _add_eval(p) -> None:
    p.add_argument("--test", action="store_true", help="evaluate on the test split too")
    _add_statistics(p)
    p.add_argument("--chunk-size", type=_positive_int, default=None, help="points per compiled call (default: auto)")
    _add_save_every(p)
    p.add_argument("--name", default=None, help="result name (default: derived from the settings)")
    _add_output(p)


def _add_grid_margin(p, grid: int) -> None:
    p.add_argument("--grid", type=_positive_int, default=grid, help="points per axis (default: %(default)s)")
    p.add_argument("--margin", type=_nonneg_float, default=0.3,
                   help="grid margin, fraction of the extent (default: %(default)s)")


def _add_plane(p, *, grid: int, margin: float, key: int, key_help: str, grid_help: str = "plane points per axis") -> None:
    """The plane of basins / race / animate: grid, margin, span, alignment, key, statistics, chunks, name."""
    p.add_argument("--grid", type=_positive_int, default=grid, help=f"{grid_help} (default: %(default)s)")
    p.add_argument("--margin", type=_nonneg_float, default=margin,
                   help="grid margin around the three minima, fraction of their extent (default: %(default)s)")
    p.add_argument("--span", type=_positive_float, default=1.0,
                   help="half-width of a random plane around one seed (default: %(default)s)")
    p.add_argument("--align", choices=("auto", "yes", "no"), default="auto",
                   help="weight-match the minima first (auto: when the model states its permutation structure)")
    p.add_argument("--key", type=int, default=key, help=f"PRNG seed of {key_help} (default: %(default)s)")
    _add_statistics(p)
    p.add_argument("--chunk-size", type=_positive_int, default=None, help="points per compiled call (default: auto)")
    p.add_argument("--name", default=None, help="result name (default: derived from the settings)")


def _add_plane_run(p) -> None:
    """The run and the seeds of a plane (three: their plane; one: a random plane around it)."""
    p.add_argument("run", help="run directory written by `landscape train`")
    _add_model_file(p)
    p.add_argument("--seeds", default="0,1,2", help="three seeds (their plane) or one (default: %(default)s)")
    p.add_argument("--member-lr", type=_positive_float, default=None,
                   help="the learning rate of the seeds' members, when the run swept several")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``landscape`` command."""
    parser = _Parser(
        prog="landscape",
        description="Train many small networks from many random starts at once and explore their loss landscapes.",
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"landscape {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("train", help="train an ensemble (MLP, CNN, ResNet or your own model) from many seeds and "
                                     "save it as a run directory",
                       description="Train an ensemble of networks from many random starts in one compiled call.")
    _add_train_options(p, defaults={})
    p.add_argument("--out", required=True, help="run directory to create")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    p.add_argument("--no-plot", action="store_true", help="do not draw the training-curve figures")
    _add_style(p)
    _add_common(p)

    p = sub.add_parser("info", help="per-seed final metrics, diverged seeds and the spread across seeds",
                       description="Summarise a run directory.")
    p.add_argument("run", help="run directory")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    _add_model_file(p)
    _add_common(p, computes=False)

    p = sub.add_parser("demo", help="the main job on the embedded digits, offline, in about a minute on 2 CPU cores",
                       description="Train 64 sigmoid networks 64-16-16-10 with the squared-difference cost "
                                   "on the bundled digits, then compute and draw a filter-normalised plane "
                                   "around seed 0, the interpolation from seed 0 to seed 1, the plane through "
                                   "seeds 0, 1, 2 with their trajectories, and seed 0's trajectory-PCA plane.")
    p.add_argument("--out", default="landscape-demo", help="output directory (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing output directory (without it, an interrupted demo with the same "
                        "--seeds and --steps goes on where it stopped)")
    p.add_argument("--seeds", type=_positive_int, default=64, help="at least 3 (default: %(default)s)")
    p.add_argument("--steps", type=_positive_int, default=2000, help="at least 2 (default: %(default)s)")
    _add_common(p)

    p = sub.add_parser("surface", help="loss and accuracy on a random (filter-normalised) plane or line around a seed",
                       description="Evaluate the cost surface on a slice through one or more seeds' minima.")
    _add_run(p, seeds_help="seed(s) whose minimum is the centre: 0 | 0,1,2 | all (default: 0)")
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
    p.add_argument("--curvature", action="store_true",
                   help="also map the Hessian's largest and smallest eigenvalue and |lambda_min|/lambda_max over "
                        "the slice (Li et al. 2018): where a convex-looking surface is not; figure NAME_curvature")
    p.add_argument("--curvature-grid", type=_positive_int, default=21,
                   help="points per axis of the curvature map, over the same span (default: %(default)s)")
    p.add_argument("--curvature-probes", type=_nonneg_int, default=0,
                   help="Hutchinson probes per point for the trace too (default: %(default)s, no trace)")
    _add_eval(p)

    p = sub.add_parser("interpolate", help="loss along the straight line between two seeds' minima, with barriers",
                       description="theta(t) = (1-t) theta_A + t theta_B, t beyond [0, 1] too; both barrier definitions.")
    _add_run(p, seeds_help="two seeds A,B (default: 0,1)", default="0,1")
    p.add_argument("--grid", type=_positive_int, default=61, help="points in [0, 1] (default: %(default)s)")
    p.add_argument("--extend", type=_nonneg_float, default=0.5, help="continue to [-e, 1+e] (default: %(default)s)")
    _add_eval(p)

    p = sub.add_parser("plane", help="the plane through three seeds' minima, with their trajectories",
                       description="The plane through three solutions (Garipov et al. 2018), solutions marked.")
    _add_run(p, seeds_help="three seeds (default: 0,1,2)", default="0,1,2")
    _add_grid_margin(p, 41)
    p.add_argument("--no-paths", action="store_true", help="do not project the training trajectories")
    _add_eval(p)

    p = sub.add_parser("trajectory", help="the trajectory-PCA plane of one seed with its path",
                       description="PCA of the saved snapshots around the final parameters (Li et al. 2018, section 7).")
    _add_run(p, seeds_help="seed (default: 0)", default="0")
    _add_grid_margin(p, 41)
    _add_eval(p)

    p = sub.add_parser("hessian", help="Hessian spectra of every seed: top eigenvalues, smallest, trace, density",
                       description="Curvature of the training loss at every member's final parameters "
                                   "(Lanczos with full re-orthogonalisation, Hutchinson trace, stochastic "
                                   "Lanczos quadrature).")
    p.add_argument("run", help="run directory written by `landscape train`")
    _add_model_file(p)
    p.add_argument("--top", type=_positive_int, default=5, help="number of top eigenvalues (default: %(default)s)")
    p.add_argument("--iters", type=_positive_int, default=None, help="Lanczos iterations (default: max(2k+20, 40))")
    p.add_argument("--probes", type=_positive_int, default=50, help="Hutchinson probes (default: %(default)s)")
    p.add_argument("--density", action="store_true", help="also the spectral density (SLQ)")
    p.add_argument("--curvature", choices=("hessian", "ggn", "fisher"), default="hessian",
                   help="the matrix: the Hessian, the generalised Gauss-Newton matrix, or the empirical Fisher "
                        "(default: %(default)s; the result is named after it)")
    p.add_argument("--per-layer", action="store_true",
                   help="also every layer's Hessian block (the other parameters held fixed): top eigenvalues, "
                        "smallest, trace (and density), with a figure per layer")
    p.add_argument("--batch-size", type=_positive_int, default=None,
                   help="accumulate every curvature product over batches of this many training examples: the "
                        "same full-data numbers with one batch in memory (default: all examples at once)")
    p.add_argument("--minibatches", type=_positive_int, default=0, metavar="K",
                   help="also the top eigenvalues and trace of K disjoint random mini-batches of --batch-size, one "
                        "by one (mean and spread per member; figure <name>_minibatch)")
    p.add_argument("--key", type=_nonneg_int, default=0,
                   help="PRNG seed of the probes and mini-batches (default: %(default)s)")
    p.add_argument("--chunk-size", type=_positive_int, default=16, help="members per compiled call (default: %(default)s)")
    p.add_argument("--name", default=None, help="result name (default: the --curvature, e.g. hessian)")
    _add_statistics(p)
    _add_output(p)

    p = sub.add_parser("compare", help="compare the seeds' minima: barriers, basins, alignment, curves; a report",
                       description="Pairwise barriers, distances, cosines and prediction disagreement between "
                                   "the members that did not diverge; basins; optionally permutation alignment "
                                   "and a trained Bezier curve; writes RUN/report.md and figures.")
    p.add_argument("run", help="run directory written by `landscape train`")
    _add_model_file(p)
    p.add_argument("--align", action="store_true", help="also barriers after weight-matching alignment of each pair")
    p.add_argument("--curve", default=None, metavar="A,B", help="train a Bezier curve between seeds A and B")
    p.add_argument("--curve-steps", type=_positive_int, default=1000, help="(default: %(default)s)")
    p.add_argument("--tol", type=_nonneg_float, default=0.05,
                   help="seeds whose barrier is below this share a basin (default: %(default)s)")
    p.add_argument("--include-unlearned", action="store_true",
                   help="also compare the members that did not learn (named in a warning); diverged members are "
                        "always left out")
    p.add_argument("--limit", type=_positive_int, default=None, metavar="N",
                   help="compare only the first N seeds that did not diverge (pairs grow as N^2)")
    p.add_argument("--grid", type=_positive_int, default=25, help="interpolation points in [0, 1] (default: %(default)s)")
    p.add_argument("--lr", type=_positive_float, default=None, help="the learning rate, when the run swept several")
    p.add_argument("--key", type=_nonneg_int, default=0, help="PRNG seed of the curve training (default: %(default)s)")
    _add_statistics(p)
    p.add_argument("--chunk-size", type=_positive_int, default=None, help="points per compiled call (default: auto)")
    p.add_argument("--name", default=None, help="result name (default: compare)")
    _add_save_every(p)
    _add_output(p)

    p = sub.add_parser("basins", help="basins of attraction: train every point of a plane and see which minimum "
                                      "each reaches",
                       description="Every point of the plane through three seeds' minima (or of a random "
                                   "filter-normalised plane around one) is a starting point in the full parameter "
                                   "space; all of them are trained as one ensemble with the run's optimizer, loss, "
                                   "data and batch size, and each is labelled by the minimum whose basin it ends "
                                   "in (the barrier to that minimum only below --tol, after weight matching), "
                                   "'several minima', or 'elsewhere'.")
    _add_run(p, seeds_help="three seeds (their plane) or one (a random plane around it) "
                                                 "(default: 0,1,2)", default="0,1,2")
    p.add_argument("--steps", type=_positive_int, default=None,
                   help="training steps of every start (default: the run's)")
    p.add_argument("--tol", type=_nonneg_float, default=None,
                   help="barrier (loss units) below which an end point is in a minimum's basin (default: half the "
                        "smallest barrier between the three minima; 0.05 around one)")
    _add_plane(p, grid=41, margin=0.25, key=0, key_help="minibatch orders and a random plane",
               grid_help="starts per axis")
    _add_output(p)

    p = sub.add_parser("race", help="optimizer race: several optimizers from the same starts, paths on one plane",
                       description="Several optimizers (and learning rates, and minibatch sizes) train from the same "
                                   "starting points of the plane through three seeds' minima (or a random plane "
                                   "around one) in one vmapped program per batch size; their paths are projected "
                                   "onto that fixed plane and their costs drawn against steps (a still and an "
                                   "animation).")
    _add_plane_run(p)
    p.add_argument("--optimizers", default="sgd,momentum,adam",
                   help="comma-separated NAME or NAME@LR (sgd, momentum, nesterov, adam, adamw, rmsprop; "
                        "default: %(default)s)")
    p.add_argument("--lr", type=_positive_floats, default=None,
                   help="learning rates of the optimizers named without @LR: one for all or one each (default: the "
                        "run's for its optimizer, the run's x (1 - momentum) for momentum after SGD, 0.01 for "
                        "adam/adamw/rmsprop)")
    p.add_argument("--batch-size", dest="batch_sizes", default=None, metavar="SIZES",
                   help="comma-separated minibatch sizes or 'full'; every optimizer runs with each (default: the "
                        "run's)")
    p.add_argument("--starts", type=_positive_int, default=4, help="random starting points of the plane "
                                                                  "(default: %(default)s)")
    p.add_argument("--steps", type=_positive_int, default=None, help="optimizer steps (default: the run's)")
    p.add_argument("--snapshot-every", type=_positive_int, default=None,
                   help="steps between path points (default: steps/50)")
    _add_plane(p, grid=41, margin=0.25, key=0, key_help="the starts and minibatch orders")
    p.add_argument("--no-animation", action="store_true", help="draw the still only, not the GIF")
    _add_output(p)

    p = sub.add_parser("animate", help="lecture animation: gradient descent from many starts inside the plane of "
                                       "three minima",
                       description="Gradient descent inside the plane through three seeds' minima (or a random plane "
                                   "around one) from many random starting points: each step follows the projection "
                                   "of the true gradient onto the plane, so the dots move on exactly the surface "
                                   "that is drawn. Paths are coloured by the minimum they end at. Writes a still and "
                                   "a 16:9 animation (GIF, or MP4 when ffmpeg is installed).")
    _add_plane_run(p)
    p.add_argument("--starts", type=_positive_int, default=40, help="random starting points (default: %(default)s)")
    p.add_argument("--steps", type=_positive_int, default=1000, help="descent steps (default: %(default)s)")
    p.add_argument("--lr", type=_positive_float, default=None, help="descent step size (default: the run's)")
    _add_plane(p, grid=61, margin=0.6, key=7, key_help="the starts")
    p.add_argument("--frames", type=_positive_int, default=90, help="animation frames (default: %(default)s)")
    p.add_argument("--pixels", type=_positive_int, default=1600,
                   help="animation width in pixels, 16:9 (default: %(default)s; 1920 for a 1080p projector)")
    p.add_argument("--movie", choices=("gif", "mp4"), default="gif",
                   help="animation format (mp4 needs ffmpeg; without it a GIF is written) (default: %(default)s)")
    _add_output(p)

    p = sub.add_parser("plot", help="draw a saved result (no recomputation)",
                       description="Draw a saved surface / line / interpolation result file.")
    p.add_argument("result", help="a result file (.npz or .json) under RUN/results/")
    p.add_argument("--kind", choices=("contour", "filled", "heatmap", "surface", "line", "curvature"), default=None,
                   help="figure kind (default: line for 1-D results, filled for 2-D); curvature: the "
                        "|lambda_min|/lambda_max map of a `surface --curvature` result")
    p.add_argument("--metric", default=None, help="which metric, e.g. train_loss, test_accuracy (default: train loss)")
    scale = p.add_mutually_exclusive_group()
    scale.add_argument("--log", dest="log", action="store_true", default=None, help="log scale / log-spaced levels")
    scale.add_argument("--linear", dest="log", action="store_false", help="linear scale / levels")
    p.add_argument("--clip", type=_positive_float, default=None, help="clip values above this (default: 95th percentile)")
    p.add_argument("--format", choices=("png", "pdf", "svg"), default="png", help="figure format (default: %(default)s)")
    _add_style(p)
    p.add_argument("--out", default=None,
                   help="figure file (.png, .pdf, .svg); default RUN/figures/NAME plus the options that differ from "
                        "the command's own figure (_log, _clip2, _contour, _test_loss), so that figure is never "
                        "overwritten")
    _add_common(p, computes=False)

    p = sub.add_parser("export", help="a saved 2-D result as an interactive HTML page or VTK XML for ParaView",
                       description="html: one self-contained page (plotly.js inside; works offline) with the "
                                   "rotatable surface, the minima and any paths. vtk: the surface as a VTK XML "
                                   "structured grid (.vts, every metric as point data) and the paths as polylines "
                                   "(_paths.vtp).")
    p.add_argument("result", help="a result file (.npz or .json) under RUN/results/: a plane, basin map or race")
    p.add_argument("--format", choices=("html", "vtk"), default="html", help="(default: %(default)s)")
    p.add_argument("--out", default=None, help="output file (default: RUN/exports/NAME.html or .vts)")
    p.add_argument("--metric", default=None, help="the height (default: the training loss)")
    p.add_argument("--member", type=int, default=0, help="which member of a several-member surface (default: 0)")
    _add_common(p, computes=False)

    p = sub.add_parser("cache", help="where JAX's persistent compilation cache is, its size; --clear empties it",
                       description="Every command keeps the programs it compiles in JAX's persistent compilation "
                                   "cache, so that a repeated command (same shapes, another seed) skips "
                                   "compilation. The directory is $LANDSCAPE_COMPILE_CACHE if set (0 or off turns "
                                   "the cache off), else the user cache directory's landscape/jax "
                                   "(~/.cache/landscape/jax on Linux); at most 2 GiB, least recently used "
                                   "programs evicted first.")
    p.add_argument("--clear", action="store_true", help="remove every cached program")
    _add_common(p, computes=False)

    p = sub.add_parser("serve", help="keep one landscape process running: repeated commands skip start-up and "
                                     "tracing",
                       description="Start a resident landscape process for this environment. While it runs, every "
                                   "landscape command started with the same environment runs in it (its output, "
                                   "files and exit status as before), skipping the import of JAX, Flax and "
                                   "matplotlib and the tracing of programs it has traced before. A busy server, a "
                                   "multi-process command or --no-compile-cache runs in its own process; "
                                   "LANDSCAPE_SERVE=0 turns the server off for a command.")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--detach", action="store_true", help="start it in the background and return when it is ready")
    g.add_argument("--status", action="store_true", help="say whether a server runs for this environment (exit 1 if not)")
    g.add_argument("--stop", action="store_true", help="stop this environment's server (after its current command)")
    p.add_argument("--idle", type=_nonneg_float, default=1800.0, metavar="SECONDS",
                   help="leave after this many seconds without a command; 0: never (default: %(default)g)")
    _add_common(p, computes=False)

    p = sub.add_parser("prepare", help="download and prepare a tensorflow-datasets set (needs internet)",
                       description="Prepare a tensorflow-datasets set in the random-access array_record format.")
    p.add_argument("dataset", help="tensorflow-datasets name, e.g. mnist")
    p.add_argument("--data-dir", default=None, help="tensorflow-datasets data directory")
    _add_common(p, computes=False)
    return parser


