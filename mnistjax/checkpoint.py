"""Checkpoints: params, optimizer state, PRNG key, epoch and history in one ``.npz``, written atomically.

A checkpoint also records the run's configuration; resuming with another configuration, or from
a file that is corrupt or of another structure, is a clear error, never a silent mix.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import jax
import numpy as np

from mnistjax.data.idx import atomic_write
from mnistjax.errors import MnistjaxError

FILENAME = "checkpoint.npz"


def save(folder: str | os.PathLike, params, opt_state, key: jax.Array, epoch: int, history: list, config: dict) -> Path:
    """Write ``folder/checkpoint.npz`` (temp file + rename: a crash leaves the previous one whole)."""
    leaves, treedef = jax.tree.flatten({"params": params, "opt_state": opt_state})
    meta = {"epoch": epoch, "history": history, "config": config, "treedef": str(treedef)}
    buf = io.BytesIO()
    np.savez(buf, meta=np.array(json.dumps(meta)), key=np.asarray(jax.random.key_data(key)),
             **{f"leaf{i}": np.asarray(x) for i, x in enumerate(leaves)})
    path = Path(folder) / FILENAME
    atomic_write(path, buf.getvalue())
    return path


def load(folder: str | os.PathLike, params, opt_state, config: dict):
    """Read ``folder/checkpoint.npz`` into the structure of ``params``/``opt_state`` (templates).

    Returns (params, opt_state, key, epoch, history). Refuses a file that is missing, corrupt,
    made by another configuration, or whose arrays do not fit the templates.
    """
    path = Path(folder) / FILENAME
    if not path.is_file():
        raise MnistjaxError(f"--resume: no checkpoint at {path}; expected one written by --checkpoint-dir")
    try:
        with np.load(path) as z:
            meta = json.loads(str(z["meta"]))
            key_data = z["key"]
            saved = [z[f"leaf{i}"] for i in range(len(z.files) - 2)]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError, EOFError) as e:
        raise MnistjaxError(f"{path}: corrupt checkpoint ({type(e).__name__}: {e}); delete it or start without --resume") from None
    mismatch = {k: (meta["config"].get(k), v) for k, v in config.items() if meta["config"].get(k) != v}
    if mismatch:
        detail = ", ".join(f"{k}: saved {a!r}, now {b!r}" for k, (a, b) in mismatch.items())
        raise MnistjaxError(f"{path}: checkpoint is of another run ({detail}); use the same options or another --checkpoint-dir")
    leaves, treedef = jax.tree.flatten({"params": params, "opt_state": opt_state})
    if str(treedef) != meta["treedef"] or len(saved) != len(leaves) or any(
            a.shape != np.shape(b) or a.dtype != np.asarray(b).dtype for a, b in zip(saved, leaves)):
        raise MnistjaxError(f"{path}: checkpoint arrays do not fit this model and optimizer; expected the structure it was saved with")
    tree = jax.tree.unflatten(treedef, [jax.numpy.asarray(a) for a in saved])
    return tree["params"], tree["opt_state"], jax.random.wrap_key_data(key_data), meta["epoch"], meta["history"]
