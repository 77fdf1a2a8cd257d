"""File primitives: atomic writes, bounded reads, locks and the cleanup of killed writers.

The bottom storage layer: compute modules (``chunks``) and the run store (``io``,
``results``) build on it; it imports nothing else of the package but ``errors``.

* **Atomic writes.**  Every file is written to a hidden temporary name in its own directory,
  flushed, ``fsync``-ed and renamed over its final name (``os.replace``, atomic on POSIX file
  systems): a reader, or a process killed at any instant, sees the old complete file or the
  new complete one.  Whole directories are staged the same way (:func:`staged_directory`).
* **Writers are known by a lock, not by a process id.**  A temporary file or staging
  directory ``.NAME.w<token>.tmp|staging|old`` is created only while its writer holds an OS
  file lock on ``.NAME.w<token>.lock`` (``filelock``: ``flock``, which the kernel releases when
  the process dies — in whatever PID namespace or container it ran; on NFS, ``flock`` is
  forwarded to the server's lock manager).  :func:`remove_stale` removes an entry only after
  taking its lock, so it never touches a live writer's files, whichever host they come from.
* **Bounded reads.**  ``.npz`` members are checked from their headers before any data is
  read: plain numeric dtypes only, no pickles, sizes within a byte limit (and, where the
  caller knows them, exactly the expected shapes).  JSON is size-limited; its errors and
  pathological values (a 5000-digit integer) are :class:`~landscape.errors.CorruptRunError`.
* **File-system faults** (a full disk, a read-only directory, permissions) raise
  :class:`~landscape.errors.StorageError`: one line naming the path, never a traceback.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import uuid
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError, CorruptRunError, RunExistsError, RunNotFoundError, StorageError

__all__ = [
    "MAX_JSON_BYTES",
    "max_array_bytes",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_save_npz",
    "load_npz",
    "npz_shapes",
    "read_json",
    "jsonable",
    "sha256",
    "staged_directory",
    "exclusive",
    "check_writable",
    "remove_stale",
    "storage_errors",
]

MAX_JSON_BYTES = 16 * 1024**2
#: Environment variable: the largest uncompressed ``.npz`` a command reads, in bytes.
MAX_BYTES_ENV = "LANDSCAPE_MAX_ARRAY_BYTES"
_STALE = re.compile(r"^\.(?P<name>.+)\.w(?P<token>[0-9a-f]{32})\.(?P<kind>tmp|staging|old|lock)$")


def max_array_bytes() -> int:
    """The largest total uncompressed size of one ``.npz`` read: ``$LANDSCAPE_MAX_ARRAY_BYTES``,
    else half of this machine's physical memory.

    Examples:
      >>> from landscape.core import files
      >>> files.max_array_bytes() > 0
      True
    """
    text = os.environ.get(MAX_BYTES_ENV)
    if text:
        try:
            value = int(text)
        except ValueError:
            raise ConfigError(f"${MAX_BYTES_ENV} must be a number of bytes, got {text!r}") from None
        if value < 1:
            raise ConfigError(f"${MAX_BYTES_ENV} must be positive, got {text!r}")
        return value
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return 8 * 2**30


@contextlib.contextmanager
def storage_errors(path: str | os.PathLike, what: str = "write") -> Iterator[None]:
    """Turn an ``OSError`` raised inside the block into a one-line :class:`StorageError`.

    Args:
      path: the file or directory the block works on (named in the error).
      what: the verb for the message (``write``, ``read`` …).

    Examples:
      >>> from landscape.core import files
      >>> import tempfile, os
      >>> d = tempfile.mkdtemp()
      >>> try:
      ...     with files.storage_errors(d):
      ...         raise OSError(28, "No space left on device")
      ... except ls.StorageError as e:
      ...     print(type(e).__name__)
      StorageError
    """
    try:
        yield
    except (StorageError, RunNotFoundError, RunExistsError):  # already one line: as they are
        raise
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise StorageError(f"cannot {what} {path}: {reason}") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---------------------------------------------------------------------- writers and their locks
def _token_lock(lock_path: Path):
    import filelock

    return filelock.UnixFileLock(str(lock_path)) if os.name == "posix" else filelock.FileLock(str(lock_path))


@contextlib.contextmanager
def _artifact(path: Path, kind: str) -> Iterator[Path]:
    """A hidden sibling name for a temporary ``kind`` (tmp / staging / old) of ``path``, held
    under its writer's lock for the duration of the block."""
    token = uuid.uuid4().hex
    base = path.parent / f".{path.name}.w{token}"
    lock = _token_lock(Path(f"{base}.lock"))
    lock.acquire()
    try:
        yield Path(f"{base}.{kind}")
    finally:
        with contextlib.suppress(OSError):
            os.unlink(f"{base}.lock")  # unlinked while held: a waiter would see st_nlink 0 and retry
        lock.release()


def remove_stale(directory: str | os.PathLike) -> list[Path]:
    """Delete temporary files and staging directories of killed writers in ``directory``.

    An entry is removed only after its writer's lock has been taken, i.e. only when no
    process anywhere holds it; a run directory that was being replaced when its writer died
    (``.NAME.w<token>.old`` with no ``NAME``) is put back instead.  Returns the removed paths.

    Args:
      directory: where writers leave their temporary files.

    Returns:
      what was removed.

    Examples:
      >>> from landscape.core import files
      >>> import tempfile, os
      >>> d = tempfile.mkdtemp()
      >>> files.remove_stale(d)                                 # nothing left by a killed writer
      []
    """
    removed: list[Path] = []
    directory = Path(directory)
    if not directory.is_dir():
        return removed
    entries, locks = {}, []
    with contextlib.suppress(OSError):
        for entry in directory.iterdir():
            m = _STALE.match(entry.name)
            if m:
                entries.setdefault((m.group("name"), m.group("token")), []).append((m.group("kind"), entry))
            elif entry.name.startswith(".") and entry.name.endswith(".landscape-lock"):
                locks.append(entry)
    for entry in locks:  # the lock of a killed `train` (exclusive() unlinks it on a normal exit)
        lock = _token_lock(entry)
        try:
            lock.acquire(timeout=0)
        except Exception:  # held: that writer is alive
            continue
        try:
            with contextlib.suppress(OSError):
                os.unlink(entry)
                removed.append(entry)
        finally:
            lock.release()
    for (name, token), items in entries.items():
        lock_path = directory / f".{name}.w{token}.lock"
        lock = _token_lock(lock_path)
        try:
            lock.acquire(timeout=0)
        except Exception:  # held: a live writer (filelock.Timeout), or not ours to take
            continue
        try:
            for kind, entry in items:
                if kind == "lock":
                    continue
                if kind == "old" and not (directory / name).exists():
                    os.replace(entry, directory / name)  # killed between the two renames: the old run goes back
                    continue
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        entry.unlink()
                removed.append(entry)
            with contextlib.suppress(OSError):
                os.unlink(lock_path)
        finally:
            lock.release()
    return removed


# ---------------------------------------------------------------------- atomic writes
def atomic_write(path: str | os.PathLike, write: Callable) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, ``fsync`` it, rename it to ``path``.

    Args:
      path: the file to write.
      write: ``file -> None``, writes the content to a binary file object.

    Raises:
      StorageError: the directory is missing or read-only, the disk is full, ... (nothing is
        left behind and an existing ``path`` is unchanged).

    Examples:
      >>> from landscape.core import files
      >>> import tempfile, os
      >>> d = tempfile.mkdtemp()
      >>> files.atomic_write(os.path.join(d, "a.bin"), lambda f: f.write(b"abc"))
      >>> open(os.path.join(d, "a.bin"), "rb").read()
      b'abc'
    """
    path = Path(path)
    with storage_errors(path), _artifact(path, "tmp") as tmp:
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 & ~_umask() | 0o600)
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
    """Write ``data`` to ``path`` atomically (:func:`atomic_write`).

    Args:
      path: the file to write.
      data: its content.

    Examples:
      >>> from landscape.core import files
      >>> import tempfile, os
      >>> d = tempfile.mkdtemp()
      >>> files.atomic_write_bytes(os.path.join(d, "a.txt"), b"hello")
      >>> os.listdir(d)                                           # no temporary file left beside it
      ['a.txt']
    """
    atomic_write(path, lambda f: f.write(data))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically (NaN/inf become ``null``).

    Args:
      path: the file to write.
      obj: a JSON-like value (numpy values are converted: :func:`jsonable`).

    Examples:
      >>> from landscape.core import files
      >>> import tempfile, os
      >>> d = tempfile.mkdtemp()
      >>> files.atomic_write_json(os.path.join(d, "a.json"), {"x": np.float32(1.5), "y": float("nan")})
      >>> files.read_json(os.path.join(d, "a.json"))
      {'x': 1.5, 'y': None}
    """
    text = json.dumps(jsonable(obj), indent=2, allow_nan=False) + "\n"
    atomic_write_bytes(path, text.encode())


def atomic_save_npz(path: str | os.PathLike, arrays: Mapping[str, Any]) -> None:
    """Write an uncompressed ``.npz`` of plain numeric arrays atomically.

    Args:
      path: the ``.npz`` to write.
      arrays: ``{name: array}``.

    Examples:
      >>> from landscape.core import files
      >>> import tempfile, os
      >>> d = tempfile.mkdtemp()
      >>> files.atomic_save_npz(os.path.join(d, "a.npz"), {"v": np.arange(3)})
      >>> files.load_npz(os.path.join(d, "a.npz"))["v"].tolist()
      [0, 1, 2]
    """
    atomic_write(path, lambda f: np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()}))


@contextlib.contextmanager
def staged_directory(path: str | os.PathLike, overwrite: bool) -> Iterator[Path]:
    """Yield a hidden sibling directory that replaces ``path`` when the block succeeds.

    The old ``path`` (if ``overwrite``) is moved aside and deleted only after the new one is
    in place; a kill between the two renames is repaired by the next :func:`remove_stale`.

    Args:
      path: the directory to create (or replace).
      overwrite: allow replacing an existing ``path``.

    Raises:
      RunExistsError: ``path`` exists and ``overwrite`` is false.
      StorageError: the parent directory cannot be written.

    Examples:
      >>> from landscape.core import files
      >>> import tempfile, os
      >>> d = tempfile.mkdtemp()
      >>> target = os.path.join(d, "run")
      >>> with files.staged_directory(target, overwrite=False) as stage:
      ...     _ = (stage / "meta.json").write_text("{}")          # assembled aside, swapped in at the end
      >>> os.listdir(target)
      ['meta.json']
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise RunExistsError(f"{path} already exists; pass --overwrite (overwrite=True) to replace it")
    if path.exists() and not path.is_dir():
        raise RunExistsError(f"{path} exists and is not a directory")
    with storage_errors(path.parent, "create a directory in"):
        path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path.parent)
    with _artifact(path, "staging") as stage:
        with storage_errors(path.parent, "create a directory in"):
            os.mkdir(stage, 0o777)
        try:
            yield stage
            with storage_errors(path), _artifact(path, "old") as old:
                moved = False
                if path.exists():
                    os.replace(path, old)
                    moved = True
                os.replace(stage, path)
                if moved:
                    shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise


@contextlib.contextmanager
def exclusive(lock_path: str | os.PathLike, busy: str) -> Iterator[None]:
    """Hold an OS file lock on ``lock_path`` for the block; another holder → ``ConfigError(busy)`` at once.

    Args:
      lock_path: the lock file (created if needed).
      busy: the message of the ``ConfigError`` when another process holds it.

    Examples:
      >>> from landscape.core import files
      >>> import tempfile, os
      >>> d = tempfile.mkdtemp()
      >>> lock = os.path.join(d, "x.lock")
      >>> with files.exclusive(lock, "busy"):
      ...     try:
      ...         with files.exclusive(lock, "another writer holds it"):
      ...             pass
      ...     except ls.ConfigError as e:
      ...         print(e)
      another writer holds it
    """
    import filelock

    lock_path = Path(lock_path)
    with storage_errors(lock_path.parent, "create a directory in"):
        lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(str(lock_path))
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:  # (a TimeoutError, so an OSError: caught first)
        raise ConfigError(busy) from None
    except OSError as exc:
        raise StorageError(f"cannot lock {lock_path}: {exc.strerror or type(exc).__name__}") from None
    try:
        yield
    finally:
        with contextlib.suppress(OSError):  # no clutter; a process that opened it meanwhile sees
            os.unlink(lock_path)            # st_nlink 0 after its flock and starts over (filelock)
        lock.release()


def check_writable(directory: str | os.PathLike) -> Path:
    """Create ``directory`` if needed and prove it writable by writing and removing a file.

    Args:
      directory: the directory.

    Returns:
      its path.

    Raises:
      StorageError: it cannot be created or written (read-only, permissions, full disk).

    Examples:
      >>> from landscape.core import files
      >>> import tempfile, os
      >>> d = tempfile.mkdtemp()
      >>> files.check_writable(os.path.join(d, "results")).name   # created, proven writable
      'results'
    """
    directory = Path(directory)
    with storage_errors(directory, "create"):
        directory.mkdir(parents=True, exist_ok=True)
    probe = directory / f".landscape-write-test-{uuid.uuid4().hex}"
    atomic_write_bytes(probe, b"ok\n")
    with storage_errors(directory, "write to"):
        os.unlink(probe)
    return directory


# ---------------------------------------------------------------------- bounded reads
def npz_shapes(path: str | os.PathLike) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """``{name: (shape, dtype)}`` of every array of an ``.npz``, read from the headers only.

    Args:
      path: an ``.npz`` file.

    Returns:
      the shapes and dtypes by array name.

    Raises:
      CorruptRunError: not a zip of ``.npy`` members, odd member names, object or non-numeric
        dtypes, or a member that declares more data than it holds.

    Examples:
      >>> from landscape.core import files
      >>> import tempfile, os
      >>> d = tempfile.mkdtemp()
      >>> files.atomic_save_npz(os.path.join(d, "a.npz"), {"v": np.zeros((2, 3), np.float32)})
      >>> files.npz_shapes(os.path.join(d, "a.npz"))
      {'v': ((2, 3), dtype('float32'))}
    """
    from numpy.lib import format as npformat

    path = Path(path)
    out = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                name = info.filename
                if name[:-4] in out:
                    raise CorruptRunError(f"{path}: the array {name!r} is stored twice")
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
                if dtype.kind not in "biuf" or dtype.itemsize > 8:
                    raise CorruptRunError(f"{path}: {name!r} has dtype {dtype}; only plain numbers are read")
                declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
                if declared > info.file_size:
                    raise CorruptRunError(
                        f"{path}: {name!r} declares {declared} bytes of data but holds {info.file_size}")
                out[name[:-4]] = (tuple(int(s) for s in shape), dtype)
    except CorruptRunError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise CorruptRunError(f"{path} is truncated or not a numpy archive ({type(exc).__name__}: {exc})") from None
    return out


def load_npz(
    path: str | os.PathLike,
    *,
    shapes: Mapping[str, tuple[int, ...]] | None = None,
    max_bytes: int | None = None,
) -> dict[str, np.ndarray]:
    """Every array of an ``.npz``, checked from its headers before any data is read.

    Args:
      path: the file.
      shapes: when given, the exact ``{name: shape}`` the file must hold (nothing else).
      max_bytes: limit on the total uncompressed size (default :func:`max_array_bytes`).

    Raises:
      RunNotFoundError: no such file.
      CorruptRunError: see :func:`npz_shapes`; other shapes than ``shapes``; over ``max_bytes``.

    Examples:
      >>> from landscape.core import files
      >>> import tempfile, os
      >>> d = tempfile.mkdtemp()
      >>> files.atomic_save_npz(os.path.join(d, "a.npz"), {"v": np.zeros((2, 3))})
      >>> files.load_npz(os.path.join(d, "a.npz"), shapes={"v": (2, 3)})["v"].shape
      (2, 3)
      >>> files.load_npz(os.path.join(d, "a.npz"), shapes={"v": (5,)})
      Traceback (most recent call last):
      ...
      landscape.core.errors.CorruptRunError: ...
    """
    path = Path(path)
    if not path.is_file():
        raise RunNotFoundError(f"missing file {path}")
    declared = npz_shapes(path)
    if shapes is not None:
        got = {k: s for k, (s, _) in declared.items()}
        want = {k: tuple(s) for k, s in shapes.items()}
        if got != want:
            bad = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
            raise CorruptRunError(f"{path}: arrays {', '.join(bad[:5])} do not have the expected shapes "
                                  f"({', '.join(f'{k}: {got.get(k)} vs {want.get(k)}' for k in bad[:3])})")
    total = sum(int(np.prod(s, dtype=object)) * d.itemsize for s, d in declared.values())
    limit = max_array_bytes() if max_bytes is None else max_bytes
    if total > limit:
        raise CorruptRunError(f"{path} declares {total} bytes of arrays, more than the limit of {limit} "
                              f"(${MAX_BYTES_ENV})")
    try:
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as z:
            return {name: z[name] for name in z.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, KeyError, MemoryError) as exc:
        raise CorruptRunError(f"{path} is truncated or not a numpy archive ({type(exc).__name__}: {exc})") from None


def read_json(path: str | os.PathLike) -> dict:
    """A JSON object from ``path``, size-limited, with one-line errors.

    Args:
      path: a JSON file holding an object.

    Returns:
      the object.

    Raises:
      RunNotFoundError: no such file.
      CorruptRunError: too large, not UTF-8 JSON, too deeply nested, an integer too long to
        convert, or not an object.

    Examples:
      >>> from landscape.core import files
      >>> import tempfile, os
      >>> d = tempfile.mkdtemp()
      >>> files.atomic_write_json(os.path.join(d, "a.json"), {"grid": 51})
      >>> files.read_json(os.path.join(d, "a.json"))
      {'grid': 51}
    """
    path = Path(path)
    if not path.is_file():
        raise RunNotFoundError(f"missing file {path}")
    with storage_errors(path, "read"):
        if path.stat().st_size > MAX_JSON_BYTES:
            raise CorruptRunError(f"{path} is implausibly large for metadata")
        raw = path.read_bytes()
    return parse_json(raw, path)


def parse_json(raw: bytes, where: str | os.PathLike) -> dict:
    """A JSON object from ``raw`` bytes (see :func:`read_json`); ``where`` names it in errors.

    Args:
      raw: the file's bytes.
      where: the file, for the error message.

    Returns:
      the object.

    Raises:
      CorruptRunError: not a JSON object.
    """
    try:
        obj = json.loads(raw.decode())
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # JSONDecodeError, long ints
        raise CorruptRunError(f"{where} is not valid JSON ({type(exc).__name__})") from None
    if not isinstance(obj, dict):
        raise CorruptRunError(f"{where} does not hold a JSON object")
    return obj


def jsonable(obj: Any) -> Any:
    """``obj`` with numpy scalars and arrays as Python values and non-finite floats as ``None``.

    Args:
      obj: a value (dicts, lists, tuples, numpy scalars and arrays, floats …).

    Returns:
      a value ``json.dumps`` accepts with ``allow_nan=False``.

    Examples:
      >>> from landscape.core import files
      >>> files.jsonable({"a": np.arange(2), "b": np.float64("inf"), "c": (np.int32(3),)})
      {'a': [0, 1], 'b': None, 'c': [3]}
    """
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if np.isfinite(v) else None
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes.

    Args:
      path: a file.

    Returns:
      64 hex digits.

    Examples:
      >>> from landscape.core import files
      >>> import tempfile, os
      >>> d = tempfile.mkdtemp()
      >>> files.atomic_write_bytes(os.path.join(d, "a"), b"")
      >>> files.sha256(os.path.join(d, "a"))[:16]              # the empty file's digest
      'e3b0c44298fc1c14'
    """
    import hashlib

    h = hashlib.sha256()
    with storage_errors(path, "read"), open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
