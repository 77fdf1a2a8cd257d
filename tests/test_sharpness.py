"""Sharpness measures against analytic answers, explicit loops and the invariance they claim."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import landscape as ls
from landscape.core.errors import ConfigError

from .clirun import run


def _quadratic(eigs, seed, center):
    """``½ (θ − c)ᵀ A (θ − c)`` with eigenvalues ``eigs`` in a random basis: its Hessian ``A``."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(len(eigs), len(eigs))))
    a = jnp.asarray(q @ np.diag(eigs) @ q.T, jnp.float32)
    c = jnp.asarray(center, jnp.float32)
    return (lambda p: 0.5 * (p["w"] - c) @ a @ (p["w"] - c)), {"w": c}


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.floats(0.1, 10.0), min_size=2, max_size=6), st.integers(0, 1000), st.floats(0.01, 1.0))
def test_worst_case_at_a_quadratic_minimum_is_half_lambda_max_rho_squared(eigs, seed, rho):
    eigs = sorted(eigs, reverse=True)
    eigs[0] = eigs[0] * 1.5 + 0.5  # a clear gap, so that 60 ascent steps converge
    loss, theta = _quadratic(eigs, seed, np.linspace(-1, 1, len(eigs)))
    s = ls.sharpness.worst_case(loss, theta, rho=rho, steps=60, key=jax.random.key(seed))
    np.testing.assert_allclose(float(s), 0.5 * eigs[0] * rho**2, rtol=2e-3)


def test_average_case_and_pac_bayes_at_a_quadratic_minimum():
    eigs = [6.0, 3.0, 1.0, 0.5, 0.25]
    loss, theta = _quadratic(eigs, 3, np.ones(5))
    tr = sum(eigs)
    e = ls.sharpness.average_case(loss, theta, sigma=0.2, samples=4000, key=jax.random.key(1))
    assert abs(float(e.value) - 0.5 * 0.04 * tr) < 4 * float(e.stderr)
    assert float(e.stderr) < 0.03 * 0.5 * 0.04 * tr  # the estimate is tight enough to mean something
    s = ls.sharpness.pac_bayes_sigma(loss, theta, target=0.1, samples=4000, key=jax.random.key(2))
    exact = np.sqrt(2 * 0.1 / tr)
    assert float(s.low) < float(s.value) < float(s.high)
    assert float(s.low) <= exact * 1.01 and exact * 0.99 <= float(s.high)
    np.testing.assert_allclose(float(s.value), exact, rtol=0.03)
    # The interval shrinks with more draws, and the value agrees with average_case at it.
    at = ls.sharpness.average_case(loss, theta, sigma=float(s.value), samples=4000, key=jax.random.key(2))
    np.testing.assert_allclose(float(at.value), 0.1, rtol=1e-3)


def test_one_step_without_a_key_is_sams_estimate():
    loss, _ = _quadratic([3.0, 1.0, 0.5], 0, np.zeros(3))
    theta = {"w": jnp.array([0.3, -0.2, 0.5])}
    g = jax.grad(loss)(theta)["w"]
    sam = loss({"w": theta["w"] + 0.1 * g / jnp.linalg.norm(g)}) - loss(theta)
    np.testing.assert_allclose(float(ls.sharpness.worst_case(loss, theta, rho=0.1, steps=1)), float(sam), rtol=1e-5)
    # Exactly at a critical point the gradient vanishes: without a random start the ascent stays there.
    at_min = {"w": jnp.zeros(3)}
    assert float(ls.sharpness.worst_case(loss, at_min, rho=0.1, steps=5)) == 0.0
    assert float(ls.sharpness.worst_case(loss, at_min, rho=0.1, steps=5, key=jax.random.key(0))) > 0.0


@pytest.fixture(scope="module")
def relu_net(blobs):
    model = ls.MLP(hidden=(12,), activation="relu", output_activation="identity").for_data(blobs)
    ens = ls.train_ensemble(model, blobs, key=jax.random.key(0), seeds=3, loss="cross_entropy", steps=150,
                            optimizer=ls.optim.OptimizerSpec("sgd", 0.5),
                            execution=ls.Execution(progress=False))
    loss = ls.models.loss_fn(ens.model, blobs.train, "cross_entropy")
    return ens, loss


def _layers(params):
    paths = ls.tree.key_paths(params)
    kernels = [p.rsplit("/", 1)[0] for p in paths if p.endswith("kernel")]
    return kernels[0], kernels[1] + "/kernel"


@pytest.mark.slow  # 9-20 s: the default suite stays near five minutes on 2 cores
def test_adaptive_measures_are_invariant_to_relu_rescaling_and_plain_ones_are_not(relu_net, blobs):
    ens, loss = relu_net
    theta = ens.member(0)
    first, second = _layers(theta)
    scaled = ls.sharpness.rescale(theta, {first: 4.0, second: 0.25})
    x = blobs.train.x
    np.testing.assert_allclose(ens.model.apply(scaled, x), ens.model.apply(theta, x), rtol=1e-4, atol=1e-5)
    key = jax.random.key(7)
    kw = dict(rho=0.3, adaptive=True, steps=20, key=key)
    np.testing.assert_allclose(ls.sharpness.worst_case(loss, scaled, **kw), ls.sharpness.worst_case(loss, theta, **kw),
                               rtol=2e-3)
    for fn, extra in ((ls.sharpness.average_case, dict(sigma=0.1)), (ls.sharpness.pac_bayes_sigma, dict(target=0.05))):
        a = fn(loss, theta, samples=32, key=key, adaptive=True, **extra)
        b = fn(loss, scaled, samples=32, key=key, adaptive=True, **extra)
        np.testing.assert_allclose(np.asarray(b, float), np.asarray(a, float), rtol=2e-3)
    plain = ls.sharpness.worst_case(loss, theta, rho=0.05, steps=20, key=key)
    plain_scaled = ls.sharpness.worst_case(loss, scaled, rho=0.05, steps=20, key=key)
    assert abs(float(plain_scaled) / float(plain) - 1) > 0.2
    lmax = [float(ls.hessian.top_eigenvalues(loss, p, 1, key=key)[0]) for p in (theta, scaled)]
    assert abs(lmax[1] / lmax[0] - 1) > 0.2
    avg = [float(ls.sharpness.average_case(loss, p, sigma=0.05, samples=32, key=key).value) for p in (theta, scaled)]
    assert abs(avg[1] / avg[0] - 1) > 0.2
    # eta > 0 trades the invariance away, as documented
    e = [float(ls.sharpness.worst_case(loss, p, rho=0.3, adaptive=True, eta=0.5, key=key)) for p in (theta, scaled)]
    assert abs(e[1] / e[0] - 1) > 0.01


def test_m_sharpness_is_the_mean_of_every_batch_worst_case(relu_net):
    ens, loss = relu_net
    theta, key, m = ens.member(1), jax.random.key(3), 40
    got = ls.sharpness.worst_case(loss, theta, rho=0.1, steps=5, batch_size=m, key=key)
    order, ascent = jax.random.split(key)
    perm = np.asarray(jax.random.permutation(order, loss.x.shape[0]))
    k = loss.x.shape[0] // m
    each = []
    for b in range(k):
        idx = perm[b * m:(b + 1) * m]
        part = dataclasses.replace(loss, x=loss.x[idx], y=loss.y[idx])
        each.append(float(ls.sharpness.worst_case(part, theta, rho=0.1, steps=5, key=jax.random.fold_in(ascent, b))))
    np.testing.assert_allclose(float(got), np.mean(each), rtol=1e-5)
    # without a key: consecutive batches, ascents from zero
    plain = ls.sharpness.worst_case(loss, theta, rho=0.1, steps=5, batch_size=m)
    each = [float(ls.sharpness.worst_case(dataclasses.replace(loss, x=loss.x[b * m:(b + 1) * m],
                                                              y=loss.y[b * m:(b + 1) * m]), theta, rho=0.1, steps=5))
            for b in range(k)]
    np.testing.assert_allclose(float(plain), np.mean(each), rtol=1e-5)
    assert float(got) > float(ls.sharpness.worst_case(loss, theta, rho=0.1, steps=5, key=key))  # m-sharpness is larger
    with pytest.raises(ConfigError, match="holds its examples"):
        ls.sharpness.worst_case(lambda p: loss(p), theta, rho=0.1, batch_size=m)


@pytest.mark.slow  # 23 programs; the sharpness command's test computes stacked measures in the default suite
def test_stacked_equals_member_by_member(relu_net):
    ens, loss = relu_net
    key = jax.random.key(11)
    ex = ls.Execution(chunk_size=2)  # two chunks, the last one padded
    calls = [
        (ls.sharpness.worst_case, dict(rho=0.1, steps=4, key=key)),
        (ls.sharpness.worst_case, dict(rho=0.3, steps=4, key=key, adaptive=True)),
        (ls.sharpness.average_case, dict(sigma=0.05, samples=8, key=key)),
        (ls.sharpness.pac_bayes_sigma, dict(target=0.05, samples=8, key=key, iters=8)),
        (ls.sharpness.fisher_rao_norm, dict(distribution="model")),
    ]
    for fn, kw in calls:
        stacked = fn(loss, ens.params, stacked=True, execution=ex, **kw)
        for i in range(ens.num_members):
            one_kw = {**kw, "key": jax.random.fold_in(key, i)} if "key" in kw else kw
            alone = fn(loss, ens.member(i), **one_kw)
            np.testing.assert_allclose(np.asarray(jax.tree_util.tree_map(lambda v: v[i], stacked), float),
                                       np.asarray(alone, float), rtol=2e-5, atol=1e-7, err_msg=fn.__name__)


def test_fisher_rao_norm_against_per_example_gradients(relu_net):
    ens, loss = relu_net
    theta = ens.member(2)
    rows = lambda jac: np.stack([ls.tree.ravel(ls.tree.take(jac, i)) for i in range(loss.x.shape[0])])  # noqa: E731
    flat = np.asarray(ls.tree.ravel(theta))
    d = rows(jax.jacrev(loss.per_example)(theta)) @ flat  # <θ, ∇ℓ_i> from reverse-mode per-example gradients
    np.testing.assert_allclose(float(ls.sharpness.fisher_rao_norm(loss, theta)), np.sqrt(np.mean(d**2)), rtol=1e-4)
    # the model's distribution: mean over examples of sum_k p_k <θ, ∇ log p_k>²
    logp = jax.jacrev(lambda p: jax.nn.log_softmax(loss.outputs(p), axis=-1))(theta)  # leaves (N, K, ...)
    k = int(np.asarray(loss.outputs(theta)).shape[1])
    dlogp = np.stack([rows(jax.tree_util.tree_map(lambda g, c=c: g[:, c], logp)) @ flat for c in range(k)], axis=1)
    probs = np.asarray(jax.nn.softmax(loss.outputs(theta)))
    np.testing.assert_allclose(float(ls.sharpness.fisher_rao_norm(loss, theta, distribution="model")),
                               np.sqrt(np.mean(np.sum(probs * dlogp**2, axis=1))), rtol=1e-4)
    mse = ls.models.loss_fn(ens.model, (loss.x, loss.y), "mse")
    with pytest.raises(ConfigError, match="cross-entropy"):
        ls.sharpness.fisher_rao_norm(mse, theta, distribution="model")


def test_bad_settings_are_one_clear_error(relu_net):
    ens, loss = relu_net
    theta = ens.member(0)
    for call, match in [
        (lambda: ls.sharpness.worst_case(loss, theta, rho=0.0), "rho must be"),
        (lambda: ls.sharpness.worst_case(loss, theta, rho=0.1, eta=0.1), "adaptive"),
        (lambda: ls.sharpness.average_case(loss, theta, sigma=0.1, samples=1, key=jax.random.key(0)), "samples"),
        (lambda: ls.sharpness.pac_bayes_sigma(loss, theta, target=0.1, samples=4, key=jax.random.key(0),
                                              sigma_range=(1.0, 0.1)), "sigma_range"),
        (lambda: ls.sharpness.worst_case(loss, theta, rho=0.1, batch_size=10_000), "at least 10000"),
        (lambda: ls.sharpness.rescale(theta, {"nope": 2.0}), "no parameter at 'nope'"),
    ]:
        with pytest.raises(ConfigError, match=match):
            call()


def test_kendall_and_granulated_tau_by_hand():
    # pairs (1,2): concordant, (1,3): concordant, (2,3): discordant -> tau = (2 - 1) / 3
    assert ls.sharpness.kendall_tau([1, 2, 3], [0.1, 0.3, 0.2]) == pytest.approx(1 / 3)
    rng = np.random.default_rng(0)
    lr = np.repeat([0.1, 0.2, 0.4], 4)
    width = np.tile([8, 16, 32, 64], 3)
    gap = lr * 10 + rng.normal(scale=0.01, size=12)          # the gap follows the learning rate only
    measure = lr * 3 + width * 1e-3 + rng.normal(scale=1e-4, size=12)
    got = ls.sharpness.granulated_tau(measure, gap, {"lr": lr, "width": width})
    # varying lr at fixed width: the measure orders the gaps perfectly -> psi_lr = 1
    assert got["lr"] == pytest.approx(1.0)
    # varying width at fixed lr: the measure increases with width, the gap is noise: an explicit loop
    expect = np.mean([ls.sharpness.kendall_tau(measure[lr == v], gap[lr == v]) for v in (0.1, 0.2, 0.4)])
    assert got["width"] == pytest.approx(expect)
    assert got["granulated"] == pytest.approx((1.0 + expect) / 2)


@pytest.fixture(scope="module")
def swept_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sharpness") / "run"
    r = run("train", "--dataset", "blobs", "--hidden", "6", "--activation", "relu", "--loss", "cross_entropy",
            "--lr", "0.2,0.5", "--steps", "60", "--log-every", "30", "--seeds", "2", "--quiet", "--no-plot",
            "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out


def test_the_sharpness_command_stores_reuses_and_refuses(swept_run):
    out = swept_run
    args = ["sharpness", str(out), "--measures", "worst,fisher-rao", "--steps", "4", "--name", "two", "--quiet",
            "--no-plot"]
    r = run(*args)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("learning rate") == 2 and r.stdout.count("median") == 2
    arrays, meta = ls.io.load_result(out / "results" / "two")
    assert meta["measures"] == ["worst", "fisher-rao"] and "average" not in arrays
    assert np.all(arrays["worst"] >= 0) and arrays["fisher-rao"].shape == (4,)
    r = run(*args)
    assert r.returncode == 0 and "reused" in r.stdout
    r = run("sharpness", str(out), "--measures", "worst,flatness", "--quiet")
    assert r.returncode != 0 and "unknown sharpness measure 'flatness'" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.slow  # every measure from the command line, the figure and `plot`
def test_the_sharpness_command_end_to_end(swept_run):
    out = swept_run
    args = ["sharpness", str(out), "--measures", ",".join(ls.sharpness.MEASURES), "--samples", "6", "--steps", "4",
            "--batch-size", "50", "--quiet"]
    r = run(*args)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("learning rate") == 2 and r.stdout.count("median") == 2
    arrays, meta = ls.io.load_result(out / "results" / "sharpness")
    assert meta["kind"] == "sharpness" and meta["measures"] == list(ls.sharpness.MEASURES)
    for m in ls.sharpness.MEASURES:
        assert arrays[m].shape == (4,) and np.all(np.isfinite(arrays[m])), m
    assert np.all(arrays["pac-bayes_low"] <= arrays["pac-bayes"]) and np.all(arrays["pac-bayes"] <= arrays["pac-bayes_high"])
    assert (out / "figures" / "sharpness.png").stat().st_size > 1000
    # the stored numbers are the library's: member i of the j-th measure uses fold_in(fold_in(key, j), i)
    ens = ls.load_run(out)
    loss = ls.models.loss_fn(ens.model, ls.analyses.run_dataset(ens).train, "cross_entropy")
    key = jax.random.fold_in(jax.random.key(0), ls.sharpness.MEASURES.index("adaptive-worst"))
    again = ls.sharpness.worst_case(loss, ens.member(3), rho=0.5, adaptive=True, steps=4,
                                    key=jax.random.fold_in(key, 3))
    np.testing.assert_allclose(arrays["adaptive-worst"][3], float(again), rtol=1e-5)
    r = run(*args)
    assert r.returncode == 0 and "reused" in r.stdout
    r = run("plot", str(out / "results" / "sharpness.npz"), "--quiet")
    assert r.returncode == 0, r.stderr


def test_the_command_help_lists_every_measure():
    r = run("sharpness", "--help")
    text = " ".join(r.stdout.split())
    assert "from: " + ", ".join(ls.sharpness.MEASURES) in text
