"""The run and results store's guarantees, with real processes: atomic commits under injected
kills, checkpoints kept until the commit, members addressed by (seed, learning rate), bounded
memory under hostile sizes, one-line exit 2 for bad files, environments and file-system faults."""

import json
import os
import signal
import subprocess
import sys
import zipfile

import jax
import numpy as np
import pytest

import landscape as ls
from landscape import analyses
from landscape.core import files

from .clirun import run
from .conftest import assert_members_equal

# a sweep of two learning rates that learns (so no member is flagged), small enough for seconds
SWEEP = ["--dataset", "blobs", "--hidden", "6", "--steps", "200", "--log-every", "50", "--seeds", "3",
         "--lr", "0.3,1", "--loss", "cross_entropy", "--quiet", "--no-plot"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("store") / "run"
    r = run("train", *SWEEP, "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out


# ---------------------------------------------------------------------- one result, one atomic commit

_KILL_IN_COMMIT = """
import os, signal, sys
import numpy as np
from landscape import io
from landscape.core import files
stem, when, value = sys.argv[1], sys.argv[2], float(sys.argv[3])
real_write, real_replace = files.atomic_write, os.replace

def die():
    os.kill(os.getpid(), signal.SIGKILL)

if when == "before-rename":  # the new .npz is written and fsync-ed, not yet renamed into place
    def replace(src, dst):
        if str(dst).endswith(".npz"):
            die()
        return real_replace(src, dst)
    os.replace = replace
elif when == "before-copy":  # the .npz is committed, its .json copy not yet written
    def atomic_write(path, write):
        if str(path).endswith(".json"):
            die()
        return real_write(path, write)
    files.atomic_write = atomic_write
io.save_result(stem, {"value/loss": np.full(5, value)}, {"kind": "line", "value": value})
"""


@pytest.mark.parametrize("when, survivor", [("before-rename", 1.0), ("before-copy", 2.0)])
def test_a_kill_inside_a_commit_leaves_the_old_or_the_new_result_complete(tmp_path, when, survivor):
    stem = tmp_path / "results" / "r"
    ls.io.save_result(stem, {"value/loss": np.full(5, 1.0)}, {"kind": "line", "value": 1.0})
    proc = subprocess.run([sys.executable, "-c", _KILL_IN_COMMIT, str(stem), when, "2.0"], capture_output=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    arrays, meta = ls.io.load_result(stem)  # never a pair that disagrees
    assert meta["value"] == survivor and np.all(arrays["value/loss"] == survivor)
    assert json.loads((tmp_path / "results" / "r.json").read_text())["value"] == survivor  # the copy follows
    files.remove_stale(tmp_path / "results")
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["r.json", "r.npz"]


def test_checkpoints_are_kept_until_the_result_is_committed(sweep, monkeypatch, tmp_path):
    """A kill in compare's curve phase loses none of the finished barrier evaluations: they are
    resumed (not recomputed) and deleted only after the commit."""
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(sweep, run_dir)
    spec = analyses.CompareSpec(lr=1.0, curve=(0, 1), curve_steps=5, grid=5)
    ex = analyses.Execution(save_every_s=0.0)

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(ls.minima, "bezier_curve", interrupted)
    with pytest.raises(KeyboardInterrupt):
        analyses.compare(run_dir, spec, execution=ex)
    ckpt = run_dir / ".landscape" / "checkpoints" / "compare_lr1" / "barrier.npz"
    stored = files.load_npz(ckpt)
    assert stored["done"].all()
    stored["result/loss"][0, 0] = 123.0  # pair (0, 1) at t = 0: reused, not recomputed, if resumed
    files.atomic_save_npz(ckpt, stored)
    monkeypatch.undo()
    out = analyses.compare(run_dir, spec, execution=ex)
    assert not (run_dir / ".landscape" / "checkpoints" / "compare_lr1").exists()
    assert out.arrays["barrier_midpoint"][0, 1] > 50  # max 123 minus the endpoints' mean (123 + ~0.3) / 2


# ---------------------------------------------------------------------- members by (seed, learning rate)


@pytest.mark.slow  # kept out of the default suite's 5 minutes; CI runs it with -m slow
def test_lr_sweep_report_and_tables_address_members_by_seed_and_rate(sweep, tmp_path):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(sweep, run_dir)
    r = run("hessian", str(run_dir), "--top", "1", "--probes", "4", "--quiet", "--no-plot")
    assert r.returncode == 0, r.stderr
    hess, _ = ls.io.load_result(run_dir / "results" / "hessian")
    assert "lr" in r.stdout.splitlines()[0]  # the table names each member's rate
    assert "at lr 0.3" in r.stdout and "at lr 1" in r.stdout  # medians per rate, never pooled
    r = run("compare", str(run_dir), "--lr", "1", "--grid", "5", "--quiet", "--no-plot")
    assert r.returncode == 0, r.stderr
    comp, _ = ls.io.load_result(run_dir / "results" / "compare_lr1")
    assert np.all(comp["learning_rates"] == 1.0)
    report = (run_dir / "report.md").read_text()
    for seed in range(3):  # each row quotes the eigenvalue of (seed, lr 1), not of (seed, lr 0.3)
        i = int(np.flatnonzero((hess["seeds"] == seed) & np.isclose(hess["learning_rates"], 1.0))[0])
        j = int(np.flatnonzero((hess["seeds"] == seed) & np.isclose(hess["learning_rates"], 0.3))[0])
        row = next(line for line in report.splitlines() if line.startswith(f"| seed {seed}, lr 1 |"))
        assert f"{hess['top'][i, 0]:.4g}" in row and f"{hess['top'][j, 0]:.4g}" not in row
    # a new Hessian rebuilds the report that quotes it
    r = run("hessian", str(run_dir), "--top", "1", "--probes", "4", "--key", "5", "--overwrite", "--quiet",
            "--no-plot")
    assert r.returncode == 0 and "report:" in r.stdout, r.stderr
    hess2, _ = ls.io.load_result(run_dir / "results" / "hessian")
    i = int(np.flatnonzero((hess2["seeds"] == 0) & np.isclose(hess2["learning_rates"], 1.0))[0])
    row = next(line for line in (run_dir / "report.md").read_text().splitlines() if line.startswith("| seed 0, lr 1 |"))
    assert f"{hess2['trace'][i]:.4g}" in row


def test_plot_never_overwrites_the_commands_figure(sweep, tmp_path):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(sweep, run_dir)
    r = run("interpolate", str(run_dir), "--seeds", "0,1", "--lr", "1", "--grid", "5", "--quiet")
    assert r.returncode == 0, r.stderr
    fig = run_dir / "figures" / "interpolate_seed0lr1_1lr1_g5.png"
    before = fig.read_bytes()
    r = run("plot", str(run_dir / "results" / "interpolate_seed0lr1_1lr1_g5.npz"), "--log")
    assert r.returncode == 0, r.stderr
    assert fig.read_bytes() == before and (run_dir / "figures" / "interpolate_seed0lr1_1lr1_g5_log.png").exists()
    r = run("plot", str(run_dir / "results" / "interpolate_seed0lr1_1lr1_g5.npz"), "--log", "--linear")
    assert r.returncode == 2 and "not allowed with" in r.stderr


# ---------------------------------------------------------------------- bounded memory, bad input


@pytest.mark.slow  # several subprocesses and a 1 GiB-declaring archive: run by `pytest -m slow`
def test_hostile_sizes_are_refused_before_allocating(sweep, tmp_path):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(sweep, run_dir)
    # a small compressed params.npz declaring a gigabyte: refused from its header
    names = list(files.npz_shapes(run_dir / "params.npz"))
    with zipfile.ZipFile(run_dir / "params.npz", "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in names:
            with zf.open(f"{name}.npy", "w", force_zip64=True) as f:
                header = {"descr": "<f4", "fortran_order": False, "shape": (6, 2**23)}  # 192 MiB each
                np.lib.format.write_array_header_1_0(f, header)
                chunk = bytes(2**20)
                for _ in range(192):
                    f.write(chunk)
    assert (run_dir / "params.npz").stat().st_size < 8 * 2**20
    r = run("info", str(run_dir))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "expected shapes" in r.stderr
    r = run("interpolate", str(sweep), "--seeds", "0,1", "--lr", "1", "--extend", "1e7", "--quiet", "--name", "x")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "points" in r.stderr
    r = run("surface", str(sweep), "--seed", "all", "--grid", "3000", "--quiet", "--name", "x", "--no-plot")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "members ×" in r.stderr
    r = run("train", "--dataset", "blobs", "--steps", str(10**12), "--log-every", "1", "--out", str(tmp_path / "h"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "history" in r.stderr


@pytest.mark.parametrize("damage, match", [
    (lambda m: {**m, "num_members": 10**5000}, "not valid JSON"),  # an integer too long to convert
    (lambda m: {**m, "model": {**m["model"], "hidden": "abc"}}, "invalid fields"),
    (lambda m: {**m, "num_members": "6"}, "invalid fields"),
])
def test_corrupt_metadata_is_one_line_exit_2(sweep, tmp_path, damage, match):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(sweep, run_dir)
    meta = json.loads((run_dir / "meta.json").read_text())
    import sys as _sys

    _sys.set_int_max_str_digits(0)
    try:
        (run_dir / "meta.json").write_text(json.dumps(damage(meta)))
    finally:
        _sys.set_int_max_str_digits(4300)
    for argv in (["info", str(run_dir)], ["surface", str(run_dir), "--seed", "0", "--lr", "1", "--grid", "3"]):
        r = run(*argv)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and match in r.stderr, r.stderr


@pytest.mark.parametrize("member, dtype, match", [
    ("duplicate", "<f4", "stored twice"), ("complex", "<c8", "only plain numbers")])
def test_odd_arrays_are_refused(sweep, tmp_path, member, dtype, match):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(sweep, run_dir)
    import warnings

    arrays = files.load_npz(run_dir / "params.npz")
    with warnings.catch_warnings(), zipfile.ZipFile(run_dir / "params.npz", "w") as zf:
        warnings.simplefilter("ignore")  # zipfile warns of the duplicate it is asked to write
        for name, a in arrays.items():
            for _ in range(2 if member == "duplicate" else 1):
                with zf.open(f"{name}.npy", "w") as f:
                    np.lib.format.write_array(f, a.astype(dtype))
    r = run("info", str(run_dir))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and match in r.stderr, r.stderr


# the child limits itself, then becomes the command: writing any byte to a file fails with
# EFBIG, as on a full disk (SIGXFSZ ignored, so the write returns the error)
_FULL_DISK = """
import os, resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
os.execv(sys.executable, [sys.executable, "-m", "landscape.cli", *sys.argv[1:]])
"""


def test_a_full_disk_is_one_line_exit_2_before_computing(sweep):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "LANDSCAPE_COMPILE_CACHE": "off"}
    p = subprocess.run([sys.executable, "-c", _FULL_DISK, "surface", str(sweep), "--seed", "0", "--lr", "1",
                        "--grid", "3", "--name", "full"], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "cannot write" in p.stderr, p.stderr
    assert not (sweep / "results" / "full.npz").exists()


@pytest.mark.parametrize("var, value", [("JAX_PLATFORMS", "nosuch"), ("JAX_ENABLE_X64", "maybe"),
                                        ("JAX_DEFAULT_MATMUL_PRECISION", "fast")])
def test_garbage_jax_variables_are_one_line_exit_2(sweep, var, value):
    env = {**os.environ, var: value}
    r = run("surface", str(sweep), "--seed", "0", "--lr", "1", "--grid", "3", "--name", "env", env=env)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and var in r.stderr, r.stderr


def test_a_second_train_into_the_same_directory_fails_at_once(tmp_path):
    out = tmp_path / "run"
    with files.exclusive(tmp_path / ".run.landscape-lock", "held"):
        r = run("train", "--dataset", "blobs", "--steps", "5", "--seeds", "2", "--out", str(out), "--quiet")
    assert r.returncode == 2 and "another command is training into" in r.stderr
    assert not out.exists()


def test_labels_are_checked_before_they_are_cast():
    x = np.zeros((3, 2), np.float32)
    for bad in (2**32 + 1, 2**32 - 1, 2**31):
        y = np.array([0, 1, bad], np.int64)
        with pytest.raises(ls.DataError, match="labels must lie in"):
            ls.data.from_arrays(x, y, x, np.array([0, 1, 0]))
    y = np.array([0, 1, 2**32 + 1], np.uint64)
    with pytest.raises(ls.DataError, match="labels must lie in"):
        ls.data.from_arrays(x, y, x, np.array([0, 1, 0]), num_classes=3)


# ---------------------------------------------------------------------- reproducibility, the demo


@pytest.mark.parametrize("sweep_seeds", [[0, 1, 2, 3, 4], pytest.param(list(range(13)), marks=pytest.mark.slow)])
def test_a_member_trained_alone_equals_it_inside_any_sweep_bitwise(digits, sweep_seeds):
    model = ls.MLP(hidden=(16, 16), activation="sigmoid", output_activation="sigmoid")
    kw = dict(key=jax.random.key(0), steps=60, log_every=30, loss="mse", optimizer=ls.OptimizerSpec("sgd", 3.0),
              execution=ls.Execution(progress=False))
    alone = ls.train_ensemble(model, digits, seeds=[3], **kw)
    inside = ls.train_ensemble(model, digits, seeds=sweep_seeds, **kw)
    i = sweep_seeds.index(3)
    assert_members_equal(ls.tree.take(alone.params, 0), ls.tree.take(inside.params, i))


@pytest.mark.slow
def test_an_interrupted_demo_goes_on_a_completed_one_says_so_and_a_different_one_is_refused(tmp_path):
    out = tmp_path / "demo"
    r = run("demo", "--seeds", "3", "--steps", "20", "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    assert (out / "run" / "figures" / "trajectory_seed0_g41.png").exists()
    r = run("demo", "--seeds", "3", "--steps", "20", "--out", str(out), "--quiet")
    assert r.returncode == 0 and "kept from the completed demo" in r.stdout, r.stderr
    assert "interrupted demo" not in r.stdout
    # as if killed before the last step: the last result missing, the marker not yet marked complete
    (out / "run" / "results" / "trajectory_seed0_g41.npz").unlink()
    (out / "demo.json").write_text(json.dumps({"seeds": 3, "steps": 20}))
    r = run("demo", "--seeds", "3", "--steps", "20", "--out", str(out), "--quiet")
    assert r.returncode == 0 and "kept from the interrupted demo" in r.stdout, r.stderr
    assert (out / "run" / "results" / "trajectory_seed0_g41.npz").exists()
    r = run("demo", "--seeds", "4", "--steps", "20", "--out", str(out), "--quiet")
    assert r.returncode == 2 and "--overwrite" in r.stderr
    r = run("demo", "--seeds", "2", "--out", str(tmp_path / "d2"), "--quiet")
    assert r.returncode == 2 and "at least 3" in r.stderr and not (tmp_path / "d2").exists()
