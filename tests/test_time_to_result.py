"""Time to result: the persistent compilation cache, lazy imports and the --timings split.

Nothing here measures speed (the benchmark's ``ttr`` section does); these tests check that the
cache is used, is where the documentation says, can be turned off and cleared, and that
programs loaded from it compute exactly what freshly compiled ones do.
"""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

import landscape as ls
from landscape import compilation_cache as cc
from landscape.core import files
from landscape.core.timing import COMPILE_EVENTS, Timings

from .clirun import TINY, run


@pytest.mark.parametrize("env, expected", [
    ({"LANDSCAPE_COMPILE_CACHE": "/x/y"}, "/x/y"),
    ({"LANDSCAPE_COMPILE_CACHE": "~/c"}, os.path.expanduser("~/c")),
    ({"LANDSCAPE_COMPILE_CACHE": "0"}, None),
    ({"LANDSCAPE_COMPILE_CACHE": "off"}, None),
    ({"LANDSCAPE_COMPILE_CACHE": "False"}, None),
    ({"LANDSCAPE_COMPILE_CACHE": "  "}, None),
    ({"XDG_CACHE_HOME": "/xdg"}, "/xdg/landscape/jax"),
    ({"LANDSCAPE_COMPILE_CACHE": "/a", "XDG_CACHE_HOME": "/xdg"}, "/a"),
])
def test_cache_dir_rules(env, expected):
    got = cc.cache_dir(env)
    assert (None if got is None else str(got)) == expected


def test_default_cache_dir_is_the_user_cache_directory():
    import platformdirs

    got = cc.cache_dir({"HOME": "/home/u"})
    assert got == cc.Path(platformdirs.user_cache_dir("landscape", appauthor=False)) / "jax"


def test_usage_and_clear(tmp_path):
    (tmp_path / "jit_f-abc-cache").write_bytes(b"x" * 100)
    (tmp_path / "jit_f-abc-atime").write_bytes(b"t" * 8)
    (tmp_path / ".lockfile").write_bytes(b"")
    assert cc.usage(tmp_path) == {"path": str(tmp_path), "programs": 1, "bytes": 108}
    assert cc.clear(tmp_path) == 108
    assert list(tmp_path.iterdir()) == [] and tmp_path.is_dir()
    assert cc.usage(tmp_path / "missing")["programs"] == 0 and cc.clear(tmp_path / "missing") == 0


def test_unwritable_cache_is_one_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ls.ConfigError, match="cannot create the compilation cache"):
        cc.enable(blocker / "sub")


@pytest.mark.slow  # kept out of the default suite's 5 minutes; CI runs it with -m slow
def test_unwritable_cache_is_a_warning_and_the_command_still_runs(tmp_path, trained):
    blocker = tmp_path / "file"
    blocker.write_text("")
    out, _ = trained
    r = run("info", str(out), env=_env(blocker / "sub"))
    assert r.returncode == 0 and r.stderr == ""  # info compiles nothing: no cache, no warning
    r = run("surface", str(out), "--seed", "1", "--grid", "3", "--lr", "0.1", "--no-plot", "--quiet", "--name", "nocache",
            env=_env(blocker / "sub"))
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if "compilation cache" in line]
    assert len(warnings) == 1 and "warning: cannot create the compilation cache" in warnings[0]
    assert "running without it" in r.stderr and "result:" in r.stdout


def _env(cache) -> dict:
    return {**os.environ, "LANDSCAPE_COMPILE_CACHE": str(cache)}


@pytest.mark.slow  # three processes; the cache directory rules, usage and clear stay in the default suite
def test_commands_fill_the_cache_and_cached_programs_compute_the_same(tmp_path):
    """A second process loads the first one's programs (JAX reports hits) and its run is
    bitwise identical to one compiled without the cache."""
    cache = tmp_path / "cache"
    argv = ["train", *TINY, "--batch-size", "16", "--no-plot"]
    r = run(*argv, "--out", str(tmp_path / "a"), env=_env(cache))
    assert r.returncode == 0, r.stderr
    assert cc.usage(cache)["programs"] > 0
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import sys, jax.monitoring as m\n"
        "hits = []\n"
        "m.register_event_listener(lambda e, **k: hits.append(e) if e.endswith('cache_hits') else None)\n"
        "from landscape.cli import main\n"
        "status = main(sys.argv[1:])\n"
        "print('HITS', len(hits))\n"
        "sys.exit(status)\n")
    r = subprocess.run([sys.executable, str(probe), *argv, "--out", str(tmp_path / "b")], capture_output=True,
                       text=True, env=_env(cache), stdin=subprocess.DEVNULL, timeout=300)
    assert r.returncode == 0, r.stderr
    assert int(r.stdout.split("HITS")[1]) > 0
    r = run(*argv, "--out", str(tmp_path / "c"), "--no-compile-cache", env=_env(tmp_path / "unused"))
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "unused").exists()
    for f in ("params.npz", "history.npz"):
        a, b, c = (files.load_npz(tmp_path / d / f) for d in "abc")
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
            np.testing.assert_array_equal(a[k], c[k])


def test_cache_command_shows_and_clears(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "jit_g-1-cache").write_bytes(b"y" * 2048)
    r = run("cache", env=_env(cache))
    assert r.returncode == 0 and str(cache) in r.stdout and "1 compiled programs" in r.stdout
    r = run("cache", "--clear", env=_env(cache))
    assert r.returncode == 0 and "cleared" in r.stdout and not any(cache.iterdir())
    r = run("cache", env=_env("off"))
    assert r.returncode == 0 and "turned off" in r.stdout


def test_timings_file_splits_the_command(tmp_path, trained):
    out, _ = trained
    t = tmp_path / "t.json"
    r = run("surface", str(out), "--seed", "0", "--grid", "5", "--lr", "0.1", "--timings", str(t),
            "--name", "ttr_probe")
    assert r.returncode == 0, r.stderr
    rep = json.loads(t.read_text())
    parts = ("startup_s", "load_s", "compile_s", "compute_s", "figure_s")
    assert all(rep[k] >= 0 for k in parts) and rep["figure_s"] > 0 and rep["compile_s"] > 0
    assert sum(rep[k] for k in parts) == pytest.approx(rep["total_s"], abs=1e-6)


def test_timings_take_compilation_out_of_the_phase_it_happened_in():
    clock = Timings()
    clock.begin_command()
    clock.listen_to_jax()
    try:
        with clock.phase("load"):
            jax.monitoring.record_event_duration_secs(COMPILE_EVENTS[2], 0.25)
            jax.monitoring.record_event_duration_secs("/jax/some/other_event", 9.0)
    finally:
        clock.close()
    rep = clock.report()
    assert rep["compile_s"] == 0.25
    assert rep["load_s"] == clock.phases["load"]
    jax.monitoring.record_event_duration_secs(COMPILE_EVENTS[0], 1.0)  # no longer listening
    assert clock.compile_s == 0.25


def test_import_and_help_load_no_jax():
    code = ("import sys, landscape; from landscape.cli import build_parser; build_parser().format_help(); "
            "landscape.ConfigError; landscape.__version__; "
            "bad = [m for m in ('jax', 'flax', 'optax', 'matplotlib', 'sklearn') if m in sys.modules]; "
            "assert not bad, bad")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def _lowerings(fn) -> int:
    """How many programs ``fn()`` traces and lowers, starting from empty in-memory caches (as a
    new process does: the persistent cache saves the XLA compilation, never the lowering)."""
    jax.clear_caches()
    count = []

    def on_event(event, duration, **_):
        if event == "/jax/core/compile/jaxpr_to_mlir_module_duration":
            count.append(event)

    jax.monitoring.register_event_duration_secs_listener(on_event)
    try:
        fn()
    finally:
        jax.monitoring.unregister_event_duration_listener(on_event)
    return len(count)


def _digits_mlp(hidden):
    data = ls.data.load("blobs")
    model = ls.models.MLP(hidden=hidden, activation="tanh", output_activation="identity").for_data(data)
    return data, model


def test_a_surface_compiles_the_same_programs_however_many_layers():
    """No program per leaf: a plane through three points of a 1-layer and a 4-layer network
    lowers the same number of programs (8; it was 22 and 25 when every leaf was transferred
    and given a member axis by a small program of its own, one per shape)."""
    counts = []
    for hidden in ((4,), (4, 4, 4, 4)):
        data, model = _digits_mlp(hidden)
        points = [model.init(jax.random.key(i)) for i in range(3)]
        points = [jax.tree_util.tree_map(np.asarray, p) for p in points]  # as loaded from a run
        fn = ls.models.metrics_fn(model, "mse")
        batches = {"train": (data.train.x, data.train.y)}
        counts.append(_lowerings(lambda: ls.surface.three_point(fn, *points, num=3, data=batches)))
    assert counts[0] == counts[1]


def test_member_matrices_and_trajectory_pca_compile_nothing():
    _, model = _digits_mlp((4, 4))
    stacked = jax.vmap(model.init)(jax.random.split(jax.random.key(0), 5))
    assert _lowerings(lambda: (ls.minima.distance_matrix(stacked), ls.minima.cosine_matrix(stacked),
                               ls.directions.trajectory_pca(stacked))) == 0
