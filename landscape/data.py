"""Data sets: the embedded digits, tensorflow-datasets sets, synthetic sets and user arrays.

Every loader returns a :class:`Dataset` whose inputs are flattened ``float32`` arrays of
shape ``(N, D)`` scaled to ``[0, 1]`` (images) and whose labels are ``int32`` class indices
of shape ``(N,)``.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from .core.errors import DataError, DataUnavailableError

__all__ = [
    "Split",
    "Dataset",
    "load",
    "available",
    "digits",
    "spirals",
    "blobs",
    "from_arrays",
    "from_tfds",
    "prepare_tfds",
    "DIGITS_TEST_FRACTION",
]

#: Fraction of the 1797 scikit-learn digits held out as the test split (450 images).
DIGITS_TEST_FRACTION = 0.25


class Split(NamedTuple):
    """One split of a data set: inputs ``x`` of shape ``(N, D)`` and labels ``y`` of shape ``(N,)``.

    Attributes:
      x: ``(N, D)`` float32 inputs.
      y: ``(N,)`` int32 labels.

    Examples:
      >>> split = ls.data.Split(np.zeros((4, 3), np.float32), np.array([0, 1, 1, 0], np.int32))
      >>> x, y = split                                   # an (x, y) pair
      >>> x.shape, y.tolist()
      ((4, 3), [0, 1, 1, 0])
    """

    x: np.ndarray
    y: np.ndarray


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """A classification data set with a train and a test split.

    Attributes:
      name: identifier used in run metadata (``digits``, ``mnist``, ``spirals`` ...).
      train: the training :class:`Split`: ``x`` ``float32 (N, D)``, ``y`` ``int32 (N,)``.
      test: the test :class:`Split`, likewise.
      num_classes: number of classes ``K``; labels lie in ``[0, K)``.
      options: the keyword arguments that reproduce the set (stored in run metadata).
      image_shape: ``(H, W, C)`` for a set of images (``H W C = D``: each row of ``x`` is an
        image flattened in C order, so ``x.reshape(N, H, W, C)`` restores the images for
        convolutional models); ``None`` for feature vectors.

    Examples:
      >>> d = ls.data.load("digits")
      >>> d.name, d.num_classes, d.image_shape, d.train.x.shape, d.test.x.shape
      ('digits', 10, (8, 8, 1), (1347, 64), (450, 64))
    """

    name: str
    train: Split
    test: Split
    num_classes: int
    options: dict = dataclasses.field(default_factory=dict)
    image_shape: tuple | None = None

    def __post_init__(self):
        if self.image_shape is not None:
            shape = tuple(int(n) for n in self.image_shape)
            if len(shape) != 3 or int(np.prod(shape)) != self.train.x.shape[1]:
                raise DataError(f"image_shape {shape} does not hold the {self.train.x.shape[1]} inputs of a row "
                                "(it must be (height, width, channels))")
            object.__setattr__(self, "image_shape", shape)

    @property
    def input_dim(self) -> int:
        """Number of input features ``D``."""
        return int(self.train.x.shape[1])

    def describe(self) -> dict:
        """JSON-ready summary for run metadata."""
        return {
            "name": self.name,
            "options": dict(self.options),
            "num_train": int(self.train.x.shape[0]),
            "num_test": int(self.test.x.shape[0]),
            "input_dim": self.input_dim,
            "image_shape": None if self.image_shape is None else list(self.image_shape),
            "num_classes": self.num_classes,
            "majority_rate": float(np.bincount(self.train.y, minlength=self.num_classes).max() / self.train.y.size),
        }


def _check_split(x, y, which: str, num_classes: int | None) -> Split:
    try:
        x = np.asarray(x)
        y = np.asarray(y)
    except Exception as exc:  # ragged lists and the like
        raise DataError(f"{which} arrays cannot be converted to numpy: {exc}") from None
    if x.ndim < 2:
        raise DataError(f"{which} inputs must have shape (N, ...) with at least 2 axes, got {x.shape}")
    if y.ndim != 1:
        raise DataError(f"{which} labels must have shape (N,), got {y.shape}")
    if x.shape[0] != y.shape[0]:
        raise DataError(f"{which} has {x.shape[0]} inputs but {y.shape[0]} labels")
    if x.shape[0] == 0:
        raise DataError(f"{which} split is empty")
    if str(x.dtype) in ("float16", "bfloat16"):
        raise DataError(f"{which} inputs are {x.dtype}; landscape computes in float32 — convert them first")
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise DataError(f"{which} inputs must be real numbers, got dtype {x.dtype}")
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise DataError(f"{which} labels must be integer class indices, got dtype {y.dtype}")
    # float32 inputs are kept as they are (a view, no copy): a data set is held once
    x = x.reshape(x.shape[0], -1).astype(np.float32, copy=False)
    if not all(np.isfinite(x[i:i + 8192]).all() for i in range(0, x.shape[0], 8192)):  # a bounded temporary
        raise DataError(f"{which} inputs contain NaN or infinite values")
    # range-checked in the labels' own dtype, before any cast could wrap them (2**32 + 1 -> 1)
    upper = num_classes if num_classes is not None else np.iinfo(np.int32).max
    if y.min() < 0 or y.max() >= upper:
        raise DataError(f"{which} labels must lie in [0, {upper}), got range [{y.min()}, {y.max()}]")
    return Split(x, y.astype(np.int32))


def _image_shape(shape) -> tuple | None:
    """``(H, W, C)`` of one example's shape: ``(H, W)`` images get one channel; anything but
    2 or 3 axes is not an image (``None``)."""
    shape = tuple(int(n) for n in shape)
    return shape + (1,) if len(shape) == 2 else (shape if len(shape) == 3 else None)


def from_arrays(
    x_train,
    y_train,
    x_test,
    y_test,
    *,
    num_classes: int | None = None,
    name: str = "arrays",
) -> Dataset:
    """A :class:`Dataset` from user arrays.

    Inputs may have any trailing shape: they are stored flattened, ``(N, D)``, cast to
    ``float32`` and not rescaled (``float32`` inputs are not copied: the data set holds a view
    of them, so change them afterwards and it changes); images ``(N, H, W, C)`` (or ``(N, H, W)``, one channel)
    keep their shape as the set's ``image_shape`` (for convolutional models).  Labels are
    integer class indices; ``num_classes`` defaults to ``max(label) + 1`` over both splits.

    Args:
      x_train: training inputs, ``(N, ...)``.
      y_train: training labels, ``(N,)`` integers in ``[0, K)``.
      x_test: test inputs, ``(N_test, ...)`` with the training inputs' trailing shape.
      y_test: test labels, ``(N_test,)``.
      num_classes: ``K`` (default: one more than the largest label).
      name: the set's name in run metadata.

    Returns:
      a :class:`Dataset`.

    Raises:
      DataError: shapes that disagree, labels that are not integers in ``[0, K)``, non-finite inputs.

    Examples:
      >>> rng = np.random.default_rng(0)
      >>> d = ls.data.from_arrays(rng.normal(size=(20, 2, 3)), np.arange(20) % 3,
      ...                         rng.normal(size=(6, 2, 3)), np.arange(6) % 3)
      >>> d.train.x.shape, d.num_classes                        # inputs flattened, classes counted
      ((20, 6), 3)
    """
    if num_classes is not None and (not isinstance(num_classes, int) or num_classes < 2):
        raise DataError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    train = _check_split(x_train, y_train, "train", num_classes)
    test = _check_split(x_test, y_test, "test", num_classes)
    if train.x.shape[1] != test.x.shape[1]:
        raise DataError(f"train inputs have {train.x.shape[1]} features but test inputs have {test.x.shape[1]}")
    k = num_classes if num_classes is not None else int(max(train.y.max(), test.y.max())) + 1
    if k < 2:
        raise DataError("a classification data set needs at least 2 classes")
    return Dataset(name=name, train=train, test=test, num_classes=k, image_shape=_image_shape(np.shape(x_train)[1:]))


def _stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic stratified split: per class, a seeded permutation, the first part to test."""
    rng = np.random.default_rng(seed)
    train_idx, test_idx = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(idx.size)]
        n_test = int(round(test_fraction * idx.size))
        test_idx.append(idx[:n_test])
        train_idx.append(idx[n_test:])
    return np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(test_idx))


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The digits' pixels ``(1797, 64)`` and labels ``(1797,)`` exactly as
    ``sklearn.datasets.load_digits`` returns them, read from the file scikit-learn ships
    without importing scikit-learn (which takes over a second); ``load_digits`` where the file
    is not found."""
    import gzip
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("sklearn")  # locates the package without importing it
    path = None if spec is None or spec.origin is None else (
        Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz")
    if path is not None and path.is_file():
        with gzip.open(path, "rt") as f:
            table = np.loadtxt(f, delimiter=",")
        if table.shape == (1797, 65):
            return table[:, :-1], table[:, -1].astype(int)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.data, bunch.target


def digits(*, test_fraction: float = DIGITS_TEST_FRACTION, split_seed: int = 0) -> Dataset:
    """scikit-learn's bundled 8×8 handwritten digits (1797 images, 10 classes), offline.

    Pixels (0–16) are divided by 16 to lie in ``[0, 1]``; each image is a 64-vector.  The split
    is stratified by class and deterministic: with the defaults, 1347 train and 450 test images.

    Args:
      test_fraction: share of the images held out for testing.
      split_seed: seed of the stratified split.

    Returns:
      a :class:`Dataset` named ``digits``, ``image_shape`` ``(8, 8, 1)``.

    Examples:
      >>> d = ls.data.digits(test_fraction=0.5)
      >>> d.train.x.shape[0] + d.test.x.shape[0], float(d.train.x.max())   # pixels scaled to [0, 1]
      (1797, 1.0)
    """
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    pixels, target = _digits_arrays()
    x = (pixels / 16.0).astype(np.float32)
    y = target.astype(np.int32)
    tr, te = _stratified_split(y, test_fraction, split_seed)
    return Dataset(
        name="digits",
        train=Split(x[tr], y[tr]),
        test=Split(x[te], y[te]),
        num_classes=10,
        options={"test_fraction": test_fraction, "split_seed": split_seed},
        image_shape=(8, 8, 1),
    )


def spirals(
    *, num_train: int = 1000, num_test: int = 500, noise: float = 0.2, turns: float = 1.5, seed: int = 0
) -> Dataset:
    """Two interleaved spirals in the plane (2 classes), a classic hard toy problem.

    Points of class ``c`` lie at angle ``t + c·π`` and radius ``t / (2π turns)`` for
    ``t ~ U(0, 2π turns)``, plus Gaussian noise of scale ``noise / 10``.

    Args:
      num_train: training points.
      num_test: test points.
      noise: noise scale (the Gaussian's standard deviation is ``noise / 10``).
      turns: how many turns each spiral makes.
      seed: seed of the points.

    Returns:
      a :class:`Dataset` named ``spirals`` with 2-D inputs and 2 classes.

    Examples:
      >>> d = ls.data.spirals(num_train=100, num_test=50)
      >>> d.train.x.shape, d.num_classes
      ((100, 2), 2)
    """
    _check_counts(num_train, num_test)
    rng = np.random.default_rng(seed)

    def sample(n):
        y = rng.integers(0, 2, size=n)
        t = rng.uniform(0.0, 2 * np.pi * turns, size=n)
        r = t / (2 * np.pi * turns)
        x = np.stack([r * np.cos(t + np.pi * y), r * np.sin(t + np.pi * y)], axis=1)
        x = x + rng.normal(scale=noise / 10.0, size=x.shape)
        return Split(x.astype(np.float32), y.astype(np.int32))

    opts = {"num_train": num_train, "num_test": num_test, "noise": noise, "turns": turns, "seed": seed}
    return Dataset("spirals", sample(num_train), sample(num_test), 2, opts)


def blobs(
    *,
    num_train: int = 1000,
    num_test: int = 500,
    num_classes: int = 3,
    dim: int = 2,
    spread: float = 1.0,
    seed: int = 0,
) -> Dataset:
    """Isotropic Gaussian blobs: class centres drawn from ``N(0, 4²)``, points ``N(centre, spread²)``.

    Args:
      num_train: training points.
      num_test: test points.
      num_classes: how many blobs (classes).
      dim: input dimension.
      spread: each blob's standard deviation.
      seed: seed of the centres and points.

    Returns:
      a :class:`Dataset` named ``blobs``.

    Examples:
      >>> d = ls.data.blobs(num_train=60, num_test=30, num_classes=4, dim=5)
      >>> d.train.x.shape, d.num_classes
      ((60, 5), 4)
    """
    _check_counts(num_train, num_test)
    if num_classes < 2 or dim < 1:
        raise DataError("blobs need num_classes >= 2 and dim >= 1")
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(num_classes, dim))

    def sample(n):
        y = rng.integers(0, num_classes, size=n)
        x = centres[y] + rng.normal(scale=spread, size=(n, dim))
        return Split(x.astype(np.float32), y.astype(np.int32))

    opts = {
        "num_train": num_train,
        "num_test": num_test,
        "num_classes": num_classes,
        "dim": dim,
        "spread": spread,
        "seed": seed,
    }
    return Dataset("blobs", sample(num_train), sample(num_test), num_classes, opts)


def _check_counts(num_train: int, num_test: int) -> None:
    if num_train < 1 or num_test < 1:
        raise DataError(f"num_train and num_test must be positive, got {num_train} and {num_test}")


# --------------------------------------------------------------------------- tensorflow-datasets

_TFDS_FILE_FORMAT = "array_record"  # random access without TensorFlow


def _tfds_builder(name: str, data_dir: str | None):
    import tensorflow_datasets as tfds

    try:
        return tfds.builder(name, data_dir=data_dir, file_format=_TFDS_FILE_FORMAT)
    except (tfds.core.registered.DatasetNotFoundError, ValueError):  # ValueError: not even a well-formed name
        raise DataError(
            f"unknown data set {name!r}: not a built-in set ({', '.join(sorted(_BUILTIN))}) "
            "nor a tensorflow-datasets name"
        ) from None


def _how_to_prepare(name: str, data_dir: str | None) -> str:
    where = f" --data-dir {data_dir}" if data_dir else ""
    return (
        f"run `landscape prepare {name}{where}` on a machine with internet access "
        f"(or `tfds build {name} --file_format=array_record`) and copy the data directory here"
    )


def _online(timeout: float = 3.0) -> bool:
    """Whether the tensorflow-datasets storage host answers within ``timeout`` seconds."""
    try:
        with socket.create_connection(("storage.googleapis.com", 443), timeout=timeout):
            return True
    except OSError:
        return False


def prepare_tfds(name: str, *, data_dir: str | None = None) -> str:
    """Download and prepare a tensorflow-datasets set in the random-access format.

    Fails within seconds with :class:`DataUnavailableError` when the machine is offline
    (tensorflow-datasets would otherwise retry for minutes).  Returns the data directory.

    Args:
      name: a tensorflow-datasets name, e.g. ``"mnist"``.
      data_dir: the tensorflow-datasets directory (default: its own default).

    Returns:
      the data directory.

    Raises:
      DataUnavailableError: offline, or the download failed.

    Examples:
      >>> ls.data.prepare_tfds("fashion_mnist")                 # doctest: +SKIP
    """
    builder = _tfds_builder(name, data_dir)
    if builder.is_prepared():
        return str(builder.data_dir)
    if not _online():
        raise DataUnavailableError(f"cannot prepare {name!r}: this machine is offline; {_how_to_prepare(name, data_dir)}")
    builder.download_and_prepare(file_format=_TFDS_FILE_FORMAT)
    return str(builder.data_dir)


def _read_source(source, image_key: str, label_key: str, chunk: int = 4096) -> tuple[Split, tuple]:
    n = len(source)
    xs, ys = [], []
    for start in range(0, n, chunk):
        keys = list(range(start, min(n, start + chunk)))
        try:
            records = source.__getitems__(keys)  # one batched read
        except (AttributeError, TypeError):  # older tfds, and tfds' mock data source
            records = [source[k] for k in keys]
        xs.append(np.stack([np.asarray(r[image_key]) for r in records]))
        ys.append(np.asarray([int(np.asarray(r[label_key])) for r in records]))
    x = np.concatenate(xs)
    y = np.concatenate(ys).astype(np.int32)
    if np.issubdtype(x.dtype, np.integer):
        scale = float(np.iinfo(x.dtype).max)
        x = x.astype(np.float32)
        x /= scale  # in place: one float32 copy of the images, not two
    return Split(x.reshape(n, -1).astype(np.float32, copy=False), y), tuple(x.shape[1:])


def from_tfds(
    name: str,
    *,
    data_dir: str | None = None,
    train_split: str = "train",
    test_split: str = "test",
    image_key: str = "image",
    label_key: str = "label",
    download: bool = False,
) -> Dataset:
    """An image-classification set from tensorflow-datasets, read with ``tfds.data_source``.

    No TensorFlow is needed: the set must be prepared in the ``array_record`` format.  Images
    are flattened and integer pixels divided by their dtype's maximum (255 for ``uint8``).
    With ``download=False`` (the default) an unprepared set raises
    :class:`DataUnavailableError` at once, saying how to prepare it; with ``download=True``
    it is prepared first (see :func:`prepare_tfds`).

    Args:
      name: a tensorflow-datasets name, e.g. ``"mnist"``, ``"fashion_mnist"``, ``"cifar10"``.
      data_dir: the tensorflow-datasets directory.
      train_split: the split to train on.
      test_split: the split to test on.
      image_key: the feature holding the images.
      label_key: the feature holding the labels.
      download: prepare the set first if it is missing (needs internet).

    Returns:
      a :class:`Dataset` whose ``image_shape`` is the images' ``(H, W, C)``.

    Raises:
      DataUnavailableError: the set is not prepared (and ``download`` is off, or the machine is offline).

    Examples:
      >>> import tempfile, tensorflow_datasets as tfds
      >>> with tfds.testing.mock_data(num_examples=8):          # random stand-in images, no download
      ...     d = ls.data.from_tfds("mnist", data_dir=tempfile.mkdtemp())
      >>> d.image_shape, d.train.x.shape
      ((28, 28, 1), (8, 784))
    """
    import tensorflow_datasets as tfds

    builder = _tfds_builder(name, data_dir)
    features = builder.info.features
    if image_key not in features or label_key not in features:
        raise DataError(f"{name!r} has no {image_key!r}/{label_key!r} features; not an image-classification set")
    num_classes = getattr(features[label_key], "num_classes", None)
    if not num_classes:
        raise DataError(f"{name!r}: feature {label_key!r} is not a class label")
    if download:
        prepare_tfds(name, data_dir=data_dir)
    splits = {}
    for which, split in (("train", train_split), ("test", test_split)):
        try:
            source = tfds.data_source(
                name,
                split=split,
                data_dir=data_dir,
                download=False,
                builder_kwargs={"file_format": _TFDS_FILE_FORMAT},
            )
        except (KeyError, NotImplementedError, FileNotFoundError, ValueError) as exc:
            raise DataUnavailableError(
                f"tensorflow-datasets set {name!r} (split {split!r}) is not prepared here "
                f"({type(exc).__name__}); {_how_to_prepare(name, data_dir)}"
            ) from None
        splits[which], shape = _read_source(source, image_key, label_key)
    opts = {"data_dir": data_dir, "train_split": train_split, "test_split": test_split}
    return Dataset(name, splits["train"], splits["test"], int(num_classes), opts, image_shape=_image_shape(shape))


# --------------------------------------------------------------------------- registry

_BUILTIN: dict[str, Callable[..., Dataset]] = {"digits": digits, "spirals": spirals, "blobs": blobs}


def available() -> list[str]:
    """Names of the built-in (offline) data sets; any tensorflow-datasets name works too.

    Examples:
      >>> ls.data.available()                                   # plus every tensorflow-datasets name
      ['blobs', 'digits', 'spirals']
    """
    return sorted(_BUILTIN)


def load(name: str, *, data_dir: str | None = None, download: bool = False, **options) -> Dataset:
    """Load a data set by name.

    ``digits`` (default, offline), ``spirals`` and ``blobs`` are built in and take their
    keyword ``options``; any other name is looked up in tensorflow-datasets
    (see :func:`from_tfds`).

    Args:
      name: ``"digits"``, ``"spirals"``, ``"blobs"`` or a tensorflow-datasets name.
      data_dir: the tensorflow-datasets directory (tensorflow-datasets names only).
      download: prepare a tensorflow-datasets set first if it is missing.
      **options: the keywords of :func:`digits`, :func:`spirals` or :func:`blobs`.

    Returns:
      a :class:`Dataset`.

    Raises:
      DataError: an unknown name or option.

    Examples:
      >>> ls.data.load("digits").train.x.shape                 # offline, bundled with scikit-learn
      (1347, 64)
      >>> ls.data.load("blobs", num_classes=4).num_classes      # options go to the set's own function
      4
    """
    if not isinstance(name, str) or not name:
        raise DataError(f"data set name must be a non-empty string, got {name!r}")
    if name in _BUILTIN:
        try:
            return _BUILTIN[name](**options)
        except TypeError as exc:
            raise DataError(f"bad options for {name!r}: {exc}") from None
    return from_tfds(name, data_dir=data_dir, download=download, **options)
