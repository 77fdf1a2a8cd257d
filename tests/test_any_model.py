"""A researcher's own model: a Flax Linen module or an (init, apply) pair trains as an ensemble
equal to per-seed loops and gets surfaces and Hessians; what is not supported yet says so."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import landscape as ls

from .conftest import assert_trees_close
from .test_train import reference_member


class TinyCNN(nn.Module):
    """Digits as 8x8x1 images: a 3x3 convolution, 2x2 average pooling, a Dense read-out."""

    @nn.compact
    def __call__(self, x):
        x = x.reshape(x.shape[0], 8, 8, 1)
        x = nn.tanh(nn.Conv(3, (3, 3))(x))
        x = nn.avg_pool(x, (2, 2), (2, 2))
        return nn.Dense(10)(x.reshape(x.shape[0], -1))


class WithBatchNorm(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(10)(nn.BatchNorm(use_running_average=True)(x))


@pytest.fixture(scope="module")
def digits():
    full = ls.data.load("digits")
    return ls.data.from_arrays(full.train.x[:60], full.train.y[:60], full.test.x[:30], full.test.y[:30],
                               num_classes=10, name="digits-60")


@pytest.mark.parametrize("batch_size", [None, 16])
def test_a_linen_cnn_trains_as_an_ensemble_equal_to_per_seed_loops(digits, batch_size):
    spec = ls.OptimizerSpec("sgd", 0.2)
    key = jax.random.key(4)
    ens = ls.train_ensemble(TinyCNN(), digits, key=key, seeds=[0, 5], loss="cross_entropy", optimizer=spec,
                            steps=7, batch_size=batch_size, log_every=7, progress=False)
    assert isinstance(ens.model, ls.models.FlaxModel) and ens.model.in_shape == (64,)
    assert ens.model.num_params() == 3 * 9 + 3 + 48 * 10 + 10
    for i, seed in enumerate([0, 5]):
        ref = reference_member(ens.model, digits, key, seed, spec.build(), "cross_entropy", 7, batch_size)
        assert_trees_close(ens.member(i), ref, rtol=1e-4, atol=1e-5)
    # the history is the model's own loss on the whole training set
    out = TinyCNN().apply({"params": ens.member(1)}, jnp.asarray(digits.train.x))
    assert float(ens.history.train_loss[1, -1]) == pytest.approx(
        float(ls.models.cross_entropy(out, jnp.asarray(digits.train.y))), rel=1e-5)


def test_an_init_apply_pair_trains_and_gets_surfaces_and_hessians(digits):
    def init(key):
        return {"w": 0.1 * jax.random.normal(key, (64, 10)), "b": jnp.zeros(10)}

    def apply(p, x):
        return x @ p["w"] + p["b"]

    spec = ls.OptimizerSpec("sgd", 0.5)
    key = jax.random.key(1)
    ens = ls.train_ensemble((init, apply), digits, key=key, seeds=2, loss="mse", optimizer=spec, steps=5,
                            log_every=5, progress=False)
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
    kw = dict(key=jax.random.key(0), seeds=2, steps=2, progress=False)
    with pytest.raises(ls.ConfigError, match=r"mutable state \(batch_stats\)"):
        ls.train_ensemble(WithBatchNorm(), digits, **kw)
    with pytest.raises(ls.ConfigError, match=r"outputs of shape \(1, 3\).*\(1, 10\) is needed"):
        ls.train_ensemble(nn.Dense(3), digits, **kw)
    with pytest.raises(ls.ConfigError, match="a model must be a landscape.MLP, a flax.linen.Module"):
        ls.train_ensemble("cnn", digits, **kw)
    ens = ls.train_ensemble(TinyCNN(), digits, loss="cross_entropy", **kw)
    with pytest.raises(ls.ConfigError, match="alignment cannot permute Conv_0"):  # never silently half-aligned
        ls.minima.align(ens.member(0), ens.member(1))
    with pytest.raises(ls.ConfigError, match="cannot be saved as a run directory yet"):
        ls.io.save_run(tmp_path / "run", ens)
    assert not (tmp_path / "run").exists()


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
                            optimizer=spec, steps=6, batch_size=20, log_every=3, progress=False)
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

    class WithNorm(nnx.Module):
        def __init__(self, *, rngs):
            self.norm = nnx.BatchNorm(64, rngs=rngs)
            self.out = nnx.Linear(64, 10, rngs=rngs)

        def __call__(self, x):
            return self.out(self.norm(x))

    with pytest.raises(ls.ConfigError, match=r"mutable state \(BatchStat\)"):
        ls.train_ensemble(lambda rngs: WithNorm(rngs=rngs), digits, key=key, seeds=2, steps=2, progress=False)
