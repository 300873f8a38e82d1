"""A trained model in one file, loaded with nothing else: safetensors weights, the description in
its metadata.

safetensors because it is the standard, safe weights format (a JSON header, then raw little-endian
arrays; no pickle) that other tools read too (PyTorch, Hugging Face, ``safetensors.numpy``).
Tensors are named by their path: ``params/1/w``, ``state/3/mean``. The metadata key "mnistjax"
holds, as JSON: the format, the model's architecture (its layers and their arguments, as data), its
name and arguments, the loss, the class names, the preprocessing, the run's config, the dataset's
name and hash, and the validation accuracy.

A model file is data: loading it runs no code. A model built from ``layers`` (every built-in model,
and any plug-in made of the built-in layers) is rebuilt from its architecture alone, so it loads
wherever the file goes. Only a model with a hand-written part is saved by its plug-in's name, and
loading that runs the plug-in's code: ``load_model(path, trust_code=True)`` (``--trust-code``) only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np

from mnistjax import layers, losses, models
from mnistjax.errors import MnistjaxError, expect_floats
from mnistjax.files import atomic_write, refuse_irregular
from mnistjax.layers import Module
from mnistjax.losses import Task

FORMAT = "mnistjax-model/1"
INPUT = "(N, 28, 28) float32 in [0, 1]"
# How a picture becomes a model's input (``preprocess.PREPROCESS``): MNIST's own making of a digit, or
# only the training images' size and polarity (for data that are not MNIST); and their ink.
KINDS, INKS = ("mnist", "resize"), ("light", "dark")


class Spec(NamedTuple):
    """How to rebuild a model: its architecture (``Module.arch``; None for a model with a hand-written
    part, which its builder ``models.builder`` and arguments rebuild), loss and class names."""

    model: str
    model_args: dict
    loss: str
    classes: tuple[str, ...]
    arch: dict | None = None


class SavedModel(NamedTuple):
    spec: Spec
    model: Module
    task: Task
    params: dict
    model_state: dict
    info: dict     # config, dataset, data_sha256, valid_accuracy, preprocessing, ... as saved

    @property
    def preprocessing(self) -> tuple[str, str]:
        """(kind, ink): how a picture becomes this model's input, as its training data need (one of
        ``KINDS``; files saved before it was recorded: "mnist") and their ink (one of ``INKS``)."""
        p = self.info.get("preprocessing", {})
        return p.get("kind", "mnist"), p.get("ink", "light")


def _absolute(model: str) -> str:
    """A plug-in file's path made absolute, so the saved model loads from anywhere."""
    target, sep, attr = model.rpartition(":")
    return f"{Path(target).resolve()}:{attr}" if sep and target.endswith(".py") else model


def _named(params, model_state) -> dict:
    """Every leaf of (params, state) by its path: "params/1/w", "state/3/mean"."""
    leaves = jax.tree_util.tree_flatten_with_path((params, model_state))[0]
    return {("params", "state")[path[0].idx] + "/" + "/".join(str(k.key) for k in path[1:]): x for path, x in leaves}


def _largest_int(tree) -> int:
    if isinstance(tree, dict):
        tree = list(tree.values())
    if isinstance(tree, list):
        return max(map(_largest_int, tree), default=0)
    return tree if isinstance(tree, int) else 0


def build_model(spec: Spec, trust_code: bool = False, max_size: int | None = None) -> tuple[Module, Task]:
    """The model and task a Spec describes: from its architecture when it has one (no code but the
    built-in layers), a built-in model by name, else its plug-in, which runs code: only with
    ``trust_code``. ``max_size``: the most any size in the architecture may be (a file's own count
    of numbers), so that a forged one cannot ask for more memory than the file holds."""
    task = losses.task(spec.loss, len(spec.classes))
    if spec.arch is not None:
        if max_size is not None and _largest_int(spec.arch) > max_size:
            raise ValueError(f"a size of {_largest_int(spec.arch)} in its architecture, more than its {max_size} numbers")
        return layers.from_arch(spec.arch), task
    if spec.model not in models.MODELS and not trust_code:
        raise MnistjaxError(f"its model is built by code, {spec.model}; load it only if you trust that code, with "
                            "--trust-code (load_model(path, trust_code=True))", param="model")
    return models.build(spec.model, task.n_out, **spec.model_args), task


def save_model(path: str | os.PathLike, spec: Spec, params: dict, model_state: dict, info: dict | None = None,
               preprocessing: tuple[str, str] = ("mnist", "light")) -> Path:
    """Write a model to ``path`` (temp file + rename). ``info``: anything JSON-ready to keep beside it;
    ``preprocessing``: (kind, ink), see ``SavedModel.preprocessing``."""
    from safetensors.numpy import save

    spec = spec._replace(model=_absolute(spec.model), classes=tuple(spec.classes))
    kind, ink = preprocessing
    meta = {"format": FORMAT, "spec": spec._asdict(), "preprocessing": {"kind": kind, "ink": ink, "input": INPUT},
            **(info or {})}
    tensors = {name: np.asarray(x) for name, x in _named(params, model_state).items()}
    atomic_write(path, save(tensors, {"mnistjax": json.dumps(meta)}), param="save")
    return Path(path)


def save_training(path: str | os.PathLike, report) -> Path:
    """Save the model of a one-model ``experiment.train`` report, with its run's description."""
    s = report.summary
    cfg = s["config"]
    spec = Spec(cfg["model"], cfg["model_args"], cfg["loss"] or losses.default_loss(len(s["classes"])), tuple(s["classes"]),
                report.learner.model.arch)
    from mnistjax.preprocess import ink_of
    from mnistjax.data import MNIST_DATASETS
    from mnistjax.experiment import data_id

    p = report.prepared
    info = {"config": cfg, "dataset": s["dataset"], "data_sha256": data_id(p), "valid_accuracy": s["valid_accuracy"]}
    preprocessing = ("mnist" if p.dataset in MNIST_DATASETS else "resize", ink_of(p.sample.train.images))
    return save_model(path, spec, report.fit.state.eval_params, report.fit.state.model_state, info, preprocessing)


def _not_ours(path: Path, why: str) -> MnistjaxError:
    return MnistjaxError(f"{path}: not a mnistjax model ({' '.join(why.split())[:120]}); expected a file saved by "
                         "mnistjax (train --save)", param="model")


def _read(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    from safetensors import safe_open

    refuse_irregular(path, "a model saved by mnistjax (train --save)", "model")
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = json.loads((f.metadata() or {})["mnistjax"])
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ValueError(f"format {meta.get('format') if isinstance(meta, dict) else meta!r}")
    except FileNotFoundError:
        raise MnistjaxError(f"{path}: no such file; expected a model saved by mnistjax (train --save)", param="model") from None
    except Exception as e:  # truncated, flipped, or not ours: whatever the reader says, one line
        raise _not_ours(path, f"{type(e).__name__}: {e}") from None
    return meta, tensors


def _spec(meta: dict) -> Spec:
    """The Spec in a file's metadata, each field checked: a ValueError names the first that is wrong."""
    d = meta.get("spec")
    if not isinstance(d, dict) or not {"model", "model_args", "loss", "classes"} <= set(d) <= set(Spec._fields):
        raise ValueError("no model description (spec) in it")
    kinds = {"model": str, "model_args": dict, "loss": str, "classes": list, "arch": (dict, type(None))}
    wrong = [k for k, kind in kinds.items() if not isinstance(d.get(k), kind)]
    if wrong or d["loss"] not in losses.LOSSES or len(d["classes"]) < 2 or not all(isinstance(c, str) for c in d["classes"]):
        raise ValueError(f"spec.{(wrong or ['loss' if d['loss'] not in losses.LOSSES else 'classes'])[0]} is not as saved")
    return Spec(**{**d, "classes": tuple(d["classes"])})


def load_model(path: str | os.PathLike, trust_code: bool = False) -> SavedModel:
    """A saved model, rebuilt from its architecture (or, with ``trust_code`` only, by its plug-in's
    code: see ``build_model``), its arrays put in place, each checked against the shape and dtype
    the model expects and for finite values. Anything else is a one-line MnistjaxError."""
    path = Path(path)
    meta, tensors = _read(path)
    try:
        spec = _spec(meta)
        pre = meta.get("preprocessing", {})
        if not isinstance(pre, dict) or pre.get("kind", "mnist") not in KINDS or pre.get("ink", "light") not in INKS:
            raise ValueError("its preprocessing is not as saved")
        model, task = build_model(spec, trust_code, max(sum(t.size for t in tensors.values()), 28 * 28))
        template = jax.eval_shape(lambda k: layers.init(model, k), jax.random.key(0))  # (params, state) shapes
    except MnistjaxError as e:
        raise MnistjaxError(f"{path}: {e.message}", param="model") from None
    except Exception as e:  # a forged or damaged description: whatever breaks, one line
        raise _not_ours(path, f"{type(e).__name__}: {e}") from None
    wanted = _named(*template)
    if set(wanted) != set(tensors) or any(tensors[k].shape != s.shape for k, s in wanted.items()):
        raise MnistjaxError(f"{path}: its arrays do not fit the model {spec.model} it names; expected the arrays it was "
                            "saved with", param="model")
    dtypes = [k for k, s in wanted.items() if tensors[k].dtype != s.dtype]
    if dtypes:
        raise MnistjaxError(f"{path}: array {dtypes[0]} is {tensors[dtypes[0]].dtype}; expected "
                            f"{wanted[dtypes[0]].dtype} as mnistjax saves it", param="model")
    broken = [k for k in wanted if not np.isfinite(tensors[k]).all()]
    if broken:
        raise MnistjaxError(f"{path}: array {broken[0]} holds NaN or infinite values; expected a trained model's "
                            "finite weights", param="model")
    params, state = jax.tree.unflatten(jax.tree.structure(template), [jax.numpy.asarray(tensors[k]) for k in wanted])
    info = {k: v for k, v in meta.items() if k not in ("format", "spec")}
    return SavedModel(spec, model, task, params, state, info)


def probabilities(saved: SavedModel, images) -> np.ndarray:
    """Each class's probability for images (N, 28, 28) float32 in [0, 1] (MNIST's form): (N, K)."""
    from mnistjax.training import predict

    expect_floats(images, "images")
    if np.ndim(images) != 3 or tuple(np.shape(images)[1:]) != (28, 28):
        raise MnistjaxError(f"shape {tuple(np.shape(images))}; expected (N, 28, 28) images", param="images")

    return np.asarray(saved.task.probabilities(predict(saved.params, saved.model_state, jax.numpy.asarray(images),
                                                       saved.model)))
