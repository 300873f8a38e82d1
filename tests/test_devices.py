"""Data-parallel training over 8 CPU devices (XLA's forced host device count, in a subprocess):
the same params as on one device, and a clear error when the batch does not split evenly."""

import json
import os
import subprocess
import sys

from tests_helpers import run_cli

EIGHT = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}

SAME_PARAMS = """
import jax, optax, numpy as np
from mnistjax import data, models, losses
from mnistjax.training import Learner, data_from, data_parallel, fit
assert len(jax.devices()) == 8
d = data_from(data.mnist_sample(data.load_tiny(), (3, 7)))
learner = Learner(models.simple_net(), losses.binary, optax.sgd(0.1), d, batch_size=256)  # 1600 = 6 x 256 + 64
one = fit(learner, 2, jax.random.key(0), progress=False)
eight = fit(learner._replace(mesh=data_parallel(8)), 2, jax.random.key(0), progress=False)
w = eight.params["layer0"]["w"]
assert len(w.sharding.device_set) == 8, w.sharding
diff = max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
           for a, b in zip(jax.tree.leaves(one.params), jax.tree.leaves(eight.params)))
print(diff)
"""


def test_eight_devices_give_the_same_params_as_one():
    proc = subprocess.run([sys.executable, "-c", SAME_PARAMS], capture_output=True, text=True,
                          env={**os.environ, **EIGHT}, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert float(proc.stdout.split()[-1]) < 1e-5


def test_cli_devices_flag_and_uneven_batch_error():
    out = json.loads(run_cli("train", "--dataset", "tiny", "--model", "linear", "--epochs", "1", "--devices", "all",
                             "--json", env=EIGHT).stdout)
    assert out["devices"] == 8
    proc = run_cli("train", "--dataset", "tiny", "--epochs", "1", "--devices", "8", "--batch-size", "100", env=EIGHT,
                   check_rc=2)
    assert "--batch-size 100: not a multiple of the 8 devices" in proc.stderr and proc.stderr.count("\n") == 1
    proc = run_cli("train", "--dataset", "tiny", "--epochs", "1", "--devices", "9", env=EIGHT, check_rc=2)
    assert "--devices 9: this machine has 8 cpu device(s)" in proc.stderr
