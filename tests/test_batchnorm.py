"""Models with state (BatchNorm) and the built-in ResNet: ensembles against per-seed loops,
recomputed statistics against a hand-written forward pass, the ResNet's skip wiring and size,
run directories, and the analyses' choice of statistics."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import landscape as ls
from landscape import models

from .conftest import assert_trees_close
from .test_train import documented_permutation


class BNNet(nn.Module):
    """Dense -> BatchNorm -> relu -> Dense, with a train flag as Flax's examples write it."""

    width: int = 6

    @nn.compact
    def __call__(self, x, train: bool = False):
        h = nn.Dense(self.width)(x)
        h = nn.BatchNorm(use_running_average=not train, momentum=0.8)(h)
        return nn.Dense(10)(nn.relu(h))


class Counter(nn.Module):
    """State that is not a running average: a step counter."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        n = self.variable("counters", "n", lambda: jnp.zeros(()))
        if train:
            n.value = n.value + 1.0
        return nn.Dense(10)(x)


@pytest.fixture(scope="module")
def small():
    full = ls.data.load("digits")
    return ls.data.from_arrays(full.train.x[:120].reshape(-1, 8, 8, 1), full.train.y[:120],
                               full.test.x[:50].reshape(-1, 8, 8, 1), full.test.y[:50], num_classes=10,
                               name="digits-120")


@pytest.fixture(scope="module")
def bn_run(small):
    key = jax.random.key(3)
    ens = ls.train_ensemble(BNNet(), small, key=key, seeds=[0, 4], loss="cross_entropy",
                            optimizer=ls.OptimizerSpec("sgd", 0.3), steps=9, batch_size=40, log_every=3,
                            execution=ls.Execution(progress=False))
    return ens, key


def reference_bn_member(data, key, seed, lr, steps, batch_size):
    """One member by hand: Flax's own mutable apply, optax SGD, the documented batch order."""
    module = BNNet()
    init_key, order_key = ls.train.member_keys(key, seed)
    x, y = np.asarray(data.train.x), np.asarray(data.train.y)
    variables = module.init(init_key, x[:1], train=False)
    params, stats = variables["params"], variables["batch_stats"]
    opt = optax.sgd(lr)
    opt_state = opt.init(params)

    @jax.jit
    def step(params, stats, opt_state, xb, yb):
        def loss(p):
            out, new = module.apply({"params": p, "batch_stats": stats}, xb, train=True, mutable=["batch_stats"])
            return ls.models.cross_entropy(out, yb), new["batch_stats"]

        (_, stats), grads = jax.value_and_grad(loss, has_aux=True)(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), stats, opt_state

    n = x.shape[0]
    for s in range(steps):
        epoch, pos = divmod(s, n // batch_size)
        idx = documented_permutation(order_key, epoch, n)[pos * batch_size:(pos + 1) * batch_size]
        params, stats, opt_state = step(params, stats, opt_state, x[idx], y[idx])
    return params, stats


def test_a_batchnorm_ensemble_equals_per_seed_loops(bn_run, small):
    ens, key = bn_run
    assert ens.model.stateful and set(ens.state) == {"batch_stats"}
    for i, seed in enumerate([0, 4]):
        params, stats = reference_bn_member(small, key, seed, 0.3, 9, 40)
        assert_trees_close(ens.member(i), params, rtol=1e-4, atol=1e-5)
        assert_trees_close(ens.member_state(i), {"batch_stats": stats}, rtol=1e-4, atol=1e-5)
        # the history is evaluated with the running statistics (evaluation mode)
        out = BNNet().apply({"params": params, "batch_stats": stats}, np.asarray(small.test.x), train=False)
        assert float(ens.history.test_loss[i, -1]) == pytest.approx(
            float(ls.models.cross_entropy(out, jnp.asarray(small.test.y))), rel=1e-4)
    # the running averages moved away from their start (mean 0, variance 1)
    assert np.abs(ens.state["batch_stats"]["BatchNorm_0"]["mean"]).max() > 1e-2


@pytest.mark.slow  # the Linen BatchNorm ensemble against per-seed loops stays in the default suite
def test_an_nnx_batchnorm_ensemble_equals_nnx_own_training_loop(small):
    from flax import nnx

    class WithNorm(nnx.Module):
        def __init__(self, *, rngs):
            self.lin = nnx.Linear(64, 5, rngs=rngs)
            self.norm = nnx.BatchNorm(5, momentum=0.9, rngs=rngs)
            self.out = nnx.Linear(5, 10, rngs=rngs)

        def __call__(self, x):
            return self.out(nnx.relu(self.norm(self.lin(x))))

    key = jax.random.key(3)
    ens = ls.train_ensemble(lambda rngs: WithNorm(rngs=rngs), small, key=key, seeds=[0, 4], loss="cross_entropy",
                            optimizer=ls.OptimizerSpec("sgd", 0.3), steps=9, batch_size=40, log_every=3,
                            execution=ls.Execution(progress=False))
    assert ens.model.stateful and jax.tree.map(np.shape, ens.state) == {
        "batch_stats": {"norm": {"mean": (2, 5), "var": (2, 5)}}}
    # the reference: NNX's own idiom — a module in train() mode, nnx.grad, nnx.Optimizer
    init_key, order_key = ls.train.member_keys(key, 4)
    model = WithNorm(rngs=nnx.Rngs(init_key))
    model.train()
    opt = nnx.Optimizer(model, optax.sgd(0.3), wrt=nnx.Param)
    x, y = np.asarray(small.train.x), np.asarray(small.train.y)
    for s in range(9):
        epoch, pos = divmod(s, 3)
        idx = documented_permutation(order_key, epoch, 120)[pos * 40:(pos + 1) * 40]
        opt.update(model, nnx.grad(lambda m, idx=idx: ls.models.cross_entropy(m(x[idx]), y[idx]))(model))
    assert_trees_close(ens.member(1), nnx.to_pure_dict(nnx.state(model, nnx.Param)), rtol=1e-4, atol=1e-5)
    assert_trees_close(ens.member_state(1), {"batch_stats": nnx.to_pure_dict(nnx.state(model, nnx.BatchStat))},
                       rtol=1e-4, atol=1e-5)
    model.eval()  # the history is evaluated with the running averages
    assert float(ens.history.test_loss[1, -1]) == pytest.approx(
        float(ls.models.cross_entropy(model(np.asarray(small.test.x)), jnp.asarray(small.test.y))), rel=1e-4)


def test_recomputed_statistics_match_a_hand_written_forward_pass(bn_run, small):
    ens, _ = bn_run
    p = ens.member(1)
    x_tr, x_te = np.asarray(small.train.x, np.float64), np.asarray(small.test.x, np.float64)
    w0, b0 = (np.asarray(p["Dense_0"][k], np.float64) for k in ("kernel", "bias"))
    h = x_tr @ w0 + b0
    mean, var = h.mean(0), h.var(0)  # population statistics of the whole training set
    bn = p["BatchNorm_0"]
    z = (x_te @ w0 + b0 - mean) / np.sqrt(var + 1e-5) * np.asarray(bn["scale"]) + np.asarray(bn["bias"])
    want = np.maximum(z, 0) @ np.asarray(p["Dense_1"]["kernel"], np.float64) + np.asarray(p["Dense_1"]["bias"])

    rates = models.running_average_rates(ens.model, small.train.x[:50])
    assert jax.tree_util.tree_leaves(rates) == pytest.approx([0.8, 0.8], abs=1e-6)  # measured, not read
    stats = models.population_statistics(ens.model, p, small.train.x, rates)["batch_stats"]["BatchNorm_0"]
    np.testing.assert_allclose(stats["mean"], mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(stats["var"], var, rtol=1e-4, atol=1e-5)
    view = models.with_statistics(ens.model, "recompute", x=small.train.x)
    np.testing.assert_allclose(view.apply(p, small.test.x), want, rtol=1e-4, atol=1e-4)
    # 'running': the member's saved averages, the history's own numbers
    running = models.with_statistics(ens.model, "running", state=ens.member_state(1))
    m = models.metrics_fn(running, "cross_entropy")(p, (small.train.x, small.train.y))
    assert float(m["loss"]) == pytest.approx(float(ens.history.train_loss[1, -1]), rel=1e-5)


@pytest.mark.slow  # a dense Hessian through the statistics pass: ~10 s
def test_the_hessian_of_recomputed_statistics_matches_a_dense_one(bn_run, small):
    ens, _ = bn_run
    view = models.with_statistics(ens.model, "recompute", x=small.train.x)
    loss = models.loss_fn(view, small.train, "cross_entropy")
    theta = ens.member(0)
    dense = np.linalg.eigvalsh(np.asarray(ls.hessian.dense_hessian(loss, theta), np.float64))
    top = ls.hessian.top_eigenvalues(loss, theta, 2, key=jax.random.key(0), num_iters=80)
    np.testing.assert_allclose(top, dense[::-1][:2], rtol=2e-3)


def test_what_a_model_with_state_refuses(bn_run, small):
    ens, _ = bn_run
    with pytest.raises(ls.ConfigError, match="has state .*with_statistics"):
        models.metrics_fn(ens.model, "cross_entropy")
    with pytest.raises(ls.ConfigError, match="has state"):
        ens.model.apply(ens.member(0), small.train.x)
    with pytest.raises(ls.ConfigError, match="no state"):
        models.with_statistics(ls.MLP(output_activation="identity").for_data(small), "recompute", x=small.train.x)
    with pytest.raises(ls.ConfigError, match="statistics must be one of recompute, running"):
        models.with_statistics(ens.model, "batch", x=small.train.x)
    counter = ls.models.as_model(Counter()).for_data(small)
    assert counter.stateful
    with pytest.raises(ls.ConfigError, match="'counters/n' .* is not a running average"):
        models.with_statistics(counter, "recompute", x=small.train.x)


def test_directions_leave_batchnorm_scale_and_bias_alone(small):
    model = models.ResNet(depth=6, width=2, output_activation="identity").for_data(small)
    params = model.init(jax.random.key(0))
    d = jax.jit(ls.directions.random_direction)(jax.random.key(1), params)  # filter-normalised
    flat_d, flat_w = ls.tree.flatten_with_paths(d), ls.tree.flatten_with_paths(params)
    norms = [k for k in flat_w if "norm" in k]
    assert norms and all(flat_w[k].ndim == 1 for k in norms)
    for k, w in flat_w.items():
        if w.ndim == 1:  # BatchNorm scale and bias, the head's bias: a zero direction
            assert not np.any(flat_d[k]), k
        else:  # every filter (output channel) as long as the weights' filter
            axes = tuple(range(w.ndim - 1))
            np.testing.assert_allclose(np.sqrt((flat_d[k] ** 2).sum(axes)), np.sqrt((w ** 2).sum(axes)), rtol=1e-4)


def _conv3x3(x, k):
    """SAME 3x3 convolution of (N, H, W, C) by (3, 3, C, O), by hand."""
    n, h, w, _ = x.shape
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    return sum(np.einsum("nhwc,co->nhwo", xp[:, i:i + h, j:j + w], k[i, j]) for i in range(3) for j in range(3))


@pytest.mark.parametrize("skip", [True, False])
def test_resnet_skip_connections_carry_the_input(small, skip):
    # one stage, one block, no normalisation; the block's second convolution zeroed: with the
    # skip connection the block passes its (non-negative) input through, without it nothing
    model = models.ResNet(depth=4, width=3, stages=1, skip=skip, norm="none", output_activation="identity").for_data(small)
    assert not model.stateful and model.init_state(jax.random.key(0)) == {}
    params = model.init(jax.random.key(2))
    params["stage0_block0_conv1"] = jax.tree_util.tree_map(jnp.zeros_like, params["stage0_block0_conv1"])
    params["head"]["bias"] = jnp.arange(10.0)
    x = np.asarray(small.test.x[:7], np.float64)
    stem = np.maximum(_conv3x3(x.reshape(-1, 8, 8, 1), np.asarray(params["stem"]["kernel"], np.float64))
                      + np.asarray(params["stem"]["bias"]), 0)
    pooled = stem.mean(axis=(1, 2)) if skip else np.zeros((7, 3))
    want = pooled @ np.asarray(params["head"]["kernel"], np.float64) + np.arange(10.0)
    np.testing.assert_allclose(model.apply(params, x), want, rtol=1e-4, atol=1e-5)


def test_resnet_sizes_and_settings(small):
    r = models.ResNet(depth=6, width=4, output_activation="identity").for_data(small)
    # stem 3x3x1x4 + BN; stage 0: two 3x3x4x4 + BNs; stage 1: 3x3x4x8, 3x3x8x8, a 1x1x4x8
    # projection, each with a BN of 8; the head 8x10 + 10
    bn = lambda c: 2 * c  # noqa: E731
    convs = 36 + bn(4) + 2 * (144 + bn(4)) + 288 + bn(8) + 576 + bn(8) + 32 + bn(8)
    assert r.num_params() == convs + 90
    assert models.ResNet(depth=6, width=4, skip=False, output_activation="identity").for_data(small).num_params() == convs - 32 - bn(8) + 90
    assert r.stateful and r.state_shapes()["batch_stats/stem_norm/mean"] == (4,)
    assert r.blocks == 1 and models.ResNet(depth=20, stages=3, output_activation="identity").blocks == 3
    assert models.model_from_dict({"type": "ResNet", **r.to_dict()}) == r
    assert "ResNet-6 8x8x1 widths 4-8 (skip, batch norm, relu)" in r.describe()
    with pytest.raises(ls.ConfigError, match=r"depth 2\*2\*n\+2 \(6, 10, 14, 18"):
        models.ResNet(depth=8, output_activation="identity")
    with pytest.raises(ls.ConfigError, match="norm must be one of batch, layer, none"):
        models.ResNet(norm="group", output_activation="identity")
    with pytest.raises(ls.ConfigError, match="a ResNet needs images"):
        models.ResNet(output_activation="identity").for_data(ls.data.blobs(num_train=20, num_test=10, num_classes=3, dim=4, seed=0))


@pytest.mark.slow  # a ResNet's training and surface programs: ~30 s of compilation
def test_a_resnet_run_keeps_its_statistics_and_its_analyses_choose_them(digits, tmp_path):
    ens = ls.train_ensemble(models.ResNet(depth=6, width=2, output_activation="identity"), digits, key=jax.random.key(0), seeds=2,
                            loss="cross_entropy", optimizer=ls.OptimizerSpec("sgd", 0.2), steps=6, batch_size=64,
                            log_every=3, execution=ls.Execution(progress=False))
    run = ls.io.save_run(tmp_path / "run", ens)
    back = ls.io.load_run(run)
    assert isinstance(back.model, models.ResNet) and back.model == ens.model
    assert_trees_close(back.state, ens.state, rtol=0, atol=0)
    assert "state.npz" in ls.io.read_meta(run)["files"]

    # the centre of a plane is the member itself: with recomputed statistics its loss is the
    # network's with the training set's statistics, with running ones the training history's
    x, y = digits.train.x, digits.train.y
    p0 = back.member(0)
    stats = models.population_statistics(back.model, p0, x, models.running_average_rates(back.model, x[:64]))
    want = float(ls.models.cross_entropy(back.model.apply_eval(p0, stats, x), jnp.asarray(y)))
    spec = ls.analyses.SurfaceSpec(seeds="0", grid=3, span=0.5)
    out = ls.analyses.surface(run, spec)
    assert out.meta["provenance"]["settings"]["statistics"] == "recompute"
    assert float(out.arrays["value/train_loss"][1, 1]) == pytest.approx(want, rel=1e-4)
    out = ls.analyses.surface(run, dataclasses.replace(spec, statistics="running"))
    assert out.name.endswith("_running")
    assert float(out.arrays["value/train_loss"][1, 1]) == pytest.approx(float(back.history.train_loss[0, -1]),
                                                                         rel=1e-5)
    with pytest.raises(ls.ConfigError, match="running statistics belong to one member"):
        ls.analyses.surface(run, dataclasses.replace(spec, seeds="0,1", statistics="running"))
    # a corrupt state file is refused, never half-read
    np.savez(run / "state.npz", **{"state/batch_stats/stem_norm/mean": np.zeros((2, 3))})
    with pytest.raises(ls.errors.CorruptRunError):
        ls.io.load_run(run)


@pytest.mark.slow  # eight commands end to end, about 80 s
def test_a_resnet_run_from_the_command_line(tmp_path):
    from .clirun import run

    out = tmp_path / "resnet"
    r = run("train", "--model", "resnet", "--depth", "6", "--width", "2", "--activation", "relu", "--loss",
            "cross_entropy", "--lr", "0.2", "--seeds", "3", "--steps", "20", "--batch-size", "64", "--log-every", "10",
            "--snapshot-every", "10", "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    r = run("info", str(out))
    assert r.returncode == 0 and "ResNet-6 8x8x1 widths 2-4 (skip, batch norm, relu)" in r.stdout, r.stderr
    for args in (["surface", "--grid", "5"], ["surface", "--grid", "5", "--statistics", "running"],
                 ["interpolate", "--grid", "5"], ["plane", "--grid", "5"], ["compare", "--grid", "5", "--align"],
                 ["hessian", "--top", "1", "--iters", "10", "--probes", "2"]):
        r = run(args[0], str(out), *args[1:], "--quiet")
        assert r.returncode == 0, (args, r.stderr)
    assert (out / "results" / "plane_seed0_random_filter_g5_s1_running.npz").exists()
    r = run("hessian", str(out), "--statistics", "running", "--quiet")
    assert r.returncode == 2 and "running statistics belong to one member" in r.stderr
    # every landscape result records the statistics it was computed with
    for name in ("plane_seed0_random_filter_g5_s1", "plane_seed0_random_filter_g5_s1_running", "interpolate_seed0_1_g5",
                 "plane_seed0_1_2_g5", "compare", "hessian"):
        arrays, meta = ls.io.load_result(out / "results" / name)
        assert meta["provenance"]["settings"]["statistics"] == ("running" if "running" in name else "recompute")
        assert all(np.isfinite(v).all() for v in arrays.values() if np.issubdtype(v.dtype, np.floating))
    assert "aligned_barrier" in ls.io.load_result(out / "results" / "compare")[0]


SHARDED = '''
import jax, numpy as np
import landscape as ls
full = ls.data.load("digits")
d = ls.data.from_arrays(full.train.x[:120].reshape(-1, 8, 8, 1), full.train.y[:120],
                        full.test.x[:50].reshape(-1, 8, 8, 1), full.test.y[:50], num_classes=10)
kw = dict(key=jax.random.key(0), seeds=3, loss="cross_entropy", optimizer=ls.OptimizerSpec("sgd", 0.2), steps=6,
          batch_size=40, log_every=3)
one = ls.train_ensemble(ls.ResNet(depth=6, width=2), d, execution=ls.Execution(), **kw)
two = ls.train_ensemble(ls.ResNet(depth=6, width=2), d, execution=ls.Execution(mesh=ls.distributed.make_mesh(2)), **kw)
assert jax.device_count() == 2 and two.timings["devices"] == 2
for x, y in zip(jax.tree_util.tree_leaves((one.params, one.state, one.history.train_loss)),
                jax.tree_util.tree_leaves((two.params, two.state, two.history.train_loss))):
    np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
print("same")
'''


@pytest.mark.slow  # a subprocess with two forced host devices
def test_batchnorm_members_sharded_over_two_devices_equal_one_device(tmp_path):
    import os
    import subprocess
    import sys

    script = tmp_path / "sharded.py"
    script.write_text(SHARDED)
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=600,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0 and r.stdout.strip() == "same", r.stderr[-2000:]
