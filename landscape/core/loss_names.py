"""The names the built-in losses are known by: one table that ``loss=`` in Python and ``--loss`` on
the command line both read, so that the two accept the same names.  It lives on the ground floor,
without JAX, because the command line's parser reads it before anything is computed.
"""

from __future__ import annotations

from .errors import ConfigError

__all__ = ["LOSS_NAMES", "loss_name"]

#: every name a built-in loss is known by, to its canonical name (a key of ``landscape.models.LOSSES``)
LOSS_NAMES: dict[str, str] = {"mse": "mse", "cross_entropy": "cross_entropy", "ce": "cross_entropy",
                              "xent": "cross_entropy", "crossentropy": "cross_entropy"}


def loss_name(name: str) -> str:
    """The canonical name of a loss known as ``name`` — the one table that both ``loss=`` in Python
    and ``--loss`` on the command line read, so that both accept the same names.

    Args:
      name: a key of :data:`LOSS_NAMES`: ``"mse"``, ``"cross_entropy"``, or an alias of it
        (``"ce"``, ``"xent"``, ``"crossentropy"``).

    Returns:
      ``"mse"`` or ``"cross_entropy"`` (a key of :data:`LOSSES`).

    Raises:
      ConfigError: an unknown name, with every accepted name in the message.

    Examples:
      >>> ls.models.loss_name("xent"), ls.models.loss_name("mse")
      ('cross_entropy', 'mse')
    """
    if not isinstance(name, str) or name not in LOSS_NAMES:
        known = ", ".join(repr(n) for n in LOSS_NAMES)
        raise ConfigError(f"unknown loss {name!r}; the losses are known as {known}")
    return LOSS_NAMES[name]
