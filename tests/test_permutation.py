"""Weight matching with each model's own permutation spec: a permuted network (statistics
included) computes the same function in both modes, and a known permutation is recovered."""

import jax
import numpy as np
import pytest
from landscape.permutation import PermutationSpec, align, permute

import landscape as ls
from landscape import models

from .conftest import assert_trees_close


@pytest.fixture(scope="module")
def images():
    full = ls.data.load("digits")
    return ls.data.from_arrays(full.train.x[:40].reshape(-1, 8, 8, 1), full.train.y[:40],
                               full.test.x[:20].reshape(-1, 8, 8, 1), full.test.y[:20], num_classes=10)


def unit_counts(spec: PermutationSpec, params) -> dict[str, int]:
    """How many units each named permutation reorders, read from the arrays."""
    counts = {}
    for path, leaf in ls.tree.flatten_with_paths(params).items():
        shape = spec.views.get(path, leaf.shape)
        for name, n in zip(spec.axes[path], shape):
            if name is not None:
                counts[name] = n
    return counts


CASES = {
    "cnn": (models.CNN(channels=(3, 4), activation="tanh", output_activation="identity"), {"Conv_0", "Conv_1"}),
    "resnet-skip-batch": (models.ResNet(depth=6, width=3, output_activation="identity"), {"stage0", "stage1", "stage0_block0_inner",
                                                            "stage1_block0_inner"}),
    "resnet-noskip-batch": (models.ResNet(depth=6, width=3, skip=False, output_activation="identity"),
                            {"stem", "stage0_block0_inner", "stage0_block0_out", "stage1_block0_inner",
                             "stage1_block0_out"}),
    "resnet-skip-layer": (models.ResNet(depth=6, width=3, norm="layer", output_activation="identity"), None),
    "resnet-skip-none": (models.ResNet(depth=10, width=2, norm="none", output_activation="identity"), {"stage0", "stage1", "stage0_block0_inner",
                                                                         "stage0_block1_inner", "stage1_block0_inner",
                                                                         "stage1_block1_inner"}),
}
SLOW = {"resnet-noskip-batch", "resnet-skip-layer", "resnet-skip-none"}  # the same code paths, other layers


@pytest.mark.parametrize("case", [pytest.param(c, marks=[pytest.mark.slow] if c in SLOW else []) for c in CASES])
def test_a_permuted_network_is_the_same_function_and_its_permutation_is_recovered(images, case):
    config, names = CASES[case]
    model = config.for_data(images)
    rng = np.random.default_rng(1)
    params = model.init(jax.random.key(0))
    # running statistics away from their start, so that evaluation depends on them
    state = jax.tree_util.tree_map(lambda a: np.asarray(a) + rng.uniform(0.1, 0.5, np.shape(a)),
                                   model.init_state(jax.random.key(0)))
    spec = model.permutation_spec()
    counts = unit_counts(spec, params)
    if names is not None:
        assert set(counts) == names
    perms = {name: rng.permutation(n) for name, n in counts.items()}
    moved, moved_state = permute(params, spec, perms, state=state)
    assert not np.allclose(ls.tree.ravel(moved), ls.tree.ravel(params))
    x = images.test.x
    evaluate, train = jax.jit(model.apply_eval), jax.jit(model.apply_train)
    np.testing.assert_allclose(evaluate(moved, moved_state, x), evaluate(params, state, x), rtol=1e-4, atol=1e-5)
    out, new = train(params, state, x)  # training mode: batch statistics, updated averages
    moved_out, moved_new = train(moved, moved_state, x)
    np.testing.assert_allclose(moved_out, out, rtol=1e-4, atol=1e-5)
    assert_trees_close(moved_new, permute(params, spec, perms, state=new)[1], rtol=1e-4, atol=1e-6)
    # weight matching finds the permutation back, exactly
    aligned, found = align(params, moved, spec=spec, key=jax.random.key(2))
    assert_trees_close(aligned, params, rtol=0, atol=0)
    for name, p in perms.items():
        np.testing.assert_array_equal(p[found[name]], np.arange(p.size))


@pytest.mark.slow  # the CNN's weight matching is in the fast suite through the permuted-copy case
def test_aligning_two_cnns_keeps_the_function_and_shortens_the_distance(images):
    model = models.CNN(channels=(4, 6), activation="relu", output_activation="identity").for_data(images)
    a, b = model.init(jax.random.key(3)), model.init(jax.random.key(4))  # two independent starts
    spec = model.permutation_spec()
    aligned, _ = align(a, b, spec=spec)
    x = images.test.x
    np.testing.assert_allclose(model.apply(aligned, x), model.apply(b, x), rtol=1e-4, atol=1e-5)
    before = float(ls.tree.norm(ls.tree.sub(a, b)))
    assert float(ls.tree.norm(ls.tree.sub(a, aligned))) < before
