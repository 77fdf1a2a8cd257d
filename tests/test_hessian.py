"""Curvature against a dense jax.hessian and eigvalsh."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import landscape as ls
from landscape import hessian as H
from landscape.curvature import ensemble as E
from landscape.curvature import stacked as S


@pytest.fixture(scope="module")
def small():
    d = ls.data.blobs(num_train=64, num_test=10, num_classes=3, dim=4, seed=1)
    model = ls.MLP(hidden=(5,), activation="tanh", output_activation="identity").for_data(d)
    params = model.init(jax.random.key(0))
    f = ls.models.loss_fn(model, d.train, "cross_entropy")
    dense = np.asarray(H.dense_hessian(f, params), np.float64)
    return model, d, params, f, dense, np.linalg.eigvalsh(dense)


def test_hvp_matches_dense_hessian(small):
    _, _, params, f, dense, _ = small
    v = ls.tree.random_like(jax.random.key(3), params)
    got = ls.tree.ravel(H.hvp(f, params, v))
    np.testing.assert_allclose(got, dense @ np.asarray(ls.tree.ravel(v)), rtol=1e-4, atol=1e-5)


def test_hvp_of_a_loss_with_a_custom_vjp_matches_the_dense_hessian():
    # reverse-over-forward cannot run forward mode through a jax.custom_vjp: hvp then takes the
    # forward-over-reverse product, the same matrix
    @jax.custom_vjp
    def squash(x):
        return jnp.tanh(x)

    squash.defvjp(lambda x: (jnp.tanh(x), x), lambda x, g: (g * (1 - jnp.tanh(x) ** 2),))
    a = jax.random.normal(jax.random.key(0), (6, 4))
    f = lambda p: jnp.sum(squash(a @ p["w"] + p["b"]) ** 2)  # noqa: E731
    params = {"w": jax.random.normal(jax.random.key(1), (4,)), "b": jnp.float32(0.3)}
    v = ls.tree.random_like(jax.random.key(2), params)
    want = np.asarray(H.dense_hessian(f, params)) @ np.asarray(ls.tree.ravel(v))
    for hvp in (H.hvp, jax.jit(H.hvp, static_argnums=0)):
        np.testing.assert_allclose(ls.tree.ravel(hvp(f, params, v)), want, rtol=1e-5, atol=1e-5)


def test_top_and_smallest_eigenvalues_match_eigvalsh(small):
    _, _, params, f, dense, ev = small

    @jax.jit
    def quantities(p):
        return (H.top_eigenpairs(f, p, 3, key=jax.random.key(1)),
                H.smallest_eigenvalue(f, p, key=jax.random.key(2), num_iters=ev.size),
                H.top_eigenvalues(f, p, ev.size, key=jax.random.key(5), num_iters=ev.size))

    top, lo, full = quantities(params)
    np.testing.assert_allclose(top.values, ev[::-1][:3], rtol=1e-3, atol=1e-4)
    for value, vec in zip(top.values, top.vectors):
        x = np.asarray(ls.tree.ravel(vec), np.float64)
        np.testing.assert_allclose(np.linalg.norm(x), 1.0, rtol=1e-4)
        np.testing.assert_allclose(dense @ x, float(value) * x, atol=2e-3)  # an eigenvector
    assert float(lo) == pytest.approx(ev[0], rel=1e-3, abs=1e-4)
    np.testing.assert_allclose(np.sort(np.asarray(full)), ev, atol=2e-4)
    eager = H.top_eigenvalues(f, params, 1, key=jax.random.key(1), num_iters=12)  # outside jit too
    assert float(eager[0]) == pytest.approx(ev[-1], rel=1e-3)


def test_hutchinson_trace_is_unbiased(small):
    _, _, params, f, dense, _ = small
    est = H.trace(f, params, key=jax.random.key(4), num_probes=4000)
    assert abs(float(est["trace"]) - np.trace(dense)) < 4 * float(est["stderr"]) + 1e-3
    assert float(est["stderr"]) < 0.2 * abs(np.trace(dense)) + 0.05


def test_spectral_density_integrates_to_one_with_mass_at_eigenvalues(small):
    _, _, params, f, _, ev = small
    den = H.spectral_density(f, params, key=jax.random.key(6), num_probes=3, num_iters=ev.size)
    np.testing.assert_allclose(np.asarray(den.weights).sum(axis=1), 1.0, rtol=1e-5)
    nodes = np.asarray(den.nodes)
    # with m = P the Ritz values are the eigenvalues: every node sits on a dense eigenvalue
    assert np.max(np.min(np.abs(nodes[..., None] - ev[None, None, :]), axis=-1)) < 1e-3
    # and the quadrature reproduces the normalised trace, E[w . nodes] = tr(H) / P
    np.testing.assert_allclose(np.mean(np.sum(np.asarray(den.weights) * nodes, axis=1)), ev.mean(), atol=0.05)
    grid = np.linspace(ev.min() - 1, ev.max() + 1, 4001)
    rho = H.density_on_grid(den, grid)
    assert np.trapezoid(rho, grid) == pytest.approx(1.0, abs=1e-3)


def _one_member(f, top_iters, probes, density_iters=None):
    """The single-member functions, jitted once per test: ``(member, key) -> (top, trace, nodes)``."""
    def ref(member, k):
        nodes = (H.spectral_density(f, member, key=k, num_probes=2, num_iters=density_iters).nodes
                 if density_iters else None)
        return (H.top_eigenvalues(f, member, 2, key=k, num_iters=top_iters),
                H.trace(f, member, key=k, num_probes=probes)["trace"], nodes)

    return jax.jit(ref)


@pytest.mark.slow  # the sequential-groups test below covers the same path in the fast suite
def test_many_members_in_one_call_equal_per_member(small):
    model, d, _, f, _, _ = small
    ens = ls.train_ensemble(model, d, key=jax.random.key(0), seeds=3, loss="cross_entropy", steps=5,
                            log_every=5, execution=ls.Execution(progress=False))
    key = jax.random.key(7)
    many = H.top_eigenvalues(f, ens.params, 2, stacked=True, key=key, num_iters=30)
    tr = H.trace(f, ens.params, stacked=True, key=key, num_probes=10)
    ref = _one_member(f, 30, 10)
    for i in range(3):
        one, t1, _ = ref(ens.member(i), jax.random.fold_in(key, i))
        np.testing.assert_allclose(many[i], one, rtol=1e-4)
        np.testing.assert_allclose(tr["trace"][i], t1, rtol=1e-4)


def test_quadratic_eigenvalues_exact():
    a = np.diag(np.arange(1.0, 11.0)).astype(np.float32)
    q = np.linalg.qr(np.random.default_rng(0).normal(size=(10, 10)))[0].astype(np.float32)
    mat = jnp.asarray(q @ a @ q.T)
    f = lambda p: 0.5 * p["x"] @ mat @ p["x"]  # noqa: E731
    p = {"x": jnp.ones(10)}
    np.testing.assert_allclose(H.top_eigenvalues(f, p, 2, key=jax.random.key(0), num_iters=10), [10, 9], rtol=1e-4)
    assert float(H.smallest_eigenvalue(f, p, key=jax.random.key(0), num_iters=10)) == pytest.approx(1.0, rel=1e-3)
    with pytest.raises(ls.ConfigError):
        H.top_eigenvalues(f, p, 11, key=jax.random.key(0))


def test_many_reuses_its_compiled_function_and_matches_single_members(small):
    model, d, params, f, _, _ = small
    stacked = ls.tree.stack([params, model.init(jax.random.key(1))])
    S._cached.cache_clear()
    a = H.top_eigenvalues(f, stacked, 2, stacked=True, key=jax.random.key(0), num_iters=12)
    b = H.top_eigenvalues(f, stacked, 2, stacked=True, key=jax.random.key(1), num_iters=12)
    info = S._cached.cache_info()
    assert (info.misses, info.hits) == (1, 1)
    for i in range(2):
        one = H.top_eigenvalues(f, ls.tree.take(stacked, i), 2, key=jax.random.fold_in(jax.random.key(0), i),
                                num_iters=12)
        np.testing.assert_allclose(a[i], one, rtol=1e-4)
    np.testing.assert_allclose(a, b, rtol=1e-3)  # a different start vector, the same top eigenvalues


@pytest.mark.slow  # the grouping policy itself is checked in the default suite (test_member_group_policy)
@pytest.mark.parametrize("group", [None, 4])
def test_members_in_sequential_groups_equal_per_member(small, monkeypatch, group):
    """On a CPU the ``stacked=True`` forms run vmapped groups one after another (the last
    one smaller here: 6 members in groups of 4 and 2); every member still gets its own answer."""
    model, _, _, f, _, _ = small
    stacked = ls.tree.stack([model.init(jax.random.key(s)) for s in range(6)])
    monkeypatch.setattr(S, "member_group", lambda n, convolutional=False, member_size=0: group)
    key = jax.random.key(3)
    top = H.top_eigenvalues(f, stacked, 2, stacked=True, key=key, num_iters=20)
    tr = H.trace(f, stacked, stacked=True, key=key, num_probes=6)
    den = H.spectral_density(f, stacked, stacked=True, key=key, num_probes=2, num_iters=8)
    assert top.shape == (6, 2) and tr["trace"].shape == (6,) and den.nodes.shape == (6, 2, 8)
    ref = _one_member(f, 20, 6, density_iters=8)
    for i in (0, 3, 5):  # first group (first and last member), the short last group
        one, t1, nodes = ref(ls.tree.take(stacked, i), jax.random.fold_in(key, i))
        np.testing.assert_allclose(top[i], one, rtol=1e-4)
        np.testing.assert_allclose(tr["trace"][i], t1, rtol=1e-4)
        np.testing.assert_allclose(den.nodes[i], nodes, rtol=1e-4, atol=1e-5)


def test_member_group_policy():
    assert S.member_group(H.CPU_GROUP) is None  # too few members to split
    expected = H.CPU_GROUP if jax.default_backend() == "cpu" else None
    assert S.member_group(64) == expected
    # a convolutional loss: one member at a time on a CPU (vmapped members interleave feature maps)
    assert S.member_group(64, convolutional=True) == (1 if jax.default_backend() == "cpu" else None)
    assert S.member_group(1, convolutional=True) is None
    # large members: the group halves until its parameters fit GROUP_PARAMETERS (memory)
    cpu = jax.default_backend() == "cpu"
    for size, group in [(3_498, 8), (S.GROUP_PARAMETERS // 8, 8), (S.GROUP_PARAMETERS // 8 + 1, 4),
                        (101_770, 4), (S.GROUP_PARAMETERS // 2, 2), (S.GROUP_PARAMETERS, 1), (10**7, 1)]:
        assert S.member_group(64, member_size=size) == (group if cpu else None), size
    assert S.member_group(4, member_size=101_770) is None  # one group holds them all
    assert S.member_group(5, member_size=101_770) == (4 if cpu else None)


def _block(params, dense, mask_fn):
    """The dense Hessian's block of the leaves ``mask_fn(path)`` picks, built independently from
    the flat layout (``ravel_pytree`` order = tree order)."""
    from landscape.tree import path_name

    idx, start = [], 0
    for p, x in jax.tree_util.tree_flatten_with_path(params)[0]:
        n = int(np.size(x))
        if mask_fn(path_name(p)):
            idx += list(range(start, start + n))
        start += n
    idx = np.asarray(idx)
    return dense[np.ix_(idx, idx)], idx


@pytest.mark.parametrize("select, picks", [
    ("Dense_0", lambda n: n.startswith("Dense_0/")),
    ("Dense_1/kernel", lambda n: n == "Dense_1/kernel"),
    (["Dense_0/bias", "Dense_1"], lambda n: n == "Dense_0/bias" or n.startswith("Dense_1/")),
    (lambda path, leaf: path.endswith("kernel"), lambda n: n.endswith("kernel")),
])
def test_parameter_subsets_match_the_dense_hessians_blocks(small, select, picks):
    _, _, params, f, dense, _ = small
    block, idx = _block(params, dense, picks)
    ev = np.linalg.eigvalsh(block)
    k = min(3, ev.size)

    @jax.jit  # one program for the four quantities (eager dispatch of each would dominate the test)
    def quantities(p):
        return (H.top_eigenpairs(f, p, k, key=jax.random.key(1), num_iters=ev.size, select=select),
                H.smallest_eigenvalue(f, p, key=jax.random.key(2), num_iters=ev.size, select=select),
                H.trace(f, p, key=jax.random.key(3), num_probes=1000, select=select),
                H.spectral_density(f, p, key=jax.random.key(4), num_probes=2, num_iters=ev.size, select=select))

    top, lo, tr, den = quantities(params)
    np.testing.assert_allclose(top.values, ev[::-1][:k], rtol=1e-3, atol=1e-4)
    x = np.asarray(ls.tree.ravel(top.vectors[0]), np.float64)  # full-shaped, zero outside the block
    outside = np.setdiff1d(np.arange(x.size), idx)
    assert np.all(x[outside] == 0)
    np.testing.assert_allclose(block @ x[idx], float(top.values[0]) * x[idx], atol=2e-3)
    assert float(lo) == pytest.approx(ev[0], rel=1e-3, abs=1e-4)
    assert abs(float(tr["trace"]) - np.trace(block)) < 4 * float(tr["stderr"]) + 1e-4
    np.testing.assert_allclose(np.sort(np.asarray(den.nodes[0])), ev, atol=2e-3)  # all Ritz values: the spectrum


@pytest.mark.slow  # block selection stays in the default suite: test_parameter_subsets_match_the_dense_hessians_blocks
def test_layers_and_per_layer_ensemble_curvature(small):
    model, d, params, f, dense, _ = small
    assert H.layers(params) == ["Dense_0", "Dense_1"]
    stacked = ls.tree.stack([params, ls.tree.scale(0.5, params)])
    per = {name: H.ensemble_curvature(f, stacked, key=jax.random.key(0), top=1, trace_probes=4, execution=ls.Execution(chunk_size=2),
                                      select=name) for name in H.layers(params)}
    many = {name: H.top_eigenvalues(f, stacked, 1, stacked=True, key=jax.random.key(1), select=[name])
            for name in H.layers(params)}
    dense_of = jax.jit(lambda p: H.dense_hessian(f, p))
    for name in H.layers(params):
        for i, member in enumerate(ls.tree.unstack(stacked)):
            dense_i = np.asarray(dense_of(member), np.float64)
            block, _ = _block(member, dense_i, lambda n, name=name: n.startswith(name + "/"))
            assert float(per[name]["top"][i, 0]) == pytest.approx(np.linalg.eigvalsh(block)[-1], rel=2e-3, abs=1e-4)
            assert float(many[name][i, 0]) == pytest.approx(np.linalg.eigvalsh(block)[-1], rel=2e-3, abs=1e-4)
    with pytest.raises(ls.ConfigError, match="no parameter matches"):
        H.top_eigenvalues(f, params, 1, key=jax.random.key(0), select="Dense_9")


@pytest.fixture(scope="module")
def explicit(small):
    """The Gauss–Newton matrix J^T H_out J and the empirical Fisher G^T G / N built from explicit
    Jacobians (``jax.jacrev``), independently of the products under test."""
    from jax.flatten_util import ravel_pytree

    model, d, params, f, _, _ = small
    flat, unravel = ravel_pytree(params)
    x, y = jnp.asarray(d.train.x), jnp.asarray(d.train.y)
    out = model.apply(params, x)
    jac = np.asarray(jax.jacrev(lambda p: model.apply(unravel(p), x).ravel())(flat), np.float64)  # (N K, P)
    h_out = np.asarray(jax.hessian(lambda o: ls.models.cross_entropy(o.reshape(out.shape), y))(out.ravel()),
                       np.float64)
    ggn = jac.T @ h_out @ jac
    per = ls.models.per_example_loss("cross_entropy")
    grads = np.asarray(jax.jacrev(lambda p: per(model.apply(unravel(p), x), y))(flat), np.float64)  # (N, P)
    fisher = grads.T @ grads / grads.shape[0]
    return ggn, fisher


@pytest.mark.parametrize("curvature", ["ggn", "fisher"])
def test_gauss_newton_and_fisher_match_explicit_jacobians(small, explicit, curvature):
    _, _, params, f, _, _ = small
    dense = dict(zip(("ggn", "fisher"), explicit))[curvature]
    v = ls.tree.random_like(jax.random.key(3), params)
    got = ls.tree.ravel(H.CURVATURES[curvature](f, params, v))
    np.testing.assert_allclose(got, dense @ np.asarray(ls.tree.ravel(v), np.float64), rtol=1e-4, atol=1e-5)
    ev = np.linalg.eigvalsh(dense)
    assert ev[0] > -1e-5  # positive semi-definite
    block, idx = _block(params, dense, lambda n: n.startswith("Dense_1/"))  # a layer's GGN block too

    @jax.jit
    def quantities(p):
        return (H.top_eigenvalues(f, p, 3, key=jax.random.key(1), num_iters=ev.size, curvature=curvature),
                H.trace(f, p, key=jax.random.key(2), num_probes=1000, curvature=curvature),
                H.top_eigenvalues(f, p, 1, key=jax.random.key(4), num_iters=idx.size, select="Dense_1",
                                  curvature=curvature))

    top, tr, sub = quantities(params)
    np.testing.assert_allclose(top, ev[::-1][:3], rtol=1e-3, atol=1e-4)
    assert abs(float(tr["trace"]) - np.trace(dense)) < 4 * float(tr["stderr"]) + 1e-4
    assert float(sub[0]) == pytest.approx(np.linalg.eigvalsh(block)[-1], rel=1e-3, abs=1e-4)
    many = H.top_eigenvalues(f, ls.tree.stack([params]), 2, stacked=True, key=jax.random.key(1), num_iters=ev.size,
                                  curvature=curvature)
    np.testing.assert_allclose(many[0], ev[::-1][:2], rtol=1e-3, atol=1e-4)
    with pytest.raises(ls.ConfigError, match="needs a loss that exposes"):
        H.top_eigenvalues(lambda p: f(p), params, 1, key=jax.random.key(0), curvature=curvature)


# ---------------------------------------------------------------------- mini-batches


def test_batched_loss_accumulates_exactly_the_full_data_curvature(small, explicit):
    """Batches of 10 over 64 examples (a rest of 4): the same loss, spectrum, Gauss–Newton and
    Fisher as one evaluation, for the whole network and for a layer's block."""
    model, d, params, f, dense, ev = small
    fb = ls.models.loss_fn(model, d.train, "cross_entropy", batch_size=10)
    assert isinstance(fb, ls.models.BatchedLoss) and fb.num_batches == 7
    assert float(fb(params)) == pytest.approx(float(f(params)), rel=1e-6)
    block, _ = _block(params, dense, lambda n: n.startswith("Dense_1/"))

    @jax.jit
    def quantities(p):
        return (H.top_eigenvalues(fb, p, ev.size, key=jax.random.key(5), num_iters=ev.size),
                [H.top_eigenvalues(fb, p, 2, key=jax.random.key(1), num_iters=ev.size, curvature=c)
                 for c in ("ggn", "fisher")],
                H.smallest_eigenvalue(fb, p, key=jax.random.key(2), num_iters=block.shape[0], select="Dense_1"),
                H.trace(fb, p, key=jax.random.key(3), num_probes=1000))

    full, gauss_fisher, sub, tr = quantities(params)
    np.testing.assert_allclose(np.sort(np.asarray(full)), ev, atol=2e-4)  # every eigenvalue
    for got, ref in zip(gauss_fisher, explicit):
        np.testing.assert_allclose(got, np.linalg.eigvalsh(ref)[::-1][:2], rtol=1e-3, atol=1e-4)
    assert float(sub) == pytest.approx(np.linalg.eigvalsh(block)[0], rel=1e-3, abs=1e-4)
    assert abs(float(tr["trace"]) - np.trace(dense)) < 4 * float(tr["stderr"]) + 1e-4


def test_batches_cut_on_the_host_equal_batches_cut_on_the_device(small):
    """The examples of a batched or mini-batch loss are the same whether the split is held on the
    host (numpy: cut as views, transferred once) or already on the device (JAX arrays)."""
    model, d, params, f, _, _ = small
    on_device = ls.data.Split(jnp.asarray(d.train.x), jnp.asarray(d.train.y))
    for make in (lambda s: ls.models.loss_fn(model, s, "cross_entropy", batch_size=10),
                 lambda s: ls.models.minibatch_loss(model, s, "cross_entropy", batch_size=12, num_batches=4,
                                                    key=jax.random.key(7))):
        host, device = make(d.train), make(on_device)
        assert jax.tree_util.tree_structure(host) == jax.tree_util.tree_structure(device)
        for a, b in zip(jax.tree_util.tree_leaves(host), jax.tree_util.tree_leaves(device)):
            assert isinstance(a, jax.Array) and a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)
        assert float(host(params)) == float(device(params))
    whole = ls.models.loss_fn(model, d.train, "cross_entropy")
    assert all(isinstance(a, jax.Array) for a in jax.tree_util.tree_leaves(whole))


@pytest.mark.slow  # a compilation per batch size drawn
@settings(max_examples=6, deadline=None)
@given(batch_size=st.integers(1, 70))
def test_any_batch_size_gives_the_one_evaluation_spectrum(small, batch_size):
    model, d, params, f, dense, ev = small
    fb = ls.models.loss_fn(model, d.train, "cross_entropy", batch_size=batch_size)
    assert float(fb(params)) == pytest.approx(float(f(params)), rel=1e-5)
    got = H.top_eigenvalues(fb, params, 4, key=jax.random.key(0), num_iters=ev.size)
    np.testing.assert_allclose(got, ev[::-1][:4], rtol=1e-3, atol=2e-4)


@pytest.mark.slow  # 9-20 s: the default suite stays near five minutes on 2 cores
def test_minibatch_estimates_match_each_batchs_dense_hessian(small):
    model, d, params, f, _, _ = small
    mb = ls.models.minibatch_loss(model, d.train, "cross_entropy", batch_size=12, num_batches=4,
                                  key=jax.random.key(7))
    (xs, ys), w = mb.groups[0]
    assert xs.shape == (4, 12, 4) and w == pytest.approx(0.25)
    rows = {tuple(np.round(r, 6)) for r in np.asarray(d.train.x)}
    drawn = [tuple(np.round(r, 6)) for r in np.asarray(xs).reshape(-1, 4)]
    assert len(set(drawn)) == 48 and set(drawn) <= rows  # disjoint, from the training set
    per = H.minibatch_curvature(mb, params, key=jax.random.key(1), top=2, num_iters=43, trace_probes=2000)
    stacked = ls.tree.stack([params, ls.tree.scale(0.7, params)])
    ens = H.ensemble_curvature(f, stacked, key=jax.random.key(0), top=2, num_iters=43, trace_probes=8,
                               minibatches=mb, execution=ls.Execution(chunk_size=2))
    assert ens["batch_top"].shape == (2, 4, 2) and ens["batch_trace"].shape == (2, 4)
    # the reference: a dense Hessian of each batch's own loss (one compiled program for all of them)
    dense_of = jax.jit(lambda x, y, p: H.dense_hessian(
        ls.models.loss_fn(model, ls.data.Split(x, y), "cross_entropy"), p))
    for b in range(4):
        dense_b = np.asarray(dense_of(xs[b], ys[b], params), np.float64)
        np.testing.assert_allclose(per["top"][b], np.linalg.eigvalsh(dense_b)[::-1][:2], rtol=1e-3, atol=1e-4)
        assert abs(float(per["trace"][b]) - np.trace(dense_b)) < 4 * float(per["trace_stderr"][b]) + 1e-4
        for i, member in enumerate(ls.tree.unstack(stacked)):
            ref = np.linalg.eigvalsh(np.asarray(dense_of(xs[b], ys[b], member), np.float64))[::-1][:2]
            np.testing.assert_allclose(ens["batch_top"][i, b], ref, rtol=1e-3, atol=1e-4)
    with pytest.raises(ls.ConfigError, match="need 130 examples; the training set has 64"):
        ls.models.minibatch_loss(model, d.train, "cross_entropy", batch_size=13, num_batches=10,
                                 key=jax.random.key(0))
    with pytest.raises(ls.ConfigError, match="batches of one size"):  # 64 = 6 x 10 + a rest of 4
        H.minibatch_curvature(ls.models.loss_fn(model, d.train, "cross_entropy", batch_size=10), params,
                              key=jax.random.key(0))


# ---------------------------------------------------------------------- curvature over a slice


def test_curvature_map_matches_the_analytic_hessian_at_every_point():
    """f(θ) = ½ θᵀAθ + Σ b_i θ_i³ / 6 has the Hessian A + diag(b θ), different at every point."""
    from jax.flatten_util import ravel_pytree

    rng = np.random.default_rng(0)
    a_mat = rng.normal(size=(8, 8))
    a_mat = (a_mat + a_mat.T) / 2
    b = rng.normal(size=8)
    _, unravel = ravel_pytree({"v": jnp.zeros(2), "w": jnp.zeros((3, 2))})

    def f(p):
        t = ravel_pytree(p)[0]
        return 0.5 * t @ jnp.asarray(a_mat, jnp.float32) @ t + jnp.sum(jnp.asarray(b, jnp.float32) * t**3) / 6

    def flat(p):
        return np.asarray(ravel_pytree(p)[0], np.float64)

    c, d1, d2 = (unravel(jnp.asarray(rng.normal(size=8), jnp.float32)) for _ in range(3))
    axis = np.linspace(-1, 1, 5)
    coords = np.stack([g.ravel() for g in np.meshgrid(axis, axis, indexing="ij")], axis=1)
    got = H.curvature_map(f, c, [d1, d2], coords, key=jax.random.key(0), num_iters=8, trace_probes=2000,
                          execution=ls.Execution(chunk_size=7))
    for g, (p, q) in enumerate(coords):
        ev = np.linalg.eigvalsh(a_mat + np.diag(b * (flat(c) + p * flat(d1) + q * flat(d2))))
        assert float(got["lambda_max"][g]) == pytest.approx(ev[-1], rel=1e-3, abs=1e-4)
        assert float(got["lambda_min"][g]) == pytest.approx(ev[0], rel=1e-3, abs=1e-4)
        assert float(got["ratio"][g]) == pytest.approx(abs(ev[0]) / abs(ev[-1]), rel=2e-3, abs=1e-4)
        assert abs(float(got["trace"][g]) - ev.sum()) < 4 * float(got["trace_stderr"][g]) + 1e-3
    # one slice per member, vmapped together: member 0 equals the unstacked map
    stacked = H.curvature_map(f, ls.tree.stack([c, ls.tree.scale(0.5, c)]),
                              [ls.tree.stack([d1, d1]), ls.tree.stack([d2, d2])], coords, key=jax.random.key(0),
                              num_iters=8, stacked=True)
    assert stacked["lambda_max"].shape == (2, 25) and "trace" not in stacked
    np.testing.assert_allclose(stacked["lambda_max"][0], got["lambda_max"], rtol=1e-4, atol=1e-5)
    t1 = flat(ls.tree.scale(0.5, c)) + coords[3, 0] * flat(d1) + coords[3, 1] * flat(d2)
    assert float(stacked["lambda_min"][1, 3]) == pytest.approx(np.linalg.eigvalsh(a_mat + np.diag(b * t1))[0],
                                                               rel=1e-3, abs=1e-4)
    with pytest.raises(ls.ConfigError, match="coords must be"):
        H.curvature_map(f, c, [d1, d2], coords[:, :1], key=jax.random.key(0))


def test_the_same_loss_on_other_data_reuses_its_traced_program(small):
    """A built-in model's loss is a pytree whose leaves are its examples: a loss of the same
    model on a copy of the data (as the next command of a resident process reads it) or on other
    data of the same shapes has the same structure, so ensemble_curvature traces nothing again —
    equal data gives bitwise the same numbers; another model or loss is another structure."""
    model, d, params, _, _, _ = small
    copy = ls.data.Split(np.array(d.train.x, copy=True), np.array(d.train.y, copy=True))
    f1 = ls.models.loss_fn(model, d.train, "cross_entropy")
    same = jax.tree_util.tree_structure
    assert same(ls.models.loss_fn(model, copy, "cross_entropy")) == same(f1)
    assert same(ls.models.loss_fn(model, ls.data.Split(d.train.x + 1.0, d.train.y), "cross_entropy")) == same(f1)
    assert same(ls.models.loss_fn(model, d.train, "mse")) != same(f1)
    assert same(ls.models.loss_fn(model, d.train, "cross_entropy", batch_size=16)) != same(f1)
    stacked = ls.tree.stack([params, ls.tree.scale(0.5, params)])
    kw = dict(key=jax.random.key(3), top=2, num_iters=8, trace_probes=2)
    first = H.ensemble_curvature(f1, stacked, **kw)
    traced = E._vmapped_point.cache_info().misses
    again = H.ensemble_curvature(ls.models.loss_fn(model, copy, "cross_entropy"), stacked, **kw)
    other = H.ensemble_curvature(ls.models.loss_fn(model, ls.data.Split(d.train.x * 2.0, d.train.y), "cross_entropy"),
                                 stacked, **kw)
    assert E._vmapped_point.cache_info().misses == traced  # no new program, for equal or other data
    for k in first:
        np.testing.assert_array_equal(first[k], again[k])
    assert not np.allclose(first["top"], other["top"])  # other data: other numbers from the same program


@pytest.mark.slow  # ~10 s; test_the_same_loss_on_other_data_reuses_its_traced_program keeps the structural cache key fast
def test_no_compiled_program_keeps_the_data_alive(small):
    """The caches of compiled programs are keyed on structure, never on a function that holds
    data: once the caller lets go of its examples (and of its own closure over them), nothing of
    the library keeps them — surfaces, stacked eigenvalues, ensemble curvature, barriers."""
    import gc
    import weakref

    model, d, params, _, _, _ = small
    stacked = ls.tree.stack([params, ls.tree.scale(0.5, params)])
    refs = []

    def use_and_forget():
        x, y = jax.device_put(np.array(d.train.x, copy=True)), jax.device_put(np.array(d.train.y, copy=True))
        refs.extend([weakref.ref(x), weakref.ref(y)])
        loss = ls.models.loss_fn(model, (x, y), "cross_entropy")
        closure = lambda p: loss(p)  # a user's own function of the parameters, over the same data  # noqa: E731
        H.top_eigenvalues(loss, stacked, 1, key=jax.random.key(0), num_iters=6, stacked=True)
        H.top_eigenvalues(closure, stacked, 1, key=jax.random.key(0), num_iters=6, stacked=True)
        H.ensemble_curvature(loss, stacked, key=jax.random.key(1), top=1, num_iters=6, trace_probes=1)
        H.ensemble_curvature(closure, stacked, key=jax.random.key(1), top=1, num_iters=6, trace_probes=1)
        fn = ls.models.metrics_fn(model, "cross_entropy")
        dirs = ls.directions.random_directions(jax.random.key(2), params, 2)
        ls.surface.plane(fn, params, dirs, num=3, data=(x, y))
        ls.surface.plane(lambda p: closure(p), params, dirs, num=3)
        ls.minima.barrier(closure, params, ls.tree.scale(0.5, params), num=3)

    use_and_forget()
    gc.collect()
    assert [r() for r in refs] == [None, None]


@settings(max_examples=25, deadline=None)
@given(m=st.integers(1, 30), seed=st.integers(0, 2**16), breaks=st.integers(0, 3), scale=st.floats(1e-3, 1e3))
def test_ritz_values_are_the_tridiagonals_eigenvalues_by_bisection(m, seed, breaks, scale):
    """The Ritz values (bisection inside the program, no LAPACK call) against float64 eigvalsh of
    the dense tridiagonal, with zero off-diagonals where Lanczos broke down and restarted."""
    rng = np.random.default_rng(seed)
    alpha = (scale * rng.standard_normal(m)).astype(np.float32)
    beta = (scale * np.abs(rng.standard_normal(max(m - 1, 0)))).astype(np.float32)
    if m > 1:
        beta[rng.integers(0, m - 1, size=breaks)] = 0.0
    tri = H.Tridiagonal(jnp.asarray(alpha), jnp.asarray(beta), jnp.zeros((m, 1)))
    got = np.asarray(jax.jit(H.ritz_values)(tri), np.float64)
    dense = np.diag(alpha.astype(np.float64)) + np.diag(beta.astype(np.float64), 1) + np.diag(beta.astype(np.float64), -1)
    want = np.linalg.eigvalsh(dense)
    assert np.all(np.diff(got) >= 0)  # ascending
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6 * np.max(np.abs(want)) + 1e-30)
