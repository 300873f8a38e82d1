"""What a classifier gets wrong, as fastai's ClassificationInterpretation does it, in functions:
the confusion matrix, the most confused pairs, the top losses, precision and recall per class."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from mnistjax import metrics
from mnistjax.losses import Task


class Interpretation(NamedTuple):
    """One model's verdicts on N labelled images."""

    classes: tuple[str, ...]
    actual: np.ndarray          # (N,) int class indices
    predicted: np.ndarray       # (N,) int
    probabilities: np.ndarray   # (N, K) float
    losses: np.ndarray          # (N,) float, each image's loss


def interpret(logits, y, task: Task, classes) -> Interpretation:
    """From logits (N, n_out) and class indices (N,) under ``task``."""
    return Interpretation(tuple(classes), np.asarray(y), np.asarray(task.predict(logits)),
                          np.asarray(task.probabilities(logits)), np.asarray(task.loss(logits, y)))


def from_training(report) -> Interpretation:
    """From a one-model ``experiment.train`` report (its last epoch's validation logits)."""
    d = report.prepared.data
    return interpret(report.fit.valid_logits, d.y_valid, report.learner.task, report.prepared.names)


def confusion_matrix(i: Interpretation) -> np.ndarray:
    """(K, K) counts, rows actual, columns predicted."""
    return np.asarray(metrics.confusion_matrix(i.predicted, i.actual, len(i.classes)))


def most_confused(i: Interpretation, min_count: int = 1) -> list[tuple[str, str, int]]:
    """(actual, predicted, count) for every wrong pair seen at least ``min_count`` times, most first."""
    cm = confusion_matrix(i)
    pairs = [(i.classes[a], i.classes[p], int(cm[a, p])) for a in range(len(cm)) for p in range(len(cm))
             if a != p and cm[a, p] >= min_count]
    return sorted(pairs, key=lambda t: -t[2])


def top_losses(i: Interpretation, k: int = 9) -> list[dict]:
    """The ``k`` images with the highest loss: index, actual, predicted, loss, and the probability
    the model gave its prediction."""
    order = np.argsort(-i.losses, kind="stable")[:k]
    return [{"index": int(n), "actual": i.classes[i.actual[n]], "predicted": i.classes[i.predicted[n]],
             "loss": float(i.losses[n]), "probability": float(i.probabilities[n, i.predicted[n]])} for n in order]


def per_class(i: Interpretation) -> dict[str, dict]:
    """{class: {precision, recall, support}}: of those predicted as it, the fraction right; of those
    that are it, the fraction found (None where there is nothing to divide)."""
    cm = confusion_matrix(i)
    hit, predicted, actual = np.diag(cm), cm.sum(0), cm.sum(1)
    ratio = lambda a, b: float(a / b) if b else None  # noqa: E731
    return {c: {"precision": ratio(hit[k], predicted[k]), "recall": ratio(hit[k], actual[k]), "support": int(actual[k])}
            for k, c in enumerate(i.classes)}


def summary(i: Interpretation, k: int = 9, min_count: int = 1) -> dict:
    """Everything above as JSON-ready data."""
    return {"classes": list(i.classes), "n": len(i.actual), "accuracy": float((i.actual == i.predicted).mean()),
            "confusion_matrix": confusion_matrix(i).tolist(),
            "most_confused": [list(t) for t in most_confused(i, min_count)],
            "top_losses": top_losses(i, k), "per_class": per_class(i)}
