"""Checkpoints: a run's TrainState and history in one ``.npz``, written atomically.

A checkpoint also records the run's configuration and the identity of its training data; resuming
with another configuration, other data, or from a file that is corrupt or of another structure is
a clear error, never a silent mix.
"""

from __future__ import annotations

import io
import json
import os
from contextlib import contextmanager
from pathlib import Path

import jax
import numpy as np

from mnistjax.errors import MnistjaxError
from mnistjax.files import atomic_write, remove_stale_temps

FILENAME = "checkpoint.npz"
# Settings that do not change a run's numbers: where checkpoints go, and where the data was read from
# (the data themselves are compared by their hash).
_IRRELEVANT = ("checkpoint_dir", "checkpoint_every", "data_dir", "dataset")


def save(folder: str | os.PathLike, train_state, history: list, config: dict, data_id: str) -> Path:
    """Write ``folder/checkpoint.npz`` (temp file + rename: a crash leaves the previous one whole)."""
    leaves, treedef = jax.tree.flatten(train_state)
    meta = {"history": history, "config": config, "data": data_id, "treedef": str(treedef)}
    buf = io.BytesIO()
    np.savez(buf, meta=np.array(json.dumps(meta)), **{f"leaf{i}": np.asarray(x) for i, x in enumerate(leaves)})
    path = Path(folder) / FILENAME
    atomic_write(path, buf.getvalue(), param="checkpoint_dir")
    return path


@contextmanager
def held(folder: str | os.PathLike):
    """Hold ``folder`` for one run while it trains: a second run given the same folder at the same time
    is refused (one line) instead of overwriting the first one's progress. The lock is the OS's, on
    ``folder/.lock`` (``filelock``): a killed run's lock goes with it; the empty file stays."""
    from filelock import FileLock, Timeout

    Path(folder).mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(Path(folder) / ".lock", timeout=0):
            yield
    except Timeout:
        raise MnistjaxError(f"{folder}: another run is training with this folder now; wait for it or use another folder",
                            param="checkpoint_dir") from None


def _read(path: Path) -> tuple[dict, list[np.ndarray]]:
    try:
        with np.load(path) as z:
            meta = json.loads(str(z["meta"]))
            saved = [z[f"leaf{i}"] for i in range(len(z.files) - 1)]
        kinds = {"history": list, "config": dict, "data": str, "treedef": str}
        if not isinstance(meta, dict) or not all(isinstance(meta.get(k), kind) for k, kind in kinds.items()):
            raise ValueError("no run description in it")
    except Exception as e:  # zip, zlib, pickle-free npy parsing, JSON: whatever a flipped bit breaks
        raise MnistjaxError(f"{path}: corrupt checkpoint ({type(e).__name__}: {' '.join(str(e).split())[:120]}); "
                            "delete it or start without resuming", param="checkpoint_dir") from None
    return meta, saved


def _differences(saved: dict, now: dict) -> list[str]:
    keys = [k for k in {**saved, **now} if k not in _IRRELEVANT]
    if now.get("schedule", "constant") == "constant":
        keys.remove("epochs")  # a constant rate: training on for more epochs is the same run
    return [f"{k}: saved {saved.get(k)!r}, now {now.get(k)!r}" for k in keys if saved.get(k) != now.get(k)]


def load(folder: str | os.PathLike, template, config: dict, data_id: str):
    """Read ``folder/checkpoint.npz`` into the structure of ``template`` (a TrainState).

    Returns (train_state, history). Refuses a file that is missing, corrupt, made by another
    configuration or from other data, or whose arrays do not fit the template.
    """
    folder = Path(folder)
    remove_stale_temps(folder)
    path = folder / FILENAME
    if not path.is_file():
        raise MnistjaxError(f"no checkpoint at {path}; expected one written by an earlier run", param="checkpoint_dir")
    meta, saved = _read(path)
    detail = _differences(meta["config"], config)
    if detail:
        raise MnistjaxError(f"{path} is of another run ({'; '.join(detail)}); use the same settings or another folder",
                            param="checkpoint_dir")
    if meta["data"] != data_id:
        raise MnistjaxError(f"{path} was trained on other data (its hash {meta['data'][:12]}…, these data "
                            f"{data_id[:12]}…); use the same data or another folder", param="checkpoint_dir")
    leaves, treedef = jax.tree.flatten(template)
    if str(treedef) != meta["treedef"] or len(saved) != len(leaves) or any(
            a.shape != np.shape(b) or a.dtype != np.asarray(b).dtype for a, b in zip(saved, leaves)):
        raise MnistjaxError(f"{path}: its arrays do not fit this model and optimizer; expected the structure it was "
                            "saved with", param="checkpoint_dir")
    return jax.tree.unflatten(treedef, [jax.numpy.asarray(a) for a in saved]), meta["history"]
