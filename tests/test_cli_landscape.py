"""The landscape commands end to end: surface, interpolate, plane, trajectory, plot."""


import pytest

from .clirun import TINY, run


def _commands(out, argvs):
    results = {}
    for argv in argvs:
        lr = [] if "all" in argv else ["--lr", "0.1"]  # the run swept two learning rates
        r = run(*argv, *lr, "--quiet")
        assert r.returncode == 0, r.stderr
        results[argv[0] + argv[3]] = r.stdout
    return results


@pytest.fixture(scope="module")
def landscapes(trained):
    """The results the fast tests read: a plane (with its figure), an interpolation, a plane
    through three minima (the last two without figures)."""
    out, _ = trained
    return out, _commands(out, (["surface", str(out), "--seed", "0", "--grid", "7", "--test"],
                                ["interpolate", str(out), "--seeds", "0,2", "--grid", "11", "--no-plot"],
                                ["plane", str(out), "--seeds", "0,1,2", "--grid", "7", "--no-plot"]))


@pytest.mark.slow  # every landscape command end to end (the documented synopses run in test_docs too)
def test_landscape_commands_write_results_and_figures(landscapes):
    out, results = landscapes
    results.update(_commands(out, (
        ["surface", str(out), "--seed", "all", "--grid", "5", "--dims", "2", "--name", "many"],
        ["surface", str(out), "--seed", "1", "--grid", "9", "--dims", "1", "--norm", "layer"],
        ["interpolate", str(out), "--seeds", "0,2", "--grid", "11"],  # reused; draws the figure
        ["plane", str(out), "--seeds", "0,1,2", "--grid", "7"],
        ["trajectory", str(out), "--seed", "2", "--grid", "7"])))
    figs = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert "plane_seed0lr0.1_random_filter_g7_s1_test.png" in figs and "many.png" in figs  # --test is in the name
    assert "line_seed1lr0.1_random_layer_g9_s1.png" in figs and "interpolate_seed0lr0.1_2lr0.1_g11.png" in figs
    assert "plane_seed0lr0.1_1lr0.1_2lr0.1_g7.png" in figs and "trajectory_seed2lr0.1_g7.png" in figs
    assert "barrier" in results["interpolate0,2"] and "explained variance ratio" in results["trajectory2"]
    arrays, meta = __import__("landscape").io.load_result(out / "results" / "many.npz")
    assert arrays["value/train_loss"].shape == (6, 5, 5)  # 3 seeds x 2 learning rates
    assert not list((out / ".landscape" / "checkpoints").glob("*"))  # removed once each result is committed


def test_rerun_reuses_saved_result_and_refuses_other_settings(landscapes):
    out, _ = landscapes
    r = run("surface", str(out), "--seed", "0", "--lr", "0.1", "--grid", "7", "--test", "--quiet", "--no-plot")
    assert r.returncode == 0 and "result:" in r.stdout
    assert "reused, nothing computed" in r.stdout
    r = run("surface", str(out), "--seed", "0", "--lr", "0.1", "--grid", "7", "--quiet", "--no-plot", "--name",
            "plane_seed0lr0.1_random_filter_g7_s1_test")  # the same name without --test
    assert r.returncode == 2 and "(test differ)" in r.stderr


@pytest.mark.parametrize("kind, fmt", [("contour", "pdf"), ("filled", "png"), ("heatmap", "svg"), ("surface", "png")])
def test_plot_kinds_from_saved_result(landscapes, kind, fmt, tmp_path):
    out, _ = landscapes
    target = tmp_path / f"f.{fmt}"
    r = run("plot", str(out / "results" / "plane_seed0lr0.1_random_filter_g7_s1_test.npz"), "--kind", kind,
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
    (["surface", "{run}", "--grid", "100000"], "more than one evaluation holds"),
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
