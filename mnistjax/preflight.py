"""The mistakes to catch before training, each a one-line error naming the argument: data that are
not float images with class indices, a batch larger than the data, a model too big for the device's
memory, a model whose output or loss does not fit the task. Shapes come from ``jax.eval_shape``:
nothing is trained.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np

from mnistjax import layers
from mnistjax.data.dataset import Data
from mnistjax.errors import MnistjaxError, expect_floats

if TYPE_CHECKING:
    from mnistjax.training import Learner


def check(learner: Learner, data: Data, epochs: int, done: int = 0) -> None:
    """The mistakes to catch before training, each a one-line error: the model's output width against
    the task, a loss that is not per example, a batch larger than the data, fewer epochs than done.
    Shapes come from ``jax.eval_shape``: nothing is computed."""
    _check_data(data, max(learner.task.n_out, 2))
    n = int(data.x_train.shape[0])
    if not 1 <= learner.batch_size <= n:
        raise MnistjaxError(f"{learner.batch_size}: expected 1 to {n}, the number of training images", param="batch_size")
    if epochs < max(done, 1):
        raise MnistjaxError(f"{epochs}: expected at least {max(done, 1)} (the epochs already done)", param="epochs")
    # float32 params, gradients, two moments, and init's fan-ins and draws (one random call per init function)
    need, have = 4 * 6 * layers.size(learner.model), _available_memory()
    if jax.local_devices()[0].platform == "cpu" and need > _address_space_left():
        raise MemoryError(f"{need:,} bytes")  # past `ulimit -v`, XLA's allocations would crash the process
    if need > have:
        raise MnistjaxError(f"{layers.size(learner.model):,} parameters need {need / 2**30:,.1f} GiB for training, "
                            f"more than the {have / 2**30:,.1f} GiB available on this device; expected a smaller model",
                            param="model")
    two = jax.ShapeDtypeStruct((2, *data.x_train.shape[1:]), data.x_train.dtype)
    try:  # the model's own code, traced: whatever it raises is its error, named as such
        params, state = jax.eval_shape(lambda k: layers.init(learner.model, k), jax.random.key(0))
        out = jax.eval_shape(lambda p, s, x: learner.model.apply(p, s, x, None, False)[0], params, state, two)
    except MemoryError:
        raise
    except (Exception, SystemExit) as e:
        raise MnistjaxError(f"the model fails on a batch of 2 images ({type(e).__name__}: "
                            f"{' '.join(str(e).split())[:200]}); expected (params, state) of arrays and "
                            "apply(params, state, x, key, train) -> (logits, state)", param="model") from None
    if not jnp.issubdtype(out.dtype, jnp.floating):
        raise MnistjaxError(f"the model gives {out.dtype} outputs; expected float logits", param="model")
    if out.shape != (2, learner.task.n_out):
        raise MnistjaxError(f"the model gives outputs of shape {out.shape[1:]} per image; the task expects "
                            f"({learner.task.n_out},) ({'one logit for mnist_loss' if learner.task.n_out == 1 else 'one logit per class'})",
                            param="model")
    each = jax.eval_shape(learner.task.loss, out, jax.ShapeDtypeStruct((2,), data.y_train.dtype))
    if each.shape != (2,):
        raise MnistjaxError(f"gives shape {each.shape} for a batch of 2; expected one loss per example, (2,)", param="loss")


def _check_data(data: Data, n_classes: int) -> None:
    """Float images, one integer label per image, each a class index below ``n_classes``: what the
    trainer would otherwise read out of bounds or train on in silence."""
    for split in ("train", "valid"):
        x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
        expect_floats(x, f"data.x_{split}")
        if not jnp.issubdtype(y.dtype, jnp.integer) or y.shape != x.shape[:1]:
            raise MnistjaxError(f"{y.dtype} of shape {y.shape}; expected integer class indices, one per image "
                                f"({x.shape[0]},)", param=f"data.y_{split}")
        labels = np.asarray(jax.device_get(y))  # on the host: two eager reductions would compile, at every start
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= n_classes:
            raise MnistjaxError(f"labels from {lo} to {hi}; expected class indices 0 to {n_classes - 1} for this "
                                "task (positions in its classes: for 3 vs 7, 3 -> 0 and 7 -> 1)", param=f"data.y_{split}")


def _address_space_left() -> float:
    """Bytes this process may still map under its address-space limit (``ulimit -v``); inf if none."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        with open("/proc/self/statm") as f:
            mapped = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (ImportError, OSError):  # not a POSIX system with /proc: no such limit to read
        return math.inf
    return math.inf if soft == resource.RLIM_INFINITY else soft - mapped


def _available_memory() -> int:
    """Bytes of memory free for training on the default device: an accelerator's limit less what is in
    use, or the machine's available memory (MemAvailable: free and reclaimable, not the total)."""
    stats = jax.local_devices()[0].memory_stats() or {}
    if stats.get("bytes_limit"):
        return stats["bytes_limit"] - stats.get("bytes_in_use", 0)
    try:
        with open("/proc/meminfo") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration):
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
