"""Analyses of a run directory, each a stored result: a settings object in, a result out.

The floor above the computations and the run store, one module per command family: each
function loads a run, computes one result and commits it (provenance, reuse only when
current, a lock, one atomic commit).  The ``landscape`` command is a thin parser over these
functions; a Python user or a study calls them the same way::

    out = ls.analyses.surface("runs/digits", ls.analyses.SurfaceSpec(seeds="0", grid=51))
    out.arrays["value/train_loss"], out.meta["provenance"], out.reused

Settings objects (``*Spec``) hold everything a result depends on (they enter its
provenance); :class:`~landscape.core.execution.Execution` holds what it does not (progress
bars, devices, chunking, how often to save).
"""

from ..core.execution import Execution
from .animation import AnimateSpec, animate
from .attraction import BasinsSpec, basins
from .common import Outcome, run_dataset
from .comparison import CompareSpec, compare
from .curvature import HessianSpec, hessian
from .dynamics import SpawnSpec, spawn
from .landscapes import (
    InterpolationSpec,
    PlaneSpec,
    SurfaceSpec,
    TrajectorySpec,
    interpolate,
    plane,
    surface,
    trajectory,
)
from .measures import SharpnessSpec, sharpness
from .races import ADAPTIVE_LR, RaceSpec, race, race_entrants
from .training import TrainSpec, demo_spec, train

__all__ = [
    "Execution", "Outcome", "run_dataset",
    "TrainSpec", "train", "demo_spec",
    "SurfaceSpec", "surface", "InterpolationSpec", "interpolate", "PlaneSpec", "plane", "TrajectorySpec", "trajectory",
    "HessianSpec", "hessian",
    "SharpnessSpec", "sharpness",
    "CompareSpec", "compare",
    "BasinsSpec", "basins",
    "RaceSpec", "ADAPTIVE_LR", "race_entrants", "race",
    "AnimateSpec", "animate",
    "SpawnSpec", "spawn",
]
