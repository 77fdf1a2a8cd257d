"""Hardening: interrupted writers, untrusted files, reproducibility, numerical faults."""

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import jax
import numpy as np
import pytest
from landscape.errors import CorruptRunError

import landscape as ls
from landscape.core import chunks, files

from .clirun import TINY, run


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    d = ls.data.blobs(num_train=40, num_test=10, num_classes=3, dim=3, seed=0)
    ens = ls.train_ensemble(ls.MLP(hidden=(4,), output_activation="identity"), d, key=jax.random.key(0), seeds=2, steps=4, log_every=2,
                            execution=ls.Execution(progress=False))
    path = tmp_path_factory.mktemp("saved") / "run"
    ls.save_run(path, ens)
    return path


def _npy_bytes(header: dict, payload: bytes = b"") -> bytes:
    import io as _io

    from numpy.lib import format as npformat

    buf = _io.BytesIO()
    npformat.write_array_header_1_0(buf, header)
    return buf.getvalue() + payload


@pytest.mark.parametrize("member, header, match", [
    ("seeds.npy", {"descr": "<i8", "fortran_order": False, "shape": (10**12,)}, "declares"),
    ("seeds.npy", {"descr": "|O", "fortran_order": False, "shape": (1,)}, "Python objects"),
    ("../evil.npy", {"descr": "<i8", "fortran_order": False, "shape": (0,)}, "suspicious"),
    ("seeds.txt", {"descr": "<i8", "fortran_order": False, "shape": (0,)}, "suspicious"),
])
def test_malicious_array_files_are_rejected_before_reading(saved, tmp_path, member, header, match):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(saved, run_dir)
    with zipfile.ZipFile(run_dir / "members.npz", "w") as zf:
        zf.writestr(member, _npy_bytes(header, b"\x00" * 16))
    with pytest.raises(CorruptRunError, match=match):
        ls.load_run(run_dir)


@pytest.mark.parametrize("meta_change, match", [
    ({"num_members": -3}, "invalid fields"),
    ({"num_members": "2"}, "invalid fields"),
    ({"model": {"type": "MLP", "hidden": ["x"], "in_features": 3, "out_features": 3}}, "invalid fields"),
    ({"model": {"type": "Pickle"}}, "unknown model type"),
    ({"model": {"type": "MLP", "hidden": [4], "__class__": "os.system"}}, "invalid fields"),
    ({"train": "rm -rf /"}, "invalid fields"),
    ({"format_version": 2}, "format 2"),
])
def test_malicious_metadata_is_rejected(saved, tmp_path, meta_change, match):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(saved, run_dir)
    meta = json.loads((run_dir / "meta.json").read_text())
    (run_dir / "meta.json").write_text(json.dumps({**meta, **meta_change}))
    with pytest.raises(CorruptRunError, match=match):
        ls.load_run(run_dir)


def test_deeply_nested_json_is_rejected(saved, tmp_path):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(saved, run_dir)
    (run_dir / "meta.json").write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(CorruptRunError, match="not valid JSON"):
        ls.load_run(run_dir)


def test_same_command_twice_is_bitwise_identical(tmp_path):
    outs = []
    for name in ("a", "b"):
        r = run("train", *TINY, "--batch-size", "16", "--snapshot-every", "2", "--out", str(tmp_path / name),
                "--no-plot")
        assert r.returncode == 0, r.stderr
        outs.append(tmp_path / name)
    for f in ("params.npz", "members.npz", "history.npz", "trajectory.npz"):
        a, b = files.load_npz(outs[0] / f), files.load_npz(outs[1] / f)
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    meta = ls.io.read_meta(outs[0])
    env = meta["environment"]
    assert env["versions"]["jax"] and env["backend"] == jax.default_backend() and env["devices"]
    assert meta["train"]["seeds"] == [0, 1, 2] and meta["train"]["key"] and meta["command"]


@pytest.mark.slow  # a real subprocess killed / several processes: run by `pytest -m slow`
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_interrupted_train_leaves_old_run_or_nothing(tmp_path, sig):
    out = tmp_path / "run"
    assert run("train", *TINY, "--out", str(out), "--no-plot").returncode == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    # a child inherits an ignored SIGINT (background jobs, some test runners): the child restores
    # Python's KeyboardInterrupt handler itself, as in a terminal
    entry = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
             "from landscape.cli import main; sys.exit(main(sys.argv[1:]))")
    args = [sys.executable, "-c", entry, "train", "--dataset", "blobs", "--hidden", "64,64",
            "--seeds", "64", "--steps", "100000", "--log-every", "100", "--out", str(out), "--overwrite"]
    log = tmp_path / "train.log"
    with open(log, "wb") as f:
        proc = subprocess.Popen(args, stdout=f, stderr=f, stdin=subprocess.DEVNULL,
                                env={**os.environ, "JAX_PLATFORMS": "cpu"})
    try:
        deadline = time.monotonic() + 120
        while b"step/s" not in log.read_bytes():  # the progress bar: training has started
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.1)
        time.sleep(1.0)
        proc.send_signal(sig)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == (-signal.SIGKILL if sig == signal.SIGKILL else 130), log.read_text()[-2000:]
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert ls.load_run(out).num_members == 3
    # a later write cleans up what the killed writer left behind
    assert run("train", *TINY, "--out", str(tmp_path / "other"), "--no-plot").returncode == 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_stale_old_directory_is_restored_not_deleted(tmp_path):
    old, tmp = tmp_path / f".run.w{'a' * 32}.old", tmp_path / f".x.w{'b' * 32}.tmp"
    old.mkdir()
    (old / "meta.json").write_text("{}")
    tmp.write_text("partial")
    files.remove_stale(tmp_path)
    assert (tmp_path / "run" / "meta.json").exists() and not tmp.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # their lock files went too


_LIVE_WRITER = """
import sys, time
from pathlib import Path
from landscape.core import files
with files._artifact(Path(sys.argv[1]) / "run", "staging") as stage:
    stage.mkdir()
    (stage / "params.npz").write_bytes(b"half")
    print(stage, flush=True)
    time.sleep(600)
"""


def test_stale_cleanup_never_removes_a_live_writers_files_whatever_its_pid(tmp_path):
    """A writer is known by the lock it holds, not by its process id: a live writer's staging
    directory survives cleanup (also when its PID means nothing here, as in another container
    or host), and is removed once the writer is killed and its lock released."""
    proc = subprocess.Popen([sys.executable, "-c", _LIVE_WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        stage = Path(proc.stdout.readline().strip())
        assert stage.is_dir()
        assert files.remove_stale(tmp_path) == [] and (stage / "params.npz").exists()
        proc.kill()
        proc.wait(timeout=60)
        assert files.remove_stale(tmp_path) == [stage]
        assert list(tmp_path.iterdir()) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def test_overflowing_surface_is_stored_as_inf_and_drawn(tmp_path):
    d = ls.data.blobs(num_train=40, num_test=10, num_classes=3, dim=3, seed=0)
    model = ls.MLP(hidden=(4,), activation="relu", output_activation="identity").for_data(d)
    theta = model.init(jax.random.key(0))
    fn = ls.models.metrics_fn(model, "cross_entropy")
    dirs = ls.directions.random_directions(jax.random.key(1), theta, 2, norm="none")
    surf = ls.surface.plane(fn, theta, dirs, span=1e38, num=5, data={"train": (d.train.x, d.train.y)})
    loss = surf.values["train_loss"]
    assert not np.all(np.isfinite(loss))  # overflowed far out
    ls.io.save_result(tmp_path / "big", surf.to_arrays(), {"kind": "plane"})
    arrays, meta = ls.io.load_result(tmp_path / "big")
    fig = ls.plot.from_result(arrays, meta)
    assert ls.plot.save_figure(fig, tmp_path / "big.png").stat().st_size > 1000


def test_half_precision_inputs_are_rejected():
    x = np.zeros((4, 2), np.float16)
    with pytest.raises(ls.DataError, match="float16"):
        ls.data.from_arrays(x, np.zeros(4, int), x, np.zeros(4, int), num_classes=2)


@pytest.mark.slow  # the chunk driver's resume is also killed for real in test_resume.py (slow)
def test_interrupted_hessian_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    d = ls.data.blobs(num_train=40, num_test=10, num_classes=3, dim=3, seed=0)
    ens = ls.train_ensemble(ls.MLP(hidden=(3,), activation="tanh", output_activation="identity"), d, key=jax.random.key(0), seeds=4, steps=5,
                            log_every=5, loss="cross_entropy", execution=ls.Execution(progress=False))
    f = ls.models.loss_fn(ens.model, d.train, "cross_entropy")
    kw = dict(key=jax.random.key(1), top=2, trace_probes=3)
    want = ls.hessian.ensemble_curvature(f, ens.params, execution=ls.Execution(chunk_size=1), **kw)
    ckpt = tmp_path / "h.partial.npz"
    real_save = chunks.save_checkpoint

    def save_then_interrupt(*a, **k):
        real_save(*a, **k)
        raise KeyboardInterrupt

    monkeypatch.setattr(chunks, "save_checkpoint", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        ls.hessian.ensemble_curvature(f, ens.params, execution=ls.Execution(chunk_size=1, checkpoint=ckpt), **kw)
    monkeypatch.setattr(chunks, "save_checkpoint", real_save)
    stored = files.load_npz(ckpt)
    assert stored["done"].tolist() == [True, False, False, False]
    stored["result/top"][0, 0] = -7.0  # (top, members): marks the saved chunk
    files.atomic_save_npz(ckpt, stored)
    got = ls.hessian.ensemble_curvature(f, ens.params, execution=ls.Execution(chunk_size=1, checkpoint=ckpt), **kw)
    assert got["top"][0, 0] == -7.0  # reused, not recomputed
    np.testing.assert_array_equal(got["top"][1:], want["top"][1:])
    np.testing.assert_array_equal(got["trace"], want["trace"])
    assert not ckpt.exists()


API_BAD = [
    (lambda t, f, d: ls.directions.random_directions(jax.random.key(0), t, 0), ls.ConfigError),
    (lambda t, f, d: ls.directions.random_direction(jax.random.key(0), t, norm="spectral"), ls.ConfigError),
    (lambda t, f, d: ls.surface.plane(f, t, [t, t], span=(1.0, -1.0)), ls.ConfigError),
    (lambda t, f, d: ls.surface.plane(f, t, [t, t], span=float("nan")), ls.ConfigError),
    (lambda t, f, d: ls.surface.interpolation(f, t, t, extend=-1.0), ls.ConfigError),
    (lambda t, f, d: ls.surface.three_point(f, t, t, t), ls.ConfigError),
    (lambda t, f, d: ls.hessian.top_eigenvalues(f, t, 0, key=jax.random.key(0)), ls.ConfigError),
    (lambda t, f, d: ls.hessian.trace(f, t, key=jax.random.key(0), num_probes=0), ls.ConfigError),
    (lambda t, f, d: ls.hessian.lanczos(lambda v: v, np.ones(3, np.float32), 5, key=jax.random.key(0)),
     ls.ConfigError),
    (lambda t, f, d: ls.minima.compare_members(f, ls.tree.stack([t, t]), data=None, tol=float("nan")),
     ls.ConfigError),
    (lambda t, f, d: ls.permutation.align(t, {"Dense_0": t["Dense_0"]}, spec=ls.MLP(hidden=(4, 3), in_features=3, out_features=3, output_activation="identity").permutation_spec()), ls.ConfigError),
    (lambda t, f, d: ls.minima.bezier_curve(f, t, t, key=jax.random.key(0), steps=0), ls.ConfigError),
    (lambda t, f, d: ls.permutation.permute(t, ls.MLP(hidden=(4, 3), in_features=3, out_features=3, output_activation="identity").permutation_spec(), {}), ls.ConfigError),
    (lambda t, f, d: ls.permutation.permute(t, ls.MLP(hidden=(4, 3), in_features=3, out_features=3, output_activation="identity").permutation_spec(), {"Dense_0": [0, 0, 1, 2], "Dense_1": [0, 1, 2]}),
     ls.ConfigError),
    (lambda t, f, d: ls.permutation.align(t, t, spec=ls.permutation.PermutationSpec({"Dense_0/kernel": (None, "a")})),
     ls.ConfigError),
    (lambda t, f, d: ls.directions.trajectory_pca(ls.tree.stack([t, t])), ls.ConfigError),
    (lambda t, f, d: ls.data.load(""), ls.DataError),
    (lambda t, f, d: ls.data.load("digits", test_fraction=1.5), ls.DataError),
    (lambda t, f, d: ls.data.load("digits", bogus=1), ls.DataError),
    (lambda t, f, d: ls.data.from_arrays(d.train.x, d.train.y, d.test.x, d.test.y, num_classes=1), ls.DataError),
    (lambda t, f, d: ls.train_ensemble(ls.MLP(output_activation="identity"), "digits", key=jax.random.key(0)), ls.ConfigError),
    (lambda t, f, d: ls.train_ensemble(ls.MLP(in_features=7, output_activation="identity"), d, key=jax.random.key(0)), ls.ConfigError),
    (lambda t, f, d: ls.distributed.make_mesh(99), ls.ConfigError),
    (lambda t, f, d: ls.plot.save_figure(ls.plot.curve(np.arange(3.0), {"loss": np.ones(3)}), "x.gif"),
     ls.ConfigError),
]


@pytest.mark.parametrize("call, error", API_BAD, ids=[f"case{i}" for i in range(len(API_BAD))])
def test_public_api_rejects_bad_input_with_specific_errors(call, error):
    d = ls.data.blobs(num_train=20, num_test=5, num_classes=3, dim=3, seed=0)
    model = ls.MLP(hidden=(4, 3), output_activation="identity").for_data(d)
    theta = model.init(jax.random.key(0))
    f = ls.models.loss_fn(model, d.train, "cross_entropy")
    with pytest.raises(error):
        call(theta, f, d)


@pytest.mark.slow  # a real subprocess killed / several processes: run by `pytest -m slow`
def test_killed_compare_resumes_its_barrier_matrix(tmp_path):
    out = tmp_path / "run"
    assert run("train", *TINY, "--seeds", "8", "--out", str(out), "--no-plot").returncode == 0
    args = [sys.executable, "-m", "landscape.cli", "compare", str(out), "--grid", "1000", "--chunk-size", "8",
            "--save-every", "0", "--quiet", "--no-plot"]
    with open(tmp_path / "killed.log", "wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                env={**os.environ, "JAX_PLATFORMS": "cpu"})
    ckpt = out / ".landscape" / "checkpoints" / "compare" / "barrier.npz"
    deadline = time.monotonic() + 120
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    proc.kill()
    proc.wait()
    assert ckpt.exists(), "no progress was saved before the kill: " + (tmp_path / "killed.log").read_text()[-2000:]
    assert not (out / "results" / "compare.json").exists()
    r = run("compare", str(out), "--grid", "1000", "--chunk-size", "8", "--quiet", "--no-plot")
    assert r.returncode == 0, r.stderr
    assert not ckpt.exists() and (out / "results" / "compare.json").exists()
    fresh = tmp_path / "fresh"
    import shutil

    shutil.copytree(out, fresh)
    shutil.rmtree(fresh / "results")
    r = run("compare", str(fresh), "--grid", "1000", "--chunk-size", "8", "--quiet", "--no-plot")
    a, _ = ls.io.load_result(out / "results" / "compare")
    b, _ = ls.io.load_result(fresh / "results" / "compare")
    np.testing.assert_array_equal(a["barrier"], b["barrier"])
