"""A researcher's own model: a Flax Linen module or an (init, apply) pair trains as an ensemble
equal to per-seed loops and gets surfaces and Hessians; what is not supported yet says so.
Models with BatchNorm state: tests/test_batchnorm.py."""

import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import landscape as ls

from .conftest import BITWISE, assert_members_equal, assert_trees_close
from .test_train import reference_member


class TinyCNN(nn.Module):
    """Digits as 8x8x1 images: a 3x3 convolution, 2x2 average pooling, a Dense read-out."""

    @nn.compact
    def __call__(self, x):
        x = x.reshape(x.shape[0], 8, 8, 1)
        x = nn.tanh(nn.Conv(3, (3, 3))(x))
        x = nn.avg_pool(x, (2, 2), (2, 2))
        return nn.Dense(10)(x.reshape(x.shape[0], -1))


@pytest.fixture(scope="module")
def digits():
    full = ls.data.load("digits")
    return ls.data.from_arrays(full.train.x[:60].reshape(-1, 8, 8, 1), full.train.y[:60],
                               full.test.x[:30].reshape(-1, 8, 8, 1), full.test.y[:30], num_classes=10,
                               name="digits-60")


@pytest.mark.parametrize("batch_size", [pytest.param(None, marks=pytest.mark.slow), 16])
def test_a_linen_cnn_trains_as_an_ensemble_equal_to_per_seed_loops(digits, batch_size):
    spec = ls.OptimizerSpec("sgd", 0.2)
    key = jax.random.key(4)
    ens = ls.train_ensemble(TinyCNN(), digits, key=key, seeds=[0, 5], loss="cross_entropy", optimizer=spec,
                            steps=7, batch_size=batch_size, log_every=7, execution=ls.Execution(progress=False))
    assert isinstance(ens.model, ls.models.FlaxModel) and ens.model.in_shape == (64,)
    assert ens.model.num_params() == 3 * 9 + 3 + 48 * 10 + 10
    for i, seed in enumerate([0, 5]):
        ref = reference_member(ens.model, digits, key, seed, spec.build(), "cross_entropy", 7, batch_size)
        assert_trees_close(ens.member(i), ref, rtol=1e-4, atol=1e-5)
    # the history is the model's own loss on the whole training set
    out = TinyCNN().apply({"params": ens.member(1)}, jnp.asarray(digits.train.x))
    assert float(ens.history.train_loss[1, -1]) == pytest.approx(
        float(ls.models.cross_entropy(out, jnp.asarray(digits.train.y))), rel=1e-5)


def test_a_convolutional_member_is_bitwise_the_same_alone_and_in_a_sweep(digits):
    """On a CPU a convolutional model trains one member per group, its step unbatched and the
    members evaluated one after another: a member's parameters and its whole history are
    bitwise the same alone and inside a sweep split over concurrent calls."""
    kw = dict(key=jax.random.key(2), loss="cross_entropy", optimizer=ls.OptimizerSpec("sgd", 0.3), steps=6,
              log_every=3, execution=ls.Execution(progress=False))
    sweep = ls.train_ensemble(TinyCNN(), digits, seeds=5, **kw)
    alone = ls.train_ensemble(TinyCNN(), digits, seeds=[3], **kw)
    if jax.default_backend() == "cpu":
        assert sweep.timings["concurrent_calls"] == min(5, len(os.sched_getaffinity(0)))
    assert_members_equal(jax.tree.map(lambda a: a[3:4], sweep.params), alone.params)
    for name in ("train_loss", "train_accuracy", "test_loss", "test_accuracy"):
        np.testing.assert_allclose(getattr(sweep.history, name)[3:4], getattr(alone.history, name),
                                   rtol=0 if BITWISE else 1e-5)
    assert sweep.history.train_loss[3, -1] < sweep.history.train_loss[3, 0]


@pytest.mark.slow  # a third compiled training program; the CNN tests keep the path in the fast suite
def test_an_init_apply_pair_trains_and_gets_surfaces_and_hessians(digits):
    def init(key):
        return {"w": 0.1 * jax.random.normal(key, (64, 10)), "b": jnp.zeros(10)}

    def apply(p, x):
        return x @ p["w"] + p["b"]

    spec = ls.OptimizerSpec("sgd", 0.5)
    key = jax.random.key(1)
    ens = ls.train_ensemble((init, apply), digits, key=key, seeds=2, loss="mse", optimizer=spec, steps=5,
                            log_every=5, execution=ls.Execution(progress=False))
    ref = reference_member(ens.model, digits, key, 1, spec.build(), "mse", 5, None)
    assert_trees_close(ens.member(1), ref, rtol=1e-5, atol=1e-6)
    # a plane of the user's model: every point its own loss, evaluated independently here
    theta = ens.member(0)
    d1, d2 = ls.directions.random_directions(jax.random.key(2), theta, 2, norm="filter")
    fn = ls.models.metrics_fn(ens.model, "mse")
    plane = ls.surface.plane(fn, theta, [d1, d2], span=1.0, num=3, data={"train": (digits.train.x, digits.train.y)})
    at = jax.tree.map(lambda c, u, v: c + 1.0 * u - 1.0 * v, theta, d1, d2)
    want = ls.models.mse(apply(at, jnp.asarray(digits.train.x)), jnp.asarray(digits.train.y))
    assert float(plane.values["train_loss"][2, 0]) == pytest.approx(float(want), rel=1e-5)
    # its Hessian against a dense one: the MSE of a linear model has a constant Hessian
    loss = ls.models.loss_fn(ens.model, digits.train, "mse")
    dense = np.linalg.eigvalsh(np.asarray(ls.hessian.dense_hessian(loss, theta), np.float64))
    top = ls.hessian.top_eigenvalues(loss, theta, 2, key=jax.random.key(3), num_iters=60)
    np.testing.assert_allclose(top, dense[::-1][:2], rtol=1e-3)


def test_what_is_not_supported_yet_is_a_clear_error(digits, tmp_path):
    kw = dict(key=jax.random.key(0), seeds=2, steps=2, execution=ls.Execution(progress=False))
    with pytest.raises(ls.ConfigError, match=r"outputs of shape \(1, 3\).*\(1, 10\) is needed"):
        ls.train_ensemble(nn.Dense(3), digits, **kw)
    with pytest.raises(ls.ConfigError, match="a model must be a landscape.MLP, a flax.linen.Module"):
        ls.train_ensemble("cnn", digits, **kw)
    ens = ls.train_ensemble(TinyCNN(), digits, loss="cross_entropy", **kw)
    inferred = ens.model.permutation_spec()  # read from the traced model (tests/test_spec_inference.py)
    assert inferred.views == {"Dense_0/kernel": (16, 3, 10)} and inferred.axes["Conv_0/bias"] == ("Conv_0",)
    half = ls.permutation.PermutationSpec({"Dense_0/kernel": (None, None), "Dense_0/bias": (None,)})
    with pytest.raises(ls.ConfigError, match="alignment cannot permute Conv_0/bias, Conv_0/kernel"):
        ls.permutation.align(ens.member(0), ens.member(1), spec=half)  # never silently half-aligned
    # with the user's full spec (the read-out's rows are the 4x4 map's channels) it aligns exactly
    spec = ls.permutation.PermutationSpec({"Conv_0/kernel": (None, None, None, "c"), "Conv_0/bias": ("c",),
                                      "Dense_0/kernel": (None, "c", None), "Dense_0/bias": (None,)},
                                     views={"Dense_0/kernel": (16, 3, 10)})
    moved = ls.permutation.permute(ens.member(0), spec, {"c": np.array([2, 0, 1])})
    np.testing.assert_allclose(ens.model.apply(moved, digits.test.x), ens.model.apply(ens.member(0), digits.test.x),
                               rtol=1e-5, atol=1e-6)
    assert_trees_close(ls.permutation.align(ens.member(0), moved, spec=spec)[0], ens.member(0), rtol=0, atol=0)
    # its run directory needs the model again to be read (tests/test_model_files.py)
    ls.io.save_run(tmp_path / "run", ens)
    with pytest.raises(ls.ConfigError, match=r"this run holds a user model \(TinyCNN\): pass it again"):
        ls.io.load_run(tmp_path / "run")


def test_an_nnx_model_from_its_factory_trains_as_an_ensemble(digits):
    from flax import nnx

    class Net(nnx.Module):
        def __init__(self, *, rngs):
            self.hidden = nnx.Linear(64, 6, rngs=rngs)
            self.out = nnx.Linear(6, 10, rngs=rngs)

        def __call__(self, x):
            return self.out(jnp.tanh(self.hidden(x)))

    spec = ls.OptimizerSpec("momentum", 0.1)
    key = jax.random.key(2)
    ens = ls.train_ensemble(lambda rngs: Net(rngs=rngs), digits, key=key, seeds=[1, 4], loss="mse",
                            optimizer=spec, steps=6, batch_size=20, log_every=3, execution=ls.Execution(progress=False))
    p = ens.member(0)
    assert jax.tree.map(jnp.shape, p) == {"hidden": {"kernel": (64, 6), "bias": (6,)},
                                          "out": {"kernel": (6, 10), "bias": (10,)}}
    # the NNX module's own forward pass written out by hand from the plain parameters
    x = jnp.asarray(digits.train.x)
    by_hand = jnp.tanh(x @ p["hidden"]["kernel"] + p["hidden"]["bias"]) @ p["out"]["kernel"] + p["out"]["bias"]
    np.testing.assert_allclose(ens.model.apply(p, x), by_hand, rtol=1e-5, atol=1e-6)
    ref = reference_member(ens.model, digits, key, 4, spec.build(), "mse", 6, 20)
    assert_trees_close(ens.member(1), ref, rtol=1e-4, atol=1e-5)
    # each seed starts from NNX's own initialisation with that seed's key
    assert not np.allclose(ens.member(0)["hidden"]["kernel"], ens.member(1)["hidden"]["kernel"])

    # the user's own permutation structure aligns it: a permuted copy is the same function, recovered
    spec = ls.permutation.PermutationSpec({"hidden/kernel": (None, "h"), "hidden/bias": ("h",),
                                      "out/kernel": ("h", None), "out/bias": (None,)})
    moved = ls.permutation.permute(p, spec, {"h": np.array([5, 3, 1, 0, 2, 4])})
    np.testing.assert_allclose(ens.model.apply(moved, x), ens.model.apply(p, x), rtol=1e-5, atol=1e-6)
    aligned, found = ls.permutation.align(p, moved, spec=spec)
    assert_trees_close(aligned, p, rtol=0, atol=0)
    # NNX models with BatchNorm: tests/test_batchnorm.py


# ---------------------------------------------------------------------- the built-in CNN


@pytest.mark.slow  # kept out of the default suite's 5 minutes; CI runs it with -m slow
def test_the_builtin_cnn_trains_saves_and_loads(digits, tmp_path):
    model = ls.models.CNN(channels=(3, 4), activation="tanh", output_activation="identity")
    spec = ls.OptimizerSpec("sgd", 0.3)
    key = jax.random.key(6)
    ens = ls.train_ensemble(model, digits, key=key, seeds=[2, 9], loss="cross_entropy", optimizer=spec, steps=5,
                            batch_size=20, log_every=5, execution=ls.Execution(progress=False))
    bound = ens.model
    assert bound.image_shape == (8, 8, 1) and bound.in_features == 64
    # the shapes computed from the configuration are Flax's own
    flax_shapes = {k: tuple(v.shape) for k, v in ls.tree.flatten_with_paths(bound.init(jax.random.key(0))).items()}
    assert flax_shapes == bound.param_shapes() == {
        "Conv_0/kernel": (3, 3, 1, 3), "Conv_0/bias": (3,), "Conv_1/kernel": (3, 3, 3, 4), "Conv_1/bias": (4,),
        "Dense_0/kernel": (2 * 2 * 4, 10), "Dense_0/bias": (10,)}
    assert bound.activation_width() == 8 * 8 * 3 + 4 * 4 * 4 + 4 * 4 * 3 + 2 * 2 * 4 + 10
    ref = reference_member(bound, digits, key, 9, spec.build(), "cross_entropy", 5, 20)
    assert_trees_close(ens.member(1), ref, rtol=1e-4, atol=1e-5)
    # on a CPU convolutional members run one per group: a member alone is bitwise the one in the sweep
    assert ls.models.convolutional(bound) and not ls.models.convolutional(ls.MLP(output_activation="identity").for_data(digits))
    alone = ls.train_ensemble(model, digits, key=key, seeds=[9], loss="cross_entropy", optimizer=spec, steps=5,
                              batch_size=20, log_every=5, execution=ls.Execution(progress=False))
    assert_members_equal(alone.member(0), ens.member(1))
    ls.io.save_run(tmp_path / "run", ens)
    back = ls.io.load_run(tmp_path / "run")
    assert back.model == bound and back.model.describe().startswith("CNN 8x8x1 conv 3-4 (3x3, tanh")
    assert_trees_close(back.params, ens.params, rtol=0, atol=0)
    with pytest.raises(ls.ConfigError, match="a CNN needs images"):
        ls.train_ensemble(model, ls.data.blobs(num_train=20, num_test=5), key=key, seeds=1, steps=1, execution=ls.Execution(progress=False))


def test_image_arrays_keep_their_shape_for_convolutions():
    rng = np.random.default_rng(0)
    d = ls.data.from_arrays(rng.random((6, 5, 4)), np.arange(6) % 2, rng.random((3, 5, 4)), np.arange(3) % 2)
    assert d.train.x.shape == (6, 20) and d.image_shape == (5, 4, 1)
    assert ls.data.load("digits").image_shape == (8, 8, 1) and ls.data.blobs().image_shape is None
    with pytest.raises(ls.DataError, match="does not hold the 20 inputs"):
        ls.data.Dataset("bad", d.train, d.test, 2, image_shape=(3, 3, 1))


@pytest.mark.slow  # four commands end to end
def test_a_cnn_run_from_the_command_line(tmp_path):
    from .clirun import run

    out = tmp_path / "cnn"
    r = run("train", "--model", "cnn", "--channels", "3,4", "--activation", "relu", "--loss", "cross_entropy",
            "--lr", "0.3", "--seeds", "3", "--steps", "30", "--log-every", "10", "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    r = run("info", str(out))
    assert r.returncode == 0 and "CNN 8x8x1 conv 3-4 (3x3, relu" in r.stdout, r.stderr
    r = run("surface", str(out), "--seed", "1", "--grid", "5", "--quiet")
    assert r.returncode == 0, r.stderr
    r = run("hessian", str(out), "--top", "1", "--probes", "3", "--per-layer", "--quiet")
    assert r.returncode == 0 and "layer Conv_1: top eigenvalue" in r.stdout, r.stderr
    r = run("compare", str(out), "--align", "--grid", "5", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "aligned_barrier" in ls.io.load_result(out / "results" / "compare")[0]
    ens = ls.io.load_run(out)
    arrays, _ = ls.io.load_result(out / "results" / "hessian")
    loss = ls.models.loss_fn(ens.model, ls.analyses.run_dataset(ens).train, "cross_entropy")
    dense = np.linalg.eigvalsh(np.asarray(ls.hessian.dense_hessian(loss, ens.member(2)), np.float64))
    assert float(arrays["top"][2, 0]) == pytest.approx(dense[-1], rel=1e-3)
