"""A surface (curvature map, sharpness) computation killed with SIGKILL resumes from its checkpoint and equals an uninterrupted run."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import landscape as ls
from landscape.core import chunks, files

SCRIPT = textwrap.dedent(
    """
    import sys, jax, numpy as np
    import landscape as ls
    from landscape import surface
    ckpt, out = sys.argv[1], sys.argv[2]
    data = ls.data.blobs(num_train=64, num_test=16, num_classes=3, dim=4, seed=0)
    model = ls.MLP(hidden=(5,), activation="tanh").for_data(data)
    theta = model.init(jax.random.key(0))
    ds = ls.directions.random_directions(jax.random.key(1), theta, 2)
    fn = ls.models.metrics_fn(model, "cross_entropy")
    a = np.linspace(-1, 1, 60)
    coords = np.stack(np.meshgrid(a, a, indexing="ij"), -1).reshape(-1, 2)
    if sys.argv[3] == "surface":
        res = surface.evaluate(fn, theta, ds, coords, data={"train": (data.train.x, data.train.y)},
                               execution=ls.Execution(chunk_size=2, checkpoint=None if ckpt == "-" else ckpt,
                                                      save_every_s=0.0))
    elif sys.argv[3] == "sharpness":  # PAC-Bayes sigma of 200 members, two per chunk
        members = ls.tree.stack([model.init(jax.random.key(i)) for i in range(200)])
        iv = ls.sharpness.pac_bayes_sigma(ls.models.loss_fn(model, data.train, "cross_entropy"), members, target=0.05,
                                          samples=32, key=jax.random.key(3), stacked=True,
                                          execution=ls.Execution(chunk_size=2, checkpoint=None if ckpt == "-" else ckpt))
        res = {"sigma": iv.value, "low": iv.low, "high": iv.high}
    else:  # the curvature map of a coarser grid of the same plane
        a = np.linspace(-1, 1, 24)
        coords = np.stack(np.meshgrid(a, a, indexing="ij"), -1).reshape(-1, 2)
        res = ls.hessian.curvature_map(ls.models.loss_fn(model, data.train, "cross_entropy"), theta, ds, coords,
                                       key=jax.random.key(2),
                                       execution=ls.Execution(chunk_size=2, checkpoint=None if ckpt == "-" else ckpt))
    np.savez(out, **res)
    """
)


class _Job:
    """A child process whose stderr goes to a file (no pipes left open)."""

    def __init__(self, args, tmp_path):
        script = tmp_path / "job.py"
        script.write_text(SCRIPT)
        self.log = tmp_path / f"job{len(list(tmp_path.glob('job*.log')))}.log"
        with open(self.log, "wb") as err:
            self.proc = subprocess.Popen([sys.executable, str(script), *args],
                                         env={**os.environ, "JAX_PLATFORMS": "cpu"},
                                         stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL)

    def wait(self, timeout):
        return self.proc.wait(timeout=timeout)

    def poll(self):
        return self.proc.poll()

    def stderr(self):
        return self.log.read_text()


def _run(args, tmp_path):
    return _Job(args, tmp_path)


@pytest.mark.slow  # a real subprocess killed / several processes: run by `pytest -m slow`
@pytest.mark.parametrize("kind, saved, marked, returned", [
    ("surface", "result/train_loss", (0,), "train_loss"),  # saved (seeds, points)
    ("curvature", "result/smallest", (), "lambda_min"),  # saved (points,)
    ("sharpness", "result/value", (), "sigma"),  # saved (members,)
])
def test_sigkill_then_resume_equals_uninterrupted(tmp_path, kind, saved, marked, returned):
    ref = _run(["-", str(tmp_path / "ref.npz"), kind], tmp_path)
    assert ref.wait(timeout=300) == 0, ref.stderr()
    ckpt = tmp_path / "surface.partial.npz"
    job = _run([str(ckpt), str(tmp_path / "killed.npz"), kind], tmp_path)
    try:
        deadline = time.monotonic() + 240
        while not ckpt.exists():  # wait for some chunks to be saved
            assert job.poll() is None, "finished before it could be killed: " + job.stderr()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(0.3)
        job.proc.send_signal(signal.SIGKILL)
        job.wait(timeout=30)
    finally:
        if job.poll() is None:
            job.proc.kill()
            job.proc.wait()
    assert not (tmp_path / "killed.npz").exists()
    done = files.load_npz(ckpt)["done"]
    assert 0 < done.sum() < done.size, "the kill should land mid-computation"
    # mark the saved chunks: a resumed run must reuse them, not recompute them
    stored = files.load_npz(ckpt)
    first_done = int(np.flatnonzero(done)[0])
    stored[saved][(*marked, 2 * first_done)] = -123.0
    files.atomic_save_npz(ckpt, stored)
    resumed = _run([str(ckpt), str(tmp_path / "resumed.npz"), kind], tmp_path)
    assert resumed.wait(timeout=300) == 0, resumed.stderr()
    got, want = files.load_npz(tmp_path / "resumed.npz"), files.load_npz(tmp_path / "ref.npz")
    assert got[returned][2 * first_done] == -123.0  # taken from the checkpoint
    mask = np.ones(want[returned].size, bool)
    mask[2 * first_done] = False
    for k in want:
        np.testing.assert_array_equal(got[k][mask], want[k][mask])
    assert not ckpt.exists()  # removed once complete


def test_checkpoint_of_another_computation_is_ignored(tmp_path):
    ckpt = tmp_path / "c.npz"
    chunks.save_checkpoint(ckpt, "other", {"x": np.zeros(4, np.float32)}, np.array([True, False]))
    assert chunks.load_checkpoint(ckpt, "mine") is None
    assert chunks.load_checkpoint(ckpt, "other")[1].tolist() == [True, False]
    ckpt.write_bytes(b"garbage")
    assert chunks.load_checkpoint(ckpt, "other") is None


def test_results_are_checked_against_their_metadata(tmp_path):
    stem = tmp_path / "results" / "r"
    ls.io.save_result(stem, {"axis_0": np.arange(3.0), "value/loss": np.ones(3)}, {"kind": "line"})
    arrays, meta = ls.io.load_result(str(stem) + ".npz")
    assert meta["kind"] == "line" and arrays["value/loss"].tolist() == [1, 1, 1]
    files.atomic_save_npz(stem.with_name("r.npz"), {"axis_0": np.arange(4.0)})
    with pytest.raises(ls.CorruptRunError, match="holds no result metadata"):
        ls.io.load_result(stem)
    with pytest.raises(ls.RunNotFoundError):
        ls.io.load_result(tmp_path / "nothing")
