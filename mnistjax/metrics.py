"""How good predictions are: accuracy (the book's ``batch_accuracy`` too), per class, balanced, confusion."""

from __future__ import annotations

from functools import partial

import chex
import jax
import jax.numpy as jnp


@jax.jit  # one compile, not one per eager op
def accuracy(pred: jax.Array, labels: jax.Array) -> jax.Array:
    """(N,) int, (N,) int -> () float32: the fraction of predictions equal to their labels."""
    chex.assert_equal_shape([pred, labels])
    return (pred == labels).mean()


def batch_accuracy(xb: jax.Array, yb: jax.Array) -> jax.Array:
    """The book's ``batch_accuracy``: sigmoid > 0.5 agrees with the 0/1 target. (B,), (B,) -> ()."""
    return accuracy(jax.nn.sigmoid(xb) > 0.5, yb == 1)


@partial(jax.jit, static_argnames="n_classes")
def confusion_matrix(pred: jax.Array, labels: jax.Array, n_classes: int) -> jax.Array:
    """(N,) int predictions and labels -> (K, K) int32 counts, rows = true class, columns = predicted."""
    chex.assert_equal_shape([pred, labels])
    chex.assert_type([pred, labels], int)
    return jnp.zeros((n_classes, n_classes), jnp.int32).at[labels, pred].add(1)


@partial(jax.jit, static_argnames="n_classes")
def per_class_accuracy(pred: jax.Array, labels: jax.Array, n_classes: int) -> jax.Array:
    """(N,) int, (N,) int -> (K,) float32: the fraction right within each class (NaN for an absent class)."""
    cm = confusion_matrix(pred, labels, n_classes)
    return jnp.diag(cm) / cm.sum(1)


@partial(jax.jit, static_argnames="n_classes")
def balanced_accuracy(pred: jax.Array, labels: jax.Array, n_classes: int) -> jax.Array:
    """Mean of the per-class accuracies over the classes present: the book's (acc_3 + acc_7) / 2."""
    return jnp.nanmean(per_class_accuracy(pred, labels, n_classes))
