"""Data-parallel training over 8 CPU devices (XLA's forced host device count, in a subprocess):
the same params as on one device, and a clear error when the batch does not split evenly."""

import json
import os
import subprocess
import sys

from tests_helpers import run_cli

# JAX_PLATFORMS=cpu: on a machine with a GPU, jax.devices() would otherwise be the GPU alone
EIGHT = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"}

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


def test_two_processes_with_jax_distributed_train_like_one(tmp_path):
    """Two real processes on 127.0.0.1 (gloo CPU collectives), one device each, one mesh over both."""
    import socket
    from pathlib import Path

    import jax
    import optax

    from mnistjax import data, losses, models
    from mnistjax.data import data_from
    from mnistjax.training import Learner, fit

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = Path(__file__).resolve().parents[1] / "scripts" / "distributed.py"
    procs = [subprocess.Popen([sys.executable, str(script), "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
                               "--process-id", str(i)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "JAX_PLATFORMS": "cpu"})
             for i in range(2)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
        outs.append(json.loads(out.strip().splitlines()[-1]))
    assert [o["process"] for o in outs] == [0, 1] and all(o["devices"] == 2 and o["local_devices"] == 1 for o in outs)
    assert outs[0]["history"] == outs[1]["history"] and outs[0]["checksum"] == outs[1]["checksum"]
    d = data_from(data.mnist_sample(data.load_tiny(), (3, 7)))
    with jax.default_device(jax.devices("cpu")[0]):  # like against like where a GPU is the default
        alone = fit(Learner(models.simple_net(), losses.binary, optax.sgd(0.1)), d, 2, jax.random.key(0), progress=False)
    for got, want in zip(outs[0]["history"], alone.history):
        assert abs(got["train_loss"] - want["train_loss"]) < 1e-5
