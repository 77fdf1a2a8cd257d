"""The curvature and comparison commands end to end: hessian, compare."""


import numpy as np
import pytest

from .clirun import run


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("minima") / "run"
    r = run("train", "--dataset", "blobs", "--hidden", "5,4", "--activation", "tanh", "--loss", "cross_entropy",
            "--lr", "0.5", "--steps", "40", "--log-every", "20", "--seeds", "4", "--quiet", "--no-plot",
            "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out


@pytest.mark.slow  # the hessian and compare commands end to end; bad input and --limit stay fast
def test_hessian_and_compare_write_results_report_and_figures(small_run):
    out = small_run
    r = run("hessian", str(out), "--top", "2", "--density", "--probes", "5", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "members that learned: top eigenvalue" in r.stdout
    arrays, meta = __import__("landscape").io.load_result(out / "results" / "hessian")
    assert arrays["top"].shape == (4, 2) and np.all(arrays["top"][:, 0] >= arrays["top"][:, 1])
    assert arrays["density_weights"].shape[:2] == (4, 2)
    r = run("compare", str(out), "--align", "--curve", "0,1", "--curve-steps", "50", "--grid", "9", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "before alignment" in r.stdout and "after alignment" in r.stdout and "Bezier curve" in r.stdout
    report = (out / "report.md").read_text()
    assert "| member | final train loss" in report and "basin (aligned)" in report
    for name in ("compare_barriers", "compare_barriers_aligned", "compare_alignment", "compare_curve",
                 "compare_final_costs", "compare_sharpness", "compare_density", "hessian_sharpness",
                 "hessian_density"):
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
    (["hessian", "{run}", "--minibatches", "4"], "need a batch size (--batch-size)"),
])
def test_bad_minima_input_is_one_line(small_run, argv, message, tmp_path):
    r = run(*[a.format(run=small_run, tmp=tmp_path) for a in argv], "--quiet")
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0], r.stderr


def test_compare_limit_takes_the_first_seeds(small_run):
    r = run("compare", str(small_run), "--limit", "3", "--grid", "5", "--overwrite", "--quiet", "--no-plot")
    assert r.returncode == 0, r.stderr
    arrays, meta = __import__("landscape").io.load_result(small_run / "results" / "compare")
    np.testing.assert_array_equal(arrays["seeds"], [0, 1, 2])
    assert arrays["barrier"].shape == (3, 3) and meta["provenance"]["settings"]["members"] == [0, 1, 2]
    r = run("compare", str(small_run), "--limit", "0", "--quiet")
    assert r.returncode == 2 and "positive" in r.stderr


@pytest.mark.slow  # two more Hessian commands; the library functions are tested in the fast suite
def test_hessian_per_layer_and_gauss_newton_from_the_command_line(small_run, tmp_path):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(small_run, out)
    r = run("hessian", str(out), "--top", "1", "--probes", "5", "--quiet", "--no-plot", "--overwrite")
    assert r.returncode == 0, r.stderr
    r = run("hessian", str(out), "--top", "1", "--probes", "5", "--per-layer", "--name", "layered", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "layer Dense_0: top eigenvalue" in r.stdout and "layer Dense_2: top eigenvalue" in r.stdout
    layered, meta = __import__("landscape").io.load_result(out / "results" / "layered")
    assert meta["layers"] == ["Dense_0", "Dense_1", "Dense_2"] and layered["layer/Dense_1/top"].shape == (4, 1)
    assert (out / "figures" / "layered_Dense_2_sharpness.png").exists()
    r = run("hessian", str(out), "--top", "1", "--probes", "5", "--curvature", "ggn", "--quiet")
    assert r.returncode == 0 and "Gauss-Newton" in r.stdout, r.stderr
    assert (out / "figures" / "curvature_ggn_vs_hessian.png").stat().st_size > 1000
    ggn, _ = __import__("landscape").io.load_result(out / "results" / "ggn")
    assert np.all(ggn["smallest"] > -1e-3)  # positive semi-definite, unlike the Hessian
    # mini-batches: the full-data values accumulated over batches equal the one-evaluation ones
    r = run("hessian", str(out), "--top", "1", "--probes", "5", "--batch-size", "50", "--minibatches", "3",
            "--name", "batched", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "3 mini-batches of 50: top eigenvalue" in r.stdout
    batched, _ = __import__("landscape").io.load_result(out / "results" / "batched")
    whole, _ = __import__("landscape").io.load_result(out / "results" / "hessian")
    np.testing.assert_allclose(batched["top"], whole["top"], rtol=1e-3, atol=1e-5)
    assert batched["batch_top"].shape == (4, 3, 1) and int(batched["minibatch_size"]) == 50
    assert (out / "figures" / "batched_minibatch.png").stat().st_size > 1000
    r = run("hessian", str(out), "--batch-size", "50", "--minibatches", "30", "--name", "toomany", "--quiet")
    assert r.returncode == 2 and "30 disjoint mini-batches of 50 need 1500 examples" in r.stderr
    # a curvature map over seed 1's plane: at the centre, the top eigenvalue the hessian command found
    r = run("surface", str(out), "--seed", "1", "--grid", "9", "--curvature", "--curvature-grid", "3",
            "--curvature-probes", "4", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "curvature map (3 × 3) seed 1" in r.stdout and "at the centre λ_max" in r.stdout
    name = "plane_seed1_random_filter_g9_s1_curv3"
    arrays, _ = __import__("landscape").io.load_result(out / "results" / name)
    assert arrays["curvature/lambda_max"].shape == (3, 3) and arrays["curvature/trace"].shape == (3, 3)
    assert float(arrays["curvature/lambda_max"][1, 1]) == pytest.approx(float(whole["top"][1, 0]), rel=1e-3)
    assert (out / "figures" / f"{name}_curvature.png").stat().st_size > 1000
    r = run("plot", str(out / "results" / f"{name}.npz"), "--kind", "curvature", "--format", "pdf", "--quiet")
    assert r.returncode == 0 and (out / "figures" / f"{name}_curvature_plot.pdf").stat().st_size > 1000, r.stderr


@pytest.mark.slow
def test_basins_race_export_and_plot_end_to_end(small_run):
    import landscape as ls

    out = small_run
    r = run("basins", str(out), "--grid", "4", "--steps", "10", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "16 starts (4x4), 10 steps each" in r.stdout and "seed 0" in r.stdout
    assert "barriers between the minima (aligned)" in r.stdout and "half the smallest barrier" in r.stdout
    arrays, meta = ls.io.load_result(out / "results" / "basins_seed0_1_2_g4_s10")
    assert arrays["labels"].shape == (4, 4) and meta["aligned"] and np.isclose(arrays["fractions"].sum(), 1)
    assert (out / "figures" / "basins_seed0_1_2_g4_s10.png").stat().st_size > 1000
    r = run("race", str(out), "--optimizers", "sgd,adam@0.01", "--batch-size", "full,8", "--starts", "2",
            "--steps", "10", "--grid", "5", "--quiet", "--no-animation")
    assert r.returncode == 0, r.stderr
    assert "sgd@0.5, batch 8" in r.stdout and "adam@0.01" in r.stdout  # SGD: the run's learning rate
    result = out / "results" / "race_seed0_1_2_s10.npz"
    arrays, meta = ls.io.load_result(result)
    assert arrays["paths"].shape[:2] == (2, 4) and meta["entrants"][1] == "adam@0.01"
    r = run("race", str(out), "--optimizers", "sgd,adam@0.01", "--batch-size", "full,8", "--starts", "2",
            "--steps", "10", "--grid", "5", "--quiet", "--no-animation")
    assert "reused, nothing computed" in r.stdout
    r = run("export", str(result), "--format", "vtk")
    assert r.returncode == 0, r.stderr
    assert (out / "exports" / "race_seed0_1_2_s10.vts").exists() and (out / "exports" / "race_seed0_1_2_s10_paths.vtp").exists()
    r = run("plot", str(out / "results" / "basins_seed0_1_2_g4_s10.npz"), "--kind", "contour")
    assert r.returncode == 2 and "drawn as its map only" in r.stderr
    r = run("race", str(out), "--optimizers", "sgd,adam", "--lr", "0.1,0.2,0.3", "--quiet")
    assert r.returncode == 2 and "3 learning rates for 2 optimizers" in r.stderr
    r = run("basins", str(out), "--seeds", "0,1", "--quiet")
    assert r.returncode == 2 and "three seeds" in r.stderr
    r = run("animate", str(out), "--starts", "3", "--steps", "5", "--grid", "5", "--frames", "3", "--pixels", "320",
            "--style", "slides", "--format", "pdf", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "3 starts, 5 steps of in-plane gradient descent" in r.stdout
    assert (out / "figures" / "descent_seed0_1_2_n3_s5.pdf").read_bytes().count(b"/Type3") == 0
    from PIL import Image

    with Image.open(out / "figures" / "descent_seed0_1_2_n3_s5.gif") as im:
        assert im.size[0] == 320 and im.n_frames == 3
    r = run("animate", str(out), "--starts", "3", "--steps", "5", "--grid", "5", "--frames", "30", "--pixels", "320",
            "--quiet")  # more frames than positions: every position, and a line that says so
    assert r.returncode == 0 and "reused, nothing computed" in r.stdout, r.stderr
    assert "a descent of 5 steps has 6 positions; the animation shows each of them" in r.stdout
    with Image.open(out / "figures" / "descent_seed0_1_2_n3_s5.gif") as im:
        assert im.n_frames == 6
