"""Optimizers and learning-rate schedules by name: every optax optimizer alias, and the schedules a
run needs, each built from the peak rate and the run's total number of steps.

    opt = optimizer("adamw", schedule("cosine", 1e-3, total_steps(60_000, 128, 10)), weight_decay=0.05)
"""

from __future__ import annotations

import inspect
from functools import partial
from typing import Callable

import jax
import jax.numpy as jnp
import optax

from mnistjax.errors import MnistjaxError, check_arguments

# optax aliases whose update needs more than (grads, state, params): not for a plain training step.
_NEEDS_EXTRA_ARGS = ("lbfgs", "polyak_sgd")


def _optax_aliases() -> dict[str, Callable[..., optax.GradientTransformation]]:
    """Every optimizer optax defines in its alias module that takes a learning rate first."""
    found = {}
    for name in sorted(dir(optax)):
        fn = getattr(optax, name)
        if name in _NEEDS_EXTRA_ARGS or getattr(getattr(fn, "func", fn), "__module__", "") != "optax._src.alias":
            continue
        if next(iter(inspect.signature(fn).parameters), None) == "learning_rate":
            found[name] = fn
    return found


OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    **_optax_aliases(), "momentum": partial(optax.sgd, momentum=0.9)}  # "momentum": SGD with the usual 0.9


def constant(lr: float, steps: int) -> float:
    """The same rate throughout."""
    return lr


def onecycle(lr: float, steps: int, pct_start: float = 0.3, div_factor: float = 25.0,
             final_div_factor: float = 1e4) -> optax.Schedule:
    """Warm up from lr/div_factor to lr over pct_start of the run, then cosine down (fastai's fit_one_cycle).
    optax's ``cosine_onecycle_schedule``, number for number, but its arguments may be arrays (a sweep's,
    traced in one program), so its turning step is an array too."""
    if not isinstance(pct_start, jax.Array):
        _fraction("pct_start", pct_start)
    turn = int(pct_start * steps) if isinstance(pct_start, (int, float)) else jnp.floor(pct_start * steps).astype(jnp.int32)

    def rate(count):  # a cosine from each value to the next between the bounds, then the last value
        bounds = jnp.stack([0, turn, steps])  # in here, not at build: traced with the step, no eager ops
        values = jnp.cumprod(jnp.stack([lr / div_factor, div_factor, 1.0 / (div_factor * final_div_factor)]))
        inside = jnp.logical_and(bounds[:-1] <= count, count < bounds[1:])
        pct = (count - bounds[:-1]) / jnp.maximum(bounds[1:] - bounds[:-1], 1)
        between = values[1:] + (values[:-1] - values[1:]) / 2.0 * (jnp.cos(jnp.pi * pct) + 1)
        return inside.dot(between) + (bounds[-1] <= count) * values[-1]

    return rate


def cosine(lr: float, steps: int, alpha: float = 0.0) -> optax.Schedule:
    """Cosine from lr down to alpha·lr."""
    return optax.cosine_decay_schedule(lr, steps, alpha)


def _fraction(name: str, value: float) -> None:
    if not 0 <= value < 1:
        raise ValueError(f"{name} is a fraction of the run, from 0 to under 1 (0.05: its first 5 %), not {value!r}")


def warmup_cosine(lr: float, steps: int, warmup: float = 0.05, end_value: float = 0.0) -> optax.Schedule:
    """Linear warm-up from 0 over the first ``warmup`` fraction of the run, then cosine down to end_value."""
    _fraction("warmup", warmup)
    return optax.warmup_cosine_decay_schedule(0.0, lr, max(1, int(warmup * steps)), steps, end_value)


def exponential(lr: float, steps: int, decay_rate: float = 0.01) -> optax.Schedule:
    """Exponential decay from lr to decay_rate·lr at the end of the run."""
    return optax.exponential_decay(lr, steps, decay_rate)


def linear(lr: float, steps: int, end_value: float = 0.0) -> optax.Schedule:
    """A straight line from lr to end_value."""
    return optax.linear_schedule(lr, end_value, steps)


def polynomial(lr: float, steps: int, power: float = 2.0, end_value: float = 0.0) -> optax.Schedule:
    """(1 − t)^power from lr to end_value."""
    return optax.polynomial_schedule(lr, end_value, power, steps)


SCHEDULES: dict[str, Callable[..., optax.ScalarOrSchedule]] = {
    f.__name__: f for f in (constant, onecycle, cosine, warmup_cosine, exponential, linear, polynomial)}


def _call(registry: dict, kind: str, name: str, fixed: tuple[str, ...], args: dict, *values):
    """``registry[name](*values, **args)``, with one-line errors naming a wrong name or argument."""
    if name not in registry:
        raise MnistjaxError(f"{name!r}: expected one of {', '.join(registry)}", param=kind)
    fn = registry[name]
    check_arguments(fn, args, name, f"{kind}_args", fixed)
    for k, v in args.items():  # a value of the default's kind: b1=x fails here, not inside a compiled step
        default = inspect.signature(fn).parameters[k].default
        want = bool if isinstance(default, bool) else (int, float) if isinstance(default, (int, float)) else None
        if want and not isinstance(v, jax.Array) and (not isinstance(v, want) or (want is not bool and isinstance(v, bool))):
            raise MnistjaxError(f"{name} argument {k}={v!r}: expected {'true or false' if want is bool else 'a number'} "
                                f"(its default: {default!r})", param=f"{kind}_args")
    try:
        return fn(*values, **args)
    except (TypeError, ValueError) as e:
        raise MnistjaxError(f"{name}({', '.join(f'{k}={v!r}' for k, v in args.items())}): {e}", param=f"{kind}_args") from None


def optimizer(name: str, learning_rate: optax.ScalarOrSchedule, **args) -> optax.GradientTransformation:
    """Optimizer ``name`` (any of ``OPTIMIZERS``) with this rate or schedule and its own ``args``
    (say ``weight_decay=0.05`` for adamw, ``b1=0.7`` for adam, ``nesterov=True`` for sgd)."""
    return _call(OPTIMIZERS, "opt", name, ("learning_rate",), args, learning_rate)


def schedule(name: str, lr: float, steps: int, **args) -> optax.ScalarOrSchedule:
    """Schedule ``name`` (any of ``SCHEDULES``) peaking at ``lr`` over ``steps`` steps, with its ``args``."""
    return _call(SCHEDULES, "schedule", name, ("lr", "steps"), args, lr, steps)


def total_steps(n_train: int, batch_size: int, epochs: int, drop_last: bool = False) -> int:
    """How many optimizer steps a run takes: epochs × batches per epoch (a partial last batch counts
    unless dropped)."""
    per_epoch = n_train // batch_size if drop_last else -(-n_train // batch_size)
    return epochs * per_epoch
