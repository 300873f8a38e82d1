"""Running a RunConfig: its data prepared, its Learner built, ``training.fit``, and the result as a
JSON-ready report. The way down from a configuration to a trained model:

    cfg = config.recipe("simple_net")
    report = experiment.train(cfg, experiment.prepare(data.load(), cfg.classes))
    report.summary["valid_accuracy"]
"""

from __future__ import annotations

import hashlib
import statistics
from contextlib import nullcontext
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mnistjax import augment, checkpoint, data, losses, lr_finder, metrics, models, optimizers
from mnistjax.config import RunConfig
from mnistjax.data import Data, data_from
from mnistjax.errors import MnistjaxError, TrainingDiverged
from mnistjax.mesh import data_parallel
from mnistjax.training import FitResult, Learner, TrainState, begin, fit, init, init_many, predict

# The book's validation accuracy on MNIST_SAMPLE (3 vs 7) by model; its deeper model is a fine-tuned resnet18.
BOOK_TRAINING = {"linear": 0.9785, "simple_net": 0.9828, "cnn": 0.9971, "resnet": 0.9971}


def rounded(x) -> float:
    """A number for a JSON summary: a float to 6 decimals."""
    return round(float(x), 6)


def finite_floats(xs) -> list[float | None]:
    """A JSON-safe list: non-finite values (a diverged run) become null."""
    return [float(x) if np.isfinite(x) else None for x in np.asarray(xs, float).ravel()]


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
                    ds.is_mnist and ids == (3, 7))


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
    augments = [augment.random_shift(config.augment)] if config.augment else []
    augments += [augment.random_affine(config.rotate, config.zoom)] if config.rotate or config.zoom else []
    return Learner(model, task, optimizer, config.batch_size, config.shuffle, config.drop_last,
                   augment.compose(*augments) if len(augments) > 1 else augments[0] if augments else None,
                   data_parallel(devices) if devices else None, config.ema, config.same_batches)


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
            template = begin(lrn, key, start)[0]
            start, history = checkpoint.load(config.checkpoint_dir, template, cfg, ident)
        r = fit(lrn, p.data, config.epochs, key, start=start, history=history, progress=progress, on_epoch=on_epoch)
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
    logits = r.valid_logits if r.valid_logits is not None else predict(r.state.eval_params, r.state.model_state, p.data.x_valid, lrn.model)
    per_class = np.asarray(_per_class(logits, p.data.y_valid, lrn.task.predict, len(p.names)))
    return {"valid_accuracy": r.history[-1]["valid_accuracy"] if r.history else None,
            "per_class_accuracy": {n: rounded(a) for n, a in zip(p.names, per_class)},
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
    result: object   # lr_finder.LRFind


def lr_find(config: RunConfig, p: Prepared, start_lr: float = 1e-7, end_lr: float = 10.0, num_it: int = 100) -> LRFindReport:
    """The range test for what ``config`` describes (its optimizer and arguments; the rate is the
    test's), one run per seed in one vmapped call. The summary: lrs, losses (the mean over the runs),
    each run's losses with several seeds, and the suggestions."""
    if config.lrs:
        raise MnistjaxError("lr-find tries the rates itself; expected no lrs", param="lrs")
    if not 0 < start_lr < end_lr:
        raise MnistjaxError(f"{start_lr} to {end_lr}: expected 0 < start < end", param="start_lr")
    r = lr_finder.lr_find(learner(config, p), p.data, run_keys(config),
                         lambda rate: optimizers.optimizer(config.opt, rate, **config.opt_args), start_lr, end_lr, num_it)
    runs = np.atleast_2d(r.losses)
    summary = {"config": config.to_dict(), "dataset": p.dataset, "classes": list(p.names), "lrs": finite_floats(r.lrs),
               "losses": finite_floats(r.mean), "suggestions": r.suggestions,
               **({"runs": [finite_floats(run) for run in runs]} if len(runs) > 1 else {})}
    return LRFindReport(summary, r)
