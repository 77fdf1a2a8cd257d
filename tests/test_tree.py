"""Pytree maths against flattened NumPy references."""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import landscape as ls


def _tree(seed):
    r = np.random.default_rng(seed)
    return {"a": {"kernel": r.normal(size=(3, 4)).astype(np.float32), "bias": r.normal(size=4).astype(np.float32)},
            "b": r.normal(size=(2, 2, 5)).astype(np.float32)}


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 10_000), st.floats(-3, 3))
def test_linear_algebra_matches_flat_numpy(s1, s2, alpha):
    a, b = _tree(s1), _tree(s2)
    fa, fb = np.asarray(ls.tree.ravel(a)), np.asarray(ls.tree.ravel(b))
    np.testing.assert_allclose(ls.tree.vdot(a, b), fa @ fb, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ls.tree.norm(a), np.linalg.norm(fa), rtol=1e-5)
    np.testing.assert_allclose(ls.tree.ravel(ls.tree.axpy(alpha, a, b)), alpha * fa + fb, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ls.tree.ravel(ls.tree.sub(a, b)), fa - fb, rtol=1e-6)
    c = ls.tree.lincomb(a, jnp.array([alpha, 2.0]), [b, a])
    np.testing.assert_allclose(ls.tree.ravel(c), fa + alpha * fb + 2 * fa, rtol=1e-5, atol=1e-5)


def test_stack_take_unstack_round_trip():
    trees = [_tree(i) for i in range(3)]
    stacked = ls.tree.stack(trees)
    assert ls.tree.num_members(stacked) == 3
    for i, t in enumerate(ls.tree.unstack(stacked)):
        for x, y in zip(jax.tree_util.tree_leaves(t), jax.tree_util.tree_leaves(trees[i])):
            np.testing.assert_array_equal(x, y)


def test_random_like_is_gaussian_per_leaf_and_keyed():
    t = {"w": np.zeros((200, 100), np.float32), "v": np.zeros(50, np.float32)}
    r1 = ls.tree.random_like(jax.random.key(1), t)
    r2 = ls.tree.random_like(jax.random.key(1), t)
    r3 = ls.tree.random_like(jax.random.key(2), t)
    np.testing.assert_array_equal(r1["w"], r2["w"])
    assert not np.allclose(r1["w"], r3["w"])
    w = np.asarray(r1["w"])
    assert abs(w.mean()) < 0.02 and abs(w.std() - 1) < 0.02 and w.min() < -2.5  # not uniform [0, 1)


def test_path_flatten_round_trip_and_finite():
    t = _tree(0)
    flat = ls.tree.flatten_with_paths(t)
    assert set(flat) == {"a/kernel", "a/bias", "b"}
    back = ls.tree.unflatten_with_paths(flat)
    np.testing.assert_array_equal(back["a"]["kernel"], t["a"]["kernel"])
    assert bool(ls.tree.all_finite(t))
    t["b"][0, 0, 0] = np.nan
    assert not bool(ls.tree.all_finite(t))
    assert ls.tree.size(t) == 12 + 4 + 20
