"""The chapter's results, computed: each function returns a report whose ``summary`` is a JSON-ready
dict (the book's figures beside ours where the book has them), with the arrays its figures need.
Figures are in ``plots``, text tables in ``tables``; training a RunConfig is ``experiment``.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from functools import partial
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mnistjax import config, data, experiment, metrics, preprocess, prototypes
from mnistjax.distances import DISTANCES, mnist_distance
from mnistjax.errors import MnistjaxError
from mnistjax.experiment import finite_floats, rounded
from mnistjax.prototypes import classify, fit_prototypes
from mnistjax.sgd import descend, diverged, fit_loss, first_step_within, init_params, lstsq_quadratic, roller_coaster, sgd

# The book's numbers for pixel similarity on MNIST_SAMPLE (L1 distance; a_3 = threes[1]).
BOOK_BASELINE = {
    "a_3_distances": {"l1_mean3": 0.1114, "rmse_mean3": 0.2021, "l1_mean7": 0.1586, "rmse_mean7": 0.3021},
    "per_class_accuracy": {"3": 0.9168, "7": 0.9854},
    "balanced_accuracy": 0.9511,
}


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
    book = ds.is_mnist and classes == (3, 7)
    a_3 = data.as_float(sample.train.images[np.flatnonzero(sample.train.labels == 3)[1]]) if book else None
    n = jax.device_get(_pixel_similarity(x, sample.train.labels, xv, sample.valid.labels, np.asarray(classes, np.int32),
                                         a_3, DISTANCES[distance], len(ds.classes)))
    names = [ds.classes[c] for c in classes]
    summary = {
        "dataset": ds.name, "classes": names, "distance": distance,
        "per_class_accuracy": {name: rounded(n["per_class"][c]) for name, c in zip(names, classes)},
        "balanced_accuracy": rounded(n["balanced"]), "accuracy": rounded(n["accuracy"]),
        "n_train": len(sample.train), "n_valid": len(sample.valid),
        "confusion_matrix": n["confusion"][np.ix_(classes, classes)].tolist(),
    }
    if book:  # the book's threes[1], and its numbers
        summary["a_3_distances"] = {f"{d}_mean{c}": rounded(n["a_3"][d][i]) for i, c in enumerate(classes) for d in ("l1", "rmse")}
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
               "accuracy": rounded(metrics.accuracy(pred, labels)),
               "per_class_accuracy": {n: rounded(per_class[c]) for n, c in zip(names, classes)},
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
        {"name": name, "lr": lr, "x": finite_floats(runs.params[i]), "loss": finite_floats(runs.loss[i]), "diverged": bool(flags[i])}
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
        "losses": finite_floats(book.loss[:steps + 1]),
        "diverged": bool(diverged(book.loss[:steps + 1])),
        "params": finite_floats(book.params[steps]),
        "lstsq_params": finite_floats(best), "lstsq_loss": best_loss,
        "after_steps": {str(n): {"loss": float(book.loss[n]), "loss_over_lstsq": float(book.loss[n]) / best_loss,
                                 "params": finite_floats(book.params[n])} for n in CHECKPOINTS if n <= long_steps},
        "steps_to_within_1pct_of_lstsq": {k: first_step_within(v, best_loss, 0.01) for k, v in variants.items()},
        "lr_sweep": {"lrs": finite_floats(lrs), "final_loss": finite_floats(sweep[:, -1]),
                     "diverged": np.asarray(diverged(sweep)).tolist(), "steps": 1000},
    }
    return SGDExample(summary, *jax.device_get((t, speed, book.params)), {k: np.asarray(v) for k, v in variants.items()},
                      jax.device_get((lrs, sweep[:, -1], diverged(sweep))))


# SGD-trained classifiers.

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

    p37 = experiment.prepare(ds, "3,7")  # on the device once for the three trainings

    def step(name):
        if name == "baseline":
            report = baseline(ds, (3, 7), "l1")
        else:
            report = experiment.train(config.recipe(name), p37, progress=False)
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
