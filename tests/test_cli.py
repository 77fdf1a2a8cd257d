"""The ``landscape`` command end to end in subprocesses: train, info, demo, bad input."""

import json

import pytest

from .clirun import TINY, run


def test_train_writes_run_and_figures(trained):
    out, r = trained
    assert f"saved run: {out}" in r.stdout
    assert (out / "meta.json").is_file() and (out / "trajectory.npz").is_file()
    assert (out / "figures" / "training_curves.png").stat().st_size > 1000
    assert "spread over 3 members at lr 0.1" in r.stdout and "spread over 3 members at lr 0.3" in r.stdout


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


def _help(*argv) -> str:
    import contextlib
    import io

    from landscape.cli import build_parser

    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        build_parser().parse_args([*argv, "--help"])
    return " ".join(out.getvalue().split())  # argparse wraps lines at the terminal's width


def test_help_shows_defaults_as_typed_and_device_options_only_where_something_is_computed():
    text = _help("train")
    assert "(default: 16,16)" in text and "(default: 8,16)" in text and "(default: 1)" in text
    assert "(16, 16)" not in text and "(1.0,)" not in text
    for command in ("train", "surface", "hessian", "compare", "basins", "race"):
        assert "--coordinator" in _help(command) and "--matmul-precision" in _help(command)
    for command in ("info", "plot", "export", "cache", "prepare"):
        text = _help(command, *(["x"] if command in ("info", "plot", "export", "prepare") else []))
        for flag in ("--devices", "--coordinator", "--num-processes", "--process-id", "--matmul-precision",
                     "--no-compile-cache"):
            assert flag not in text, (command, flag)
        assert "--timings" in text


def test_an_unknown_flag_is_reported_by_its_subcommand():
    from landscape.cli import build_parser
    from landscape.cli.parser import UsageError

    with pytest.raises(UsageError, match=r"^landscape surface: unrecognized arguments: --grd 3 "
                                         r"\(see landscape surface --help\)$"):
        build_parser().parse_args(["surface", "runs/x", "--grd", "3"])
    with pytest.raises(UsageError, match=r"^landscape info: unrecognized arguments: --devices 2"):
        build_parser().parse_args(["info", "runs/x", "--devices", "2"])


BAD = [
    (["train", "--dataset", "nosuch", "--out", "{tmp}/a"], "unknown data set 'nosuch'"),
    (["train", "--dataset", "no such set", "--out", "{tmp}/a"], "unknown data set 'no such set'"),
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
    (["prepare", "no_such_set", "--data-dir", "{tmp}/tfds"], "unknown data set 'no_such_set'"),
    (["train", "--dataset", "blobs", "--seeds", "1000000000", "--out", "{tmp}/a"], "train fewer members"),
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


@pytest.mark.slow  # the whole demo, every command in turn
def test_demo_end_to_end_small(tmp_path):
    out = tmp_path / "demo"
    r = run("demo", "--out", str(out), "--seeds", "3", "--steps", "200", "--quiet")
    assert r.returncode == 0, r.stderr
    figs = {p.name for p in (out / "run" / "figures").iterdir()}
    assert {"training_curves.png", "plane_seed0_random_filter_g51_s1_test.png", "interpolate_seed0_1_g61_test.png",
            "plane_seed0_1_2_g41.png", "trajectory_seed0_g41.png"} <= figs
    assert "demo complete" in r.stdout
    r = run("demo", "--out", str(out), "--seeds", "3", "--steps", "10", "--quiet")
    assert r.returncode == 2 and "already exists" in r.stderr


def test_every_analysis_command_takes_seeds_and_seed_as_one_flag():
    from landscape.cli import build_parser

    parser = build_parser()
    for command in ("surface", "interpolate", "plane", "trajectory", "basins", "race", "animate"):
        a = parser.parse_args([command, "runs/x", "--seeds", "3"])
        b = parser.parse_args([command, "runs/x", "--seed", "3"])
        assert a.seeds == b.seeds == "3", command


@pytest.mark.parametrize("name", ["mse", "cross_entropy", "ce", "xent", "crossentropy", "nll"])
def test_python_and_the_command_line_know_a_loss_by_the_same_names(name):
    """`loss="crossentropy"` trained in Python while `--loss crossentropy` was refused: one table for both."""
    import landscape as ls
    from landscape.cli import build_parser
    from landscape.cli.parser import UsageError

    try:
        python = ls.models.output_loss(name).__name__
    except ls.ConfigError as e:
        python = str(e)
    try:
        cli = build_parser().parse_args(["train", "--loss", name, "--out", "x"]).loss
    except UsageError as e:
        cli = str(e)
    if name == "nll":  # refused by both, with the same list of the names that are known
        assert "unknown loss 'nll'; the losses are known as 'mse', 'cross_entropy', 'ce'" in python
        assert python in cli and cli.startswith("landscape train: argument --loss:")
    else:
        assert cli == python == {"mse": "mse"}.get(name, "cross_entropy")
