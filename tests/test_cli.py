"""The ``landscape`` command end to end in subprocesses, good input and bad."""

import json
import os
import subprocess
import sys

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
