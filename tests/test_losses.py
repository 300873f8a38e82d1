"""Per-example losses against the book's formulas; tasks; the book's batch accuracy."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mnistjax import losses, metrics
from mnistjax.errors import MnistjaxError


class LossTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_mnist_loss_per_example_and_its_mean_is_the_books(self):
        # the book's example: targets [1, 0, 1], predictions [0.9, 0.4, 0.2] after the sigmoid
        prds = jnp.array([0.9, 0.4, 0.2])
        logits, targets = jnp.log(prds / (1 - prds)), jnp.array([1, 0, 1])
        each = self.variant(losses.mnist_loss)(logits, targets)
        np.testing.assert_allclose(each, [0.1, 0.4, 0.8], rtol=1e-5)
        np.testing.assert_allclose(each.mean(), (0.1 + 0.4 + 0.8) / 3, rtol=1e-5)  # torch.where(...).mean()
        np.testing.assert_allclose(metrics.batch_accuracy(logits, targets), 2 / 3, rtol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_cross_entropy_per_example_by_hand(self):
        logits, labels = jnp.array([[2.0, 1.0, 0.1], [0.0, 0.0, 3.0]]), jnp.array([0, 2])
        each = self.variant(losses.cross_entropy)(logits, labels)
        np.testing.assert_allclose(each, [-jax.nn.log_softmax(logits[0])[0], -jax.nn.log_softmax(logits[1])[2]], rtol=1e-5)

    def test_shapes_are_checked(self):
        with pytest.raises(AssertionError):
            losses.mnist_loss(jnp.zeros(3), jnp.zeros(4))


def test_tasks():
    logits = jnp.array([[2.0], [-1.0], [0.0]])
    assert losses.binary.predict(logits).tolist() == [0, 1, 1]  # the first class is the positive one ("is a 3")
    np.testing.assert_allclose(losses.binary.probabilities(logits).sum(-1), 1, rtol=1e-6)
    np.testing.assert_allclose(losses.binary.loss(logits, jnp.array([0, 1, 0])),
                               [1 - jax.nn.sigmoid(2.0), jax.nn.sigmoid(-1.0), 0.5], rtol=1e-6)
    ten = losses.task(None, 10)
    assert ten.n_out == 10 and losses.task(None, 2) is losses.binary and losses.task("cross_entropy", 2).n_out == 2
    with pytest.raises(MnistjaxError, match="^loss: mnist_loss needs exactly two classes"):
        losses.task("mnist_loss", 3)
    with pytest.raises(MnistjaxError, match="^loss: 'hinge': expected one of mnist_loss, cross_entropy"):
        losses.task("hinge", 3)
