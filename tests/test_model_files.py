"""A researcher's model from a Python file (--model-file), and run directories of user models:
the file is recorded by SHA-256, never executed from the run, and a changed file is refused."""

import textwrap

import flax.linen as nn
import jax
import numpy as np
import pytest

import landscape as ls
from landscape.models import model_file as model_files

from .conftest import assert_trees_close

NET = textwrap.dedent('''
    import flax.linen as nn
    from landscape.permutation import PermutationSpec


    class Net(nn.Module):
        """Dense -> BatchNorm -> relu -> Dense on the digits' 64 inputs."""

        @nn.compact
        def __call__(self, x, train: bool = False):
            h = nn.BatchNorm(use_running_average=not train, momentum=0.9)(nn.Dense(5)(x))
            return nn.Dense(10)(nn.relu(h))


    def make():
        return Net()


    # the hidden units: Dense_0's outputs, the norm's channels and statistics, Dense_1's rows
    permutation_spec = PermutationSpec(
        {"Dense_0/kernel": (None, "h"), "Dense_0/bias": ("h",), "BatchNorm_0/scale": ("h",),
         "BatchNorm_0/bias": ("h",), "Dense_1/kernel": ("h", None), "Dense_1/bias": (None,)},
        state={"batch_stats/BatchNorm_0/mean": ("h",), "batch_stats/BatchNorm_0/var": ("h",)})
''')


class Net(nn.Module):  # the same architecture, defined here (a Python user passes the object)
    @nn.compact
    def __call__(self, x, train: bool = False):
        h = nn.BatchNorm(use_running_average=not train, momentum=0.9)(nn.Dense(5)(x))
        return nn.Dense(10)(nn.relu(h))


class Wider(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(10)(nn.relu(nn.Dense(7)(x)))


@pytest.fixture
def net_file(tmp_path):
    path = tmp_path / "net.py"
    path.write_text(NET)
    return path


def test_a_model_file_gives_its_model_source_and_spec(net_file, tmp_path, digits):
    for factory in ("make", "Net"):  # a function of no arguments, or a Linen class
        model = model_files.from_file(f"{net_file}:{factory}")
        assert isinstance(model, ls.models.FlaxModel) and model.name == "Net"
        assert model.source["file"] == str(net_file.resolve()) and model.source["factory"] == factory
        assert len(model.source["sha256"]) == 64
    bound = model.for_data(digits)
    assert bound.stateful and bound.permutation_spec().state
    bad = tmp_path / "bad.py"
    for text, spec, message in [
        ("x = 1\n", "nowhere.py:make", "does not exist"),
        ("x = 1\n", "bad.py", "PATH.py:FACTORY"),
        ("x = 1\n", "bad.py:make", "defines no 'make'"),
        ("raise RuntimeError('boom')\n", "bad.py:make", "running model file .* failed: RuntimeError: boom"),
        ("def make(width):\n    pass\n", "bad.py:make", r"make\(\) in .* failed: TypeError"),
        ("make = 3\n", "bad.py:make", "is a int, not a model"),
        ("def make():\n    return 'cnn'\n", "bad.py:make", "a model must be"),
    ]:
        bad.write_text(text)
        with pytest.raises(ls.ConfigError, match=message):
            model_files.from_file(str(tmp_path / spec))


def test_a_user_model_run_is_saved_and_loaded_only_with_its_model(net_file, digits, tmp_path):
    ens = ls.train_ensemble(model_files.from_file(f"{net_file}:make"), digits, key=jax.random.key(0), seeds=2,
                            loss="cross_entropy", optimizer=ls.OptimizerSpec("sgd", 0.2), steps=4, batch_size=64,
                            log_every=2, execution=ls.Execution(progress=False))
    run = ls.io.save_run(tmp_path / "run", ens)
    meta = ls.io.read_meta(run)["model"]
    assert meta["type"] == "FlaxModel" and meta["source"]["factory"] == "make"
    assert "class Net" not in (run / "meta.json").read_text()  # the code is never stored
    with pytest.raises(ls.ConfigError, match=f"--model-file {net_file.resolve()}:make"):
        ls.io.load_run(run)
    for model in (f"{net_file}:make", Net()):  # the file again, or the object from Python
        back = ls.io.load_run(run, model=model)
        assert_trees_close(back.params, ens.params, rtol=0, atol=0)
        assert_trees_close(back.state, ens.state, rtol=0, atol=0)
        np.testing.assert_allclose(back.model.apply_eval(back.member(1), back.member_state(1), digits.test.x[:5]),
                                   ens.model.apply_eval(ens.member(1), ens.member_state(1), digits.test.x[:5]))
    with pytest.raises(ls.ConfigError, match="does not match this run: its parameters differ"):
        ls.io.load_run(run, model=Wider())
    # comments, docstrings and layout are not code: the run goes on, with the provenance it was trained with
    net_file.write_text(NET.replace('"""Dense -> BatchNorm -> relu -> Dense on the digits\' 64 inputs."""',
                                    '"""The same network, described in other words."""')
                        .replace("def make():", "# a comment\n\ndef make():  # the factory") + "\n# edited\n")
    back = ls.io.load_run(run, model=f"{net_file}:make")
    assert back.model.to_dict() == ens.model.to_dict()
    assert_trees_close(back.params, ens.params, rtol=0, atol=0)
    # a change to what the file computes is refused, with the ways to go on
    net_file.write_text(NET.replace("momentum=0.9", "momentum=0.8"))
    with pytest.raises(ls.ConfigError, match=r"has changed since this run was trained from it: its code differs, not "
                                             r"only its comments, docstrings or layout .*To go on, put back the "
                                             r"version it was trained with .*or train a new run from the changed file"):
        ls.io.load_run(run, model=f"{net_file}:make")
    # a run from before code hashes were recorded is checked byte for byte
    old = ls.io.read_meta(run)
    del old["model"]["source"]["code_sha256"]
    net_file.write_text(NET + "\n# edited\n")
    with pytest.raises(ls.ConfigError, match="its bytes differ .*predates code hashes"):
        model_files.restore(old["model"], f"{net_file}:make")
    net_file.write_text(NET)
    # the spec from the file aligns the user's model: a permuted copy is recovered
    spec = ens.model.permutation_spec()
    perm = {"h": np.array([3, 0, 4, 1, 2])}
    moved, moved_state = ls.permutation.permute(ens.member(0), spec, perm, state=ens.member_state(0))
    aligned, found = ls.permutation.align(ens.member(0), moved, spec=spec)
    assert_trees_close(aligned, ens.member(0), rtol=0, atol=0)
    np.testing.assert_allclose(ens.model.apply_eval(moved, moved_state, digits.test.x),
                               ens.model.apply_eval(ens.member(0), ens.member_state(0), digits.test.x),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # four commands end to end
def test_a_model_file_from_the_command_line(net_file, tmp_path):
    from .clirun import run

    out, spec = tmp_path / "run", f"{net_file}:make"
    r = run("train", "--model-file", spec, "--loss", "cross_entropy", "--lr", "0.2", "--seeds", "3", "--steps", "20",
            "--batch-size", "64", "--log-every", "10", "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    r = run("surface", str(out), "--grid", "5", "--quiet")
    assert r.returncode == 2 and f"--model-file {net_file.resolve()}:make (the file is executed)" in r.stderr
    r = run("info", str(out), "--model-file", spec)
    assert r.returncode == 0 and "Net (user model, inputs (64,)" in r.stdout, r.stderr
    r = run("compare", str(out), "--model-file", spec, "--align", "--grid", "5", "--quiet")
    assert r.returncode == 0, r.stderr
    arrays, meta = ls.io.load_result(out / "results" / "compare")
    assert meta["provenance"]["settings"]["statistics"] == "recompute"
    assert np.all(arrays["aligned_distance"] <= arrays["distance"] + 1e-6)
