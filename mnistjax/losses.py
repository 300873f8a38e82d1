"""Losses and batch metrics of the chapter: ``mnist_loss`` and ``batch_accuracy`` for 3 vs 7,
softmax cross-entropy and accuracy for ten classes, bundled as a ``Task`` a Learner can take."""

from __future__ import annotations

from typing import Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax


def mnist_loss(predictions: jax.Array, targets: jax.Array) -> jax.Array:
    """The book's ``mnist_loss``: sigmoid, then how far each is from its target. (B,), (B,) -> ().

    targets are 1 for the first class (the book's "is a 3") and 0 for the second.
    """
    chex.assert_equal_shape([predictions, targets])
    predictions = jax.nn.sigmoid(predictions)
    return jnp.where(targets == 1, 1 - predictions, predictions).mean()


def batch_accuracy(xb: jax.Array, yb: jax.Array) -> jax.Array:
    """The book's ``batch_accuracy``: sigmoid > 0.5 agrees with the 0/1 target. (B,), (B,) -> ()."""
    chex.assert_equal_shape([xb, yb])
    return ((jax.nn.sigmoid(xb) > 0.5) == (yb == 1)).mean()


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Softmax cross-entropy (optax's), mean over the batch. (B, K) float, (B,) int -> ()."""
    chex.assert_rank([logits, labels], [2, 1])
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


class Task(NamedTuple):
    """What "right" means: a loss of (logits, class index) and the class index a logit predicts.

    Class indices are positions in the chosen classes: for (3, 7), 3 -> 0 and 7 -> 1.
    """

    loss: Callable[[jax.Array, jax.Array], jax.Array]
    predict: Callable[[jax.Array], jax.Array]
    n_out: int


# Two classes, one logit: the book's set-up, where the first class is the positive one ("is a 3").
binary = Task(lambda logits, y: mnist_loss(logits, (y == 0).astype(jnp.int32)),
              lambda logits: jnp.where(jax.nn.sigmoid(logits) > 0.5, 0, 1).astype(jnp.int32), 1)
# Any number of classes, one logit each.
multiclass = Task(cross_entropy, lambda logits: jnp.argmax(logits, -1).astype(jnp.int32), 0)


def task_for(n_classes: int) -> Task:
    return binary if n_classes == 2 else multiclass._replace(n_out=n_classes)
