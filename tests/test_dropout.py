"""Models with random layers (dropout) train as ensembles: against per-seed loops of Flax's own
``apply(..., rngs=...)`` + optax and of an NNX training loop, written from the documented noise
rule; masks really applied; a member alone equals it inside a sweep; landscapes evaluate in
evaluation mode unless a fixed noise key is asked for."""

import zlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import landscape as ls
from landscape.store import load_result

from .clirun import run as cli
from .conftest import assert_members_equal, assert_trees_close
from .test_train import documented_permutation

RATE = 0.3


class DropNet(nn.Module):
    """A Linen MLP with dropout after its hidden layer (Flax's ``deterministic`` idiom)."""

    rate: float = RATE

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.tanh(nn.Dense(12)(x))
        x = nn.Dropout(self.rate, deterministic=not train)(x)
        return nn.Dense(10)(x)


class TwoStreams(nn.Module):
    """Dropout and a second, user-named stream (Gaussian noise on the inputs)."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        if train:
            x = x + 0.1 * jax.random.normal(self.make_rng("noise"), x.shape)
        x = nn.relu(nn.Dense(8)(x))
        return nn.Dense(10)(nn.Dropout(0.5, deterministic=not train)(x))


def nnx_factory(rngs):
    from flax import nnx

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.hidden = nnx.Linear(64, 12, rngs=rngs)
            self.drop = nnx.Dropout(RATE, rngs=rngs)
            self.out = nnx.Linear(12, 10, rngs=rngs)

        def __call__(self, x):
            return self.out(self.drop(jnp.tanh(self.hidden(x))))

    return Net(rngs)


@pytest.fixture(scope="module")
def digits():
    full = ls.data.load("digits")
    return ls.data.from_arrays(full.train.x[:96], full.train.y[:96], full.test.x[:40], full.test.y[:40],
                               num_classes=10, name="digits-96")


def documented_noise(key, seed, step, name):
    """The README's rule, by hand: fold_in(fold_in(init_key, 2), step), then the stream's crc32."""
    init_key = jax.random.split(jax.random.fold_in(key, seed))[0]
    step_key = jax.random.fold_in(jax.random.fold_in(init_key, 2), step)
    return jax.random.fold_in(step_key, zlib.crc32(name.encode()) % 2**31)


def ce(logits, y):
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def linen_reference(module, data, key, seed, lr, steps, batch_size):
    """One member in Python: Flax's init and apply(rngs=...), optax SGD, the documented keys and orders."""
    init_key, order_key = jax.random.split(jax.random.fold_in(key, seed))
    x, y = np.asarray(data.train.x), np.asarray(data.train.y)
    params = module.init(init_key, x[:1])["params"]
    opt = optax.sgd(lr)
    state = opt.init(params)
    grad = jax.jit(jax.grad(lambda p, xb, yb, k: ce(module.apply({"params": p}, xb, train=True, rngs={"dropout": k}),
                                                     yb)))
    n, spe = x.shape[0], x.shape[0] // batch_size
    for step in range(steps):
        epoch, pos = divmod(step, spe)
        idx = documented_permutation(order_key, epoch, n)[pos * batch_size:(pos + 1) * batch_size]
        g = grad(params, x[idx], y[idx], documented_noise(key, seed, step, "dropout"))
        updates, state = opt.update(g, state, params)
        params = optax.apply_updates(params, updates)
    return params


@pytest.mark.slow  # 9-20 s: the default suite stays near five minutes on 2 cores
def test_a_linen_dropout_net_trains_as_an_ensemble_equal_to_flax_per_seed_loops(digits):
    key, lr, steps, bs = jax.random.key(2), 0.3, 9, 16
    ens = ls.train_ensemble(DropNet(), digits, key=key, seeds=[0, 4], loss="cross_entropy",
                            optimizer=ls.OptimizerSpec("sgd", lr), steps=steps, batch_size=bs, log_every=3,
                            execution=ls.Execution(progress=False))
    assert ens.model.random_streams == ("dropout",)
    assert ens.config["noise"]["streams"] == ["dropout"] and "fold_in" in ens.config["noise"]["rule"]
    for i, seed in enumerate([0, 4]):
        assert_trees_close(ens.member(i), linen_reference(DropNet(), digits, key, seed, lr, steps, bs),
                           rtol=1e-4, atol=1e-5)


@pytest.mark.slow  # ~8 s; the default suite's Linen ensemble-vs-Flax-loops test applies the same masks as Flax's train mode
def test_dropout_really_changes_training_and_evaluation_draws_nothing(digits):
    """The masks are applied: the same net with rate 0 trains elsewhere; evaluation mode is the
    deterministic network (apply == apply_eval, the same at any call)."""
    kw = dict(key=jax.random.key(0), seeds=[1], loss="cross_entropy", optimizer=ls.OptimizerSpec("sgd", 0.3),
              steps=6, batch_size=16, log_every=3, execution=ls.Execution(progress=False))
    with_drop = ls.train_ensemble(DropNet(), digits, **kw)
    without = ls.train_ensemble(DropNet(rate=0.0), digits, **kw)
    assert_trees_close(with_drop.history.train_loss[:, :1], without.history.train_loss[:, :1])  # same start
    diff = np.abs(np.asarray(with_drop.params["Dense_0"]["kernel"]) - np.asarray(without.params["Dense_0"]["kernel"]))
    assert diff.max() > 1e-3
    model, p = with_drop.model, with_drop.member(0)
    x = jnp.asarray(digits.test.x)
    np.testing.assert_array_equal(model.apply(p, x), model.apply_eval(p, {}, x))
    np.testing.assert_array_equal(model.apply(p, x), DropNet().apply({"params": p}, x, train=False))
    masked = model.apply_train(p, {}, x, rng=jax.random.key(5))[0]
    ref = DropNet().apply({"params": p}, x, train=True, rngs={"dropout": ls.models.stream_key(jax.random.key(5),
                                                                                               "dropout")})
    np.testing.assert_allclose(masked, ref, rtol=1e-6)
    # rate 0.3 of the 12 hidden units zeroed: the training-mode pass differs from evaluation
    assert float(jnp.abs(masked - model.apply(p, x)).max()) > 1e-3


@pytest.mark.slow  # 9-20 s: the default suite stays near five minutes on 2 cores
def test_a_member_alone_sees_the_same_masks_as_inside_a_sweep_bitwise(digits):
    kw = dict(key=jax.random.key(0), loss="cross_entropy", optimizer=ls.OptimizerSpec("sgd", 0.3), steps=12,
              batch_size=16, log_every=6, execution=ls.Execution(progress=False))
    alone = ls.train_ensemble(DropNet(), digits, seeds=[3], **kw)
    inside = ls.train_ensemble(DropNet(), digits, seeds=[0, 1, 2, 3, 4], **kw)
    assert_members_equal(ls.tree.take(alone.params, 0), ls.tree.take(inside.params, 3))


def test_every_named_stream_is_found_and_gets_its_own_key(digits):
    model = ls.models.as_model(TwoStreams()).for_data(digits)
    assert model.random_streams == ("dropout", "noise")
    p = model.init(jax.random.key(0))
    x = jnp.asarray(digits.test.x[:6])
    k = jax.random.key(9)
    got = model.apply_train(p, {}, x, rng=k)[0]
    ref = TwoStreams().apply({"params": p}, x, train=True,
                             rngs={"dropout": ls.models.stream_key(k, "dropout"), "noise": ls.models.stream_key(k, "noise")})
    np.testing.assert_allclose(got, ref, rtol=1e-6)
    with pytest.raises(ls.ConfigError, match="noise key"):
        model.apply_train(p, {}, x)


@pytest.mark.slow  # the Linen dropout ensemble against Flax's per-seed loops stays in the default suite
def test_an_nnx_dropout_net_trains_as_an_ensemble_equal_to_an_nnx_loop(digits):
    """NNX's own loop: the module's Dropout stream re-keyed by the documented rule at every step,
    nnx.value_and_grad and an optax SGD step on the nnx.Param state."""
    from flax import nnx

    key, lr, steps, bs = jax.random.key(1), 0.3, 8, 16
    ens = ls.train_ensemble(nnx_factory, digits, key=key, seeds=[2, 5], loss="cross_entropy",
                            optimizer=ls.OptimizerSpec("sgd", lr), steps=steps, batch_size=bs, log_every=4,
                            execution=ls.Execution(progress=False))
    assert ens.model.random_streams == ("drop/rngs/key",)
    x, y = np.asarray(digits.train.x), np.asarray(digits.train.y)
    for i, seed in enumerate([2, 5]):
        init_key, order_key = jax.random.split(jax.random.fold_in(key, seed))
        net = nnx_factory(nnx.Rngs(init_key))
        net.train()
        opt = optax.sgd(lr)
        params = nnx.state(net, nnx.Param)
        opt_state = opt.init(params)
        for step in range(steps):
            epoch, pos = divmod(step, x.shape[0] // bs)
            idx = documented_permutation(order_key, epoch, x.shape[0])[pos * bs:(pos + 1) * bs]
            net.drop.rngs.key.set_value(documented_noise(key, seed, step, "drop/rngs/key"))
            net.drop.rngs.count.set_value(jnp.zeros((), jnp.uint32))
            loss_of = lambda m: ce(m(jnp.asarray(x[idx])), jnp.asarray(y[idx]))  # noqa: E731
            _, grads = nnx.value_and_grad(loss_of)(net)
            updates, opt_state = opt.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            nnx.update(net, params)
        assert_trees_close(ens.member(i), nnx.to_pure_dict(nnx.state(net, nnx.Param)), rtol=1e-4, atol=1e-5)


@pytest.mark.slow  # 9-20 s: the default suite stays near five minutes on 2 cores
def test_a_surface_centre_is_the_evaluation_loss_and_a_noise_key_gives_the_stochastic_one(tmp_path, digits):
    ens = ls.train_ensemble(DropNet(), digits, key=jax.random.key(0), seeds=2, loss="cross_entropy",
                            optimizer=ls.OptimizerSpec("sgd", 0.3), steps=12, batch_size=16, log_every=6,
                            execution=ls.Execution(progress=False))
    model, p = ens.model, ens.member(0)
    fn = ls.models.metrics_fn(model, "cross_entropy")
    dirs = ls.directions.random_directions(jax.random.key(3), p, 2)
    data = (jnp.asarray(digits.train.x), jnp.asarray(digits.train.y))
    surf = ls.surface.plane(fn, p, dirs, num=5, span=0.5, data=data)
    eval_loss = float(ce(DropNet().apply({"params": p}, jnp.asarray(digits.train.x)), jnp.asarray(digits.train.y)))
    np.testing.assert_allclose(surf.values["loss"][2, 2], eval_loss, rtol=1e-5)

    noisy = ls.models.with_noise(model, jax.random.key(11))
    surf2 = ls.surface.plane(ls.models.metrics_fn(noisy, "cross_entropy"), p, dirs, num=5, span=0.5, data=data)
    k = ls.models.stream_key(jax.random.key(11), "dropout")
    train_mode = float(ce(DropNet().apply({"params": p}, jnp.asarray(digits.train.x), train=True,
                                          rngs={"dropout": k}), jnp.asarray(digits.train.y)))
    np.testing.assert_allclose(surf2.values["loss"][2, 2], train_mode, rtol=1e-5)
    assert abs(train_mode - eval_loss) > 1e-4
    with pytest.raises(ls.ConfigError, match="no noise to fix"):
        ls.models.with_noise(ls.MLP(hidden=(3,)).for_data(digits), jax.random.key(0))


MODEL_FILE = '''
import flax.linen as nn


class Net(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.relu(nn.Dense(16)(x))
        x = nn.Dropout(0.2, deterministic=not train)(x)
        return nn.Dense(10)(x)


def model():
    return Net()
'''


@pytest.mark.slow  # 27 s; the default suite's compare --align test trains a dropout model file too
def test_a_model_file_with_dropout_works_end_to_end_on_the_command_line(tmp_path):
    src = tmp_path / "drop.py"
    src.write_text(MODEL_FILE)
    run = tmp_path / "run"
    mf = ["--model-file", f"{src}:model"]
    r = cli("train", *mf, "--dataset", "digits", "--loss", "cross_entropy", "--lr", "0.2", "--seeds", "2",
            "--steps", "30", "--batch-size", "32", "--out", str(run), "--quiet")
    assert r.returncode == 0, r.stderr
    saved = ls.load_run(run, model=ls.models.from_file(f"{src}:model"))
    assert saved.config["noise"]["streams"] == ["dropout"]
    r = cli("surface", str(run), *mf, "--grid", "3", "--quiet")
    assert r.returncode == 0, r.stderr
    r = cli("surface", str(run), *mf, "--grid", "3", "--noise-key", "4", "--quiet")
    assert r.returncode == 0, r.stderr
    plain, plain_meta = load_result(run / "results" / "plane_seed0_random_filter_g3_s1.npz")
    noisy, noisy_meta = load_result(run / "results" / "plane_seed0_random_filter_g3_s1_noise4.npz")
    assert "noise" not in plain_meta["provenance"]["settings"]
    assert noisy_meta["provenance"]["settings"]["noise"] == 4
    assert not np.allclose(plain["value/train_loss"], noisy["value/train_loss"])
    r = cli("hessian", str(run), *mf, "--noise-key", "1", "--quiet")
    assert r.returncode == 0, r.stderr
    r = cli("surface", str(run), "--grid", "3", "--noise-key", "4", "--quiet")  # the model file is needed
    assert r.returncode != 0
    mlp = tmp_path / "mlp"
    assert cli("train", "--dataset", "blobs", "--hidden", "3", "--steps", "5", "--seeds", "1", "--out", str(mlp),
               "--quiet").returncode == 0
    r = cli("surface", str(mlp), "--grid", "3", "--noise-key", "1", "--quiet")
    assert r.returncode != 0 and "has none" in r.stderr and len(r.stderr.strip().splitlines()) == 1
