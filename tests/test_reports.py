"""Reports: data prepared once, a RunConfig trained and summarised (one model or several), the book's
figures only where they apply, and each report's figures."""

import dataclasses
import json

import numpy as np
import pytest

from mnistjax import config, experiment, plots, tables
from mnistjax.config import RunConfig
from mnistjax.errors import TrainingDiverged


@pytest.fixture(scope="module")
def p37(tiny):
    return experiment.prepare(tiny, "3,7")


def test_prepare_names_the_classes_and_knows_the_book_applies(tiny, p37):
    assert p37.names == ("3", "7") and p37.dataset == "tiny" and p37.book
    ten = experiment.prepare(tiny, "all")
    assert ten.names == tuple("0123456789") and not ten.book and ten.data.x_train.shape == (8000, 28, 28)
    assert experiment.data_id(p37) == experiment.data_id(experiment.prepare(tiny, (3, 7))) != experiment.data_id(ten)


def test_one_model_summary_table_and_figures(p37):
    report = experiment.train(RunConfig(model="linear", lr=1.0, epochs=2), p37, progress=False)
    s = report.summary
    json.dumps(s, allow_nan=False)
    assert s["config"] == RunConfig(model="linear", lr=1.0, epochs=2).to_dict() and s["classes"] == ["3", "7"]
    assert set(s["per_class_accuracy"]) == {"3", "7"} and s["book"] == 0.9785 and len(s["history"]) == 2
    assert "valid accuracy" in tables.training(s)
    assert set(plots.training_figures(report)) == {"loss", "accuracy", "confusion", "top_wrong"}


def test_several_models_summary(p37):
    s = experiment.train(RunConfig(model="linear", lr=1.0, epochs=1, seeds=(0, 1, 2)), p37, progress=False).summary
    accs = [r["valid_accuracy"] for r in s["runs"]]
    assert [r["seed"] for r in s["runs"]] == [0, 1, 2] and s["valid_accuracy_mean"] == pytest.approx(np.mean(accs))
    sweep = experiment.train(RunConfig(model="linear", epochs=1), p37, {"lr": [1e-4, 1.0]}, progress=False).summary
    assert [r["values"] for r in sweep["runs"]] == [{"lr": 1e-4}, {"lr": 1.0}] and sweep["programs"] == 1
    assert sweep["runs"][0]["valid_accuracy"] < sweep["runs"][1]["valid_accuracy"]
    assert "2 models trained in 1 compiled program" in tables.training(sweep)


def test_a_diverged_run_raises_with_its_report(p37):
    with pytest.raises(TrainingDiverged, match="training diverged at epoch 1") as e:
        experiment.train(RunConfig(lr=1e30, loss="cross_entropy", epochs=2), p37, progress=False)
    assert e.value.result["diverged_at"] == 1 and e.value.result["valid_accuracy"] is None


def test_the_recipes_train_as_described(p37):
    cfg = dataclasses.replace(config.recipe("cnn"), epochs=1)
    lrn = experiment.learner(cfg, p37)
    assert lrn.batch_size == 128 and lrn.augment is not None and lrn.task.n_out == 2
    s = experiment.train(cfg, p37, progress=False).summary
    assert s["config"]["model_args"] == {"channels": [8, 16]} and s["valid_accuracy"] > 0.9
