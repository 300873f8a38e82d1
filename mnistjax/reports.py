"""Results as JSON-ready dicts and human tables, with the book's figures beside ours."""

from __future__ import annotations

import os
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from mnistjax import data, metrics
from mnistjax.distances import DISTANCES, mnist_distance
from mnistjax.prototypes import classify, fit_prototypes

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
    ids = jnp.asarray(classes)
    x, y = data.as_float(sample.train.images), jnp.asarray(sample.train.labels)
    xv, yv = data.as_float(sample.valid.images), jnp.asarray(sample.valid.labels)
    protos = fit_prototypes(x, y, ids)
    pred = classify(xv, protos, ids, DISTANCES[distance])
    k = len(ds.classes)
    per_class = np.asarray(metrics.per_class_accuracy(pred, yv, k))
    cm = np.asarray(metrics.confusion_matrix(pred, yv, k))[np.ix_(classes, classes)]
    names = [ds.classes[c] for c in classes]
    result = {
        "dataset": ds.name,
        "classes": names,
        "distance": distance,
        "per_class_accuracy": {n: _r(per_class[c]) for n, c in zip(names, classes)},
        "balanced_accuracy": _r(metrics.balanced_accuracy(pred, yv, k)),
        "accuracy": _r(metrics.accuracy(pred, yv)),
        "n_train": len(sample.train),
        "n_valid": len(sample.valid),
        "confusion_matrix": cm.tolist(),
    }
    if classes == (3, 7):
        a_3 = x[np.flatnonzero(sample.train.labels == 3)[1]]  # the book's threes[1]
        result["a_3_distances"] = {f"{d}_mean{c}": _r(mnist_distance(a_3, p, DISTANCES[d]))
                                   for c, p in zip(classes, protos) for d in ("l1", "rmse")}
        result["book"] = BOOK_BASELINE
    result["seconds"] = round(time.perf_counter() - t0, 3)
    if figures is not None:
        _baseline_figures(Path(figures), sample, protos, cm, names, distance)
    return result


def _baseline_figures(folder: Path, sample: data.Sample, protos, cm, names, distance) -> None:
    from mnistjax import plots

    folder.mkdir(parents=True, exist_ok=True)
    plots.show_image(np.asarray(protos), [f"ideal {n}" for n in names], path=folder / "prototypes.png")
    first = sample.train.images[1]
    plots.pixel_grid(first, path=folder / "pixels.png")
    plots.confusion_figure(cm, names, f"nearest mean ({distance}), validation", path=folder / "confusion.png")


def baseline_table(r: dict) -> str:
    """The baseline as a table: class, our accuracy, the book's."""
    book = r.get("book", {}) if r["distance"] == "l1" else {}
    ref = book.get("per_class_accuracy", {})
    lines = [f"pixel similarity ({r['distance']}) on {r['dataset']}: {r['n_valid']} validation images",
             f"{'':>18} {'ours':>8} {'book':>8}"]
    lines += [f"{'accuracy ' + n:>18} {a:8.4f} {ref.get(n, float('nan')):8.4f}" for n, a in r["per_class_accuracy"].items()]
    lines.append(f"{'balanced':>18} {r['balanced_accuracy']:8.4f} {book.get('balanced_accuracy', float('nan')):8.4f}")
    lines.append(f"{'accuracy':>18} {r['accuracy']:8.4f}")
    for key, v in r.get("a_3_distances", {}).items():
        lines.append(f"{'a_3 ' + key:>18} {v:8.4f} {book.get('a_3_distances', {}).get(key, float('nan')):8.4f}")
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
    import jax

    from mnistjax.sgd import descend, diverged, sgd

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
    import jax
    import optax

    from mnistjax.sgd import (descend, diverged, fit_loss, first_step_within, init_params, lstsq_quadratic, quadratic,
                              roller_coaster, sgd)

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
