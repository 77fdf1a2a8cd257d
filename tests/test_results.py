"""Results tied to their provenance: reuse only when current, clear refusals, one writer at a time."""

import json
import subprocess
import sys

import filelock
import jax
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import landscape as ls
from landscape.store import results

from .clirun import TINY, run

SURFACE = ["--seed", "0", "--grid", "5", "--quiet", "--no-plot"]


@pytest.fixture
def fresh_run(tmp_path):
    out = tmp_path / "run"
    r = run("train", *TINY, "--out", str(out), "--no-plot")
    assert r.returncode == 0, r.stderr
    return out


@pytest.mark.slow  # 9-20 s: the default suite stays near five minutes on 2 cores
def test_retrained_run_makes_its_results_stale_not_reused(fresh_run):
    out = fresh_run
    assert run("surface", str(out), *SURFACE).returncode == 0
    r = run("info", str(out))
    assert "results (1 of 1 current)" in r.stdout
    # the run is trained again (another key) and an old result ends up in it (a writer that raced
    # the retraining, as before results had provenance): same settings, other parameters
    import shutil

    shutil.copytree(out / "results", out.parent / "old-results")
    assert run("train", *TINY, "--key", "7", "--out", str(out), "--overwrite", "--no-plot").returncode == 0
    assert not (out / "results").exists()  # retraining starts a run without results
    shutil.copytree(out.parent / "old-results", out / "results")
    r = run("surface", str(out), *SURFACE)
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "computed from other parameters" in r.stderr and "trained again" in r.stderr
    info = json.loads(run("info", str(out), "--json").stdout)
    assert [(x["current"], x["why"]) for x in info["results"]] == [
        (False, "computed from other parameters (the run was trained again)")]
    stale = info["results"][0]["name"]
    assert results.load_if_current(out, stale) is None  # what report.md would quote: nothing
    r = run("surface", str(out), *SURFACE, "--overwrite")
    assert r.returncode == 0, r.stderr
    assert "results (1 of 1 current)" in run("info", str(out)).stdout
    arrays, meta = results.load_if_current(out, stale)
    assert meta["provenance"]["params_sha256"] == results.provenance(out, {})["params_sha256"]


@pytest.mark.slow  # test_cli_landscape's rerun test keeps reuse and the named difference in the default suite
def test_other_settings_are_named(fresh_run):
    out = fresh_run
    assert run("surface", str(out), *SURFACE, "--name", "mine").returncode == 0
    r = run("surface", str(out), "--seed", "0", "--grid", "5", "--norm", "layer", "--key", "3", "--quiet",
            "--no-plot", "--name", "mine")
    assert r.returncode == 2 and "(key, norm differ)" in r.stderr and "--name" in r.stderr
    # the same settings again: reused, not recomputed
    r = run("surface", str(out), *SURFACE, "--name", "mine")
    assert r.returncode == 0 and "result:" in r.stdout


def test_a_second_writer_of_the_same_result_fails_at_once(fresh_run):
    out = fresh_run
    name = "plane_seed0_random_filter_g5_s1"
    lock_path = out / results.INTERNAL / "locks" / f"{name}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(lock_path)):  # another process holds it: this test process
        r = run("surface", str(out), *SURFACE)
    assert r.returncode == 2 and "another command is computing result" in r.stderr
    assert not (out / "results" / f"{name}.json").exists()
    assert run("surface", str(out), *SURFACE).returncode == 0  # free again


@pytest.mark.slow  # kept out of the default suite's 5 minutes; CI runs it with -m slow
def test_hessian_and_compare_take_a_name(fresh_run):
    out = fresh_run
    r = run("hessian", str(out), "--top", "1", "--probes", "2", "--name", "h1", "--quiet", "--no-plot")
    assert r.returncode == 0, r.stderr
    r = run("compare", str(out), "--grid", "3", "--name", "c1", "--quiet", "--no-plot")
    assert r.returncode == 0, r.stderr
    assert (out / "results" / "h1.json").exists() and (out / "results" / "c1.json").exists()
    assert not list((out / results.INTERNAL / "checkpoints").iterdir())


def test_run_replaced_during_the_computation_is_not_saved(tmp_path, blobs):
    def trained(seed):
        return ls.train_ensemble(ls.MLP(hidden=(3,), output_activation="identity"), blobs, key=jax.random.key(seed), seeds=2, steps=2,
                                 execution=ls.Execution(progress=False))

    out = ls.save_run(tmp_path / "run", trained(0))
    res = results.Result(out, "x", {"a": 1})
    with res.writing():
        ls.save_run(out, trained(1), overwrite=True)  # `train --overwrite` finished meanwhile
        with pytest.raises(ls.ConfigError, match="trained again while result 'x' was computed"):
            res.commit({"v": jax.numpy.zeros(3)}, {"kind": "test"})
    assert not (out / "results" / "x.json").exists()


def test_internal_files_are_out_of_reach_of_result_names(tmp_path, blobs):
    ens = ls.train_ensemble(ls.MLP(hidden=(3,), output_activation="identity"), blobs, key=jax.random.key(0), seeds=2, steps=2, execution=ls.Execution(progress=False))
    out = ls.save_run(tmp_path / "run", ens)
    a, b = results.Result(out, "foo", {}), results.Result(out, "foo.partial", {})
    assert a.checkpoints == out / results.INTERNAL / "checkpoints" / "foo"
    assert a.checkpoint.parent == a.checkpoints and a.stem.parent == out / "results"
    assert not b.stem.with_suffix(".npz").is_relative_to(out / results.INTERNAL)
    for bad in (".landscape", "../x", "a/b", ""):
        with pytest.raises(ls.ConfigError, match="result name"):
            results.Result(out, bad, {})


def test_provenance_names_parameters_data_and_settings(tmp_path, blobs):
    ens = ls.train_ensemble(ls.MLP(hidden=(3,), output_activation="identity"), blobs, key=jax.random.key(0), seeds=2, steps=2, execution=ls.Execution(progress=False))
    out = ls.save_run(tmp_path / "run", ens)
    p = results.provenance(out, {"grid": 5})
    import hashlib

    assert p["params_sha256"] == hashlib.sha256((out / "params.npz").read_bytes()).hexdigest()
    assert p["data"]["name"] == "blobs" and p["settings"] == {"grid": 5}


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=3),
                           lambda kids: st.dictionaries(st.text(min_size=1, max_size=3), kids, max_size=3),
                           max_leaves=8)


@given(a=st.dictionaries(st.text(min_size=1, max_size=3), json_values, max_size=4),
       key=st.text(min_size=1, max_size=3), value=st.integers())
def test_differences_finds_exactly_the_changed_entry(a, key, value):
    assert results.differences(a, a) == []
    b = {**a, key: value}
    assert results.differences(a, b) == ([] if a.get(key, object()) == value else [key])


def test_a_lock_is_released_when_its_holder_is_killed(tmp_path):
    """An OS lock: a killed holder (SIGKILL, no cleanup) does not block the next writer."""
    lock_path = tmp_path / "x.lock"
    holder = subprocess.Popen([sys.executable, "-c",
                               f"import filelock, time; lk = filelock.FileLock({str(lock_path)!r}); lk.acquire(); "
                               "print('held', flush=True); time.sleep(600)"],
                              stdout=subprocess.PIPE, text=True)
    try_lock = [sys.executable, "-c", "import filelock, sys\ntry:\n"
                f"    filelock.FileLock({str(lock_path)!r}).acquire(timeout=0); print('got')\n"
                "except filelock.Timeout:\n    print('busy')"]
    try:
        assert holder.stdout.readline().strip() == "held"
        assert subprocess.run(try_lock, capture_output=True, text=True).stdout.strip() == "busy"
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert subprocess.run(try_lock, capture_output=True, text=True).stdout.strip() == "got"


def test_a_trajectory_saved_under_the_old_seed_setting_is_reused(tmp_path, blobs):
    """``TrajectorySpec.seed`` became ``seeds`` (as in every other spec): a result an older
    release saved with ``settings.seed = 1`` is the same computation as ``seeds="1"`` and is
    reused, not refused; one with another seed is still refused, naming the new setting."""
    ens = ls.train_ensemble(ls.MLP(hidden=(3,), output_activation="identity"), blobs, key=jax.random.key(0),
                            seeds=2, steps=6, log_every=2, snapshot_every=2, execution=ls.Execution(progress=False))
    out = ls.save_run(tmp_path / "run", ens)
    quiet = ls.analyses.Execution(progress=False)
    spec = ls.analyses.TrajectorySpec(seeds="1", grid=3)
    first = ls.analyses.trajectory(out, spec, execution=quiet)
    assert first.meta["provenance"]["settings"]["seeds"] == "1" and "seed" not in first.meta["provenance"]["settings"]
    arrays, meta = ls.io.load_result(first.path)
    settings = dict(meta["provenance"]["settings"])
    settings["seed"] = int(settings.pop("seeds"))  # as the previous release wrote it
    ls.io.save_result(first.path, arrays, {**meta, "provenance": {**meta["provenance"], "settings": settings}})
    assert results.migrated(ls.io.load_result(first.path)[1]["provenance"]) == first.meta["provenance"]

    assert ls.analyses.TrajectorySpec(seeds=1, grid=3) == spec  # an int is the same selection
    again = ls.analyses.trajectory(out, spec, execution=quiet)
    assert again.reused and again.name == first.name
    for k in first.arrays:
        np.testing.assert_array_equal(again.arrays[k], first.arrays[k])
    with pytest.raises(ls.ConfigError, match=r"\(seeds, member differ\)|\(member, seeds differ\)"):
        ls.analyses.trajectory(out, ls.analyses.TrajectorySpec(seeds="0", grid=3), name=first.name, execution=quiet)
    with pytest.raises(ls.ConfigError, match="expected 1 seed"):
        ls.analyses.trajectory(out, ls.analyses.TrajectorySpec(seeds="0,1", grid=3), execution=quiet)
