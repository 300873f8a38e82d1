"""Saved models: one safetensors file, loaded with nothing else, bit-identical predictions; a
truncated, corrupt or foreign file is a one-line error."""

import json

import jax
import numpy as np
import pytest

from mnistjax import reports, saved
from mnistjax.config import RunConfig
from mnistjax.errors import MnistjaxError
from mnistjax.training import predict


@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory):
    cfg = RunConfig(model="cnn_bn", model_args={"channels": [4, 8]}, opt="adam", lr=3e-3, epochs=2, classes="all")
    report = reports.train(cfg, reports.prepare(tiny, "all"), progress=False)
    path = saved.save_training(tmp_path_factory.mktemp("m") / "model.safetensors", report)
    return report, path


def test_round_trip_gives_bit_identical_predictions(trained):
    report, path = trained
    m = saved.load_model(path)
    assert m.spec.classes == tuple("0123456789") and m.spec.loss == "cross_entropy"
    assert m.info["config"] == report.summary["config"] and m.info["valid_accuracy"] == report.summary["valid_accuracy"]
    assert m.info["dataset"] == "tiny" and len(m.info["data_sha256"]) == 64
    x = report.prepared.data.x_valid
    np.testing.assert_array_equal(predict(m.params, m.model_state, x, m.model),
                                  predict(report.fit.params, report.fit.model_state, x, report.learner.model))
    for a, b in zip(jax.tree.leaves((m.params, m.model_state)), jax.tree.leaves((report.fit.params, report.fit.model_state))):
        np.testing.assert_array_equal(a, b)


def test_other_tools_read_it(trained):
    from safetensors.numpy import load_file

    tensors = load_file(str(trained[1]))
    assert "params/1/w" in tensors and any(k.startswith("state/") for k in tensors)


def test_corrupt_truncated_and_foreign_files_are_one_line_errors(trained, tmp_path):
    blob = trained[1].read_bytes()
    cases = {"truncated": blob[: len(blob) // 2], "empty": b"", "foreign": b"PK\x03\x04 a zip, say",
             "flipped header": blob[:20] + bytes([blob[20] ^ 0x55]) + blob[21:]}
    for name, content in cases.items():
        (tmp_path / "m").write_bytes(content)
        with pytest.raises(MnistjaxError, match="^model: .*not a mnistjax model") as e:
            saved.load_model(tmp_path / "m")
        assert "\n" not in str(e.value), name
    with pytest.raises(MnistjaxError, match="no such file"):
        saved.load_model(tmp_path / "none")


def test_a_plug_in_model_is_saved_by_its_absolute_path(tiny, tmp_path, monkeypatch):
    (tmp_path / "mine.py").write_text("from mnistjax import models\ndef small(n_out):\n    return models.simple_net(n_out, hidden=8)\n")
    monkeypatch.chdir(tmp_path)
    report = reports.train(RunConfig(model="mine.py:small", epochs=1), reports.prepare(tiny, "3,7"), progress=False)
    path = saved.save_training(tmp_path / "m.safetensors", report)
    meta = json.loads(__import__("safetensors").safe_open(str(path), "numpy").metadata()["mnistjax"])
    assert meta["spec"]["model"] == f"{tmp_path / 'mine.py'}:small"
    monkeypatch.chdir("/")
    assert saved.load_model(path).spec.classes == ("3", "7")
