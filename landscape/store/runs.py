"""The run store: run directories and the result files inside them.

A run directory holds ``meta.json`` (human-readable: format version, model and training
configuration, seeds, library versions, backend and devices, timings) and arrays as
``.npz`` files read with ``allow_pickle=False`` and checked against the model's shapes before
any data is read.  A new run directory is assembled under a hidden name and renamed into
place (:func:`landscape.files.staged_directory`).  A result is one ``.npz`` holding its arrays
and its metadata: one atomic rename commits it (a ``.json`` copy of the metadata is kept beside
it for reading, rebuilt from the ``.npz`` whenever it disagrees).  File primitives live in
:mod:`landscape.files`; provenance and reuse of results in :mod:`landscape.results`.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from ..core import files
from ..core.errors import ConfigError, CorruptRunError, RunNotFoundError, StorageError

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "environment",
    "save_run",
    "load_run",
    "read_meta",
    "update_meta",
    "run_path",
    "save_result",
    "load_result",
    "result_paths",
]

FORMAT = "landscape-run"
FORMAT_VERSION = 1
META = "meta.json"
#: The member of a result's ``.npz`` that holds its metadata (UTF-8 JSON as bytes).
RESULT_META = "__meta__"


# ---------------------------------------------------------------------- environment
def environment() -> dict:
    """Library versions, backend and devices, the float32 matmul arithmetic
    (:func:`landscape.precision.matmul_precision`), host: recorded with every result.

    Examples:
      >>> env = ls.io.environment()
      >>> sorted(env)[:3], env["backend"] in ("cpu", "gpu", "tpu")
      (['backend', 'devices', 'matmul_precision'], True)
    """
    import jax

    from .. import __version__
    from ..core import precision

    versions = {"landscape": __version__, "python": sys.version.split()[0]}
    for mod in ("jax", "jaxlib", "flax", "optax", "numpy"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:  # pragma: no cover - a missing optional module
            versions[mod] = None
    return {
        "versions": versions,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "matmul_precision": precision.matmul_precision(),
        "process_count": jax.process_count(),
        "platform": platform.platform(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


# ---------------------------------------------------------------------- run directories
def run_path(path: str | os.PathLike) -> Path:
    """``path`` as a :class:`Path`, checked to be an existing run directory.

    Args:
      path: a run directory.

    Returns:
      the path.

    Raises:
      RunNotFoundError: no directory there, or one without ``meta.json``.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> ens = ls.train_ensemble(ls.MLP(hidden=(4,)), data, key=jax.random.key(0), seeds=3,
      ...                         loss="cross_entropy", steps=20, log_every=10, execution=ls.Execution(progress=False))
      >>> import tempfile
      >>> path = ls.save_run(tempfile.mkdtemp() + "/run", ens)
      >>> ls.io.run_path(path) == path
      True
    """
    p = Path(path)
    if not p.is_dir():
        raise RunNotFoundError(f"no run directory at {p}")
    if not (p / META).is_file():
        raise RunNotFoundError(f"{p} is not a landscape run directory (no {META})")
    return p


def read_meta(path: str | os.PathLike) -> dict:
    """The validated ``meta.json`` of a run directory.

    Args:
      path: a run directory.

    Returns:
      the metadata as a dict (format, configuration, seeds, data set, versions, timings).

    Raises:
      RunNotFoundError: no run directory at ``path``.
      CorruptRunError: not landscape metadata, or a newer run format.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> ens = ls.train_ensemble(ls.MLP(hidden=(4,)), data, key=jax.random.key(0), seeds=3,
      ...                         loss="cross_entropy", steps=20, log_every=10, execution=ls.Execution(progress=False))
      >>> import tempfile
      >>> path = ls.save_run(tempfile.mkdtemp() + "/run", ens)
      >>> meta = ls.io.read_meta(path)
      >>> meta["num_members"], meta["train"]["data"]["name"]
      (3, 'blobs')
    """
    p = run_path(path)
    meta = files.read_json(p / META)
    if meta.get("format") != FORMAT:
        raise CorruptRunError(f"{p / META} is not landscape run metadata")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise CorruptRunError(
            f"{p} was written in run format {version!r}; this landscape reads format {FORMAT_VERSION}"
        )
    return meta


def update_meta(path: str | os.PathLike, updates: dict) -> dict:
    """Merge ``updates`` into the top level of ``meta.json`` atomically; returns the new metadata.

    Args:
      path: a run directory.
      updates: top-level keys and their new values.

    Returns:
      the metadata after the update.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> ens = ls.train_ensemble(ls.MLP(hidden=(4,)), data, key=jax.random.key(0), seeds=3,
      ...                         loss="cross_entropy", steps=20, log_every=10, execution=ls.Execution(progress=False))
      >>> import tempfile
      >>> path = ls.save_run(tempfile.mkdtemp() + "/run", ens)
      >>> ls.io.update_meta(path, {"note": "first try"})["note"]
      'first try'
    """
    p = run_path(path)
    meta = read_meta(p)
    meta.update(updates)
    files.atomic_write_json(p / META, meta)
    return meta


def _prefixed(prefix: str, pytree) -> dict[str, np.ndarray]:
    from ..core import tree

    return {f"{prefix}/{k}": v for k, v in tree.flatten_with_paths(pytree).items()}


def _unprefixed(prefix: str, arrays: dict[str, np.ndarray]) -> dict:
    from ..core import tree

    flat = {k[len(prefix) + 1 :]: v for k, v in arrays.items() if k.startswith(prefix + "/")}
    return tree.unflatten_with_paths(flat)


def save_run(path: str | os.PathLike, ens, *, overwrite: bool = False, extra: dict | None = None) -> Path:
    """Write an :class:`~landscape.train.Ensemble` as a new run directory at ``path``.

    A user model (:class:`~landscape.models.FlaxModel`) is described by its name, shapes and
    source (file and SHA-256 when it came from ``--model-file``), never by its code.

    Files: ``meta.json``, ``params.npz`` (leaves ``(M, ...)``), ``members.npz`` (seeds,
    learning rates, divergence), ``history.npz``, for a model with state ``state.npz`` (its
    running statistics, leaves ``(M, ...)``), when snapshots were kept ``trajectory.npz``, and
    with curvature tracked during training ``tracked.npz`` (``step (T,)``, ``top (M, T, K)``,
    ``trace`` / ``trace_stderr (M, T)``).
    Refuses an existing ``path`` unless ``overwrite``; the old directory is replaced only once
    the new one is complete.

    Args:
      path: the run directory to create.
      ens: the :class:`~landscape.train.Ensemble` to save.
      overwrite: replace an existing directory (only once the new one is complete).
      extra: more top-level metadata (e.g. the command line).

    Returns:
      the run directory.

    Raises:
      RunExistsError: ``path`` exists and ``overwrite`` is off.
      StorageError: the directory cannot be written.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> ens = ls.train_ensemble(ls.MLP(hidden=(4,)), data, key=jax.random.key(0), seeds=3,
      ...                         loss="cross_entropy", steps=20, log_every=10, execution=ls.Execution(progress=False))
      >>> import tempfile
      >>> path = ls.save_run(tempfile.mkdtemp() + "/run", ens)
      >>> (path / "params.npz").exists(), (path / "meta.json").exists()
      (True, True)
    """
    path = Path(path)
    with files.staged_directory(path, overwrite) as stage:
        files.atomic_save_npz(stage / "params.npz", _prefixed("params", ens.params))
        files.atomic_save_npz(
            stage / "members.npz",
            {
                "seeds": ens.seeds,
                "learning_rates": ens.learning_rates,
                "diverged": ens.diverged,
                "diverged_step": ens.diverged_step,
            },
        )
        files.atomic_save_npz(stage / "history.npz", ens.history.arrays())
        names = ["params.npz", "members.npz", "history.npz"]
        if ens.model.stateful:  # BatchNorm running statistics, per member (load_run's test too)
            files.atomic_save_npz(stage / "state.npz", _prefixed("state", ens.state))
            names.append("state.npz")
        if ens.trajectory is not None:
            files.atomic_save_npz(
                stage / "trajectory.npz",
                {"step": ens.trajectory.step, **_prefixed("params", ens.trajectory.params)},
            )
            names.append("trajectory.npz")
        if getattr(ens, "tracked", None) is not None:
            files.atomic_save_npz(stage / "tracked.npz", ens.tracked.arrays())
            names.append("tracked.npz")
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "kind": "ensemble",
            "model": {"type": type(ens.model).__name__, **ens.model.to_dict()},
            "train": ens.config,
            "num_members": ens.num_members,
            "environment": environment(),
            "timings": ens.timings,
            "files": names,
            "results": {},
            **(extra or {}),
        }
        files.atomic_write_json(stage / META, meta)
    return path


def load_run(path: str | os.PathLike, *, model=None):
    """Read a run directory written by :func:`save_run` back into an :class:`~landscape.train.Ensemble`.

    Checks the format version and that every array agrees with the stored model
    configuration; anything else raises :class:`CorruptRunError`.

    Args:
      path: the run directory.
      model: for a run of a user model only: the model again, ``"PATH.py:FACTORY"`` (the file
        is executed; it must be the one the run was trained from, by SHA-256) or the Linen
        module / pair / NNX factory itself (:func:`landscape.model_files.restore`).  A run
        directory alone never executes anything.

    Raises:
      CorruptRunError: invalid metadata or arrays.
      ConfigError: a user model's run without
        ``model``, or with one that does not match.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> ens = ls.train_ensemble(ls.MLP(hidden=(4,)), data, key=jax.random.key(0), seeds=3,
      ...                         loss="cross_entropy", steps=20, log_every=10, execution=ls.Execution(progress=False))
      >>> import tempfile
      >>> path = ls.save_run(tempfile.mkdtemp() + "/run", ens)
      >>> again = ls.load_run(path)
      >>> bool(jnp.all(again.params["Dense_0"]["kernel"] == ens.params["Dense_0"]["kernel"]))
      True
    """
    from ..models import model_from_dict
    from ..training.ensemble import Ensemble, History, Trajectory
    from ..training.tracking import Tracked

    p = run_path(path)
    meta = read_meta(p)
    described = meta.get("model")
    user = isinstance(described, dict) and described.get("type") == "FlaxModel"
    if user:
        from ..models.model_file import restore

        model = restore(described, model)  # its own clear errors: which file, what differs
    try:
        if not user:
            model = model_from_dict(meta["model"])
        model._require_bound()
        m = meta["num_members"]
        if not isinstance(m, int) or m < 1:
            raise ValueError(f"num_members {m!r}")
        config = dict(meta["train"])
        if not isinstance(config.get("loss"), str) or not isinstance(config.get("data", {}), dict):
            raise ValueError("training configuration")
    except (KeyError, TypeError, ValueError, ConfigError) as exc:
        raise CorruptRunError(f"{p / META} is missing or has invalid fields ({exc})") from None

    # every array's shape is checked from the file headers before any data is read, so a
    # small file that declares huge arrays is refused without allocating them
    expected = model.param_shapes()
    params = _unprefixed("params", files.load_npz(
        p / "params.npz", shapes={f"params/{k}": (m, *s) for k, s in expected.items()}))
    state = {}
    if model.stateful:
        state = _unprefixed("state", files.load_npz(
            p / "state.npz", shapes={f"state/{k}": (m, *s) for k, s in model.state_shapes().items()}))
    members = files.load_npz(p / "members.npz", shapes={k: (m,) for k in ("seeds", "learning_rates", "diverged",
                                                                          "diverged_step")})
    declared = files.npz_shapes(p / "history.npz")
    k_hist = declared.get("step", ((-1,), None))[0]
    if len(k_hist) != 1:
        raise CorruptRunError(f"{p / 'history.npz'}: 'step' must be a vector")
    (k_hist,) = k_hist
    hist = files.load_npz(p / "history.npz", shapes={"step": (k_hist,), **{
        k: (m, k_hist) for k in ("train_loss", "train_accuracy", "test_loss", "test_accuracy")}})
    history = History(step=hist["step"], **{k: hist[k] for k in ("train_loss", "train_accuracy", "test_loss",
                                                                  "test_accuracy")})
    trajectory = None
    if (p / "trajectory.npz").exists():
        k_traj = files.npz_shapes(p / "trajectory.npz").get("step", ((-1,), None))[0]
        if len(k_traj) != 1 or k_traj[0] > k_hist:
            raise CorruptRunError(f"{p / 'trajectory.npz'}: 'step' must be a vector no longer than the history")
        (k_traj,) = k_traj
        traj = files.load_npz(p / "trajectory.npz", shapes={"step": (k_traj,), **{
            f"params/{k}": (m, k_traj, *s) for k, s in expected.items()}})
        trajectory = Trajectory(traj["step"], _unprefixed("params", traj))
    tracked = None
    if (p / "tracked.npz").exists():
        declared = files.npz_shapes(p / "tracked.npz")
        k_tr = declared.get("step", ((-1,), None))[0]
        top = declared.get("top", ((-1,), None))[0]
        if len(k_tr) != 1 or len(top) != 3:
            raise CorruptRunError(f"{p / 'tracked.npz'}: 'step' must be a vector and 'top' (members, steps, k)")
        shapes = {"step": (k_tr[0],), "top": (m, k_tr[0], top[2])}
        if "trace" in declared:
            shapes.update({"trace": (m, k_tr[0]), "trace_stderr": (m, k_tr[0])})
        tracked = Tracked(**files.load_npz(p / "tracked.npz", shapes=shapes))
    return Ensemble(
        model=model,
        params=params,
        state=state,
        seeds=members["seeds"],
        learning_rates=members["learning_rates"],
        history=history,
        trajectory=trajectory,
        diverged=members["diverged"].astype(bool),
        diverged_step=members["diverged_step"],
        config=config,
        timings=dict(meta.get("timings", {})),
        tracked=tracked,
    )


# ---------------------------------------------------------------------- results
def result_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """``(arrays .npz, metadata .json)`` of the result named by ``path`` (either file or the stem).

    Args:
      path: ``RUN/results/NAME``, with or without ``.npz`` / ``.json``.

    Returns:
      the two files' paths.

    Examples:
      >>> [p.name for p in ls.io.result_paths("runs/digits/results/plane")]
      ['plane.npz', 'plane.json']
    """
    p = Path(path)
    if p.suffix in (".npz", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".npz"), p.with_name(p.name + ".json")


def save_result(path: str | os.PathLike, arrays: dict[str, np.ndarray], meta: dict) -> Path:
    """Commit a result: one ``<path>.npz`` holding ``arrays`` and the metadata, renamed into
    place in one step, then the readable copy ``<path>.json``.

    A kill at any instant leaves the old result or the new one, complete: the ``.npz`` is the
    result, and a ``.json`` that does not match it is rebuilt by :func:`load_result`.

    Args:
      path: ``RUN/results/NAME`` (with or without a suffix).
      arrays: the result's arrays by name (``value/train_loss``, ``axis_0`` …); any shapes.
      meta: JSON-ready metadata (``kind``, settings, provenance …); ``kind`` is what ``landscape
        plot`` and :func:`landscape.report.result_figure` draw by.

    Returns:
      the ``.npz`` path.

    Raises:
      ConfigError: an array is named like the metadata member.
      StorageError: the directory cannot be written (full disk, read-only, ...).

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> ens = ls.train_ensemble(ls.MLP(hidden=(4,)), data, key=jax.random.key(0), seeds=3,
      ...                         loss="cross_entropy", steps=20, log_every=10, execution=ls.Execution(progress=False))
      >>> import tempfile
      >>> path = ls.save_run(tempfile.mkdtemp() + "/run", ens)
      >>> s = ls.surface.line(ls.models.metrics_fn(ens.model, "cross_entropy"), ens.member(0),
      ...                     ls.directions.random_direction(jax.random.key(1), ens.member(0)), num=5, data=data)
      >>> ls.io.save_result(path / "results" / "mine", s.to_arrays(), {**s.meta, "kind": s.kind}).name
      'mine.npz'
    """
    npz, js = result_paths(path)
    if RESULT_META in arrays:
        raise ConfigError(f"a result array may not be called {RESULT_META!r}")
    full = files.jsonable({"format": FORMAT + "-result", "format_version": FORMAT_VERSION,
                           "environment": environment(), **meta})
    text = json.dumps(full, indent=2, allow_nan=False) + "\n"
    with files.storage_errors(npz.parent, "create"):
        npz.parent.mkdir(parents=True, exist_ok=True)
    files.remove_stale(npz.parent)
    files.atomic_save_npz(npz, {**arrays, RESULT_META: np.frombuffer(text.encode(), np.uint8)})
    files.atomic_write_bytes(js, text.encode())
    return npz


def _no_result(given: Path, npz: Path) -> str:
    """Why ``given`` names no result, in the user's terms: what was given and what is expected."""
    def names(results: Path) -> str:
        found = sorted(p.stem for p in results.glob("*.npz")) if results.is_dir() else []
        shown = ", ".join(found[:8]) + (f" and {len(found) - 8} more" if len(found) > 8 else "")
        return f"its results: {shown}" if found else "it holds no results yet"

    expected = "a result is RUN/results/NAME, with or without .npz or .json"
    for run in (given, given.parent):
        if (run / "meta.json").is_file() and given.parent.name != "results":
            what = "a run directory" if run == given else f"in the run directory {run}"
            return f"{given} is {what}, not a result: {expected}; {names(run / 'results')}"
    if given.parent.name == "results" and given.parent.is_dir():
        return f"no result {npz.stem!r} in {given.parent}; {names(given.parent)}"
    return f"no result at {given}: there is no {npz.name} there ({expected})"


def load_result(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict]:
    """``(arrays, meta)`` of a result written by :func:`save_result`.

    Args:
      path: the result (``.npz``, ``.json`` or the stem).

    Returns:
      ``(arrays, meta)``: the arrays by name and the metadata dict.

    Raises:
      RunNotFoundError: no such result.
      CorruptRunError: not a landscape result, another format version, or damaged.

    Examples:
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> ens = ls.train_ensemble(ls.MLP(hidden=(4,)), data, key=jax.random.key(0), seeds=3,
      ...                         loss="cross_entropy", steps=20, log_every=10, execution=ls.Execution(progress=False))
      >>> import tempfile
      >>> path = ls.save_run(tempfile.mkdtemp() + "/run", ens)
      >>> ls.io.save_result(path / "results" / "mine", {"value": np.arange(3.0)}, {"kind": "mine"}).name
      'mine.npz'
      >>> arrays, meta = ls.io.load_result(path / "results" / "mine")
      >>> arrays["value"].tolist(), meta["kind"]
      ([0.0, 1.0, 2.0], 'mine')
    """
    npz, js = result_paths(path)
    if not npz.is_file():
        raise RunNotFoundError(_no_result(Path(path), npz))
    arrays = files.load_npz(npz)
    raw = arrays.pop(RESULT_META, None)
    if raw is None or raw.dtype != np.uint8 or raw.ndim != 1:
        raise CorruptRunError(f"{npz} holds no result metadata (not a landscape result, or written by an older "
                              "landscape that kept it in the .json only: recompute it with --overwrite)")
    meta = files.parse_json(raw.tobytes(), npz)
    if meta.get("format") != FORMAT + "-result":
        raise CorruptRunError(f"{npz} is not a landscape result")
    version = meta.get("format_version")
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise CorruptRunError(f"{npz} was written in result format {version!r}; this landscape reads {FORMAT_VERSION}")
    copy = raw.tobytes()
    try:
        stale = not js.is_file() or js.read_bytes() != copy
    except OSError:
        stale = True
    if stale:  # killed between the commit and the copy, or edited: the .npz is the result
        with contextlib.suppress(StorageError):
            files.atomic_write_bytes(js, copy)
    return arrays, meta
