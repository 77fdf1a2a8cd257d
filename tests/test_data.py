"""Data sets: the embedded digits, synthetic sets, user arrays and the tensorflow-datasets path."""

import numpy as np
import pytest
import tensorflow_datasets as tfds
from hypothesis import given, settings
from hypothesis import strategies as st
from landscape.errors import DataError, DataUnavailableError

import landscape as ls


def test_digits_split_is_deterministic_stratified_and_scaled():
    d = ls.data.load("digits")
    assert d.train.x.shape == (1347, 64) and d.test.x.shape == (450, 64)
    assert d.train.x.dtype == np.float32 and d.train.y.dtype == np.int32
    assert d.num_classes == 10 and d.input_dim == 64
    assert 0.0 <= d.train.x.min() and d.train.x.max() == 1.0
    # the split partitions the 1797 images: no image in both
    from sklearn.datasets import load_digits

    raw = load_digits().data / 16.0
    all_x = np.concatenate([d.train.x, d.test.x])
    assert all_x.shape[0] == raw.shape[0]
    assert len({r.tobytes() for r in all_x.round(4)}) == len({r.tobytes() for r in raw.astype(np.float32).round(4)})
    # stratified: every class has 25% (±1) in test
    counts = np.bincount(d.test.y, minlength=10) / (np.bincount(d.test.y, minlength=10) + np.bincount(d.train.y, minlength=10))
    assert np.all(np.abs(counts - 0.25) < 0.01)
    d2 = ls.data.load("digits")
    np.testing.assert_array_equal(d.train.x, d2.train.x)
    np.testing.assert_array_equal(d.test.y, d2.test.y)


def test_digits_read_without_sklearn_equal_load_digits():
    """The shipped file read directly gives exactly scikit-learn's arrays, in its order."""
    from sklearn.datasets import load_digits

    pixels, target = ls.data._digits_arrays()
    bunch = load_digits()
    np.testing.assert_array_equal(pixels, bunch.data)
    np.testing.assert_array_equal(target, bunch.target)


@pytest.mark.parametrize("name", ["spirals", "blobs"])
def test_synthetic_sets_are_seeded(name):
    a = ls.data.load(name, seed=1)
    b = ls.data.load(name, seed=1)
    c = ls.data.load(name, seed=2)
    np.testing.assert_array_equal(a.train.x, b.train.x)
    assert not np.array_equal(a.train.x, c.train.x)
    assert set(np.unique(a.train.y)) == set(range(a.num_classes))


def test_from_arrays_flattens_and_counts_classes():
    r = np.random.default_rng(0)
    d = ls.data.from_arrays(r.normal(size=(10, 2, 3)), np.arange(10) % 3, r.normal(size=(4, 6)), np.array([0, 1, 2, 0]))
    assert d.train.x.shape == (10, 6) and d.num_classes == 3 and d.train.x.dtype == np.float32


def test_from_arrays_holds_float32_inputs_without_a_copy():
    """float32 inputs are kept as a view (the data set is held once); other dtypes are cast; a
    NaN past the first block of rows checked is still found."""
    r = np.random.default_rng(0)
    x32 = r.random((12, 2, 3), dtype=np.float32)
    x64 = r.normal(size=(12, 6))
    d = ls.data.from_arrays(x32, np.arange(12) % 3, x64, np.arange(12) % 3)
    assert np.shares_memory(d.train.x, x32) and d.train.x.shape == (12, 6)
    np.testing.assert_array_equal(d.train.x, x32.reshape(12, 6))
    assert d.test.x.dtype == np.float32 and not np.shares_memory(d.test.x, x64)
    np.testing.assert_array_equal(d.test.x, x64.astype(np.float32))
    late_nan = np.zeros((9000, 2), np.float32)
    late_nan[8500, 1] = np.nan
    with pytest.raises(DataError, match="NaN"):
        ls.data.from_arrays(late_nan, np.arange(9000) % 2, x64, np.arange(12) % 2)


@pytest.mark.parametrize(
    "xtr, ytr, xte, yte, match",
    [
        (np.zeros((5, 3)), np.zeros(4, int), np.zeros((2, 3)), np.zeros(2, int), "5 inputs but 4 labels"),
        (np.zeros((0, 3)), np.zeros(0, int), np.zeros((2, 3)), np.zeros(2, int), "empty"),
        (np.zeros((5, 3)), np.zeros(5, int), np.zeros((2, 4)), np.zeros(2, int), "features"),
        (np.zeros((5, 3)), np.full(5, 0.5), np.zeros((2, 3)), np.zeros(2, int), "integer class"),
        (np.full((5, 3), np.nan), np.zeros(5, int), np.zeros((2, 3)), np.zeros(2, int), "NaN"),
        (np.zeros((5, 3), np.float16), np.zeros(5, int), np.zeros((2, 3)), np.zeros(2, int), "float16"),
        (np.zeros((5, 3)), -np.ones(5, int), np.zeros((2, 3)), np.zeros(2, int), "labels must lie"),
        (np.zeros(5), np.zeros(5, int), np.zeros((2, 3)), np.zeros(2, int), "at least 2 axes"),
    ],
)
def test_from_arrays_rejects_bad_arrays(xtr, ytr, xte, yte, match):
    with pytest.raises(DataError, match=match):
        ls.data.from_arrays(xtr, ytr, xte, yte)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 20), st.integers(1, 20), st.integers(1, 6), st.integers(1, 6))
def test_from_arrays_mismatches_are_data_errors(n_x, n_y, d_tr, d_te):
    x = np.zeros((n_x, d_tr))
    y = np.arange(n_y) % 2
    xte = np.zeros((3, d_te))
    yte = np.array([0, 1, 0])
    if n_x == n_y and d_tr == d_te:
        assert ls.data.from_arrays(x, y, xte, yte).train.x.shape == (n_x, d_tr)
    else:
        with pytest.raises(DataError):
            ls.data.from_arrays(x, y, xte, yte)


@pytest.mark.parametrize("name", ["no_such_set", "no such set", "mnist/", "a:b:c"])
def test_unknown_name_is_a_data_error(name):
    """A name tensorflow-datasets does not know, or cannot even parse (it raises a bare
    ValueError for those), is the library's DataError naming it."""
    with pytest.raises(DataError, match=f"unknown data set {name!r}"):
        ls.data.load(name)


@pytest.mark.parametrize("name, shape", [("mnist", 784), ("cifar10", 3072)])
def test_tfds_path_under_mock_data(name, shape, tmp_path):
    with tfds.testing.mock_data(num_examples=12):
        d = ls.data.load(name, data_dir=str(tmp_path))
    assert d.name == name and d.num_classes == 10
    assert d.train.x.shape == (12, shape) and d.test.x.shape == (12, shape)
    assert d.train.x.dtype == np.float32 and 0.0 <= d.train.x.min() and d.train.x.max() <= 1.0
    assert d.train.y.dtype == np.int32 and d.train.y.max() < 10


def test_tfds_mock_data_trains(tmp_path, key):
    with tfds.testing.mock_data(num_examples=16):
        d = ls.data.load("fashion_mnist", data_dir=str(tmp_path))
    ens = ls.train_ensemble(ls.MLP(hidden=(4,), output_activation="identity"), d, key=key, seeds=2, steps=3, log_every=1, execution=ls.Execution(progress=False))
    assert ens.history.train_loss.shape == (2, 4)


def test_unprepared_tfds_set_fails_fast_with_instructions(tmp_path, monkeypatch):
    """Without --download nothing is fetched, and nothing waits for the network."""
    def no_network(*a, **k):
        raise AssertionError("load() must not reach for the network")

    monkeypatch.setattr(ls.data, "_online", no_network)
    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", no_network)
    with pytest.raises(DataUnavailableError, match=r"not prepared.*landscape prepare mnist"):
        ls.data.load("mnist", data_dir=str(tmp_path))


def test_prepare_offline_fails_fast(tmp_path, monkeypatch):
    monkeypatch.setattr(ls.data, "_online", lambda timeout=3.0: False)
    with pytest.raises(DataUnavailableError, match="offline"):
        ls.data.prepare_tfds("mnist", data_dir=str(tmp_path))
