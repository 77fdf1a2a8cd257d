"""The generic evaluator and the slices, against closed forms and plain evaluation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from landscape.errors import ConfigError

import landscape as ls
from landscape import directions as D
from landscape import surface as S
from landscape.geometry import evaluator


def quadratic(seed=0):
    """f(theta) = 1/2 theta' A theta + b' theta on a two-leaf pytree, and its pieces."""
    r = np.random.default_rng(seed)
    m = r.normal(size=(7, 7))
    a = (m @ m.T / 7 + np.eye(7)).astype(np.float64)
    b = r.normal(size=7)

    def unr(v):
        return {"w": v[:4].reshape(2, 2), "v": v[4:]}

    def rav(t):
        return jnp.concatenate([t["w"].ravel(), t["v"]])

    def f(t):
        x = rav(t)
        return 0.5 * x @ jnp.asarray(a, jnp.float32) @ x + jnp.asarray(b, jnp.float32) @ x

    return f, a, b, unr


def test_line_and_plane_of_a_quadratic_in_closed_form():
    f, a, b, unr = quadratic()
    r = np.random.default_rng(1)
    c, d1, d2 = (r.normal(size=7) for _ in range(3))
    tc, t1, t2 = (unr(jnp.asarray(v, jnp.float32)) for v in (c, d1, d2))
    ln = S.line(f, tc, t1, span=2.0, num=9)
    al = ln.axes[0]
    q = lambda x: 0.5 * x @ a @ x + b @ x  # noqa: E731
    np.testing.assert_allclose(ln.values["value"], [q(c + s * d1) for s in al], rtol=1e-4, atol=1e-4)
    pl = S.plane(f, tc, [t1, t2], span=(-1.0, 3.0), num=6, span_y=0.5, num_y=5)
    assert pl.values["value"].shape == (6, 5)
    for i, x in enumerate(pl.axes[0]):
        for j, y in enumerate(pl.axes[1]):
            np.testing.assert_allclose(pl.values["value"][i, j], q(c + x * d1 + y * d2), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(pl.meta["cosine"], d1 @ d2 / np.linalg.norm(d1) / np.linalg.norm(d2), rtol=1e-4)


def test_interpolation_endpoints_and_barriers_of_a_quadratic():
    f, a, b, unr = quadratic(2)
    r = np.random.default_rng(3)
    xa, xb = r.normal(size=7), r.normal(size=7)
    surf = S.interpolation(f, unr(jnp.asarray(xa, jnp.float32)), unr(jnp.asarray(xb, jnp.float32)), num=11, extend=0.3)
    t = surf.axes[0]
    np.testing.assert_allclose(t[[3, 13]], [0.0, 1.0], atol=1e-12)
    assert t[0] == pytest.approx(-0.3) and t[-1] == pytest.approx(1.3)
    q = lambda x: 0.5 * x @ a @ x + b @ x  # noqa: E731
    vals = surf.values["value"]
    np.testing.assert_allclose(vals[3], q(xa), rtol=1e-5)
    np.testing.assert_allclose(vals[13], q(xb), rtol=1e-5)
    # L(t) - chord = -1/2 t(1-t) (xb-xa)' A (xb-xa) <= 0 for convex f: barrier 0 at the ends
    bar = surf.meta["barriers"]["value"]
    assert bar["barrier"] == pytest.approx(0.0, abs=1e-4)
    inside = (t >= 0) & (t <= 1 + 1e-12)
    assert bar["barrier_midpoint"] == pytest.approx(vals[inside].max() - 0.5 * (q(xa) + q(xb)), rel=1e-5)
    np.testing.assert_allclose(surf.meta["distance"], np.linalg.norm(xb - xa), rtol=1e-5)


def test_barrier_of_a_known_curve():
    t = np.linspace(-0.5, 1.5, 41)
    loss = 1.0 + 0.5 * t + 2.0 * np.exp(-((t - 0.3) ** 2) / 0.01)
    b = S.barrier_of_curve(t, loss)
    inside = (t >= 0) & (t <= 1)
    chord = (1 - t) * loss[10] + t * loss[30]  # t[10] = 0, t[30] = 1
    assert b["barrier"] == pytest.approx(np.max((loss - chord)[inside]))
    assert b["t_max"] == pytest.approx(0.3)
    assert b["barrier_midpoint"] == pytest.approx(loss[inside].max() - 0.5 * (loss[10] + loss[30]))
    with pytest.raises(ConfigError, match="t = 0 and t = 1"):
        S.barrier_of_curve(np.linspace(0.1, 0.9, 5), np.zeros(5))


@pytest.fixture(scope="module")
def trained(blobs):
    model = ls.MLP(hidden=(8, 6), activation="tanh", output_activation="identity")
    ens = ls.train_ensemble(model, blobs, key=jax.random.key(0), seeds=4, loss="cross_entropy", steps=30,
                            optimizer=ls.OptimizerSpec("sgd", 0.5), log_every=10, snapshot_every=10, execution=ls.Execution(progress=False))
    return ens, {"train": (blobs.train.x, blobs.train.y), "test": (blobs.test.x, blobs.test.y)}


def test_first_layer_shortcut_equals_plain_evaluation(trained):
    ens, data = trained
    fn = ls.models.metrics_fn(ens.model, "cross_entropy")
    theta = ens.member(1)
    ds = D.random_directions(jax.random.key(5), theta, 2)
    fast = S.plane(fn, theta, ds, num=9, data=data, shortcut=True)
    slow = S.plane(fn, theta, ds, num=9, data=data, shortcut=False)
    assert set(fast.values) == {"train_loss", "train_accuracy", "test_loss", "test_accuracy"}
    for k in fast.values:
        np.testing.assert_allclose(fast.values[k], slow.values[k], rtol=2e-5, atol=1e-6)
    # and both equal a direct evaluation at a few points
    for i, j in [(0, 0), (4, 4), (8, 3)]:
        p = ls.tree.lincomb(theta, jnp.array([fast.axes[0][i], fast.axes[1][j]]), ds)
        direct = ls.models.metrics(ens.model, p, *data["test"], "cross_entropy")
        np.testing.assert_allclose(fast.values["test_loss"][i, j], direct["loss"], rtol=1e-5)


@pytest.mark.parametrize("chunk", [1, 7, 81, 1000])
def test_chunked_equals_unchunked(trained, chunk):
    ens, data = trained
    fn = ls.models.metrics_fn(ens.model, "cross_entropy")
    theta = ens.member(0)
    ds = D.random_directions(jax.random.key(6), theta, 2)
    ref = S.plane(fn, theta, ds, num=9, data=data, execution=ls.Execution(chunk_size=81))
    got = S.plane(fn, theta, ds, num=9, data=data, execution=ls.Execution(chunk_size=chunk))
    for k in ref.values:
        np.testing.assert_allclose(got.values[k], ref.values[k], rtol=1e-6, atol=1e-7)


def test_many_seeds_planes_in_one_call_equal_per_seed_loop(trained):
    ens, data = trained
    fn = ls.models.metrics_fn(ens.model, "cross_entropy")
    key = jax.random.key(9)
    many = S.random_planes(fn, ens.params, key=key, num=5, span=0.5, data=data)
    assert many.values["train_loss"].shape == (4, 5, 5) and len(many.meta["cosine"]) == 4
    for i in range(4):
        theta = ens.member(i)
        ds = D.random_directions(jax.random.fold_in(key, i), theta, 2)
        one = S.plane(fn, theta, ds, num=5, span=0.5, data=data)
        for k in one.values:
            np.testing.assert_allclose(many.values[k][i], one.values[k], rtol=1e-5, atol=1e-6)


def test_three_point_and_trajectory_planes(trained):
    ens, data = trained
    fn = ls.models.metrics_fn(ens.model, "cross_entropy")
    paths = [jax.tree_util.tree_map(lambda x, i=i: x[i], ens.trajectory.params) for i in range(3)]
    surf = S.three_point(fn, *[ens.member(i) for i in range(3)], num=7, data=data, paths=paths)
    assert surf.values["train_loss"].shape == (7, 7) and surf.extras["points"].shape == (3, 2)
    assert surf.extras["path_0"].shape == (4, 2)
    np.testing.assert_allclose(surf.extras["path_1"][-1], surf.extras["points"][1], atol=1e-3)
    # the loss at each solution, evaluated through the plane, equals its own loss
    pl = ls.directions.three_point_plane(*[ens.member(j) for j in range(3)])
    v = S.evaluate(fn, pl.origin, [pl.u, pl.v], surf.extras["points"], data=data)
    np.testing.assert_allclose(v["train_loss"], ens.history.train_loss[:3, -1], rtol=1e-4)
    tr = S.trajectory_plane(fn, paths[0], num=7, data=data)
    assert tr.extras["path"].shape == (4, 2) and len(tr.meta["explained_variance_ratio"]) == 2
    centre = S.evaluate(fn, ens.member(0), [ens.member(0)], np.zeros((1, 1)), data=data)
    assert centre["train_loss"][0] == pytest.approx(ens.history.train_loss[0, -1], rel=1e-5)


def test_memory_stays_bounded_by_the_chunk(trained):
    """A 201x201 grid runs through the same compiled chunk as a 21x21 one: same per-call footprint."""
    ens, data = trained
    fn = ls.models.metrics_fn(ens.model, "cross_entropy")
    theta = ens.member(0)
    ds = D.random_directions(jax.random.key(1), theta, 2)
    small = S.plane(fn, theta, ds, num=21, data={"train": data["train"]}, execution=ls.Execution(chunk_size=64))
    big = S.plane(fn, theta, ds, num=201, data={"train": data["train"]}, execution=ls.Execution(chunk_size=64))
    assert big.values["train_loss"].shape == (201, 201)
    np.testing.assert_allclose(big.values["train_loss"][::10, ::10], small.values["train_loss"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda f, t, d: S.plane(f, t, [d, d], span=0.0), "span"),
        (lambda f, t, d: S.plane(f, t, [d, d], num=1), "at least 2"),
        (lambda f, t, d: S.plane(f, t, [d], num=3), "two directions"),
        (lambda f, t, d: S.evaluate(f, t, [d], np.zeros((0, 1))), "no points"),
        (lambda f, t, d: S.evaluate(f, t, [d], np.zeros((3, 2))), "shape"),
        (lambda f, t, d: S.evaluate(f, t, [d], np.full((3, 1), np.nan)), "finite"),
        (lambda f, t, d: S.evaluate(f, t, [d], np.zeros((3, 1)), execution=ls.Execution(chunk_size=0)), "chunk_size"),
        (lambda f, t, d: S.interpolation(f, t, d, num=1), "at least 2"),
    ],
)
def test_bad_slice_arguments(call, match):
    f, _, _, unr = quadratic()
    t = unr(jnp.ones(7, jnp.float32))
    with pytest.raises(ConfigError, match=match):
        call(f, t, t)


def test_compiled_slice_functions_are_reused(trained):
    """Planes of other seeds and directions with the same metric function (another object of
    the same model and loss) compile nothing new."""
    ens, batches = trained
    evaluator._compiled.cache_clear()
    for s in (0, 1):
        d = ls.directions.random_directions(jax.random.key(s), ens.member(s), 2)
        ls.surface.plane(ls.models.metrics_fn(ens.model, "cross_entropy"), ens.member(s), d, num=5, data=batches)
    info = evaluator._compiled.cache_info()
    assert (info.misses, info.hits) == (1, 1)


def test_a_dataset_is_taken_as_its_two_splits_and_a_split_as_one_batch():
    """The natural objects work: a ``Dataset`` gives ``train_*`` and ``test_*`` metrics equal to
    passing the splits by hand; a ``Split`` equals an ``(x, y)`` pair; a loss of the whole data
    set is refused with the library's own error."""
    data = ls.data.load("blobs")
    model = ls.models.MLP(hidden=(4,), activation="tanh", output_activation="identity").for_data(data)
    theta = model.init(jax.random.key(0))
    d = ls.directions.random_directions(jax.random.key(1), theta, 1)[0]
    fn = ls.models.metrics_fn(model, "cross_entropy")
    whole = ls.surface.line(fn, theta, d, num=5, data=data)
    by_hand = ls.surface.line(fn, theta, d, num=5, 
                              data={"train": (data.train.x, data.train.y), "test": (data.test.x, data.test.y)})
    assert set(whole.values) == {"train_loss", "train_accuracy", "test_loss", "test_accuracy"}
    for k in whole.values:
        np.testing.assert_array_equal(whole.values[k], by_hand.values[k])
    one = ls.surface.line(fn, theta, d, num=5, data=data.test)
    pair = ls.surface.line(fn, theta, d, num=5, data=(data.test.x, data.test.y))
    np.testing.assert_array_equal(one.values["loss"], whole.values["test_loss"])
    np.testing.assert_array_equal(one.values["loss"], pair.values["loss"])
    with pytest.raises(ls.ConfigError, match="expected one split of the data set"):
        ls.models.loss_fn(model, data, "cross_entropy")
    with pytest.raises(ls.ConfigError, match="expected a Split"):
        ls.models.loss_fn(model, 3.0, "cross_entropy")
