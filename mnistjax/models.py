"""Models as pure (init, apply) pairs over pytrees of arrays: linear, simple_net, mlp, cnn.

``init(key) -> params``; ``apply(params, x) -> logits`` for images x (B, 28, 28) float32.
A model with one output gives logits (B,) (for ``mnist_loss``); with ``n_out`` > 1, (B, n_out).
Default initialisers match PyTorch's ``nn.Linear``/``nn.Conv2d`` (uniform ±1/√fan_in for weights and
biases), so our numbers compare with the book's; ``book_init(std)`` is the chapter's ``init_params``.
A model's init describes its tensors as (shape, fan_in) and draws them all in one call (``draw``).
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

# (key, shape, fan_in) -> float32 array of that shape; fan_in may be an array broadcast to shape.
Init = Callable[[jax.Array, tuple[int, ...], jax.Array], jax.Array]
Spec = tuple[tuple[int, ...], int]  # a tensor to draw: (shape, fan_in)


class Model(NamedTuple):
    init: Callable[[jax.Array], dict]
    apply: Callable[[dict, jax.Array], jax.Array]


def torch_init(key: jax.Array, shape: tuple[int, ...], fan_in: jax.Array) -> jax.Array:
    """PyTorch's default for Linear and Conv2d weights and biases: U(−1/√fan_in, 1/√fan_in)."""
    bound = 1.0 / jnp.sqrt(fan_in)
    return jax.random.uniform(key, shape, jnp.float32, -bound, bound)


def book_init(std: float = 1.0) -> Init:
    """The chapter's ``init_params``: normal × std, whatever the fan-in."""
    return lambda key, shape, fan_in: jax.random.normal(key, shape) * std


def draw(key: jax.Array, specs: dict, init: Init = torch_init) -> dict:
    """Every tensor of a tree of ``Spec`` leaves, from one call of ``init`` over all of them at once.

    One random draw, not one per tensor: each draw is a compile of its own (measured for the cnn's
    eight tensors: 2.8 s to compile, against 0.3 s for one draw).
    """
    leaves, tree = jax.tree.flatten(specs, is_leaf=lambda s: isinstance(s, tuple))
    sizes = [math.prod(shape) for shape, _ in leaves]
    fan_in = np.repeat([f for _, f in leaves], sizes).astype(np.float32)
    flat = init(key, fan_in.shape, fan_in)
    parts = jnp.split(flat, np.cumsum(sizes)[:-1])
    return tree.unflatten([part.reshape(shape) for part, (shape, _) in zip(parts, leaves)])


def dense_spec(n_in: int, n_out: int) -> dict[str, Spec]:
    return {"w": ((n_in, n_out), n_in), "b": ((n_out,), n_in)}


def dense(p: dict, x: jax.Array) -> jax.Array:
    return x @ p["w"] + p["b"]


def _logits(out: jax.Array) -> jax.Array:
    return out[:, 0] if out.shape[-1] == 1 else out


def mlp(sizes: Sequence[int], init: Init = torch_init) -> Model:
    """Fully connected layers with ReLU between them: sizes = (784, hidden..., n_out)."""
    sizes = tuple(sizes)

    def init_fn(key):
        return draw(key, {f"layer{i}": dense_spec(a, b) for i, (a, b) in enumerate(zip(sizes, sizes[1:]))}, init)

    def apply(params, x):
        h = x.reshape(x.shape[0], -1)
        for i in range(len(sizes) - 1):
            h = dense(params[f"layer{i}"], h)
            h = jax.nn.relu(h) if i < len(sizes) - 2 else h
        return _logits(h)

    return Model(init_fn, apply)


def linear(n_out: int = 1, init: Init = torch_init) -> Model:
    """The chapter's linear model ``x @ w + b``: 784 -> n_out (1 for 3 vs 7)."""
    return mlp((784, n_out), init)


def simple_net(hidden: int = 30, n_out: int = 1, init: Init = torch_init) -> Model:
    """The chapter's ``simple_net``: Linear(784, 30) -> ReLU -> Linear(30, 1)."""
    return mlp((784, hidden, n_out), init)


def conv_spec(c_in: int, c_out: int, k: int) -> dict[str, Spec]:
    """A k×k convolution's weights as one (k·k·c_in, c_out) matrix (tap-major rows, see ``patches``)."""
    fan_in = c_in * k * k
    return {"w": ((fan_in, c_out), fan_in), "b": ((c_out,), fan_in)}


def patches(x: jax.Array, k: int, stride: int) -> jax.Array:
    """The k×k patches (padding k//2) around every stride-th pixel: (B, H, W, C) -> (B, H', W', k·k·C).

    k·k strided slices side by side, tap-major. XLA's CPU convolutions are slow, and so is
    ``lax.conv_general_dilated_patches`` (itself a convolution; its gradient measured 10x slower).
    """
    h, w = x.shape[1:3]
    xp = jnp.pad(x, ((0, 0), (k // 2, k // 2), (k // 2, k // 2), (0, 0)))
    ho, wo = (h - 1) // stride + 1, (w - 1) // stride + 1
    return jnp.concatenate([xp[:, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride]
                            for i in range(k) for j in range(k)], axis=-1)


def conv(p: dict, x: jax.Array, k: int, stride: int) -> jax.Array:
    """A k×k convolution (padding k//2) as patches + one matmul (im2col): (B, H, W, C) -> (B, H', W', C_out)."""
    return patches(x, k, stride) @ p["w"] + p["b"]


def cnn(n_out: int = 10, channels: tuple[int, int] = (32, 64), hidden: int = 128, init: Init = torch_init) -> Model:
    """A small CNN: conv 5×5 stride 2 -> ReLU -> conv 3×3 stride 2 -> ReLU -> dense -> ReLU -> dense.

    28×28 -> 14×14×c1 -> 7×7×c2 -> hidden -> n_out. Strided convolutions instead of pooling: fewer FLOPs.
    """
    c1, c2 = channels

    def init_fn(key):
        return draw(key, {"conv1": conv_spec(1, c1, 5), "conv2": conv_spec(c1, c2, 3),
                          "fc1": dense_spec(7 * 7 * c2, hidden), "fc2": dense_spec(hidden, n_out)}, init)

    def apply(params, x):
        h = jax.nn.relu(conv(params["conv1"], x[..., None], 5, 2))
        h = jax.nn.relu(conv(params["conv2"], h, 3, 2))
        h = jax.nn.relu(dense(params["fc1"], h.reshape(h.shape[0], -1)))
        return _logits(dense(params["fc2"], h))

    return Model(init_fn, apply)


MODELS = {"linear": linear, "simple_net": simple_net, "mlp": lambda n_out=10: mlp((784, 256, 128, n_out)), "cnn": cnn}


def build(name: str, n_out: int, channels: tuple[int, int] | None = None) -> Model:
    """A model by its CLI name, sized for ``n_out`` outputs (1 for two classes with ``mnist_loss``);
    ``channels``: the cnn's two conv widths (default (32, 64))."""
    return MODELS[name](n_out=n_out, **({"channels": tuple(channels)} if channels else {}))
