"""The chapter's results, computed: each function returns a report whose ``summary`` is a JSON-ready
dict (the book's figures beside ours where the book has them), with the arrays its figures need.
Figures are in ``plots``, text tables in ``tables``.
"""

from __future__ import annotations

import hashlib
import statistics
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import nullcontext
from functools import partial
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mnistjax import checkpoint, config, data, losses, metrics, models, optimizers, preprocess, prototypes, training
from mnistjax.config import RunConfig
from mnistjax.distances import DISTANCES, mnist_distance
from mnistjax.errors import MnistjaxError, TrainingDiverged
from mnistjax.prototypes import classify, fit_prototypes
from mnistjax.sgd import descend, diverged, fit_loss, first_step_within, init_params, lstsq_quadratic, roller_coaster, sgd
from mnistjax.training import (Data, FitResult, Learner, TrainState, compose, data_from, data_parallel, fit, init, init_many,
                               predict, random_affine, random_shift)

# The book's numbers for pixel similarity on MNIST_SAMPLE (L1 distance; a_3 = threes[1]).
BOOK_BASELINE = {
    "a_3_distances": {"l1_mean3": 0.1114, "rmse_mean3": 0.2021, "l1_mean7": 0.1586, "rmse_mean7": 0.3021},
    "per_class_accuracy": {"3": 0.9168, "7": 0.9854},
    "balanced_accuracy": 0.9511,
}
# The book's validation accuracy on MNIST_SAMPLE (3 vs 7) by model; its deeper model is a fine-tuned resnet18.
BOOK_TRAINING = {"linear": 0.9785, "simple_net": 0.9828, "cnn": 0.9971, "resnet": 0.9971}


def _r(x) -> float:
    return round(float(x), 6)


def _floats(xs) -> list[float | None]:
    """A JSON-safe list: non-finite values (a diverged run) become null."""
    return [float(x) if np.isfinite(x) else None for x in np.asarray(xs, float).ravel()]


MNIST_DATASETS = ("mnist", "tiny", "mnist_sample")


def is_mnist(ds: data.Dataset) -> bool:
    """MNIST itself or one of its samples: the data the book's numbers are about."""
    return ds.name in MNIST_DATASETS


# Pixel similarity.

class Baseline(NamedTuple):
    summary: dict
    prototypes: np.ndarray   # (K, 28, 28) float: the mean image of each class
    sample: data.Sample


def baseline(ds: data.Dataset, classes: tuple[int, ...] = (3, 7), distance: str = "l1") -> Baseline:
    """Pixel similarity: fit the mean image per class on train, classify valid by nearest mean.

    The summary: dataset, classes, distance, per_class_accuracy (by class name), balanced_accuracy,
    accuracy, n_train, n_valid, confusion_matrix, seconds; for MNIST's 3 vs 7 also the book's numbers.
    """
    t0 = time.perf_counter()
    sample = data.mnist_sample(ds, classes)
    x, xv = data.as_float(sample.train.images), data.as_float(sample.valid.images)
    book = is_mnist(ds) and classes == (3, 7)
    a_3 = data.as_float(sample.train.images[np.flatnonzero(sample.train.labels == 3)[1]]) if book else None
    n = jax.device_get(_pixel_similarity(x, sample.train.labels, xv, sample.valid.labels, np.asarray(classes, np.int32),
                                         a_3, DISTANCES[distance], len(ds.classes)))
    names = [ds.classes[c] for c in classes]
    summary = {
        "dataset": ds.name, "classes": names, "distance": distance,
        "per_class_accuracy": {name: _r(n["per_class"][c]) for name, c in zip(names, classes)},
        "balanced_accuracy": _r(n["balanced"]), "accuracy": _r(n["accuracy"]),
        "n_train": len(sample.train), "n_valid": len(sample.valid),
        "confusion_matrix": n["confusion"][np.ix_(classes, classes)].tolist(),
    }
    if book:  # the book's threes[1], and its numbers
        summary["a_3_distances"] = {f"{d}_mean{c}": _r(n["a_3"][d][i]) for i, c in enumerate(classes) for d in ("l1", "rmse")}
        summary["book"] = BOOK_BASELINE
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    return Baseline(summary, n["prototypes"], sample)


@partial(jax.jit, static_argnames=("distance", "n_classes"))
def _pixel_similarity(x, y, xv, yv, classes, a_3, distance, n_classes: int) -> dict:
    """All of the baseline's numbers in one compiled call (eagerly, each little op would be a compile
    of its own). a_3: an image whose L1 and RMSE distances to each prototype to report, or None."""
    protos = fit_prototypes(x, y, classes)
    pred = classify(xv, protos, classes, distance)
    out = {"prototypes": protos, "confusion": metrics.confusion_matrix(pred, yv, n_classes),
           "per_class": metrics.per_class_accuracy(pred, yv, n_classes),
           "balanced": metrics.balanced_accuracy(pred, yv, n_classes), "accuracy": metrics.accuracy(pred, yv)}
    if a_3 is not None:
        out["a_3"] = {d: mnist_distance(a_3, protos, DISTANCES[d]) for d in ("l1", "rmse")}
    return out


# Nearest neighbours: every training image a prototype.

# LeCun's table, 1-NN with L2 on full MNIST: 3.09 % test error on the images as they are, 2.4 % deskewed
LECUN_KNN = {False: 0.9691, True: 0.976}


def knn(ds: data.Dataset, classes: tuple[int, ...], k: int = 1, distance: str = "l2", weighted: bool = False,
        deskew: bool = False) -> dict:
    """k-nearest-neighbour classification of the test images among the training images (``prototypes.knn``),
    all of them straightened first when ``deskew`` (``preprocess.deskew``). The summary: dataset, classes,
    k, distance, weighted, deskew, accuracy, per_class_accuracy, n_train, n_valid, seconds; on full
    MNIST with 1-NN and L2, also LeCun's figure."""
    t0 = time.perf_counter()
    sample = data.mnist_sample(ds, classes)
    if not 1 <= k <= len(sample.train):
        raise MnistjaxError(f"{k}: expected 1 to {len(sample.train)}, the number of training images", param="k")
    prep = jax.jit(preprocess.deskew) if deskew else jnp.asarray
    pred = prototypes.knn(prep(sample.train.images), jnp.asarray(sample.train.labels), prep(sample.valid.images),
                          len(ds.classes), k, distance, weighted)
    labels = jnp.asarray(sample.valid.labels)
    per_class = np.asarray(metrics.per_class_accuracy(pred, labels, len(ds.classes)))
    names = [ds.classes[c] for c in classes]
    summary = {"dataset": ds.name, "classes": names, "k": k, "distance": distance, "weighted": weighted, "deskew": deskew,
               "accuracy": _r(metrics.accuracy(pred, labels)),
               "per_class_accuracy": {n: _r(per_class[c]) for n, c in zip(names, classes)},
               "n_train": len(sample.train), "n_valid": len(sample.valid), "seconds": round(time.perf_counter() - t0, 3)}
    if ds.name == "mnist" and len(classes) == 10 and (k, distance) == (1, "l2"):
        summary["lecun"] = LECUN_KNN[deskew]
    return summary


# Gradient descent: the learning-rate pictures and the roller coaster.

LR_CASES = {"too low": 0.01, "good": 0.1, "bounces": 0.95, "diverges": 1.1}
CHECKPOINTS = (10, 100, 1000, 10_000)


def square(x):
    """The chapter's pretend loss, f(x) = x²."""
    return x**2


def learning_rates(x0: float = -1.5, steps: int = 10) -> dict:
    """Descents of x² from ``x0`` for a too-low, a good, a bouncing and a diverging learning rate,
    all four in one ``vmap``ped, compiled call. Each run's x per step is in the summary."""
    lrs = jnp.array(list(LR_CASES.values()))
    runs = jax.jit(jax.vmap(lambda lr: descend(square, jnp.float32(x0), sgd(lr), steps)))(lrs)
    flags = np.asarray(diverged(runs.loss))
    return {"x0": x0, "steps": steps, "runs": [
        {"name": name, "lr": lr, "x": _floats(runs.params[i]), "loss": _floats(runs.loss[i]), "diverged": bool(flags[i])}
        for i, (name, lr) in enumerate(LR_CASES.items())]}


class SGDExample(NamedTuple):
    summary: dict
    time: np.ndarray            # (n,) the roller coaster's times
    speed: np.ndarray           # (n,) its noisy speeds
    params: np.ndarray          # (long_steps + 1, 3) the book's SGD, every step
    variants: dict              # name -> (steps + 1,) losses of better-conditioned variants
    sweep: tuple                # (learning rates, final losses, diverged) of a 1,000-step sweep


def sgd_example(seed: int = 42, steps: int = 10, lr: float = 1e-5, long_steps: int = 10_000) -> SGDExample:
    """The end-to-end SGD example: fit a·t² + b·t + c to noisy speeds, as the book does, then
    measure it against least squares, a better-conditioned variant, and a learning-rate sweep."""
    key_data, key_init = jax.random.split(jax.random.key(seed))
    t, speed = roller_coaster(key_data)
    params = init_params(key_init, (3,))
    loss = fit_loss(t, speed)
    run = jax.jit(descend, static_argnums=(0, 2, 3))
    book = run(loss, params, sgd(lr), max(steps, long_steps))
    best = lstsq_quadratic(t, speed)
    best_loss = float(loss(best))
    # Better conditioned: time centred and scaled to [-1, 1] (same model family, same best loss).
    scaled = fit_loss((t - 9.5) / 9.5, speed)
    variants = {"sgd lr=1e-5, raw time (the book)": book.loss,
                "sgd lr=0.5, scaled time": run(scaled, params, sgd(0.5), long_steps).loss,
                "momentum 0.9 lr=0.5, scaled time": run(scaled, params, optax.sgd(0.5, momentum=0.9), long_steps).loss,
                "adam lr=1, scaled time": run(scaled, params, optax.adam(1.0), long_steps).loss}
    lrs = jnp.logspace(-7, -4, 25)
    sweep = jax.jit(jax.vmap(lambda r: descend(loss, params, sgd(r), 1000).loss))(lrs)
    summary = {
        "seed": seed, "lr": lr, "steps": steps,
        "losses": _floats(book.loss[:steps + 1]),
        "diverged": bool(diverged(book.loss[:steps + 1])),
        "params": _floats(book.params[steps]),
        "lstsq_params": _floats(best), "lstsq_loss": best_loss,
        "after_steps": {str(n): {"loss": float(book.loss[n]), "loss_over_lstsq": float(book.loss[n]) / best_loss,
                                 "params": _floats(book.params[n])} for n in CHECKPOINTS if n <= long_steps},
        "steps_to_within_1pct_of_lstsq": {k: first_step_within(v, best_loss, 0.01) for k, v in variants.items()},
        "lr_sweep": {"lrs": _floats(lrs), "final_loss": _floats(sweep[:, -1]),
                     "diverged": np.asarray(diverged(sweep)).tolist(), "steps": 1000},
    }
    return SGDExample(summary, *jax.device_get((t, speed, book.params)), {k: np.asarray(v) for k, v in variants.items()},
                      jax.device_get((lrs, sweep[:, -1], diverged(sweep))))


# SGD-trained classifiers.

class Prepared(NamedTuple):
    """A class subset of a dataset, ready to train on: the arrays on the device and what they are."""

    data: Data
    sample: data.Sample          # the same images and labels on the host (uint8)
    names: tuple[str, ...]       # class names, in class-index order
    dataset: str                 # the dataset's name ("mnist", "tiny", "custom", ...)
    book: bool                   # MNIST's 3 vs 7, where the book's numbers apply


def prepare(ds: data.Dataset, classes: str | tuple[int, ...]) -> Prepared:
    """The classes (a RunConfig's "3,7"/"all", or ids) of ``ds`` on the device, for ``train``."""
    ids = data.parse_classes(classes, ds.classes) if isinstance(classes, str) else tuple(classes)
    sample = data.mnist_sample(ds, ids)
    return Prepared(data_from(sample), sample, tuple(ds.classes[c] for c in ids), ds.name,
                    is_mnist(ds) and ids == (3, 7))


def data_id(p: Prepared) -> str:
    """A hash of the images and labels a run trains and validates on: what a checkpoint is of."""
    return hashlib.sha256((p.sample.train.sha256() + p.sample.valid.sha256()).encode()).hexdigest()


def learner(config: RunConfig, p: Prepared) -> Learner:
    """The Learner a RunConfig describes, for these data (the schedule's length depends on their size)."""
    task = losses.task(config.loss, len(p.names))
    model = models.build(config.model, task.n_out, **config.model_args)
    steps = optimizers.total_steps(int(p.data.x_train.shape[0]), config.batch_size, config.epochs, config.drop_last)
    rate = optimizers.schedule(config.schedule, config.lr, steps, **config.schedule_args)
    make = partial(optimizers.optimizer, config.opt, **config.opt_args)
    # several rates: each model's rate lives in its optimizer state (see training.init_many)
    optimizer = optax.inject_hyperparams(lambda learning_rate: make(learning_rate))(learning_rate=rate) if config.lrs \
        else make(rate)
    devices = None if config.devices is None else (len(jax.devices()) if config.devices == "all" else config.devices)
    side = min(p.data.x_train.shape[1:3])
    if config.augment >= side:  # a shift as large as the image leaves nothing of it
        raise MnistjaxError(f"{config.augment}: expected fewer pixels than the images' {side}", param="augment")
    augments = [random_shift(config.augment)] if config.augment else []
    augments += [random_affine(config.rotate, config.zoom)] if config.rotate or config.zoom else []
    return Learner(model, task, optimizer, config.batch_size, config.shuffle, config.drop_last,
                   compose(*augments) if len(augments) > 1 else augments[0] if augments else None,
                   data_parallel(devices) if devices else None, config.ema)


def run_keys(config: RunConfig) -> jax.Array:
    """The key of each model: one per seed (the one seed repeated for a sweep of rates); a single
    key for a single model."""
    if config.n_models == 1:
        return jax.random.key(config.seeds[0])
    seeds = config.seeds * (config.n_models if len(config.seeds) == 1 else 1)
    return jnp.stack([jax.random.key(s) for s in seeds])


class Training(NamedTuple):
    summary: dict
    fit: FitResult
    prepared: Prepared
    learner: Learner


def train(config: RunConfig, p: Prepared, *, resume: bool = False, log=None, progress: bool = True) -> Training:
    """Train what ``config`` describes on ``p`` and report it: history, accuracy (per class for one
    model; each model's and mean ± std for several), timings, the book's figure where it applies.

    ``resume``: continue from the checkpoint in ``config.checkpoint_dir``. ``log``: a ``RunLog``
    (or None) that gets a record per epoch. Raises TrainingDiverged (its report in ``.result``) when
    a training loss goes non-finite.
    """
    lrn = learner(config, p)
    key = run_keys(config)
    start, history = None, []
    if config.lrs:
        start = init_many(lrn, key, jnp.asarray(config.lrs * (config.n_models // len(config.lrs))))
    cfg = config.to_dict()
    ident = data_id(p) if config.checkpoint_dir else None

    def on_epoch(epoch: int, ts: TrainState, history: list) -> None:
        if log is not None:
            log.write(history[-1])
        if config.checkpoint_dir and (epoch % config.checkpoint_every == 0 or epoch == config.epochs):
            checkpoint.save(config.checkpoint_dir, ts, history, cfg, ident)

    with checkpoint.held(config.checkpoint_dir) if config.checkpoint_dir else nullcontext():
        if config.checkpoint_dir and resume:
            template = start if start is not None else (init_many(lrn, key) if key.ndim else init(lrn, key))
            start, history = checkpoint.load(config.checkpoint_dir, template, cfg, ident)
        r = fit(lrn, p.data, config.epochs, key, start=start, history=history, same_batches=config.same_batches,
                progress=progress, on_epoch=on_epoch)
    summary = {"config": cfg, "dataset": p.dataset, "classes": list(p.names), "n_train": int(p.data.x_train.shape[0]),
               "n_valid": int(p.data.x_valid.shape[0]),
               **(_one_model(r, lrn, p) if key.ndim == 0 else _many_models(r, config)),
               "compile_seconds": round(r.compile_seconds, 3), "train_seconds": round(r.train_seconds, 3),
               "book": BOOK_TRAINING.get(config.model) if p.book else None}
    report = Training(summary, r, p, lrn)
    failed = [r.diverged_at] if key.ndim == 0 else [d for d in r.diverged_at if d is not None]
    if any(d is not None for d in failed):
        raise _diverged(report, config)
    return report


def _one_model(r: FitResult, lrn: Learner, p: Prepared) -> dict:
    logits = r.valid_logits if r.valid_logits is not None else predict(r.eval_params, r.model_state, p.data.x_valid, lrn.model)
    per_class = np.asarray(_per_class(logits, p.data.y_valid, lrn.task.predict, len(p.names)))
    return {"valid_accuracy": r.history[-1]["valid_accuracy"] if r.history else None,
            "per_class_accuracy": {n: _r(a) for n, a in zip(p.names, per_class)},
            "history": r.history, "diverged_at": r.diverged_at}


@partial(jax.jit, static_argnames=("predict", "n_classes"))
def _per_class(logits, labels, predict, n_classes: int):
    """The accuracy per class, in one compiled call (not an eager op each)."""
    return metrics.per_class_accuracy(predict(logits), labels, n_classes)


def _many_models(r: FitResult, config: RunConfig) -> dict:
    k = config.n_models
    seeds = config.seeds * (k if len(config.seeds) == 1 else 1)
    rates = config.lrs * (k // len(config.lrs)) if config.lrs else (config.lr,) * k
    runs = [{"seed": seed, "lr": rate, "valid_accuracy": r.history[-1]["valid_accuracy"][i] if r.history else None,
             "diverged_at": r.diverged_at[i],
             "history": [{name: v if name == "epoch" else v[i] for name, v in row.items()} for row in r.history]}
            for i, (seed, rate) in enumerate(zip(seeds, rates))]
    accs = [run["valid_accuracy"] for run in runs if run["valid_accuracy"] is not None and np.isfinite(run["valid_accuracy"])]
    return {"runs": runs, "valid_accuracy_mean": statistics.mean(accs) if accs else None,
            "valid_accuracy_std": statistics.pstdev(accs) if accs else None}


def _finite_from_the_start(report: Training, config: RunConfig) -> bool:
    """Whether the initial model's logits on the first training images are finite (asked only after a
    run diverged in its first epoch: the model may be at fault, not the rate)."""
    start = init(report.learner, run_keys(config))
    x = report.prepared.data.x_train[:64]
    return bool(jnp.isfinite(predict(start.params, start.model_state, x, report.learner.model)).all())


def _diverged(report: Training, config: RunConfig) -> TrainingDiverged:
    s = report.summary
    if "runs" in s:
        bad = [f"seed {run['seed']} lr {run['lr']:g} at epoch {run['diverged_at']}" for run in s["runs"] if run["diverged_at"]]
        err = TrainingDiverged(f"{len(bad)} of {len(s['runs'])} runs diverged (loss not finite): {', '.join(bad)}; "
                               "try smaller learning rates")
    elif s["diverged_at"] == 1 and not _finite_from_the_start(report, config):
        err = TrainingDiverged("the model's outputs are not finite from the start, before any training step (NaN or "
                               "infinite logits from its init or apply); check the model, not the learning rate")
    else:
        at = s["diverged_at"]
        err = TrainingDiverged(f"training diverged at epoch {at} (loss not finite); kept the params of epoch {at - 1}; "
                               f"try a smaller learning rate than {config.lr}")
    err.result, err.report = s, report
    return err


# The learning-rate finder.

class LRFindReport(NamedTuple):
    summary: dict
    result: object   # training.LRFind


def lr_find(config: RunConfig, p: Prepared, start_lr: float = 1e-7, end_lr: float = 10.0, num_it: int = 100) -> LRFindReport:
    """The range test for what ``config`` describes (its optimizer and arguments; the rate is the
    test's), one run per seed in one vmapped call. The summary: lrs, losses (the mean over the runs),
    each run's losses with several seeds, and the suggestions."""
    if config.lrs:
        raise MnistjaxError("lr-find tries the rates itself; expected no lrs", param="lrs")
    if not 0 < start_lr < end_lr:
        raise MnistjaxError(f"{start_lr} to {end_lr}: expected 0 < start < end", param="start_lr")
    r = training.lr_find(learner(config, p), p.data, run_keys(config),
                         lambda rate: optimizers.optimizer(config.opt, rate, **config.opt_args), start_lr, end_lr, num_it)
    runs = np.atleast_2d(r.losses)
    summary = {"config": config.to_dict(), "dataset": p.dataset, "classes": list(p.names), "lrs": _floats(r.lrs),
               "losses": _floats(r.mean), "suggestions": r.suggestions,
               **({"runs": [_floats(run) for run in runs]} if len(runs) > 1 else {})}
    return LRFindReport(summary, r)


# The chapter end to end.

CHAPTER_RECIPES = ("linear", "simple_net", "cnn")  # the trained steps of ``mnistjax run``, on 3 vs 7


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def chapter(ds: data.Dataset, on_report: Callable[[str, object], None] | None = None, progress: bool = True) -> dict:
    """Every step of the chapter on 3 vs 7, our accuracy beside the book's: pixel similarity and the
    ``CHAPTER_RECIPES``. The steps are independent, so they run side by side in threads: while one
    trains (XLA releases the GIL), the others trace and compile; each gives what it gives alone.
    ``on_report(name, report)`` runs in the step's thread when it is done (to draw its figures)."""
    from tqdm import tqdm

    p37 = prepare(ds, "3,7")  # on the device once for the three trainings

    def step(name):
        report = baseline(ds, (3, 7), "l1") if name == "baseline" else train(config.recipe(name), p37, progress=False)
        if on_report is not None:
            on_report(name, report)
        return report.summary

    pool = ThreadPoolExecutor(1 + len(CHAPTER_RECIPES))  # not ``with``: an interrupt must not wait for the steps
    futures = {pool.submit(step, name): name for name in ("baseline", *reversed(CHAPTER_RECIPES))}  # the longest first
    try:
        for future in tqdm(as_completed(futures), total=len(futures), desc="steps", disable=not progress, leave=False):
            future.result()  # a step's error stops the run here
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    r = {name: future.result() for future, name in futures.items()}
    base = r["baseline"]
    steps = [{"step": "pixel similarity (L1)", "accuracy": base["balanced_accuracy"],
              "book": base.get("book", {}).get("balanced_accuracy"), "seconds": base["seconds"]}]
    steps += [{"step": f"{name} ({r[name]['config']['opt']}, {_count(r[name]['config']['epochs'], 'epoch')})",
               "accuracy": r[name]["valid_accuracy"], "book": r[name]["book"],
               "seconds": round(r[name]["compile_seconds"] + r[name]["train_seconds"], 3)} for name in CHAPTER_RECIPES]
    return {"dataset": ds.name, "source": ds.source, "verified": ds.verified, "steps": steps}
