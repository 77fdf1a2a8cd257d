"""landscape: train many small networks from many random starts and explore their loss landscapes.

Modules (one concept each): ``tree`` (pytree maths), ``data`` (data sets), ``models``
(the Flax MLP, losses), ``optim`` (named optax optimizers), ``train`` (ensemble training),
``io`` (run directories), ``plot`` (figures from saved results), ``errors``.
"""

__version__ = "0.1.0"

from . import data, errors, io, models, optim, plot, train, tree
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
from .train import Ensemble, History, Trajectory, summarize, train_ensemble

__all__ = [
    "__version__",
    "data",
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
