"""Shared fixtures: small data sets and models that compile quickly."""

from __future__ import annotations

import os

# Tests run on the CPU with deterministic keys; keep XLA from grabbing every core's worth of threads.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Every `landscape` command a test starts runs in its own process; tests/test_server.py starts
# the servers it talks to.
os.environ["LANDSCAPE_SERVE"] = "0"
# The `landscape` commands the tests start share one compilation cache of this test session's
# own (removed at exit), never the user's: each program is compiled once, by the first command.
if "LANDSCAPE_COMPILE_CACHE" not in os.environ:
    import atexit
    import shutil
    import tempfile

    _cache = tempfile.mkdtemp(prefix="landscape-test-compile-cache-")
    os.environ["LANDSCAPE_COMPILE_CACHE"] = _cache
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)

import jax
import numpy as np
import pytest

import landscape as ls

# The references are float64: compare against exact float32 products, also on a GPU (whose
# JAX default is TF32) or a TPU.  On a CPU this changes nothing.
ls.precision.set_matmul_precision("float32")

#: XLA:CPU computes a member the same whatever the other members of its group; a GPU's fusions
#: and kernels depend on the batch shape, so there "bitwise" becomes float32 round-off.
BITWISE = jax.default_backend() == "cpu"


@pytest.fixture(scope="session")
def blobs():
    """4-class Gaussian blobs in 5 dimensions: 96 train / 40 test points."""
    return ls.data.blobs(num_train=96, num_test=40, num_classes=4, dim=5, seed=3)


@pytest.fixture(scope="session")
def digits():
    return ls.data.load("digits")


@pytest.fixture
def key():
    return jax.random.key(0)


def assert_trees_close(a, b, rtol=1e-5, atol=1e-6):
    la, ta = jax.tree_util.tree_flatten(a)
    lb, tb = jax.tree_util.tree_flatten(b)
    assert ta == tb
    for x, y in zip(la, lb):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


def assert_members_equal(a, b):
    """Bitwise on a CPU (the library's promise there); float32 round-off on an accelerator."""
    if BITWISE:
        assert_trees_equal(a, b)
    else:
        assert_trees_close(a, b, rtol=1e-4, atol=1e-6)


def assert_trees_equal(a, b):
    la, ta = jax.tree_util.tree_flatten(a)
    lb, tb = jax.tree_util.tree_flatten(b)
    assert ta == tb
    for x, y in zip(la, lb):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A CLI-trained run: blobs, 3 seeds x 2 learning rates, snapshots every 2 steps."""
    from .clirun import TINY, run

    out = tmp_path_factory.mktemp("cli") / "run"
    r = run("train", *TINY, "--lr", "0.1,0.3", "--loss", "cross_entropy", "--snapshot-every", "2", "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out, r


def pytest_collection_modifyitems(config, items):
    """The tests that are long by design (those given a timeout of their own) go first: the
    slow suite's workers then share out the short ones around them, instead of one worker
    starting a ten-minute test when the rest is done."""
    items.sort(key=lambda item: item.get_closest_marker("timeout") is None)  # stable: otherwise in order
