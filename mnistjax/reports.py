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
