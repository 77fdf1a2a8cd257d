"""Permutation specs inferred from the traced model (``ls.permutation.infer_spec``): equal to the
hand-written specs of the built-in networks, recovering random permutations of user models
exactly, aligning trained members, and refusing what it cannot prove."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import landscape as ls
from landscape.store import load_result

from .clirun import run as cli
from .conftest import assert_trees_close


def canonical(spec):
    """The spec with its permutations renamed by first appearance (leaves in sorted order)."""
    names = {}

    def rename(axes):
        return tuple(None if n is None else names.setdefault(n, len(names)) for n in axes)

    return ({k: rename(v) for k, v in sorted(spec.axes.items())}, dict(sorted(spec.views.items())),
            {k: rename(v) for k, v in sorted(spec.state.items())})


@pytest.fixture(scope="module")
def digits():
    full = ls.data.load("digits")
    return ls.data.from_arrays(full.train.x[:128].reshape(-1, 8, 8, 1), full.train.y[:128],
                               full.test.x[:40].reshape(-1, 8, 8, 1), full.test.y[:40], num_classes=10,
                               name="digits-128")


BUILTINS = [ls.MLP(hidden=(8, 6)), ls.MLP(hidden=(5,), activation="relu"), ls.models.CNN(channels=(4, 6)),
            ls.models.ResNet(depth=6, width=4, norm="batch", skip=True),
            # the other variants in the slow suite (3-6 s each: the certificate runs the ResNet)
            pytest.param(ls.models.ResNet(depth=6, width=4, norm="layer", skip=False), marks=pytest.mark.slow),
            *[pytest.param(ls.models.ResNet(depth=6, width=4, norm=norm, skip=skip), marks=pytest.mark.slow)
              for norm, skip in (("batch", False), ("layer", True), ("none", True), ("none", False))],
            pytest.param(ls.models.ResNet(depth=8, width=4, stages=3), marks=pytest.mark.slow)]


@pytest.mark.parametrize("model", BUILTINS, ids=lambda m: f"{type(m).__name__}-{getattr(m, 'norm', '')}-"
                         f"{getattr(m, 'skip', '')}-{getattr(m, 'stages', '')}")
def test_inferred_specs_equal_the_builtin_models_hand_written_ones(model, digits):
    bound = ls.models.for_loss(model, "cross_entropy").for_data(digits)
    inferred = ls.permutation.infer_spec(bound, digits.train.x[:8])
    assert canonical(inferred) == canonical(bound.permutation_spec())


class UserCNN(nn.Module):
    """A researcher's CNN: convolutions, BatchNorm, dropout, max pooling, a flatten and two Dense layers."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = x.reshape(x.shape[0], 8, 8, 1)
        x = nn.relu(nn.BatchNorm(use_running_average=not train)(nn.Conv(6, (3, 3))(x)))
        x = nn.max_pool(x, (2, 2), (2, 2))
        x = nn.gelu(nn.Conv(5, (3, 3))(x))
        x = nn.Dropout(0.2, deterministic=not train)(x.reshape(x.shape[0], -1))
        x = nn.tanh(nn.Dense(12)(x))
        return nn.Dense(10)(x)


def test_a_user_cnn_with_batchnorm_and_dropout_is_recovered_exactly(digits):
    model = ls.models.as_model(UserCNN()).for_data(digits)
    spec = ls.permutation.infer_spec(model, digits.train.x[:8])
    c0, c1, h = spec.axes["Conv_0/kernel"][3], spec.axes["Conv_1/kernel"][3], spec.axes["Dense_0/kernel"][-1]
    assert len({c0, c1, h}) == 3 and None not in (c0, c1, h)
    assert spec.axes["Conv_1/kernel"] == (None, None, c0, c1)
    assert spec.axes["BatchNorm_0/scale"] == spec.axes["BatchNorm_0/bias"] == (c0,)
    assert spec.state == {"batch_stats/BatchNorm_0/mean": (c0,), "batch_stats/BatchNorm_0/var": (c0,)}
    assert spec.views == {"Dense_0/kernel": (16, 5, 12)} and spec.axes["Dense_0/kernel"] == (None, c1, h)
    assert spec.axes["Dense_1/kernel"] == (h, None) and spec.axes["Dense_1/bias"] == (None,)
    key = jax.random.key(3)
    p, s = model.init(key), model.init_state(key)
    s = jax.tree.map(lambda a: a + jax.random.uniform(key, a.shape), s)  # running statistics that matter
    rng = np.random.default_rng(0)
    perms = {c0: rng.permutation(6), c1: rng.permutation(5), h: rng.permutation(12)}
    moved, moved_s = ls.permutation.permute(p, spec, perms, state=s)
    x = jnp.asarray(digits.test.x)
    np.testing.assert_allclose(model.apply_eval(moved, moved_s, x), model.apply_eval(p, s, x), rtol=1e-5, atol=1e-5)
    aligned, _ = ls.permutation.align(p, moved, spec=spec)
    assert_trees_close(aligned, p, rtol=0, atol=0)
    # the model's own permutation_spec() falls back to the inferred one
    assert canonical(model.permutation_spec()) == canonical(spec)


@pytest.mark.slow  # trains two CNN members; the recovery of a known permutation stays in the default suite
def test_two_trained_members_of_a_user_cnn_align_to_the_same_function_closer_together(digits):
    ens = ls.train_ensemble(UserCNN(), digits, key=jax.random.key(0), seeds=2, loss="cross_entropy",
                            optimizer=ls.OptimizerSpec("sgd", 0.1), steps=40, batch_size=32, log_every=20,
                            execution=ls.Execution(progress=False))
    spec = ens.model.permutation_spec()
    a, b = ens.member(0), ens.member(1)
    sa, sb = ens.member_state(0), ens.member_state(1)
    aligned, perms = ls.permutation.align(a, b, spec=spec)
    aligned_s = ls.permutation.permute(b, spec, perms, state=sb)[1]
    x = jnp.asarray(digits.test.x)
    np.testing.assert_allclose(ens.model.apply_eval(aligned, aligned_s, x), ens.model.apply_eval(b, sb, x),
                               rtol=1e-4, atol=1e-4)

    def dist(u, v):
        return float(np.sqrt(sum(np.sum((np.asarray(p) - np.asarray(q)) ** 2)
                                 for p, q in zip(jax.tree.leaves(u), jax.tree.leaves(v)))))

    assert dist(a, aligned) < dist(a, b)
    del sa


def test_an_nnx_mlp_and_a_pair_are_inferred(digits):
    from flax import nnx

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.hidden = nnx.Linear(64, 7, rngs=rngs)  # digits as rows
            self.norm = nnx.LayerNorm(7, rngs=rngs)
            self.out = nnx.Linear(7, 10, rngs=rngs)

        def __call__(self, x):
            return self.out(nnx.relu(self.norm(self.hidden(x.reshape(x.shape[0], -1)))))

    model = ls.models.as_model(Net).for_data(digits)
    spec = ls.permutation.infer_spec(model, digits.train.x[:8])
    hand = ls.permutation.PermutationSpec({"hidden/kernel": (None, "h"), "hidden/bias": ("h",), "norm/scale": ("h",),
                                           "norm/bias": ("h",), "out/kernel": ("h", None), "out/bias": (None,)})
    assert canonical(spec) == canonical(hand)
    p = model.init(jax.random.key(1))
    moved = ls.permutation.permute(p, spec, {spec.axes["out/kernel"][0]: np.random.default_rng(1).permutation(7)})
    assert_trees_close(ls.permutation.align(p, moved, spec=spec)[0], p, rtol=0, atol=0)

    def init(key):
        k1, k2 = jax.random.split(key)
        return {"w1": jax.random.normal(k1, (64, 9)), "w2": jax.random.normal(k2, (9, 10))}

    pair = ls.models.as_model((init, lambda q, x: jnp.tanh(x.reshape(-1, 64) @ q["w1"]) @ q["w2"])).for_data(digits)
    spec = ls.permutation.infer_spec(pair, digits.train.x[:8])
    assert canonical(spec) == canonical(ls.permutation.PermutationSpec({"w1": (None, "h"), "w2": ("h", None)}))


class Block(nn.Module):
    """A transformer block on 8 tokens of 8 features: LayerNorm, 2-head self-attention, LayerNorm, MLP."""

    @nn.compact
    def __call__(self, x):
        x = nn.Dense(16)(x.reshape(x.shape[0], 8, 8))  # token embedding
        h = nn.LayerNorm()(x)
        x = x + nn.MultiHeadDotProductAttention(num_heads=2, qkv_features=16)(h, h)
        h = nn.LayerNorm()(x)
        u = nn.gelu(nn.Dense(32)(h))  # built one after another, so that the names are Dense_1, Dense_2
        x = x + nn.Dense(16)(u)
        return nn.Dense(10)(x.mean(axis=1))


@pytest.mark.slow  # ~8 s; test_a_user_cnn_with_batchnorm_and_dropout_is_recovered_exactly keeps a user's model fast
def test_a_transformer_block_gets_its_mlp_hidden_units_and_its_heads(digits):
    model = ls.models.as_model(Block()).for_data(digits)
    spec = ls.permutation.infer_spec(model, digits.train.x[:4])
    hidden = spec.axes["Dense_1/kernel"][1]  # the MLP's 32 units
    assert hidden is not None and spec.axes["Dense_1/bias"] == (hidden,) and spec.axes["Dense_2/kernel"][0] == hidden
    stream = spec.axes["Dense_0/kernel"][1]  # the residual stream: one permutation tied by both additions
    assert stream not in (None, hidden)
    assert spec.axes["Dense_2/kernel"][1] == spec.axes["Dense_1/kernel"][0] == spec.axes["Dense_3/kernel"][0] == stream
    assert spec.axes["LayerNorm_0/scale"] == spec.axes["LayerNorm_1/scale"] == (stream,)
    # the heads: query, key, value and out share one permutation of the 2 heads; q and k share their head dims
    att = "MultiHeadDotProductAttention_0"
    q, k, v, o = (spec.axes[f"{att}/{n}/kernel"] for n in ("query", "key", "value", "out"))
    assert q[0] == k[0] == v[0] == o[2] == stream
    assert q[1] == k[1] == v[1] == o[0] is not None and q[2] == k[2] and v[2] == o[1] and q[2] != v[2]
    p = model.init(jax.random.key(0))
    sizes = {}
    for path, leaf in ls.tree.flatten_with_paths(p).items():
        for name, n in zip(spec.axes[path], np.shape(leaf)):
            if name is not None:
                sizes[name] = n
    assert sizes[q[1]] == 2 and sizes[hidden] == 32 and len(sizes) == 5
    rng = np.random.default_rng(2)
    perms = {name: rng.permutation(n) for name, n in sizes.items()}
    x = jnp.asarray(digits.test.x[:6])
    np.testing.assert_allclose(model.apply(ls.permutation.permute(p, spec, perms), x), model.apply(p, x),
                               rtol=1e-4, atol=1e-5)


def test_an_operation_without_a_rule_is_refused_by_name(digits):
    class Sorted(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(10)(jnp.sort(nn.Dense(6)(x), axis=-1))

    with pytest.raises(ls.ConfigError, match="'sort'"):
        ls.permutation.infer_spec(ls.models.as_model(Sorted()), digits.train.x[:8])  # bound to x here
    with pytest.raises(ls.ConfigError, match="as train_ensemble holds it"):
        ls.permutation.infer_spec(Sorted(), digits.train.x[:8])
    model = ls.models.as_model(Sorted()).for_data(digits)
    with pytest.raises(ls.ConfigError, match="could not be inferred.*'sort'.*permutation_spec"):
        model.permutation_spec()

    class Looped(nn.Module):  # a loop is not a call: its body is not followed, the loop is refused
        @nn.compact
        def __call__(self, x):
            h = nn.Dense(6)(x.reshape(x.shape[0], -1))
            h = jax.lax.scan(lambda c, _: (jnp.tanh(c), None), h, None, length=3)[0]
            return nn.Dense(10)(h)

    with pytest.raises(ls.ConfigError, match="'scan'"):
        ls.permutation.infer_spec(ls.models.as_model(Looped()), digits.train.x[:8])
    # a hand-written spec wins over inference, even for a model it cannot trace
    hand = ls.permutation.PermutationSpec({"Dense_0/kernel": (None, "h"), "Dense_0/bias": ("h",),
                                           "Dense_1/kernel": ("h", None), "Dense_1/bias": (None,)})
    assert dataclasses.replace(model, spec=hand).permutation_spec() is hand


MODEL_FILE = '''
import flax.linen as nn


class Net(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = False):
        x = x.reshape(x.shape[0], 8, 8, 1)
        x = nn.relu(nn.Conv(6, (3, 3))(x))
        x = nn.avg_pool(x, (2, 2), (2, 2))
        x = nn.Dropout(0.1, deterministic=not train)(x.reshape(x.shape[0], -1))
        return nn.Dense(10)(x)


def make():
    return Net()
'''


@pytest.mark.slow  # end to end through the CLI (train + compare); the inferred structure is asserted in the default suite
def test_a_linen_cnn_with_dropout_aligns_with_compare_without_a_hand_spec(tmp_path):
    src = tmp_path / "cnn.py"
    src.write_text(MODEL_FILE)
    run = tmp_path / "run"
    mf = ["--model-file", f"{src}:make"]
    r = cli("train", *mf, "--dataset", "digits", "--loss", "cross_entropy", "--lr", "0.1", "--seeds", "3",
            "--steps", "60", "--batch-size", "64", "--out", str(run), "--quiet")
    assert r.returncode == 0, r.stderr
    r = cli("compare", str(run), *mf, "--align", "--grid", "5", "--quiet")
    assert r.returncode == 0, r.stderr
    arrays, meta = load_result(run / "results" / "compare.npz")
    assert np.all(arrays["aligned_distance"] <= arrays["distance"] + 1e-6)
    off = ~np.eye(arrays["distance"].shape[0], dtype=bool)
    assert np.all(arrays["aligned_distance"][off] < arrays["distance"][off])
