"""Run directories: the only module that touches disk.

A run directory holds ``meta.json`` (human-readable: format version, model and training
configuration, seeds, library versions, backend and devices, timings, what is complete)
and arrays as ``.npz`` files read with ``allow_pickle=False``.  Every file is written to a
temporary name in the same directory and renamed into place, so a reader sees either the
old complete file or the new complete one.  A whole new run directory is assembled under a
temporary name and renamed into place the same way.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError, CorruptRunError, RunExistsError, RunNotFoundError

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_save_npz",
    "load_npz",
    "read_json",
    "environment",
    "save_run",
    "load_run",
    "read_meta",
    "update_meta",
    "run_path",
    "save_figure",
    "save_animation",
    "FIGURE_FORMATS",
    "save_checkpoint",
    "load_checkpoint",
    "remove_checkpoint",
    "save_result",
    "load_result",
    "result_paths",
    "remove_stale",
]

FORMAT = "landscape-run"
FORMAT_VERSION = 1
META = "meta.json"
_MAX_JSON_BYTES = 16 * 1024**2


# ---------------------------------------------------------------------- atomic primitives


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _prefix(path: Path) -> str:
    """Hidden temporary names carry the writer's pid, so leftovers of a killed writer can be found."""
    return f".{path.name}.pid{os.getpid()}."


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale(directory: str | os.PathLike) -> list[Path]:
    """Delete temporary files and staging directories left in ``directory`` by killed writers."""
    import re

    removed = []
    directory = Path(directory)
    if not directory.is_dir():
        return removed
    pattern = re.compile(r"^\.(?P<name>.+)\.pid(?P<pid>\d+)\..*\.(?P<kind>tmp|staging|old)$")
    for entry in directory.iterdir():
        m = pattern.match(entry.name)
        if m and int(m.group("pid")) != os.getpid() and not _alive(int(m.group("pid"))):
            original = directory / m.group("name")
            if m.group("kind") == "old" and not original.exists():
                os.replace(entry, original)  # killed between the two renames: put the old run back
                continue
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    entry.unlink()
            removed.append(entry)
    return removed


def _temporary(path: Path) -> tuple[int, str]:
    """A temporary file beside ``path`` with an ordinary file's permissions (mkstemp gives 0600)."""
    fd, tmp = tempfile.mkstemp(prefix=_prefix(path), suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o666 & ~_umask())
    return fd, tmp


def _atomic_write(path: str | os.PathLike, write) -> None:
    """Call ``write(file)`` on a temporary file in the same directory, then rename it to ``path``."""
    path = Path(path)
    fd, tmp = _temporary(path)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory and a rename."""
    _atomic_write(path, lambda f: f.write(data))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON (NaN/inf are written as ``null``)."""
    text = json.dumps(_jsonable(obj), indent=2, sort_keys=False, allow_nan=False) + "\n"
    atomic_write_bytes(path, text.encode())


def atomic_save_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Atomically write a (uncompressed) ``.npz`` of plain numeric arrays."""
    _atomic_write(path, lambda f: np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()}))


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` file, never unpickling; errors become :class:`CorruptRunError`."""
    path = Path(path)
    if not path.is_file():
        raise RunNotFoundError(f"missing file {path}")
    try:
        _check_npz_headers(path)
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as z:
            return {name: z[name] for name in z.files}
    except CorruptRunError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, KeyError, MemoryError) as exc:
        raise CorruptRunError(f"{path} is truncated or not a numpy archive ({type(exc).__name__}: {exc})") from None


def _check_npz_headers(path: Path) -> None:
    """Reject, before reading any data, members with odd names, object dtypes, or sizes their bytes cannot hold."""
    from numpy.lib import format as npformat

    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            name = info.filename
            if ".." in name or name.startswith("/") or not name.endswith(".npy"):
                raise CorruptRunError(f"{path}: suspicious member {name!r}")
            with zf.open(info) as member:
                version = npformat.read_magic(member)
                if version == (1, 0):
                    shape, _, dtype = npformat.read_array_header_1_0(member)
                elif version == (2, 0):
                    shape, _, dtype = npformat.read_array_header_2_0(member)
                else:
                    raise CorruptRunError(f"{path}: {name!r} has unsupported npy version {version}")
            if dtype.hasobject:
                raise CorruptRunError(f"{path}: {name!r} holds Python objects; refusing to unpickle")
            declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
            if declared > info.file_size:
                raise CorruptRunError(
                    f"{path}: {name!r} declares {declared} bytes of data but holds {info.file_size}")


def read_json(path: str | os.PathLike) -> dict:
    """Read a JSON object, with size limit and clear errors."""
    path = Path(path)
    if not path.is_file():
        raise RunNotFoundError(f"missing file {path}")
    if path.stat().st_size > _MAX_JSON_BYTES:
        raise CorruptRunError(f"{path} is implausibly large for metadata")
    try:
        obj = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CorruptRunError(f"{path} is not valid JSON ({type(exc).__name__})") from None
    if not isinstance(obj, dict):
        raise CorruptRunError(f"{path} does not hold a JSON object")
    return obj


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if np.isfinite(v) else None
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    return obj


# ---------------------------------------------------------------------- environment


def environment() -> dict:
    """Library versions, backend and devices, host: recorded with every result."""
    import jax

    from . import __version__

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
        "process_count": jax.process_count(),
        "platform": platform.platform(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


# ---------------------------------------------------------------------- run directories


def run_path(path: str | os.PathLike) -> Path:
    """``path`` as a :class:`Path`, checked to be an existing run directory."""
    p = Path(path)
    if not p.is_dir():
        raise RunNotFoundError(f"no run directory at {p}")
    if not (p / META).is_file():
        raise RunNotFoundError(f"{p} is not a landscape run directory (no {META})")
    return p


def read_meta(path: str | os.PathLike) -> dict:
    """The validated ``meta.json`` of a run directory."""
    p = run_path(path)
    meta = read_json(p / META)
    if meta.get("format") != FORMAT:
        raise CorruptRunError(f"{p / META} is not landscape run metadata")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise CorruptRunError(
            f"{p} was written in run format {version!r}; this landscape reads format {FORMAT_VERSION}"
        )
    return meta


def update_meta(path: str | os.PathLike, updates: dict) -> dict:
    """Merge ``updates`` into the top level of ``meta.json`` atomically; returns the new metadata."""
    p = run_path(path)
    meta = read_meta(p)
    meta.update(updates)
    atomic_write_json(p / META, meta)
    return meta


@contextlib.contextmanager
def _staged_directory(path: Path, overwrite: bool):
    """Yield a temporary sibling directory that replaces ``path`` on success."""
    if path.exists() and not overwrite:
        raise RunExistsError(f"{path} already exists; pass --overwrite (overwrite=True) to replace it")
    if path.exists() and not path.is_dir():
        raise RunExistsError(f"{path} exists and is not a directory")
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path.parent)
    stage = Path(tempfile.mkdtemp(prefix=_prefix(path), suffix=".staging", dir=path.parent))
    os.chmod(stage, 0o777 & ~_umask())  # an ordinary directory, not mkdtemp's 0700
    try:
        yield stage
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=_prefix(path), suffix=".old", dir=path.parent))
            os.rmdir(old)
            os.replace(path, old)
        os.replace(stage, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def _prefixed(prefix: str, pytree) -> dict[str, np.ndarray]:
    from . import tree

    return {f"{prefix}/{k}": v for k, v in tree.flatten_with_paths(pytree).items()}


def _unprefixed(prefix: str, arrays: dict[str, np.ndarray]) -> dict:
    from . import tree

    flat = {k[len(prefix) + 1 :]: v for k, v in arrays.items() if k.startswith(prefix + "/")}
    return tree.unflatten_with_paths(flat)


def save_run(path: str | os.PathLike, ens, *, overwrite: bool = False, extra: dict | None = None) -> Path:
    """Write an :class:`~landscape.train.Ensemble` as a new run directory at ``path``.

    Files: ``meta.json``, ``params.npz`` (leaves ``(M, ...)``), ``members.npz`` (seeds,
    learning rates, divergence), ``history.npz`` and, when snapshots were kept,
    ``trajectory.npz``.  Refuses an existing ``path`` unless ``overwrite``; the old directory
    is replaced only once the new one is complete.
    """
    path = Path(path)
    with _staged_directory(path, overwrite) as stage:
        atomic_save_npz(stage / "params.npz", _prefixed("params", ens.params))
        atomic_save_npz(
            stage / "members.npz",
            {
                "seeds": ens.seeds,
                "learning_rates": ens.learning_rates,
                "diverged": ens.diverged,
                "diverged_step": ens.diverged_step,
            },
        )
        atomic_save_npz(stage / "history.npz", ens.history.arrays())
        files = ["params.npz", "members.npz", "history.npz"]
        if ens.trajectory is not None:
            atomic_save_npz(
                stage / "trajectory.npz",
                {"step": ens.trajectory.step, **_prefixed("params", ens.trajectory.params)},
            )
            files.append("trajectory.npz")
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "kind": "ensemble",
            "model": {"type": "MLP", **ens.model.to_dict()},
            "train": ens.config,
            "num_members": ens.num_members,
            "environment": environment(),
            "timings": ens.timings,
            "files": files,
            "results": {},
            **(extra or {}),
        }
        atomic_write_json(stage / META, meta)
    return path


def load_run(path: str | os.PathLike):
    """Read a run directory written by :func:`save_run` back into an :class:`~landscape.train.Ensemble`.

    Checks the format version and that every array agrees with the stored model
    configuration; anything else raises :class:`CorruptRunError`.
    """
    from . import tree

    from .models import MLP
    from .train import Ensemble, History, Trajectory

    p = run_path(path)
    meta = read_meta(p)
    try:
        model_cfg = dict(meta["model"])
        if model_cfg.pop("type", None) != "MLP":
            raise CorruptRunError(f"{p}: unknown model type")
        model = MLP.from_dict(model_cfg)
        model._require_bound()
        m = meta["num_members"]
        if not isinstance(m, int) or m < 1:
            raise ValueError(f"num_members {m!r}")
        config = dict(meta["train"])
        if not isinstance(config.get("loss"), str) or not isinstance(config.get("data", {}), dict):
            raise ValueError("training configuration")
    except (KeyError, TypeError, ValueError, ConfigError) as exc:
        raise CorruptRunError(f"{p / META} is missing or has invalid fields ({exc})") from None

    params = _unprefixed("params", load_npz(p / "params.npz"))
    members = load_npz(p / "members.npz")
    hist = load_npz(p / "history.npz")
    try:
        expected = model.param_shapes()
        got = {k: v.shape for k, v in tree.flatten_with_paths(params).items()}
        want = {k: (m, *s) for k, s in expected.items()}
        if got != want:
            raise CorruptRunError(f"{p / 'params.npz'}: parameter shapes {got} do not match the model {want}")
        for name in ("seeds", "learning_rates", "diverged", "diverged_step"):
            if members[name].shape != (m,):
                raise CorruptRunError(f"{p / 'members.npz'}: {name!r} has shape {members[name].shape}, expected ({m},)")
        steps = hist["step"]
        history = History(
            step=steps,
            **{k: hist[k] for k in ("train_loss", "train_accuracy", "test_loss", "test_accuracy")},
        )
        for k, v in history.arrays().items():
            if k != "step" and v.shape != (m, steps.shape[0]):
                raise CorruptRunError(f"{p / 'history.npz'}: {k!r} has shape {v.shape}, expected ({m}, {steps.shape[0]})")
        trajectory = None
        if (p / "trajectory.npz").exists():
            traj = load_npz(p / "trajectory.npz")
            tparams = _unprefixed("params", traj)
            k = traj["step"].shape[0]
            tgot = {kk: v.shape for kk, v in tree.flatten_with_paths(tparams).items()}
            twant = {kk: (m, k, *s) for kk, s in expected.items()}
            if tgot != twant:
                raise CorruptRunError(f"{p / 'trajectory.npz'}: shapes do not match the model")
            trajectory = Trajectory(traj["step"], tparams)
    except KeyError as exc:
        raise CorruptRunError(f"{p}: an array is missing ({exc})") from None
    return Ensemble(
        model=model,
        params=params,
        seeds=members["seeds"],
        learning_rates=members["learning_rates"],
        history=history,
        trajectory=trajectory,
        diverged=members["diverged"].astype(bool),
        diverged_step=members["diverged_step"],
        config=config,
        timings=dict(meta.get("timings", {})),
    )



FIGURE_FORMATS = ("png", "pdf", "svg")


def save_figure(fig, path: str | os.PathLike) -> Path:
    """Write a matplotlib figure to ``path`` atomically; the format comes from the suffix."""
    import io as _io

    import matplotlib

    from .plot import style

    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in FIGURE_FORMATS:
        raise ConfigError(f"figure format must be one of {', '.join(FIGURE_FORMATS)}, got {path.suffix!r}")
    buf = _io.BytesIO()
    with matplotlib.rc_context(style()):
        fig.savefig(buf, format=fmt)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())
    return path


def save_animation(anim, path: str | os.PathLike, *, fps: int = 12) -> Path:
    """Write a matplotlib animation atomically: MP4 through ffmpeg when ``path`` ends in
    ``.mp4`` and ffmpeg is installed, otherwise a GIF through Pillow (``.mp4`` then becomes
    ``.gif``).  Returns the path written."""
    import matplotlib
    from matplotlib import animation

    from .plot import style

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".mp4", ".gif"):
        raise ConfigError(f"animation format must be .mp4 or .gif, got {path.suffix!r}")
    if suffix == ".mp4" and not animation.writers.is_available("ffmpeg"):
        path, suffix = path.with_suffix(".gif"), ".gif"
    writer = animation.FFMpegWriter(fps=fps) if suffix == ".mp4" else animation.PillowWriter(fps=fps)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the writers pick the format from the file name, so stage in a directory that
    # remove_stale() recognises rather than under a .tmp name
    staging = Path(tempfile.mkdtemp(prefix=_prefix(path), suffix=".staging", dir=path.parent))
    try:
        tmp = staging / f"animation{suffix}"
        with matplotlib.rc_context({**style(), "savefig.bbox": None}):
            anim.save(tmp, writer=writer, dpi=110)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


# ---------------------------------------------------------------------- checkpoints of long computations


def save_checkpoint(path: str | os.PathLike, fingerprint: str, results: dict[str, np.ndarray], done: np.ndarray) -> None:
    """Atomically save partial results of a chunked computation and which chunks are done."""
    arrays = {f"result/{k}": v for k, v in results.items()}
    arrays["done"] = np.asarray(done, bool)
    arrays["fingerprint"] = np.frombuffer(fingerprint.encode(), dtype=np.uint8)
    atomic_save_npz(path, arrays)


def load_checkpoint(path: str | os.PathLike, fingerprint: str):
    """``(results, done)`` from a checkpoint written for the same computation, else ``None``.

    A checkpoint of a different computation (other fingerprint) or an unreadable one is
    ignored (and will be overwritten), never trusted.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        arrays = load_npz(path)
    except (CorruptRunError, RunNotFoundError):
        return None
    stored = arrays.get("fingerprint")
    if stored is None or stored.dtype != np.uint8 or bytes(stored.tobytes()).decode(errors="replace") != fingerprint:
        return None
    done = arrays.get("done")
    results = {k[7:]: v.copy() for k, v in arrays.items() if k.startswith("result/")}
    if done is None or done.dtype != bool or not results:
        return None
    n = {v.shape[-1] for v in results.values()}
    if len(n) != 1:
        return None
    return results, done


def remove_checkpoint(path: str | os.PathLike) -> None:
    """Delete a checkpoint once its computation is complete."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


# ---------------------------------------------------------------------- results (surfaces, reports)


def result_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """``(arrays .npz, metadata .json)`` of the result named by ``path`` (either file or the stem)."""
    p = Path(path)
    if p.suffix in (".npz", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".npz"), p.with_name(p.name + ".json")


def save_result(path: str | os.PathLike, arrays: dict[str, np.ndarray], meta: dict) -> Path:
    """Write a result as ``<path>.npz`` + ``<path>.json`` (the JSON last: it marks completeness)."""
    npz, js = result_paths(path)
    npz.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(npz.parent)
    atomic_save_npz(npz, arrays)
    digest = _sha256(npz)
    atomic_write_json(js, {"format": FORMAT + "-result", "format_version": FORMAT_VERSION,
                           "environment": environment(), **meta, "arrays_sha256": digest})
    return npz


def _sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_result(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict]:
    """``(arrays, meta)`` of a result written by :func:`save_result`."""
    npz, js = result_paths(path)
    if not js.is_file() and not npz.is_file():
        raise RunNotFoundError(f"no result at {npz}")
    meta = read_json(js)
    if meta.get("format") != FORMAT + "-result":
        raise CorruptRunError(f"{js} is not a landscape result")
    version = meta.get("format_version")
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise CorruptRunError(f"{js} was written in result format {version!r}; this landscape reads {FORMAT_VERSION}")
    if not npz.is_file():
        raise RunNotFoundError(f"missing file {npz}")
    if meta.get("arrays_sha256") != _sha256(npz):
        raise CorruptRunError(f"{npz} does not match {js.name} (modified, or an interrupted write)")
    return load_npz(npz), meta
