"""Training with SGD, the chapter's way but compiled: one ``lax.scan`` per epoch, data on the device
(a convolutional net on the CPU: a compiled step a call, where XLA's convolutions are fastest).

The book's pieces keep their names: ``calc_grad``, ``train_step``, ``train_epoch``, ``validate_epoch``
and a Learner-like ``fit``. Everything is a function of explicit values: a ``TrainState`` (params,
model state, optimizer state), PRNG keys, the data and an epoch number.
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache, partial
from typing import Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

from mnistjax import layers, metrics
from mnistjax.augment import Augment
from mnistjax.batches import epoch_batches
from mnistjax.data.dataset import Data
from mnistjax.errors import MnistjaxError
from mnistjax.layers import Module
from mnistjax.losses import Task
from mnistjax.mesh import replicate, shard_runs, split_batch, to_host
from mnistjax.preflight import check



class Learner(NamedTuple):
    """What to train and how: swap any field to make a research variant.

    model: a ``layers.Module``; task: per-example loss and prediction rule; optimizer: any optax
    GradientTransformation. shuffle: a fresh order every epoch (default); False keeps the data's
    order, as the book's ``DataLoader(dset, batch_size=256)`` does (fastai's default: all 3s, then
    all 7s). drop_last: drop the last partial batch of each epoch (default: train on it too).
    augment: None, or ``(key, xb, yb) -> (xb, yb)`` applied to every training batch (``random_shift(2)``).
    mesh: None (one device), or a ``jax.sharding.Mesh`` with a "batch" axis (``data_parallel(n)``):
    each batch is split over its devices, params are replicated, XLA reduces the gradients.
    ema: 0 (off), or the decay of an exponential moving average of the params, kept beside them and
    used for validation and prediction (Polyak averaging; see ``Average``).
    same_batches: with K models (K keys), all see the first key's batches (only init and dropout
    differ; the first layer of all K is one matmul).
    vary: None, or (for a sweep) ``hyper -> Learner``, this learner with the values ``hyper`` (a dict
    of scalar arrays, ``TrainState.hyper``) in place of its numbers (rates, decays, magnitudes): K
    models with K values of each train in one compiled program (``init_many(learner, keys, hyper)``).
    """

    model: Module
    task: Task
    optimizer: optax.GradientTransformation
    batch_size: int = 256
    shuffle: bool = True
    drop_last: bool = False
    augment: Augment | None = None
    mesh: Mesh | None = None
    ema: float = 0.0
    same_batches: bool = False
    vary: Callable[[dict], "Learner"] | None = None


class Average(NamedTuple):
    """An exponential moving average of the params, debiased as Adam debiases its moments: each step's
    params weigh ``decay ** (steps after it)``, normalised, so none of the weight stays on the initial
    params and a short run's average is already a trained model."""

    params: chex.ArrayTree
    steps: jax.Array  # int32 (), the steps averaged


def averaged(average: Average, params: chex.ArrayTree, decay: float) -> Average:
    """The average after one more step: ``params`` weigh (1 − decay) / (1 − decay ** steps), all of it at step 1."""
    steps, decay = average.steps + 1, jnp.float32(decay)  # one precision: the first step's weight is exactly 1
    return Average(optax.incremental_update(params, average.params, (1 - decay) / (1 - decay ** steps)), steps)


class TrainState(NamedTuple):
    """Everything a model's training carries from step to step."""

    params: chex.ArrayTree
    model_state: chex.ArrayTree  # batch-norm statistics; {} for most models
    opt_state: optax.OptState
    average: Average | None = None  # the moving average of the params (Learner.ema), or None
    hyper: dict = {}  # a sweep's values of this model ({KEY: float32 ()}, see Learner.vary); {} otherwise

    @property
    def eval_params(self) -> chex.ArrayTree:
        """The params to validate and predict with: the average when there is one."""
        return self.params if self.average is None else self.average.params


def calc_grad(params, model_state, xb, yb, model: Module, loss: Callable, key=None, weights=None):
    """The mean loss of one batch (in training mode), its gradient with respect to every parameter,
    and the model's new state. ``weights``: (B,) per example (0 leaves one out); None: the plain mean."""
    def objective(p):
        logits, new_state = model.apply(p, model_state, xb, key, True)
        each = loss(logits, yb)
        return (each.mean() if weights is None else (weights * each).sum() / weights.sum()), new_state

    (value, new_state), grads = jax.value_and_grad(objective, has_aux=True)(params)
    return value, grads, new_state


def train_step(ts: TrainState, xb, yb, learner: Learner, key=None, weights=None) -> tuple[TrainState, jax.Array]:
    """One step on one batch: gradient, optimizer update, new params. Returns (new TrainState, loss)."""
    loss, grads, model_state = calc_grad(ts.params, ts.model_state, xb, yb, learner.model, learner.task.loss, key,
                                         weights)
    updates, opt_state = learner.optimizer.update(grads, ts.opt_state, ts.params)
    params = optax.apply_updates(ts.params, updates)
    average = None if ts.average is None else averaged(ts.average, params, learner.ema)
    return ts._replace(params=params, model_state=model_state, opt_state=opt_state, average=average), loss


def _step(learner: Learner, data: Data, model_key, ts: TrainState, batch):
    """Step i of an epoch: ``batch`` is (what it trains on, weights (B,), i); its key ``fold_in(model_key, i)``."""
    xy, w, i = batch
    xb, yb = (data.x_train[xy], data.y_train[xy]) if learner.augment is None else xy
    xb, yb, w = (split_batch(a, learner.mesh) for a in (xb, yb, w))
    return train_step(ts, xb, yb, learner, jax.random.fold_in(model_key, i), w)


def _mean_loss(losses: jax.Array, weights: jax.Array) -> jax.Array:
    counts = weights.sum(1)
    return (losses * counts).sum() / counts.sum()


def train_epoch(ts: TrainState, data_key, model_key, learner: Learner, data: Data, batches=None):
    """One epoch: one scan over the steps of ``epoch_batches(data_key, learner, data, batches)``.
    ``data_key`` drives the order and the augmentation, ``model_key`` step i's randomness (dropout,
    ``fold_in(model_key, i)``). Returns (TrainState, per-step losses (S,), the epoch's mean loss)."""
    xy, weights = epoch_batches(data_key, learner, data, batches)
    ts, losses = jax.lax.scan(partial(_step, learner, data, model_key), ts, (xy, weights, jnp.arange(weights.shape[0])))
    return ts, losses, _mean_loss(losses, weights)


@partial(jax.jit, static_argnames=("model", "chunk"))
def predict(params, model_state, x: jax.Array, model: Module, chunk: int = 500) -> jax.Array:
    """Logits in evaluation mode for many images, at most ``chunk`` at a time to bound memory:
    (N, 28, 28) -> (N, n_out). The chunks are equal and as few as fit (2038 images: 5 x 408)."""
    n = x.shape[0]
    size = -(-n // -(-n // chunk))
    xs = jnp.pad(x, ((0, -n % size), (0, 0), (0, 0))).reshape(-1, size, *x.shape[1:])
    out = jax.lax.map(lambda xb: model.apply(params, model_state, xb, None, False)[0], xs)
    return out.reshape(-1, *out.shape[2:])[:n]


def scores(logits: jax.Array, y: jax.Array, task: Task) -> dict[str, jax.Array]:
    """{"valid_loss": (), "valid_accuracy": ()} of logits (N, n_out) against class indices (N,)."""
    return {"valid_loss": task.loss(logits, y).mean(), "valid_accuracy": metrics.accuracy(task.predict(logits), y)}


def validate_epoch(ts: TrainState, learner: Learner, data: Data) -> dict[str, jax.Array]:
    """Validation loss and accuracy of a TrainState's model."""
    return scores(predict(ts.eval_params, ts.model_state, data.x_valid, learner.model), data.y_valid, learner.task)


class FitResult(NamedTuple):
    state: TrainState            # the last finite one: params, model state, optimizer state, average
    history: list[dict]          # per epoch: epoch, train_loss, step_losses, valid_loss, valid_accuracy
    diverged_at: int | list | None  # the epoch whose training loss went non-finite (per model with several)
    compile_seconds: float
    train_seconds: float
    valid_logits: jax.Array | None = None  # the validation logits of ``state.eval_params`` (None when no epoch ran)


@lru_cache(maxsize=32)
def _compiled_epoch(learner: Learner, n_models: int | None):
    """One epoch, jit-compiled for this learner (the data are an argument, not baked-in constants):
    ``train_epoch`` with its keys folded with ``epoch`` (so a resumed run repeats it), then validation.
    Returns (TrainState, {"train_loss", "step_losses", "valid_loss", "valid_accuracy"}, validation
    logits); vmapped over a leading model axis when ``n_models`` (one data key with ``same_batches``).
    Kept per learner, so fitting the same learner again (another seed, more epochs) reuses it. A
    ``_Steps`` epoch where ``_cpu_convolutions`` allows it and JAX is 0.12 or later."""
    fast = _cpu_convolutions(learner, n_models)
    if fast is not None and _JAX >= (0, 12):
        return _Steps.jitted(learner, fast)

    def epoch_fn(ts, data_key, model_key, epoch, data):
        lrn = learner.vary(ts.hyper) if ts.hyper else learner
        ts, step_losses, train_loss = train_epoch(ts, jax.random.fold_in(data_key, epoch),
                                                  jax.random.fold_in(model_key, epoch), lrn, data)
        return _validated(ts, step_losses, train_loss, lrn if fast is None else lrn._replace(model=fast), data)

    if n_models:
        epoch_fn = jax.vmap(epoch_fn, in_axes=(0, None if learner.same_batches else 0, 0, None, None))
    return jax.jit(epoch_fn)


def _validated(ts: TrainState, step_losses, train_loss, learner: Learner, data: Data):
    logits = predict(ts.eval_params, ts.model_state, data.x_valid, learner.model)
    return ts, {"train_loss": train_loss, "step_losses": step_losses, **scores(logits, data.y_valid, learner.task)}, logits


_JAX = tuple(int(part) for part in jax.__version__.split(".")[:2])


def _cpu_convolutions(learner: Learner, n_models: int | None) -> Module | None:
    """The model with XLA's own convolutions (``layers.xla_convolutions``), or None: on the CPU, for a
    single model with convolutions. They validate faster than patches + matmul on any JAX and, from
    JAX 0.12, train faster outside a scan (a compiled step a call, ``_Steps``); inside the training
    scan, slower (docs/speed.md)."""
    if n_models or learner.mesh is not None or learner.vary or jax.default_backend() != "cpu":
        return None
    return layers.xla_convolutions(learner.model)


class _Steps(NamedTuple):
    """An epoch as a Python loop over a compiled step, the numbers of ``_compiled_epoch``'s scan up to
    rounding: ``begin`` (batches, key, an empty loss per step), ``step`` (step i), ``end`` (mean loss
    and validation). The calls are dispatched ahead of the work: the loop waits for none of them."""

    begin: Callable
    step: Callable
    end: Callable

    @classmethod
    def jitted(cls, learner: Learner, model: Module) -> _Steps:
        fast = learner._replace(model=model)

        def begin(data_key, model_key, epoch, data):
            xy, weights = epoch_batches(jax.random.fold_in(data_key, epoch), learner, data)
            return xy, weights, jax.random.fold_in(model_key, epoch), jnp.zeros(weights.shape[:1])

        def step(ts, losses, xy, weights, model_key, i, data):
            ts, loss = _step(fast, data, model_key, ts, (jax.tree.map(lambda a: a[i], xy), weights[i], i))
            return ts, losses.at[i].set(loss)

        def end(ts, losses, weights, data):  # validated by XLA's convolutions too
            return _validated(ts, losses, _mean_loss(losses, weights), fast, data)

        return cls(jax.jit(begin), jax.jit(step), jax.jit(end))

    def compile(self, ts, data_key, model_key, epoch, data) -> _Steps:
        """The three programs for these arguments (arrays or their shapes), compiled side by side."""
        begin = self.begin.lower(data_key, model_key, epoch, data)
        xy, weights, key, losses = begin.out_info
        lowered = (begin, self.step.lower(ts, losses, xy, weights, key, 0, data), self.end.lower(ts, losses, weights, data))
        with ThreadPoolExecutor(len(lowered)) as pool:
            return _Steps(*pool.map(lambda low: low.compile(), lowered))

    def __call__(self, ts, data_key, model_key, epoch, data):
        xy, weights, key, losses = self.begin(data_key, model_key, epoch, data)
        for i in range(len(losses)):
            ts, losses = self.step(ts, losses, xy, weights, key, i, data)
        return self.end(ts, losses, weights, data)


def is_many(key: jax.Array) -> bool:
    """Whether ``key`` is K keys (K models) rather than one; anything but PRNG keys is a one-line error."""
    if not isinstance(key, jax.Array) or not jnp.issubdtype(key.dtype, jax.dtypes.prng_key) or key.ndim > 1:
        what = f"a {key.dtype} array of shape {key.shape}" if isinstance(key, jax.Array) else f"{key!r}"
        raise MnistjaxError(f"{what}; expected jax.random.key(seed), or K of them "
                            "(jax.random.split) for K models", param="key")
    return key.ndim == 1


def begin(learner: Learner, key: jax.Array, start: TrainState | None = None):
    """What a run starts from: the TrainState (``start``, or fresh from ``key``) and its data and model
    keys (with ``same_batches``, the first model's data key for all)."""
    many = key.ndim == 1
    ts = start if start is not None else (init_many(learner, key) if many else init(learner, key))
    data_key, model_key = jax.vmap(stream_keys)(key) if many else stream_keys(key)
    return ts, data_key[0] if many and learner.same_batches else data_key, model_key


def _ready(learner: Learner, data: Data, key: jax.Array, start: TrainState | None, done: int):
    """The compiled epoch program of a fit, its compile seconds, and what it starts from: (TrainState,
    data key, model key, data), placed on the mesh's devices when there is one."""
    epoch_fn = _compiled_epoch(learner, key.shape[0] if key.ndim else None)

    def compiled(*args):  # the program for these arguments (arrays or their shapes), and the seconds it took
        t0 = time.perf_counter()
        program = epoch_fn.compile(*args) if isinstance(epoch_fn, _Steps) else epoch_fn.lower(*args).compile()
        return program, time.perf_counter() - t0

    if learner.mesh is None:  # the epoch compiles from the shapes alone while init draws the params: two at once
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(compiled, *jax.eval_shape(partial(begin, learner, start=start), key), done, data)
            ts, data_key, model_key = begin(learner, key, start)
            return *pending.result(), (ts, data_key, model_key, data)
    ts, data_key, model_key = begin(learner, key, start)
    if "runs" in learner.mesh.axis_names:  # each device its share of the models, the data whole on each
        if not key.ndim or key.shape[0] % learner.mesh.size:
            raise MnistjaxError(f"{key.shape[:1]} keys: expected models in a multiple of the {learner.mesh.size} "
                                "devices", param="key")
        ts, model_key = shard_runs((ts, model_key), learner.mesh)
        data_key = (replicate if learner.same_batches else shard_runs)(data_key, learner.mesh)  # same_batches: one key
        placed = (ts, data_key, model_key, replicate(data, learner.mesh))
    else:
        if learner.batch_size % learner.mesh.size:
            raise MnistjaxError(f"{learner.batch_size}: not a multiple of the {learner.mesh.size} devices; "
                                "expected each device to get an equal share", param="batch_size")
        placed = replicate((ts, data_key, model_key, data), learner.mesh)  # all but the batches whole on every device
    return *compiled(*placed[:3], done, placed[3]), placed


def fit(learner: Learner, data: Data, epochs: int, key: jax.Array, *, start: TrainState | None = None,
        history: list[dict] = (), progress: bool = True,
        on_epoch: Callable[[int, TrainState, list], None] | None = None) -> FitResult:
    """Train for ``epochs`` epochs, one compiled call per epoch (compiled once per learner: fitting
    the same learner again, with other keys or data of the same shapes, reuses it).

    ``key`` (``jax.random.key(seed)``) drives init, the batch order and the model's randomness; K keys
    (``jax.random.split(key, K)``) train K models together in one vmapped call (``Learner.same_batches``:
    all on the first key's batches). Resume with ``start`` (a TrainState; for a sweep's
    ``Learner.vary``, ``init_many(learner, keys, hyper)`` with each model's values) and the
    ``history`` so far (one row per epoch done). ``on_epoch(epoch, train_state, history)`` runs after
    each epoch (checkpoints, logs). A non-finite training loss stops a single-model run and keeps the
    last finite params; with several models the others train on and ``diverged_at`` lists each
    model's first non-finite epoch.
    """
    from tqdm.auto import tqdm

    many = is_many(key)
    history = list(history)
    check(learner, data, epochs, len(history))
    compiled, compile_seconds, (ts, data_key, model_key, data) = _ready(learner, data, key, start, len(history))
    bar = tqdm(range(len(history), epochs), disable=not progress, file=sys.stderr, desc="epochs", leave=False)
    diverged, logits, t0 = [None] * (key.shape[0] if many else 1), None, time.perf_counter()
    for epoch in bar:
        new_ts, stats, new_logits = compiled(ts, data_key, model_key, epoch, data)
        stats = to_host(stats)
        finite = np.isfinite(stats["train_loss"]).reshape(-1)
        diverged = [d if d is not None or ok else epoch + 1 for d, ok in zip(diverged, finite)]
        if not many and not finite.all():
            break
        ts, logits = new_ts, new_logits
        history.append({"epoch": epoch + 1, **{k: v.tolist() for k, v in stats.items()}})
        if progress:
            bar.set_postfix({k: f"{np.mean(v):.4f}" for k, v in stats.items() if k != "step_losses"})
        if on_epoch is not None:
            on_epoch(epoch + 1, ts, history)
    jax.block_until_ready(ts)
    return FitResult(ts, history, diverged if many else diverged[0], compile_seconds, time.perf_counter() - t0, logits)


def init(learner: Learner, key: jax.Array) -> TrainState:
    """The initial TrainState of one model from the run's ``key``, in one compiled call."""
    return _compiled_init(learner.model, learner.optimizer, learner.ema > 0)(key)


def _fresh(model: Module, optimizer: optax.GradientTransformation, ema: bool, key: jax.Array) -> TrainState:
    params, model_state = layers.init(model, jax.random.split(key, 3)[0])
    average = Average(params, jnp.zeros((), jnp.int32)) if ema else None
    return TrainState(params, model_state, optimizer.init(params), average)


@lru_cache(maxsize=32)
def _compiled_init(model: Module, optimizer: optax.GradientTransformation, ema: bool):
    return jax.jit(partial(_fresh, model, optimizer, ema))


@jax.jit  # one compile, not several eager ones
def stream_keys(key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The run's data key (batch order, augmentation) and model key (dropout): the second and third
    of ``split(key, 3)`` (init has the first)."""
    keys = jax.random.split(key, 3)
    return keys[1], keys[2]


def init_many(learner: Learner, keys: jax.Array, hyper: dict | None = None) -> TrainState:
    """TrainStates for K models at once, from K keys; with ``hyper`` ({KEY: (K,) values} of a sweep),
    model k is ``learner.vary`` of the k-th values, which its TrainState keeps (``TrainState.hyper``)."""
    if not hyper:
        return jax.vmap(lambda k: init(learner, k))(keys)
    ema = learner.ema > 0  # the structure: the same for every model of one program

    def fresh(key, h):
        lrn = learner.vary(h)
        return _fresh(lrn.model, lrn.optimizer, ema, key)._replace(hyper=h)

    return jax.jit(jax.vmap(fresh))(keys, {k: jnp.asarray(v, jnp.float32) for k, v in hyper.items()})
