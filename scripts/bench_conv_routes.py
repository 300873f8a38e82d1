"""The routes for fast99's training epoch on this machine: how the steps are dispatched (one scan over
the epoch, a jitted step in a Python loop, blocks of K steps unrolled in one jitted call) times how a
convolution is computed (patches + matmul, as ``layers.conv``; ``lax.conv_general_dilated``, as
``layers.xla_convolutions``; or that with a custom gradient by patches + matmul).

    python scripts/bench_conv_routes.py [--data-dir ../shared/data/mnist] [--only scan loop block4 ...]

Training seconds (median of 2, after a warm-up run that compiles) and the test accuracy, in one process.
"""

import argparse
import functools
import statistics
import time

import jax
import jax.numpy as jnp

from mnistjax import batches, config, data, experiment, layers, training
from mnistjax.layers import Param, stateless


def hybrid_conv(c_in: int, c_out: int, kernel: int, stride: int = 1, dx_by_xla: bool = True) -> layers.Module:
    """``layers.conv`` (no bias, no padding) computed by ``lax.conv_general_dilated``, with a custom
    gradient: the weight's by patches + matmul, the input's by XLA (``dx_by_xla``) or by patches too."""
    fan_in = c_in * kernel * kernel

    def xla(x, w):
        w = w.reshape(kernel, kernel, c_in, c_out)  # patches are tap-major: the same layout
        return jax.lax.conv_general_dilated(x, w, (stride, stride), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))

    @jax.custom_vjp
    def conv(x, w):
        return xla(x, w)

    def bwd(res, g):
        x, w = res
        dx = jax.vjp(lambda x: xla(x, w) if dx_by_xla else layers.patches(x, kernel, stride) @ w, x)[1](g)[0]
        return dx, jnp.einsum("bhwp,bhwo->po", layers.patches(x, kernel, stride), g)

    conv.defvjp(lambda x, w: (xla(x, w), (x, w)), bwd)
    return stateless(lambda p, x: conv(x, p["w"]), {"w": Param((fan_in, c_out), fan_in)})


def fast_cnn_bn_hybrid(dx_by_xla: bool, n_out: int = 10, c1: int = 24, c2: int = 32, hidden: int = 256) -> layers.Module:
    """``models.fast_cnn_bn`` with ``hybrid_conv``."""
    L = layers
    return L.sequential(L.reshape(28, 28, 1), hybrid_conv(1, c1, 5, 2, dx_by_xla), L.batch_norm(c1), L.relu(),
                        hybrid_conv(c1, c2, 3, 1, dx_by_xla), L.max_pool(2), L.batch_norm(c2), L.relu(), L.flatten(),
                        L.dense(5 * 5 * c2, hidden), L.relu(), L.dense(hidden, n_out))


@functools.cache
def _scanned_epoch(learner):
    return jax.jit(lambda ts, data_key, model_key, d: training.train_epoch(ts, data_key, model_key, learner, d)[0])


def scanned(learner, d) -> tuple[float, float]:
    """One ``lax.scan`` over the epoch (``training.train_epoch``)."""
    ts = training.init(learner, jax.random.key(0))
    keys = training.stream_keys(jax.random.key(0))
    jax.block_until_ready(ts)
    t = time.perf_counter()
    ts = jax.block_until_ready(_scanned_epoch(learner)(ts, *keys, d))
    seconds = time.perf_counter() - t
    return seconds, float(training.validate_epoch(ts, learner, d)["valid_accuracy"])


def blocks(learner, d, k: int) -> tuple[float, float]:
    """Blocks of ``k`` steps unrolled in one jitted call, a Python loop over them (k = 1: a step a call)."""
    ts = training.init(learner, jax.random.key(0))
    data_key, model_key = training.stream_keys(jax.random.key(0))
    idx, w = batches.batch_indices(data_key, d.x_train.shape[0], learner.batch_size)

    @jax.jit
    def block(ts, i, wi, first):
        for j in range(i.shape[0]):
            xb, yb = d.x_train[i[j]], d.y_train[i[j]]
            ts, _ = training.train_step(ts, xb, yb, learner, jax.random.fold_in(model_key, first + j), wi[j])
        return ts

    starts = list(range(0, idx.shape[0] - k + 1, k))
    tail = idx.shape[0] - len(starts) * k
    jax.block_until_ready(block(ts, idx[:k], w[:k], 0))  # compile both shapes first
    if tail:
        jax.block_until_ready(block(ts, idx[-tail:], w[-tail:], 0))
    t = time.perf_counter()
    for s in starts:
        ts = block(ts, idx[s:s + k], w[s:s + k], s)
    if tail:
        ts = block(ts, idx[-tail:], w[-tail:], idx.shape[0] - tail)
    jax.block_until_ready(ts)
    seconds = time.perf_counter() - t
    return seconds, float(training.validate_epoch(ts, learner, d)["valid_accuracy"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="../shared/data/mnist")
    p.add_argument("--only", nargs="*", help="routes to run: scan, loop, block4, block16 (default: all)")
    p.add_argument("--convs", nargs="*", help="convolutions to run (default: all)")
    args = p.parse_args()
    prepared = experiment.prepare(data.load_dir(args.data_dir), "all")
    patches = experiment.learner(config.recipe("fast99"), prepared)
    convs = {"patches + matmul": patches, "lax.conv": patches._replace(model=layers.xla_convolutions(patches.model)),
             "lax.conv, dW matmul": patches._replace(model=fast_cnn_bn_hybrid(True)),
             "lax.conv, grads mm": patches._replace(model=fast_cnn_bn_hybrid(False))}
    routes = {"scan": scanned, "loop": lambda lrn, d: blocks(lrn, d, 1),
              **{f"block{k}": (lambda k: lambda lrn, d: blocks(lrn, d, k))(k) for k in (4, 16)}}
    print(f"JAX {jax.__version__} on {jax.devices()[0]}: fast99's one epoch, training seconds (median of 2)")
    for route, run in routes.items():
        if args.only and route not in args.only:
            continue
        for conv, learner in convs.items():
            if args.convs and conv not in args.convs:
                continue
            run(learner, prepared.data)  # compiles
            results = [run(learner, prepared.data) for _ in range(2)]
            print(f"  {route:<8} {conv:<20} {statistics.median(r[0] for r in results):6.2f} s  "
                  f"test accuracy {results[-1][1]:.4f}", flush=True)


if __name__ == "__main__":
    main()
