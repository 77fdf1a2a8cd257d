"""Ensemble training against per-seed Python loops written from the documented rules."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from landscape.errors import ConfigError

import landscape as ls
from landscape.core import compile_options
from landscape.training import engine, memory, orders

from .conftest import assert_members_equal, assert_trees_close, assert_trees_equal

LOSS = {"mse": ls.models.mse, "cross_entropy": ls.models.cross_entropy}


def documented_permutation(order_key, epoch, n):
    """The README's data order: NumPy's generator seeded with the order key's words and the epoch."""
    words = [int(w) for w in np.asarray(jax.random.key_data(order_key)).ravel()]
    return np.random.default_rng(words + [epoch]).permutation(n)


def reference_member(model, data, key, seed, opt, loss, steps, batch_size):
    """One member trained step by step in Python: keys, epoch permutations and updates by hand."""
    k = jax.random.fold_in(key, seed)
    init_key, order_key = jax.random.split(k)
    params = model.init(init_key)
    state = opt.init(params)
    x, y = np.asarray(data.train.x), np.asarray(data.train.y)
    n = x.shape[0]
    f = LOSS[loss]
    grad = jax.jit(jax.grad(lambda p, xb, yb: f(model.apply(p, xb), yb)))
    for step in range(steps):
        if batch_size:
            spe = n // batch_size
            epoch, pos = divmod(step, spe)
            perm = documented_permutation(order_key, epoch, n)
            idx = perm[pos * batch_size : (pos + 1) * batch_size]
        else:
            idx = np.arange(n)
        g = grad(params, x[idx], y[idx])
        updates, state = opt.update(g, state, params)
        params = optax.apply_updates(params, updates)
    return params


@pytest.mark.parametrize(
    "loss, opt_name, batch_size",
    [("mse", "sgd", None), ("cross_entropy", "adam", 20),
     # two more optimizer/batch combinations in the slow suite (the default suite stays under 5 minutes)
     pytest.param("cross_entropy", "sgd", 32, marks=pytest.mark.slow),
     pytest.param("mse", "momentum", 48, marks=pytest.mark.slow)],
)
def test_ensemble_equals_per_seed_loop(blobs, key, loss, opt_name, batch_size):
    model = ls.MLP(hidden=(6, 5), activation="tanh", output_activation="identity").for_data(blobs)
    spec = ls.OptimizerSpec(opt_name, {"adam": 0.05, "momentum": 0.05}.get(opt_name, 0.5))
    steps = 13  # not a multiple of the epoch length: crosses epoch boundaries mid-chunk
    ens = ls.train_ensemble(model, blobs, key=key, seeds=[0, 3, 7], optimizer=spec, loss=loss, steps=steps,
                            batch_size=batch_size, log_every=3, execution=ls.Execution(min_calls=2, progress=False))
    for i, seed in enumerate([0, 3, 7]):
        ref = reference_member(model, blobs, key, seed, spec.build(), loss, steps, batch_size)
        assert_trees_close(ens.member(i), ref, rtol=1e-4, atol=1e-5)


@pytest.mark.slow  # test_store's bitwise any-sweep test covers the same promise in the default suite
def test_seed_alone_equals_seed_inside_256_sweep(blobs, key):
    model = ls.MLP(hidden=(5,), activation="sigmoid", output_activation="sigmoid")
    kw = dict(key=key, optimizer=ls.OptimizerSpec("sgd", 0.5), loss="mse", steps=40, batch_size=16,
              log_every=10, execution=ls.Execution(progress=False))
    sweep = ls.train_ensemble(model, blobs, seeds=256, **kw)
    for seed in (0, 97, 255):
        alone = ls.train_ensemble(model, blobs, seeds=[seed], **kw)
        assert_trees_close(alone.member(0), sweep.member(seed), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(alone.history.train_loss[0], sweep.history.train_loss[seed], rtol=1e-5)


@pytest.mark.parametrize("batch_size", [pytest.param(None, marks=pytest.mark.slow), 16])
def test_members_split_over_concurrent_calls_give_the_numbers_of_one_call(blobs, key, monkeypatch, batch_size):
    """Whole groups split over calls run from threads (the CPU default) change no parameter:
    parameters, snapshots and divergence bitwise one call's, with a padded last group and a
    diverging rate."""
    model = ls.MLP(hidden=(5,), activation="relu", kernel_init="normal", output_activation="identity")
    kw = dict(key=key, seeds=11, learning_rates=[0.5, 1e38], optimizer=ls.OptimizerSpec("sgd", 1.0),
              loss="cross_entropy", steps=12, batch_size=batch_size, log_every=6, snapshot_every=6,
              execution=ls.Execution(progress=False))
    runs = []
    for calls, side in ((1, 2), (2, 8), (3, 1)):  # 22 members: 3 groups of 8, the last padded
        lay = memory.Layout(memory.GROUP, side_by_side=side, calls=calls)
        monkeypatch.setattr(engine, "layout", lambda num_devices, model=None, lay=lay: lay)
        runs.append(ls.train_ensemble(model, blobs, **kw))
    assert [r.timings["concurrent_calls"] for r in runs] == [1, 2, 3]
    one = runs[0]
    assert one.diverged.any() and not one.diverged.all()
    for other in runs[1:]:
        assert_members_equal(one.params, other.params)
        assert_members_equal(one.trajectory.params, other.trajectory.params)
        np.testing.assert_array_equal(one.diverged_step, other.diverged_step)
        # the history is evaluated over each call's members at once: rounding, as alone vs in a sweep
        np.testing.assert_allclose(one.history.train_loss, other.history.train_loss, rtol=1e-5, atol=1e-7)


def test_training_is_deterministic_and_chunking_invisible(blobs, key):
    model = ls.MLP(hidden=(6,), activation="relu", output_activation="identity")
    kw = dict(key=key, seeds=4, loss="cross_entropy", steps=30, batch_size=10, log_every=5)
    a = ls.train_ensemble(model, blobs, execution=ls.Execution(min_calls=1), **kw)
    b = ls.train_ensemble(model, blobs, execution=ls.Execution(min_calls=1), **kw)
    c = ls.train_ensemble(model, blobs, execution=ls.Execution(min_calls=6), **kw)
    assert_trees_equal(a.params, b.params)
    np.testing.assert_array_equal(a.history.train_loss, b.history.train_loss)
    assert_trees_close(a.params, c.params, rtol=1e-6, atol=1e-7)
    other = ls.train_ensemble(model, blobs, execution=ls.Execution(min_calls=1), **{**kw, "key": jax.random.key(1)})
    assert not np.allclose(a.params["Dense_0"]["kernel"], other.params["Dense_0"]["kernel"])


def test_epoch_order_is_one_permutation_per_epoch(blobs, key):
    """Each example is used at most once per epoch: training on a per-example loss reveals the batches."""
    n, b = 96, 32
    # a "model" whose gradient with respect to a per-example weight is 1 for every example in the batch
    x = np.eye(n, dtype=np.float32)
    y = np.zeros(n, np.int32)
    data = ls.data.from_arrays(x, y, x[:2], y[:2], num_classes=2)
    model = ls.MLP(hidden=(), activation="sigmoid", kernel_init="normal", output_activation="identity")
    ens = ls.train_ensemble(model, data, key=key, seeds=[5], optimizer=ls.OptimizerSpec("sgd", 1.0),
                            loss="cross_entropy", steps=3, batch_size=b, log_every=1, snapshot_every=1,
                            execution=ls.Execution(progress=False))
    kernels = np.asarray(ens.trajectory.params["Dense_0"]["kernel"][0])  # (K, n, 2)
    touched = [np.flatnonzero(np.any(kernels[s + 1] != kernels[s], axis=1)) for s in range(3)]
    assert all(t.size == b for t in touched)
    assert np.unique(np.concatenate(touched)).size == n  # the three batches partition the epoch
    # and they are the documented permutation of this member's order key
    _, order_key = jax.random.split(jax.random.fold_in(key, 5))
    perm = documented_permutation(order_key, 0, n)
    for s in range(3):
        np.testing.assert_array_equal(np.sort(perm[s * b : (s + 1) * b]), touched[s])


def test_learning_rate_sweep_equals_single_runs(blobs, key):
    model = ls.MLP(hidden=(4,), activation="tanh", output_activation="identity")
    kw = dict(key=key, loss="mse", steps=12, log_every=4, execution=ls.Execution(progress=False))
    grid = ls.train_ensemble(model, blobs, seeds=[1, 2], optimizer=ls.OptimizerSpec("sgd"),
                             learning_rates=[0.1, 0.7], **kw)
    assert grid.num_members == 4
    np.testing.assert_array_equal(grid.seeds, [1, 1, 2, 2])
    np.testing.assert_allclose(grid.learning_rates, [0.1, 0.7, 0.1, 0.7])
    for i in range(4):
        single = ls.train_ensemble(model, blobs, seeds=[int(grid.seeds[i])],
                                   optimizer=ls.OptimizerSpec("sgd", float(grid.learning_rates[i])), **kw)
        assert_trees_close(single.member(0), grid.member(i), rtol=1e-5, atol=1e-6)
    factory = ls.train_ensemble(model, blobs, seeds=[1, 2], optimizer=lambda lr: optax.sgd(lr),
                                learning_rates=[0.1, 0.7], **kw)
    assert_trees_close(factory.params, grid.params, rtol=1e-6, atol=1e-7)


def test_divergence_is_flagged_frozen_and_isolated(blobs, key):
    model = ls.MLP(hidden=(8,), activation="relu", kernel_init="normal", output_activation="identity")
    kw = dict(key=key, seeds=[0, 1], loss="cross_entropy", steps=20, log_every=5, execution=ls.Execution(progress=False),
              optimizer=ls.OptimizerSpec("sgd"))
    ens = ls.train_ensemble(model, blobs, learning_rates=[0.1, 1e38], **kw)
    assert ens.diverged.tolist() == [False, True, False, True]
    assert np.all(ens.diverged_step[[1, 3]] >= 0) and np.all(ens.diverged_step[[0, 2]] == -1)
    assert bool(ls.tree.all_finite(ens.params))  # frozen at the last finite parameters
    healthy = ls.train_ensemble(model, blobs, learning_rates=[0.1], **kw)
    assert_trees_close(ens.member(0), healthy.member(0), rtol=1e-6, atol=1e-7)
    assert_trees_close(ens.member(2), healthy.member(1), rtol=1e-6, atol=1e-7)
    s = ls.summarize(ens)
    assert s["num_diverged"] == 2 and [m["seed"] for m in s["excluded"]] == [0, 1]
    assert s["spread"] == {} and s["spread_by_lr"]["1e+38"] == {}  # rates are never pooled
    np.testing.assert_allclose(s["spread_by_lr"]["0.1"]["train_loss"]["mean"],
                               ens.history.train_loss[[0, 2], -1].mean(), rtol=1e-6)
    assert [m["status"] for m in s["members"]][1].startswith("diverged at step")


@pytest.mark.slow  # kept out of the default suite's 5 minutes; CI runs it with -m slow
def test_members_that_did_not_learn_are_flagged(key):
    """Saturated sigmoid/MSE (loss falls, accuracy stays at the majority class) and exploding
    relu/cross-entropy (loss rises far above chance, no NaN) are flagged; healthy seeds are not."""
    import dataclasses

    d = ls.data.load("digits")
    rate = np.bincount(d.train.y).max() / d.train.y.size
    kw = dict(key=key, seeds=3, steps=40, log_every=20, execution=ls.Execution(progress=False))
    sat = ls.train_ensemble(ls.MLP(hidden=(16,), activation="sigmoid", output_activation="sigmoid"), d,
                            loss="mse", optimizer=ls.OptimizerSpec("sgd", 300.0), **kw)
    assert sat.config["data"]["majority_rate"] == pytest.approx(rate)
    assert not sat.diverged.any() and not ls.train.learned(sat).any()
    assert np.all(sat.history.train_loss[:, -1] < sat.history.train_loss[:, 0])  # the loss alone looks fine
    boom = ls.train_ensemble(ls.MLP(hidden=(16,), activation="relu", output_activation="identity"), d, loss="cross_entropy",
                             optimizer=ls.OptimizerSpec("sgd", 50.0), **kw)
    assert not boom.diverged.any() and not ls.train.learned(boom).any()
    good = ls.train_ensemble(ls.MLP(hidden=(16,), activation="tanh", output_activation="identity"), d, loss="cross_entropy",
                             optimizer=ls.OptimizerSpec("sgd", 0.5), **kw)
    assert ls.train.learned(good).all() and set(ls.train.status(good)) == {"ok"}
    assert ls.summarize(sat)["num_not_learned"] == 3 and set(ls.train.status(sat)) == {"did not learn"}
    # the rule by hand: accuracy must beat the majority class by the margin, and the loss must fall
    h = good.history
    acc = h.train_accuracy.copy()
    acc[0, -1] = rate + 0.9 * ls.train.LEARNED_MARGIN  # not better by the margin: not learned
    loss = h.train_loss.copy()
    loss[1, -1] = loss[1, 0]  # did not fall: not learned
    fake = dataclasses.replace(good, history=dataclasses.replace(h, train_accuracy=acc, train_loss=loss))
    assert ls.train.learned(fake).tolist() == [False, False, True]


def test_all_members_diverging_gives_empty_spread(blobs, key):
    model = ls.MLP(hidden=(8,), activation="relu", kernel_init="normal", output_activation="identity")
    ens = ls.train_ensemble(model, blobs, key=key, seeds=2, optimizer=ls.OptimizerSpec("sgd", 1e38),
                            loss="cross_entropy", steps=5, log_every=5, execution=ls.Execution(progress=False))
    assert ens.diverged.all() and ls.summarize(ens)["spread"] == {}
    assert ls.train.learned(ens).tolist() == [False, False]


def test_history_and_trajectory_match_the_parameters(blobs, key):
    model = ls.MLP(hidden=(6,), activation="gelu", output_activation="identity").for_data(blobs)
    ens = ls.train_ensemble(model, blobs, key=key, seeds=3, loss="cross_entropy", steps=25, log_every=5,
                            snapshot_every=10, optimizer=ls.OptimizerSpec("sgd", 0.3), execution=ls.Execution(progress=False))
    np.testing.assert_array_equal(ens.history.step, [0, 5, 10, 15, 20, 25])
    np.testing.assert_array_equal(ens.trajectory.step, [0, 10, 20, 25])
    for i in range(3):
        k = jax.random.fold_in(key, i)
        init = model.init(jax.random.split(k)[0])
        assert_members_equal(ls.tree.take(ls.tree.take(ens.trajectory.params, i), 0), init)
        assert_trees_equal(jax.tree_util.tree_map(lambda a: a[i, -1], ens.trajectory.params), ens.member(i))
        final = ls.models.metrics(model, ens.member(i), blobs.test.x, blobs.test.y, "cross_entropy")
        np.testing.assert_allclose(ens.history.test_loss[i, -1], final["loss"], rtol=1e-5)
        np.testing.assert_allclose(ens.history.test_accuracy[i, -1], final["accuracy"])
        first = ls.models.metrics(model, init, blobs.train.x, blobs.train.y, "cross_entropy")
        np.testing.assert_allclose(ens.history.train_loss[i, 0], first["loss"], rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"seeds": 0}, "at least 1"),
        ({"seeds": [1, 1]}, "distinct"),
        ({"seeds": [-1]}, r"\[0, 2\*\*31\)"),
        ({"steps": 0}, "steps"),
        ({"batch_size": 1000}, "exceeds"),
        ({"batch_size": 0}, "batch_size"),
        ({"optimizer": ls.OptimizerSpec("sgd"), "learning_rates": [float("nan")]}, "learning rate"),
        ({"snapshot_every": 3, "log_every": 2}, "multiple"),
        ({"snapshot_every": 1, "log_every": 1, "execution": ls.Execution(max_trajectory_bytes=10)},
         "trajectory would need"),
        ({"optimizer": optax.sgd(0.1), "learning_rates": [0.1, 0.2]}, "learning-rate sweep"),
        ({"loss": "hinge"}, "unknown loss"),
    ],
)
def test_bad_training_arguments(blobs, key, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ls.train_ensemble(ls.MLP(hidden=(3,), output_activation="identity"), blobs, key=key,
                          **{"steps": 2, "execution": ls.Execution(progress=False), **kwargs})


@pytest.mark.parametrize("kwargs", [{"name": "lbfgs"}, {"learning_rate": -1.0}, {"learning_rate": float("nan")},
                                    {"momentum": 1.5}])
def test_bad_optimizer_spec(kwargs):
    with pytest.raises(ConfigError):
        ls.OptimizerSpec(**kwargs)


def test_custom_optax_transformation(blobs, key):
    ens = ls.train_ensemble(ls.MLP(hidden=(3,), output_activation="identity"), blobs, key=key, seeds=2, optimizer=optax.adam(1e-2),
                            loss="cross_entropy", steps=4, log_every=2, execution=ls.Execution(progress=False))
    assert np.isnan(ens.learning_rates).all() and ens.config["optimizer"]["custom"].startswith("GradientTransformation")


def test_compiled_programs_are_reused_across_calls(blobs, key):
    """A second sweep of the same configuration (other key, seeds, default learning rate) compiles nothing new."""
    model = ls.MLP(hidden=(3,), activation="tanh", output_activation="identity")
    engine._programs.cache_clear()
    kw = dict(loss="cross_entropy", steps=6, batch_size=8, log_every=3, execution=ls.Execution(progress=False))
    ls.train_ensemble(model, blobs, key=key, seeds=2, optimizer=ls.OptimizerSpec("momentum", 0.1), **kw)
    ls.train_ensemble(model, blobs, key=jax.random.key(5), seeds=[4, 9], optimizer=ls.OptimizerSpec("momentum", 0.2),
                      **kw)
    info = engine._programs.cache_info()
    assert (info.misses, info.hits) == (1, 1)


def test_long_log_intervals_are_split_by_the_order_budget(blobs, key, monkeypatch):
    """Minibatch orders are passed per call; a log interval longer than the budget is split, invisibly."""
    model = ls.MLP(hidden=(4,), activation="sigmoid", output_activation="identity")
    kw = dict(key=key, seeds=3, loss="mse", steps=37, batch_size=16, log_every=18, execution=ls.Execution(progress=False),
              snapshot_every=18)
    whole = ls.train_ensemble(model, blobs, **kw)
    n = blobs.train.x.shape[0]
    monkeypatch.setattr(engine, "ORDERS_BYTES", 3 * n * 4 * 2)  # two epochs of orders: calls of one epoch
    split = ls.train_ensemble(model, blobs, **kw)
    np.testing.assert_array_equal(split.history.step, [0, 18, 36, 37])
    np.testing.assert_array_equal(split.trajectory.step, whole.trajectory.step)
    assert_trees_close(split.params, whole.params, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(split.history.train_loss, whole.history.train_loss, rtol=1e-6)


def test_epoch_order_is_a_pure_function_of_key_and_epoch():
    words = np.asarray(jax.random.key_data(jax.random.key(3)))
    a = orders.epoch_order(words, 2, 50)
    assert sorted(a.tolist()) == list(range(50)) and a.dtype == np.int32
    np.testing.assert_array_equal(a, orders.epoch_order(words.copy(), 2, 50))
    assert not np.array_equal(a, orders.epoch_order(words, 3, 50))
    block = orders.epoch_orders(np.stack([words, words + 1]), 2, 3, 50, last=3)
    assert block.shape == (2, 3, 50)
    np.testing.assert_array_equal(block[0, 0], a)
    np.testing.assert_array_equal(block[:, 2], 0)  # past `last`: unused padding


def test_ensembles_beyond_device_memory_train_in_member_chunks(blobs, key):
    """A budget for 3 members trains 7 in chunks of 3, 3 and 1, with the results of one call."""
    model = ls.MLP(hidden=(6, 5), activation="tanh", output_activation="identity").for_data(blobs)
    kw = dict(key=key, seeds=[0, 1, 2, 3, 4, 5, 6], steps=12, log_every=4, snapshot_every=4, loss="cross_entropy",
              optimizer=ls.OptimizerSpec("momentum", 0.1), batch_size=32, execution=ls.Execution(progress=False))
    whole = ls.train_ensemble(model, blobs, **kw)
    per = memory.device_bytes_per_member(model, 32, 96 + 40)
    chunked = ls.train_ensemble(model, blobs, **{**kw, "execution": ls.Execution(progress=False, max_device_bytes=3 * per + 1)})
    assert whole.timings["member_chunks"] == 1 and chunked.timings["member_chunks"] == 3
    assert_trees_close(chunked.params, whole.params, rtol=1e-6, atol=1e-7)
    assert_trees_close(chunked.trajectory.params, whole.trajectory.params, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(chunked.history.train_loss, whole.history.train_loss, rtol=1e-6)
    np.testing.assert_array_equal(chunked.history.step, whole.history.step)
    np.testing.assert_array_equal(chunked.diverged, whole.diverged)


def test_device_bytes_per_member_by_hand():
    model = ls.MLP(hidden=(16, 16), output_activation="identity").for_data(ls.data.blobs(num_train=8, num_test=2, num_classes=10, dim=64))
    p = 64 * 16 + 16 + 16 * 16 + 16 + 16 * 10 + 10
    assert model.num_params() == p
    assert memory.device_bytes_per_member(model, 1347, 1797) == 16 * p + 16 * 1347 * 42
    assert memory.device_bytes_per_member(model, 8, 1797) == 16 * p + 8 * 1797 * 42
    with pytest.raises(ls.ConfigError, match="max_device_bytes"):
        ls.train_ensemble(model, ls.data.blobs(num_train=8, num_test=2, num_classes=10, dim=64),
                          key=jax.random.key(0), seeds=2, steps=1, execution=ls.Execution(max_device_bytes=0, progress=False))


@pytest.mark.parametrize("name, recorded", [("sgd", set()), ("adam", set()), ("momentum", {"momentum"}),
                                            ("nesterov", {"momentum"}), ("rmsprop", {"momentum"}),
                                            ("adamw", {"weight_decay"})])
def test_an_optimizer_records_only_the_settings_it_uses(name, recorded):
    spec = ls.OptimizerSpec(name, 0.5, momentum=0.8, weight_decay=1e-3)
    d = spec.to_dict()
    assert set(d) == {"name", "learning_rate"} | recorded and d["learning_rate"] == 0.5
    back = ls.optim.OptimizerSpec.from_dict(d)
    assert back.name == name and all(getattr(back, k) == getattr(spec, k) for k in recorded)


def _fresh_members_by_default_compiler(model, key, seeds):
    """The members' initial parameters as XLA compiles them by default: jit(vmap(model.init))."""
    return jax.jit(jax.vmap(lambda s: model.init(orders.member_keys(key, s)[0])))(seeds)


class _LinenNet(nn.Module):
    """A user's Linen module (dense, with a LayerNorm) for the initialisation test."""

    @nn.compact
    def __call__(self, x):
        return nn.Dense(4)(nn.LayerNorm()(nn.relu(nn.Dense(6)(x))))


def _nnx_net(rngs):
    """An NNX model's factory (a small dense net) for the initialisation test."""
    from flax import nnx

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.hidden, self.out = nnx.Linear(5, 6, rngs=rngs), nnx.Linear(6, 4, rngs=rngs)

        def __call__(self, x):
            return self.out(jax.nn.gelu(self.hidden(x)))

    return Net(rngs)


def _normalised_columns_init(key):
    """A user's initialiser that reduces: unit-norm columns (as weight normalisation starts)."""
    w = jax.random.normal(key, (5, 4))
    return {"w": w / jnp.linalg.norm(w, axis=0), "b": jnp.zeros(4)}


@pytest.mark.parametrize("make, short", [
    (lambda blobs: ls.MLP(hidden=(7, 5), activation="tanh").for_data(blobs), True),
    pytest.param(lambda blobs: ls.models.as_model((_normalised_columns_init, lambda p, x: x @ p["w"] + p["b"]))
                 .for_data(blobs), False, id="reducing-init"),
    pytest.param(lambda blobs: ls.models.as_model(_nnx_net).for_data(blobs), True, id="nnx", marks=pytest.mark.slow),
    pytest.param(lambda blobs: ls.models.as_model(_LinenNet()).for_data(blobs), True, id="linen",
                 marks=pytest.mark.slow),
    *[pytest.param(lambda blobs, k=k: ls.MLP(hidden=(7, 5), kernel_init=k).for_data(blobs), True, id=k,
                   marks=pytest.mark.slow) for k in sorted(ls.models.INITIALIZERS)],
    pytest.param(lambda blobs: ls.models.CNN().for_data(ls.data.load("digits")), True, id="cnn",
                 marks=pytest.mark.slow),
    pytest.param(lambda blobs: ls.models.ResNet().for_data(ls.data.load("digits")), True, id="resnet",
                 marks=pytest.mark.slow),
])
def test_initial_parameters_are_one_program_per_model_bitwise_as_compiled_by_default(blobs, key, make, short):
    """The members' fresh parameters come from one program per model, compiled for a short compile
    where nothing in the initialisation reduces (on a CPU at LLVM level 1, core/compile_options.py):
    bitwise XLA's default-compiled jit(vmap(model.init)); the program is shared by every optimizer
    and loss that trains the model."""
    model = make(blobs)
    want = {"xla_backend_optimization_level": 1} if short else None
    assert compile_options.run_once_options(model.init, jax.random.key(0)) == want
    seeds = np.array([0, 3, 11], np.int32)
    assert_trees_equal(engine._initial_params(model)(key, seeds), _fresh_members_by_default_compiler(model, key, seeds))
    sgd = engine._programs(model, "mse", ls.OptimizerSpec("sgd", 0.1), None, 1, 96)
    adam = engine._programs(model, "cross_entropy", ls.OptimizerSpec("adam", 0.1), 8, 12, 96)
    assert sgd[0] is adam[0] is engine._initial_params(model)


def test_what_accumulates_is_found_in_every_body_and_only_where_it_is_used():
    """The short compilation's condition, on hand-made programs: reductions, products and linear
    algebra in the body, in a jit call, a loop or a branch count; a product whose result is thrown
    away (a Linen init's forward pass) does not."""
    x = jnp.ones((4, 3))

    def traced(f):
        return jax.make_jaxpr(f)(x).jaxpr

    assert not compile_options.accumulates(traced(lambda a: jnp.tanh(a) * 2 + jax.random.normal(jax.random.key(0))))
    assert compile_options.accumulates(traced(lambda a: a.mean()))
    assert compile_options.accumulates(traced(lambda a: jax.jit(lambda b: b @ b.T)(a)))
    assert compile_options.accumulates(traced(lambda a: jax.lax.scan(lambda c, r: (c + r.sum(), None), 0.0, a)[0]))
    assert compile_options.accumulates(traced(lambda a: jax.lax.cond(a[0, 0] > 0, lambda b: jnp.cumsum(b, axis=0), jnp.sin, a)))
    assert compile_options.accumulates(traced(lambda a: jnp.linalg.qr(a)[0]))
    assert not compile_options.accumulates(traced(lambda a: (a @ a.T, jnp.sin(a))[1]))
    assert not compile_options.accumulates(traced(lambda a: jax.lax.scan(lambda c, r: (c * r, None), a[0], a)[0]))


@pytest.mark.slow  # the initial-parameters program itself is compared bitwise in the default suite (above)
def test_a_trained_member_starts_from_the_default_compilers_parameters(blobs, key):
    """End to end: the first snapshot of a sweep is bitwise jit(vmap(model.init)) of the members' keys."""
    model = ls.MLP(hidden=(4,), activation="sigmoid")
    ens = ls.train_ensemble(model, blobs, key=key, seeds=[2, 7], optimizer=ls.OptimizerSpec("adam", 0.05), steps=2,
                            log_every=1, snapshot_every=1, execution=ls.Execution(progress=False))
    first = jax.tree_util.tree_map(lambda a: a[:, 0], ens.trajectory.params)
    assert_trees_equal(first, _fresh_members_by_default_compiler(ens.model, key, np.array([2, 7], np.int32)))
