"""Files: atomic writes, leftovers of dead writers, output folders checked first, strict JSON, epoch logs."""

import json
import os
import subprocess
import sys

import pytest

from mnistjax import files
from mnistjax.errors import MnistjaxError


def test_atomic_write_and_stale_temps(tmp_path):
    files.atomic_write(tmp_path / "a" / "x.bin", b"data")
    assert (tmp_path / "a" / "x.bin").read_bytes() == b"data" and os.listdir(tmp_path / "a") == ["x.bin"]
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout)
    (tmp_path / f".x.bin.pid{dead}.q.tmp").write_bytes(b"")
    (tmp_path / f".x.bin.pid{os.getpid()}.q.tmp").write_bytes(b"")
    (tmp_path / ".notes.tmp").write_bytes(b"")  # not ours: kept
    files.remove_stale_temps(tmp_path)
    assert sorted(os.listdir(tmp_path)) == sorted(["a", f".x.bin.pid{os.getpid()}.q.tmp", ".notes.tmp"])


def test_writable_dir(tmp_path):
    assert files.writable_dir(tmp_path / "new" / "deep", "figures").is_dir()
    (tmp_path / "file").write_text("")
    with pytest.raises(MnistjaxError, match="^figures: .*file: not a folder"):
        files.writable_dir(tmp_path / "file", "figures")
    with pytest.raises(MnistjaxError, match="^figures: /proc/nope: cannot write here"):
        files.writable_dir("/proc/nope", "figures")


def test_strict_json_and_epoch_logs(tmp_path):
    assert json.loads(files.strict_json({"a": [1.0, float("nan")], "b": float("inf")})) == {"a": [1.0, None], "b": None}
    log = files.open_log(tmp_path / "log.csv", swept=("lr",))
    runs = [{"run": 0, "seed": 0, "lr": 0.1}, {"run": 1, "seed": 0, "lr": 0.2}]
    log.write([(runs[0], {"epoch": 1, "train_loss": 0.5, "step_losses": [0.5], "valid_loss": float("nan"), "valid_accuracy": 0.9}),
               (runs[1], {"epoch": 1, "train_loss": 0.6, "step_losses": [0.6], "valid_loss": 1.0, "valid_accuracy": 0.8})])
    log.close()
    assert (tmp_path / "log.csv").read_text().splitlines() == ["run,seed,lr,epoch,train_loss,valid_loss,valid_accuracy",
                                                               "0,0,0.1,1,0.5,,0.9", "1,0,0.2,1,0.6,1.0,0.8"]
    with pytest.raises(MnistjaxError, match="^log: .*log.csv: holds records of an earlier run"):
        files.open_log(tmp_path / "log.csv", swept=("lr",))
    with pytest.raises(MnistjaxError, match="^log: .*log.txt: expected a .jsonl or .csv file name"):
        files.open_log(tmp_path / "log.txt")
