"""An epoch's batches: a fresh shuffle every epoch, a partial last batch filled and weighted 0, and
the augmentation of every step drawn at once.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp

from mnistjax.data.dataset import Data

if TYPE_CHECKING:
    from mnistjax.training import Learner


def batch_indices(key: jax.Array, n: int, batch_size: int, drop_last: bool = False,
                  shuffle: bool = True) -> tuple[jax.Array, jax.Array]:
    """An epoch's batches: indices (S, B) into range(n), in a fresh shuffle (range(n) itself unless
    ``shuffle``), and weights (S, B), 1 for the examples the epoch trains on.

    Every example appears exactly once with weight 1 (unless ``drop_last`` drops the last partial
    batch). A partial last batch is filled up to B with the epoch's first examples, weighted 0: one
    step to compile instead of two, and batch statistics (batch norm) still over real images.
    """
    order = jax.random.permutation(key, n) if shuffle else jnp.arange(n)
    steps = n // batch_size if drop_last else -(-n // batch_size)
    idx = jnp.resize(order, (steps, batch_size))  # cycles through the order to fill the last batch
    return idx, (jnp.arange(steps * batch_size) < n).reshape(steps, batch_size).astype(jnp.float32)


def epoch_batches(data_key, learner: Learner, data: Data, batches=None) -> tuple[jax.Array, jax.Array]:
    """An epoch's steps: what each step trains on and its weights (S, B). ``batches``: indices (S, B)
    into ``data.x_train`` and weights (default: ``batch_indices`` from ``data_key``). What each step
    trains on: its indices, or with ``learner.augment`` its augmented (images, labels), ``fold_in(data_key, i)``
    for step i."""
    idx, weights = batches or batch_indices(data_key, data.x_train.shape[0], learner.batch_size, learner.drop_last,
                                            learner.shuffle)
    if learner.augment is None:  # each step gathers its rows: XLA fuses that gather into the first layer
        return idx, weights
    # augmented before the steps, all batches at once: inside a step XLA would fuse the augmentation
    # into the first layer's patches and compute it again for every patch
    keys = jax.vmap(partial(jax.random.fold_in, data_key))(jnp.arange(idx.shape[0]))
    return jax.vmap(learner.augment)(keys, data.x_train[idx], data.y_train[idx]), weights
