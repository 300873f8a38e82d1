"""Training with SGD, the chapter's way but compiled: one ``lax.scan`` per epoch, data on the device.

The book's pieces keep their names: ``calc_grad``, ``train_step``, ``train_epoch``, ``validate_epoch``,
``BasicOptim`` (an optax transformation equal to ``optax.sgd``) and a Learner-like ``fit``.
Everything is a function of explicit state: params, optimizer state, a PRNG key and an epoch number.
"""

from __future__ import annotations

import sys
import time
from functools import lru_cache, partial
from typing import Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from mnistjax import data as mdata
from mnistjax.errors import MnistjaxError
from mnistjax.losses import Task
from mnistjax.models import Model
from mnistjax.sgd import sgd as BasicOptim  # noqa: N812 — the book's name for the hand-written step

__all__ = ["BasicOptim", "Data", "FitResult", "Learner", "batch_indices", "calc_grad", "data_from", "data_parallel", "fit", "init",
           "init_many", "predict", "random_shift", "train_epoch", "train_step", "validate_epoch", "weighted"]


class Data(NamedTuple):
    """Train and validation arrays on the device. x: (N, 28, 28) float32 in [0, 1]; y: (N,) int32
    class indices (positions in the sample's classes, so for 3 vs 7: 3 -> 0, 7 -> 1)."""

    x_train: jax.Array
    y_train: jax.Array
    x_valid: jax.Array
    y_valid: jax.Array


def data_from(sample: mdata.Sample) -> Data:
    """Put a ``Sample`` on the device as float images and class indices."""
    lookup = np.full(max(sample.classes) + 1, -1, np.int32)
    lookup[list(sample.classes)] = np.arange(len(sample.classes))
    return Data(mdata.as_float(sample.train.images), jnp.asarray(lookup[sample.train.labels]),
                mdata.as_float(sample.valid.images), jnp.asarray(lookup[sample.valid.labels]))


class Learner(NamedTuple):
    """What to train and how: swap any field to make a research variant.

    model: (init, apply); task: loss and prediction rule; optimizer: any optax GradientTransformation.
    shuffle: a fresh order every epoch (default); False keeps the data's order, as the book's
    ``DataLoader(dset, batch_size=256)`` does (fastai's default is shuffle=False: all 3s, then all 7s).
    drop_last: drop the last partial batch of each epoch (default: train on it too, as the book's DataLoader).
    augment: None, or ``(key, xb) -> xb`` applied to every training batch (e.g. ``random_shift(2)``).
    mesh: None (one device), or a ``jax.sharding.Mesh`` with a "batch" axis (``data_parallel(n)``):
    each batch is split over its devices, params are replicated, XLA reduces the gradients.
    """

    model: Model
    task: Task
    optimizer: optax.GradientTransformation
    data: Data
    batch_size: int = 256
    shuffle: bool = True
    drop_last: bool = False
    augment: Callable[[jax.Array, jax.Array], jax.Array] | None = None
    mesh: Mesh | None = None


def data_parallel(devices: int | None = None) -> Mesh:
    """A one-axis ("batch") mesh over the first ``devices`` devices (all by default), for ``Learner.mesh``."""
    available = jax.devices()
    n = devices or len(available)
    if not 1 <= n <= len(available):
        raise MnistjaxError(f"--devices {n}: this machine has {len(available)} {available[0].platform} device(s)")
    return Mesh(np.array(available[:n]), ("batch",))


def _replicate(tree, mesh: Mesh):
    """Every leaf whole on every device of ``mesh``, also when the mesh spans several processes
    (each process passes the same values, as ``jax.distributed`` programs do)."""
    sharding = NamedSharding(mesh, PartitionSpec())

    def put(x):
        if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(put(jax.random.key_data(x)))
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(put, tree)


def _split_batch(x: jax.Array, mesh: Mesh | None) -> jax.Array:
    """Shard a batch's leading axis over the mesh (``fit`` checks that its devices divide the batch)."""
    if mesh is None:
        return x
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, PartitionSpec("batch")))


def weighted(loss: Callable) -> Callable:
    """A batch-mean loss made a weighted mean: ``(logits, y, w) -> sum(w · loss_i) / sum(w)``, where
    loss_i is the loss of example i alone (a batch of one). Weight 0 leaves an example out."""
    def mean(logits, y, w):
        each = jax.vmap(lambda logit, target: loss(logit[None], target[None]))(logits, y)
        return (w * each).sum() / w.sum()

    return mean


def calc_grad(params, xb, yb, model: Model, loss: Callable, weights=None) -> tuple[jax.Array, chex.ArrayTree]:
    """The loss of one batch and its gradient with respect to every parameter (``weights``: (B,) per
    example, for a padded batch; None: the plain mean)."""
    mean = loss if weights is None else lambda logits, y: weighted(loss)(logits, y, weights)
    return jax.value_and_grad(lambda p: mean(model.apply(p, xb), yb))(params)


def train_step(params, opt_state, xb, yb, learner: Learner, weights=None):
    """One SGD step on one batch: gradient, optimizer update, new params. Returns (params, opt_state, loss)."""
    loss, grads = calc_grad(params, xb, yb, learner.model, learner.task.loss, weights)
    updates, opt_state = learner.optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss


def random_shift(max_shift: int = 2) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """Augmentation: move each image by up to ``max_shift`` pixels in x and y (zeros shift in)."""
    def shift(key, xb):
        s = max_shift
        padded = jnp.pad(xb, ((0, 0), (s, s), (s, s)))
        offsets = jax.random.randint(key, (xb.shape[0], 2), 0, 2 * s + 1)
        return jax.vmap(lambda im, o: jax.lax.dynamic_slice(im, o, xb.shape[1:]))(padded, offsets)

    return shift


def batch_indices(key: jax.Array, n: int, batch_size: int, drop_last: bool = False,
                  shuffle: bool = True) -> tuple[jax.Array, jax.Array]:
    """A fresh shuffle of range(n) (range(n) itself unless ``shuffle``), cut into (n // B, B) full
    batches and the (n % B,) rest (empty when ``drop_last``). Every example appears exactly once per
    epoch unless dropped."""
    perm = jax.random.permutation(key, n) if shuffle else jnp.arange(n)
    full = (n // batch_size) * batch_size
    return perm[:full].reshape(-1, batch_size), perm[full:full if drop_last else n]


def train_epoch(params, opt_state, key, learner: Learner):
    """One epoch: one scan over the epoch's batches. Returns (params, opt_state, mean loss).

    A partial last batch is padded to full size, its padding weighted 0: the same math as a short
    batch, but one step to compile instead of two (≈ 30 % of an epoch's compile time).
    """
    d = learner.data
    b = learner.batch_size
    full, rest = batch_indices(key, d.x_train.shape[0], b, learner.drop_last, learner.shuffle)
    idx = jnp.concatenate([full, jnp.pad(rest, (0, b - rest.shape[0]))[None]]) if rest.shape[0] else full
    weights = (jnp.arange(idx.size) < full.size + rest.shape[0]).reshape(idx.shape).astype(jnp.float32)

    def step(carry, batch):
        idx, w, i = batch
        xb = d.x_train[idx]
        xb = xb if learner.augment is None else learner.augment(jax.random.fold_in(key, i), xb)
        xb, yb = _split_batch(xb, learner.mesh), _split_batch(d.y_train[idx], learner.mesh)
        params, opt_state, loss = train_step(*carry, xb, yb, learner, _split_batch(w, learner.mesh))
        return (params, opt_state), loss

    (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), (idx, weights, jnp.arange(idx.shape[0])))
    counts = weights.sum(1)
    return params, opt_state, (losses * counts).sum() / counts.sum()


@partial(jax.jit, static_argnames=("model", "chunk"))
def predict(params, x: jax.Array, model: Model, chunk: int = 1000) -> jax.Array:
    """Logits for many images, at most ``chunk`` at a time to bound memory: (N, 28, 28) -> (N,) or (N, K).

    The chunks are equal and as few as fit (2038 images: 3 x 680, not 3 x 1000 with 962 of padding).
    """
    n = x.shape[0]
    size = -(-n // -(-n // chunk))
    xs = jnp.pad(x, ((0, -n % size), (0, 0), (0, 0))).reshape(-1, size, *x.shape[1:])
    out = jax.lax.map(lambda xb: model.apply(params, xb), xs)
    return out.reshape(-1, *out.shape[2:])[:n]


def validate_epoch(params, learner: Learner) -> dict[str, jax.Array]:
    """Validation loss and accuracy of ``params``: {"valid_loss": (), "valid_accuracy": ()}."""
    return _scores(predict(params, learner.data.x_valid, learner.model), learner)


def _scores(logits: jax.Array, learner: Learner) -> dict[str, jax.Array]:
    y = learner.data.y_valid
    return {"valid_loss": learner.task.loss(logits, y), "valid_accuracy": (learner.task.predict(logits) == y).mean()}


def run_epoch(params, opt_state, key, epoch, learner: Learner):
    """Train one epoch (its shuffle from ``fold_in(key, epoch)``, so a resumed run repeats it) and validate.
    Returns (params, opt_state, {"train_loss", "valid_loss", "valid_accuracy"}, validation logits)."""
    params, opt_state, train_loss = train_epoch(params, opt_state, jax.random.fold_in(key, epoch), learner)
    logits = predict(params, learner.data.x_valid, learner.model)
    return params, opt_state, {"train_loss": train_loss, **_scores(logits, learner)}, logits


class FitResult(NamedTuple):
    params: chex.ArrayTree
    opt_state: chex.ArrayTree
    history: list[dict]          # per epoch: epoch, train_loss, valid_loss, valid_accuracy
    diverged_at: int | None      # the epoch whose loss went non-finite (params are from the one before)
    compile_seconds: float
    train_seconds: float
    valid_logits: jax.Array | None = None  # the validation logits of ``params`` (None when no epoch ran)


@lru_cache(maxsize=32)
def _compiled_epoch(learner: Learner, n_models: int | None, same_batches: bool = False):
    """``run_epoch`` jit-compiled for this learner (its ``data`` None: the data are an argument, not a
    baked-in constant); vmapped over a leading model axis when ``n_models`` (with one shared shuffle
    when ``same_batches``). Kept per learner, so fitting the same learner again (another seed, more
    epochs) reuses the compiled program: for the cnn, 3.2–3.7 s each time otherwise."""
    def epoch(params, opt_state, key, epoch, data):
        bound = partial(run_epoch, learner=learner._replace(data=data))
        if n_models:
            return jax.vmap(bound, in_axes=(0, 0, None if same_batches else 0, None))(params, opt_state, key, epoch)
        return bound(params, opt_state, key, epoch)

    return jax.jit(epoch)


def fit(learner: Learner, epochs: int, key: jax.Array, *, params=None, opt_state=None, start_epoch: int = 0,
        history: list[dict] | None = None, n_models: int | None = None, same_batches: bool = False, progress: bool = True,
        on_epoch: Callable[[int, object, object, list], None] | None = None) -> FitResult:
    """Train for ``epochs`` epochs (from ``start_epoch``), one compiled call per epoch (compiled once per
    learner: fitting the same learner again, with other keys or data of the same shapes, reuses it).

    ``key`` drives init and every shuffle. Pass ``params``/``opt_state``/``start_epoch``/``history``
    to resume. With ``n_models``, params, opt_state and key carry a leading axis of that many
    models, trained together in one vmapped call (see ``init_many``); ``same_batches`` gives them all
    the batches of the first key, in the same order, so only their init (or learning rate) differs —
    and the first layer of all K runs as one matmul (measured: 8 simple_nets in 4.5 s, not 9.4 s);
    unshuffled learners share their batches anyway. ``on_epoch(epoch, params, opt_state, history)``
    runs after each epoch (checkpoints). A non-finite training loss stops
    a single-model run and keeps the last finite params; with ``n_models`` the others train on and
    the history shows the non-finite losses.
    """
    from tqdm.auto import tqdm

    if params is None:
        params, opt_state = init_many(learner, key) if n_models else init(learner, key)
    history = list(history or [])
    d = learner.data
    if n_models and not same_batches:
        shuffle_key = jax.vmap(shuffle_key_of)(key)
    else:
        shuffle_key = shuffle_key_of(key[0] if n_models else key)
    if learner.mesh is not None:  # everything but the batches lives whole on every device
        if learner.batch_size % learner.mesh.size:
            raise MnistjaxError(f"--batch-size {learner.batch_size}: not a multiple of the {learner.mesh.size} devices; "
                                "expected each device to get an equal share")
        params, opt_state, shuffle_key, d = _replicate((params, opt_state, shuffle_key, d), learner.mesh)
    epoch_fn = _compiled_epoch(learner._replace(data=None), n_models, same_batches)
    t0 = time.perf_counter()
    compiled = epoch_fn.lower(params, opt_state, shuffle_key, start_epoch, d).compile()
    compile_seconds = time.perf_counter() - t0
    bar = tqdm(range(start_epoch, epochs), disable=not progress, file=sys.stderr, desc="epochs", leave=False)
    diverged_at, logits, t0 = None, None, time.perf_counter()
    for epoch in bar:
        new_params, new_state, stats, new_logits = compiled(params, opt_state, shuffle_key, epoch, d)
        stats = jax.device_get(stats)
        row = {"epoch": epoch + 1, **{k: (np.asarray(v).tolist()) for k, v in stats.items()}}
        if not np.isfinite(np.asarray(stats["train_loss"])).all() and not n_models:
            diverged_at = epoch + 1
            break
        params, opt_state, logits = new_params, new_state, new_logits
        history.append(row)
        if progress:
            bar.set_postfix({k: f"{np.mean(v):.4f}" for k, v in row.items() if k != "epoch"})
        if on_epoch is not None:
            on_epoch(epoch + 1, params, opt_state, history)
    jax.block_until_ready(params)
    return FitResult(params, opt_state, history, diverged_at, compile_seconds, time.perf_counter() - t0, logits)


def init(learner: Learner, key: jax.Array):
    """Initial params and optimizer state for one model, from the run's ``key``. Compiled as one
    call: run eagerly, every random draw of every layer shape would be a compile of its own (≈ 2 s for the cnn)."""
    return _compiled_init(learner.model, learner.optimizer)(key)


@lru_cache(maxsize=32)
def _compiled_init(model: Model, optimizer: optax.GradientTransformation):
    def fresh(key):
        params = model.init(jax.random.split(key)[0])
        return params, optimizer.init(params)

    return jax.jit(fresh)


@jax.jit  # one compile, not three eager ones
def shuffle_key_of(key: jax.Array) -> jax.Array:
    """The run's shuffling key: the second half of ``split(key)`` (init has the first)."""
    return jax.random.split(key)[1]


def init_many(learner: Learner, keys: jax.Array, learning_rates: jax.Array | None = None):
    """Params and optimizer states for K models at once, from K keys; with ``learning_rates``
    (K,), the optimizer must be made by ``optax.inject_hyperparams`` and each model gets its own rate."""
    params, opt_state = jax.vmap(lambda k: init(learner, k))(keys)
    if learning_rates is not None:
        opt_state.hyperparams["learning_rate"] = jnp.asarray(learning_rates, jnp.float32)
    return params, opt_state
