"""Saved models: one safetensors file, loaded with nothing else, bit-identical predictions; a model
file is data (no code runs from it unless trusted); a truncated, corrupt, forged or foreign file is a
one-line error."""

import json
import os

import jax
import numpy as np
import pytest

from mnistjax import experiment, layers, models, saved
from mnistjax.config import RunConfig
from mnistjax.errors import MnistjaxError
from mnistjax.training import predict


@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory):
    cfg = RunConfig(model="cnn_bn", model_args={"channels": [4, 8]}, opt="adam", lr=3e-3, epochs=2, classes="all")
    report = experiment.train(cfg, experiment.prepare(tiny, "all"), progress=False)
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
                                  predict(report.fit.state.params, report.fit.state.model_state, x, report.learner.model))
    for a, b in zip(jax.tree.leaves((m.params, m.model_state)), jax.tree.leaves((report.fit.state.params, report.fit.state.model_state))):
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
    (tmp_path / "mine.py").write_text("from mnistjax import models\n"
                                      "def small(n_out) -> models.Module:\n    return models.simple_net(n_out, hidden=8)\n")
    monkeypatch.chdir(tmp_path)
    report = experiment.train(RunConfig(model="mine.py:small", epochs=1), experiment.prepare(tiny, "3,7"), progress=False)
    path = saved.save_training(tmp_path / "m.safetensors", report)
    meta = json.loads(__import__("safetensors").safe_open(str(path), "numpy").metadata()["mnistjax"])
    assert meta["spec"]["model"] == f"{tmp_path / 'mine.py'}:small"
    monkeypatch.chdir("/")
    assert saved.load_model(path).spec.classes == ("3", "7")
    (tmp_path / "mine.py").unlink()  # saved as its architecture: the plug-in's file is not needed any more
    assert saved.load_model(path).spec.arch["layer"] == "sequential"


def _forge(path, spec: dict, tensors: dict | None = None, **meta):
    """A model file with any description and arrays, as a hostile or careless hand would make one."""
    from safetensors.numpy import save

    tensors = {"params/1/w": np.zeros((784, 1), np.float32), "params/1/b": np.zeros(1, np.float32)} if tensors is None else tensors
    path.write_bytes(save(tensors, {"mnistjax": json.dumps({"format": saved.FORMAT, "spec": spec, **meta})}))
    return path


LINEAR = {"model": "linear", "model_args": {}, "loss": "mnist_loss", "classes": ["3", "7"]}
HAND_WRITTEN = '''
import pathlib
from mnistjax import layers
pathlib.Path(__file__).with_name("ran").touch()

def net(n_out=1) -> layers.Module:
    return layers.stateless(lambda p, x: x.reshape(len(x), -1) @ p["w"], {"w": layers.Param((784, n_out), 784)})
'''


def test_a_model_file_never_runs_code_unless_trusted(tmp_path):
    forged = _forge(tmp_path / "os.safetensors", {**LINEAR, "model": "os:system", "model_args": {"command": f"touch {tmp_path}/ran"}})
    with pytest.raises(MnistjaxError, match="its model is built by code, os:system; .*--trust-code") as e:
        saved.load_model(forged)
    assert "\n" not in str(e.value)
    with pytest.raises(MnistjaxError, match="os:system: not a model function"):  # trusted or not: never called
        saved.load_model(forged, trust_code=True)
    (tmp_path / "evil.py").write_text(HAND_WRITTEN)
    model = models.build(f"{tmp_path}/evil.py:net", 1)
    (tmp_path / "ran").unlink()
    assert model.arch is None  # a hand-written part: saved by its plug-in's name
    path = saved.save_model(tmp_path / "m.safetensors", saved.Spec(f"{tmp_path}/evil.py:net", {}, "mnist_loss", ("3", "7")),
                            *layers.init(model, jax.random.key(0)))
    with pytest.raises(MnistjaxError, match="built by code, .*evil.py:net"):
        saved.load_model(path)
    assert not (tmp_path / "ran").exists()
    assert saved.load_model(path, trust_code=True).params["w"].shape == (784, 1) and (tmp_path / "ran").exists()


@pytest.mark.parametrize("arch,why", [
    ({"layer": "os.system", "command": "true"}, "'os.system' is not a layer"),
    ({"layer": "sequential", "layers": [{"layer": "flatten"}, {"layer": "dense", "n_in": 784, "n_out": 1, "init": "x"}]},
     "dense: init is not part of an architecture"),
    ({"layer": "batch_norm", "features": 10**12}, "more than its 785 numbers"),  # no 4 TB allocation
    ({"layer": "dense", "n_in": 784, "n_out": 1, "bias": True, "__class__": 1}, "unexpected keyword argument '__class__'"),
])
def test_a_forged_architecture_is_not_a_model(tmp_path, arch, why):
    with pytest.raises(MnistjaxError, match="not a mnistjax model") as e:
        saved.load_model(_forge(tmp_path / "m.safetensors", {**LINEAR, "arch": arch}))
    assert why in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("change,message", [
    ({"tensors": {"params/1/w": np.zeros((784, 1), np.int32), "params/1/b": np.zeros(1, np.float32)}},
     "array params/1/w is int32; expected float32"),
    ({"tensors": {"params/1/w": np.zeros((784, 1), np.float64), "params/1/b": np.zeros(1, np.float32)}},
     "array params/1/w is float64; expected float32"),
    ({"tensors": {"params/1/w": np.full((784, 1), np.nan, np.float32), "params/1/b": np.zeros(1, np.float32)}},
     "array params/1/w holds NaN or infinite values"),
    ({"spec": None}, "not a mnistjax model (ValueError: no model description (spec) in it)"),
    ({"spec": {**LINEAR, "classes": "37"}}, "not a mnistjax model (ValueError: spec.classes is not as saved)"),
    ({"spec": {**LINEAR, "model_args": []}}, "spec.model_args is not as saved"),
    ({"spec": {**LINEAR, "loss": "hinge"}}, "spec.loss is not as saved"),
    ({"spec": {**LINEAR, "extra": 1}}, "no model description (spec) in it"),
])
def test_bad_model_files_are_one_line_errors(tmp_path, change, message):
    with pytest.raises(MnistjaxError, match="^model: ") as e:
        saved.load_model(_forge(tmp_path / "m.safetensors", change.get("spec", LINEAR), change.get("tensors")))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_fifo_or_folder_is_refused_before_it_is_opened(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    for path in (tmp_path / "fifo", tmp_path):
        with pytest.raises(MnistjaxError, match="not a regular file"):
            saved.load_model(path)
