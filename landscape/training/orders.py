"""Per-member randomness of ensemble training: keys and data orders.

``k = fold_in(key, seed)``; ``init_key, order_key = split(k)``.  The init key draws the
parameters; the data order of epoch ``e`` is
``numpy.random.default_rng([*key_data(order_key), e]).permutation(N)`` (one permutation per
epoch, drawn on the host and passed in with each call, batches sliced from it, the last
``N mod B`` examples of each shuffled epoch dropped).  A member's result therefore depends
only on ``(key, seed, learning rate)``, never on which other members share the call.

A model with random layers (dropout) draws the noise of training step ``t`` from
``fold_in(fold_in(init_key, 2), t)`` (:func:`noise_key`), each of its streams from that key by
:func:`landscape.models.stream_key`: a member alone and inside any sweep sees the same masks.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["member_keys", "noise_stream", "noise_key", "NOISE_RULE"]

#: How a training step's noise key is derived, as recorded in a run's configuration.
NOISE_RULE = ("step t of seed s: fold_in(fold_in(init_key, 2), t), init_key = split(fold_in(key, s))[0]; "
              "stream n: fold_in(that, crc32(n) mod 2**31)")


def member_keys(key: jax.Array, seed: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(init_key, order_key)`` of one member: ``split(fold_in(key, seed))``.

    Args:
      key: the run's root key.
      seed: the member's seed.

    Returns:
      the key of its initial parameters and the key of its minibatch order.

    Examples:
      >>> init_key, batch_key = ls.train.member_keys(jax.random.key(0), jnp.asarray(3))   # seed 3's streams
      >>> bool(jnp.all(jax.random.key_data(init_key) != jax.random.key_data(batch_key)))
      True
    """
    k = jax.random.fold_in(key, seed)
    init_key, order_key = jax.random.split(k)
    return init_key, order_key


def noise_stream(init_key: jax.Array) -> jax.Array:
    """A member's noise stream, ``fold_in(init_key, 2)``: step ``t`` draws from ``fold_in(stream, t)``.

    Args:
      init_key: the member's init key (:func:`member_keys`).

    Returns:
      a PRNG key.

    Examples:
      >>> init_key, _ = ls.train.member_keys(jax.random.key(0), jnp.asarray(3))
      >>> k = jax.random.fold_in(ls.train.orders.noise_stream(init_key), 0)
      >>> bool(jnp.all(jax.random.key_data(k) == jax.random.key_data(ls.train.noise_key(jax.random.key(0), 3, 0))))
      True
    """
    return jax.random.fold_in(init_key, 2)


def noise_key(key: jax.Array, seed, step) -> jax.Array:
    """The noise key of one member's training step ``step``: ``fold_in(fold_in(init_key, 2), step)``
    with ``init_key`` of :func:`member_keys` (``fold_in(init_key, 1)`` is the tracked curvature's).
    Random layers draw from it (each stream from :func:`landscape.models.stream_key`).

    Args:
      key: the run's root key.
      seed: the member's seed.
      step: the training step (0 for the first).

    Returns:
      a PRNG key.

    Examples:
      >>> from flax import nnx
      >>> k = ls.train.noise_key(jax.random.key(0), 3, 0)            # seed 3's first step's dropout
      >>> model = ls.models.as_model(lambda rngs: nnx.Sequential(nnx.Linear(2, 3, rngs=rngs),
      ...                                                        nnx.Dropout(0.5, rngs=rngs)))
      >>> model.random_streams                                        # its one RngKey, by path
      ('layers/1/rngs/key',)
      >>> bound = model.for_data(ls.data.blobs(num_train=8, num_test=8))
      >>> out, _ = bound.apply_train(bound.init(jax.random.key(0)), {}, jnp.ones((4, 2)), rng=k)
      >>> out.shape
      (4, 3)
    """
    return jax.random.fold_in(noise_stream(member_keys(key, jnp.asarray(seed))[0]), step)


#: Host memory for one training call's minibatch orders (members × epochs × examples int32).
ORDERS_BYTES = 64 * 2**20


def epoch_order(order_words: np.ndarray, epoch: int, n: int) -> np.ndarray:
    """The data order of one member in one epoch: a uniformly random permutation of ``range(n)``.

    ``numpy.random.default_rng([*order_words, epoch]).permutation(n)`` where ``order_words``
    are the words of the member's order key (``jax.random.key_data``).  Drawn on the host:
    XLA's sort on a CPU is several times slower than NumPy's shuffle, and the permutation is
    needed only once per epoch.

    Args:
      order_words: the member's order key as words (``jax.random.key_data(order_key)``).
      epoch: the epoch's index.
      n: the number of training examples.

    Returns:
      ``(n,)`` int permutation.
    """
    return np.random.default_rng([int(w) for w in np.ravel(order_words)] + [int(epoch)]).permutation(n).astype(np.int32)


def epoch_orders(order_words: np.ndarray, first: int, num: int, n: int, last: int | None = None) -> np.ndarray:
    """``(M, num, n)`` int32: epochs ``first .. last`` (default ``first + num - 1``) of every member; zeros after.

    Args:
      order_words: ``(M, W)`` every member's order-key words.
      first: the first epoch.
      num: how many epochs the array holds.
      n: the number of training examples.
      last: the last epoch to draw (default ``first + num - 1``); rows after it are zeros.

    Returns:
      ``(M, num, n)`` int32: each row :func:`epoch_order` of that member and epoch.
    """
    last = first + num - 1 if last is None else last
    out = np.zeros((order_words.shape[0], num, n), np.int32)
    for i, words in enumerate(order_words):
        for e in range(first, last + 1):
            out[i, e - first] = epoch_order(words, e, n)
    return out
