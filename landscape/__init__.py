"""landscape: train many small networks from many random starts and explore their loss landscapes.

Modules (one concept each): ``tree`` (pytree maths), ``distributed`` (meshes, multi-host), ``data`` (data sets), ``models``
(the Flax MLP, losses), ``optim`` (named optax optimizers), ``train`` (ensemble training),
``directions`` (random / normalised / solution / PCA directions), ``surface`` (the generic
slice evaluator and the slices built on it), ``hessian`` (curvature), ``minima`` (barriers,
basins, alignment, curves), ``io`` (run directories and result files),
``plot`` (figures from saved results), ``errors``.
"""

__version__ = "0.1.0"

from . import data, directions, distributed, errors, hessian, io, minima, models, optim, plot, surface, train, tree
from .data import Dataset, Split, load
from .errors import (
    ConfigError,
    CorruptRunError,
    DataError,
    DataUnavailableError,
    LandscapeError,
    RunError,
    RunExistsError,
    RunNotFoundError,
)
from .io import load_run, save_run
from .models import MLP
from .optim import OptimizerSpec
from .surface import Surface
from .train import Ensemble, History, Trajectory, summarize, train_ensemble

__all__ = [
    "__version__",
    "data",
    "directions",
    "distributed",
    "surface",
    "hessian",
    "minima",
    "errors",
    "io",
    "models",
    "optim",
    "plot",
    "train",
    "tree",
    "Dataset",
    "Split",
    "load",
    "MLP",
    "OptimizerSpec",
    "Surface",
    "Ensemble",
    "History",
    "Trajectory",
    "train_ensemble",
    "summarize",
    "save_run",
    "load_run",
    "LandscapeError",
    "ConfigError",
    "DataError",
    "DataUnavailableError",
    "RunError",
    "RunExistsError",
    "RunNotFoundError",
    "CorruptRunError",
]
