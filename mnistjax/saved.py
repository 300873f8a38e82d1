"""A trained model in one file, loaded with nothing else: safetensors weights, the description in
its metadata.

safetensors because it is the standard, safe weights format (a JSON header, then raw little-endian
arrays; no pickle, so loading runs no code) that other tools read too (PyTorch, Hugging Face,
``safetensors.numpy``). Tensors are named by their path: ``params/1/w``, ``state/3/mean``. The
metadata key "mnistjax" holds, as JSON: the format, how to rebuild the model (a built-in name or a
plug-in's absolute path, and its arguments), the loss, the class names, the preprocessing, the run's
config, the dataset's name and hash, and the validation accuracy.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np

from mnistjax import layers, losses, models
from mnistjax.errors import MnistjaxError
from mnistjax.files import atomic_write
from mnistjax.layers import Module
from mnistjax.losses import Task

FORMAT = "mnistjax-model/1"
PREPROCESSING = {"input": "(N, 28, 28) float32 in [0, 1], light ink on a black background (MNIST's form)",
                 "from_pictures": "mnistjax.preprocess.to_mnist"}


class Spec(NamedTuple):
    """How to rebuild a model: its builder (``models.builder``), arguments, loss and class names."""

    model: str
    model_args: dict
    loss: str
    classes: tuple[str, ...]


class SavedModel(NamedTuple):
    spec: Spec
    model: Module
    task: Task
    params: dict
    model_state: dict
    info: dict     # config, dataset, data_sha256, valid_accuracy, ... as saved


def _absolute(model: str) -> str:
    """A plug-in file's path made absolute, so the saved model loads from anywhere."""
    target, sep, attr = model.rpartition(":")
    return f"{Path(target).resolve()}:{attr}" if sep and target.endswith(".py") else model


def _named(params, model_state) -> dict:
    """Every leaf of (params, state) by its path: "params/1/w", "state/3/mean"."""
    leaves = jax.tree_util.tree_flatten_with_path((params, model_state))[0]
    return {("params", "state")[path[0].idx] + "/" + "/".join(str(k.key) for k in path[1:]): x for path, x in leaves}


def build(spec: Spec) -> tuple[Module, Task]:
    task = losses.task(spec.loss, len(spec.classes))
    return models.build(spec.model, task.n_out, **spec.model_args), task


def save_model(path: str | os.PathLike, spec: Spec, params: dict, model_state: dict, info: dict | None = None) -> Path:
    """Write a model to ``path`` (temp file + rename). ``info``: anything JSON-ready to keep beside it."""
    from safetensors.numpy import save

    spec = spec._replace(model=_absolute(spec.model), classes=tuple(spec.classes))
    meta = {"format": FORMAT, "spec": spec._asdict(), "preprocessing": PREPROCESSING, **(info or {})}
    tensors = {name: np.asarray(x) for name, x in _named(params, model_state).items()}
    atomic_write(path, save(tensors, {"mnistjax": json.dumps(meta)}))
    return Path(path)


def save_training(path: str | os.PathLike, report) -> Path:
    """Save the model of a one-model ``reports.train`` report, with its run's description."""
    s = report.summary
    cfg = s["config"]
    spec = Spec(cfg["model"], cfg["model_args"], cfg["loss"] or losses.default_loss(len(s["classes"])), tuple(s["classes"]))
    from mnistjax.reports import data_id

    info = {"config": cfg, "dataset": s["dataset"], "data_sha256": data_id(report.prepared),
            "valid_accuracy": s["valid_accuracy"]}
    return save_model(path, spec, report.fit.eval_params, report.fit.model_state, info)


def _read(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = json.loads((f.metadata() or {})["mnistjax"])
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        if meta.get("format") != FORMAT:
            raise ValueError(f"format {meta.get('format')!r}")
    except FileNotFoundError:
        raise MnistjaxError(f"{path}: no such file; expected a model saved by mnistjax (train --save)", param="model") from None
    except Exception as e:  # truncated, flipped, or not ours: whatever the reader says, one line
        raise MnistjaxError(f"{path}: not a mnistjax model ({type(e).__name__}: {' '.join(str(e).split())[:100]}); "
                            "expected a file saved by mnistjax (train --save)", param="model") from None
    return meta, tensors


def load_model(path: str | os.PathLike) -> SavedModel:
    """A saved model, rebuilt: its builder called with its arguments, its arrays put in place
    (each checked against the shape the model expects)."""
    meta, tensors = _read(Path(path))
    spec = Spec(**{**meta["spec"], "classes": tuple(meta["spec"]["classes"])})
    model, task = build(spec)
    template = jax.eval_shape(lambda k: layers.init(model, k), jax.random.key(0))  # (params, state) shapes
    wanted = _named(*template)
    if set(wanted) != set(tensors) or any(tensors[k].shape != s.shape for k, s in wanted.items()):
        raise MnistjaxError(f"{path}: its arrays do not fit the model {spec.model} it names; expected the arrays it was "
                            "saved with", param="model")
    params, state = jax.tree.unflatten(jax.tree.structure(template), [jax.numpy.asarray(tensors[k]) for k in wanted])
    info = {k: v for k, v in meta.items() if k not in ("format", "spec", "preprocessing")}
    return SavedModel(spec, model, task, params, state, info)


def probabilities(saved: SavedModel, images) -> np.ndarray:
    """Each class's probability for images (N, 28, 28) float32 in [0, 1] (MNIST's form): (N, K)."""
    from mnistjax.training import predict

    return np.asarray(saved.task.probabilities(predict(saved.params, saved.model_state, jax.numpy.asarray(images),
                                                       saved.model)))
