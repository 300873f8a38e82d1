"""Results as JSON-ready dicts and human tables, with the book's figures beside ours."""

from __future__ import annotations

import os
import statistics
import time
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mnistjax import checkpoint, data, losses, metrics, models
from mnistjax.distances import DISTANCES, mnist_distance
from mnistjax.errors import MnistjaxError, TrainingDiverged
from mnistjax.prototypes import classify, fit_prototypes
from mnistjax.sgd import (descend, diverged, fit_loss, first_step_within, init_params, lstsq_quadratic, quadratic,
                          roller_coaster, sgd)
from mnistjax.training import Data, Learner, data_from, data_parallel, fit, init, init_many, predict, random_shift

# The book's numbers for pixel similarity on MNIST_SAMPLE (L1 distance; a_3 = threes[1]).
BOOK_BASELINE = {
    "a_3_distances": {"l1_mean3": 0.1114, "rmse_mean3": 0.2021, "l1_mean7": 0.1586, "rmse_mean7": 0.3021},
    "per_class_accuracy": {"3": 0.9168, "7": 0.9854},
    "balanced_accuracy": 0.9511,
}


def _r(x) -> float:
    return round(float(x), 6)


def baseline(ds: data.Dataset, classes: tuple[int, ...] = (3, 7), distance: str = "l1",
             figures: str | os.PathLike | None = None) -> dict:
    """Pixel similarity: fit the mean image per class on train, classify valid by nearest mean.

    Returns dataset, classes, distance, per_class_accuracy (by class name), balanced_accuracy,
    accuracy, n_valid, confusion_matrix, seconds; for 3 vs 7 also the book's a_3 distances.
    """
    t0 = time.perf_counter()
    sample = data.mnist_sample(ds, classes)
    x, xv = data.as_float(sample.train.images), data.as_float(sample.valid.images)
    a_3 = (data.as_float(sample.train.images[np.flatnonzero(sample.train.labels == 3)[1]])  # the book's threes[1]
           if classes == (3, 7) else None)
    n = jax.device_get(_pixel_similarity(x, sample.train.labels, xv, sample.valid.labels, np.asarray(classes, np.int32),
                                         a_3, DISTANCES[distance], len(ds.classes)))
    names = [ds.classes[c] for c in classes]
    cm = n["confusion"][np.ix_(classes, classes)]
    result = {
        "dataset": ds.name,
        "classes": names,
        "distance": distance,
        "per_class_accuracy": {name: _r(n["per_class"][c]) for name, c in zip(names, classes)},
        "balanced_accuracy": _r(n["balanced"]),
        "accuracy": _r(n["accuracy"]),
        "n_train": len(sample.train),
        "n_valid": len(sample.valid),
        "confusion_matrix": cm.tolist(),
    }
    if a_3 is not None:
        result["a_3_distances"] = {f"{d}_mean{c}": _r(n["a_3"][d][i]) for i, c in enumerate(classes) for d in ("l1", "rmse")}
        result["book"] = BOOK_BASELINE
    result["seconds"] = round(time.perf_counter() - t0, 3)
    if figures is not None:
        _baseline_figures(Path(figures), sample, n["prototypes"], cm, names, distance)
    return result


@partial(jax.jit, static_argnames=("distance", "n_classes"))
def _pixel_similarity(x, y, xv, yv, classes, a_3, distance, n_classes: int) -> dict:
    """All of the baseline's numbers in one compiled call (eagerly, each little op would be a compile
    of its own: 26 of them). a_3: an image whose L1 and RMSE distances to each prototype to report, or None."""
    protos = fit_prototypes(x, y, classes)
    pred = classify(xv, protos, classes, distance)
    out = {"prototypes": protos, "confusion": metrics.confusion_matrix(pred, yv, n_classes),
           "per_class": metrics.per_class_accuracy(pred, yv, n_classes),
           "balanced": metrics.balanced_accuracy(pred, yv, n_classes), "accuracy": metrics.accuracy(pred, yv)}
    if a_3 is not None:
        out["a_3"] = {d: mnist_distance(a_3, protos, DISTANCES[d]) for d in ("l1", "rmse")}
    return out


def _baseline_figures(folder: Path, sample: data.Sample, protos, cm, names, distance) -> None:
    from mnistjax import plots

    folder.mkdir(parents=True, exist_ok=True)
    plots.show_image(np.asarray(protos), [f"ideal {n}" for n in names], path=folder / "prototypes.png")
    plots.pixel_grid(sample.train.images[1], path=folder / "pixels.png")  # the book's im3 = threes[1]
    plots.confusion_figure(cm, names, f"nearest mean ({distance}), validation", path=folder / "confusion.png")


def baseline_table(r: dict) -> str:
    """The baseline as a table: class, our accuracy, the book's (where the book has one)."""
    book = r.get("book", {}) if r["distance"] == "l1" else {}
    ref = lambda v: f"{v:8.4f}" if v is not None else f"{'—':>8}"  # noqa: E731
    lines = [f"pixel similarity ({r['distance']}) on {r['dataset']}: {r['n_valid']} validation images",
             f"{'':>18} {'ours':>8} {'book':>8}"]
    lines += [f"{'accuracy ' + n:>18} {a:8.4f} {ref(book.get('per_class_accuracy', {}).get(n))}"
              for n, a in r["per_class_accuracy"].items()]
    lines.append(f"{'balanced':>18} {r['balanced_accuracy']:8.4f} {ref(book.get('balanced_accuracy'))}")
    lines.append(f"{'accuracy':>18} {r['accuracy']:8.4f}")
    lines += [f"{'a_3 ' + k:>18} {v:8.4f} {ref(book.get('a_3_distances', {}).get(k))}" for k, v in r.get("a_3_distances", {}).items()]
    return "\n".join(lines)


# Gradient descent: the learning-rate pictures and the roller coaster.

LR_CASES = {"too low": 0.01, "good": 0.1, "bounces": 0.95, "diverges": 1.1}
CHECKPOINTS = (10, 100, 1000, 10_000)


def _floats(xs) -> list[float | None]:
    """A JSON-safe list: non-finite values (a diverged run) become null."""
    return [float(x) if np.isfinite(x) else None for x in np.asarray(xs, float).ravel()]


def square(x):
    """The chapter's pretend loss, f(x) = x²."""
    return x**2


def learning_rates(x0: float = -1.5, steps: int = 10, figures: str | os.PathLike | None = None) -> dict:
    """Descents of x² from ``x0`` for a too-low, a good, a bouncing and a diverging learning rate,
    all four in one ``vmap``ped, compiled call."""
    lrs = jnp.array(list(LR_CASES.values()))
    runs = jax.jit(jax.vmap(lambda lr: descend(square, jnp.float32(x0), sgd(lr), steps)))(lrs)
    flags = np.asarray(diverged(runs.loss))
    result = {"x0": x0, "steps": steps, "runs": [
        {"name": name, "lr": lr, "x": _floats(runs.params[i]), "loss": _floats(runs.loss[i]), "diverged": bool(flags[i])}
        for i, (name, lr) in enumerate(LR_CASES.items())]}
    if figures is not None:
        from mnistjax import plots

        folder = Path(figures)
        plots.function_figure(square, title="f(x) = x²: our pretend loss", path=folder / "quadratic.png")
        plots.function_figure(square, point=x0, title="start from a random parameter", path=folder / "loss1.png")
        plots.function_figure(square, point=x0, tangent=True, title="the slope says which way is down",
                              path=folder / "loss2.png")
        names = {"good": "loss3.png", "too low": "low_learning_rate_descent.png",
                 "diverges": "high_learning_rate_descent.png", "bounces": "high_learning_rate_descent2.png"}
        for i, (name, lr) in enumerate(LR_CASES.items()):
            plots.descent_figure(square, runs.params[i], f"lr {lr}: {name}", path=folder / names[name])
    return result


def sgd_example(seed: int = 42, steps: int = 10, lr: float = 1e-5, long_steps: int = 10_000,
                   figures: str | os.PathLike | None = None) -> dict:
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
    result = {
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
    if figures is not None:
        from mnistjax import plots

        folder = Path(figures)
        shown = [0, steps, 1000, long_steps]
        plots.preds_figure(t, speed, [speed], ["the measurements"], path=folder / "sgd_scatter.png")
        plots.preds_figure(t, speed, [quadratic(book.params[n], t) for n in shown],
                           [f"after {n} steps (loss {float(book.loss[n]):.0f})" for n in shown], path=folder / "show_preds.png")
        plots.curves_figure({k: v for k, v in variants.items()}, "step", "MSE loss",
                            f"roller coaster: least squares reaches {best_loss:.2f}", logy=True,
                            path=folder / "roller_coaster_loss.png")
        plots.sweep_figure(lrs, sweep[:, -1], diverged(sweep), "plain SGD, 1000 steps: loss vs learning rate",
                           path=folder / "lr_sweep.png")
    return result


def sgd_example_table(r: dict) -> str:
    lines = [f"roller coaster, seed {r['seed']}, SGD lr {r['lr']}: loss per step"
             + ("  -- DIVERGED: the loss grew or overflowed; try a smaller --lr" if r["diverged"] else "")]
    lines += [f"  step {i:>3}: {v:10.2f}" if v is not None else f"  step {i:>3}: diverged" for i, v in enumerate(r["losses"])]
    fmt = lambda ps: "(" + ", ".join("nan" if p is None else f"{p:.4f}" for p in ps) + ")"  # noqa: E731
    lines.append(f"params after {r['steps']} steps: {fmt(r['params'])}; least squares: {fmt(r['lstsq_params'])} "
                 f"(loss {r['lstsq_loss']:.3f})")
    lines += [f"  after {n:>6} steps: loss {v['loss']:9.3f} = {v['loss_over_lstsq']:7.2f} x least squares"
              for n, v in r["after_steps"].items()]
    lines.append("steps to come within 1% of the least-squares loss:")
    lines += [f"  {k:<36} {'not within the run' if v is None else v}" for k, v in r["steps_to_within_1pct_of_lstsq"].items()]
    sweep = r["lr_sweep"]
    ok = [lr for lr, d in zip(sweep["lrs"], sweep["diverged"]) if not d]
    lines.append(f"learning-rate sweep ({len(sweep['lrs'])} rates in one vmap): stable up to lr {max(ok):.2e}, diverges above")
    return "\n".join(lines)


# SGD-trained classifiers.

# The book's results on MNIST_SAMPLE (3 vs 7), for the tables.
BOOK_TRAINING = {"linear": 0.9785, "simple_net": 0.9828, "cnn": 0.9971}
OPTIMIZERS = {"sgd": optax.sgd, "momentum": partial(optax.sgd, momentum=0.9), "adam": optax.adam}
SCHEDULES = ("constant", "onecycle")

# The chapter's runs on 3 vs 7, as ``mnistjax run`` and scripts/results.py make them.
CHAPTER_RUNS = {
    # The book's DataLoader(dset, batch_size=256) does not shuffle: every epoch sees all 3s, then all 7s.
    "linear": {"model": "linear", "epochs": 20, "lr": 1.0, "opt": "sgd", "shuffle": False},
    "simple_net": {"model": "simple_net", "epochs": 40, "lr": 0.1, "opt": "sgd", "shuffle": False},
    "cnn": {"model": "cnn", "channels": (8, 16), "epochs": 4, "lr": 1e-2, "opt": "adam", "schedule": "onecycle",
            "batch_size": 128, "augment": 1, "loss": "cross_entropy"},
}
# Time to 99 % test accuracy on all ten digits (scripts/bench.py measures it, compile and data included).
# Batch 120 divides the 60,000 images, so no step is spent on a padded last batch.
FAST_CNN10 = {"model": "cnn", "channels": (24, 48), "epochs": 3, "lr": 6e-3, "opt": "adam", "schedule": "onecycle",
              "batch_size": 120}


def _learner(ds: data.Dataset, model: str, classes: tuple[int, ...], epochs: int, lr: float, batch_size: int,
             opt: str, loss: str | None, schedule: str, augment: int = 0, shuffle: bool = True,
             channels: tuple[int, int] | None = None, sweep: bool = False,
             prepared: Data | None = None) -> tuple[Learner, str]:
    """The Learner for a CLI-style configuration, and the loss name it uses. ``sweep``: the learning
    rate becomes an injected hyperparameter, so models trained together can each have their own.
    ``prepared``: the classes' ``Data`` already on the device (default: made from ``ds``)."""
    loss = loss or ("mnist_loss" if len(classes) == 2 else "cross_entropy")
    if loss == "mnist_loss" and len(classes) != 2:
        raise MnistjaxError(f"--loss mnist_loss: needs exactly two classes, got {len(classes)}; use cross_entropy")
    if channels is not None and (model != "cnn" or len(channels) != 2 or min(channels) < 1):
        raise MnistjaxError(f"--channels {channels}: expected two positive conv widths, for --model cnn only")
    if epochs < 1 or batch_size < 1 or not lr > 0 or augment < 0:
        raise MnistjaxError(f"--epochs {epochs} --batch-size {batch_size} --lr {lr} --augment {augment}: "
                            "expected positive numbers (augment: 0 or more pixels)")
    task = losses.binary if loss == "mnist_loss" else losses.multiclass._replace(n_out=len(classes))
    d = prepared if prepared is not None else data_from(data.mnist_sample(ds, classes))
    steps = epochs * -(-int(d.x_train.shape[0]) // batch_size)
    rate = optax.cosine_onecycle_schedule(steps, lr) if schedule == "onecycle" else lr
    optimizer = optax.inject_hyperparams(OPTIMIZERS[opt])(learning_rate=rate) if sweep else OPTIMIZERS[opt](rate)
    shift = random_shift(augment) if augment else None
    return Learner(models.build(model, task.n_out, channels), task, optimizer, d, batch_size, shuffle, augment=shift), loss


def train(ds: data.Dataset, model: str = "simple_net", classes: tuple[int, ...] = (3, 7), epochs: int = 40,
          lr: float = 0.1, batch_size: int = 256, opt: str = "sgd", seed: int = 0, loss: str | None = None,
          schedule: str = "constant", augment: int = 0, shuffle: bool = True, channels: tuple[int, int] | None = None,
          devices: int | None = None, checkpoint_dir: str | None = None, checkpoint_every: int = 1, resume: bool = False,
          figures: str | os.PathLike | None = None, progress: bool = True, prepared: Data | None = None) -> dict:
    """Train one model on a class subset and report it (history, accuracy per class, timings).

    loss: "mnist_loss" (one logit, two classes only) or "cross_entropy"; default: the book's
    mnist_loss for two classes, cross-entropy otherwise. schedule: "constant" learning rate, or
    "onecycle" (warm up to ``lr``, then cosine down, over the whole run). augment: shift training
    images by up to this many pixels (0: none). shuffle: False keeps the data's order every epoch
    (the book's DataLoader). channels: the cnn's conv widths. devices: split each batch over this many devices
    (data parallel; None: one device). prepared: ``data_from(data.mnist_sample(ds, classes))`` made
    once for several runs (``mnistjax run`` shares one among its steps). Raises TrainingDiverged (with the
    report so far in ``.result``) when the loss goes non-finite.
    """
    learner, loss = _learner(ds, model, classes, epochs, lr, batch_size, opt, loss, schedule, augment, shuffle, channels,
                             prepared=prepared)
    learner = learner._replace(mesh=data_parallel(devices) if devices else None)
    d = learner.data
    task = learner.task
    key = jax.random.key(seed)
    config = {"model": model, "classes": list(classes), "loss": loss, "opt": opt, "lr": lr, "schedule": schedule,
              "augment": augment, "shuffle": shuffle, "batch_size": batch_size, "seed": seed, "dataset": ds.name,
              **({"channels": list(channels)} if channels else {})}
    start = {}
    if resume:
        if not checkpoint_dir:
            raise MnistjaxError("--resume: needs --checkpoint-dir")
        p, s, key, epoch, history = checkpoint.load(checkpoint_dir, *init(learner, key), config)
        start = {"params": p, "opt_state": s, "start_epoch": epoch, "history": history}

    def on_epoch(epoch, params, opt_state, history):
        if checkpoint_dir and (epoch % checkpoint_every == 0 or epoch == epochs):
            checkpoint.save(checkpoint_dir, params, opt_state, key, epoch, history, config)

    r = fit(learner, epochs, key, progress=progress, on_epoch=on_epoch, **start)
    logits = r.valid_logits if r.valid_logits is not None else predict(r.params, d.x_valid, learner.model)
    pred, per_class = _predictions(logits, d.y_valid, task.predict, len(classes))
    names = [ds.classes[c] for c in classes]
    result = {
        **config, "classes": names, "epochs": epochs,
        "valid_accuracy": r.history[-1]["valid_accuracy"] if r.history else None,
        "per_class_accuracy": {n: _r(a) for n, a in zip(names, np.asarray(per_class))},
        "history": r.history, "diverged_at": r.diverged_at,
        "compile_seconds": round(r.compile_seconds, 3), "train_seconds": round(r.train_seconds, 3),
        "n_train": int(d.x_train.shape[0]), "n_valid": int(d.x_valid.shape[0]), "devices": devices or 1,
        "book": BOOK_TRAINING.get(model) if tuple(classes) == (3, 7) else None,
    }
    if figures is not None and r.history:
        _training_figures(Path(figures), result, task, logits, pred, d, names)
    if r.diverged_at is not None:
        err = TrainingDiverged(f"training diverged at epoch {r.diverged_at} (loss not finite); kept the params of "
                               f"epoch {r.diverged_at - 1}; try a smaller --lr than {lr}")
        err.result = result
        raise err
    return result


@partial(jax.jit, static_argnames=("predict", "n_classes"))
def _predictions(logits, labels, predict, n_classes: int):
    """Predicted class indices and the accuracy per class, in one compiled call (not an eager op each)."""
    pred = predict(logits)
    return pred, metrics.per_class_accuracy(pred, labels, n_classes)


def train_many(ds: data.Dataset, model: str = "simple_net", classes: tuple[int, ...] = (3, 7), epochs: int = 40,
               lr: float = 0.1, batch_size: int = 256, opt: str = "sgd", seeds: list[int] = (0,),
               lrs: list[float] | None = None, loss: str | None = None, shuffle: bool = True, same_batches: bool = False,
               progress: bool = True) -> dict:
    """K models trained together in one vmapped, compiled call per epoch: one per seed, or one per
    learning rate (with the first seed, or seeds paired with rates). Reports each run and mean ± std.
    same_batches: every model sees the first seed's batches (only init and rate differ; faster)."""
    seeds, lrs = list(seeds), list(lrs or [lr] * len(seeds))
    if len(seeds) == 1:
        seeds *= len(lrs)
    if len(seeds) != len(lrs) or any(not r > 0 for r in lrs):
        raise MnistjaxError(f"--seeds {seeds} --lrs {lrs}: expected one seed, or as many seeds as positive rates")
    learner, loss = _learner(ds, model, classes, epochs, lrs[0], batch_size, opt, loss, "constant", shuffle=shuffle,
                             sweep=True)
    keys = jnp.stack([jax.random.key(s) for s in seeds])
    params, state = init_many(learner, keys, jnp.asarray(lrs))
    r = fit(learner, epochs, keys, params=params, opt_state=state, n_models=len(seeds), same_batches=same_batches,
            progress=progress)
    runs = [{"seed": seed, "lr": rate, "valid_accuracy": r.history[-1]["valid_accuracy"][i],
             "history": [{k: v if k == "epoch" else v[i] for k, v in row.items()} for row in r.history]}
            for i, (seed, rate) in enumerate(zip(seeds, lrs))]
    accs = [run["valid_accuracy"] for run in runs]
    return {"dataset": ds.name, "model": model, "classes": [ds.classes[c] for c in classes], "loss": loss, "opt": opt,
            "batch_size": batch_size, "epochs": epochs, "n_models": len(runs), "shuffle": shuffle,
            "same_batches": same_batches, "runs": runs,
            "valid_accuracy_mean": statistics.mean(accs), "valid_accuracy_std": statistics.pstdev(accs),
            "compile_seconds": round(r.compile_seconds, 3), "train_seconds": round(r.train_seconds, 3)}


def train_many_table(r: dict) -> str:
    lines = [f"{r['n_models']} x {r['model']} on {r['dataset']} ({', '.join(r['classes'])}), {r['opt']}, "
             f"{r['epochs']} epochs, trained together in one vmapped call", f"{'seed':>6} {'lr':>10} {'accuracy':>9}"]
    lines += [f"{run['seed']:>6} {run['lr']:>10g} {run['valid_accuracy']:9.4f}" for run in r["runs"]]
    lines.append(f"mean {r['valid_accuracy_mean']:.4f} ± {r['valid_accuracy_std']:.4f}; "
                 f"compile {r['compile_seconds']:.2f} s, train {r['train_seconds']:.2f} s")
    return "\n".join(lines)


def _training_figures(folder: Path, r: dict, task, logits, pred, d, names, k_wrong: int = 16) -> None:
    from mnistjax import plots

    folder.mkdir(parents=True, exist_ok=True)
    h = r["history"]
    title = f"{r['model']} on {r['dataset']} ({', '.join(names)})"
    plots.curves_figure({"train loss": [e["train_loss"] for e in h], "valid loss": [e["valid_loss"] for e in h]},
                        "epoch", "loss", title, path=folder / "loss.png")
    plots.curves_figure({"valid accuracy": [e["valid_accuracy"] for e in h]}, "epoch", "accuracy", title,
                        path=folder / "accuracy.png")
    cm = metrics.confusion_matrix(pred, d.y_valid, len(names))
    plots.confusion_figure(cm, names, f"{r['model']}, validation", path=folder / "confusion.png")
    if logits.ndim == 1:  # probability of the predicted class
        p = jax.nn.sigmoid(logits)
        conf = jnp.where(pred == 0, p, 1 - p)
    else:
        conf = jax.nn.softmax(logits).max(-1)
    wrong = np.flatnonzero(np.asarray(pred != d.y_valid))
    worst = wrong[np.argsort(-np.asarray(conf)[wrong])][:k_wrong]
    if len(worst):
        titles = [f"true {names[int(d.y_valid[i])]} / pred {names[int(pred[i])]}\np={float(conf[i]):.2f}" for i in worst]
        plots.show_image(np.asarray(d.x_valid[worst]), titles, path=folder / "top_wrong.png")


def train_table(r: dict) -> str:
    lines = [f"{r['model']} on {r['dataset']} ({', '.join(r['classes'])}), {r['opt']} lr {r['lr']}, "
             f"batch {r['batch_size']}, seed {r['seed']}, loss {r['loss']}",
             f"{'epoch':>6} {'train loss':>11} {'valid loss':>11} {'accuracy':>9}"]
    lines += [f"{e['epoch']:>6} {e['train_loss']:11.4f} {e['valid_loss']:11.4f} {e['valid_accuracy']:9.4f}" for e in r["history"]]
    if r["valid_accuracy"] is not None:
        book = f" (book {r['book']:.4f})" if r["book"] else ""
        lines.append(f"valid accuracy {r['valid_accuracy']:.4f}{book}; compile {r['compile_seconds']:.2f} s, "
                     f"train {r['train_seconds']:.2f} s")
    return "\n".join(lines)
