"""The ``landscape`` command end to end in subprocesses, good input and bad."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest


def run(*args, cwd=None, timeout=300):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, "-m", "landscape.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=env, stdin=subprocess.DEVNULL)


TINY = ["--dataset", "blobs", "--hidden", "4", "--steps", "6", "--log-every", "2", "--seeds", "3", "--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    r = run("train", *TINY, "--lr", "0.1,0.3", "--loss", "cross_entropy", "--snapshot-every", "2", "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out, r


def test_train_writes_run_and_figures(trained):
    out, r = trained
    assert f"saved run: {out}" in r.stdout
    assert (out / "meta.json").is_file() and (out / "trajectory.npz").is_file()
    assert (out / "figures" / "training_curves.png").stat().st_size > 1000
    assert "spread over 6 members" in r.stdout


def test_info_table_and_json(trained):
    out, _ = trained
    r = run("info", str(out))
    assert r.returncode == 0, r.stderr
    assert "MLP 2-4-3" in r.stdout and "test_accuracy" in r.stdout
    r = run("info", str(out), "--json")
    s = json.loads(r.stdout)
    assert s["num_members"] == 6 and len(s["members"]) == 6 and s["num_diverged"] == 0


def test_help_documents_every_option():
    r = run("--help")
    assert r.returncode == 0 and "train" in r.stdout and "demo" in r.stdout
    r = run("train", "--help")
    for opt in ("--dataset", "--hidden", "--activation", "--loss", "--optimizer", "--lr", "--steps",
                "--batch-size", "--seeds", "--out", "--overwrite", "--quiet", "--snapshot-every"):
        assert opt in r.stdout


BAD = [
    (["train", "--dataset", "nosuch", "--out", "{tmp}/a"], "unknown data set 'nosuch'"),
    (["train", "--hidden", "16,-4", "--out", "{tmp}/a"], "widths must be positive"),
    (["train", "--hidden", "a,b", "--out", "{tmp}/a"], "comma-separated integers"),
    (["train", "--seeds", "0", "--out", "{tmp}/a"], "positive integer"),
    (["train", "--lr", "nan", "--out", "{tmp}/a"], "finite and positive"),
    (["train", "--lr", "-1", "--out", "{tmp}/a"], "finite and positive"),
    (["train", "--activation", "swish", "--out", "{tmp}/a"], "invalid choice"),
    (["train", "--dataset", "blobs", "--batch-size", "5000", "--steps", "2", "--out", "{tmp}/a"], "exceeds"),
    (["train", "--dataset", "mnist", "--data-dir", "{tmp}/tfds", "--out", "{tmp}/a"], "not prepared"),
    (["train"], "required: --out"),
    (["info", "{tmp}/missing"], "no run directory"),
    (["info", "{tmp}"], "not a landscape run directory"),
    (["bogus"], "invalid choice"),
    (["train", "--dataset", "blobs", "--devices", "5", "--out", "{tmp}/a"], "--devices must lie in [1, 1]"),
    (["train", "--dataset", "blobs", "--coordinator", "x", "--out", "{tmp}/a"], "needs --coordinator"),
]


@pytest.mark.parametrize("argv, message", BAD, ids=[" ".join(a[:3]) for a, _ in BAD])
def test_bad_input_is_one_line_and_nonzero(argv, message, tmp_path):
    r = run(*[a.format(tmp=tmp_path) for a in argv])
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert message in lines[0]
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "a").exists()


def test_existing_output_is_not_overwritten(trained, tmp_path):
    out, _ = trained
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    r = run("train", *TINY, "--out", str(out))
    assert r.returncode == 2 and "already exists" in r.stderr and "Traceback" not in r.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_corrupted_run_is_one_line(trained, tmp_path):
    import shutil

    out, _ = trained
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    (bad / "params.npz").write_bytes(b"junk")
    r = run("info", str(bad))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "truncated" in r.stderr
    (bad / "meta.json").write_text("{not json")
    r = run("info", str(bad))
    assert r.returncode == 2 and "not valid JSON" in r.stderr


@pytest.fixture(scope="module")
def landscapes(trained):
    out, _ = trained
    results = {}
    for argv in (["surface", str(out), "--seed", "0", "--grid", "7", "--test"],
                 ["surface", str(out), "--seed", "all", "--grid", "5", "--dims", "2", "--name", "many"],
                 ["surface", str(out), "--seed", "1", "--grid", "9", "--dims", "1", "--norm", "layer"],
                 ["interpolate", str(out), "--seeds", "0,2", "--grid", "11"],
                 ["plane", str(out), "--seeds", "0,1,2", "--grid", "7"],
                 ["trajectory", str(out), "--seed", "2", "--grid", "7"]):
        lr = [] if "all" in argv else ["--lr", "0.1"]  # the run swept two learning rates
        r = run(*argv, *lr, "--quiet")
        assert r.returncode == 0, r.stderr
        results[argv[0] + argv[3]] = r.stdout
    return out, results


def test_landscape_commands_write_results_and_figures(landscapes):
    out, results = landscapes
    figs = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert "plane_seed0lr0.1_random_filter_g7_s1.png" in figs and "many.png" in figs
    assert "line_seed1lr0.1_random_layer_g9_s1.png" in figs and "interpolate_seed0lr0.1_2lr0.1_g11.png" in figs
    assert "plane_seed0lr0.1_1lr0.1_2lr0.1_g7.png" in figs and "trajectory_seed2lr0.1_g7.png" in figs
    assert "barrier" in results["interpolate0,2"] and "explained variance ratio" in results["trajectory2"]
    arrays, meta = __import__("landscape").io.load_result(out / "results" / "many.npz")
    assert arrays["value/train_loss"].shape == (6, 5, 5)  # 3 seeds x 2 learning rates
    assert not list((out / "results").glob("*.partial.npz"))


def test_rerun_reuses_saved_result_and_refuses_other_settings(landscapes):
    out, _ = landscapes
    r = run("surface", str(out), "--seed", "0", "--lr", "0.1", "--grid", "7", "--test", "--quiet", "--no-plot")
    assert r.returncode == 0 and "result:" in r.stdout
    r = run("surface", str(out), "--seed", "0", "--lr", "0.1", "--grid", "7", "--quiet", "--no-plot")  # no --test
    assert r.returncode == 2 and "other settings" in r.stderr


@pytest.mark.parametrize("kind, fmt", [("contour", "pdf"), ("filled", "png"), ("heatmap", "svg"), ("surface", "png")])
def test_plot_kinds_from_saved_result(landscapes, kind, fmt, tmp_path):
    out, _ = landscapes
    target = tmp_path / f"f.{fmt}"
    r = run("plot", str(out / "results" / "plane_seed0lr0.1_random_filter_g7_s1.npz"), "--kind", kind,
            "--out", str(target))
    assert r.returncode == 0, r.stderr
    assert target.stat().st_size > 1000


def test_plot_line_with_metric_and_log(landscapes, tmp_path):
    out, _ = landscapes
    r = run("plot", str(out / "results" / "interpolate_seed0lr0.1_2lr0.1_g11.json"), "--log", "--metric", "train_loss",
            "--out", str(tmp_path / "line.png"))
    assert r.returncode == 0, r.stderr


BAD_LANDSCAPE = [
    (["surface", "{run}", "--seed", "99"], "seed 99 is not in this ensemble"),
    (["surface", "{run}", "--seed", "0", "--lr", "0.2"], "no member with seed 0 and learning rate 0.2"),
    (["surface", "{run}", "--span", "0"], "finite positive number"),
    (["surface", "{run}", "--grid", "0"], "positive integer"),
    (["surface", "{run}", "--norm", "batch"], "invalid choice"),
    (["interpolate", "{run}", "--seeds", "0"], "expected 2 seed(s)"),
    (["plane", "{run}", "--seeds", "0,0,1"], "distinct"),
    (["plane", "{run}", "--seeds", "0,x,1"], "comma-separated integers"),
    (["surface", "{tmp}/nope"], "no run directory"),
    (["plot", "{tmp}/nope.npz"], "no result"),
    (["plot", "{run}/results/interpolate_seed0lr0.1_2lr0.1_g11.npz", "--kind", "surface"], "drawn as a line"),
    (["plot", "{run}/results/plane_seed0lr0.1_1lr0.1_2lr0.1_g7.npz", "--metric", "nope"], "unknown metric"),
    (["plot", "{run}/results/plane_seed0lr0.1_1lr0.1_2lr0.1_g7.npz", "--out", "{tmp}/x.jpg"], "figure format"),
]


@pytest.mark.parametrize("argv, message", BAD_LANDSCAPE, ids=[" ".join(a[:3]) for a, _ in BAD_LANDSCAPE])
def test_bad_landscape_input_is_one_line(landscapes, argv, message, tmp_path):
    out, _ = landscapes
    extra = ["--lr", "0.1"] if argv[0] != "plot" and "--lr" not in argv else []
    r = run(*[a.format(run=out, tmp=tmp_path) for a in argv], *extra)
    assert r.returncode == 2, r.stdout
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0], r.stderr


def test_trajectory_needs_snapshots(tmp_path):
    out = tmp_path / "nosnap"
    assert run("train", *TINY, "--out", str(out), "--no-plot").returncode == 0
    r = run("trajectory", str(out), "--quiet")
    assert r.returncode == 2 and "--snapshot-every" in r.stderr


def test_demo_end_to_end_small(tmp_path):
    out = tmp_path / "demo"
    r = run("demo", "--out", str(out), "--seeds", "3", "--steps", "200", "--quiet")
    assert r.returncode == 0, r.stderr
    figs = {p.name for p in (out / "run" / "figures").iterdir()}
    assert {"training_curves.png", "plane_seed0_random_filter_g51_s1.png", "interpolate_seed0_1_g61.png",
            "plane_seed0_1_2_g41.png", "trajectory_seed0_g41.png"} <= figs
    assert "demo complete" in r.stdout
    r = run("demo", "--out", str(out), "--seeds", "3", "--steps", "10", "--quiet")
    assert r.returncode == 2 and "already exists" in r.stderr


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("minima") / "run"
    r = run("train", "--dataset", "blobs", "--hidden", "5,4", "--activation", "tanh", "--loss", "cross_entropy",
            "--lr", "0.5", "--steps", "40", "--log-every", "20", "--seeds", "4", "--quiet", "--no-plot",
            "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out


def test_hessian_and_compare_write_results_report_and_figures(small_run):
    out = small_run
    r = run("hessian", str(out), "--top", "2", "--density", "--probes", "5", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "median top eigenvalue" in r.stdout
    arrays, meta = __import__("landscape").io.load_result(out / "results" / "hessian")
    assert arrays["top"].shape == (4, 2) and np.all(arrays["top"][:, 0] >= arrays["top"][:, 1])
    assert arrays["density_weights"].shape[:2] == (4, 2)
    r = run("compare", str(out), "--align", "--curve", "0,1", "--curve-steps", "50", "--grid", "9", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "before alignment" in r.stdout and "after alignment" in r.stdout and "Bezier curve" in r.stdout
    report = (out / "report.md").read_text()
    assert "| seed | final train loss" in report and "basin (aligned)" in report
    for name in ("compare_barriers", "compare_barriers_aligned", "compare_alignment", "compare_curve",
                 "compare_final_costs", "hessian_sharpness", "hessian_density"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000, name
    arrays, _ = __import__("landscape").io.load_result(out / "results" / "compare")
    assert arrays["barrier"].shape == (4, 4) and arrays["aligned_barrier"].shape == (4, 4)
    r = run("surface", str(out), "--seed", "1", "--directions", "hessian", "--grid", "5", "--quiet")
    assert r.returncode == 0, r.stderr
    assert (out / "figures" / "plane_seed1_hessian_none_g5_s1.png").exists()


@pytest.mark.parametrize("argv, message", [
    (["compare", "{run}", "--curve", "0,9"], "seed 9 is not in this ensemble"),
    (["compare", "{run}", "--tol", "-1"], "non-negative"),
    (["hessian", "{run}", "--top", "0"], "positive integer"),
    (["hessian", "{tmp}/none"], "no run directory"),
])
def test_bad_minima_input_is_one_line(small_run, argv, message, tmp_path):
    r = run(*[a.format(run=small_run, tmp=tmp_path) for a in argv], "--quiet")
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0], r.stderr
