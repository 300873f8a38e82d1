"""Where XLA's known CPU bugs would bite mnistjax, checked against NumPy in float64.

jaxlib 0.10.2 (the newest JAX for Python 3.11) sums wrongly in some jitted, vmapped products followed
by a reduction over 32,769 or more rows (jax-ml/jax#39103), and crashes on some rank-7/8
broadcast-multiply-reduce fusions (jax-ml/jax#39257). mnistjax's own computations of those kinds —
distances vmapped over all 60,000 training images, many models' losses in one vmap, batch-norm
statistics over a large batch, nearest neighbours — are run here at the sizes where the bug shows,
and compared with float64 references. (None of our arrays has rank 7.)"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mnistjax import distances, layers, losses, prototypes


def test_the_bug_itself_is_known():
    i = jnp.arange(32_769, dtype=jnp.float32)
    x = jnp.stack((i, jnp.zeros_like(i), jnp.zeros_like(i)), axis=1)

    def f(x):
        return jax.vmap(lambda row: jnp.sum((jnp.eye(3) @ row) ** 2))(x)

    wrong = float(jax.jit(f)(x)[-1]) != float(f(x)[-1])
    assert not wrong or jax.__version__ == "0.10.2", "a JAX other than 0.10.2 has the bug: check the tests below still run"


@pytest.mark.parametrize("name", ["l1", "rmse", "cosine"])
def test_distances_vmapped_over_many_rows(name):
    x = jax.random.uniform(jax.random.key(0), (40_000, 28, 28))
    protos = jax.random.uniform(jax.random.key(1), (3, 28, 28))
    got = np.asarray(jax.jit(lambda a, b: distances.all_pairs(a, b, distances.DISTANCES[name]))(x, protos))
    a, b = np.asarray(x, np.float64).reshape(40_000, -1), np.asarray(protos, np.float64).reshape(3, -1)
    # a prototype and 5,000 rows at a time: (N, 3, D) float64 is 750 MB
    each = lambda f: np.stack([np.concatenate([f(rows - p) for rows in np.split(a, 8)]) for p in b], 1)  # noqa: E731
    ref = {"l1": lambda: each(lambda d: np.abs(d).mean(-1)),
           "rmse": lambda: each(lambda d: np.sqrt((d ** 2).mean(-1))),
           "cosine": lambda: 1 - (a @ b.T) / (np.linalg.norm(a, axis=1)[:, None] * np.linalg.norm(b, axis=1)[None])}[name]()
    np.testing.assert_allclose(got, ref, atol=2e-6)


def test_many_models_losses_in_one_vmap():
    k, n = 40, 1000  # 40,000 rows of logits, each reduced
    w = jax.random.normal(jax.random.key(2), (k, 784, 10)) * 0.05
    x = jax.random.uniform(jax.random.key(3), (n, 784))
    y = jax.random.randint(jax.random.key(4), (n,), 0, 10)
    got = jax.jit(jax.vmap(lambda wi: losses.cross_entropy(x @ wi, y).mean()))(w)
    xs, ws = np.asarray(x, np.float64), np.asarray(w, np.float64)
    logits = np.einsum("nd,kdc->knc", xs, ws)
    ref = (np.log(np.exp(logits).sum(-1)) - np.take_along_axis(logits, np.asarray(y)[None, :, None], -1)[..., 0]).mean(-1)
    np.testing.assert_allclose(got, ref, rtol=1e-5)


def test_batch_norm_statistics_over_a_large_batch():
    net = layers.sequential(layers.reshape(28, 28, 1), layers.conv(1, 32, 5, stride=2, padding=2), layers.batch_norm(32))
    params, state = layers.init(net, jax.random.key(0))
    x = jax.random.uniform(jax.random.key(5), (256, 28, 28))  # 256 x 14 x 14 = 50,176 rows per channel
    _, new = jax.jit(lambda p, s, x: net.apply(p, s, x, None, True))(params, state, x)
    h = np.asarray(layers.sequential(layers.reshape(28, 28, 1), layers.conv(1, 32, 5, stride=2, padding=2)).apply(
        {"1": params["1"]}, {}, x, None, False)[0], np.float64)
    np.testing.assert_allclose(new["2"]["mean"], 0.1 * h.mean((0, 1, 2)), rtol=1e-5, atol=1e-7)


def test_nearest_neighbours_against_numpy(tiny):
    train, test = tiny.train.images.reshape(-1, 784).astype(np.int64), tiny.test.images[:300].reshape(-1, 784).astype(np.int64)
    d = (test**2).sum(1)[:, None] + (train**2).sum(1)[None] - 2 * test @ train.T  # exact in int64
    ref = tiny.train.labels[np.argmin(d, 1)]  # the first of equal distances, as argmin
    got = prototypes.knn(jnp.asarray(tiny.train.images), jnp.asarray(tiny.train.labels), jnp.asarray(tiny.test.images[:300]), 10)
    np.testing.assert_array_equal(got, ref)
