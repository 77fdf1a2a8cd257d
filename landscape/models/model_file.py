"""A researcher's model from a Python file, and user models in run directories.

``landscape train --model-file PATH.py:FACTORY`` trains the model a file defines; the run
records the file's path, the factory's name and the file's SHA-256, never the code.  Loading
such a run needs the model again (``--model-file`` on every command, ``load_run(...,
model=...)`` in Python): a run directory is never executed, and a file that changed since the
run was trained is refused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import runpy
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError
from .adapters import FlaxModel, is_module_instance
from .permutation import PermutationSpec
from .resolve import BUILTIN, as_model

__all__ = ["from_file", "restore"]


def _split(spec: str) -> tuple[Path, str]:
    path, sep, name = str(spec).rpartition(":")
    if not sep or not path or not name.isidentifier():
        raise ConfigError(f"a model file is given as PATH.py:FACTORY, got {spec!r}")
    return Path(path).expanduser().resolve(), name


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def from_file(spec: str) -> Any:
    """The model that ``FACTORY`` in the Python file ``PATH`` defines — **the file is executed**.

    ``FACTORY`` is a Linen module (an instance, or a class instantiated without arguments), or a
    function of no arguments returning anything :func:`landscape.models.as_model` takes: a Linen
    module, an ``(init, apply)`` pair, an NNX factory ``rngs -> nnx.Module``, or a built-in
    model.  A module-level ``permutation_spec`` in the file (a
    :class:`~landscape.permutation.PermutationSpec`, or a function of no arguments returning
    one) makes weight matching (``compare --align``) available for the model.

    Args:
      spec: ``"PATH.py:FACTORY"``.

    Returns:
      a :class:`~landscape.models.FlaxModel` whose ``source`` records the file's absolute path,
      the factory's name and the file's SHA-256 (a built-in model is returned as it is).

    Raises:
      ConfigError: a malformed spec, a missing file or name, a file that fails to run, or a
        factory that does not give a model.

    Examples:
      >>> import tempfile, pathlib
      >>> src = pathlib.Path(tempfile.mkdtemp()) / "mynet.py"
      >>> _ = src.write_text("import flax.linen as nn; make = lambda: nn.Dense(3)")
      >>> model = ls.models.from_file(f"{src}:make")          # the file is executed
      >>> model.for_data(ls.data.blobs()).apply_fn is not None
      True
    """
    path, name = _split(spec)
    if not path.is_file():
        raise ConfigError(f"model file {path} does not exist")
    digest = _sha256(path)
    try:
        namespace = runpy.run_path(str(path), run_name="landscape_model_file")
    except Exception as exc:  # the user's code: say what failed, in one line
        raise ConfigError(f"running model file {path} failed: {type(exc).__name__}: {exc}") from None
    if name not in namespace:
        raise ConfigError(f"model file {path} defines no {name!r}")
    factory = namespace[name]
    if is_module_instance(factory):
        obj = factory
    elif callable(factory):
        try:
            obj = factory()
        except Exception as exc:
            raise ConfigError(f"{name}() in {path} failed: {type(exc).__name__}: {exc} (FACTORY must take no "
                              "arguments and return a model)") from None
    else:
        raise ConfigError(f"{name} in {path} is a {type(factory).__name__}, not a model or a factory")
    model = as_model(obj)
    if isinstance(model, tuple(BUILTIN.values())):
        return model
    spec = namespace.get("permutation_spec")
    if spec is not None:
        spec = spec() if callable(spec) and not isinstance(spec, PermutationSpec) else spec
        if not isinstance(spec, PermutationSpec):
            raise ConfigError(f"permutation_spec in {path} must be a landscape.permutation.PermutationSpec (or a "
                              f"function of no arguments returning one), got {type(spec).__name__}")
    return dataclasses.replace(model, source={"file": str(path), "factory": name, "sha256": digest}, spec=spec)


def restore(description: dict, model: Any = None) -> FlaxModel:
    """A user model of a run directory, bound as it was trained.

    Args:
      description: the run's ``meta["model"]`` (``FlaxModel.to_dict()``).
      model: the model — ``"PATH.py:FACTORY"`` (:func:`from_file`) or anything
        :func:`landscape.models.as_model` takes.

    Returns:
      the bound :class:`~landscape.models.FlaxModel`, its parameter and state shapes checked
      against the run's.

    Raises:
      ConfigError: no model given (the message says which file the run was trained from), a
        file that changed since, or a model whose arrays differ from the run's.

    Examples:
      >>> import flax.linen as nn
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> model = ls.models.as_model(nn.Dense(3)).for_data(data)
      >>> again = ls.models.model_file.restore(model.to_dict(), nn.Dense(3))   # as load_run(path, model=...) does
      >>> again.in_shape == model.in_shape
      True
    """
    source = description.get("source") or {}
    origin = f"{source['file']}:{source['factory']}" if source else None
    if model is None:
        raise ConfigError(f"this run holds a user model ({description.get('name')}): pass it again with "
                          f"--model-file {origin or 'PATH.py:FACTORY'} (the file is executed), or "
                          "load_run(..., model=...) in Python")
    if isinstance(model, str):
        path, name = _split(model)
        if source.get("sha256") and path.is_file() and _sha256(path) != source["sha256"]:
            raise ConfigError(f"model file {path} has changed since this run was trained from it (SHA-256 "
                              f"{source['sha256'][:12]}...); restore that version or train again")
        model = from_file(model)
    model = as_model(model)
    if not isinstance(model, FlaxModel):
        raise ConfigError(f"this run holds a user model ({description.get('name')}), not a built-in "
                          f"{type(model).__name__}")
    bound = model.bind(tuple(description["in_shape"]), int(description["out_features"]))
    for what, want, got in (("parameters", description.get("param_shapes", {}), bound.param_shapes()),
                            ("state", description.get("state_shapes", {}), bound.state_shapes())):
        if {k: tuple(v) for k, v in want.items()} != got:
            raise ConfigError(f"the model given does not match this run: its {what} differ "
                              f"({sorted(set(got) ^ set(want))[:4] or 'shapes'})")
    return bound
