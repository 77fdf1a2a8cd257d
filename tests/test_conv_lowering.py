"""Convolutions as matrix products (landscape/core/conv_lowering.py): the same outputs, losses
and gradients as XLA's convolutions — for lax's general convolution over random shapes, a
researcher's Linen CNN with BatchNorm, an NNX CNN and the built-in ResNet — and what training
on a CPU does with it."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax import lax

import landscape as ls
from landscape.core.conv_lowering import (as_matmuls, banded_pays, banded_product, conv_as_matmul, count_convolutions,
                                         inner_jaxprs, patches_product, traces_convolution)

from .conftest import assert_trees_close


def _conv_params(x_shape, k_shape, specs, strides, padding, dilation):
    dn = lax.conv_dimension_numbers(x_shape, k_shape, specs)
    return dict(window_strides=strides, padding=padding, lhs_dilation=(1,) * len(strides), rhs_dilation=dilation,
                dimension_numbers=dn)


@pytest.mark.slow  # 9-20 s: the default suite stays near five minutes on 2 cores
@settings(max_examples=12, deadline=None)
@given(st.data())
def test_a_lowered_convolution_equals_lax_over_shapes_strides_padding_dilation_and_layouts(data):
    spatial = data.draw(st.integers(1, 3), label="spatial dims")
    layout = data.draw(st.sampled_from(["last", "first"]), label="channel layout")
    size = [data.draw(st.integers(3, 7)) for _ in range(spatial)]
    window = [data.draw(st.integers(1, 3)) for _ in range(spatial)]
    strides = tuple(data.draw(st.integers(1, 2)) for _ in range(spatial))
    dilation = tuple(data.draw(st.integers(1, 2)) for _ in range(spatial))
    padding = tuple((data.draw(st.integers(0, 2)), data.draw(st.integers(0, 2))) for _ in range(spatial))
    n, c, o = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 4)), data.draw(st.integers(1, 5))
    form = data.draw(st.sampled_from(["auto", "patches", "banded"]), label="form")
    letters = "DHW"[-spatial:]
    if layout == "last":
        specs = ("N" + letters + "C", letters + "IO", "N" + letters + "C")
        x_shape, k_shape = (n, *size, c), (*window, c, o)
    else:
        specs = ("NC" + letters, "OI" + letters, "NC" + letters)
        x_shape, k_shape = (n, c, *size), (o, c, *window)
    if any(s + lo + hi < (w - 1) * d + 1 for s, (lo, hi), w, d in zip(size, padding, window, dilation)):
        return  # an empty output: nothing to compare
    kx, kk = jax.random.split(jax.random.key(data.draw(st.integers(0, 2**16))))
    x, k = jax.random.normal(kx, x_shape), jax.random.normal(kk, k_shape)
    params = _conv_params(x_shape, k_shape, specs, strides, padding, dilation)
    # each side one compiled program (op by op, every small operation would compile on its own)
    ref = jax.jit(lambda x, k: lax.conv_general_dilated(x, k, strides, padding, rhs_dilation=dilation,
                                                        dimension_numbers=params["dimension_numbers"],
                                                        precision="highest"))(x, k)
    if form == "auto":  # the library's choice, in the drawn layout
        out = jax.jit(lambda x, k: conv_as_matmul(x, k, **params, precision=lax.Precision.HIGHEST))(x, k)
    else:  # either form forced, on channels-last arrays
        if layout == "first":
            x, k, ref = jnp.moveaxis(x, 1, -1), jnp.moveaxis(k, (0, 1), (-1, -2)), jnp.moveaxis(ref, 1, -1)
        product = patches_product if form == "patches" else banded_product
        out = jax.jit(lambda x, k: product(x, k, strides, padding, dilation, precision=lax.Precision.HIGHEST))(x, k)
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", ["digits", "strided_dilated", "one_dim", "three_dim"])
def test_both_forms_give_lax_outputs_and_gradients(case):
    # shapes, strides, (low, high) padding, dilation: the banded form folds the last axis's
    # padding, stride and dilation into its matrix, the leading axes' into its slices
    x_shape, k_shape, strides, padding, dilation = {
        "digits": ((5, 8, 8, 1), (3, 3, 1, 8), (1, 1), ((1, 1), (1, 1)), (1, 1)),
        "strided_dilated": ((3, 7, 6, 3), (3, 2, 3, 4), (2, 2), ((1, 2), (0, 2)), (1, 2)),
        "one_dim": ((4, 9, 2), (3, 2, 3), (2,), ((2, 0),), (2,)),
        "three_dim": ((2, 4, 5, 6, 2), (2, 3, 2, 2, 3), (1, 2, 1), ((0, 1), (1, 1), (2, 0)), (1, 1, 2)),
    }[case]
    letters = "DHW"[-len(strides):]
    dn = lax.conv_dimension_numbers(x_shape, k_shape, ("N" + letters + "C", letters + "IO", "N" + letters + "C"))
    x, k = jax.random.normal(jax.random.key(0), x_shape), jax.random.normal(jax.random.key(1), k_shape)
    t = jax.random.normal(jax.random.key(2), lax.conv_general_dilated(x, k, strides, padding, rhs_dilation=dilation,
                                                                       dimension_numbers=dn).shape)

    def loss(conv):  # a scalar whose gradient weights every output differently
        return jax.jit(jax.value_and_grad(lambda x, k: jnp.sum(jnp.tanh(conv(x, k)) * t), (0, 1)))(x, k)

    ref = loss(lambda x, k: lax.conv_general_dilated(x, k, strides, padding, rhs_dilation=dilation,
                                                     dimension_numbers=dn, precision="highest"))
    for product in (patches_product, banded_product):
        got = loss(lambda x, k, f=product: f(x, k, strides, padding, dilation, precision=lax.Precision.HIGHEST))
        assert_trees_close(got, ref, rtol=1e-5, atol=1e-5)


def test_the_banded_form_is_taken_for_narrow_images_only():
    one = ((1, 1), (1, 1))
    assert banded_pays((64, 8, 8, 1), (3, 3, 1, 8), (1, 1), one, (1, 1))           # the digits, 8 = 2.7 kernels
    assert banded_pays((64, 12, 12, 8), (3, 3, 8, 8), (1, 1), one, (1, 1))         # 4 kernels wide
    assert not banded_pays((64, 13, 13, 8), (3, 3, 8, 8), (1, 1), one, (1, 1))     # wider than BANDED_WIDTH kernels
    assert not banded_pays((64, 32, 32, 3), (3, 3, 3, 16), (1, 1), one, (1, 1))    # CIFAR-10
    assert not banded_pays((64, 8, 8, 16), (1, 1, 16, 32), (1, 1), ((0, 0), (0, 0)), (1, 1))  # 1x1: a product already
    # the band (3 * 8 * C) x (8 * O) held per member: 128 channels in and out exceed BANDED_ELEMENTS
    assert banded_pays((8, 8, 8, 64), (3, 3, 64, 64), (1, 1), one, (1, 1))
    assert not banded_pays((8, 8, 8, 128), (3, 3, 128, 128), (1, 1), one, (1, 1))
    # as_matmuls takes it: the product's left matrix is (N * H, K_h * W * C), not im2col's (N * H * W, K_h * K_w * C)
    net = nn.Conv(4, (3, 3))
    x = jnp.ones((2, 8, 8, 3))
    jaxpr = jax.make_jaxpr(as_matmuls(net.apply))(net.init(jax.random.key(0), x), x)
    shapes = [e.invars[0].aval.shape for e in _equations(jaxpr.jaxpr) if e.primitive.name == "dot_general"]
    assert (2 * 8, 3 * 8 * 3) in shapes and (2 * 8 * 8, 9 * 3) not in shapes


def _equations(jaxpr):
    for eqn in jaxpr.eqns:
        yield eqn
        for inner in inner_jaxprs(eqn):
            yield from _equations(inner)


def test_grouped_and_transposed_convolutions_are_left_to_xla():
    x = jax.random.normal(jax.random.key(0), (2, 6, 6, 4))

    class Odd(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.Conv(4, (3, 3), feature_group_count=2)(x)     # grouped: left as it is
            x = nn.ConvTranspose(3, (3, 3), strides=(2, 2))(x)    # input dilation: left as it is
            return nn.Conv(2, (3, 3))(x)                          # lowered

    net = Odd()
    p = net.init(jax.random.key(1), x)
    fast = as_matmuls(net.apply)
    assert count_convolutions(net.apply, p, x) == 3 and count_convolutions(fast, p, x) == 2
    assert_trees_close(fast(p, x), net.apply(p, x), rtol=1e-5, atol=1e-5)
    # called directly, conv_as_matmul hands what it does not lower to XLA: bitwise lax's result
    k = jax.random.normal(jax.random.key(2), (3, 3, 2, 4))
    params = _conv_params(x.shape, k.shape, ("NHWC", "HWIO", "NHWC"), (1, 1), ((1, 1), (1, 1)), (1, 1))
    ref = lax.conv_general_dilated(x, k, (1, 1), ((1, 1), (1, 1)), dimension_numbers=params["dimension_numbers"],
                                   feature_group_count=2)
    np.testing.assert_array_equal(conv_as_matmul(x, k, **params, feature_group_count=2), ref)


class NormCNN(nn.Module):
    """A researcher's Linen CNN: strided and padded convolutions, BatchNorm, max pooling."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = x.reshape(x.shape[0], 8, 8, 1)
        x = nn.Conv(4, (3, 3), padding="SAME")(x)
        x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9)(x))
        x = nn.max_pool(x, (2, 2), (2, 2))
        x = nn.gelu(nn.Conv(6, (2, 2), strides=(2, 2), padding="VALID", kernel_dilation=1)(x))
        return nn.Dense(10)(x.reshape(x.shape[0], -1))


@pytest.fixture(scope="module")
def digits():
    full = ls.data.load("digits")
    return ls.data.from_arrays(full.train.x[:40].reshape(-1, 8, 8, 1), full.train.y[:40],
                               full.test.x[:20].reshape(-1, 8, 8, 1), full.test.y[:20], num_classes=10,
                               name="digits-40")


def _loss_and_grad(apply_train, params, state, x, y):
    def loss(p):
        out, new_state = apply_train(p, state, x)
        return ls.models.cross_entropy(out, y), new_state

    (value, new_state), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(params)
    return value, new_state, grads


@pytest.mark.parametrize("make", ["linen", "nnx",
                                  pytest.param("resnet", marks=pytest.mark.slow)])  # the ResNet: ~10 s, CI's slow suite
def test_a_models_losses_gradients_and_statistics_are_the_same_with_and_without_lowering(digits, make):
    if make == "linen":
        model = ls.models.as_model(NormCNN())
    elif make == "nnx":
        from flax import nnx

        class Net(nnx.Module):
            def __init__(self, rngs):
                self.conv = nnx.Conv(1, 5, (3, 3), padding="SAME", rngs=rngs)
                self.norm = nnx.BatchNorm(5, momentum=0.9, rngs=rngs)
                self.conv2 = nnx.Conv(5, 3, (3, 3), strides=(2, 2), rngs=rngs)
                self.out = nnx.Linear(48, 10, rngs=rngs)

            def __call__(self, x):
                x = x.reshape(x.shape[0], 8, 8, 1)
                x = nnx.relu(self.norm(self.conv(x)))
                x = nnx.tanh(self.conv2(x))
                return self.out(x.reshape(x.shape[0], -1))

        model = ls.models.as_model(Net)
    else:
        model = ls.models.ResNet(depth=6, width=4, stages=2, output_activation="identity")
    model = ls.models.for_loss(model.for_data(digits), "cross_entropy")
    params, state = model.init(jax.random.key(0)), model.init_state(jax.random.key(0))
    x, y = jnp.asarray(digits.train.x), jnp.asarray(digits.train.y)
    fast = as_matmuls(model.apply_train)
    assert count_convolutions(model.apply_train, params, state, x) > 0
    assert count_convolutions(fast, params, state, x) == 0
    ref_value, ref_state, ref_grads = _loss_and_grad(model.apply_train, params, state, x, y)
    value, new_state, grads = _loss_and_grad(fast, params, state, x, y)
    assert float(value) == pytest.approx(float(ref_value), rel=1e-5)
    assert_trees_close(grads, ref_grads, rtol=2e-4, atol=2e-6)
    assert_trees_close(new_state, ref_state, rtol=1e-5, atol=1e-6)   # BatchNorm's running averages
    assert_trees_close(as_matmuls(model.apply_eval)(params, state, x), model.apply_eval(params, state, x),
                       rtol=1e-4, atol=1e-5)


@pytest.mark.slow  # the default suite's CNN ensemble-vs-per-seed-loops test (test_any_model) trains lowered under vmap + scan
def test_lowering_composes_with_vmap_and_scan_as_a_per_member_loop(digits):
    model = ls.models.for_loss(ls.models.CNN(channels=(3, 4), output_activation="identity").for_data(digits),
                               "cross_entropy")
    x, y = jnp.asarray(digits.train.x), jnp.asarray(digits.train.y)
    stack = jax.vmap(model.init)(jax.random.split(jax.random.key(3), 3))
    fast = as_matmuls(model.apply)

    def train(apply, p):
        def step(p, _):
            g = jax.grad(lambda p: ls.models.cross_entropy(apply(p, x), y))(p)
            return jax.tree_util.tree_map(lambda a, b: a - 0.5 * b, p, g), None
        return jax.lax.scan(step, p, None, length=4)[0]

    together = jax.jit(jax.vmap(lambda p: train(fast, p)))(stack)
    for i in range(3):
        alone = jax.jit(lambda p: train(model.apply, p))(jax.tree_util.tree_map(lambda a, i=i: a[i], stack))
        assert_trees_close(jax.tree_util.tree_map(lambda a, i=i: a[i], together), alone, rtol=1e-4, atol=1e-6)


def test_a_function_without_convolutions_is_unchanged_bitwise(digits):
    model = ls.MLP(hidden=(5,), output_activation="identity").for_data(digits)
    p = model.init(jax.random.key(0))
    x = jnp.asarray(digits.train.x)
    assert count_convolutions(model.apply, p, x) == 0
    np.testing.assert_array_equal(jax.jit(as_matmuls(model.apply))(p, x), jax.jit(model.apply)(p, x))


def test_cpu_training_lowers_convolutions_and_records_it(digits):
    from landscape.training.memory import layout

    cnn = ls.models.CNN(channels=(3,), output_activation="identity").for_data(digits)
    mlp = ls.MLP(hidden=(4,), output_activation="identity").for_data(digits)
    assert layout(1, cnn).lowered and layout(1, cnn).group == 1
    assert not layout(1, mlp).lowered and layout(1, mlp).group == 8
    assert layout(2, cnn).group is None and layout(2, cnn).lowered   # a mesh of CPU devices: one batch
    ens = ls.train_ensemble(cnn, digits, key=jax.random.key(0), seeds=2, steps=2, log_every=2,
                            loss="cross_entropy", execution=ls.Execution(progress=False))
    assert ens.timings["convolutions"] == "matrix products"
    ens = ls.train_ensemble(mlp, digits, key=jax.random.key(0), seeds=2, steps=2, log_every=2,
                            loss="cross_entropy", execution=ls.Execution(progress=False))
    assert "convolutions" not in ens.timings


@pytest.mark.slow  # 9-20 s: the default suite stays near five minutes on 2 cores
def test_a_cnn_surface_goes_point_by_point_and_equals_the_models_own_evaluation(digits):
    from landscape.core.conv_lowering import _traces_structure
    from landscape.geometry.evaluator import _one_by_one

    model = ls.models.for_loss(ls.models.CNN(channels=(3, 4), output_activation="identity").for_data(digits),
                               "cross_entropy")
    mlp = ls.models.for_loss(ls.MLP(hidden=(4,), output_activation="identity").for_data(digits), "cross_entropy")
    x, y = jnp.asarray(digits.train.x), jnp.asarray(digits.train.y)
    stack = jax.vmap(model.init)(jax.random.split(jax.random.key(0), 2))
    dirs = [jax.vmap(model.init)(jax.random.split(jax.random.key(k), 2)) for k in (1, 2)]
    fn = ls.models.metrics_fn(model, "cross_entropy")
    one = jax.tree_util.tree_map(lambda a: a[0], stack)
    for f, center, expected in ((fn, one, True),
                                (ls.models.metrics_fn(mlp, "cross_entropy"), mlp.init(jax.random.key(0)), False)):
        assert _one_by_one(f, center, {"": (x, y)}) is expected  # the library's metric: traced once, cached
        traced = _traces_structure.cache_info()
        other = jax.tree_util.tree_map(lambda a: a + 0, f)  # the same metric on other arrays
        assert _one_by_one(other, center, {"": (x, y)}) is expected
        assert _traces_structure.cache_info().hits == traced.hits + 1 and _traces_structure.cache_info().misses == traced.misses
        assert _one_by_one(lambda p, b, f=f: f(p, b), center, {"": (x, y)}) is expected  # a closure: traced per call
        assert _traces_structure.cache_info().misses == traced.misses
    assert traces_convolution(ls.models.loss_fn(model, digits.train, "cross_entropy"), one)
    coords = np.array([[-0.5, 0.0], [0.25, 0.5], [1.0, -1.0]], np.float32)
    out = ls.surface.evaluate(fn, stack, dirs, coords, data=(x, y), stacked=True)
    apply = jax.jit(model.apply)  # XLA's own convolutions, one program for the six points
    for m in range(2):
        for p, (a, b) in enumerate(coords):
            theta = jax.tree_util.tree_map(lambda c, d1, d2, m=m: c[m] + a * d1[m] + b * d2[m], stack, *dirs)
            logits = apply(theta, x)
            assert out["loss"][m, p] == pytest.approx(float(ls.models.cross_entropy(logits, y)), rel=1e-5)
            assert out["accuracy"][m, p] == pytest.approx(float(ls.models.accuracy(logits, y)), abs=1e-6)
