"""Augmentations: changes to every training batch, each a pure function ``(key, xb, yb) -> (xb, yb)``
of a PRNG key and a batch (images (B, H, W) float32, labels (B,)), so a mixup-style variant, which
changes the labels too, is one function. ``training.fit`` applies the Learner's to each epoch's
batches (``Learner.augment``); ``compose`` chains several.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

# (key, xb, yb) -> (xb, yb): a change to every training batch (shifts, mixup, ...).
Augment = Callable[[jax.Array, jax.Array, jax.Array], tuple[jax.Array, jax.Array]]


def random_shift(max_shift: int = 2) -> Augment:
    """Move each image by up to ``max_shift`` pixels in x and y (zeros shift in)."""
    def shift(key, xb, yb):
        s = max_shift
        padded = jnp.pad(xb, ((0, 0), (s, s), (s, s)))
        offsets = jax.random.randint(key, (xb.shape[0], 2), 0, 2 * s + 1)
        return jax.vmap(lambda im, o: jax.lax.dynamic_slice(im, o, xb.shape[1:]))(padded, offsets), yb

    return shift


def random_affine(max_degrees: float = 10.0, max_zoom: float = 0.0) -> Augment:
    """Turn each image about its centre by an angle drawn from ±``max_degrees`` and scale
    it by a factor drawn from 1 ± ``max_zoom`` (bilinear sampling; zeros come in at the edges)."""
    def affine(key, xb, yb):
        n, h, w = xb.shape
        angles = jnp.deg2rad(jax.random.uniform(key, (n,), minval=-max_degrees, maxval=max_degrees))
        zooms = jax.random.uniform(jax.random.fold_in(key, 1), (n,), minval=1 - max_zoom, maxval=1 + max_zoom)
        r, c = jnp.meshgrid(jnp.arange(h) - (h - 1) / 2, jnp.arange(w) - (w - 1) / 2, indexing="ij")

        def one(im, a, z):  # where each output pixel comes from
            cos, sin = jnp.cos(a) / z, jnp.sin(a) / z
            src = [cos * r - sin * c + (h - 1) / 2, sin * r + cos * c + (w - 1) / 2]
            return jax.scipy.ndimage.map_coordinates(im, src, order=1, mode="constant")

        return jax.vmap(one)(xb, angles, zooms), yb

    return affine


def compose(*augments: Augment) -> Augment:
    """Several augmentations one after another, each with its own key."""
    def both(key, xb, yb):
        for i, augment in enumerate(augments):
            xb, yb = augment(jax.random.fold_in(key, i), xb, yb)
        return xb, yb

    return both
