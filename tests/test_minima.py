"""Barriers, basins, permutation alignment and Bezier curves."""

import jax
import numpy as np
import pytest

import landscape as ls
from landscape import minima as M
from landscape import permutation as P
from landscape import surface as S


@pytest.fixture(scope="module")
def ens_and_data():
    d = ls.data.blobs(num_train=80, num_test=30, num_classes=3, dim=4, seed=2)
    model = ls.MLP(hidden=(6, 5), activation="tanh", output_activation="identity")
    ens = ls.train_ensemble(model, d, key=jax.random.key(0), seeds=4, loss="cross_entropy", steps=60,
                            optimizer=ls.OptimizerSpec("sgd", 0.5), log_every=30, execution=ls.Execution(progress=False))
    return ens, d


def test_barrier_matrix_matches_pairwise_interpolations(ens_and_data):
    ens, d = ens_and_data
    fn = ls.models.metrics_fn(ens.model, "cross_entropy")
    data = (d.train.x, d.train.y)
    mat = M.barrier_matrix(fn, ens.params, num=11, data=data, metric="loss")
    assert np.allclose(mat["barrier"], mat["barrier"].T) and np.all(np.diag(mat["barrier"]) == 0)
    for i, j in [(0, 1), (1, 3)]:
        ref = S.interpolation(fn, ens.member(i), ens.member(j), num=11, extend=0.0, data={"": data})
        bar = S.barrier_of_curve(ref.axes[0], ref.values["loss"])
        assert mat["barrier"][i, j] == pytest.approx(bar["barrier"], rel=1e-4, abs=1e-6)
        assert mat["barrier_midpoint"][j, i] == pytest.approx(bar["barrier_midpoint"], rel=1e-4, abs=1e-6)
    single = M.barrier(fn, ens.member(0), ens.member(1), num=11, data=data, metric="loss")
    assert single["barrier"] == pytest.approx(mat["barrier"][0, 1], rel=1e-4, abs=1e-6)


def test_barrier_of_a_solution_with_itself_is_zero(ens_and_data):
    ens, d = ens_and_data
    fn = ls.models.metrics_fn(ens.model, "cross_entropy")
    b = M.barrier(fn, ens.member(2), ens.member(2), data=(d.train.x, d.train.y), metric="loss")
    assert b["barrier"] == pytest.approx(0.0, abs=1e-6) and b["barrier_midpoint"] == pytest.approx(0.0, abs=1e-6)


def test_distance_cosine_and_disagreement_against_numpy(ens_and_data):
    ens, d = ens_and_data
    flat = np.stack([np.asarray(ls.tree.ravel(ens.member(i)), np.float64) for i in range(4)])
    np.testing.assert_allclose(M.distance_matrix(ens.params), np.linalg.norm(flat[:, None] - flat[None], axis=-1),
                               rtol=1e-5, atol=1e-5)
    cos = flat @ flat.T / np.outer(np.linalg.norm(flat, axis=1), np.linalg.norm(flat, axis=1))
    np.testing.assert_allclose(M.cosine_matrix(ens.params), cos, rtol=1e-6)
    dis = M.disagreement_matrix(ens.model.apply, ens.params, d.test.x)
    preds = [np.argmax(ens.model.apply(ens.member(i), d.test.x), -1) for i in range(4)]
    assert dis[0, 2] == pytest.approx(np.mean(preds[0] != preds[2]))
    assert np.all(np.diag(dis) == 0)


def test_basins_are_connected_components():
    b = np.array([[0, 0.01, 5, 5, 5], [0.01, 0, 5, 0.02, 5], [5, 5, 0, 5, 0.001], [5, 0.02, 5, 0, 5],
                  [5, 5, 0.001, 5, 0]], float)
    labels = M.basins(b, tol=0.05)
    assert labels.tolist() == [0, 0, 1, 0, 1]
    assert M.basins(b, tol=1e-4).tolist() == [0, 1, 2, 3, 4]
    b[0, 1] = b[1, 0] = np.nan
    assert M.basins(b, tol=0.05).tolist() == [2, 0, 1, 0, 1]  # equal sizes: the lowest member first


def test_alignment_undoes_a_known_permutation_exactly(ens_and_data):
    ens, d = ens_and_data
    a = ens.member(0)
    rng = np.random.default_rng(0)
    spec = ens.model.permutation_spec()
    perms = {"Dense_0": rng.permutation(6), "Dense_1": rng.permutation(5)}
    b = P.permute(a, spec, perms)
    # a permuted network computes exactly the same function
    np.testing.assert_array_equal(np.argmax(ens.model.apply(a, d.test.x), -1), np.argmax(ens.model.apply(b, d.test.x), -1))
    np.testing.assert_allclose(ens.model.apply(a, d.test.x), ens.model.apply(b, d.test.x), rtol=1e-5, atol=1e-6)
    aligned, found = P.align(a, b, spec=spec, key=jax.random.key(0))
    for layer in a:
        for name in ("kernel", "bias"):
            np.testing.assert_array_equal(aligned[layer][name], a[layer][name])
    assert sorted(found) == ["Dense_0", "Dense_1"]
    for name, q in perms.items():
        np.testing.assert_array_equal(q[found[name]], np.arange(q.size))


def test_alignment_keeps_function_and_lowers_distance(ens_and_data):
    ens, d = ens_and_data
    a, b = ens.member(0), ens.member(1)
    aligned, _ = P.align(a, b, spec=ens.model.permutation_spec())
    np.testing.assert_allclose(ens.model.apply(aligned, d.test.x), ens.model.apply(b, d.test.x), rtol=1e-5, atol=1e-6)
    before = float(ls.tree.norm(ls.tree.sub(a, b)))
    after = float(ls.tree.norm(ls.tree.sub(a, aligned)))
    assert after <= before + 1e-6


def test_bezier_curve_beats_the_straight_line(ens_and_data):
    ens, d = ens_and_data
    f = ls.models.loss_fn(ens.model, d.train, "cross_entropy")
    curve = M.bezier_curve(f, ens.member(0), ens.member(1), key=jax.random.key(0), steps=300,
                           samples_per_step=4, num=21)
    np.testing.assert_allclose(curve.curve_loss[[0, -1]], curve.line_loss[[0, -1]], rtol=1e-5)
    np.testing.assert_allclose(curve.line_loss[[0, -1]], [f(ens.member(0)), f(ens.member(1))], rtol=1e-5)
    assert curve.curve_loss.max() < curve.line_loss.max()
    p = M.bezier_point(ens.member(0), curve.bend, ens.member(1), 0.5)
    assert float(f(p)) == pytest.approx(curve.curve_loss[10], rel=1e-5)


def test_aligned_barrier_matrix_aligns_each_pair(ens_and_data):
    ens, d = ens_and_data
    fn = ls.models.metrics_fn(ens.model, "cross_entropy")
    data = (d.train.x, d.train.y)
    spec = ens.model.permutation_spec()
    after = M.aligned_barrier_matrix(fn, ens.params, spec=spec, num=11, data=data, metric="loss")
    aligned, _ = P.align(ens.member(1), ens.member(3), spec=spec)
    ref = M.barrier(fn, ens.member(1), aligned, num=11, data=data, metric="loss")
    assert after["barrier"][1, 3] == pytest.approx(ref["barrier"], rel=1e-4, abs=1e-6)
    assert after["distance"][3, 1] == pytest.approx(float(ls.tree.norm(ls.tree.sub(ens.member(1), aligned))), rel=1e-5)
    # a permuted copy of a member is the same basin once aligned
    reversed_units = {"Dense_0": np.arange(6)[::-1], "Dense_1": np.arange(5)[::-1]}
    stacked = ls.tree.stack([ens.member(0), P.permute(ens.member(0), spec, reversed_units)])
    before = M.barrier_matrix(fn, stacked, num=11, data=data, metric="loss")
    after = M.aligned_barrier_matrix(fn, stacked, spec=spec, num=11, data=data, metric="loss")
    assert before["barrier"][0, 1] > 1e-3 and after["barrier"][0, 1] == pytest.approx(0.0, abs=1e-5)
