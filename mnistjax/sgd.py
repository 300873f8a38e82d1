"""Gradient descent from first principles: the book's seven steps as small pure functions.

1. init     ``init_params(key, shape, std)``
2. predict  any model function, e.g. ``quadratic(params, t)``
3. loss     any ``loss(params) -> ()``, e.g. ``fit_loss`` (mean squared error)
4. gradient ``calc_grad = jax.value_and_grad(loss)``
5. step     ``sgd(lr)``: w ← w − lr·∇L(w), an optax ``GradientTransformation`` written by hand
6. repeat   ``descend``: n steps in one ``jax.lax.scan``, keeping the whole trajectory
7. stop     after n steps; ``diverged`` says when the loss blew up instead
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from mnistjax.distances import mse_loss

Loss = Callable[[chex.ArrayTree], jax.Array]


def init_params(key: jax.Array, shape: tuple[int, ...], std: float = 1.0) -> jax.Array:
    """Step 1, the book's ``init_params``: normal random numbers times ``std`` (float32)."""
    return jax.random.normal(key, shape) * std


def sgd(learning_rate: float | jax.Array) -> optax.GradientTransformation:
    """Step 5 by hand: the update −lr·g (the book's ``BasicOptim``). Equals ``optax.sgd(lr)``.

    ``learning_rate`` may be a traced array, so ``jax.vmap`` can sweep it.
    """
    def init(params):
        return optax.EmptyState()

    def update(grads, state, params=None):
        return jax.tree.map(lambda g: -learning_rate * g, grads), state

    return optax.GradientTransformation(init, update)


class Trajectory(NamedTuple):
    """Every step of a descent. params: the params pytree with a leading (steps + 1,) axis,
    from the start to the end; loss: (steps + 1,) float, the loss at each of those params."""

    params: chex.ArrayTree
    loss: jax.Array


def descend(loss: Loss, params: chex.ArrayTree, optimizer: optax.GradientTransformation, steps: int) -> Trajectory:
    """Steps 3–6: ``steps`` updates of ``params`` by ``optimizer`` on ``loss``, one compiled scan.

    Works for any pytree of params and any optax optimizer (``sgd(lr)``, ``optax.sgd``,
    ``optax.adam``...). Non-finite losses are kept, not raised: see ``diverged``.
    """
    calc_grad = jax.value_and_grad(loss)  # step 4

    def step(carry, _):
        params, state = carry
        value, grads = calc_grad(params)
        updates, state = optimizer.update(grads, state, params)
        return (optax.apply_updates(params, updates), state), (params, value)

    (final, _), (path, losses) = jax.lax.scan(step, (params, optimizer.init(params)), None, length=steps)
    path = jax.tree.map(lambda p, f: jnp.concatenate([p, f[None]]), path, final)
    return Trajectory(path, jnp.append(losses, loss(final)))


def diverged(losses: jax.Array) -> jax.Array:
    """Step 7's warning light: True where a run's loss went non-finite or ended above where it began.

    losses: (..., steps + 1) -> (...) bool.
    """
    return ~jnp.isfinite(losses).all(-1) | (losses[..., -1] > losses[..., 0])


def first_step_within(losses: jax.Array, target: float, rtol: float) -> int | None:
    """The first step whose loss is within ``rtol`` of ``target`` (None if none is)."""
    hits = jnp.flatnonzero(losses <= target * (1 + rtol) + 1e-12, size=1, fill_value=-1)[0]
    return None if int(hits) < 0 else int(hits)


# The roller coaster: speed measured every second over the top of a hump.

def roller_coaster(key: jax.Array, n: int = 20) -> tuple[jax.Array, jax.Array]:
    """The book's data: ``time = arange(0, 20)``, ``speed = noise·3 + 0.75·(time − 9.5)² + 1``. (n,), (n,) float32."""
    time = jnp.arange(0, n, dtype=jnp.float32)
    return time, jax.random.normal(key, (n,)) * 3 + 0.75 * (time - 9.5) ** 2 + 1


def quadratic(params: jax.Array, t: jax.Array) -> jax.Array:
    """Step 2, the model: ``a·t² + b·t + c`` for params (3,) = (a, b, c) and times (n,) -> (n,)."""
    a, b, c = params
    return a * t**2 + b * t + c


def fit_loss(t: jax.Array, speed: jax.Array, model=quadratic) -> Loss:
    """Step 3, the loss: mean squared error of a model's params on the data, a function of the params alone."""
    return lambda params: mse_loss(model(params, t), speed)


def lstsq_quadratic(t, speed) -> jax.Array:
    """The closed-form least-squares (a, b, c), to measure how close SGD gets: (3,) float32."""
    return jnp.linalg.lstsq(jnp.stack([t**2, t, jnp.ones_like(t)], 1), speed)[0]
