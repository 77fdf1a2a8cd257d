"""``python -m landscape.cli``: the ``landscape`` command."""

from . import entry

entry()
