"""The accelerator check script, run on the CPU in its --quick form (as CI can: no GPU here)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow  # the test files, then every benchmark section in tiny sizes, in subprocesses
@pytest.mark.timeout(1200)  # about 8 minutes on 2 busy cores: the time-to-result section starts ~20 commands
def test_accelerator_check_quick_on_cpu(tmp_path):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    r = subprocess.run([sys.executable, str(ROOT / "experiments" / "accelerator_check.py"), "--quick",
                        "--workers", "1", "--out", str(tmp_path)], capture_output=True, text=True, env=env,
                       stdin=subprocess.DEVNULL, timeout=1800)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["device"]["backend"] == "cpu" and summary["tests"]["exit_status"] == 0
    bench = json.loads((tmp_path / "benchmark_cpu.json").read_text())
    sections = {row["section"] for row in bench["rows"]}
    assert {"matmul", "sweep", "surface", "hessian", "large", "ttr"} <= sections
    large = [row for row in bench["rows"] if row["section"] == "large"]
    assert [row["impl"].split(" seeds")[0] for row in large[:3]] == ["train 8", "train 16", "train 32"]
    assert all(0 < row["fraction_of_matmul_peak"] for row in large)
    assert all(row["train_accuracy_median"] >= 0 for row in large[:3])
    ttr = {row["impl"]: row for row in bench["rows"] if row["section"] == "ttr"}
    assert set(ttr) == {f"landscape {c}" for c in ("train", "info", "surface", "interpolate", "plane", "trajectory",
                                                   "hessian", "compare", "plot")}
    # --quick sends the first three commands through a `landscape serve` server too
    assert [name for name, row in ttr.items() if "served_s" in row] == [
        "landscape train", "landscape info", "landscape surface"]
    assert all(row["served"]["wall_s"] > 0 for row in ttr.values() if "served" in row)
    for row in ttr.values():
        w = row["warm"]
        parts = sum(w[k] for k in ("startup_s", "load_s", "compile_s", "compute_s", "figure_s"))
        assert parts == pytest.approx(w["wall_s"], rel=0.5)  # the split accounts for the wall time
