"""The MLP's functional view and the losses, against NumPy references."""

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from landscape.errors import ConfigError

import landscape as ls

ACTS = {
    "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, 0),
}


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 12), st.integers(2, 6), st.integers(0, 1000))
def test_losses_match_numpy(n, k, seed):
    r = np.random.default_rng(seed)
    out = r.normal(size=(n, k)).astype(np.float32)
    y = r.integers(0, k, size=n)
    onehot = np.eye(k)[y]
    np.testing.assert_allclose(ls.models.mse(out, y), np.mean(np.sum((out - onehot) ** 2, axis=1)), rtol=1e-5)
    logp = out - np.log(np.sum(np.exp(out - out.max(1, keepdims=True)), 1, keepdims=True)) - out.max(1, keepdims=True)
    np.testing.assert_allclose(ls.models.cross_entropy(out, y), -np.mean(logp[np.arange(n), y]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ls.models.accuracy(out, y), np.mean(out.argmax(1) == y))


@pytest.mark.parametrize("act", sorted(ACTS))
@pytest.mark.parametrize("out_act", ["identity", "sigmoid"])
def test_apply_matches_numpy_forward_pass(act, out_act):
    m = ls.MLP(hidden=(7, 5), activation=act, output_activation=out_act, in_features=4, out_features=3)
    p = m.init(jax.random.key(0))
    assert {k: v.shape for k, v in ls.tree.flatten_with_paths(p).items()} == m.param_shapes()
    assert m.num_params() == 4 * 7 + 7 + 7 * 5 + 5 + 5 * 3 + 3 == ls.tree.size(p)
    x = np.random.default_rng(1).normal(size=(9, 4)).astype(np.float32)
    h = x
    for i in range(3):
        h = h @ np.asarray(p[f"Dense_{i}"]["kernel"]) + np.asarray(p[f"Dense_{i}"]["bias"])
        if i < 2:
            h = ACTS[act](h)
    if out_act == "sigmoid":
        h = ACTS["sigmoid"](h)
    np.testing.assert_allclose(m.apply(p, x), h, rtol=1e-5, atol=1e-6)


@settings(max_examples=4, deadline=None)
@given(st.lists(st.integers(1, 9), max_size=3), st.sampled_from(["sigmoid", "tanh", "relu", "gelu"]),
       st.sampled_from(["lecun_normal", "he_normal", "glorot_uniform", "normal"]), st.integers(1, 6),
       st.sampled_from([(), (2,)]), st.integers(0, 1000))
def test_the_feature_major_module_is_a_linen_dense_stack(hidden, act, init, n, lead, seed):
    """The MLP computes with the examples on the last axis (mlp.py's layout); its parameters must be
    ``nn.Dense``'s bit for bit, and its outputs and gradients ``nn.Dense``'s to float32 rounding."""
    import flax.linen as nn
    import jax.numpy as jnp
    from landscape.models.base import ACTIVATIONS, INITIALIZERS

    m = ls.MLP(hidden=tuple(hidden), activation=act, output_activation="identity", kernel_init=init,
               in_features=5, out_features=3)

    class Reference(nn.Module):
        @nn.compact
        def __call__(self, x):
            for i, w in enumerate(m.widths):
                x = nn.Dense(w, kernel_init=INITIALIZERS[init](), name=f"Dense_{i}")(x)
                x = ACTIVATIONS[act](x) if i < len(m.widths) - 1 else x
            return x

    key = jax.random.key(seed)
    p = m.init(key)
    ref = Reference().init(key, jnp.zeros((1, 5)))["params"]
    jax.tree_util.tree_map(np.testing.assert_array_equal, p, dict(ref))
    x = np.random.default_rng(seed).normal(size=lead + (n, 5)).astype(np.float32)
    one = (0,) * len(lead) + (0,)  # one example, no batch axis

    @jax.jit  # one compilation per example (eager, every operation compiles for the new shapes)
    def both(q):
        def objective(apply):
            return lambda r: jnp.sum(jnp.sin(apply(r, x)))

        reference = lambda r, v: Reference().apply({"params": r}, v)  # noqa: E731
        return ((m.apply(q, x), m.apply(q, x[one]), jax.grad(objective(m.apply))(q)),
                (reference(q, x), reference(q, x)[one], jax.grad(objective(reference))(q)))

    ours, theirs = both(p)
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-5, atol=1e-6)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), ours[2], theirs[2])


def test_init_is_keyed_and_biases_start_at_zero():
    m = ls.MLP(hidden=(8,), in_features=3, out_features=2, kernel_init="normal", output_activation="identity")
    a, b = m.init(jax.random.key(1)), m.init(jax.random.key(1))
    np.testing.assert_array_equal(a["Dense_0"]["kernel"], b["Dense_0"]["kernel"])
    assert not np.allclose(a["Dense_0"]["kernel"], m.init(jax.random.key(2))["Dense_0"]["kernel"])
    np.testing.assert_array_equal(a["Dense_1"]["bias"], 0)


def test_gelu_runs_and_config_round_trips():
    m = ls.MLP(hidden=(3,), activation="gelu", in_features=2, out_features=2, output_activation="identity")
    assert ls.MLP.from_dict(m.to_dict()) == m
    assert m.apply(m.init(jax.random.key(0)), np.zeros((1, 2), np.float32)).shape == (1, 2)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"hidden": (4, -1)}, "positive"),
        ({"hidden": (0,)}, "positive"),
        ({"hidden": ("a",)}, "integers"),
        ({"activation": "swish"}, "unknown activation"),
        ({"output_activation": "softmax"}, "output_activation"),
        ({"kernel_init": "zeros"}, "kernel_init"),
    ],
)
def test_bad_model_config(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ls.MLP(**kwargs)


def test_unbound_model_and_unknown_loss():
    with pytest.raises(ConfigError, match="for_data"):
        ls.MLP(output_activation="identity").init(jax.random.key(0))
    with pytest.raises(ConfigError, match="unknown loss"):
        ls.models.output_loss("hinge")


def test_loss_fn_and_metrics_fn_agree(blobs):
    m = ls.MLP(hidden=(6,), output_activation="identity").for_data(blobs)
    p = m.init(jax.random.key(0))
    f = ls.models.loss_fn(m, blobs.train, "cross_entropy")
    g = ls.models.metrics_fn(m, "cross_entropy")
    np.testing.assert_allclose(f(p), g(p, blobs.train)["loss"], rtol=1e-6)


def test_the_default_output_is_decided_by_the_loss_as_on_the_command_line(blobs):
    """``MLP()`` (output ``auto``) trains as the command line's default does: sigmoid outputs for
    MSE, logits for cross-entropy — bitwise the explicitly configured network; undecided, it
    cannot be applied, and says how to decide it."""
    key = jax.random.key(0)
    for loss, explicit in (("mse", "sigmoid"), ("cross_entropy", "identity")):
        kw = dict(key=key, seeds=2, loss=loss, steps=5, execution=ls.Execution(progress=False), optimizer=ls.OptimizerSpec("sgd", 0.5))
        auto = ls.train_ensemble(ls.MLP(hidden=(4,), activation="tanh"), blobs, **kw)
        ref = ls.train_ensemble(ls.MLP(hidden=(4,), activation="tanh", output_activation=explicit), blobs, **kw)
        assert auto.model.output_activation == explicit and auto.model == ref.model
        np.testing.assert_array_equal(auto.history.train_loss, ref.history.train_loss)
        assert ls.models.for_loss(ls.MLP(), loss).output_activation == explicit
    model = ls.MLP(hidden=(4,)).for_data(blobs)
    params = model.init(key)  # the initial parameters do not depend on the output
    np.testing.assert_array_equal(params["Dense_0"]["kernel"],
                                  ls.MLP(hidden=(4,), output_activation="sigmoid").for_data(blobs).init(key)["Dense_0"]["kernel"])
    with pytest.raises(ConfigError, match="decided by the loss"):
        model.apply(params, blobs.train.x)
    fn = ls.models.metrics_fn(model, "mse")  # decided here
    sig = ls.models.metrics_fn(ls.MLP(hidden=(4,), output_activation="sigmoid").for_data(blobs), "mse")
    batch = (blobs.train.x, blobs.train.y)
    assert float(fn(params, batch)["loss"]) == float(sig(params, batch)["loss"])
    direct = ls.models.MLPMetrics(model, "mse")  # built by hand, it decides the output the same way
    assert float(direct(params, batch)["loss"]) == float(sig(params, batch)["loss"])
    z = direct.first_layer(params, batch[0])
    assert float(direct.head(params, z, batch[1])["loss"]) == float(sig.head(params, z, batch[1])["loss"])
    assert ls.models.for_loss(ls.MLP(output_activation="identity"), "mse").output_activation == "identity"
