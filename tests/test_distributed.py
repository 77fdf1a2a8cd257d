"""Sharding over 8 forced host devices and over two processes equals the single-device results."""

import os
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import landscape as ls
from landscape.core import files

WORK = textwrap.dedent(
    """
    import sys
    import numpy as np
    import landscape as ls
    mode, out = sys.argv[1], sys.argv[2]
    if mode == "multi":
        ls.distributed.initialize(sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), timeout_s=60)
    import jax
    mesh = None if mode == "single" else ls.distributed.make_mesh()
    data = ls.data.blobs(num_train=64, num_test=20, num_classes=3, dim=4, seed=0)
    ens = ls.train_ensemble(ls.MLP(hidden=(6,), activation="tanh"), data, key=jax.random.key(0), seeds=13,
                            loss="cross_entropy", steps=24, batch_size=16, log_every=8, snapshot_every=8,
                            optimizer=ls.OptimizerSpec("sgd", 0.3), execution=ls.Execution(mesh=mesh, progress=False))
    fn = ls.models.metrics_fn(ens.model, "cross_entropy")
    theta = ens.member(3)
    dirs = ls.directions.random_directions(jax.random.key(1), theta, 2)
    batches = {"train": (data.train.x, data.train.y)}
    surf = ls.surface.plane(fn, theta, dirs, num=11, data=batches, execution=ls.Execution(chunk_size=40, mesh=mesh))
    many = ls.surface.random_planes(fn, ens.params, key=jax.random.key(2), num=5, data=batches,
                                     execution=ls.Execution(mesh=mesh))
    arrays = {"params/" + k: v for k, v in ls.tree.flatten_with_paths(ens.params).items()}
    arrays.update({"train_loss": ens.history.train_loss, "plane": surf.values["train_loss"],
                   "many": many.values["train_loss"], "devices": np.array(ens.timings["devices"])})
    if mode == "hessian" or mode == "single":
        f = ls.models.loss_fn(ens.model, data.train, "cross_entropy")
        h = ls.hessian.ensemble_curvature(f, ens.params, key=jax.random.key(3), top=2, trace_probes=4,
                                          execution=ls.Execution(chunk_size=5, mesh=mesh))
        arrays["hessian_top"] = h["top"]
        a = np.linspace(-1, 1, 3)
        coords = np.stack(np.meshgrid(a, a, indexing="ij"), -1).reshape(-1, 2)
        cmap = ls.hessian.curvature_map(f, theta, dirs, coords, key=jax.random.key(4),
                                        execution=ls.Execution(chunk_size=5, mesh=mesh))
        arrays["map_max"], arrays["map_min"] = cmap["lambda_max"], cmap["lambda_min"]
    if ls.distributed.is_writer():
        np.savez(out, **arrays)
    """
)


def _spawn(tmp_path, args, env_extra=None, name="job"):
    script = tmp_path / "work.py"
    script.write_text(WORK)
    log = open(tmp_path / f"{name}.log", "wb")
    env = {**os.environ, "JAX_PLATFORMS": "cpu", **(env_extra or {})}
    proc = subprocess.Popen([sys.executable, str(script), *args], env=env, stdout=log, stderr=log,
                            stdin=subprocess.DEVNULL)
    proc.log_file = log
    return proc


def _finish(procs, timeout=300):
    deadline = time.monotonic() + timeout
    try:
        for p in procs:
            p.wait(timeout=max(1, deadline - time.monotonic()))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.log_file.close()
    return [p.returncode for p in procs]


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("single")
    rc = _finish([_spawn(tmp, ["single", str(tmp / "single.npz")])])
    assert rc == [0], (tmp / "job.log").read_text()[-3000:]
    return files.load_npz(tmp / "single.npz")


def _compare(got, want, keys=None):
    for k in keys or want:
        if k == "devices":
            continue
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6, err_msg=k)


@pytest.mark.slow  # a real subprocess killed / several processes: run by `pytest -m slow`
def test_eight_forced_host_devices_equal_one_device(single, tmp_path):
    flags = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    rc = _finish([_spawn(tmp_path, ["hessian", str(tmp_path / "eight.npz")], flags)])
    assert rc == [0], (tmp_path / "job.log").read_text()[-3000:]
    got = files.load_npz(tmp_path / "eight.npz")
    assert int(got["devices"]) == 8  # 13 members padded to 16, sharded over 8 devices
    _compare(got, single)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # a real subprocess killed / several processes: run by `pytest -m slow`
def test_two_processes_equal_one_process(single, tmp_path):
    addr = f"127.0.0.1:{_free_port()}"
    procs = [_spawn(tmp_path, ["multi", str(tmp_path / "multi.npz"), addr, "2", str(i)], name=f"p{i}")
             for i in range(2)]
    rc = _finish(procs, timeout=300)
    assert rc == [0, 0], (tmp_path / "p0.log").read_text()[-2000:] + (tmp_path / "p1.log").read_text()[-2000:]
    got = files.load_npz(tmp_path / "multi.npz")  # written by process 0 only
    assert int(got["devices"]) == 2
    _compare(got, single, [k for k in single if k not in ("hessian_top", "map_max", "map_min")])


@pytest.mark.slow  # a real subprocess killed / several processes: run by `pytest -m slow`
def test_missing_peer_is_a_clear_error_not_a_hang(tmp_path):
    script = tmp_path / "lonely.py"
    script.write_text(f"import landscape as ls\nls.distributed.initialize('127.0.0.1:{_free_port()}', 2, 0, timeout_s=5)\n")
    # a hang would end in subprocess's TimeoutExpired: the join gives up by itself (timeout_s=5)
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "JAX_PLATFORMS": "cpu"}, stdin=subprocess.DEVNULL)
    assert r.returncode == ls.distributed.EXIT_NO_PEERS, r.stderr[-2000:]
    last = r.stderr.strip().splitlines()[-1]
    assert "process 0 of 2 could not join" in last


@pytest.mark.parametrize("kwargs, match", [
    ({"coordinator": "127.0.0.1:1"}, "needs --coordinator"),
    ({"coordinator": "localhost", "num_processes": 2, "process_id": 0}, "HOST:PORT"),
    ({"coordinator": "127.0.0.1:1", "num_processes": 2, "process_id": 2}, r"\[0, 2\)"),
])
def test_bad_distributed_arguments(kwargs, match):
    with pytest.raises(ls.distributed.DistributedError, match=match):
        ls.distributed.initialize(**kwargs)


def test_placement_pads_and_round_trips():
    pl = ls.distributed.placement(None)
    assert pl.size == 1 and pl.padded(13) == 13
    pl8 = ls.distributed.Placement.__new__(ls.distributed.Placement)
    pl8.mesh, pl8.size, pl8.multi_process = None, 8, False
    assert pl8.padded(13) == 16
    padded = pl8.pad(np.arange(13), 13)
    assert padded.tolist() == list(range(13)) + [12, 12, 12]


@pytest.mark.slow  # several processes killed and restarted: run by `pytest -m slow`
def test_a_killed_multi_process_surface_resumes_from_process_0s_checkpoint(tmp_path):
    """Process 0 alone writes the checkpoint; after both processes are killed, a rerun of both
    resumes from it (process 0 broadcasts it), computes only the rest, and equals one process."""
    from .clirun import run

    run_dir = tmp_path / "run"
    r = run("train", "--dataset", "blobs", "--hidden", "6", "--steps", "50", "--seeds", "2", "--quiet", "--no-plot",
            "--out", str(run_dir))
    assert r.returncode == 0, r.stderr
    args = ["surface", str(run_dir), "--seed", "0", "--grid", "101", "--chunk-size", "4", "--save-every", "0",
            "--quiet", "--no-plot"]
    r = run(*args, "--name", "single")
    assert r.returncode == 0, r.stderr

    def start(tag):
        addr = f"127.0.0.1:{_free_port()}"
        env = {**os.environ, "JAX_PLATFORMS": "cpu"}
        logs = [open(tmp_path / f"{tag}{i}.log", "wb") for i in range(2)]
        procs = [subprocess.Popen([sys.executable, "-m", "landscape.cli", *args, "--name", "mp", "--coordinator", addr,
                                   "--num-processes", "2", "--process-id", str(i)], env=env, stdout=logs[i],
                                  stderr=logs[i], stdin=subprocess.DEVNULL) for i in range(2)]
        for p, f in zip(procs, logs):
            p.log_file = f
        return procs, logs

    ckpt = run_dir / ".landscape" / "checkpoints" / "mp" / "evaluate.npz"
    procs, logs = start("first")
    try:
        deadline = time.monotonic() + 240
        while not ckpt.exists():
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), \
                (tmp_path / "first0.log").read_text()[-2000:]
            time.sleep(0.05)
        time.sleep(0.5)
    finally:
        for p in procs:
            p.kill()
            p.wait()
        for f in logs:
            f.close()
    assert not (run_dir / "results" / "mp.npz").exists()
    stored = files.load_npz(ckpt)
    assert 0 < stored["done"].sum() < stored["done"].size
    stored["result/train_loss"][0, 0] = 123.0  # the first chunk, done: reused if resumed
    files.atomic_save_npz(ckpt, stored)
    procs, _ = start("second")
    rc = _finish(procs, timeout=300)
    assert rc == [0, 0], (tmp_path / "second0.log").read_text()[-2000:] + (tmp_path / "second1.log").read_text()[-2000:]
    got, _ = ls.io.load_result(run_dir / "results" / "mp")
    want, _ = ls.io.load_result(run_dir / "results" / "single")
    assert got["value/train_loss"].flat[0] == 123.0
    np.testing.assert_allclose(got["value/train_loss"].flat[1:], want["value/train_loss"].flat[1:], rtol=1e-5, atol=1e-6)
    assert not ckpt.parent.exists()
