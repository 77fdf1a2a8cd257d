"""Lazy namespaces: a package's public names, imported from their modules on first use.

A package whose ``__init__`` calls :func:`lazy` offers every public name of its modules
(``ls.hessian.top_eigenvalues``) while importing none of them until one is asked for (PEP
562).  Importing one module of the package (``landscape.curvature.density``, NumPy only)
then costs only that module, not every module's dependencies.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence

__all__ = ["lazy"]


def lazy(package: str, homes: Mapping[str, Sequence[str]]) -> tuple[Callable, Callable, list[str]]:
    """``(__getattr__, __dir__, __all__)`` for ``package``, whose module ``m`` offers ``homes[m]``.

    Args:
      package: the package's ``__name__``.
      homes: ``{module name relative to the package: [its public names]}``; each name has one home.

    Returns:
      the package's ``__getattr__`` and ``__dir__`` (PEP 562) and its ``__all__``.

    Examples:
      >>> from landscape.core.namespace import lazy
      >>> getattr_, dir_, all_ = lazy("landscape.core", {"tree": ["take", "stack"]})
      >>> all_, getattr_("take") is ls.tree.take
      (['take', 'stack'], True)
    """
    where = {name: module for module, names in homes.items() for name in names}
    if len(where) != sum(len(v) for v in homes.values()):
        raise ValueError(f"{package}: a name is offered by two modules")

    def __getattr__(name: str):
        if name in where:
            return getattr(importlib.import_module(f"{package}.{where[name]}"), name)
        if name in homes:
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(where) | set(homes))

    return __getattr__, __dir__, list(where)
