"""A researcher's model from a Python file, and user models in run directories.

``landscape train --model-file PATH.py:FACTORY`` trains the model a file defines; the run
records the file's path, the factory's name, the file's SHA-256 and the SHA-256 of its code,
never the code.  Loading such a run needs the model again (``--model-file`` on every command,
``load_run(..., model=...)`` in Python): a run directory is never executed.

The code's hash is that of the file's syntax tree without its docstrings: comments, docstrings,
blank lines and layout are not part of it, so editing them keeps the run usable, while any
change to what the file computes (a width, an operation, a constant, a name) is refused with
the ways to go on.  Runs trained before the code's hash was recorded are checked byte for byte.
"""

from __future__ import annotations

import ast
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


def _without_docstrings(tree: ast.AST) -> ast.AST:
    """``tree`` with the docstring of the module and of every class and function dropped."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return tree


def _code_sha256(path: Path) -> str | None:
    """SHA-256 of what the file computes: its syntax tree without docstrings, so without comments,
    docstrings and layout; ``None`` for a file that does not parse."""
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError):
        return None
    dump = ast.dump(_without_docstrings(tree), annotate_fields=True, include_attributes=False)
    return hashlib.sha256(dump.encode("utf-8")).hexdigest()


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
      the factory's name, the file's SHA-256 (``sha256``) and its code's (``code_sha256``: the
      syntax tree without comments and docstrings); a built-in model is returned as it is.

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
    digest, code = _sha256(path), _code_sha256(path)
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
    return dataclasses.replace(model, source={"file": str(path), "factory": name, "sha256": digest,
                                              "code_sha256": code}, spec=spec)


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
        file whose code changed since (an edit of comments, docstrings or layout is accepted;
        the message says how to go on), or a model whose arrays differ from the run's.

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
    same_code = False
    if isinstance(model, str):
        path, name = _split(model)
        if source.get("sha256") and path.is_file():
            _check_unchanged(path, name, source)
            same_code = True
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
    if same_code:  # the run's model as it was recorded: a comment edit changes no provenance
        bound = dataclasses.replace(bound, source=source)
    return bound


def _check_unchanged(path: Path, name: str, source: dict) -> None:
    """Refuse a model file whose code differs from the code the run was trained from."""
    if _sha256(path) == source["sha256"]:
        return
    recorded = source.get("code_sha256")
    now = _code_sha256(path)
    if recorded and now == recorded:
        return  # only comments, docstrings or layout changed
    what = ("its code differs, not only its comments, docstrings or layout (code SHA-256 "
            f"{recorded[:12]}... when trained, {now[:12] if now else 'unparsable'}... now)" if recorded else
            f"its bytes differ (SHA-256 {source['sha256'][:12]}... when trained; this run predates code "
            "hashes and is checked byte for byte)")
    raise ConfigError(f"model file {path} has changed since this run was trained from it: {what}. To go on, "
                      f"put back the version it was trained with (under git: git log -p -- {path.name}) and "
                      f"pass it again, or train a new run from the changed file (landscape train --model-file "
                      f"{path}:{name} ...); this run's results hold for the old code only")
