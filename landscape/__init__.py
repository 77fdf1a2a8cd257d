"""landscape: train many small networks from many random starts and explore their loss landscapes.

Modules (one concept each): ``tree`` (pytree maths), ``distributed`` (meshes, multi-host),
``data`` (data sets), ``permutation`` (permutation specs, weight matching), ``models`` (the
built-in MLP, CNN and ResNet, any Flax model, BatchNorm statistics, losses), ``model_files``
(a user's model from a file), ``optim`` (named optax optimizers), ``train`` (ensemble
training), ``directions`` (random / normalised / solution / PCA directions), ``surface`` (the
generic slice evaluator and the slices built on it), ``hessian`` (curvature), ``minima``
(barriers, basins, alignment, curves, basins of attraction), ``race`` (optimizer races on a
fixed plane), ``export`` (results as interactive HTML and VTK XML), ``files`` (atomic writes, bounded reads, locks),
``chunks`` (the resumable chunk loop), ``io`` (run directories and result files), ``results``
(provenance and reuse of results), ``members`` (members as seed and learning rate),
``analyses`` (each command's computation: settings in, a stored result out), ``report``
(figures, tables and ``report.md`` from saved results), ``plot`` (figures from saved
results), ``compilation_cache`` (JAX's persistent compilation cache), ``precision`` (the
arithmetic of float32 matmuls, recorded with every result), ``timing`` (a command's
wall-time phases), ``errors``.
"""

__version__ = "0.1.0"

import importlib

# Submodules and names are imported on first use (PEP 562): ``import landscape`` and the
# ``landscape`` command's start-up then cost milliseconds, not the seconds that importing JAX,
# Flax, optax and matplotlib takes; ``landscape.surface``, ``from landscape import MLP`` and
# the rest behave as if imported eagerly.
_SUBMODULES = ("data", "directions", "distributed", "surface", "hessian", "minima", "errors", "io", "models",
               "optim", "plot", "train", "tree", "compilation_cache", "timing", "results", "files", "chunks",
               "members", "analyses", "report", "precision", "permutation", "model_files", "race",
               "export")
_NAMES = {
    "Dataset": "data", "Split": "data",
    "ConfigError": "errors", "CorruptRunError": "errors", "DataError": "errors",
    "DataUnavailableError": "errors", "LandscapeError": "errors", "RunError": "errors",
    "RunExistsError": "errors", "RunNotFoundError": "errors", "StorageError": "errors",
    "load_run": "io", "save_run": "io",
    "MLP": "models", "CNN": "models", "ResNet": "models",
    "OptimizerSpec": "optim",
    "Surface": "surface",
    "Ensemble": "train", "History": "train", "Trajectory": "train", "summarize": "train",
    "train_ensemble": "train",
}


def __getattr__(name: str):
    if name == "load":  # deprecated for one release: next to load_run the name did not say what it loads
        import warnings

        warnings.warn("landscape.load is deprecated and will be removed in the next release: use "
                      "landscape.data.load (a data set) or landscape.load_run (a run directory)",
                      DeprecationWarning, stacklevel=2)
        return importlib.import_module(f"{__name__}.data").load
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _NAMES:
        value = getattr(importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


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
    "compilation_cache",
    "timing",
    "results",
    "files",
    "chunks",
    "members",
    "analyses",
    "report",
    "precision",
    "permutation",
    "model_files",
    "race",
    "export",
    "Dataset",
    "Split",
    "MLP",
    "CNN",
    "ResNet",
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
    "StorageError",
]
