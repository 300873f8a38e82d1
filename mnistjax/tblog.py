"""TensorBoard records of runs (``train --tensorboard DIR``): a run folder per run, named by its swept
values and seed, with its scalars per step and per epoch and its hyperparameters for the HParams
plugin, written with tensorboardX (the ``tensorboard`` extra: ``pip install 'mnistjax[tensorboard]'``).

    tensorboard --logdir DIR       # then the HPARAMS tab: a row per run, its values beside its accuracy
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from mnistjax.errors import MnistjaxError
from mnistjax.files import writable_dir

METRICS = {"valid/accuracy": "valid_accuracy", "valid/loss": "valid_loss", "train/loss": "train_loss"}


def _writer_class():
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise MnistjaxError("needs tensorboardX: pip install 'mnistjax[tensorboard]'", param="tensorboard") from None
    return SummaryWriter


def run_name(run: dict) -> str:
    """A run's folder: its swept values and seed (``lr=0.001,opt.weight_decay=0,seed=0``), one path part."""
    named = {**{k: v for k, v in run.items() if k not in ("run", "seed")}, "seed": run["seed"]}
    parts = [f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in named.items()]
    return re.sub(r"[^\w.=,+-]", "_", ",".join(parts))[:200]


class TensorBoardLog:
    """The same records as ``files.RunLog``, as TensorBoard event files under ``folder``."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = writable_dir(folder, "tensorboard", what="TensorBoard runs")
        self.writer_class = _writer_class()
        self.writers: dict[int, object] = {}

    def _writer(self, run: dict):
        if run["run"] not in self.writers:
            from tensorboardX.summary import hparams

            w = self.writers[run["run"]] = self.writer_class(str(Path(self.folder) / run_name(run)))
            values = {k: v if isinstance(v, (int, float, str, bool)) else json.dumps(v) for k, v in run.items()}
            for summary in hparams(values, dict.fromkeys(METRICS, 0.0)):  # the HParams plugin's run description
                w.file_writer.add_summary(summary)
        return self.writers[run["run"]]

    def write(self, rows: list[tuple[dict, dict]]) -> None:
        """One epoch of several runs, as ``files.RunLog.write`` takes it."""
        for run, row in rows:
            w, steps = self._writer(run), row["step_losses"]
            first = (row["epoch"] - 1) * len(steps)
            for s, loss in enumerate(steps):
                w.add_scalar("train/step_loss", loss, first + s)
            for tag, name in METRICS.items():
                w.add_scalar(tag, row[name], row["epoch"])
            w.flush()

    def close(self) -> None:
        for w in self.writers.values():
            w.close()
