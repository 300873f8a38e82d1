"""Checkpoints: a run killed for real and resumed ends bit-identical; anything else is a clear error."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

from mnistjax import checkpoint
from mnistjax.data import write_idx
from mnistjax.data.idx_dir import FILES
from tests_helpers import run_cli


def _checkpoint(folder):
    with np.load(folder / checkpoint.FILENAME) as z:
        return {k: z[k] for k in z.files if k != "meta"}, json.loads(str(z["meta"]))


def test_killed_and_resumed_run_is_bit_identical(tmp_path):
    args = ["train", "--dataset", "tiny", "--model", "cnn_bn", "--model-arg", "channels=4,8", "--opt", "adam",
            "--lr", "0.001", "--epochs", "20", "--json"]  # batch norm's state and dropout's keys survive too
    run_cli(*args, "--checkpoint-dir", str(tmp_path / "whole"))
    proc = subprocess.Popen([sys.executable, "-m", "mnistjax.cli", *args, "--checkpoint-dir", str(tmp_path / "cut")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = tmp_path / "cut" / checkpoint.FILENAME
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (ckpt.exists() and len(_checkpoint(tmp_path / "cut")[1]["history"]) >= 3):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = len(_checkpoint(tmp_path / "cut")[1]["history"])
    assert proc.returncode == -signal.SIGKILL and killed_at < 20, "the run finished before the kill"
    run_cli(*args, "--checkpoint-dir", str(tmp_path / "cut"), "--resume")
    whole, meta_whole = _checkpoint(tmp_path / "whole")
    resumed, meta_resumed = _checkpoint(tmp_path / "cut")
    assert len(meta_resumed["history"]) == 20 and meta_resumed["history"] == meta_whole["history"]
    for k in whole:
        np.testing.assert_array_equal(whole[k], resumed[k])


def test_corrupt_and_mismatched_checkpoints_are_clear_errors(tmp_path):
    base = ["train", "--dataset", "tiny", "--model", "linear", "--epochs", "2", "--checkpoint-dir", str(tmp_path)]
    run_cli(*base)
    proc = run_cli(*base, "--resume", "--model", "simple_net", check_rc=2)
    assert "--checkpoint-dir: " in proc.stderr and "is of another run (model: saved 'linear', now 'simple_net')" in proc.stderr
    (tmp_path / checkpoint.FILENAME).write_bytes(b"not a zip")
    proc = run_cli(*base, "--resume", check_rc=2)
    assert "corrupt checkpoint" in proc.stderr and proc.stderr.count("\n") == 1
    proc = run_cli("train", "--dataset", "tiny", "--resume", "--checkpoint-dir", str(tmp_path / "none"), check_rc=2)
    assert "no checkpoint at" in proc.stderr
    proc = run_cli("train", "--dataset", "tiny", "--resume", check_rc=2)
    assert "--resume: needs --checkpoint-dir" in proc.stderr


def test_a_checkpoint_of_other_data_is_refused(tmp_path, tiny):
    other = tmp_path / "other"
    for (split, kind), name in FILES.items():  # the tiny sample with its test images flipped: other data, same shapes
        arr = getattr(getattr(tiny, split), kind)
        write_idx(other / f"{name}.gz", (arr[:, ::-1] if kind == "images" and split == "test" else arr).astype("uint8"))
    base = ["train", "--model", "linear", "--epochs", "2", "--classes", "3,7", "--checkpoint-dir", str(tmp_path / "ckpt")]
    run_cli(*base, "--dataset", "tiny")
    proc = run_cli(*base, "--data-dir", str(other), "--resume", check_rc=2)
    assert "was trained on other data" in proc.stderr


def test_epochs_when_resuming(tmp_path):
    base = ["train", "--dataset", "tiny", "--model", "linear", "--checkpoint-dir", str(tmp_path), "--json"]
    run_cli(*base, "--epochs", "2")
    out = json.loads(run_cli(*base, "--epochs", "3", "--resume").stdout)  # a constant rate: train on
    assert [h["epoch"] for h in out["history"]] == [1, 2, 3]
    assert "--epochs: 2: expected at least 3" in run_cli(*base, "--epochs", "2", "--resume", check_rc=2).stderr
    run_cli(*base, "--epochs", "2", "--schedule", "onecycle", "--checkpoint-dir", str(tmp_path / "cycle"))
    proc = run_cli(*base, "--epochs", "4", "--schedule", "onecycle", "--checkpoint-dir", str(tmp_path / "cycle"), "--resume",
                   check_rc=2)
    assert "epochs: saved 2, now 4" in proc.stderr  # the schedule spans the whole run: another length is another run


def test_a_killed_writers_temp_file_is_removed_on_resume(tmp_path):
    run_cli("train", "--dataset", "tiny", "--model", "linear", "--epochs", "1", "--checkpoint-dir", str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftover = tmp_path / f".checkpoint.npz.pid{dead.stdout.strip()}.abc123.tmp"
    leftover.write_bytes(b"half")
    mine = tmp_path / f".checkpoint.npz.pid{os.getpid()}.xyz.tmp"  # a live writer's: kept
    mine.write_bytes(b"busy")
    run_cli("train", "--dataset", "tiny", "--model", "linear", "--epochs", "2", "--checkpoint-dir", str(tmp_path), "--resume")
    assert not leftover.exists() and mine.exists()
