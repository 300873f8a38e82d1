"""Data-parallel training over 8 CPU devices (XLA's forced host device count, in a subprocess):
the same params as on one device, and a clear error when the batch does not split evenly."""

import json
import os
import subprocess
import sys
import time

import pytest

from tests_helpers import forced_devices, run_cli

# JAX_PLATFORMS=cpu: on a machine with a GPU, jax.devices() would otherwise be the GPU alone
EIGHT = {**forced_devices(8), "JAX_PLATFORMS": "cpu"}

SAME_PARAMS = """
import jax, optax, numpy as np
from mnistjax import data, layers, models, losses
from mnistjax.data import data_from
from mnistjax.mesh import data_parallel
from mnistjax.training import Learner, fit
assert len(jax.devices()) == 8
d = data_from(data.mnist_sample(data.load_tiny(), (3, 7)))
bn = layers.sequential(layers.flatten(), layers.dense(784, 16), layers.batch_norm(16), layers.relu(), layers.dense(16, 1))
for model in (models.simple_net(), bn):  # batch norm: statistics over the global batch, as on one device
    learner = Learner(model, losses.binary, optax.sgd(0.1), batch_size=256)  # 1600 = 6 x 256 + 64
    one = fit(learner, d, 2, jax.random.key(0), progress=False)
    eight = fit(learner._replace(mesh=data_parallel(8)), d, 2, jax.random.key(0), progress=False)
    w = eight.state.params["1"]["w"]
    assert len(w.sharding.device_set) == 8, w.sharding
    print(max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
              for a, b in zip(jax.tree.leaves(one.state), jax.tree.leaves(eight.state))))
"""


def test_eight_devices_give_the_same_params_and_statistics_as_one():
    proc = subprocess.run([sys.executable, "-c", SAME_PARAMS], capture_output=True, text=True,
                          env={**os.environ, **EIGHT}, timeout=600)
    assert proc.returncode == 0, proc.stderr
    diffs = [float(x) for x in proc.stdout.split()]
    assert len(diffs) == 2 and max(diffs) < 1e-4, diffs


def test_cli_devices_flag_and_uneven_batch_error():
    out = json.loads(run_cli("train", "--dataset", "tiny", "--model", "cnn_bn", "--epochs", "1", "--devices", "all",
                             "--batch-size", "128", "--opt", "adam", "--lr", "0.001", "--json", env=EIGHT).stdout)
    assert out["config"]["devices"] == "all" and out["valid_accuracy"] > 0.9
    proc = run_cli("train", "--dataset", "tiny", "--epochs", "1", "--devices", "8", "--batch-size", "100", env=EIGHT,
                   check_rc=2)
    assert "--batch-size: 100: not a multiple of the 8 devices" in proc.stderr and proc.stderr.count("\n") == 1
    proc = run_cli("train", "--dataset", "tiny", "--epochs", "1", "--devices", "9", env=EIGHT, check_rc=2)
    assert "--devices: 9: this machine has 8 cpu device(s)" in proc.stderr


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _processes(args: list[str], settings=lambda i: []) -> list[subprocess.CompletedProcess]:
    """``mnistjax ARGS`` as two processes on 127.0.0.1 (gloo CPU collectives, one device each)."""
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, "-m", "mnistjax.cli", *args, *settings(i), "--coordinator",
                               f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(i)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "JAX_PLATFORMS": "cpu"}) for i in range(2)]
    return [subprocess.CompletedProcess(p.args, p.wait(timeout=300), *p.communicate()) for p in procs]


@pytest.mark.parametrize("what", [[], ["--sweep", "lr=0.1,0.2,0.3", "--seeds", "0,1"]], ids=["data parallel", "sweep"])
def test_two_processes_give_the_json_of_one(what):
    """jax.distributed: two real processes, one device each, one mesh over both, against one process
    with two devices: the same JSON but for the timings; process 0 alone prints it."""
    args = ["train", "--dataset", "tiny", "--epochs", "2", *what, "--json"]
    zero, one = _processes(args)
    assert zero.returncode == one.returncode == 0, zero.stderr[-2000:] + one.stderr[-2000:]
    assert one.stdout == "" and "[Gloo]" not in zero.stdout and "mnistjax: process 1 of 2" in one.stderr
    alone = run_cli(*args, "--devices", "all", env=forced_devices(2))
    timings = ("compile_seconds", "train_seconds")
    got, want = json.loads(zero.stdout), json.loads(alone.stdout)
    assert {k: v for k, v in got.items() if k not in timings} == {k: v for k, v in want.items() if k not in timings}


def test_processes_given_other_commands_are_refused():
    procs = _processes(["train", "--dataset", "tiny", "--epochs", "1"], lambda i: ["--lr", str(0.1 * (i + 1))])
    assert all(p.returncode == 2 for p in procs)
    assert all("--process-id: process 1 was given other settings than process 0" in p.stderr for p in procs)


def test_a_process_that_dies_stops_the_others_with_one_line(tmp_path):
    port, log = _free_port(), tmp_path / "epochs.csv"
    args = [sys.executable, "-m", "mnistjax.cli", "train", "--dataset", "tiny", "--epochs", "100000", "--log", str(log),
            "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id"]
    procs = [subprocess.Popen([*args, str(i)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "JAX_PLATFORMS": "cpu"}) for i in range(2)]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not log.exists() or log.read_text().count("\n") < 2):
        time.sleep(0.1)  # until process 0 logs an epoch: both train together
    procs[1].kill()
    killed = time.monotonic()
    out, err = procs[0].communicate(timeout=60)
    assert procs[0].returncode == 2 and time.monotonic() - killed < 30 and out == ""
    assert err.strip().splitlines()[-1].startswith("mnistjax: error: ") and "stop" in err.strip().splitlines()[-1]
    procs[1].communicate()


def test_a_coordinator_nobody_joins_is_one_line_in_bounded_time():
    port = _free_port()
    t = time.monotonic()
    proc = run_cli("train", "--dataset", "tiny", "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
                   "--process-id", "0", "--distributed-timeout", "3", check_rc=2)
    assert time.monotonic() - t < 60 and proc.stdout == ""
    assert proc.stderr.strip().splitlines()[-1] == (f"mnistjax: error: --coordinator: 127.0.0.1:{port}: not every process "
                                                    "joined within 3 s (--distributed-timeout); expected the same "
                                                    "command in each, started together")


def test_two_processes_resume_from_a_checkpoint_as_one_does(tmp_path):
    args = ["train", "--dataset", "tiny", "--sweep", "lr=0.1,0.3", "--json", "--checkpoint-dir", str(tmp_path / "ck")]
    first = _processes([*args, "--epochs", "2"])
    resumed = _processes([*args, "--epochs", "3", "--resume"])
    assert all(p.returncode == 0 for p in first + resumed), resumed[0].stderr[-2000:] + resumed[1].stderr[-2000:]
    alone = run_cli(*args[:-2], "--epochs", "3", "--devices", "all", "--json",
                    env=forced_devices(2))
    timings = ("compile_seconds", "train_seconds")
    got, want = json.loads(resumed[0].stdout), json.loads(alone.stdout)
    assert [r["history"] for r in got["runs"]] == [r["history"] for r in want["runs"]]
    assert {k: v for k, v in got.items() if k not in timings} == {k: v for k, v in want.items() if k not in timings} | {
        "config": got["config"]}


def test_distributed_auto_reads_the_job_from_slurm():
    """--distributed auto under SLURM's variables (as srun sets them, here for two tasks on 127.0.0.1)."""
    import random
    import socket

    def free(port: int) -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) != 0

    # JAX takes the coordinator's port from the job id: 61440 + id % 4096
    job_id = next(j for j in random.sample(range(4096), 50) if free(61440 + j))
    job = {"SLURM_JOB_ID": str(job_id), "SLURM_STEP_NODELIST": "127.0.0.1", "SLURM_NTASKS": "2", "JAX_PLATFORMS": "cpu"}
    args = [sys.executable, "-m", "mnistjax.cli", "train", "--dataset", "tiny", "--epochs", "2", "--json",
            "--distributed", "auto"]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, **job, "SLURM_PROCID": str(i), "SLURM_LOCALID": str(i)}) for i in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs[0][1][-2000:]
    alone = run_cli("train", "--dataset", "tiny", "--epochs", "2", "--json", "--devices", "all",
                    env=forced_devices(2))
    assert json.loads(outs[0][0])["history"] == json.loads(alone.stdout)["history"] and outs[1][0] == ""
