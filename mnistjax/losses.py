"""Losses of the chapter, per example: ``mnist_loss`` for 3 vs 7 and softmax cross-entropy for any
number of classes, bundled as a ``Task`` a Learner can take.

A loss maps (logits, targets) to one value per example, (B,); the trainer takes their mean (weighted,
so a padded last batch counts only its real examples). The book's batch loss is ``loss(...).mean()``.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from mnistjax.errors import MnistjaxError, check_arguments


def mnist_loss(predictions: jax.Array, targets: jax.Array) -> jax.Array:
    """The book's ``mnist_loss`` per example: sigmoid, then how far each is from its target. (B,), (B,) -> (B,).

    targets are 1 (or True) for the first class, the book's "is a 3", and 0 for the second.
    """
    chex.assert_equal_shape([predictions, targets])
    predictions = jax.nn.sigmoid(predictions)
    return jnp.where(targets == 1, 1 - predictions, predictions)


def cross_entropy(logits: jax.Array, labels: jax.Array, label_smoothing: float | jax.Array = 0.0) -> jax.Array:
    """Softmax cross-entropy (optax's) per example. (B, K) float, (B,) int -> (B,). ``label_smoothing``
    α: the target puts 1 − α on the label and α/K on every class (a traced α always takes this path)."""
    chex.assert_rank([logits, labels], [2, 1])
    if isinstance(label_smoothing, (int, float)) and label_smoothing == 0:
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    targets = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1]), label_smoothing)
    return optax.softmax_cross_entropy(logits, targets)


class Task(NamedTuple):
    """What "right" means for logits (B, n_out) and class indices y (B,) (positions in the chosen
    classes: for (3, 7), 3 -> 0 and 7 -> 1).

    loss: (logits, y) -> (B,) per-example losses; predict: logits -> (B,) int32 class index;
    probabilities: logits -> (B, K) float, each class's probability.
    """

    loss: Callable[[jax.Array, jax.Array], jax.Array]
    predict: Callable[[jax.Array], jax.Array]
    probabilities: Callable[[jax.Array], jax.Array]
    n_out: int


def _binary_probabilities(logits: jax.Array) -> jax.Array:
    p = jax.nn.sigmoid(logits[:, 0])
    return jnp.stack([p, 1 - p], -1)


# Two classes, one logit: the book's set-up, where the first class is the positive one ("is a 3").
binary = Task(lambda logits, y: mnist_loss(logits[:, 0], (y == 0).astype(jnp.int32)),
              lambda logits: jnp.where(jax.nn.sigmoid(logits[:, 0]) > 0.5, 0, 1).astype(jnp.int32),
              _binary_probabilities, 1)


def two_classes(n_classes: int) -> Task:
    """The book's ``binary`` task (``n_classes`` must be 2)."""
    return binary


def multiclass(n_classes: int, label_smoothing: float = 0.0) -> Task:
    """Any number of classes, one logit each, softmax cross-entropy (with ``label_smoothing``, 0 to under 1)."""
    if isinstance(label_smoothing, bool) or (isinstance(label_smoothing, (int, float)) and not 0 <= label_smoothing < 1):
        raise MnistjaxError(f"label_smoothing={label_smoothing!r}: expected a fraction, 0 or more and under 1", param="loss_args")
    return Task(lambda logits, y: cross_entropy(logits, y, label_smoothing),
                lambda logits: jnp.argmax(logits, -1).astype(jnp.int32), lambda logits: jax.nn.softmax(logits, -1), n_classes)


# name -> (n_classes, **args) -> Task
LOSSES: dict[str, Callable[..., Task]] = {"mnist_loss": two_classes, "cross_entropy": multiclass}


def default_loss(n_classes: int) -> str:
    """The book's ``mnist_loss`` for two classes, cross-entropy otherwise."""
    return "mnist_loss" if n_classes == 2 else "cross_entropy"


def task(loss: str | None, n_classes: int, **args) -> Task:
    """The Task of loss ``loss`` (None: ``default_loss``) for ``n_classes`` classes, with its ``args``
    (``label_smoothing=0.1`` for cross_entropy)."""
    loss = loss or default_loss(n_classes)
    if loss not in LOSSES:
        raise MnistjaxError(f"{loss!r}: expected one of {', '.join(LOSSES)}", param="loss")
    if loss == "mnist_loss" and n_classes != 2:
        raise MnistjaxError(f"mnist_loss needs exactly two classes, got {n_classes}; use cross_entropy", param="loss")
    check_arguments(LOSSES[loss], args, loss, "loss_args", ("n_classes",))
    return LOSSES[loss](n_classes, **args)
