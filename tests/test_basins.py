"""Where starts go: training from given starts, several optimizers in one program, basin maps."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from landscape.errors import ConfigError

import landscape as ls
from landscape import minima, optim, tree

from .conftest import assert_members_equal, assert_trees_close

STEPS = 150


@pytest.fixture(scope="module")
def three(blobs):
    """Three trained minima of a small tanh MLP on the blobs (cross-entropy, SGD)."""
    model = ls.MLP(hidden=(6, 5), activation="tanh", output_activation="identity").for_data(blobs)
    opt = optim.OptimizerSpec("sgd", 0.5)
    ens = ls.train_ensemble(model, blobs, key=jax.random.key(0), seeds=3, optimizer=opt, loss="cross_entropy",
                            steps=STEPS, log_every=STEPS, execution=ls.Execution(progress=False))
    return model, opt, ens


def test_training_from_starts_equals_training_from_the_seeds(blobs, three):
    model, opt, ens = three
    inits = jax.vmap(lambda s: model.init(ls.train.member_keys(jax.random.key(0), s)[0]))(np.arange(3))
    again = ls.train_ensemble(model, blobs, key=jax.random.key(0), starts=inits, optimizer=opt,
                              loss="cross_entropy", steps=STEPS, log_every=STEPS, execution=ls.Execution(progress=False))
    assert_trees_close(again.params, ens.params, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(again.seeds, [0, 1, 2])
    assert again.config["init"] == "given starts"


def test_starts_are_checked(blobs, three):
    model, opt, ens = three
    bad = jax.tree_util.tree_map(lambda x: x[:, :1], ens.params)
    with pytest.raises(ConfigError, match="does not match"):
        ls.train_ensemble(model, blobs, key=jax.random.key(0), starts=bad, optimizer=opt, steps=2, execution=ls.Execution(progress=False))
    with pytest.raises(ConfigError, match="3 starts need 3 seeds"):
        ls.train_ensemble(model, blobs, key=jax.random.key(0), starts=ens.params, seeds=[1, 2], optimizer=opt,
                          steps=2, execution=ls.Execution(progress=False))


def test_optimizers_in_one_program_equal_each_trained_alone(blobs, three):
    """An OptimizerChoice member = that optimizer run alone from the same start (a per-optimizer loop)."""
    model, _, ens = three
    specs = [optim.OptimizerSpec("momentum", 0.1), optim.OptimizerSpec("adam", 0.01)]  # both with state
    mixed = ls.train_ensemble(model, blobs, key=jax.random.key(1), starts=ens.params, optimizer=specs,
                              loss="cross_entropy", steps=20, log_every=5, snapshot_every=5, execution=ls.Execution(progress=False))
    assert mixed.config["member_optimizers"] == [0, 1] * 3
    np.testing.assert_allclose(mixed.learning_rates, [0.1, 0.01] * 3)
    for c, spec in enumerate(specs):
        alone = ls.train_ensemble(model, blobs, key=jax.random.key(1), starts=ens.params, optimizer=spec,
                                  loss="cross_entropy", steps=20, log_every=5, snapshot_every=5, execution=ls.Execution(progress=False))
        rows = np.arange(3) * 2 + c
        assert_members_equal(jax.tree_util.tree_map(lambda x: x[rows], mixed.params), alone.params)
        assert_members_equal(jax.tree_util.tree_map(lambda x: x[rows], mixed.trajectory.params),
                             alone.trajectory.params)
    with pytest.raises(ConfigError, match="own learning rates"):
        ls.train_ensemble(model, blobs, key=jax.random.key(1), seeds=2, optimizer=specs, learning_rates=[0.1, 0.2],
                          steps=2, execution=ls.Execution(progress=False))


def test_parse_optimizer_words():
    assert optim.parse("adam@0.01") == optim.OptimizerSpec("adam", 0.01)
    assert optim.parse("momentum", learning_rate=0.3, momentum=0.5) == optim.OptimizerSpec("momentum", 0.3, momentum=0.5)
    with pytest.raises(ConfigError, match="NAME@LR"):
        optim.parse("adam@fast")
    with pytest.raises(ConfigError, match="unknown optimizer"):
        optim.parse("lbfgs")


def test_end_points_at_the_minima_are_labelled_by_them_even_permuted(blobs, three):
    model, _, ens = three
    fn = ls.models.metrics_fn(model, "cross_entropy")
    data = (blobs.train.x, blobs.train.y)
    spec = model.permutation_spec()
    bars = minima.aligned_barrier_matrix(fn, ens.params, spec=spec, data=data, metric="loss")["barrier"]
    tol = 0.5 * bars[~np.eye(3, dtype=bool)].min()
    assert tol > 1e-3  # the three minima are separated: each is its own basin
    out = minima.label_ends(fn, data, ens.params, ens.params, spec=spec, tol=tol)
    np.testing.assert_array_equal(out["labels"], [0, 1, 2])
    np.testing.assert_allclose(np.diag(out["distance"]), 0.0, atol=1e-5)
    np.testing.assert_allclose(np.diag(out["barrier"]), 0.0, atol=1e-6)
    # hidden units shuffled: the same functions, far away in parameter space, found by alignment
    rng = np.random.default_rng(0)
    shuffled = tree.stack([
        ls.permutation.permute(ens.member(i), spec, {n: rng.permutation(k) for n, k in (("Dense_0", 6), ("Dense_1", 5))})
        for i in range(3)])
    out = minima.label_ends(fn, data, ens.params, shuffled, spec=spec, tol=tol)
    np.testing.assert_array_equal(out["labels"], [0, 1, 2])
    assert np.all(np.diag(out["distance"]) < 1e-4)
    diverged = minima.label_ends(fn, data, ens.params, ens.params, diverged=np.array([False, True, False]), tol=tol)
    np.testing.assert_array_equal(diverged["labels"], [0, minima.DIVERGED, 2])
    # a tolerance above the barriers between the minima joins each end to several: shared
    loose = minima.label_ends(fn, data, ens.params, ens.params, tol=2 * bars.max() + 1e-3)
    np.testing.assert_array_equal(loose["labels"], [minima.SHARED] * 3)
    strict = minima.label_ends(fn, data, ens.params, ens.params, tol=0.0)
    np.testing.assert_array_equal(strict["labels"], [minima.ELSEWHERE] * 3)


def test_label_fractions_by_hand():
    labels = np.array([0, 0, 1, minima.SHARED, minima.ELSEWHERE, minima.ELSEWHERE, minima.DIVERGED, 2])
    np.testing.assert_allclose(minima.label_fractions(labels, 3), [2, 1, 1, 1, 2, 1] / np.float64(8))


def test_a_start_near_a_minimum_on_the_line_reaches_it(blobs, three):
    model, opt, ens = three
    m = [ens.member(i) for i in range(3)]
    near = tree.stack([tree.axpy(0.02, tree.sub(m[(i + 1) % 3], m[i]), m[i]) for i in range(3)])
    ends = ls.train_ensemble(model, blobs, key=jax.random.key(0), starts=near, optimizer=opt, loss="cross_entropy",
                             steps=50, log_every=50, execution=ls.Execution(progress=False))
    fn, data = ls.models.metrics_fn(model, "cross_entropy"), (blobs.train.x, blobs.train.y)
    bars = minima.aligned_barrier_matrix(fn, ens.params, spec=model.permutation_spec(), data=data,
                                         metric="loss")["barrier"]
    out = minima.label_ends(fn, data, ens.params, ends.params, spec=model.permutation_spec(),
                            tol=0.5 * bars[~np.eye(3, dtype=bool)].min())
    np.testing.assert_array_equal(out["labels"], [0, 1, 2])


def test_plane_starts_lie_on_the_plane_through_the_minima(three):
    model, _, ens = three
    refs, origin, basis, a, b, points, starts = minima.plane_starts(ens.params, grid=5, margin=0.1)
    assert tree.num_members(starts) == 25
    k = 7  # row-major: a[1], b[2]
    manual = jax.tree_util.tree_map(lambda o, u, v: o + a[1] * u + b[2] * v, origin, *basis)
    assert_trees_close(tree.take(starts, k), manual, rtol=1e-5, atol=1e-5)
    # the minima's coordinates reproduce them
    for i in range(3):
        back = jax.tree_util.tree_map(lambda o, u, v: o + points[i, 0] * u + points[i, 1] * v, origin, *basis)
        assert_trees_close(back, ens.member(i), rtol=1e-4, atol=1e-4)
    with pytest.raises(ConfigError, match="one minimum .* or three"):
        minima.plane_starts(jax.tree_util.tree_map(lambda x: x[:2], ens.params))


@pytest.mark.slow  # kept out of the default suite's 5 minutes; CI runs it with -m slow
def test_basin_map_matches_its_parts(blobs, three):
    """The map's labels and costs = training the same starts separately and labelling them."""
    model, opt, ens = three
    key = jax.random.key(3)
    bm = minima.basins_of_attraction(model, blobs, ens.params, key=key, optimizer=opt, loss="cross_entropy",
                                     steps=40, grid=4, margin=0.1, spec=model.permutation_spec())
    assert bm.labels.shape == (4, 4) and bm.distance.shape == (4, 4, 3) and bm.barrier.shape == (4, 4, 3)
    assert bm.ends.shape == (4, 4, 2)
    np.testing.assert_allclose(bm.fractions, minima.label_fractions(bm.labels, 3))
    # the default tolerance: half the smallest barrier between the aligned minima
    refs = minima.plane_starts(ens.params, grid=2, spec=model.permutation_spec())[0]
    fn, data = ls.models.metrics_fn(model, "cross_entropy"), (blobs.train.x, blobs.train.y)
    ref_bars = minima.aligned_barrier_matrix(fn, refs, spec=model.permutation_spec(), data=data,
                                             metric="loss")["barrier"]
    np.testing.assert_allclose(bm.reference_barriers, ref_bars, rtol=1e-6)
    assert np.isclose(bm.tol, 0.5 * ref_bars[~np.eye(3, dtype=bool)].min())
    _, _, _, _, _, _, starts = minima.plane_starts(ens.params, grid=4, margin=0.1, spec=model.permutation_spec())
    for k in (0, 5, 15):  # a per-start loop: one start trained alone (its label keys the minibatch order)
        alone = ls.train_ensemble(model, blobs, key=key, starts=jax.tree_util.tree_map(lambda x: x[k:k + 1], starts),
                                  seeds=[k], optimizer=opt, loss="cross_entropy", steps=40, log_every=40,
                                  execution=ls.Execution(progress=False))
        np.testing.assert_allclose(bm.final_loss.ravel()[k], alone.history.train_loss[0, -1], rtol=1e-4)
        lab = minima.label_ends(fn, data, refs, alone.params, spec=model.permutation_spec(), tol=bm.tol)
        assert bm.labels.ravel()[k] == lab["labels"][0]
        np.testing.assert_allclose(bm.barrier.reshape(16, 3)[k], lab["barrier"][0], rtol=1e-4, atol=1e-6)
    with pytest.raises(ConfigError, match="needs a key"):
        minima.plane_starts(jax.tree_util.tree_map(lambda x: x[:1], ens.params))


@pytest.mark.slow
def test_race_paths_are_the_projections_of_separately_trained_runs(blobs, three):
    model, _, ens = three
    specs = [optim.OptimizerSpec("sgd", 0.5), optim.OptimizerSpec("adam", 0.02)]
    key = jax.random.key(5)
    r = ls.race.race(model, blobs, ens.params, key=key, optimizers=specs, batch_sizes=[None, 16], starts=2, steps=20,
                     snapshot_every=5, loss="cross_entropy", grid=5, margin=0.1)
    assert r.labels == ["sgd@0.5", "adam@0.02", "sgd@0.5, batch 16", "adam@0.02, batch 16"]
    assert r.paths.shape == (2, 4, 5, 2) and r.loss.shape == (2, 4, 5)
    _, origin, basis, _, _, _, _ = minima.plane_starts(ens.params, grid=2)
    np.testing.assert_allclose(r.paths[:, :, 0], np.repeat(r.starts[:, None], 4, 1), atol=1e-4)  # paths begin at the starts
    k_plane, k_starts, k_train = jax.random.split(key, 3)
    starts = jax.vmap(lambda c: jax.tree_util.tree_map(lambda o, u, v: o + c[0] * u + c[1] * v, origin, *basis))(
        np.asarray(r.starts, np.float32))
    for j, (spec, batch) in enumerate([(specs[0], None), (specs[1], None), (specs[0], 16), (specs[1], 16)]):
        alone = ls.train_ensemble(model, blobs, key=k_train, starts=starts, optimizer=spec, loss="cross_entropy",
                                  steps=20, batch_size=batch, log_every=5, snapshot_every=5, execution=ls.Execution(progress=False))
        np.testing.assert_allclose(r.loss[:, j], alone.history.train_loss, rtol=1e-5, atol=1e-7)
        for i in range(2):  # the path: the snapshots' coordinates in the plane's orthonormal basis
            snaps = alone.trajectory.member(i)
            want = np.stack([[float(tree.vdot(tree.sub(tree.take(snaps, t), origin), e)) for e in basis]
                             for t in range(5)])
            np.testing.assert_allclose(r.paths[i, j], want, rtol=1e-4, atol=1e-4)


def test_descent_in_plane_follows_the_analytic_path_of_a_quadratic():
    """L(θ) = ½‖θ − θ*‖² on an orthonormal plane: c_t = c* + (1 − lr)^t (c₀ − c*), c* = θ*'s projection."""
    rng = np.random.default_rng(0)
    origin = {"w": rng.normal(size=(3, 4)).astype(np.float32), "b": rng.normal(size=4).astype(np.float32)}
    q, _ = np.linalg.qr(rng.normal(size=(16, 2)))
    u = {"w": q[:12, 0].reshape(3, 4).astype(np.float32), "b": q[12:, 0].astype(np.float32)}
    v = {"w": q[:12, 1].reshape(3, 4).astype(np.float32), "b": q[12:, 1].astype(np.float32)}
    target = jax.tree_util.tree_map(lambda x: x + rng.normal(size=x.shape).astype(np.float32), origin)

    def loss(p):
        return 0.5 * sum(jnp.sum((a - t) ** 2) for a, t in zip(jax.tree_util.tree_leaves(p),
                                                              jax.tree_util.tree_leaves(target)))

    c_star = np.array([float(tree.vdot(tree.sub(target, origin), e)) for e in (u, v)])
    starts = np.array([[1.0, -2.0], [0.0, 3.0]])
    paths = ls.race.descend_in_plane(loss, origin, [u, v], starts, lr=0.3, steps=12)
    t = np.arange(13)[None, :, None]
    want = c_star + (0.7 ** t) * (starts[:, None, :] - c_star)
    np.testing.assert_allclose(paths, want, rtol=1e-4, atol=1e-5)


def test_basin_of_ends_by_hand():
    points = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])  # spacing 4: radius 1
    ends = np.array([[0.5, 0.5], [3.2, 0.1], [2.0, 2.0], [0.0, 3.1]])
    np.testing.assert_array_equal(ls.race.basin_of_ends(ends, points), [0, 1, -1, 2])
    np.testing.assert_array_equal(ls.race.basin_of_ends(ends, points, radius=3.0), [0, 1, 0, 2])
