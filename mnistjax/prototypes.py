"""The pixel-similarity baseline: an "ideal" (mean) image per class, and nearest-prototype classification."""

from __future__ import annotations

from functools import partial

import chex
import jax
import jax.numpy as jnp

from mnistjax.distances import Distance, all_pairs, l1, mnist_distance


@jax.jit
def fit_prototypes(x: jax.Array, labels: jax.Array, classes: jax.Array) -> jax.Array:
    """The mean image of each class, all in one compiled call.

    x: (N, H, W) float; labels: (N,) int; classes: (K,) int -> (K, H, W) float, the "ideal" digits.
    """
    chex.assert_rank([x, labels, classes], [3, 1, 1])
    chex.assert_equal_shape_prefix([x, labels], 1)
    onehot = (labels[:, None] == classes[None, :]).astype(x.dtype)  # (N, K)
    # HIGHEST: exact float32 means; by default GPUs multiply float32 in TF32 (inputs rounded to 10 mantissa bits)
    return jnp.einsum("nk,nhw->khw", onehot, x, precision="highest") / onehot.sum(0)[:, None, None]


@partial(jax.jit, static_argnames="distance")
def nearest(x: jax.Array, prototypes: jax.Array, distance: Distance = l1) -> jax.Array:
    """Index of the nearest prototype for each image: (N, H, W), (K, H, W) float -> (N,) int32."""
    return jnp.argmin(all_pairs(x, prototypes, distance), axis=1).astype(jnp.int32)


def classify(x: jax.Array, prototypes: jax.Array, prototype_labels: jax.Array, distance: Distance = l1) -> jax.Array:
    """Label of the nearest prototype: (N, H, W), (P, H, W), (P,) int -> (N,) int32.

    Several prototypes may share a label (say k-means centroids per class).
    """
    return prototype_labels[nearest(x, prototypes, distance)]


def is_3(x: jax.Array, mean3: jax.Array, mean7: jax.Array, distance: Distance = l1) -> jax.Array:
    """The book's ``is_3``: closer to the ideal 3 than to the ideal 7? (N, H, W) or (H, W) -> bool (N,) or ()."""
    return mnist_distance(x, mean3, distance) < mnist_distance(x, mean7, distance)


@partial(jax.jit, static_argnames=("k", "iters", "distance"))
def kmeans_prototypes(key: jax.Array, x: jax.Array, labels: jax.Array, classes: jax.Array,
                      k: int = 4, iters: int = 10, distance: Distance = l1) -> tuple[jax.Array, jax.Array]:
    """A research variant: k centroids per class by Lloyd's algorithm, instead of one mean.

    (N, H, W), (N,), (K,) -> prototypes (K·k, H, W) and their labels (K·k,). Centroids start at
    k random images of the class (from ``key``); an empty cluster keeps its centroid.
    """
    def one_class(key, c):
        w = (labels == c).astype(x.dtype)  # this class's images, by weight: shapes stay static
        start = jax.random.choice(key, x.shape[0], (k,), replace=False, p=w / w.sum())

        def step(centroids, _):
            assign = jax.nn.one_hot(nearest(x, centroids, distance), k, dtype=x.dtype) * w[:, None]
            sums = jnp.einsum("nk,nhw->khw", assign, x, precision="highest")
            counts = assign.sum(0)[:, None, None]
            return jnp.where(counts > 0, sums / jnp.maximum(counts, 1), centroids), None

        return jax.lax.scan(step, x[start], None, length=iters)[0]

    protos = jax.vmap(one_class)(jax.random.split(key, classes.shape[0]), classes)
    return protos.reshape(-1, *x.shape[1:]), jnp.repeat(classes, k)
