"""Run directories: round trip, refusal to overwrite, atomic replacement, corrupted files."""

import json

import jax
import numpy as np
import pytest
from landscape.errors import CorruptRunError, RunExistsError, RunNotFoundError

import landscape as ls
from landscape.core import files

from .conftest import assert_trees_equal


@pytest.fixture(scope="module")
def ens(blobs):
    import jax

    return ls.train_ensemble(ls.MLP(hidden=(4, 3), activation="tanh", output_activation="identity"), blobs, key=jax.random.key(0), seeds=3,
                             optimizer=ls.OptimizerSpec("sgd"), learning_rates=[0.1, 0.2], loss="cross_entropy",
                             steps=6, log_every=2, snapshot_every=4, execution=ls.Execution(progress=False))


def test_save_load_round_trip_is_exact(ens, tmp_path):
    path = ls.save_run(tmp_path / "run", ens)
    back = ls.load_run(path)
    assert back.model == ens.model
    assert_trees_equal(back.params, ens.params)
    assert_trees_equal(back.trajectory.params, ens.trajectory.params)
    np.testing.assert_array_equal(back.trajectory.step, ens.trajectory.step)
    for k, v in ens.history.arrays().items():
        np.testing.assert_array_equal(getattr(back.history, k), v)
    for k in ("seeds", "learning_rates", "diverged", "diverged_step"):
        np.testing.assert_array_equal(getattr(back, k), getattr(ens, k))
    assert back.config == json.loads(json.dumps(ens.config))
    meta = ls.io.read_meta(path)
    assert meta["environment"]["versions"]["jax"] and meta["environment"]["backend"] == jax.default_backend()
    assert not list(tmp_path.glob(".*"))  # no staging leftovers


def test_refuses_to_overwrite_and_replaces_atomically(ens, tmp_path):
    path = ls.save_run(tmp_path / "run", ens)
    before = (path / "params.npz").read_bytes()
    with pytest.raises(RunExistsError, match="already exists"):
        ls.save_run(path, ens)
    assert (path / "params.npz").read_bytes() == before
    ls.save_run(path, ens, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_failed_write_leaves_old_run_intact(ens, tmp_path, monkeypatch):
    path = ls.save_run(tmp_path / "run", ens)
    before = {p.name: p.read_bytes() for p in path.iterdir()}

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(files, "atomic_write_json", boom)
    with pytest.raises(OSError, match="disk full"):
        ls.save_run(path, ens, overwrite=True)
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def _corrupt(path, name, how):
    f = path / name
    if how == "truncate":
        f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])
    elif how == "garbage":
        f.write_bytes(b"\x00not a file\xff" * 10)
    elif how == "delete":
        f.unlink()


@pytest.mark.parametrize("name", ["params.npz", "history.npz", "members.npz", "trajectory.npz", "meta.json"])
@pytest.mark.parametrize("how", ["truncate", "garbage", "delete"])
def test_corrupted_files_raise_clear_errors(ens, tmp_path, name, how):
    path = ls.save_run(tmp_path / "run", ens)
    _corrupt(path, name, how)
    if how == "delete" and name == "trajectory.npz":
        assert ls.load_run(path).trajectory is None  # optional file
        return
    with pytest.raises((CorruptRunError, RunNotFoundError)):
        ls.load_run(path)


def test_wrong_shapes_and_versions_are_rejected(ens, tmp_path):
    path = ls.save_run(tmp_path / "run", ens)
    meta = json.loads((path / "meta.json").read_text())
    (path / "meta.json").write_text(json.dumps({**meta, "model": {**meta["model"], "hidden": [5, 3]}}))
    with pytest.raises(CorruptRunError, match="do not have the expected shapes"):
        ls.load_run(path)
    (path / "meta.json").write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(CorruptRunError, match="format 99"):
        ls.load_run(path)
    (path / "meta.json").write_text(json.dumps({**meta, "format": "something-else"}))
    with pytest.raises(CorruptRunError, match="not landscape"):
        ls.load_run(path)


def test_pickled_arrays_are_never_loaded(ens, tmp_path):
    path = ls.save_run(tmp_path / "run", ens)
    np.savez(path / "members.npz", seeds=np.array([object()], dtype=object))
    with pytest.raises(CorruptRunError):
        ls.load_run(path)


def test_missing_directory(tmp_path):
    with pytest.raises(RunNotFoundError, match="no run directory"):
        ls.load_run(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunNotFoundError, match="not a landscape run"):
        ls.load_run(tmp_path / "empty")


def test_a_missing_result_is_explained_in_the_terms_the_user_gave(ens, tmp_path):
    """`plot RUN/meta.json` said `no result at RUN/meta.npz`; `export RUN` said `no result at RUN.npz`."""
    from .clirun import run

    path = ls.save_run(tmp_path / "run", ens)
    with pytest.raises(RunNotFoundError, match=r"run is a run directory, not a result: a result is RUN/results/NAME"
                                                r".*holds no results yet"):
        ls.io.load_result(path)
    ls.io.save_result(path / "results" / "plane", {"v": np.zeros(2)}, {"kind": "mine"})
    with pytest.raises(RunNotFoundError, match=r"meta.json is in the run directory .*its results: plane$"):
        ls.io.load_result(path / "meta.json")
    with pytest.raises(RunNotFoundError, match=r"no result 'plain' in .*results; its results: plane$"):
        ls.io.load_result(path / "results" / "plain.npz")
    with pytest.raises(RunNotFoundError, match=r"no result at .*elsewhere/x: there is no x.npz there"):
        ls.io.load_result(tmp_path / "elsewhere" / "x")
    for command in ("plot", "export"):
        r = run(command, str(path / "meta.json"))
        assert r.returncode != 0 and "meta.npz" not in r.stderr and "run.npz" not in r.stderr
        assert f"{path / 'meta.json'} is in the run directory" in r.stderr and len(r.stderr.strip().splitlines()) == 1
        r = run(command, str(path))
        assert r.returncode != 0 and f"{path} is a run directory, not a result" in r.stderr, r.stderr
