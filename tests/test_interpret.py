"""Interpretation: the confusion matrix, most confused pairs, top losses (a NumPy sort of the losses)
and precision/recall, by hand on small cases and from a training report."""

import jax.numpy as jnp
import numpy as np
import pytest

from mnistjax import experiment, interpret, losses
from mnistjax.config import RunConfig


def test_by_hand():
    logits = jnp.array([[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 3.0], [3.0, 0.0, 0.0]])
    y = jnp.array([0, 1, 0, 2, 2])  # two mistakes: 0 taken for 1, 2 taken for 0
    i = interpret.interpret(logits, y, losses.multiclass(3), ["a", "b", "c"])
    np.testing.assert_array_equal(interpret.confusion_matrix(i), [[1, 1, 0], [0, 1, 0], [1, 0, 1]])
    assert interpret.most_confused(i) == [("a", "b", 1), ("c", "a", 1)] and interpret.most_confused(i, 2) == []
    pc = interpret.per_class(i)
    assert pc["a"] == {"precision": 0.5, "recall": 0.5, "support": 2} and pc["b"]["precision"] == 0.5
    top = interpret.top_losses(i, 5)
    np.testing.assert_array_equal([t["index"] for t in top], np.argsort(-np.asarray(i.losses), kind="stable"))
    assert top[0]["actual"] != top[0]["predicted"] and 0 < top[0]["probability"] < 1


def test_from_a_training_report(tiny):
    report = experiment.train(RunConfig(model="linear", lr=1.0, epochs=2), experiment.prepare(tiny, "3,7"), progress=False)
    i = interpret.from_training(report)
    s = interpret.summary(i, k=7)
    assert s["classes"] == ["3", "7"] and sum(map(sum, s["confusion_matrix"])) == 400 and len(s["top_losses"]) == 7
    assert s["accuracy"] == pytest.approx(report.summary["valid_accuracy"])
    wrong = 400 - np.trace(np.array(s["confusion_matrix"]))
    assert sum(c for _, _, c in s["most_confused"]) == wrong


def test_figures_with_real_class_names_are_readable():
    from mnistjax import plots

    names = ["T-shirt/top", "Trouser", "Ankle boot, left and right"]
    fig = plots.confusion_figure(np.eye(3, dtype=int), names)
    labels = fig.axes[0].get_xticklabels()
    assert [t.get_text() for t in labels] == ["T-shirt/top", "Trouser", "Ankle boot,…"] and labels[0].get_rotation() == 45
    rows = [{"index": i, "actual": "T-shirt/top", "predicted": "Trouser", "loss": 2.0, "probability": 0.9} for i in range(9)]
    fig = plots.top_losses_figure(np.zeros((9, 28, 28)), rows)
    grid = {(ax.get_subplotspec().rowspan.start, ax.get_subplotspec().colspan.start) for ax in fig.axes}
    assert len(grid) == 9 and max(grid) == (2, 2)  # 3 × 3
    assert fig.axes[0].get_title().splitlines()[:2] == ["true T-shirt/top", "pred Trouser"]
