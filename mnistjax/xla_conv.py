"""XLA's own convolution, for a step compiled on its own on the CPU (``layers.xla_convolutions``:
``training.fit``'s route there, docs/speed.md): channels-last images (B, H, W, C) by HWIO weights,
with the weight gradient summed over chunks of the batch. On the CPU, XLA's weight gradient of a
whole batch at once is the slowest part of a convolutional step, and chunks whose rows fit a
core's cache run faster."""

import functools

import jax

# Bytes of input and output gradient in one chunk's weight-gradient convolution: small enough for a
# core's cache, few enough chunks to compile quickly (each is a convolution of its own in the program).
CHUNK_BYTES = 1 << 20


def lax_conv(x: jax.Array, w: jax.Array, stride: int, padding: int) -> jax.Array:
    """(B, H, W, C_in) by (k, k, C_in, C_out) -> (B, H', W', C_out): ``lax.conv_general_dilated``."""
    return jax.lax.conv_general_dilated(x, w, (stride, stride), [(padding, padding)] * 2,
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv(x: jax.Array, w: jax.Array, stride: int, padding: int) -> jax.Array:
    """``lax_conv``, its weight gradient summed over chunks of ``CHUNK_BYTES``."""
    return lax_conv(x, w, stride, padding)


def _forward(x, w, stride, padding):
    return lax_conv(x, w, stride, padding), (x, w)


def _backward(stride, padding, residuals, g):
    x, w = residuals
    dx = jax.vjp(lambda x: lax_conv(x, w, stride, padding), x)[1](g)[0]
    rows = max(1, CHUNK_BYTES // ((x[0].size + g[0].size) * x.dtype.itemsize))
    dw = sum(jax.vjp(lambda w: lax_conv(x[i:i + rows], w, stride, padding), w)[1](g[i:i + rows])[0]
             for i in range(0, x.shape[0], rows))
    return dx, dw


conv.defvjp(_forward, _backward)
