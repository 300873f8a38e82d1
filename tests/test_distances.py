"""Distances: the book's broadcasting, made explicit with vmap, checked jitted and not, against NumPy."""

import chex
import hypothesis.extra.numpy as hnp
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from absl.testing import parameterized
from hypothesis import given, settings, strategies as st

from mnistjax.distances import all_pairs, cosine, l1, l1_loss, mnist_distance, mse_loss, rmse

NP_REF = {
    l1: lambda a, b: np.abs(a - b).mean((-1, -2)),
    rmse: lambda a, b: np.sqrt(((a - b) ** 2).mean((-1, -2))),
}


class DistanceTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(
        ((5, 28, 28), (28, 28), (5,)),
        ((28, 28), (5, 28, 28), (5,)),
        ((5, 28, 28), (5, 28, 28), (5,)),
        ((28, 28), (28, 28), ()),
        ((3, 4, 6), (4, 6), (3,)),
    )
    def test_broadcasting_shapes_and_values(self, sa, sb, out):
        rng = np.random.default_rng(0)
        a, b = rng.random(sa, np.float32), rng.random(sb, np.float32)
        for d, ref in NP_REF.items():
            got = self.variant(mnist_distance, static_argnames="distance")(a, b, distance=d)
            chex.assert_shape(got, out)
            np.testing.assert_allclose(got, ref(a, b), rtol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_all_pairs(self):
        rng = np.random.default_rng(1)
        x, p = rng.random((7, 28, 28), np.float32), rng.random((3, 28, 28), np.float32)
        got = self.variant(all_pairs, static_argnames="distance")(x, p, distance=rmse)
        chex.assert_shape(got, (7, 3))
        np.testing.assert_allclose(got, NP_REF[rmse](x[:, None], p[None]), rtol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(
        ((5, 28, 28), (28, 27)),      # trailing shapes differ
        ((5, 28, 28), (4, 28, 28)),   # batch sizes differ
        ((2, 5, 28, 28), (28, 28)),   # rank 4
        ((28,), (28,)),               # rank 1
    )
    def test_bad_shapes_are_refused(self, sa, sb):
        with pytest.raises(AssertionError):
            self.variant(mnist_distance)(jnp.zeros(sa), jnp.zeros(sb))

    @chex.variants(with_jit=True, without_jit=True)
    def test_integer_images_are_refused(self):
        with pytest.raises(AssertionError, match="float"):
            self.variant(mnist_distance)(jnp.zeros((2, 28, 28), jnp.uint8), jnp.zeros((28, 28), jnp.uint8))


def test_losses_agree_with_optax_and_numpy():
    rng = np.random.default_rng(2)
    a, b = rng.random((28, 28), np.float32), rng.random((28, 28), np.float32)
    np.testing.assert_allclose(l1_loss(a, b), np.abs(a - b).mean(), rtol=1e-6)
    np.testing.assert_allclose(mse_loss(a, b), optax.l2_loss(a, b).mean() * 2, rtol=1e-6)
    np.testing.assert_allclose(jnp.sqrt(mse_loss(a, b)), rmse(a, b), rtol=1e-6)
    np.testing.assert_allclose(l1_loss(a, b), l1(a, b), rtol=1e-6)


def test_a_researchers_distance_plugs_in():
    linf = lambda a, b: jnp.abs(a - b).max()  # noqa: E731 — the point is that it is one line
    x = jnp.stack([jnp.zeros((28, 28)), jnp.ones((28, 28))])
    np.testing.assert_allclose(mnist_distance(x, jnp.full((28, 28), 0.25), linf), [0.25, 0.75])
    np.testing.assert_allclose(mnist_distance(x[1], 2 * x[1], cosine), 0.0, atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 6), h=st.integers(1, 9), w=st.integers(1, 9), data=st.data())
def test_vmapped_distance_equals_numpy(n, h, w, data):
    floats = st.floats(-10, 10, width=32)
    a = data.draw(hnp.arrays(np.float32, (n, h, w), elements=floats))
    b = data.draw(hnp.arrays(np.float32, (h, w), elements=floats))
    for d, ref in NP_REF.items():
        np.testing.assert_allclose(mnist_distance(a, b, d), ref(a, b), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(all_pairs(a, b[None], d)[:, 0], ref(a, b), rtol=1e-4, atol=1e-4)
