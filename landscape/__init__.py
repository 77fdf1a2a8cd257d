"""landscape: train many small networks from many random starts and explore their loss landscapes.

The package's folders are its floors; each imports only from the floors below it:

* ``core`` — pytree maths, errors, file primitives, precision, timing, devices, the
  compilation cache, the resumable chunk loop;
* ``data`` and ``models`` — data sets; the built-in networks, any Flax model, losses,
  permutation structure;
* ``training`` (ensemble training), ``geometry`` (directions, the slice evaluator, lines and
  planes), ``curvature`` (Hessian, Gauss–Newton and Fisher spectra);
* ``minima`` — barriers, weight matching, curves, basins of attraction, optimizer races;
* ``store`` — run directories, results with provenance, members;
* ``analyses`` — each command's computation: settings in, a stored result out;
* ``figures`` — figures, reports and exports from saved results (no JAX);
* ``cli`` — the ``landscape`` command and its resident server.

Users call the namespaces below (``ls.surface.plane``, ``ls.hessian.top_eigenvalues``, …);
where a namespace's home is a module of a floor, ``landscape.NAME`` is that module, also for
``import landscape.NAME`` and ``from landscape.NAME import …``.
"""

__version__ = "0.1.0"

import importlib
import importlib.abc
import importlib.util
import sys

# Public namespace -> the module that is its home.  Moving a file changes this table, never
# what a user types.
_NAMESPACES = {
    "data": "landscape.data",
    "models": "landscape.models",
    "train": "landscape.training",
    "optim": "landscape.training.optim",
    "directions": "landscape.geometry.directions",
    "surface": "landscape.geometry.surface",
    "hessian": "landscape.curvature",
    "sharpness": "landscape.sharpness",
    "minima": "landscape.minima",
    "permutation": "landscape.models.permutation",
    "race": "landscape.minima.race",
    "io": "landscape.store",
    "analyses": "landscape.analyses",
    "figures": "landscape.figures",
    "plot": "landscape.figures",
    "report": "landscape.figures",
    "export": "landscape.figures.export",
    "tree": "landscape.core.tree",
    "errors": "landscape.core.errors",
    "distributed": "landscape.core.distributed",
    "precision": "landscape.core.precision",
    "compilation_cache": "landscape.core.compilation_cache",
}
# Names offered directly (``ls.train_ensemble``) -> their namespace.
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
    "Execution": "landscape.core.execution",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """``import landscape.hessian`` gives the namespace's home module itself (one module object,
    imported on first use), so that scripts written against a namespace keep working wherever
    its code lives."""

    def find_spec(self, fullname, path=None, target=None):
        head, _, name = fullname.partition(".")
        if head != __name__ or name not in _NAMESPACES or (_NAMESPACES[name] + ".").startswith(fullname + "."):
            return None  # not a namespace, or the namespace is a package of its own
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        module = importlib.import_module(_NAMESPACES[spec.name.partition(".")[2]])
        spec.loader_state = module.__spec__  # the import machinery sets __spec__ to the alias's
        return module

    def exec_module(self, module):
        module.__spec__ = module.__spec__.loader_state  # the module keeps its own


if not any(isinstance(f, _Alias) for f in sys.meta_path):
    sys.meta_path.insert(0, _Alias())


# Submodules and names are imported on first use (PEP 562): ``import landscape`` and the
# ``landscape`` command's start-up then cost milliseconds, not the seconds that importing JAX,
# Flax, optax and matplotlib takes.
def __getattr__(name: str):
    if name in _NAMESPACES:
        return importlib.import_module(_NAMESPACES[name])
    if name in _NAMES:
        home = _NAMES[name]
        value = getattr(importlib.import_module(home) if "." in home else __getattr__(home), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


__all__ = ["__version__", *_NAMESPACES, *_NAMES]
