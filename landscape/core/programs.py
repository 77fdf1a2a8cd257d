"""Functions as arguments of compiled programs: keyed by their structure, never by identity.

The library's losses and metric functions are pytrees: their arrays (the examples a loss is
taken on) are leaves and everything else (the model's configuration, the loss's name) static
structure.  A compiled program then takes the arrays as an *argument* and is cached on the
structure alone: the same configuration on other (or equal) data reuses the program, the data
is held once — by its owner — and no cache keeps it alive or needs to hash it.  Any other
callable (a user's closure, which may hold data) is compiled for the call that uses it and
kept by nothing afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import jax
import numpy as np

__all__ = ["split"]


def split(fn: Any) -> tuple[Hashable | None, list, Callable[[list], Any]]:
    """``(key, arrays, rebuild)`` of a function to pass to a compiled program.

    Args:
      fn: a function; a pytree of arrays and static configuration (``ls.models.loss_fn``,
        ``ls.models.metrics_fn``) or any other callable.

    Returns:
      ``key``: its static structure (hashable, equal for equal configurations whatever the
      data), or ``None`` for a callable that is not such a pytree (compile it for this call
      only); ``arrays``: its array leaves, to pass as an argument (empty for ``key=None``);
      ``rebuild(arrays) -> fn`` inside the program.

    Examples:
      >>> from landscape.core.programs import split
      >>> data = ls.data.blobs(num_train=8, num_test=4)
      >>> model = ls.MLP(hidden=(3,), output_activation="identity").for_data(data)
      >>> key, arrays, rebuild = split(ls.models.loss_fn(model, data.train, "cross_entropy"))
      >>> [a.shape for a in arrays], split(ls.models.loss_fn(model, data.train, "cross_entropy"))[0] == key
      ([(8, 2), (8,)], True)
      >>> split(lambda p: p)[0] is None                        # a closure: compiled for its call only
      True
    """
    leaves, treedef = jax.tree_util.tree_flatten(fn)
    if not all(isinstance(x, (jax.Array, np.ndarray, np.generic)) for x in leaves):
        return None, [], lambda _: fn
    try:
        hash(treedef)
    except TypeError:  # static configuration that cannot be a key
        return None, [], lambda _: fn
    return treedef, leaves, lambda arrays: jax.tree_util.tree_unflatten(treedef, arrays)
