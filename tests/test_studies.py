"""The studies in experiments/ run end to end in their --quick mode and produce what they promise."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

# End-to-end studies (a minute or more each on 2 cores): `python -m pytest -m slow`.
pytestmark = pytest.mark.slow

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"


def load(name: str):
    sys.path.insert(0, str(EXPERIMENTS))
    spec = importlib.util.spec_from_file_location(f"study_{name}", EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_quick(name: str, tmp_path: Path, *extra: str) -> dict:
    out, figs = tmp_path / "run", tmp_path / "figures"
    record = load(name).main(["--quick", "--out", str(out), "--figures", str(figs), *extra])
    saved = json.loads((out / "study.json").read_text())
    assert saved["summary"] == json.loads(json.dumps(record["summary"]))
    assert saved["quick"] is True and saved["total_seconds"] > 0
    for f in record["figures"]:
        assert Path(f).parent == figs and Path(f).stat().st_size > 1000
    return record


def png_ok(path) -> bool:
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_digits_classic_quick(tmp_path):
    rec = run_quick("digits_classic", tmp_path)
    names = sorted(Path(f).name for f in rec["figures"])
    assert names == sorted(f"digits_classic_{n}.png" for n in (
        "final_cost_histogram", "training_curves", "plane_three_seeds", "interpolation_pairs", "barriers",
        "barriers_aligned", "alignment"))
    assert all(png_ok(f) for f in rec["figures"])
    s = rec["summary"]
    assert s["seeds"] == 8 and s["compared"] == 4 and s["pairs"] == 2
    assert 1 <= s["basins_after_alignment"] <= s["basins_before"] <= 4
    # alignment can only lower a pair's barrier estimate's median (the aligned pair includes the identity)
    assert s["median_barrier_after"] <= s["median_barrier_before"] + 1e-6
    assert s["final_cost"]["min"] <= s["final_cost"]["median"] <= s["final_cost"]["max"]


def test_width_sharpness_quick(tmp_path):
    rec = run_quick("width_sharpness", tmp_path)
    assert sorted(Path(f).name for f in rec["figures"]) == ["width_sharpness_planes.png", "width_sharpness_summary.png"]
    s = rec["summary"]
    assert set(s) == {"w4", "w8", "deep"}
    for net in s.values():
        assert net["top_eigenvalue"]["q25"] <= net["top_eigenvalue"]["median"] <= net["top_eigenvalue"]["q75"]
        assert 0 < net["largest_basin_fraction"] <= 1


def test_curvature_quick(tmp_path):
    rec = run_quick("curvature", tmp_path)
    assert sorted(Path(f).name for f in rec["figures"]) == ["curvature_fisher.png", "curvature_ggn.png",
                                                           "curvature_map.png", "curvature_minibatch.png"]
    s = rec["summary"]
    assert set(s["layers"]) == {"Dense_0", "Dense_1", "Dense_2"}
    # a layer's block is a principal submatrix: its top eigenvalue cannot exceed the whole Hessian's
    assert all(v["lambda_max"] <= s["lambda_max"] * (1 + 1e-2) + 1e-6 for v in s["layers"].values())
    assert s["lambda_min"] <= s["lambda_max"] and s["ggn"]["lambda_max"] > 0 and s["fisher"]["lambda_max"] > 0
    assert 0 <= s["map"]["points_over_0.1"] <= 1 and s["map"]["largest_ratio"] >= s["map"]["centre_ratio"]


def test_start_to_finish_quick(tmp_path):
    rec = run_quick("start_to_finish", tmp_path)
    assert sorted(Path(f).name for f in rec["figures"]) == ["start_to_finish_relu_ce.png",
                                                           "start_to_finish_sigmoid_mse.png"]
    for net in rec["summary"].values():
        assert net["seeds"] == 4 and 0 <= net["monotone_fraction"] <= 1


def test_descent_animation_quick(tmp_path):
    from PIL import Image

    rec = run_quick("descent_animation", tmp_path)
    anim = next(Path(f) for f in rec["figures"] if Path(f).suffix in (".gif", ".mp4"))
    if anim.suffix == ".gif":
        with Image.open(anim) as im:
            assert im.n_frames == 5
    s = rec["summary"]
    assert s["starts"] == 6 and sum(s["ended_nearest_minimum"]) == 6
    assert all(0 <= k <= n for k, n in zip(s["settled_per_minimum"], s["ended_nearest_minimum"]))
    # the paths are saved and start inside the drawn slice
    import landscape as ls

    desc, _ = ls.io.load_result(tmp_path / "run" / "run" / "results" / "descent")
    sl, _ = ls.io.load_result(tmp_path / "run" / "run" / "results" / "slice")
    assert desc["paths"].shape == (6, 21, 2)
    assert np.all(desc["paths"][:, 0, 0] >= sl["axis_0"].min()) and np.all(desc["paths"][:, 0, 0] <= sl["axis_0"].max())


def test_mnist_quick_under_mock_data(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=24):
        rec = run_quick("mnist", tmp_path, "--data-dir", str(tmp_path / "tfds"))
    s = rec["summary"]
    assert s["seeds"] == 4 and s["compared"] == 3
    import landscape as ls

    ens = ls.load_run(tmp_path / "run" / "run")
    assert ens.model.in_features == 784 and ens.config["data"]["name"] == "mnist"
    assert ens.config["batch_size"] == 8


@pytest.mark.timeout(1200)  # four ResNets' Hessian programs compile for about a minute each on 2 cores
def test_skip_connections_quick(tmp_path):
    rec = run_quick("skip_connections", tmp_path)
    assert sorted(Path(f).name for f in rec["figures"]) == ["skip_connections_planes.png",
                                                           "skip_connections_summary.png"]
    s = rec["summary"]
    assert set(s) == {"d6_skip", "d6_noskip", "d10_skip", "d10_noskip"}
    for net in s.values():
        assert net["seeds"] == 2 and net["smallest_eigenvalue_median"] <= net["top_eigenvalue_median"]
        assert 0 <= net["ratio"]["q25"] <= net["ratio"]["median"] <= net["ratio"]["q75"]
    import landscape as ls

    # every network is the ResNet it claims to be, trained with its BatchNorm statistics kept
    ens = ls.load_run(tmp_path / "run" / "d10_noskip")
    assert ens.model == ls.ResNet(depth=10, width=2, skip=False, norm="batch", output_activation="identity").for_data(ls.data.load("digits"))
    assert ens.state["batch_stats"]["stem_norm"]["mean"].shape == (2, 2)


def test_sharpness_generalisation_quick(tmp_path):
    rec = run_quick("sharpness_generalisation", tmp_path)
    assert sorted(Path(f).name for f in rec["figures"]) == [
        "sharpness_generalisation_rescaling.png", "sharpness_generalisation_scatter.png",
        "sharpness_generalisation_tau.png"]
    s = rec["summary"]
    assert s["networks"] == 2 * 2 * 2 * 3 and 0 < s["learned"] <= s["networks"]
    assert set(s["measures"]) == set(__import__("landscape").sharpness.MEASURES)
    for entry in s["measures"].values():
        for gap in ("loss_gap", "error_gap"):
            assert -1 <= entry[gap]["tau"] <= 1
            assert set(entry[gap]["granulated"]) == {"lr", "batch", "width", "granulated"}
    r = s["rescaling"]
    for m in ("adaptive-worst", "adaptive-average", "adaptive-pac-bayes", "fisher-rao", "loss"):
        assert r[m]["min_ratio"] == pytest.approx(1, rel=5e-3) and r[m]["max_ratio"] == pytest.approx(1, rel=5e-3), m
    for m in ("worst", "lmax"):  # not invariant: the rescaled network is sharper in plain terms
        assert r[m]["max_ratio"] > 1.5, m


def test_edge_of_stability_quick(tmp_path):
    rec = run_quick("edge_of_stability", tmp_path)
    assert sorted(Path(f).name for f in rec["figures"]) == [
        "edge_of_stability_gd.png", "edge_of_stability_ratio.png", "edge_of_stability_sgd.png"]
    for mode in ("gd", "sgd"):
        s = rec["summary"][mode]
        assert set(s["by_lr"]) == {"0.05", "0.1"} and s["tracking_share"] > 0
        for lr, e in s["by_lr"].items():
            assert e["threshold"] == pytest.approx(2 / float(lr))
            assert e["members"] + e["diverged"] == 2
    ens = __import__("landscape").load_run(tmp_path / "run" / "gd")
    assert ens.tracked.step.tolist() == [0, 20, 40, 60]


def test_instability_quick(tmp_path):
    rec = run_quick("instability", tmp_path)
    assert sorted(Path(f).name for f in rec["figures"]) == ["instability_w16.png", "instability_widths.png"]
    for width in ("8", "16"):
        w = rec["summary"]["widths"][width]
        assert w["spawn_steps"] == [0, 10, 20] and len(w["test_error_barrier_median"]) == 3
        assert all(v >= 0 for v in w["test_error_barrier_median"])
        assert w["stable_from_step"] in (None, 0, 10, 20)
    kids = __import__("landscape").load_run(tmp_path / "run" / "w8_children")
    assert kids.num_members == 2 * 3 * 2
