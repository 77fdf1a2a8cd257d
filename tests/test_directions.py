"""Directions: normalisations against hand computations on Flax layouts; planes; trajectory PCA."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from landscape.errors import ConfigError

import landscape as ls
from landscape import directions as D


def _params(seed=0):
    r = np.random.default_rng(seed)
    return {
        "Dense_0": {"kernel": r.normal(size=(5, 4)).astype(np.float32), "bias": r.normal(size=4).astype(np.float32)},
        "Conv_0": {"kernel": r.normal(size=(3, 3, 2, 6)).astype(np.float32), "bias": r.normal(size=6).astype(np.float32)},
        "scale": np.float32(r.normal(size=())),
    }


def _filter_by_hand(d, w):
    """Loop over output units j = the last axis of a Flax kernel."""
    out = np.array(d, dtype=np.float64)
    for j in range(w.shape[-1]):
        dj, wj = d[..., j], w[..., j]
        out[..., j] = dj * np.sqrt(np.sum(wj.astype(np.float64) ** 2)) / (np.sqrt(np.sum(dj.astype(np.float64) ** 2)) + 1e-10)
    return out


@pytest.mark.parametrize("ignore_biases", [True, False])
def test_filter_normalisation_matches_hand_computation(ignore_biases):
    w = _params(0)
    d = ls.tree.random_like(jax.random.key(3), w)
    out = D.normalize(d, w, norm="filter", ignore_biases=ignore_biases)
    for layer in ("Dense_0", "Conv_0"):
        np.testing.assert_allclose(out[layer]["kernel"], _filter_by_hand(np.asarray(d[layer]["kernel"]), w[layer]["kernel"]),
                                   rtol=1e-5, atol=1e-6)
        # every filter now has the norm of the corresponding weight filter
        k = np.asarray(out[layer]["kernel"])
        axes = tuple(range(k.ndim - 1))
        np.testing.assert_allclose(np.linalg.norm(k, axis=axes) if k.ndim == 2 else np.sqrt((k**2).sum(axes)),
                                   np.sqrt((w[layer]["kernel"] ** 2).sum(axes)), rtol=1e-5)
        if ignore_biases:
            np.testing.assert_array_equal(out[layer]["bias"], 0)
        else:
            np.testing.assert_array_equal(out[layer]["bias"], w[layer]["bias"])
    assert float(out["scale"]) == (0.0 if ignore_biases else float(w["scale"]))


def test_layer_and_model_normalisation_match_hand_computation():
    w = _params(1)
    d = ls.tree.random_like(jax.random.key(4), w)
    lay = D.normalize(d, w, norm="layer")
    for layer in ("Dense_0", "Conv_0"):
        dk, wk = np.asarray(d[layer]["kernel"], np.float64), w[layer]["kernel"].astype(np.float64)
        np.testing.assert_allclose(lay[layer]["kernel"], dk * np.linalg.norm(wk) / (np.linalg.norm(dk) + 1e-10), rtol=1e-5)
    mod = D.normalize(d, w, norm="model")
    wk = np.concatenate([w[l]["kernel"].ravel() for l in ("Conv_0", "Dense_0")]).astype(np.float64)
    dk = np.concatenate([np.asarray(d[l]["kernel"]).ravel() for l in ("Conv_0", "Dense_0")]).astype(np.float64)
    factor = np.linalg.norm(wk) / (np.linalg.norm(dk) + 1e-10)
    for layer in ("Dense_0", "Conv_0"):
        np.testing.assert_allclose(mod[layer]["kernel"], np.asarray(d[layer]["kernel"]) * factor, rtol=1e-5)
        np.testing.assert_array_equal(mod[layer]["bias"], 0)
    none = D.normalize(d, w, norm="none")
    np.testing.assert_array_equal(none["Dense_0"]["kernel"], d["Dense_0"]["kernel"])
    with pytest.raises(ConfigError, match="unknown normalisation"):
        D.normalize(d, w, norm="batch")


def test_random_directions_are_gaussian_keyed_and_nearly_orthogonal():
    w = {"k": np.ones((400, 300), np.float32)}
    d1, d2 = D.random_directions(jax.random.key(0), w, 2, norm="none")
    again = D.random_directions(jax.random.key(0), w, 2, norm="none")
    np.testing.assert_array_equal(d1["k"], again[0]["k"])
    assert abs(float(D.cosine(d1, d2))) < 0.01
    assert float(jnp.min(d1["k"])) < -3  # Gaussian, not uniform [0, 1)
    o1, o2 = D.random_directions(jax.random.key(0), w, 2, norm="none", orthogonal=True)
    assert abs(float(D.cosine(o1, o2))) < 1e-6
    np.testing.assert_allclose(ls.tree.norm(o2), ls.tree.norm(d2), rtol=1e-5)


def test_three_point_plane_reproduces_the_solutions():
    t = [_params(i) for i in range(3)]
    pl = D.three_point_plane(*t)
    assert abs(float(ls.tree.vdot(pl.u, pl.v))) < 1e-5
    np.testing.assert_allclose([ls.tree.norm(pl.u), ls.tree.norm(pl.v)], [1, 1], rtol=1e-5)
    for i in range(3):
        x, y = pl.coords[i]
        rebuilt = ls.tree.lincomb(pl.origin, jnp.array([x, y]), [pl.u, pl.v])
        np.testing.assert_allclose(ls.tree.ravel(rebuilt), ls.tree.ravel(t[i]), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(pl.coords[1, 0], ls.tree.norm(ls.tree.sub(t[1], t[0])), rtol=1e-6)
    with pytest.raises(ConfigError, match="collinear"):
        D.three_point_plane(t[0], t[1], ls.tree.axpy(2.0, ls.tree.sub(t[1], t[0]), t[0]))
    with pytest.raises(ConfigError, match="coincide"):
        D.three_point_plane(t[0], t[0], t[1])


@settings(max_examples=15, deadline=None)
@given(st.integers(3, 12), st.integers(0, 1000))
def test_trajectory_pca_matches_numpy_svd(k, seed):
    r = np.random.default_rng(seed)
    snaps = {"a": r.normal(size=(k, 4, 3)).astype(np.float32), "b": r.normal(size=(k, 5)).astype(np.float32)}
    pca = D.trajectory_pca(snaps)
    flat = np.concatenate([snaps["a"].reshape(k, -1), snaps["b"]], axis=1).astype(np.float64)
    rows = flat - flat[-1]
    s = np.linalg.svd(rows, compute_uv=False)
    np.testing.assert_allclose(pca.explained_variance_ratio, s[:2] ** 2 / np.sum(s**2), rtol=1e-6)
    basis = np.stack([np.concatenate([np.asarray(e["a"]).ravel(), np.asarray(e["b"])]) for e in pca.directions])
    np.testing.assert_allclose(basis @ basis.T, np.eye(2), atol=1e-5)
    np.testing.assert_allclose(pca.coords, rows @ basis.T, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(pca.coords[-1], 0, atol=1e-6)
    # the plane captures the stated share of the squared distances
    np.testing.assert_allclose(np.sum(pca.coords**2) / np.sum(rows**2), pca.explained_variance_ratio.sum(), rtol=1e-4)
    np.testing.assert_allclose(D.project(snaps, pca.origin, pca.directions), pca.coords, rtol=1e-4, atol=1e-4)


def test_trajectory_pca_of_one_member_of_an_ensemble():
    r = np.random.default_rng(3)
    snaps = {"a": r.normal(size=(3, 6, 4, 2)).astype(np.float32)}  # (M, K, ...)
    for m in range(3):
        alone = D.trajectory_pca({"a": snaps["a"][m]})
        picked = D.trajectory_pca(snaps, member=m)
        np.testing.assert_array_equal(picked.coords, alone.coords)
        np.testing.assert_array_equal(np.asarray(picked.directions[0]["a"]), np.asarray(alone.directions[0]["a"]))
        assert alone.coords[0].min() >= 0  # the sign convention: the first snapshot's coordinates
    with pytest.raises(ConfigError, match="member must be an index"):
        D.trajectory_pca(snaps, member=3)


@settings(max_examples=4, deadline=None)  # each example compiles its own program
@given(k=st.integers(1, 3), norm=st.sampled_from(D.NORMS), ignore_biases=st.booleans(), orthogonal=st.booleans(),
       seeds=st.lists(st.integers(0, 2**31 - 1), min_size=1, max_size=4, unique=True))
def test_member_directions_are_each_members_own_draw(k, norm, ignore_biases, orthogonal, seeds):
    """Member i's directions are random_directions(fold_in(key, ids[i]), member i) — the per-seed
    loop — whichever other members are drawn with it."""
    members = [{"w": jax.random.normal(jax.random.key(s % 97), (5, 3)), "b": jnp.full((3,), 0.5 + i)}
               for i, s in enumerate(seeds)]
    stacked = ls.tree.stack(members)
    key = jax.random.key(11)
    got = D.member_directions(key, np.asarray(seeds), stacked, k, norm=norm, ignore_biases=ignore_biases,
                              orthogonal=orthogonal)
    assert len(got) == k
    for i, (s, m) in enumerate(zip(seeds, members)):
        alone = D.random_directions(jax.random.fold_in(key, s), m, k, norm=norm, ignore_biases=ignore_biases,
                                    orthogonal=orthogonal)
        for g, a in zip(got, alone):
            for name in ("w", "b"):
                np.testing.assert_allclose(np.asarray(g[name][i]), np.asarray(a[name]), rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # the default compilation: 11 s for the MLP, 30-60 s for the CNN and the ResNet
@pytest.mark.parametrize("make", ["mlp", "cnn", "resnet"])
def test_the_draws_program_gives_the_bits_of_the_default_compilation(digits, make):
    """The Gaussian draws behind every random direction are their own program, compiled for a
    single run (on a CPU a short compilation): bitwise what XLA's default compilation gives, for
    one network (``random_directions``) and for every member of a stack (``member_directions``)."""
    from landscape.core.compile_options import run_once_options
    from landscape.geometry.directions import _draws, _gaussians

    model = {"mlp": ls.MLP(hidden=(8,)), "cnn": ls.models.CNN(channels=(4, 6)),
             "resnet": ls.models.ResNet(depth=6, width=4)}[make].for_data(digits)
    stacked = jax.jit(jax.vmap(model.init))(jax.random.split(jax.random.key(0), 3))
    one = ls.tree.take(stacked, 1)
    keys = jax.random.split(jax.random.key(7), 2)
    member_keys = jnp.stack([jax.random.split(jax.random.fold_in(jax.random.key(7), s), 2) for s in (4, 0, 9)])
    if jax.default_backend() == "cpu":
        assert run_once_options(_draws, keys, one) == {"xla_backend_optimization_level": 1}
    for k, params in ((keys, one), (member_keys, stacked)):
        got, default = _gaussians(k, params), jax.jit(_draws)(k, params)
        assert len(got) == 2
        for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(default)):
            assert a.shape == b.shape
            np.testing.assert_array_equal(a, b)
    # the draws are tree.random_like's, key by key (eager, leaf by leaf)
    for a, b in zip(jax.tree_util.tree_leaves(_gaussians(keys, one)[1]),
                    jax.tree_util.tree_leaves(ls.tree.random_like(keys[1], one))):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------- an ensemble's stacked parameters


@pytest.fixture(scope="module")
def small_ensemble(blobs):
    ens = ls.train_ensemble(ls.MLP(hidden=(4,)), blobs, key=jax.random.key(0), seeds=3, loss="cross_entropy",
                            steps=2, execution=ls.Execution(progress=False))
    return ens, ls.models.loss_fn(ens.model, blobs.train, "cross_entropy")


def test_stacked_parameters_where_one_network_s_are_expected_get_one_clear_error(small_ensemble):
    """`plane(fn, ens.params, …)` gave a raw broadcasting ValueError; `random_directions(key, ens.params, 2)`
    silently drew directions normalised across members."""
    ens, fn = small_ensemble
    with pytest.raises(ConfigError, match=r"ensemble's stacked parameters \(ens.params\). Pass one member, "
                                          r"ens.member\(i\), or use ls.directions.member_directions"):
        D.random_directions(jax.random.key(1), ens.params, 2)
    with pytest.raises(ConfigError, match=r"ens.member\(i\)"):
        D.random_direction(jax.random.key(1), ens.params)
    d = D.random_directions(jax.random.key(1), ens.member(0), 2)
    with pytest.raises(ConfigError, match=r"the parameters carry a member axis \(every leaf starts with 3: an "
                                          r"ensemble's stacked parameters, ens.params\): pass one member, "
                                          r"ens.member\(i\), or stacked=True"):
        ls.surface.plane(fn, ens.params, d, num=3)
    with pytest.raises(ConfigError, match="stacked=True, but these are one network's parameters"):
        ls.surface.plane(fn, ens.member(0), d, num=3, stacked=True)
    # the two right ways give the same numbers: one member's plane, and that member inside every member's
    one = ls.surface.plane(fn, ens.member(1), D.random_directions(jax.random.key(5), ens.member(1), 2), num=3)
    both = D.member_directions(jax.random.key(5), np.array([0, 1, 2]), ens.params)
    every = ls.surface.plane(fn, ens.params, both, num=3, stacked=True)
    assert every.values["value"].shape == (3, 3, 3) and np.all(np.isfinite(every.values["value"]))
    np.testing.assert_allclose(every.values["value"][1], ls.surface.plane(
        fn, ens.member(1), [ls.tree.take(x, 1) for x in both], num=3).values["value"], rtol=1e-6)
    assert one.values["value"].shape == (3, 3)


@given(widths=st.lists(st.integers(1, 6), min_size=2, max_size=5), members=st.integers(2, 5),
       conv=st.booleans())
@settings(max_examples=200, deadline=None)
def test_one_network_is_never_refused_as_stacked_and_stacked_networks_with_biases_always_are(widths, members, conv):
    """The check reads shapes only: a bias (h,) is 1-D in one network and (M, h) in a stack (the check
    itself is called here; random_directions calls it first, as the test above shows)."""
    net = {}
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        shape = (3, 3, a, b) if conv and i == 0 else (a, b)
        net[f"layer_{i}"] = {"kernel": np.zeros(shape, np.float32), "bias": np.zeros(b, np.float32)}
    D._refuse_member_axis(net, "random_directions")
    D._refuse_member_axis({f"W{i}": np.eye(widths[0], dtype=np.float32) for i in range(len(widths))},
                          "random_directions")  # a deep linear network: every leaf alike, never refused
    with pytest.raises(ConfigError, match=r"ens.member\(i\)"):
        D._refuse_member_axis(jax.tree_util.tree_map(lambda *x: np.stack(x), *[net] * members), "random_directions")
