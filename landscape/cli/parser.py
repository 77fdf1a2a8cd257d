"""The ``landscape`` command's argument parser: flags, their types and their help."""

from __future__ import annotations

import argparse

from .options import (
    add_common,
    add_eval,
    add_grid_margin,
    add_model_file,
    add_output,
    add_plane,
    add_plane_run,
    add_run,
    add_save_every,
    add_statistics,
    add_style,
    add_train_options,
    at_least_two,
    names,
    nonneg_float,
    nonneg_int,
    positive_float,
    positive_floats,
    positive_int,
    step_list,
)

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
    add_train_options(p, defaults={})
    p.add_argument("--out", required=True, help="run directory to create")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    p.add_argument("--no-plot", action="store_true", help="do not draw the training-curve figures")
    add_style(p)
    add_common(p)

    p = sub.add_parser("info", help="per-seed final metrics, diverged seeds and the spread across seeds",
                       description="Summarise a run directory.")
    p.add_argument("run", help="run directory")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_model_file(p)
    add_common(p, computes=False)

    p = sub.add_parser("demo", help="the main job on the embedded digits, offline, in about a minute on 2 CPU cores",
                       description="Train 64 sigmoid networks 64-16-16-10 with the squared-difference cost "
                                   "on the bundled digits, then compute and draw a filter-normalised plane "
                                   "around seed 0, the interpolation from seed 0 to seed 1, the plane through "
                                   "seeds 0, 1, 2 with their trajectories, and seed 0's trajectory-PCA plane.")
    p.add_argument("--out", default="landscape-demo", help="output directory (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing output directory (without it, an interrupted demo with the same "
                        "--seeds and --steps goes on where it stopped)")
    p.add_argument("--seeds", type=positive_int, default=64, help="at least 3 (default: %(default)s)")
    p.add_argument("--steps", type=positive_int, default=2000, help="at least 2 (default: %(default)s)")
    add_common(p)

    p = sub.add_parser("surface", help="loss and accuracy on a random (filter-normalised) plane or line around a seed",
                       description="Evaluate the cost surface on a slice through one or more seeds' minima.")
    add_run(p, seeds_help="seed(s) whose minimum is the centre: 0 | 0,1,2 | all (default: 0)")
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
    p.add_argument("--grid", type=positive_int, default=51, help="points per axis (default: %(default)s)")
    p.add_argument("--span", type=positive_float, default=1.0, help="coefficients in [-span, span] (default: %(default)s)")
    p.add_argument("--key", type=nonneg_int, default=0, help="PRNG seed of the directions (default: %(default)s)")
    p.add_argument("--curvature", action="store_true",
                   help="also map the Hessian's largest and smallest eigenvalue and |lambda_min|/lambda_max over "
                        "the slice (Li et al. 2018): where a convex-looking surface is not; figure NAME_curvature")
    p.add_argument("--curvature-grid", type=positive_int, default=21,
                   help="points per axis of the curvature map, over the same span (default: %(default)s)")
    p.add_argument("--curvature-probes", type=nonneg_int, default=0,
                   help="Hutchinson probes per point for the trace too (default: %(default)s, no trace)")
    add_eval(p)

    p = sub.add_parser("interpolate", help="loss along the straight line between two seeds' minima, with barriers",
                       description="theta(t) = (1-t) theta_A + t theta_B, t beyond [0, 1] too; both barrier definitions.")
    add_run(p, seeds_help="two seeds A,B (default: 0,1)", default="0,1")
    p.add_argument("--grid", type=positive_int, default=61, help="points in [0, 1] (default: %(default)s)")
    p.add_argument("--extend", type=nonneg_float, default=0.5, help="continue to [-e, 1+e] (default: %(default)s)")
    add_eval(p)

    p = sub.add_parser("plane", help="the plane through three seeds' minima, with their trajectories",
                       description="The plane through three solutions (Garipov et al. 2018), solutions marked.")
    add_run(p, seeds_help="three seeds (default: 0,1,2)", default="0,1,2")
    add_grid_margin(p, 41)
    p.add_argument("--no-paths", action="store_true", help="do not project the training trajectories")
    add_eval(p)

    p = sub.add_parser("trajectory", help="the trajectory-PCA plane of one seed with its path",
                       description="PCA of the saved snapshots around the final parameters (Li et al. 2018, section 7).")
    add_run(p, seeds_help="seed (default: 0)", default="0")
    add_grid_margin(p, 41)
    add_eval(p)

    p = sub.add_parser("hessian", help="Hessian spectra of every seed: top eigenvalues, smallest, trace, density",
                       description="Curvature of the training loss at every member's final parameters "
                                   "(Lanczos with full re-orthogonalisation, Hutchinson trace, stochastic "
                                   "Lanczos quadrature).")
    p.add_argument("run", help="run directory written by `landscape train`")
    add_model_file(p)
    p.add_argument("--top", type=positive_int, default=5, help="number of top eigenvalues (default: %(default)s)")
    p.add_argument("--iters", type=positive_int, default=None, help="Lanczos iterations (default: max(2k+20, 40))")
    p.add_argument("--probes", type=positive_int, default=50, help="Hutchinson probes (default: %(default)s)")
    p.add_argument("--density", action="store_true", help="also the spectral density (SLQ)")
    p.add_argument("--curvature", choices=("hessian", "ggn", "fisher"), default="hessian",
                   help="the matrix: the Hessian, the generalised Gauss-Newton matrix, or the empirical Fisher "
                        "(default: %(default)s; the result is named after it)")
    p.add_argument("--per-layer", action="store_true",
                   help="also every layer's Hessian block (the other parameters held fixed): top eigenvalues, "
                        "smallest, trace (and density), with a figure per layer")
    p.add_argument("--batch-size", type=positive_int, default=None,
                   help="accumulate every curvature product over batches of this many training examples: the "
                        "same full-data numbers with one batch in memory (default: all examples at once)")
    p.add_argument("--minibatches", type=positive_int, default=0, metavar="K",
                   help="also the top eigenvalues and trace of K disjoint random mini-batches of --batch-size, one "
                        "by one (mean and spread per member; figure <name>_minibatch)")
    p.add_argument("--key", type=nonneg_int, default=0,
                   help="PRNG seed of the probes and mini-batches (default: %(default)s)")
    p.add_argument("--chunk-size", type=positive_int, default=16, help="members per compiled call (default: %(default)s)")
    p.add_argument("--name", default=None, help="result name (default: the --curvature, e.g. hessian)")
    add_statistics(p)
    add_output(p)

    p = sub.add_parser("sharpness", help="sharpness of every seed by every measure: worst-case, adaptive, m-, "
                                         "average-case, PAC-Bayes, Fisher-Rao, top eigenvalue, trace",
                       description="Sharpness of the training loss at every member's final parameters, by the "
                                   "measures the literature compares (Keskar et al. 2017; Foret et al. 2021; "
                                   "Kwon et al. 2021; Jiang et al. 2019; Liang et al. 2019), with their errors; "
                                   "a table per learning rate and a figure.")
    p.add_argument("run", help="run directory written by `landscape train`")
    add_model_file(p)
    p.add_argument("--measures", type=names, default=None,
                   help="comma-separated, from: worst, adaptive-worst, m-sharpness, average, adaptive-average, "
                        "pac-bayes, adaptive-pac-bayes, fisher-rao, lmax, trace (default: all but m-sharpness)")
    p.add_argument("--rho", type=positive_float, default=0.05,
                   help="radius of the worst-case ball and of m-sharpness's (default: %(default)s)")
    p.add_argument("--adaptive-rho", type=positive_float, default=0.5,
                   help="radius of the adaptive worst-case ball, relative to |theta| (default: %(default)s)")
    p.add_argument("--sigma", type=positive_float, default=0.01,
                   help="noise scale of the average-case measure (default: %(default)s)")
    p.add_argument("--adaptive-sigma", type=positive_float, default=0.1,
                   help="noise scale of the adaptive average-case measure, relative to |theta| (default: %(default)s)")
    p.add_argument("--batch-size", type=positive_int, default=128,
                   help="m of m-sharpness: examples per batch (default: %(default)s)")
    p.add_argument("--steps", type=positive_int, default=20,
                   help="gradient-ascent steps of the worst-case measures (default: %(default)s)")
    p.add_argument("--samples", type=at_least_two, default=64,
                   help="noise draws of the average-case and PAC-Bayes measures, probes of the trace "
                        "(default: %(default)s)")
    p.add_argument("--target", type=positive_float, default=0.1,
                   help="the PAC-Bayes measures' allowed expected loss increase (default: %(default)s)")
    p.add_argument("--eta", type=nonneg_float, default=0.0,
                   help="offset of the adaptive measures' scale |theta| + eta (0: exactly invariant to rescaling "
                        "ReLU layers; default: %(default)s)")
    p.add_argument("--fisher", choices=("empirical", "model"), default="empirical",
                   help="labels of the Fisher-Rao norm: the data's, or drawn from the model (cross-entropy runs) "
                        "(default: %(default)s)")
    p.add_argument("--key", type=nonneg_int, default=0, help="PRNG seed of every start, draw and probe "
                                                           "(default: %(default)s)")
    p.add_argument("--chunk-size", type=positive_int, default=16, help="members per compiled call (default: %(default)s)")
    p.add_argument("--name", default=None, help="result name (default: sharpness)")
    add_statistics(p)
    add_output(p)

    p = sub.add_parser("spawn", help="spawn children from snapshots and measure when training becomes stable "
                                     "(linear mode connectivity)",
                       description="From each parent member's snapshot at each spawn step, several children train "
                                   "on with different data orders, all as one ensemble (Frankle et al. 2020). OUT "
                                   "is a run directory of the children (parent, then step, then child); its "
                                   "results/instability holds the loss and error barriers between them.")
    p.add_argument("run", help="run directory written by `landscape train` with --snapshot-every")
    add_model_file(p)
    p.add_argument("--at", type=step_list, required=True, metavar="STEPS",
                   help="comma-separated spawn steps, each a snapshot step of the run")
    p.add_argument("--children", type=at_least_two, default=2,
                   help="children per parent and spawn step (every pair's barrier is measured; default: %(default)s)")
    p.add_argument("--steps", type=positive_int, default=None, help="training steps of every child (default: the run's)")
    p.add_argument("--seeds", default="all", help="the parents: all or comma-separated seeds (default: %(default)s)")
    p.add_argument("--lr", type=positive_float, default=None, help="the parents' learning rate, when the run swept several")
    p.add_argument("--batch-size", type=positive_int, default=None,
                   help="the children's minibatch size (default: the run's; full batch is refused)")
    p.add_argument("--key", type=nonneg_int, default=0, help="PRNG seed of the children's data orders "
                                                           "(default: %(default)s)")
    p.add_argument("--log-every", type=positive_int, default=None,
                   help="the children's history interval (default: their steps)")
    p.add_argument("--grid", type=at_least_two, default=25,
                   help="points on each straight line between two children (default: %(default)s)")
    p.add_argument("--threshold", type=nonneg_float, default=0.02,
                   help="error barrier below which a spawn step counts as stable (default: %(default)s)")
    add_statistics(p)
    p.add_argument("--chunk-size", type=positive_int, default=None, help="points per compiled call (default: auto)")
    add_save_every(p)
    p.add_argument("--out", required=True, help="the children's run directory")
    add_output(p)

    p = sub.add_parser("compare", help="compare the seeds' minima: barriers, basins, alignment, curves; a report",
                       description="Pairwise barriers, distances, cosines and prediction disagreement between "
                                   "the members that did not diverge; basins; optionally permutation alignment "
                                   "and a trained Bezier curve; writes RUN/report.md and figures.")
    p.add_argument("run", help="run directory written by `landscape train`")
    add_model_file(p)
    p.add_argument("--align", action="store_true", help="also barriers after weight-matching alignment of each pair")
    p.add_argument("--curve", default=None, metavar="A,B", help="train a Bezier curve between seeds A and B")
    p.add_argument("--curve-steps", type=positive_int, default=1000, help="(default: %(default)s)")
    p.add_argument("--tol", type=nonneg_float, default=0.05,
                   help="seeds whose barrier is below this share a basin (default: %(default)s)")
    p.add_argument("--include-unlearned", action="store_true",
                   help="also compare the members that did not learn (named in a warning); diverged members are "
                        "always left out")
    p.add_argument("--limit", type=positive_int, default=None, metavar="N",
                   help="compare only the first N seeds that did not diverge (pairs grow as N^2)")
    p.add_argument("--grid", type=positive_int, default=25, help="interpolation points in [0, 1] (default: %(default)s)")
    p.add_argument("--lr", type=positive_float, default=None, help="the learning rate, when the run swept several")
    p.add_argument("--key", type=nonneg_int, default=0, help="PRNG seed of the curve training (default: %(default)s)")
    add_statistics(p)
    p.add_argument("--chunk-size", type=positive_int, default=None, help="points per compiled call (default: auto)")
    p.add_argument("--name", default=None, help="result name (default: compare)")
    add_save_every(p)
    add_output(p)

    p = sub.add_parser("basins", help="basins of attraction: train every point of a plane and see which minimum "
                                      "each reaches",
                       description="Every point of the plane through three seeds' minima (or of a random "
                                   "filter-normalised plane around one) is a starting point in the full parameter "
                                   "space; all of them are trained as one ensemble with the run's optimizer, loss, "
                                   "data and batch size, and each is labelled by the minimum whose basin it ends "
                                   "in (the barrier to that minimum only below --tol, after weight matching), "
                                   "'several minima', or 'elsewhere'.")
    add_run(p, seeds_help="three seeds (their plane) or one (a random plane around it) "
                                                 "(default: 0,1,2)", default="0,1,2")
    p.add_argument("--steps", type=positive_int, default=None,
                   help="training steps of every start (default: the run's)")
    p.add_argument("--tol", type=nonneg_float, default=None,
                   help="barrier (loss units) below which an end point is in a minimum's basin (default: half the "
                        "smallest barrier between the three minima; 0.05 around one)")
    add_plane(p, grid=41, margin=0.25, key=0, key_help="minibatch orders and a random plane",
               grid_help="starts per axis")
    add_output(p)

    p = sub.add_parser("race", help="optimizer race: several optimizers from the same starts, paths on one plane",
                       description="Several optimizers (and learning rates, and minibatch sizes) train from the same "
                                   "starting points of the plane through three seeds' minima (or a random plane "
                                   "around one) in one vmapped program per batch size; their paths are projected "
                                   "onto that fixed plane and their costs drawn against steps (a still and an "
                                   "animation).")
    add_plane_run(p)
    p.add_argument("--optimizers", default="sgd,momentum,adam",
                   help="comma-separated NAME or NAME@LR (sgd, momentum, nesterov, adam, adamw, rmsprop; "
                        "default: %(default)s)")
    p.add_argument("--lr", type=positive_floats, default=None,
                   help="learning rates of the optimizers named without @LR: one for all or one each (default: the "
                        "run's for its optimizer, the run's x (1 - momentum) for momentum after SGD, 0.01 for "
                        "adam/adamw/rmsprop)")
    p.add_argument("--batch-size", dest="batch_sizes", default=None, metavar="SIZES",
                   help="comma-separated minibatch sizes or 'full'; every optimizer runs with each (default: the "
                        "run's)")
    p.add_argument("--starts", type=positive_int, default=4, help="random starting points of the plane "
                                                                  "(default: %(default)s)")
    p.add_argument("--steps", type=positive_int, default=None, help="optimizer steps (default: the run's)")
    p.add_argument("--snapshot-every", type=positive_int, default=None,
                   help="steps between path points (default: steps/50)")
    add_plane(p, grid=41, margin=0.25, key=0, key_help="the starts and minibatch orders")
    p.add_argument("--no-animation", action="store_true", help="draw the still only, not the GIF")
    add_output(p)

    p = sub.add_parser("animate", help="lecture animation: gradient descent from many starts inside the plane of "
                                       "three minima",
                       description="Gradient descent inside the plane through three seeds' minima (or a random plane "
                                   "around one) from many random starting points: each step follows the projection "
                                   "of the true gradient onto the plane, so the dots move on exactly the surface "
                                   "that is drawn. Paths are coloured by the minimum they end at. Writes a still and "
                                   "a 16:9 animation (GIF, or MP4 when ffmpeg is installed).")
    add_plane_run(p)
    p.add_argument("--starts", type=positive_int, default=40, help="random starting points (default: %(default)s)")
    p.add_argument("--steps", type=positive_int, default=1000, help="descent steps (default: %(default)s)")
    p.add_argument("--lr", type=positive_float, default=None, help="descent step size (default: the run's)")
    add_plane(p, grid=61, margin=0.6, key=7, key_help="the starts")
    p.add_argument("--frames", type=positive_int, default=90, help="animation frames (default: %(default)s)")
    p.add_argument("--pixels", type=positive_int, default=1600,
                   help="animation width in pixels, 16:9 (default: %(default)s; 1920 for a 1080p projector)")
    p.add_argument("--movie", choices=("gif", "mp4"), default="gif",
                   help="animation format (mp4 needs ffmpeg; without it a GIF is written) (default: %(default)s)")
    add_output(p)

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
    p.add_argument("--clip", type=positive_float, default=None, help="clip values above this (default: 95th percentile)")
    p.add_argument("--format", choices=("png", "pdf", "svg"), default="png", help="figure format (default: %(default)s)")
    add_style(p)
    p.add_argument("--out", default=None,
                   help="figure file (.png, .pdf, .svg); default RUN/figures/NAME plus the options that differ from "
                        "the command's own figure (_log, _clip2, _contour, _test_loss), so that figure is never "
                        "overwritten")
    add_common(p, computes=False)

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
    p.add_argument("--plotly-js", choices=("inline", "shared"), default="inline",
                   help="html: plotly.js inside the page (one self-contained 4.8 MB file), or shared: one "
                        "plotly.min.js beside the pages of the directory, each page then its data only "
                        "(39 kB for a 51x51 plane) (default: %(default)s)")
    add_common(p, computes=False)

    p = sub.add_parser("cache", help="where JAX's persistent compilation cache is, its size; --clear empties it",
                       description="Every command keeps the programs it compiles in JAX's persistent compilation "
                                   "cache, so that a repeated command (same shapes, another seed) skips "
                                   "compilation. The directory is $LANDSCAPE_COMPILE_CACHE if set (0 or off turns "
                                   "the cache off), else the user cache directory's landscape/jax "
                                   "(~/.cache/landscape/jax on Linux); at most 2 GiB, least recently used "
                                   "programs evicted first.")
    p.add_argument("--clear", action="store_true", help="remove every cached program")
    add_common(p, computes=False)

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
    p.add_argument("--idle", type=nonneg_float, default=1800.0, metavar="SECONDS",
                   help="leave after this many seconds without a command; 0: never (default: %(default)g)")
    add_common(p, computes=False)

    p = sub.add_parser("prepare", help="download and prepare a tensorflow-datasets set (needs internet)",
                       description="Prepare a tensorflow-datasets set in the random-access array_record format.")
    p.add_argument("dataset", help="tensorflow-datasets name, e.g. mnist")
    p.add_argument("--data-dir", default=None, help="tensorflow-datasets data directory")
    add_common(p, computes=False)
    return parser
