"""How far apart two images are: L1 and RMSE, batched with ``jax.vmap`` the way the book broadcasts.

A *distance* is any function ``(H, W), (H, W) -> ()`` on float images. ``mnist_distance`` and
``all_pairs`` lift one to batches, so a researcher's own (cosine, L∞, a learned metric) plugs in
by being passed as ``distance=``.
"""

from __future__ import annotations

from typing import Callable

import chex
import jax
import jax.numpy as jnp

Distance = Callable[[jax.Array, jax.Array], jax.Array]


def l1(a: jax.Array, b: jax.Array) -> jax.Array:
    """Mean absolute difference (the book's L1 norm): (H, W), (H, W) float -> () float."""
    return jnp.abs(a - b).mean()


def rmse(a: jax.Array, b: jax.Array) -> jax.Array:
    """Root mean squared error (the book's L2 norm): (H, W), (H, W) float -> () float."""
    return jnp.sqrt(((a - b) ** 2).mean())


def cosine(a: jax.Array, b: jax.Array) -> jax.Array:
    """1 − cosine similarity of the flattened images: a research variant in one line."""
    return 1.0 - jnp.vdot(a, b) / (jnp.linalg.norm(a) * jnp.linalg.norm(b) + 1e-12)


DISTANCES: dict[str, Distance] = {"l1": l1, "rmse": rmse, "cosine": cosine}


def l1_loss(pred: jax.Array, target: jax.Array) -> jax.Array:
    """PyTorch's ``F.l1_loss``: mean |pred − target| over all elements (any equal shapes) -> ()."""
    chex.assert_equal_shape([pred, target])
    return jnp.abs(pred - target).mean()


def mse_loss(pred: jax.Array, target: jax.Array) -> jax.Array:
    """PyTorch's ``F.mse_loss``: mean (pred − target)² over all elements -> (); its sqrt is RMSE."""
    chex.assert_equal_shape([pred, target])
    return ((pred - target) ** 2).mean()


def _check_images(*xs: jax.Array) -> None:
    chex.assert_rank(list(xs), {2, 3})
    chex.assert_type(list(xs), float)
    chex.assert_equal_shape_suffix(list(xs), 2)


def mnist_distance(a: jax.Array, b: jax.Array, distance: Distance = l1) -> jax.Array:
    """The book's ``mnist_distance`` with its broadcasting, made explicit with ``vmap``.

    (N, H, W) vs (H, W) -> (N,); (H, W) vs (N, H, W) -> (N,); (N, H, W) vs (N, H, W) -> (N,)
    pairwise; (H, W) vs (H, W) -> (). Float images only; trailing (H, W) must agree.
    """
    _check_images(a, b)
    if a.ndim == b.ndim == 2:
        return distance(a, b)
    if a.ndim == b.ndim == 3:
        chex.assert_equal_shape_prefix([a, b], 1)
    return jax.vmap(distance, in_axes=(0 if a.ndim == 3 else None, 0 if b.ndim == 3 else None))(a, b)


def all_pairs(x: jax.Array, prototypes: jax.Array, distance: Distance = l1) -> jax.Array:
    """Distance of every image to every prototype: (N, H, W), (K, H, W) float -> (N, K)."""
    chex.assert_rank([x, prototypes], 3)
    _check_images(x, prototypes)
    # A loop over the (few) prototypes, vmap over the (many) images: on XLA's CPU backend a
    # vmap over both fuses the reduction with its consumer (the mean's divide, RMSE's sqrt)
    # into a slow loop, an order of magnitude slower (docs/speed.md).
    return jax.lax.map(lambda p: jax.vmap(distance, in_axes=(0, None))(x, p), prototypes).T
