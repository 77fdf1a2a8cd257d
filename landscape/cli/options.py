"""The flags several commands share, and the types that parse their values (one clear line for a bad value).
"""

from __future__ import annotations

import argparse
import math

from ..core import precision
from ..core.errors import ConfigError
from ..core.loss_names import LOSS_NAMES, loss_name


def number(cast, ok, what: str):
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


positive_int = number(int, lambda v: v >= 1, "a positive integer")


nonneg_int = number(int, lambda v: v >= 0, "a non-negative integer")


positive_float = number(float, lambda v: math.isfinite(v) and v > 0, "a finite positive number")


nonneg_float = number(float, lambda v: math.isfinite(v) and v >= 0, "a finite non-negative number")


at_least_two = number(int, lambda v: v >= 2, "an integer of at least 2")


def loss(text: str) -> str:
    """A loss by any name Python accepts (:data:`landscape.core.loss_names.LOSS_NAMES`), as its canonical name."""
    try:
        return loss_name(text)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def names(text: str) -> tuple[str, ...]:
    """Comma-separated names (``worst,lmax``); the command checks them."""
    out = tuple(t.strip() for t in text.split(",") if t.strip())
    if not out:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return out


unit_float = number(float, lambda v: 0.0 <= v < 1.0, "a number in [0, 1)")


def step_list(text: str) -> tuple[int, ...]:
    """Comma-separated distinct training steps (``0,50,100``)."""
    try:
        out = tuple(int(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated steps like 0,50,100, got {text!r}") from None
    if any(v < 0 for v in out) or len(set(out)) != len(out):
        raise argparse.ArgumentTypeError(f"steps must be distinct and non-negative, got {text!r}")
    return out


def widths(text: str) -> tuple[int, ...]:
    if text.strip().lower() in ("", "none"):
        return ()
    try:
        widths = tuple(int(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"widths must be comma-separated integers like 16,16, got {text!r}") from None
    if any(w < 1 for w in widths):
        raise argparse.ArgumentTypeError(f"widths must be positive, got {text!r}")
    return widths


def positive_floats(text: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if any(not math.isfinite(v) or v <= 0 for v in vals):
        raise argparse.ArgumentTypeError(f"learning rates must be finite and positive, got {text!r}")
    return vals


def csv(values) -> str:
    """A tuple default as the user types it: ``(16, 16)`` -> ``16,16``, ``(1.0,)`` -> ``1``."""
    return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def add_common(p: argparse.ArgumentParser, *, computes: bool = True) -> None:
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
    g.add_argument("--devices", type=positive_int, default=None,
                   help="shard over the first N devices (default: every device of every process)")
    g.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                   help="multi-process run: address of process 0 (or $LANDSCAPE_COORDINATOR / $JAX_COORDINATOR_ADDRESS)")
    g.add_argument("--num-processes", type=positive_int, default=None,
                   help="multi-process run: number of processes (or $LANDSCAPE_NUM_PROCESSES / $JAX_NUM_PROCESSES)")
    g.add_argument("--process-id", type=nonneg_int, default=None,
                   help="multi-process run: this process's index (or $LANDSCAPE_PROCESS_ID / $JAX_PROCESS_ID)")
    g.add_argument("--join-timeout", type=positive_int, default=120,
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


def add_train_options(p: argparse.ArgumentParser, *, defaults: dict) -> None:
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
    g.add_argument("--hidden", type=widths, default=hidden,
                   help=f"MLP hidden widths, comma-separated (default: {csv(hidden)})")
    g.add_argument("--channels", type=widths, default=(8, 16),
                   help="CNN convolution channels, comma-separated (default: 8,16)")
    g.add_argument("--kernel", type=positive_int, default=3, help="CNN convolution size (default: %(default)s)")
    g.add_argument("--depth", type=positive_int, default=10,
                   help="ResNet weighted layers, 2*stages*n+2 (default: %(default)s: 2 blocks per stage)")
    g.add_argument("--width", type=positive_int, default=8,
                   help="ResNet channels of the first stage, doubled per stage (default: %(default)s)")
    g.add_argument("--stages", type=positive_int, default=2,
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
    g.add_argument("--loss", type=loss, default=defaults.get("loss", "mse"), metavar="{mse,cross_entropy}",
                   help="mse: squared difference to one-hot targets, summed over classes, averaged over examples; "
                        f"cross_entropy: softmax cross-entropy of the logits (also {', '.join(n for n in LOSS_NAMES if LOSS_NAMES[n] != n)})")
    g.add_argument("--optimizer", choices=("sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop"),
                   default="sgd", help="(default: %(default)s)")
    lr = defaults.get("lr", (1.0,))
    g.add_argument("--lr", type=positive_floats, default=lr,
                   help=f"learning rate; a comma-separated list sweeps seeds × learning rates (default: {csv(lr)})")
    g.add_argument("--momentum", type=unit_float, default=0.9, help="for momentum / nesterov / rmsprop")
    g.add_argument("--steps", type=positive_int, default=defaults.get("steps", 2000), help="(default: %(default)s)")
    g.add_argument("--batch-size", type=positive_int, default=None, help="minibatch size; omit for full-batch GD")
    g.add_argument("--seeds", type=positive_int, default=defaults.get("seeds", 64),
                   help="number of random starts, seeds 0..N-1 (default: %(default)s)")
    g.add_argument("--key", type=nonneg_int, default=0, help="root PRNG seed of the sweep (default: %(default)s)")
    g.add_argument("--log-every", type=positive_int, default=defaults.get("log_every", 20),
                   help="record train/test loss and accuracy every N steps (default: %(default)s)")
    g.add_argument("--snapshot-every", type=positive_int, default=defaults.get("snapshot_every"),
                   help="keep parameter snapshots every N steps (multiple of --log-every) for trajectory plots")
    g = p.add_argument_group("curvature during training (the edge of stability)")
    g.add_argument("--track-curvature", dest="track_every", type=positive_int, default=None, metavar="N",
                   help="every N steps (a multiple of --log-every), inside the compiled loop, the top Hessian "
                        "eigenvalue(s) of every member's training loss (Lanczos); stored with the run and drawn "
                        "against 2/lr")
    g.add_argument("--track-top", type=positive_int, default=1, metavar="K",
                   help="how many of the largest eigenvalues to track (default: %(default)s)")
    g.add_argument("--track-trace", action="store_true", help="also track the Hessian trace (Hutchinson)")
    g.add_argument("--track-subset", type=positive_int, default=None, metavar="N",
                   help="take the tracked Hessian on the first N training examples (default: all of them)")


def add_model_file(p) -> None:
    p.add_argument("--model-file", default=None, metavar="PATH.py:FACTORY",
                   help="for a run of your own model: the file it was trained from (executed; checked by SHA-256)")


def add_run(p, *, seeds_help: str, default: str = "0") -> None:
    """The run directory and the members to analyse: ``--seeds`` on every command (``--seed``
    is the same flag, for one member)."""
    p.add_argument("run", help="run directory written by `landscape train`")
    add_model_file(p)
    p.add_argument("--seeds", "--seed", dest="seeds", default=default, help=seeds_help)
    p.add_argument("--lr", type=positive_float, default=None,
                   help="the learning rate of the members, when the run swept several")


def add_style(p) -> None:
    p.add_argument("--style", choices=("paper", "slides"), default="paper",
                   help="figure style: paper (a 3.4-inch journal column, 7-8 pt type) or slides (about twice the "
                        "size, 15-19 pt type, thicker lines) (default: %(default)s); PDFs embed TrueType fonts, "
                        "SVGs keep text editable")


def add_output(p) -> None:
    p.add_argument("--overwrite", action="store_true", help="recompute and replace a saved result")
    p.add_argument("--no-plot", action="store_true", help="do not draw the figures")
    add_style(p)
    p.add_argument("--format", choices=("png", "pdf", "svg"), default="png", help="figure format (default: %(default)s)")
    add_common(p)


def add_save_every(p) -> None:
    p.add_argument("--save-every", type=nonneg_float, default=5.0, metavar="SECONDS",
                   help="save progress (for resuming) at most this often (default: %(default)s)")


def add_statistics(p) -> None:
    p.add_argument("--statistics", choices=("recompute", "running"), default=None,
                   help="for a model with BatchNorm: recompute the training set's statistics at every evaluated "
                        "point (default), or use one member's saved running averages everywhere (right at its "
                        "minimum only)")
    p.add_argument("--noise-key", dest="noise", type=int, default=None, metavar="SEED",
                   help="for a model with dropout: evaluate in training mode with this fixed noise key (a "
                        "stochastic landscape; default: evaluation mode, no noise)")


def add_eval(p) -> None:
    p.add_argument("--test", action="store_true", help="evaluate on the test split too")
    add_statistics(p)
    p.add_argument("--chunk-size", type=positive_int, default=None, help="points per compiled call (default: auto)")
    add_save_every(p)
    p.add_argument("--name", default=None, help="result name (default: derived from the settings)")
    add_output(p)


def add_grid_margin(p, grid: int) -> None:
    p.add_argument("--grid", type=positive_int, default=grid, help="points per axis (default: %(default)s)")
    p.add_argument("--margin", type=nonneg_float, default=0.3,
                   help="grid margin, fraction of the extent (default: %(default)s)")


def add_plane(p, *, grid: int, margin: float, key: int, key_help: str, grid_help: str = "plane points per axis") -> None:
    """The plane of basins / race / animate: grid, margin, span, alignment, key, statistics, chunks, name."""
    p.add_argument("--grid", type=positive_int, default=grid, help=f"{grid_help} (default: %(default)s)")
    p.add_argument("--margin", type=nonneg_float, default=margin,
                   help="grid margin around the three minima, fraction of their extent (default: %(default)s)")
    p.add_argument("--span", type=positive_float, default=1.0,
                   help="half-width of a random plane around one seed (default: %(default)s)")
    p.add_argument("--align", choices=("auto", "yes", "no"), default="auto",
                   help="weight-match the minima first (auto: when the model's permutation structure is known: "
                        "stated, or inferred from the traced model)")
    p.add_argument("--key", type=int, default=key, help=f"PRNG seed of {key_help} (default: %(default)s)")
    add_statistics(p)
    p.add_argument("--chunk-size", type=positive_int, default=None, help="points per compiled call (default: auto)")
    p.add_argument("--name", default=None, help="result name (default: derived from the settings)")


def add_plane_run(p) -> None:
    """The run and the seeds of a plane (three: their plane; one: a random plane around it)."""
    p.add_argument("run", help="run directory written by `landscape train`")
    add_model_file(p)
    p.add_argument("--seeds", default="0,1,2", help="three seeds (their plane) or one (default: %(default)s)")
    p.add_argument("--member-lr", type=positive_float, default=None,
                   help="the learning rate of the seeds' members, when the run swept several")
