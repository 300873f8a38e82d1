"""Layers against NumPy and lax references, jitted and not; dropout's statistics; batch norm's
running statistics; composition; PyTorch's initialisation."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mnistjax import layers, xla_conv
from mnistjax.layers import (batch_norm, book_init, conv, dense, dropout, flatten, global_avg_pool, max_pool, relu,
                             reshape, residual, sequential, sigmoid)


class LayerTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_dense_flatten_reshape_and_activations_against_numpy(self):
        x = jax.random.normal(jax.random.key(1), (4, 6))
        m = dense(6, 3)
        p, s = layers.init(m, jax.random.key(0))
        y, _ = self.variant(m.apply, static_argnums=(4,))(p, s, x, None, True)
        np.testing.assert_allclose(y, np.asarray(x) @ np.asarray(p["w"]) + np.asarray(p["b"]), rtol=1e-5, atol=1e-6)
        for module, ref in [(relu(), lambda a: np.maximum(a, 0)), (sigmoid(), lambda a: 1 / (1 + np.exp(-a))),
                            (flatten(), lambda a: a.reshape(4, -1)), (reshape(3, 2), lambda a: a.reshape(4, 3, 2))]:
            out, state = self.variant(module.apply, static_argnums=(4,))({}, {}, x, None, False)
            np.testing.assert_allclose(out, ref(np.asarray(x)), rtol=1e-6, atol=1e-7)
            assert state == {}

    @chex.variants(with_jit=True, without_jit=True)
    def test_conv_is_lax_convolution(self):
        # one channel (patches by a gather) and several (by slices), square or not, and their gradients
        for k, stride, padding, c_in, (h, w) in [(5, 2, 2, 1, (28, 28)), (3, 2, 1, 4, (14, 14)), (3, 1, 1, 2, (7, 7)),
                                                 (5, 1, 0, 1, (28, 28)), (3, 1, 0, 3, (10, 10)), (1, 2, 0, 4, (8, 8)),
                                                 (3, 2, 1, 1, (9, 12)), (3, 1, 0, 2, (6, 5))]:
            x = jax.random.normal(jax.random.key(k + c_in), (2, h, w, c_in))
            m = conv(c_in, 3, k, stride, padding)
            p, s = layers.init(m, jax.random.key(1))

            def ref_apply(p, x):
                return jax.lax.conv_general_dilated(x, p["w"].reshape(k, k, c_in, 3), (stride, stride),
                                                    [(padding, padding)] * 2, dimension_numbers=("NHWC", "HWIO", "NHWC")) + p["b"]

            with jax.default_matmul_precision("highest"):  # on a GPU both would otherwise round to TF32, differently
                ours, _ = self.variant(m.apply, static_argnums=(4,))(p, s, x, None, False)
                grads = self.variant(jax.grad(lambda p, x: jnp.sum(jnp.sin(m.apply(p, s, x, None, False)[0])), (0, 1)))(p, x)
                ref_grads = jax.jit(jax.grad(lambda p, x: jnp.sum(jnp.sin(ref_apply(p, x))), (0, 1)))(p, x)  # one compile, not one per op
                ref = jax.jit(ref_apply)(p, x)
            chex.assert_trees_all_close(ours, ref, rtol=1e-5, atol=1e-5)
            chex.assert_trees_all_close(grads, ref_grads, rtol=1e-4, atol=1e-4)

    @chex.variants(with_jit=True, without_jit=True)
    def test_xla_conv_is_lax_convolution_with_its_weight_gradient_summed_over_chunks(self):
        # 100 images of 12x12x24 into 32 channels: chunks of 39, 39 and 22 (CHUNK_BYTES 1 MiB)
        for stride, padding, shape, c_out in [(1, 0, (100, 12, 12, 24), 32), (2, 2, (5, 28, 28, 1), 4)]:
            x = jax.random.normal(jax.random.key(0), shape)
            w = jax.random.normal(jax.random.key(1), (3, 3, shape[-1], c_out)) / 10

            def loss(conv_fn):
                return lambda x, w: jnp.sum(jnp.sin(conv_fn(x, w, stride, padding)))

            ours = self.variant(jax.grad(loss(xla_conv.conv), (0, 1)))(x, w)
            ref = jax.jit(jax.grad(loss(xla_conv.lax_conv), (0, 1)))(x, w)
            chex.assert_trees_all_close(self.variant(xla_conv.conv, static_argnums=(2, 3))(x, w, stride, padding),
                                        xla_conv.lax_conv(x, w, stride, padding), rtol=1e-6, atol=1e-6)
            chex.assert_trees_all_close(ours, ref, rtol=1e-5, atol=1e-3)  # dw up to ≈ 300: float32's rounding of its sums

    @chex.variants(with_jit=True, without_jit=True)
    def test_pools_against_numpy(self):
        x = jax.random.normal(jax.random.key(2), (2, 7, 6, 3))
        pooled, _ = self.variant(max_pool(2).apply, static_argnums=(4,))({}, {}, x, None, False)
        a = np.asarray(x)[:, :6, :6]  # like PyTorch, the odd row is dropped
        np.testing.assert_array_equal(pooled, a.reshape(2, 3, 2, 3, 2, 3).max((2, 4)))
        mean, _ = self.variant(global_avg_pool().apply, static_argnums=(4,))({}, {}, x, None, False)
        np.testing.assert_allclose(mean, np.asarray(x).mean((1, 2)), rtol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_dropout_keeps_about_one_minus_rate_scaled_and_is_the_identity_in_evaluation(self):
        x = jnp.ones((200, 500))
        apply = self.variant(dropout(0.3).apply, static_argnums=(4,))
        y, _ = apply({}, {}, x, jax.random.key(0), True)
        kept = np.asarray(y) != 0
        assert abs(kept.mean() - 0.7) < 0.005  # 100,000 draws: sd 0.0014
        np.testing.assert_allclose(np.asarray(y)[kept], 1 / 0.7, rtol=1e-6)
        assert float(jnp.abs(y.mean() - 1)) < 0.01  # unbiased in expectation
        chex.assert_trees_all_equal(apply({}, {}, x, jax.random.key(0), False)[0], x)
        assert not np.array_equal(y, apply({}, {}, x, jax.random.key(1), True)[0])  # another key, another mask

    def test_dropout_in_training_needs_a_key(self):
        with pytest.raises(ValueError, match="needs a PRNG key"):
            dropout(0.5).apply({}, {}, jnp.ones((2, 3)), None, True)


@pytest.mark.parametrize("rate", [1, 1.0, -0.1, "0.5", True])
def test_dropout_rate_outside_0_to_1_is_refused(rate):
    with pytest.raises(ValueError, match="expected a number, 0 or more and under 1"):
        dropout(rate)


@pytest.mark.parametrize("make,message", [
    (lambda: dense(784, 2.5), "dense: n_out 2.5: expected an integer, 1 or more"),
    (lambda: dense(0, 3), "dense: n_in 0: expected an integer, 1 or more"),
    (lambda: conv(1, 8, 3, stride=0), "conv: stride 0: expected an integer, 1 or more"),
    (lambda: conv(1, 8, 3, padding=-1), "conv: padding -1: expected an integer, 0 or more"),
    (lambda: batch_norm(True), "batch_norm: features True: expected an integer, 1 or more"),
])
def test_layer_sizes_that_are_not_counts_are_refused_when_built(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def numpy_batch_norm(x, mean, var, momentum=0.1, eps=1e-5):
    axes = tuple(range(x.ndim - 1))
    m, v = x.mean(axes), x.var(axes)
    n = x.size // x.shape[-1]
    return (x - m) / np.sqrt(v + eps), (1 - momentum) * mean + momentum * m, (1 - momentum) * var + momentum * v * n / (n - 1)


class BatchNormTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_two_training_steps_then_evaluation_against_numpy(self):
        for shape in [(8, 5), (4, 3, 3, 5)]:
            m = batch_norm(5)
            p, s = layers.init(m, jax.random.key(0))
            apply = self.variant(m.apply, static_argnums=(4,))
            mean, var = np.zeros(5), np.ones(5)
            for step in range(2):
                x = np.asarray(jax.random.normal(jax.random.key(step), shape)) * 3 + np.arange(5)
                y, s = apply(p, s, jnp.asarray(x), None, True)
                want, mean, var = numpy_batch_norm(x.astype(np.float64), mean, var)
                np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)
                np.testing.assert_allclose(s["mean"], mean, rtol=1e-5, atol=1e-6)
                np.testing.assert_allclose(s["var"], var, rtol=1e-5, atol=1e-6)
            y, same = apply(p, s, jnp.asarray(x), None, False)  # evaluation: the running statistics, unchanged
            np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-5), rtol=1e-4, atol=1e-4)
            chex.assert_trees_all_equal(same, s)


class CompositionTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_sequential_and_residual(self):
        net = sequential(flatten(), dense(4, 3), relu(), batch_norm(3), dropout(0.5), dense(3, 2))
        p, s = layers.init(net, jax.random.key(0))
        assert sorted(p) == ["1", "3", "5"] and sorted(s) == ["3"]  # only the layers that have any, by position
        x = jax.random.normal(jax.random.key(1), (6, 2, 2))
        apply = self.variant(net.apply, static_argnums=(4,))
        y, new = apply(p, s, x, None, False)
        h = np.maximum(np.asarray(x).reshape(6, 4) @ p["1"]["w"] + p["1"]["b"], 0) / np.sqrt(1 + 1e-5)
        np.testing.assert_allclose(y, h @ p["5"]["w"] + p["5"]["b"], rtol=1e-4, atol=1e-5)
        assert jax.tree.structure(new) == jax.tree.structure(s)
        block = residual(dense(3, 3), dense(3, 3, bias=False))
        bp, bs = layers.init(block, jax.random.key(2))
        z = jax.random.normal(jax.random.key(3), (5, 3))
        out, _ = self.variant(block.apply, static_argnums=(4,))(bp, bs, z, None, False)
        np.testing.assert_allclose(out, z @ bp["main"]["w"] + bp["main"]["b"] + z @ bp["shortcut"]["w"], rtol=1e-5, atol=1e-6)
        ident, _ = residual(relu()).apply({}, {}, z, None, False)
        np.testing.assert_allclose(ident, np.maximum(z, 0) + z)


def test_torch_default_init_bounds_and_one_draw_per_init_function():
    net = sequential(conv(3, 8, 3), flatten(), dense(50, 10), dense(10, 2, init=book_init(0.5)))
    p, _ = layers.init(net, jax.random.key(0))
    for name, fan_in in [("0", 27), ("2", 50)]:
        assert 0.9 / np.sqrt(fan_in) < float(jnp.abs(p[name]["w"]).max()), name  # every tensor its own fan-in
        assert all(float(jnp.abs(leaf).max()) <= 1 / np.sqrt(fan_in) for leaf in p[name].values()), name
    assert 0.3 < float(p["3"]["w"].std()) < 0.7  # the book's init_params, normal × std
    jaxpr = str(jax.make_jaxpr(lambda k: layers.init(net, k))(jax.random.key(0)))
    assert jaxpr.count("random_bits") == 2  # two init functions, two draws (each a compile of its own)
    again, _ = layers.init(net, jax.random.key(0))
    chex.assert_trees_all_equal(p, again)


def test_a_compiled_init_draws_the_same_numbers_and_holds_no_constant_as_large_as_the_model():
    net = sequential(dense(784, 128), relu(), dense(128, 10))  # 101,770 parameters; fan-ins 784 and 128
    init = jax.jit(lambda k: layers.init(net, k))
    chex.assert_trees_all_equal(init(jax.random.key(3)), layers.init(net, jax.random.key(3)))
    assert len(init.lower(jax.random.key(3)).as_text()) < 100_000  # each fan-in once, not once per parameter
