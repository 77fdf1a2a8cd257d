"""Named results of a run directory, tied to exactly what they were computed from.

A result (``RUN/results/NAME.npz``, with a readable copy of its metadata in ``NAME.json``,
committed in one atomic rename by :func:`landscape.io.save_result`)
carries its *provenance*: the SHA-256 of the run's parameter file, the identity of the data set
the run was trained on, and every setting of the computation (members, directions, keys, grid,
splits, …).  A saved result is reused only when all of it equals what the current command
would compute from; otherwise the command is refused with one line that names what differs —
or, when only the run's parameters changed (the run was trained again), says so.

Writers take a real lock (``filelock``: an OS file lock, released by the kernel when the
process dies, whatever its PID namespace) on the result for the whole computation: a second
command computing the same result fails at once with one line instead of silently replacing
the first one's.  Just before committing, the run's parameters are hashed again: a result whose
run was replaced while it was being computed is not saved.

Internal files — checkpoints of interrupted computations and the locks — live in
``RUN/.landscape/``, which no result name (letters, digits, ``.``, ``_``, ``-``) can reach.
A result's checkpoints are tied to its provenance (another provenance clears them) and are
deleted only after the result is committed: a kill at any instant loses no finished chunk.
The run's directories are proven writable before anything is computed.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError

__all__ = ["INTERNAL", "RENAMED", "Result", "provenance", "migrated", "differences", "run_status", "load_if_current"]

#: The run's directory of internal files (checkpoints, locks).
INTERNAL = ".landscape"


def _params_sha256(run: Path) -> str:
    from ..core import files

    return files.sha256(run / "params.npz")


def provenance(run: str | os.PathLike, settings: dict) -> dict:
    """What a result of ``run`` computed with ``settings`` is computed from.

    Args:
      run: the run directory.
      settings: every setting of the computation (JSON-ready).

    Returns:
      ``{"params_sha256": <hash of RUN/params.npz>, "data": <the run's data set identity>,
      "settings": settings}`` in JSON form, with ``"matmul_precision"`` added when float32
      products are not exact (:func:`landscape.precision.matmul_precision`: TF32 on a GPU, say).

    Examples:
      >>> from landscape.store import results
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> ens = ls.train_ensemble(ls.MLP(hidden=(4,)), data, key=jax.random.key(0), seeds=3,
      ...                         loss="cross_entropy", steps=30, execution=ls.Execution(progress=False))
      >>> import tempfile
      >>> run = ls.save_run(tempfile.mkdtemp() + "/run", ens)
      >>> p = results.provenance(run, {"grid": 5})
      >>> sorted(p), p["data"]["name"], len(p["params_sha256"])
      (['data', 'params_sha256', 'settings'], 'blobs', 64)
    """
    from ..core import files, precision
    from . import runs as io

    run = io.run_path(run)
    meta = io.read_meta(run)
    out = {"params_sha256": _params_sha256(run), "data": meta.get("train", {}).get("data"), "settings": settings}
    arithmetic = precision.matmul_precision()
    if arithmetic != "float32":  # TF32 / bfloat16 products: another computation than exact float32
        out["matmul_precision"] = arithmetic
    return files.jsonable(out)


def differences(saved: Any, current: Any, prefix: str = "") -> list[str]:
    """Dotted names of the entries that differ between two JSON-like values (``settings.grid``, …).

    Args:
      saved: a JSON-like value (a saved result's provenance).
      current: the value it is compared with.
      prefix: the dotted name of both (for recursion).

    Returns:
      the names, sorted as met.

    Examples:
      >>> from landscape.store import results
      >>> results.differences({"settings": {"grid": 51, "key": 0}}, {"settings": {"grid": 41, "key": 0}})
      ['settings.grid']
    """
    if isinstance(saved, dict) and isinstance(current, dict):
        out = []
        for k in sorted(set(saved) | set(current), key=str):
            name = f"{prefix}.{k}" if prefix else str(k)
            if k not in saved or k not in current:
                out.append(name)
            else:
                out += differences(saved[k], current[k], name)
        return out
    return [] if saved == current else [prefix or "value"]


#: Settings renamed since a release wrote them: ``{command: {old name: (new name, convert)}}``.
#: A saved result's provenance is read with the new names, so a result computed from the same
#: inputs is still reused (and one computed from others still refused, naming the new names).
RENAMED = {"trajectory": {"seed": ("seeds", str)}}


def migrated(saved: Any) -> Any:
    """A saved provenance with the settings an older release spelled differently renamed to
    their present names (:data:`RENAMED`); anything else unchanged.

    Args:
      saved: a result's ``meta["provenance"]`` (``None`` for a result without one).

    Returns:
      the provenance as the present release would have written it (a new dict; ``saved``
      itself is not modified).

    Examples:
      >>> from landscape.store import results
      >>> old = {"params_sha256": "ab", "settings": {"command": "trajectory", "seed": 2, "grid": 41}}
      >>> results.migrated(old)["settings"]                   # an older release's spelling, renamed
      {'command': 'trajectory', 'grid': 41, 'seeds': '2'}
    """
    if not isinstance(saved, dict) or not isinstance(saved.get("settings"), dict):
        return saved
    settings = dict(saved["settings"])
    for old, (new, convert) in RENAMED.get(settings.get("command"), {}).items():
        if old in settings and new not in settings:
            settings[new] = convert(settings.pop(old))
    return {**saved, "settings": settings}


def _valid_name(name: str) -> str:
    if not name or not name.replace("_", "").replace("-", "").replace(".", "").isalnum() or name.startswith("."):
        raise ConfigError(f"result name may hold letters, digits, '.', '_' and '-' only (not first '.'), got {name!r}")
    return name


class Result:
    """A named result of a run: where it lives, whether a saved one is current, how to write it.

    Args:
      run: the run directory.
      name: the result's name (``RUN/results/NAME.npz``).
      settings: every setting of the computation; with the run's parameters and data set it
        forms the result's :func:`provenance`.

    Attributes:
      provenance: what the result is computed from (:func:`provenance`).
      stem: ``RUN/results/NAME`` (the ``.npz`` and ``.json`` beside it).
      checkpoints: the result's checkpoint directory (removed after the commit).
      checkpoint: the surface evaluator's checkpoint file in it.

    Examples:
      >>> from landscape.store import results
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> ens = ls.train_ensemble(ls.MLP(hidden=(4,)), data, key=jax.random.key(0), seeds=3,
      ...                         loss="cross_entropy", steps=30, execution=ls.Execution(progress=False))
      >>> import tempfile
      >>> run = ls.save_run(tempfile.mkdtemp() + "/run", ens)
      >>> res = results.Result(run, "mine", {"grid": 5})
      >>> res.load_current() is None                              # nothing saved yet
      True
      >>> with res.writing():                                     # the result's lock, for the computation
      ...     arrays, meta = res.commit({"v": np.arange(3.0)}, {"kind": "mine"})
      >>> results.Result(run, "mine", {"grid": 5}).load_current()[0]["v"].tolist()   # reused: same inputs
      [0.0, 1.0, 2.0]
      >>> results.Result(run, "mine", {"grid": 7}).load_current()
      Traceback (most recent call last):
      ...
      landscape.core.errors.ConfigError: result 'mine' exists with other settings (grid differ); ...
    """

    def __init__(self, run: str | os.PathLike, name: str, settings: dict):
        from . import runs as io

        self.run = io.run_path(run)
        self.name = _valid_name(name)
        self.provenance = provenance(self.run, settings)
        self.stem = self.run / "results" / self.name
        internal = self.run / INTERNAL
        #: directory of this result's checkpoints (one file per resumable part)
        self.checkpoints = internal / "checkpoints" / self.name
        self.checkpoint = self.checkpoints / "evaluate.npz"
        self._lock_path = internal / "locks" / f"{self.name}.lock"

    def load_current(self, *, overwrite: bool = False):
        """``(arrays, meta)`` of the saved result if it was computed from exactly this
        provenance; ``None`` when there is none (or ``overwrite``).

        Args:
          overwrite: ignore a saved result (it will be replaced).

        Raises:
          ConfigError: a saved result of this name was computed from something else (the
            message names what differs).
        """
        from . import runs as io

        if overwrite or not io.result_paths(self.stem)[0].exists():
            return None
        arrays, meta = io.load_result(self.stem)
        saved = migrated(meta.get("provenance"))
        if saved == self.provenance:
            return arrays, meta
        if saved is None:
            raise ConfigError(f"result {self.name!r} of {self.run} records no provenance (an older version wrote "
                              "it); pass --overwrite to recompute it")
        diffs = differences(saved, self.provenance)
        if diffs == ["params_sha256"]:
            raise ConfigError(f"result {self.name!r} was computed from other parameters of {self.run} (the run was "
                              "trained again); pass --overwrite to recompute it")
        shown = [d.removeprefix("settings.") for d in diffs]
        raise ConfigError(f"result {self.name!r} exists with other settings ({', '.join(shown)} differ); "
                          "pass --overwrite to replace it, or --name to keep both")

    @contextlib.contextmanager
    def writing(self):
        """Hold the result's write lock for a computation (fails at once if another process holds
        it), after proving the run's directories writable and clearing checkpoints of another
        provenance.

        Raises:
          ConfigError: another process is computing this result.
          StorageError: the run directory cannot be written (read-only, full, permissions).
        """
        import json

        from ..core import files

        for d in (self.run / "results", self.run / "figures", self.checkpoints):
            files.check_writable(d)
        with files.exclusive(self._lock_path, f"another command is computing result {self.name!r} of {self.run} "
                                              "right now; wait for it to finish, or choose another --name"):
            tag = self.checkpoints / "provenance.json"
            text = json.dumps(self.provenance, sort_keys=True)
            try:
                same = tag.read_text() == text
            except OSError:
                same = False
            if not same:  # checkpoints of another computation under this name: never resumed from
                import shutil

                shutil.rmtree(self.checkpoints, ignore_errors=True)
                files.check_writable(self.checkpoints)
                files.atomic_write_bytes(tag, text.encode())
            yield self

    def commit(self, arrays: dict, meta: dict):
        """Write the result with its provenance (call inside :meth:`writing`), then delete its
        checkpoints; ``(arrays, meta)`` as read back.

        Args:
          arrays: the result's arrays.
          meta: its metadata (the provenance is added here).

        Raises:
          ConfigError: the run's parameters changed while the result was computed (it is not saved).
        """
        import shutil

        from . import runs as io

        if _params_sha256(self.run) != self.provenance["params_sha256"]:
            raise ConfigError(f"{self.run} was trained again while result {self.name!r} was computed; "
                              "nothing saved: run the command again")
        io.save_result(self.stem, arrays, {**meta, "provenance": self.provenance})
        shutil.rmtree(self.checkpoints, ignore_errors=True)
        return io.load_result(self.stem)


def _standing(meta: dict, sha: str, data: Any) -> tuple[bool, str]:
    """``(current, why)`` of a saved result's metadata against the run's parameter hash and data set."""
    from ..core import files

    prov = meta.get("provenance")
    if prov is None:
        return False, "no provenance (saved by hand or by an older version): cannot be checked"
    if prov.get("params_sha256") != sha:
        return False, "computed from other parameters (the run was trained again)"
    if prov.get("data") != files.jsonable(data):
        return False, "computed on another data set"
    return True, "current"


def run_status(run: str | os.PathLike) -> list[dict]:
    """Every saved result of a run and whether it is current.

    Args:
      run: a run directory.

    Returns:
      ``[{"name", "kind", "current": bool, "why": str}, ...]`` sorted by name; a result is
      current when it was computed from the run's present parameters and data set (its
      settings are its own).

    Examples:
      >>> from landscape.store import results
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> ens = ls.train_ensemble(ls.MLP(hidden=(4,)), data, key=jax.random.key(0), seeds=3,
      ...                         loss="cross_entropy", steps=30, execution=ls.Execution(progress=False))
      >>> import tempfile
      >>> run = ls.save_run(tempfile.mkdtemp() + "/run", ens)
      >>> quiet = ls.analyses.Execution(progress=False)
      >>> out = ls.analyses.surface(run, ls.analyses.SurfaceSpec(seeds="0", grid=5), execution=quiet)
      >>> [(r["name"], r["current"]) for r in results.run_status(run)]
      [('plane_seed0_random_filter_g5_s1', True)]
    """
    from . import runs as io

    run = io.run_path(run)
    sha = _params_sha256(run)
    data = io.read_meta(run).get("train", {}).get("data")
    out = []
    for npz in sorted((run / "results").glob("*.npz")):
        name = npz.stem
        try:
            _, meta = io.load_result(run / "results" / name)
        except Exception as exc:  # a damaged result is listed, not fatal
            out.append({"name": name, "kind": None, "current": False, "why": f"unreadable: {exc}"})
            continue
        ok, why = _standing(meta, sha, data)
        out.append({"name": name, "kind": meta.get("kind"), "current": ok, "why": why})
    return out


def load_if_current(run: str | os.PathLike, name: str):
    """``(arrays, meta)`` of the saved result ``name`` when it is current (see :func:`run_status`),
    else ``None`` (missing, unreadable or stale) — reading that one result only.

    Args:
      run: a run directory.
      name: the result's name.

    Returns:
      ``(arrays, meta)`` or ``None``.

    Examples:
      >>> from landscape.store import results
      >>> data = ls.data.blobs(num_train=64, num_test=32)
      >>> ens = ls.train_ensemble(ls.MLP(hidden=(4,)), data, key=jax.random.key(0), seeds=3,
      ...                         loss="cross_entropy", steps=30, execution=ls.Execution(progress=False))
      >>> import tempfile
      >>> run = ls.save_run(tempfile.mkdtemp() + "/run", ens)
      >>> quiet = ls.analyses.Execution(progress=False)
      >>> out = ls.analyses.surface(run, ls.analyses.SurfaceSpec(seeds="0", grid=5), execution=quiet)
      >>> arrays, meta = results.load_if_current(run, out.name)
      >>> arrays["value/train_loss"].shape
      (5, 5)
    """
    from ..core.errors import LandscapeError
    from . import runs as io

    run = io.run_path(run)
    stem = run / "results" / _valid_name(name)
    if not io.result_paths(stem)[0].exists():
        return None
    try:
        arrays, meta = io.load_result(stem)
    except LandscapeError:
        return None
    ok, _ = _standing(meta, _params_sha256(run), io.read_meta(run).get("train", {}).get("data"))
    return (arrays, meta) if ok else None
