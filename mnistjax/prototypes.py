"""The pixel-similarity baseline: an "ideal" (mean) image per class, and nearest-prototype classification."""

from __future__ import annotations

from functools import partial

import chex
import jax
import jax.numpy as jnp

from mnistjax.distances import Distance, all_pairs, l1, mnist_distance, rmse
from mnistjax.errors import expect_floats


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
    """Index of the nearest prototype for each image: (N, H, W), (K, H, W) float -> (N,) int32.

    RMSE orders prototypes as L2 does, so it goes through one matrix multiply: ‖p‖² − 2x·p (‖x‖² is
    the same for every p). Any other distance is computed pair by pair (``all_pairs``).
    """
    if distance is rmse:
        flat, protos = x.reshape(x.shape[0], -1), prototypes.reshape(prototypes.shape[0], -1)
        d = (protos**2).sum(1)[None] - 2 * jnp.dot(flat, protos.T, precision="highest")
    else:
        d = all_pairs(x, prototypes, distance)
    return jnp.argmin(d, axis=1).astype(jnp.int32)


def classify(x: jax.Array, prototypes: jax.Array, prototype_labels: jax.Array, distance: Distance = l1) -> jax.Array:
    """Label of the nearest prototype: (N, H, W), (P, H, W), (P,) int -> (N,) int32.

    Several prototypes may share a label (say k-means centroids per class).
    """
    expect_floats(x, "x")  # uint8 beside float prototypes would compare 0..255 with 0..1 in silence
    expect_floats(prototypes, "prototypes")
    chex.assert_rank(prototype_labels, 1)
    chex.assert_equal_shape_prefix([prototypes, prototype_labels], 1)  # one label per prototype
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


# Nearest neighbours: every training image a prototype.

_RERANK = 4  # extra candidates re-ranked exactly, beyond the k asked for


@partial(jax.jit, static_argnames=("n_classes", "k", "distance", "weighted", "chunk"))
def knn(train_images: jax.Array, train_labels: jax.Array, images: jax.Array, n_classes: int, k: int = 1,
        distance: str = "l2", weighted: bool = False, chunk: int = 500) -> jax.Array:
    """k-nearest-neighbour classification: (M, H, W) uint8 training images and (M,) int labels,
    (N, H, W) uint8 images -> (N,) int32 predicted labels.

    L2 and cosine use the matmul form ‖a‖² + ‖b‖² − 2a·b (``chunk`` images at a time, so memory stays
    at chunk × M floats); for L2 the nearest ``k`` + a few candidates are then re-ranked exactly in
    integers, so 1-NN is exact (ties: the first training image). Votes: one per neighbour (ties: the
    class of the nearer neighbours), or 1/distance each when ``weighted``. ``distance`` "l1" or "rmse"
    (same neighbours as "l2") also work; "l1" goes through the generic per-pair path.
    """
    chex.assert_rank([train_images, images], 3)
    chex.assert_type([train_images, images], jnp.uint8)
    m = train_images.shape[0]
    train = train_images.reshape(m, -1)
    train_f = train.astype(jnp.float32)
    sq = (train_f**2).sum(1)
    metric = "l2" if distance == "rmse" else distance

    def neighbours(xc):  # (C, D) uint8 -> distances (C, k) and indices (C, k)
        xf = xc.astype(jnp.float32)
        if metric == "l1":
            d = jax.vmap(lambda row: jnp.abs(train_f - row).sum(1))(xf)
        elif metric == "cosine":
            d = 1 - (xf @ train_f.T) / (jnp.linalg.norm(xf, axis=1)[:, None] * jnp.sqrt(sq)[None] + 1e-12)
        else:
            d = sq[None] - 2 * xf @ train_f.T  # + ‖x‖², the same for every candidate
        n = min(k + (_RERANK if metric == "l2" else 0), m)
        _, idx = jax.lax.top_k(-d, n)
        if metric == "l2":  # exact integer distances of the candidates; stable order: ties go to the first image
            exact = ((xc[:, None, :].astype(jnp.int32) - train[idx].astype(jnp.int32)) ** 2).sum(-1)
            order = jnp.lexsort((idx, exact), axis=-1)[:, :k]
            return jnp.sqrt(jnp.take_along_axis(exact, order, 1).astype(jnp.float32)), jnp.take_along_axis(idx, order, 1)
        return jnp.take_along_axis(d, idx, 1), idx  # top_k's order: nearest first

    def vote(xc):
        d, idx = neighbours(xc)
        labels = train_labels[idx]
        weight = 1 / (d + 1e-6) if weighted else 1 + 1e-3 / (1 + jnp.arange(k))  # unweighted: nearer breaks ties
        scores = jax.vmap(lambda lab, w: jnp.zeros(n_classes).at[lab].add(w))(labels, jnp.broadcast_to(weight, labels.shape))
        return jnp.argmax(scores, 1).astype(jnp.int32)

    flat = images.reshape(images.shape[0], -1)
    n = flat.shape[0]
    size = min(chunk, n)
    padded = jnp.pad(flat, ((0, -n % size), (0, 0))).reshape(-1, size, flat.shape[1])
    return jax.lax.map(vote, padded).reshape(-1)[:n]
