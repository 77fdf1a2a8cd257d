"""JAX's persistent compilation cache, kept in the user's cache directory.

A command of the ``landscape`` tool spends most of its time compiling when it runs once: a
21×21 plane computes in a tenth of a second but compiles for seconds.  JAX can keep every
compiled program on disk, keyed by the program, the compiler options, the backend and the
library versions, and load it when the same program is compiled again — in another process,
for another seed, the next day.  This module only chooses where and turns it on; JAX does the
rest (its own file lock guards concurrent writers once a size limit is set, as here).

Where (first that applies):

* ``$LANDSCAPE_COMPILE_CACHE``: ``0``, ``off``, ``false`` or ``no`` turns the cache off; any
  other value is the directory;
* ``$XDG_CACHE_HOME/landscape/jax`` (``~/.cache/landscape/jax`` on Linux; the platform's user
  cache directory elsewhere, through ``platformdirs``).

The CLI turns the cache on for every command (``--no-compile-cache`` turns it off for one
command); a Python user calls :func:`enable` once.  ``landscape cache`` shows the directory and
its size, ``landscape cache --clear`` empties it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from .errors import ConfigError

__all__ = ["ENV", "DEFAULT_MAX_BYTES", "cache_dir", "enable", "usage", "clear"]

#: The environment variable that moves or turns off the cache.
ENV = "LANDSCAPE_COMPILE_CACHE"
#: Size limit of the cache directory; JAX evicts the least recently used programs beyond it.
DEFAULT_MAX_BYTES = 2 * 2**30
_OFF = ("0", "off", "false", "no", "none")


def cache_dir(environ: Mapping[str, str] | None = None) -> Path | None:
    """The compilation cache directory the tool uses, or ``None`` when it is turned off.

    Args:
      environ: the environment to read (default ``os.environ``).

    Returns:
      ``$LANDSCAPE_COMPILE_CACHE`` if set (``None`` for ``0``/``off``/``false``/``no``), else the
      user cache directory's ``landscape/jax``.

    Examples:
      >>> str(ls.compilation_cache.cache_dir({"LANDSCAPE_COMPILE_CACHE": "/tmp/jax-cache"}))
      '/tmp/jax-cache'
      >>> ls.compilation_cache.cache_dir({"LANDSCAPE_COMPILE_CACHE": "off"}) is None
      True
    """
    env = os.environ if environ is None else environ
    value = env.get(ENV)
    if value is not None:
        if value.strip().lower() in _OFF or not value.strip():
            return None
        return Path(value).expanduser()
    if env.get("XDG_CACHE_HOME"):
        return Path(env["XDG_CACHE_HOME"]).expanduser() / "landscape" / "jax"
    import platformdirs

    return Path(platformdirs.user_cache_dir("landscape", appauthor=False)) / "jax"


def enable(path: str | os.PathLike | None = None, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Path | None:
    """Turn on JAX's persistent compilation cache for this process.

    Every program is cached, however quickly it compiled: the tool's commands compile dozens of
    small programs whose compile times add up.  Call it before the first computation; later
    calls move the cache.

    Args:
      path: the directory (created if missing); ``None``: :func:`cache_dir`, which may say off.
      max_bytes: the directory's size limit; least recently used programs are evicted beyond it.

    Returns:
      The directory in use, or ``None`` when the cache is turned off.

    Raises:
      ConfigError: the directory cannot be created or written.

    Examples:
      >>> import tempfile, os
      >>> d = tempfile.mkdtemp()
      >>> ls.compilation_cache.enable(d) == ls.compilation_cache.cache_dir({"LANDSCAPE_COMPILE_CACHE": d})
      True
    """
    where = Path(path).expanduser() if path is not None else cache_dir()
    if where is None:
        return None
    try:
        where.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the compilation cache {where} ({exc.strerror}); "
                          f"set {ENV} to another directory, or to 0 to turn the cache off") from None
    if not os.access(where, os.W_OK | os.X_OK):
        raise ConfigError(f"the compilation cache {where} is not writable; "
                          f"set {ENV} to another directory, or to 0 to turn the cache off")
    import jax

    jax.config.update("jax_compilation_cache_dir", str(where))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    jax.config.update("jax_compilation_cache_max_size", int(max_bytes))
    return where


def usage(path: str | os.PathLike | None = None) -> dict:
    """What the cache holds.

    Args:
      path: the directory (default :func:`cache_dir`).

    Returns:
      ``{"path": str | None, "programs": int, "bytes": int}`` (zeros when off or missing).

    Examples:
      >>> import tempfile, os
      >>> d = tempfile.mkdtemp()
      >>> sorted(ls.compilation_cache.usage(d))
      ['bytes', 'path', 'programs']
    """
    where = Path(path) if path is not None else cache_dir()
    if where is None or not where.is_dir():
        return {"path": None if where is None else str(where), "programs": 0, "bytes": 0}
    files = [p for p in where.iterdir() if p.is_file() and not p.name.startswith(".")]
    return {"path": str(where), "programs": sum(p.name.endswith("-cache") for p in files),
            "bytes": sum(p.stat().st_size for p in files)}


def clear(path: str | os.PathLike | None = None) -> int:
    """Remove every cached program (the directory itself stays).

    Args:
      path: the directory (default :func:`cache_dir`).

    Returns:
      The number of bytes freed.

    Examples:
      >>> import tempfile, os
      >>> d = tempfile.mkdtemp()
      >>> _ = open(os.path.join(d, "program-cache"), "wb").write(b"x" * 10)
      >>> ls.compilation_cache.clear(d), os.listdir(d)            # bytes freed; the directory is kept
      (10, [])
    """
    where = Path(path) if path is not None else cache_dir()
    if where is None or not where.is_dir():
        return 0
    freed = usage(where)["bytes"]
    for p in where.iterdir():
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink(missing_ok=True)
    return freed
