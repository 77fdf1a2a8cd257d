"""The landscape commands — ``surface``, ``interpolate``, ``plane``, ``trajectory``: slices of
parameter space around and between a run's minima, each a stored result.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..core.errors import ConfigError
from ..core.execution import Execution
from ..store import members
from . import common
from .common import Outcome

__all__ = ["SurfaceSpec", "surface", "InterpolationSpec", "interpolate", "PlaneSpec", "plane", "TrajectorySpec",
           "trajectory"]


@dataclasses.dataclass(frozen=True)
class SurfaceSpec:
    """A random (filter-normalised, Li et al. 2018) plane or line around members' minima, or
    the plane of their top Hessian eigenvectors.

    Attributes:
      seeds: ``"0"``, ``"0,1,2"`` or ``"all"``.
      lr: their learning rate in a sweep.
      directions: ``"random"`` or ``"hessian"`` (unit eigenvectors; ``norm`` is then ``"none"``).
      norm: ``"filter"``, ``"layer"``, ``"model"`` or ``"none"``.
      keep_biases: give biases a direction too (default: zero, as Li et al.).
      orthogonal: Gram-Schmidt the second direction against the first.
      dims: 1 (a line) or 2 (a plane).
      grid: points per axis;
      span: coefficients in [-span, span].
      key: PRNG seed of the directions.
      test: evaluate the test split too.
      curvature: also map the Hessian's λ_max, λ_min and ``|λ_min| / λ_max`` over the slice
        (Li et al. 2018, section 6) on its own grid of ``curvature_grid`` points per axis
        spanning the same range.
      curvature_grid: points per axis of the curvature map's grid.
      curvature_probes: Hutchinson probes per point of the map (``0``: no trace).
      statistics: for a model with BatchNorm: ``"recompute"`` (default) or ``"running"``.
      noise: for a model with random layers (dropout): ``None`` evaluates in evaluation mode
        (default); a seed evaluates in training mode with that fixed noise key (a stochastic
        landscape, :func:`landscape.models.with_noise`).

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10, snapshot_every=10))
      >>> out = ls.analyses.surface(run, ls.analyses.SurfaceSpec(seeds="all", grid=5, dims=1, test=True))
      >>> out.arrays["value/train_loss"].shape, "value/test_loss" in out.arrays   # a line per member
      ((3, 5), True)
    """

    seeds: str = "0"
    lr: float | None = None
    directions: str = "random"
    norm: str = "filter"
    keep_biases: bool = False
    orthogonal: bool = False
    dims: int = 2
    grid: int = 51
    span: float = 1.0
    key: int = 0
    test: bool = False
    curvature: bool = False
    curvature_grid: int = 21
    curvature_probes: int = 0
    statistics: str | None = None
    noise: int | None = None


def surface(run, spec: SurfaceSpec, *, name: str | None = None, overwrite: bool = False,
            execution: Execution = Execution()) -> Outcome:
    """The cost (and accuracy) on a slice through members' minima; see :class:`SurfaceSpec`.

    Args:
      run: the run directory.
      spec: the settings (:class:`SurfaceSpec`); everything the numbers depend on.
      name: the result's name under ``RUN/results/`` (default: built from the settings that differ from their defaults).
      overwrite: recompute and replace a saved result (otherwise a current one is reused and one with other
        settings is refused, naming what differs).
      execution: how it runs (progress, devices, chunk size); changes no number.

    Returns:
      an :class:`Outcome` — the arrays, the metadata with its provenance, the path, whether it was
      reused; values ``(G,)`` / ``(G, G)``, or with several members ``(S, G[, G])``.

    Raises:
      ConfigError: bad settings, or a saved result of this name computed from something else.

    The same as ``landscape surface``.

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10, snapshot_every=10))
      >>> out = ls.analyses.surface(run, ls.analyses.SurfaceSpec(seeds="0", grid=5, test=True))
      >>> sorted(k for k in out.arrays if k.startswith("value/"))
      ['value/test_accuracy', 'value/test_loss', 'value/train_accuracy', 'value/train_loss']
    """
    import jax

    from .. import models
    from ..geometry import directions
    from ..geometry import surface as surface_mod

    ens = common.load(run, execution)
    idx = members.select(ens, spec.seeds, spec.lr)
    norm = "none" if spec.directions == "hessian" else spec.norm
    kind = "line" if spec.dims == 1 else "plane"
    default = (f"{kind}_{members.tag(ens, idx)}_{spec.directions}_{norm}_g{spec.grid}_s{spec.span:g}"
               + common.suffix(key=spec.key or None, biases=spec.keep_biases, orth=spec.orthogonal, test=spec.test,
                         curv=spec.curvature and spec.curvature_grid, **common.modes(spec)))
    settings = common.settings(ens, {"command": "surface", "members": idx, **dataclasses.asdict(spec), "norm": norm})
    warn = members.warnings(ens, idx)
    seeds = [int(ens.seeds[i]) for i in idx]

    def compute(res):
        batches = common.batches(ens, spec.test, execution)
        key = jax.random.key(spec.key)
        centers = jax.tree_util.tree_map(lambda x: x[np.asarray(idx)], ens.params)
        model = common.model(ens, settings, idx, batches)
        if spec.directions == "hessian":
            common.single_process("hessian directions")
            dirs = _hessian_directions(model, ens, batches, centers, spec.dims, key)
        else:
            dirs = directions.member_directions(key, np.asarray(seeds), centers, spec.dims, norm=norm,
                                                ignore_biases=not spec.keep_biases, orthogonal=spec.orthogonal)
        fn = models.metrics_fn(model, ens.config["loss"])
        kw = {**common.evaluation(execution, res, f"{kind} of {len(idx)} member(s)"), "data": batches, "stacked": True}
        if spec.dims == 1:
            surf = surface_mod.line(fn, centers, dirs[0], span=spec.span, num=spec.grid, **kw)
        else:
            surf = surface_mod.plane(fn, centers, dirs, span=spec.span, num=spec.grid, **kw)
        curv = {}
        if spec.curvature:
            curv = _curvature_map(model, ens, batches, centers, dirs[: spec.dims], spec, key, res, execution)
        if len(idx) == 1:  # a single member is stored without the member axis
            surf = surface_mod.Surface(surf.kind, surf.axes, {k: v[0] for k, v in surf.values.items()}, surf.extras,
                                       {**surf.meta, "cosine": surf.meta.get("cosine", [None])[0]})
            curv = {k: (v if k.startswith("curvature/axis_") else v[0]) for k, v in curv.items()}
        labels = members.labels(ens, idx)
        what = "top Hessian eigenvectors" if spec.directions == "hessian" else f"{norm}-normalised directions"
        arrays, meta = common.surface_arrays(surf, {
            "seeds": seeds, "learning_rates": [float(ens.learning_rates[i]) for i in idx], "labels": labels,
            "title": f"{labels[0]}, {what}" if len(idx) == 1 else None,
            "axis_labels": [r"$\alpha$ (direction 1)", r"$\beta$ (direction 2)"], "xlabel": r"$\alpha$",
            "norm": norm, "ignore_biases": not spec.keep_biases})
        return {**arrays, **curv}, meta

    return common.stored(run, name or default, settings, overwrite, warn, compute)


def _curvature_map(model, ens, batches, centers, dirs, spec: SurfaceSpec, key, res, execution: Execution) -> dict:
    """The Hessian's extreme eigenvalues on a ``curvature_grid`` grid of the slice, as
    ``curvature/axis_i`` and ``curvature/<quantity> (S, n[, n])`` arrays (resumable)."""
    import jax

    from .. import curvature as hessian_mod
    from .. import models
    from ..core.distributed import is_writer
    from ..data import Split

    common.single_process("curvature maps")
    if spec.curvature_grid < 2:
        raise ConfigError(f"a curvature map needs at least 2 points per axis, got {spec.curvature_grid}")
    axis = np.linspace(-spec.span, spec.span, spec.curvature_grid)
    grids = np.meshgrid(*([axis] * spec.dims), indexing="ij")
    coords = np.stack([g.ravel() for g in grids], axis=1)
    loss = models.loss_fn(model, Split(*batches["train"]), ens.config["loss"])
    out = hessian_mod.curvature_map(
        loss, centers, list(dirs), coords, key=jax.random.fold_in(key, 2), trace_probes=spec.curvature_probes,
        stacked=True,
        execution=dataclasses.replace(execution, checkpoint=res.checkpoints / "curvature.npz", keep_checkpoint=True,
                                      progress=execution.progress and is_writer()))
    shape = (spec.curvature_grid,) * spec.dims
    arrays = {f"curvature/axis_{i}": axis for i in range(spec.dims)}
    arrays.update({f"curvature/{k}": v.reshape(v.shape[:1] + shape) for k, v in out.items()})
    return arrays


def _hessian_directions(model, ens, batches, centers, k: int, key):
    """The top-``k`` Hessian eigenvectors of the training loss at each centre (leaves ``(S, ...)``)."""
    import jax

    from .. import curvature as hessian_mod
    from .. import models
    from ..data import Split

    f = models.loss_fn(model, Split(*batches["train"]), ens.config["loss"])
    n = jax.tree_util.tree_leaves(centers)[0].shape[0]

    def one(c, i):
        return hessian_mod.top_eigenpairs(f, c, k, key=jax.random.fold_in(key, i)).vectors

    return jax.jit(jax.vmap(one))(centers, jax.numpy.arange(n))


@dataclasses.dataclass(frozen=True)
class InterpolationSpec:
    """The straight line between two members' minima, ``t`` in ``[-extend, 1 + extend]``
    (Goodfellow et al. 2015), with both barrier definitions.

    Attributes:
      seeds: the two members, ``"A,B"``.
      lr: the members' learning rate, when the run swept several.
      grid: points on ``[0, 1]``.
      extend: how far the line continues beyond each end.
      test: also the test set's metrics.
      statistics: for a model with BatchNorm: ``"recompute"`` (default) or ``"running"``.
      noise: for a model with random layers (dropout): ``None`` evaluates in evaluation mode
        (default); a seed evaluates in training mode with that fixed noise key (a stochastic
        landscape, :func:`landscape.models.with_noise`).

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10, snapshot_every=10))
      >>> out = ls.analyses.interpolate(run, ls.analyses.InterpolationSpec(seeds="0,2", grid=11, extend=0.0))
      >>> out.arrays["value/train_loss"].shape
      (11,)
    """

    seeds: str = "0,1"
    lr: float | None = None
    grid: int = 61
    extend: float = 0.5
    test: bool = False
    statistics: str | None = None
    noise: int | None = None


def interpolate(run, spec: InterpolationSpec, *, name: str | None = None, overwrite: bool = False,
                execution: Execution = Execution()) -> Outcome:
    """Cost along ``(1 - t) theta_A + t theta_B``; ``meta["barriers"]`` per metric.

    Args:
      run: the run directory.
      spec: the settings (:class:`InterpolationSpec`); everything the numbers depend on.
      name: the result's name under ``RUN/results/`` (default: built from the settings that differ from their defaults).
      overwrite: recompute and replace a saved result (otherwise a current one is reused and one with other
        settings is refused, naming what differs).
      execution: how it runs (progress, devices, chunk size); changes no number.

    Returns:
      an :class:`Outcome` — the arrays, the metadata with its provenance, the path, whether it was reused.

    Raises:
      ConfigError: bad settings, or a saved result of this name computed from something else.

    The same as ``landscape interpolate``.

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10, snapshot_every=10))
      >>> out = ls.analyses.interpolate(run, ls.analyses.InterpolationSpec(seeds="0,1", grid=11))
      >>> sorted(out.meta["barriers"])                                     # both barrier definitions of the cost
      ['train_loss']
    """
    from .. import models
    from ..geometry import surface as surface_mod

    ens = common.load(run, execution)
    a, b = members.select(ens, spec.seeds, spec.lr, 2)
    default = (f"interpolate_{members.tag(ens, [a, b]).replace('seeds', 'seed').replace('-', '_')}_g{spec.grid}"
               + common.suffix(e=None if spec.extend == 0.5 else f"{spec.extend:g}", test=spec.test,
                         **common.modes(spec)))
    settings = common.settings(ens, {"command": "interpolate", "members": [a, b], **dataclasses.asdict(spec)})

    def compute(res):
        la, lb = members.label(ens, a), members.label(ens, b)
        batches = common.batches(ens, spec.test, execution)
        surf = surface_mod.interpolation(models.metrics_fn(common.model(ens, settings, [a, b], batches),
        ens.config["loss"]),
                                         ens.member(a), ens.member(b), num=spec.grid, extend=spec.extend,
                                         data=batches,
                                         **common.evaluation(execution, res, f"interpolation {la} -> {lb}"))
        return common.surface_arrays(surf, {"seeds": [int(ens.seeds[a]), int(ens.seeds[b])], "labels": [la, lb],
                                      "title": f"{la} (t=0) to {lb} (t=1)"})

    return common.stored(run, name or default, settings, overwrite, members.warnings(ens, [a, b]), compute)


@dataclasses.dataclass(frozen=True)
class PlaneSpec:
    """The plane through three members' minima (Garipov et al. 2018), with their training
    paths projected when the run kept snapshots.

    Attributes:
      seeds: the three members, ``"A,B,C"``.
      lr: the members' learning rate, when the run swept several.
      grid: points per axis.
      margin: the grid's margin around the minima.
      paths: project the training paths (when the run kept snapshots).
      test: also the test set's metrics.
      statistics: for a model with BatchNorm: ``"recompute"`` (default) or ``"running"``.
      noise: for a model with random layers (dropout): ``None`` evaluates in evaluation mode
        (default); a seed evaluates in training mode with that fixed noise key (a stochastic
        landscape, :func:`landscape.models.with_noise`).

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10, snapshot_every=10))
      >>> out = ls.analyses.plane(run, ls.analyses.PlaneSpec(seeds="0,1,2", grid=5))
      >>> out.arrays["value/train_loss"].shape, out.arrays["extra/points"].shape
      ((5, 5), (3, 2))
    """

    seeds: str = "0,1,2"
    lr: float | None = None
    grid: int = 41
    margin: float = 0.3
    paths: bool = True
    test: bool = False
    statistics: str | None = None
    noise: int | None = None


def plane(run, spec: PlaneSpec, *, name: str | None = None, overwrite: bool = False,
          execution: Execution = Execution()) -> Outcome:
    """Cost on the plane through three minima; see :class:`PlaneSpec`.

    Args:
      run: the run directory.
      spec: the settings (:class:`PlaneSpec`); everything the numbers depend on.
      name: the result's name under ``RUN/results/`` (default: built from the settings that differ from their defaults).
      overwrite: recompute and replace a saved result (otherwise a current one is reused and one with other
        settings is refused, naming what differs).
      execution: how it runs (progress, devices, chunk size); changes no number.

    Returns:
      an :class:`Outcome` — the arrays, the metadata with its provenance, the path, whether it was reused.

    Raises:
      ConfigError: bad settings, or a saved result of this name computed from something else.

    The same as ``landscape plane``.

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10, snapshot_every=10))
      >>> out = ls.analyses.plane(run, ls.analyses.PlaneSpec(seeds="0,1,2", grid=5))
      >>> sorted(k for k in out.arrays if k.startswith("extra/path_"))      # each seed's path, projected
      ['extra/path_0', 'extra/path_1', 'extra/path_2']
    """
    from .. import models
    from ..geometry import surface as surface_mod

    ens = common.load(run, execution)
    idx = members.select(ens, spec.seeds, spec.lr, 3)
    use_paths = spec.paths and ens.trajectory is not None
    default = (f"plane_{members.tag(ens, idx).replace('seeds', 'seed').replace('-', '_')}_g{spec.grid}"
               + common.suffix(m=None if spec.margin == 0.3 else f"{spec.margin:g}", test=spec.test,
                         **common.modes(spec)))
    settings = common.settings(ens, {"command": "plane", "members": idx, **dataclasses.asdict(spec),
    "paths": use_paths})

    def compute(res):
        labels = members.labels(ens, idx)
        paths = [ens.trajectory.member(i) for i in idx] if use_paths else None
        batches = common.batches(ens, spec.test, execution)
        surf = surface_mod.three_point(models.metrics_fn(common.model(ens, settings, idx, batches), ens.config["loss"]),
                                       *[ens.member(i) for i in idx], num=spec.grid, margin=spec.margin,
                                       data=batches, paths=paths,
                                       **common.evaluation(execution, res, "plane through three solutions"))
        return common.surface_arrays(surf, {
            "seeds": [int(ens.seeds[i]) for i in idx], "labels": labels, "point_labels": labels,
            "path_labels": [f"{lab} path" for lab in labels] if use_paths else None,
            "axis_labels": ["distance along u", "distance along v"],
            "title": "plane through " + ("seeds " + ", ".join(str(int(ens.seeds[i])) for i in idx)
                                         if not members.swept(ens) else "; ".join(labels))})

    return common.stored(run, name or default, settings, overwrite, members.warnings(ens, idx), compute)


@dataclasses.dataclass(frozen=True)
class TrajectorySpec:
    """The PCA plane of one member's saved training snapshots around its final parameters
    (Li et al. 2018, section 7).

    Attributes:
      seeds: the member, one seed (``"0"``; an int is accepted), as ``seeds`` of the other specs.
      lr: the members' learning rate, when the run swept several.
      grid: points per axis.
      margin: the grid's margin around the path.
      test: also the test set's metrics.
      statistics: for a model with BatchNorm: ``"recompute"`` (default) or ``"running"``.
      noise: for a model with random layers (dropout): ``None`` evaluates in evaluation mode
        (default); a seed evaluates in training mode with that fixed noise key (a stochastic
        landscape, :func:`landscape.models.with_noise`).
        (A result saved when this field was called ``seed`` is reused as if saved under ``seeds``.)

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10, snapshot_every=10))
      >>> out = ls.analyses.trajectory(run, ls.analyses.TrajectorySpec(seeds="1", grid=5))
      >>> out.arrays["value/train_loss"].shape, len(out.meta["explained_variance_ratio"])
      ((5, 5), 2)
    """

    seeds: str = "0"
    lr: float | None = None
    grid: int = 41
    margin: float = 0.3
    test: bool = False
    statistics: str | None = None
    noise: int | None = None

    def __post_init__(self):
        if isinstance(self.seeds, (int, np.integer)) and not isinstance(self.seeds, bool):
            object.__setattr__(self, "seeds", str(int(self.seeds)))


def trajectory(run, spec: TrajectorySpec, *, name: str | None = None, overwrite: bool = False,
               execution: Execution = Execution()) -> Outcome:
    """Cost on the trajectory-PCA plane; ``meta["explained_variance_ratio"]``.

    Args:
      run: the run directory.
      spec: the settings (:class:`TrajectorySpec`); everything the numbers depend on.
      name: the result's name under ``RUN/results/`` (default: built from the settings that differ from their defaults).
      overwrite: recompute and replace a saved result (otherwise a current one is reused and one with other
        settings is refused, naming what differs).
      execution: how it runs (progress, devices, chunk size); changes no number.

    Returns:
      an :class:`Outcome` — the arrays, the metadata with its provenance, the path, whether it was reused.

    Raises:
      ConfigError: bad settings, or a saved result of this name computed from something else.

    The same as ``landscape trajectory``.

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10, snapshot_every=10))
      >>> out = ls.analyses.trajectory(run, ls.analyses.TrajectorySpec(seeds="0", grid=5))
      >>> out.name
      'trajectory_seed0_g5'
    """
    from .. import models
    from ..geometry import surface as surface_mod

    ens = common.load(run, execution)
    (i,) = members.select(ens, spec.seeds, spec.lr, 1)
    if ens.trajectory is None:
        raise ConfigError(f"{run} has no parameter snapshots; train with --snapshot-every")
    default = (f"trajectory_{members.tag(ens, [i])}_g{spec.grid}"
               + common.suffix(m=None if spec.margin == 0.3 else f"{spec.margin:g}", test=spec.test,
                         **common.modes(spec)))
    settings = common.settings(ens, {"command": "trajectory", "member": i, **dataclasses.asdict(spec)})

    def compute(res):
        label = members.label(ens, i)
        batches = common.batches(ens, spec.test, execution)
        surf = surface_mod.trajectory_plane(models.metrics_fn(common.model(ens, settings, [i], batches),
        ens.config["loss"]),
                                            ens.trajectory.member(i), num=spec.grid, margin=spec.margin,
                                            data=batches,
                                            **common.evaluation(execution, res, "trajectory plane"))
        ev = surf.meta["explained_variance_ratio"]
        return common.surface_arrays(surf, {
            "seeds": [int(ens.seeds[i])], "labels": [label], "path_labels": [label], "point_labels": ["final"],
            "axis_labels": [f"PC 1 ({100 * ev[0]:.1f}% of variance)", f"PC 2 ({100 * ev[1]:.1f}%)"],
            "title": f"{label}: training path on its PCA plane"})

    return common.stored(run, name or default, settings, overwrite, members.warnings(ens, [i]), compute)
