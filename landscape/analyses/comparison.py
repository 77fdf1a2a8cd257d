"""The ``compare`` command: barriers, distances, disagreement, basins and curves between members, stored.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..core.execution import Execution
from ..store import members
from . import common
from .common import Outcome

__all__ = ["CompareSpec", "compare"]


@dataclasses.dataclass(frozen=True)
class CompareSpec:
    """Pairwise comparison of the members that learned: barriers (both definitions),
    distances, cosines, prediction disagreement, basins; optionally after weight-matching
    alignment (Ainsworth et al. 2023) and a trained Bézier curve between two members
    (Garipov et al. 2018).

    Attributes:
      lr: the learning rate to compare (required when the run swept several).
      align: also barriers after alignment.
      curve: two seeds ``(A, B)`` for a Bézier curve.
      curve_steps: its training steps.
      key: its PRNG seed.
      tol: members whose barrier is below this share a basin.
      limit: compare only the first N healthy members.
      grid: interpolation points in [0, 1].
      include_unlearned: also compare members that did not learn (named in the warnings;
        diverged members are always left out).
      statistics: for a model with BatchNorm: ``"recompute"`` (default) or ``"running"``.
      noise: for a model with random layers (dropout): ``None`` evaluates in evaluation mode
        (default); a seed evaluates in training mode with that fixed noise key (a stochastic
        landscape, :func:`landscape.models.with_noise`).

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10, snapshot_every=10))
      >>> c = ls.analyses.compare(run, ls.analyses.CompareSpec(align=True, grid=9))
      >>> c.arrays["barrier"].shape, c.arrays["aligned_barrier"].shape
      ((3, 3), (3, 3))
    """

    lr: float | None = None
    align: bool = False
    curve: tuple[int, int] | None = None
    curve_steps: int = 1000
    tol: float = 0.05
    limit: int | None = None
    grid: int = 25
    key: int = 0
    include_unlearned: bool = False
    statistics: str | None = None
    noise: int | None = None


def compare(run, spec: CompareSpec, *, name: str | None = None, overwrite: bool = False,
            execution: Execution = Execution()) -> Outcome:
    """Every pairwise comparison of the healthy members (:func:`landscape.members.analysable`);
    members that diverged or did not learn are left out and named in ``outcome.warnings``.

    Args:
      run: the run directory.
      spec: the settings (:class:`CompareSpec`); everything the numbers depend on.
      name: the result's name under ``RUN/results/`` (default: built from the settings that differ from their defaults).
      overwrite: recompute and replace a saved result (otherwise a current one is reused and one with other
        settings is refused, naming what differs).
      execution: how it runs (progress, devices, chunk size); changes no number.

    Returns:
      an :class:`Outcome` — the arrays, the metadata with its provenance, the path, whether it was reused.

    Raises:
      ConfigError: bad settings, or a saved result of this name computed from something else.

    The same as ``landscape compare``.

    Examples:
      >>> import tempfile
      >>> run = tempfile.mkdtemp() + "/run"
      >>> ens = ls.analyses.train(run, ls.analyses.TrainSpec(dataset="blobs", hidden=(4,), loss="cross_entropy", lr=(0.5,),
      ...                                                    steps=40, seeds=3, log_every=10, snapshot_every=10))
      >>> c = ls.analyses.compare(run, ls.analyses.CompareSpec(grid=9))
      >>> bool(np.allclose(c.arrays["barrier"], c.arrays["barrier"].T)), c.arrays["basin"].shape
      (True, (3,))
    """
    import jax

    from .. import minima, models
    from ..data import Split
    from ..models.permutation import check_alignable

    common.single_process("compare")
    ens = common.load(run, execution)
    idx, diverged, stalled = members.analysable(ens, spec.lr, include_unlearned=spec.include_unlearned)
    if spec.limit is not None:
        idx = idx[: spec.limit]
    curve_pair = None if spec.curve is None else members.select(ens, list(spec.curve), spec.lr, 2)
    warn = []
    if diverged:
        warn.append(f"left out {len(diverged)} diverged member(s): {', '.join(members.labels(ens, diverged))}")
    if stalled:
        warn.append(f"{'kept' if spec.include_unlearned else 'left out'} {len(stalled)} member(s) that did not "
                    f"learn: {', '.join(members.labels(ens, stalled))}")
    warn += members.warnings(ens, curve_pair or [])
    perm_spec = None
    if spec.align:  # the model's own permutation structure, checked before anything is computed
        perm_spec = ens.model.permutation_spec()
        check_alignable(perm_spec, ens.member(0), ens.member_state(0))
    settings = common.settings(ens, {"command": "compare", "members": idx, **dataclasses.asdict(spec),
    "curve": curve_pair})

    def compute(res):
        batches = common.batches(ens, True, execution)
        model = common.model(ens, settings, idx, batches)
        fn = models.metrics_fn(model, ens.config["loss"])
        stacked = jax.tree_util.tree_map(lambda x: x[np.asarray(idx)], ens.params)
        arrays = minima.compare_members(
            fn, stacked, data=batches["train"], predict=model.apply, test_x=batches["test"][0], num=spec.grid,
            tol=spec.tol, align=perm_spec, metric="loss",
            execution=dataclasses.replace(execution, checkpoint=res.checkpoints, keep_checkpoint=True))
        arrays.update({"members": np.asarray(idx), "seeds": ens.seeds[idx], "learning_rates": ens.learning_rates[idx],
                       "final_train_loss": ens.history.train_loss[idx, -1],
                       "final_test_accuracy": ens.history.test_accuracy[idx, -1]})
        if curve_pair is not None:
            f = models.loss_fn(model, Split(*batches["train"]), ens.config["loss"])
            cv = minima.bezier_curve(f, ens.member(curve_pair[0]), ens.member(curve_pair[1]),
                                     key=jax.random.key(spec.key), steps=spec.curve_steps)
            arrays.update({"curve_t": cv.t, "curve_loss": cv.curve_loss, "line_loss": cv.line_loss,
                           "curve_train_loss": cv.train_loss})
        return arrays, {"kind": "compare", "labels": members.labels(ens, idx), "settings": settings,
                        "curve_labels": None if curve_pair is None else members.labels(ens, curve_pair)}

    default = "compare" + ("" if spec.lr is None else f"_lr{spec.lr:g}") + common.suffix(**common.modes(spec))
    return common.stored(run, name or default, settings, overwrite, warn, compute)
