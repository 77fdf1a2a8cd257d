"""Curvature tracked inside training against dense Hessians of the saved snapshots; spawned children
against their parents' snapshots and hand-trained copies; instability against hand-computed barriers."""

import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import landscape as ls
from landscape.core import files
from landscape.core.errors import ConfigError
from landscape.models import output_loss

from .clirun import run
from .conftest import BITWISE

QUIET = ls.Execution(progress=False)


def _dense(model, state, loss, x, y):
    """``params -> (eigenvalues ascending, trace)`` of the dense float64 Hessian of the training loss."""
    def hessian_of(p):
        f = lambda q: output_loss(loss)(model.apply_eval(q, state, x), y)  # noqa: E731
        h = np.asarray(ls.hessian.dense_hessian(f, p), np.float64)
        return np.linalg.eigvalsh(0.5 * (h + h.T)), float(np.trace(h))
    return hessian_of


@pytest.fixture(scope="module")
def tracked_run(digits):
    """Two tanh MLPs on 300 digits, tracked every 10 steps (with snapshots at the same steps)."""
    data = ls.data.Dataset("digits300", ls.data.Split(digits.train.x[:300], digits.train.y[:300]), digits.test,
                           digits.num_classes)
    ens = ls.train_ensemble(ls.MLP(hidden=(6,), activation="tanh"), data, key=jax.random.key(0), seeds=[0, 1, 2],
                            loss="cross_entropy", optimizer=ls.OptimizerSpec("sgd", 1.0), steps=25, log_every=5,
                            snapshot_every=5, track=ls.train.Tracking(every=10, top=3, trace=True, probes=200),
                            execution=QUIET)
    return data, ens


def test_tracked_eigenvalues_equal_dense_eigvalsh_of_the_snapshots(tracked_run):
    data, ens = tracked_run
    assert ens.tracked.step.tolist() == [0, 10, 20, 25]  # every 10 steps, and the last
    hess = _dense(ens.model, {}, "cross_entropy", data.train.x, data.train.y)
    snap = list(ens.trajectory.step)
    for i in range(ens.num_members):
        for t, s in enumerate(ens.tracked.step):
            ev, tr = hess(jax.tree_util.tree_map(lambda a: a[i, snap.index(s)], ens.trajectory.params))
            np.testing.assert_allclose(ens.tracked.top[i, t], ev[::-1][:3], rtol=2e-3, atol=1e-5)
            # Hutchinson's estimate with its own standard error (200 probes)
            assert abs(ens.tracked.trace[i, t] - tr) < 5 * ens.tracked.trace_stderr[i, t] + 1e-5
    assert ens.timings["tracking_s"] > 0 and 0 < ens.timings["tracking_share"] < 10


@pytest.mark.slow  # compiles more tracking programs / runs the commands
def test_tracking_on_a_subset_uses_those_examples_only(tracked_run):
    data, _ = tracked_run
    idx = [5, 17, 40, 41, 99, 250]
    ens = ls.train_ensemble(ls.MLP(hidden=(6,), activation="tanh"), data, key=jax.random.key(0), seeds=1,
                            loss="cross_entropy", steps=10, log_every=10, snapshot_every=10,
                            track=ls.train.Tracking(every=10, top=2, subset=idx), execution=QUIET)
    hess = _dense(ens.model, {}, "cross_entropy", data.train.x[idx], data.train.y[idx])
    ev, _ = hess(jax.tree_util.tree_map(lambda a: a[0, -1], ens.trajectory.params))
    np.testing.assert_allclose(ens.tracked.top[0, -1], ev[::-1][:2], rtol=2e-3, atol=1e-5)
    assert ens.config["track"]["subset"] == idx


def test_tracking_changes_no_training_number_and_a_member_alone_is_tracked_as_in_the_sweep(tracked_run):
    data, ens = tracked_run
    kw = dict(loss="cross_entropy", optimizer=ls.OptimizerSpec("sgd", 1.0), steps=25, log_every=5,
              execution=QUIET)
    plain = ls.train_ensemble(ls.MLP(hidden=(6,), activation="tanh"), data, key=jax.random.key(0), seeds=[0, 1, 2],
                              **kw)
    alone = ls.train_ensemble(ls.MLP(hidden=(6,), activation="tanh"), data, key=jax.random.key(0), seeds=[2],
                              track=ls.train.Tracking(every=10, top=3, trace=True, probes=200), **kw)
    check = np.testing.assert_array_equal if BITWISE else (lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4))
    for a, b in zip(jax.tree_util.tree_leaves(plain.params), jax.tree_util.tree_leaves(ens.params)):
        check(a, b)
    check(plain.history.train_loss, ens.history.train_loss)
    check(alone.tracked.top[0], ens.tracked.top[2])
    check(alone.tracked.trace[0], ens.tracked.trace[2])


@pytest.mark.slow  # compiles more tracking programs / runs the commands
def test_tracking_a_learning_rate_sweep_with_minibatches_saves_and_loads(tmp_path, blobs):
    ens = ls.train_ensemble(ls.MLP(hidden=(4,)), blobs, key=jax.random.key(1), seeds=2, loss="mse",
                            learning_rates=[0.1, 2.0], batch_size=16, steps=12, log_every=4,
                            track=ls.train.Tracking(every=8, top=1), execution=QUIET)
    assert ens.tracked.step.tolist() == [0, 8, 12] and ens.tracked.top.shape == (4, 3, 1)
    assert ens.tracked.trace is None and np.all(np.isfinite(ens.tracked.top))
    back = ls.load_run(ls.save_run(tmp_path / "run", ens))
    np.testing.assert_array_equal(back.tracked.top, ens.tracked.top)
    np.testing.assert_array_equal(back.tracked.step, ens.tracked.step)
    assert back.config["track"] == {"every": 8, "top": 1, "trace": False, "subset": None, "num_iters": None,
                                    "probes": 20}


def test_bad_tracking_settings_are_one_clear_error(blobs):
    def train(track, **kw):
        return ls.train_ensemble(ls.MLP(hidden=(3,)), blobs, key=jax.random.key(0), seeds=1, steps=4, log_every=2,
                                 track=track, execution=QUIET, **kw)
    with pytest.raises(ConfigError, match="multiple of log_every"):
        train(ls.train.Tracking(every=3))
    with pytest.raises(ConfigError, match="subset must lie in"):
        train(ls.train.Tracking(every=2, subset=10_000))
    with pytest.raises(ConfigError, match="eigenvalues of a model with"):
        train(ls.train.Tracking(every=2, top=1000))
    with pytest.raises(ConfigError, match="positive integer"):
        ls.train.Tracking(every=0)
    with pytest.raises(ConfigError, match="Tracking"):
        train({"every": 2})


# ---------------------------------------------------------------------- spawning
@pytest.fixture(scope="module")
def parents(digits):
    data = ls.data.Dataset("digits400", ls.data.Split(digits.train.x[:400], digits.train.y[:400]), digits.test,
                           digits.num_classes)
    ens = ls.train_ensemble(ls.MLP(hidden=(8,), activation="relu"), data, key=jax.random.key(0), seeds=[3, 5],
                            loss="cross_entropy", optimizer=ls.OptimizerSpec("sgd", 0.3), steps=20, log_every=5,
                            snapshot_every=5, batch_size=32, execution=QUIET)
    return data, ens


def test_children_start_from_their_parents_snapshot_and_differ_only_in_data_order(parents):
    data, ens = parents
    kids = ls.train.spawn(ens, data, at=[0, 10], children=3, steps=8, key=jax.random.key(7), log_every=4,
                          snapshot_every=4, execution=QUIET)
    lay = kids.config["spawn"]
    assert kids.num_members == 2 * 2 * 3
    assert lay["member_parent"] == [0] * 6 + [1] * 6
    assert lay["member_step"] == [0, 0, 0, 10, 10, 10] * 2 and lay["member_child"] == [0, 1, 2] * 4
    assert lay["parent_seeds"] == [3, 5] and lay["learning_rate"] == 0.3
    snap = list(ens.trajectory.step)
    for i in range(kids.num_members):  # the child's step 0 is its parent's snapshot, bit for bit
        want = jax.tree_util.tree_map(lambda a: a[lay["member_parent"][i], snap.index(lay["member_step"][i])],
                                      ens.trajectory.params)
        got = jax.tree_util.tree_map(lambda a: a[i, 0], kids.trajectory.params)
        for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
            np.testing.assert_array_equal(a, b)
    # children of one spawn end apart (their data orders differ) ...
    assert not np.array_equal(kids.params["Dense_0"]["kernel"][0], kids.params["Dense_0"]["kernel"][1])
    # ... and each is exactly the parent's snapshot trained on with the order of its own label
    i = 4  # parent 0, step 10, child 1
    start = jax.tree_util.tree_map(lambda a: a[0, snap.index(10)][None], ens.trajectory.params)
    by_hand = ls.train_ensemble(ens.model, data, key=jax.random.key(7), seeds=[i], starts=start,
                                optimizer=ls.OptimizerSpec("sgd", 0.3), loss="cross_entropy", steps=8,
                                batch_size=32, log_every=4, execution=QUIET)
    check = np.testing.assert_array_equal if BITWISE else (lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5))
    for a, b in zip(jax.tree_util.tree_leaves(by_hand.params), jax.tree_util.tree_leaves(kids.params)):
        check(a[0], b[i])


def test_spawning_refuses_what_cannot_work(parents, digits):
    data, ens = parents
    with pytest.raises(ConfigError, match=r"no snapshot at spawn step\(s\) 7: .*snapshot_every"):
        ls.train.spawn(ens, data, at=[0, 7], children=2, steps=4, key=jax.random.key(0))
    with pytest.raises(ConfigError, match="at least 2 children"):
        ls.train.spawn(ens, data, at=[0], children=1, steps=4, key=jax.random.key(0))
    full = ls.train_ensemble(ls.MLP(hidden=(4,)), data, key=jax.random.key(0), seeds=1, steps=4, log_every=2,
                             snapshot_every=2, execution=QUIET)
    with pytest.raises(ConfigError, match="identical; give the children a batch_size"):
        ls.train.spawn(full, data, at=[0], children=2, steps=4, key=jax.random.key(0))


def test_instability_equals_the_barrier_computed_by_hand_between_two_loaded_children(tmp_path, parents):
    data, ens = parents
    run_dir = ls.save_run(tmp_path / "run", ens)
    assert ls.load_run(run_dir).trajectory is not None
    kids = ls.train.spawn(ens, data, at=[0, 10, 20], children=3, steps=10, key=jax.random.key(0), execution=QUIET)
    kids_dir = ls.save_run(tmp_path / "kids", kids)
    loaded = ls.load_run(kids_dir)
    fn = ls.models.metrics_fn(loaded.model, "cross_entropy")
    got = ls.minima.instability(fn, loaded.params, num_children=3, num=9, data=(data.train.x, data.train.y))
    assert got["pairs"].tolist() == [[0, 1], [0, 2], [1, 2]] and got["loss_barrier"].shape == (6, 3)
    lo = output_loss("cross_entropy")
    for g, q in ((0, 0), (4, 2), (5, 1)):  # spawn g (parent-major), pair q
        a, b = (loaded.member(3 * g + k) for k in got["pairs"][q])
        loss, err = [], []
        for t in np.linspace(0, 1, 9):
            p = jax.tree_util.tree_map(lambda u, v: (1 - t) * u + t * v, a, b)
            out = np.asarray(loaded.model.apply(p, data.train.x), np.float64)
            loss.append(float(lo(jnp.asarray(out), data.train.y)))
            err.append(float(np.mean(out.argmax(-1) != data.train.y)))
        loss, err = np.array(loss), np.array(err)
        np.testing.assert_allclose(got["loss_barrier"][g, q], loss.max() - 0.5 * (loss[0] + loss[-1]), rtol=1e-4,
                                   atol=1e-6)
        np.testing.assert_allclose(got["error_barrier"][g, q], err.max() - 0.5 * (err[0] + err[-1]), atol=1e-6)
        chord = (1 - np.linspace(0, 1, 9)) * err[0] + np.linspace(0, 1, 9) * err[-1]
        np.testing.assert_allclose(got["error_barrier_chord"][g, q], np.max(err - chord), atol=1e-6)
    np.testing.assert_allclose(got["error_instability"], got["error_barrier"].mean(axis=1))


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(2, 4), st.integers(1, 3), st.integers(0, 100))
def test_identical_children_have_no_barrier_and_the_layout_is_child_fastest(c, g, seed):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(g, 3))
    kids = {"w": np.repeat(base, c, axis=0).astype(np.float32)}  # every spawn's children coincide

    def fn(p):
        return {"loss": jnp.sum(jnp.sin(p["w"]) ** 2), "accuracy": jnp.cos(p["w"][0]) ** 2}

    out = ls.minima.instability(fn, kids, num_children=c, num=7)
    assert out["loss_barrier"].shape == (g, c * (c - 1) // 2)
    np.testing.assert_allclose(out["loss_barrier"], 0.0, atol=1e-6)
    np.testing.assert_allclose(out["error_instability"], 0.0, atol=1e-6)


# ---------------------------------------------------------------------- the commands
TRAIN = ["train", "--dataset", "blobs", "--hidden", "5", "--activation", "relu", "--loss", "cross_entropy", "--lr",
         "0.5", "--steps", "20", "--batch-size", "16", "--seeds", "2", "--log-every", "5", "--snapshot-every", "5",
         "--quiet"]


@pytest.mark.slow  # compiles more tracking programs / runs the commands
def test_train_tracks_curvature_and_spawn_stores_reuses_and_refuses(tmp_path):
    r = run(*TRAIN, "--track-curvature", "10", "--track-top", "2", "--track-trace", "--out", "run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "run" / "figures" / "curvature_tracking.png").exists()
    ens = ls.load_run(tmp_path / "run")
    assert ens.tracked.top.shape == (2, 3, 2) and ens.tracked.trace.shape == (2, 3)
    r = run("spawn", "run", "--at", "0,10", "--children", "2", "--steps", "10", "--grid", "5", "--out", "kids",
            "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "spawn step" in r.stdout and (tmp_path / "kids" / "figures" / "instability.png").exists()
    kids = ls.load_run(tmp_path / "kids")
    assert kids.num_members == 8 and kids.config["spawn"]["member_step"] == [0, 0, 10, 10] * 2
    arrays, meta = ls.io.load_result(tmp_path / "kids" / "results" / "instability.npz")
    assert arrays["loss_barrier"].shape == (2, 2, 1) and meta["provenance"]["settings"]["grid"] == 5
    meta_kids = ls.io.read_meta(tmp_path / "kids")
    assert meta_kids["spawned_from"]["settings"]["at"] == [0, 10]
    again = run("spawn", "run", "--at", "0,10", "--children", "2", "--steps", "10", "--grid", "5", "--out", "kids",
                "--quiet", "--no-plot", cwd=tmp_path)
    assert again.returncode == 0 and "reused, nothing computed" in again.stdout
    other = run("spawn", "run", "--at", "0,10", "--children", "3", "--steps", "10", "--out", "kids", "--quiet",
                cwd=tmp_path)
    assert other.returncode != 0 and len(other.stderr.strip().splitlines()) == 1
    assert "holds children spawned from other inputs" in other.stderr and "--overwrite" in other.stderr
    missing = run("spawn", "run", "--at", "0,7", "--out", "k2", "--quiet", cwd=tmp_path)
    assert missing.returncode != 0 and "--snapshot-every" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1 and not (tmp_path / "k2").exists()
    r = run("plot", "kids/results/instability.npz", cwd=tmp_path)
    assert r.returncode == 0, r.stderr


def _spawn_job(tmp_path, out):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    args = [sys.executable, "-m", "landscape.cli", "spawn", "run", "--at", "0,5,10,15,20", "--children", "4",
            "--steps", "10", "--grid", "25", "--chunk-size", "5", "--save-every", "0", "--no-plot", "--quiet",
            "--out", out]
    log = open(tmp_path / f"{out}.log", "wb")
    return subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=log,
                            stdin=subprocess.DEVNULL), log


@pytest.mark.slow  # real processes killed with SIGKILL
def test_spawn_killed_with_sigkill_resumes_and_equals_an_uninterrupted_run(tmp_path):
    r = run(*TRAIN, "--out", "run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    ref, log = _spawn_job(tmp_path, "ref")
    assert ref.wait(timeout=600) == 0, (tmp_path / "ref.log").read_text()
    log.close()
    ckpt = tmp_path / "kids" / ".landscape" / "checkpoints" / "instability" / "evaluate.npz"
    job, log = _spawn_job(tmp_path, "kids")
    try:
        deadline = time.monotonic() + 300
        while not ckpt.exists():  # the children are saved, the barriers under way
            assert job.poll() is None, "finished before it could be killed: " + (tmp_path / "kids.log").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        job.send_signal(signal.SIGKILL)
        job.wait(timeout=30)
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
        log.close()
    assert not (tmp_path / "kids" / "results" / "instability.npz").exists()
    done = files.load_npz(ckpt)["done"]
    assert 0 < done.sum() < done.size, "the kill should land mid-computation"
    again, log = _spawn_job(tmp_path, "kids")
    assert again.wait(timeout=600) == 0, (tmp_path / "kids.log").read_text()
    log.close()
    got, _ = ls.io.load_result(tmp_path / "kids" / "results" / "instability.npz")
    want, _ = ls.io.load_result(tmp_path / "ref" / "results" / "instability.npz")
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])
    assert not ckpt.exists()


@pytest.mark.slow  # three member groups of a tracked run (26 s)
def test_tracking_three_groups_of_members_finishes_and_the_last_group_is_tracked_as_alone(tmp_path):
    """Three groups of 8 members, split over concurrent calls on a CPU: LAPACK's batched
    eigensolver (the Ritz values, before bisection) once deadlocked XLA:CPU's pool when two
    programs used it at once; run in a process of its own so that a hang fails the test
    instead of the suite."""
    script = tmp_path / "three.py"
    script.write_text(
        "import jax, numpy as np, landscape as ls\n"
        "data = ls.data.blobs(num_train=64, num_test=32)\n"
        "kw = dict(key=jax.random.key(0), steps=20, log_every=10, loss='cross_entropy',\n"
        "          track=ls.train.Tracking(every=10), execution=ls.Execution(progress=False))\n"
        "ens = ls.train_ensemble(ls.MLP(hidden=(4,)), data, seeds=24, **kw)\n"
        "alone = ls.train_ensemble(ls.MLP(hidden=(4,)), data, seeds=[21], **kw)\n"
        "np.save(%r, np.stack([ens.tracked.top[21], alone.tracked.top[0]]))\n"
        "print('calls', ens.timings['concurrent_calls'])\n" % str(tmp_path / "top.npy"))
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "JAX_PLATFORMS": "cpu"}, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr[-2000:]
    if jax.default_backend() == "cpu" and len(os.sched_getaffinity(0)) > 1:
        assert "calls 3" in r.stdout  # 3 groups over up to 2 × cores calls
    top = np.load(tmp_path / "top.npy")
    assert top.shape == (2, 3, 1) and np.all(np.isfinite(top))
    check = np.testing.assert_array_equal if BITWISE else (lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4))
    check(top[0], top[1])
