"""Where starts go: training from given starts, several optimizers in one program, basin maps."""

import jax
import numpy as np
import pytest

import landscape as ls
from landscape import minima, optim, tree
from landscape.errors import ConfigError

from .conftest import assert_members_equal, assert_trees_close

STEPS = 150


@pytest.fixture(scope="module")
def three(blobs):
    """Three trained minima of a small tanh MLP on the blobs (cross-entropy, SGD)."""
    model = ls.MLP(hidden=(6, 5), activation="tanh").for_data(blobs)
    opt = optim.OptimizerSpec("sgd", 0.5)
    ens = ls.train_ensemble(model, blobs, key=jax.random.key(0), seeds=3, optimizer=opt, loss="cross_entropy",
                            steps=STEPS, log_every=STEPS, progress=False)
    return model, opt, ens


def test_training_from_starts_equals_training_from_the_seeds(blobs, three):
    model, opt, ens = three
    inits = jax.vmap(lambda s: model.init(ls.train.member_keys(jax.random.key(0), s)[0]))(np.arange(3))
    again = ls.train_ensemble(model, blobs, key=jax.random.key(0), starts=inits, optimizer=opt,
                              loss="cross_entropy", steps=STEPS, log_every=STEPS, progress=False)
    assert_trees_close(again.params, ens.params, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(again.seeds, [0, 1, 2])
    assert again.config["init"] == "given starts"


def test_starts_are_checked(blobs, three):
    model, opt, ens = three
    bad = jax.tree_util.tree_map(lambda x: x[:, :1], ens.params)
    with pytest.raises(ConfigError, match="does not match"):
        ls.train_ensemble(model, blobs, key=jax.random.key(0), starts=bad, optimizer=opt, steps=2, progress=False)
    with pytest.raises(ConfigError, match="3 starts need 3 seeds"):
        ls.train_ensemble(model, blobs, key=jax.random.key(0), starts=ens.params, seeds=[1, 2], optimizer=opt,
                          steps=2, progress=False)


def test_optimizers_in_one_program_equal_each_trained_alone(blobs, three):
    """An OptimizerChoice member = that optimizer run alone from the same start (a per-optimizer loop)."""
    model, _, ens = three
    specs = [optim.OptimizerSpec("sgd", 0.5), optim.OptimizerSpec("momentum", 0.1), optim.OptimizerSpec("adam", 0.01)]
    mixed = ls.train_ensemble(model, blobs, key=jax.random.key(1), starts=ens.params, optimizer=specs,
                              loss="cross_entropy", steps=20, log_every=5, snapshot_every=5, progress=False)
    assert mixed.config["member_optimizers"] == [0, 1, 2] * 3
    np.testing.assert_allclose(mixed.learning_rates, [0.5, 0.1, 0.01] * 3)
    for c, spec in enumerate(specs):
        alone = ls.train_ensemble(model, blobs, key=jax.random.key(1), starts=ens.params, optimizer=spec,
                                  loss="cross_entropy", steps=20, log_every=5, snapshot_every=5, progress=False)
        rows = np.arange(3) * 3 + c
        assert_members_equal(jax.tree_util.tree_map(lambda x: x[rows], mixed.params), alone.params)
        assert_members_equal(jax.tree_util.tree_map(lambda x: x[rows], mixed.trajectory.params),
                             alone.trajectory.params)
    with pytest.raises(ConfigError, match="own learning rates"):
        ls.train_ensemble(model, blobs, key=jax.random.key(1), seeds=2, optimizer=specs, learning_rates=[0.1, 0.2],
                          steps=2, progress=False)


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
    out = minima.label_ends(fn, data, ens.params, ens.params, spec=spec)
    np.testing.assert_array_equal(out["labels"], [0, 1, 2])
    np.testing.assert_allclose(np.diag(out["distance"]), 0.0, atol=1e-5)
    # hidden units shuffled: the same functions, far away in parameter space, found by alignment
    rng = np.random.default_rng(0)
    shuffled = tree.stack([
        ls.permutation.permute(ens.member(i), spec, {n: rng.permutation(k) for n, k in (("Dense_0", 6), ("Dense_1", 5))})
        for i in range(3)])
    out = minima.label_ends(fn, data, ens.params, shuffled, spec=spec)
    np.testing.assert_array_equal(out["labels"], [0, 1, 2])
    assert np.all(np.diag(out["distance"]) < 1e-4)
    diverged = minima.label_ends(fn, data, ens.params, ens.params, diverged=np.array([False, True, False]))
    np.testing.assert_array_equal(diverged["labels"], [0, minima.DIVERGED, 2])


def test_a_start_near_a_minimum_on_the_line_reaches_it(blobs, three):
    model, opt, ens = three
    m = [ens.member(i) for i in range(3)]
    near = tree.stack([tree.axpy(0.02, tree.sub(m[(i + 1) % 3], m[i]), m[i]) for i in range(3)])
    ends = ls.train_ensemble(model, blobs, key=jax.random.key(0), starts=near, optimizer=opt, loss="cross_entropy",
                             steps=50, log_every=50, progress=False)
    out = minima.label_ends(ls.models.metrics_fn(model, "cross_entropy"), (blobs.train.x, blobs.train.y),
                            ens.params, ends.params, spec=model.permutation_spec())
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


def test_basin_map_matches_its_parts(blobs, three):
    """The map's labels and costs = training the same starts separately and labelling them."""
    model, opt, ens = three
    key = jax.random.key(3)
    bm = minima.basins_of_attraction(model, blobs, ens.params, key=key, optimizer=opt, loss="cross_entropy",
                                     steps=40, grid=4, margin=0.1, spec=model.permutation_spec(), tol=0.05)
    assert bm.labels.shape == (4, 4) and bm.distance.shape == (4, 4, 3) and bm.ends.shape == (4, 4, 2)
    np.testing.assert_allclose(bm.fractions.sum(), 1.0)
    _, _, _, _, _, _, starts = minima.plane_starts(ens.params, grid=4, margin=0.1, spec=model.permutation_spec())
    for k in (0, 5, 15):  # a per-start loop: one start trained alone (its label keys the minibatch order)
        alone = ls.train_ensemble(model, blobs, key=key, starts=jax.tree_util.tree_map(lambda x: x[k:k + 1], starts),
                                  seeds=[k], optimizer=opt, loss="cross_entropy", steps=40, log_every=40,
                                  progress=False)
        np.testing.assert_allclose(bm.final_loss.ravel()[k], alone.history.train_loss[0, -1], rtol=1e-4)
        lab = minima.label_ends(ls.models.metrics_fn(model, "cross_entropy"), (blobs.train.x, blobs.train.y),
                                ens.params, alone.params, spec=model.permutation_spec())
        assert bm.labels.ravel()[k] == lab["labels"][0]
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
                                  steps=20, batch_size=batch, log_every=5, snapshot_every=5, progress=False)
        np.testing.assert_allclose(r.loss[:, j], alone.history.train_loss, rtol=1e-5, atol=1e-7)
        for i in range(2):  # the path: the snapshots' coordinates in the plane's orthonormal basis
            snaps = alone.trajectory.member(i)
            want = np.stack([[float(tree.vdot(tree.sub(tree.take(snaps, t), origin), e)) for e in basis]
                             for t in range(5)])
            np.testing.assert_allclose(r.paths[i, j], want, rtol=1e-4, atol=1e-4)
