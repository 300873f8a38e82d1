"""The learning-rate finder: fastai's range test as one compiled scan, and its suggestions.

    found = lr_find(learner, data, jax.random.key(0), lambda lr: optax.adam(lr))
    found.suggestions["valley"]
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import numpy as np
import optax

from mnistjax.data.dataset import Data
from mnistjax.errors import MnistjaxError
from mnistjax.preflight import check
from mnistjax.batches import batch_indices
from mnistjax.training import Learner, begin, is_many, train_epoch


class LRFind(NamedTuple):
    lrs: np.ndarray           # (T,) the rates tried, growing exponentially
    losses: np.ndarray        # (T,), or (K, T) for K runs: smoothed losses, NaN from where a run diverged
    mean: np.ndarray          # (T,): the runs' mean where every run is still going, NaN after
    suggestions: dict         # {"valley", "steep", "minimum"}: rates, as fastai suggests them


def lr_find(learner: Learner, data: Data, key: jax.Array, optimizer: Callable[[optax.Schedule], optax.GradientTransformation],
            start_lr: float = 1e-7, end_lr: float = 10.0, num_it: int = 100, beta: float = 0.98) -> LRFind:
    """The learning-rate range test: train with a rate growing exponentially from ``start_lr`` to
    ``end_lr`` over ``num_it`` steps (at most one epoch of full batches), one compiled scan; K keys
    run K tests in one vmapped call. Losses are smoothed (an exponential average, debiased) and cut
    where they pass 4× their minimum. ``optimizer``: makes the optimizer from a schedule, e.g.
    ``lambda lr: optax.adam(lr)``."""
    if num_it < 2:
        raise MnistjaxError(f"{num_it}: expected 2 or more steps (a rate at each)", param="num_it")
    steps = min(num_it, int(data.x_train.shape[0]) // learner.batch_size)
    if steps < 2:
        raise MnistjaxError(f"{learner.batch_size}: leaves {steps} full batch(es); expected at least 2", param="batch_size")
    rate = lambda i: start_lr * (end_lr / start_lr) ** (i / (steps - 1))  # noqa: E731
    learner = learner._replace(optimizer=optimizer(rate))
    check(learner, data, 1)

    def one(key):  # trains as fit does, through the epoch's own scan: its first ``steps`` full batches
        ts, data_key, model_key = begin(learner._replace(same_batches=False), key)
        idx, weights = batch_indices(data_key, data.x_train.shape[0], learner.batch_size, drop_last=True,
                                     shuffle=learner.shuffle)
        return train_epoch(ts, data_key, model_key, learner, data, (idx[:steps], weights[:steps]))[1]

    raw = np.asarray(jax.jit(jax.vmap(one) if is_many(key) else one)(key), np.float64)
    smooth = _smoothed(raw, beta)
    lrs = rate(np.arange(steps))
    runs = np.atleast_2d(smooth)
    mean = np.where(np.isfinite(runs).all(0), runs.mean(0), np.nan)  # where every run is still going
    return LRFind(lrs, smooth, mean, {f.__name__: f(lrs, mean) for f in (valley, steep, minimum)})


def _smoothed(raw: np.ndarray, beta: float) -> np.ndarray:
    """fastai's smoothing (a debiased exponential average), NaN from where each run passes 4× its minimum."""
    out = np.full(raw.shape, np.nan)
    avg = np.zeros(raw.shape[:-1])
    for i in range(raw.shape[-1]):
        avg = beta * avg + (1 - beta) * raw[..., i]
        out[..., i] = avg / (1 - beta ** (i + 1))
    best = np.fmin.accumulate(np.where(np.isfinite(out), out, np.inf), axis=-1)
    gone = np.logical_or.accumulate(~np.isfinite(out) | (out > 4 * best), axis=-1)
    return np.where(gone, np.nan, out)


def _usable(lrs: np.ndarray, losses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The points fastai suggests from: the finite ones, without the first tenth and the last five."""
    keep = np.isfinite(losses)
    lrs, losses = lrs[keep], losses[keep]
    lo, hi = len(losses) // 10, len(losses) - 5
    return (lrs[lo:hi], losses[lo:hi]) if hi - lo >= 3 else (lrs, losses)


def valley(lrs: np.ndarray, losses: np.ndarray) -> float:
    """The rate two thirds down the longest descending stretch of the curve (fastai's default)."""
    lrs, losses = _usable(lrs, losses)
    n = len(losses)
    run, end = np.ones(n, int), 0
    for i in range(1, n):  # the longest decreasing subsequence ending at each point
        run[i] = 1 + max((run[j] for j in range(i) if losses[i] < losses[j]), default=0)
        end = i if run[i] > run[end] else end
    start = end - run[end]  # one before the stretch, as fastai counts it
    sections = (end - start) / 3
    return float(lrs[start + int(sections) + int(sections / 2)])


def steep(lrs: np.ndarray, losses: np.ndarray) -> float:
    """The rate where the loss falls fastest against log(rate)."""
    lrs, losses = _usable(lrs, losses)
    return float(lrs[np.argmin(np.diff(losses) / np.diff(np.log(lrs)))])


def minimum(lrs: np.ndarray, losses: np.ndarray) -> float:
    """A tenth of the rate where the loss is lowest."""
    lrs, losses = _usable(lrs, losses)
    return float(lrs[np.argmin(losses)] / 10)
