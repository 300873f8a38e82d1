"""Metrics by hand: accuracy, per class, balanced, the confusion matrix."""

import jax.numpy as jnp
import numpy as np

from mnistjax import metrics


def test_metrics_by_hand():
    pred, labels = jnp.array([3, 3, 7, 7, 7]), jnp.array([3, 7, 7, 7, 3])
    np.testing.assert_array_equal(metrics.confusion_matrix(pred, labels, 10)[np.ix_([3, 7], [3, 7])], [[1, 1], [1, 2]])
    acc = metrics.per_class_accuracy(pred, labels, 10)
    np.testing.assert_allclose(acc[jnp.array([3, 7])], [0.5, 2 / 3])
    assert np.isnan(acc[0])
    np.testing.assert_allclose(metrics.balanced_accuracy(pred, labels, 10), (0.5 + 2 / 3) / 2)
    np.testing.assert_allclose(metrics.accuracy(pred, labels), 0.6)
