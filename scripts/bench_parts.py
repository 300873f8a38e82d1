"""fast99's step part by part, forward and gradient, JAX beside PyTorch eager on this machine's CPU:
which of XLA's kernels set the step's pace against PyTorch's (oneDNN's).

    python scripts/bench_parts.py [--batch 192] [--repeats 5]

Each part is its layer on a batch of fast99's shapes, the gradient of a sum of its output with
respect to its input and weights; milliseconds a call, the median of REPEATS rounds of 50 calls,
the two libraries alternating. torch comes with the bench extra (``pip install -e '.[bench]'``).
"""

import argparse
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch

from mnistjax import layers, xla_conv


def per_call_ms(call, n: int = 50) -> float:
    jax.block_until_ready(call())
    t = time.perf_counter()
    for _ in range(n):
        out = call()
    jax.block_until_ready(out)
    return (time.perf_counter() - t) / n * 1e3


def jax_parts(b: int, rng) -> dict:
    """(name -> a call) for JAX: each convolution by XLA (``lax.conv_general_dilated``), by XLA with the
    weight gradient in chunks (``xla_conv.conv``: fit's route on JAX 0.12) and by patches + one matmul
    (``layers.conv``, the scan's), and batch norm + ReLU as ``layers.batch_norm`` computes it."""
    x1, w1 = rng.standard_normal((b, 28, 28, 1), np.float32), rng.standard_normal((5, 5, 1, 24), np.float32)
    x2, w2 = rng.standard_normal((b, 12, 12, 24), np.float32), rng.standard_normal((3, 3, 24, 32), np.float32)

    def grads(f, x, w):
        g = jax.jit(jax.grad(lambda x, w: f(x, w).sum(), (0, 1)))
        return lambda: g(x, w)

    def xla(stride, conv=xla_conv.lax_conv):
        return lambda x, w: conv(x, w, stride, 0)

    def im2col(stride):
        return lambda x, w: layers.patches(x, w.shape[0], stride) @ w.reshape(-1, w.shape[-1])

    bn = layers.batch_norm(24)
    state = {k: jnp.asarray(v) for k, v in bn.state.items()}

    def bn_relu(x, scale):
        return jax.nn.relu(bn.apply({"scale": scale, "bias": jnp.zeros(24)}, state, x, None, True)[0])

    return {"conv 5x5/2, 1 -> 24, XLA": grads(xla(2), x1, w1), "conv 5x5/2, XLA, dW in chunks": grads(xla(2, xla_conv.conv), x1, w1),
            "conv 5x5/2, patches + matmul": grads(im2col(2), x1, w1),
            "conv 3x3, 24 -> 32, XLA": grads(xla(1), x2, w2), "conv 3x3, XLA, dW in chunks": grads(xla(1, xla_conv.conv), x2, w2),
            "conv 3x3, patches + matmul": grads(im2col(1), x2, w2),
            "batch norm + ReLU (12x12x24)": grads(bn_relu, x2, jnp.ones(24))}


def torch_parts(b: int, rng) -> dict:
    x1 = torch.tensor(rng.standard_normal((b, 1, 28, 28), np.float32), requires_grad=True)
    x2 = torch.tensor(rng.standard_normal((b, 24, 12, 12), np.float32), requires_grad=True)
    conv1, conv2 = torch.nn.Conv2d(1, 24, 5, 2, bias=False), torch.nn.Conv2d(24, 32, 3, bias=False)
    bn = torch.nn.BatchNorm2d(24)
    return {"conv 5x5/2, 1 -> 24": lambda: conv1(x1).sum().backward(), "conv 3x3, 24 -> 32": lambda: conv2(x2).sum().backward(),
            "batch norm + ReLU (12x12x24)": lambda: torch.relu(bn(x2)).sum().backward()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=192)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(os.cpu_count())
    rng = np.random.default_rng(0)
    parts = {**{f"JAX {k}": v for k, v in jax_parts(args.batch, rng).items()},
             **{f"PyTorch {k}": v for k, v in torch_parts(args.batch, rng).items()}}
    times = {k: [] for k in parts}
    for _ in range(args.repeats):
        for name, call in parts.items():
            times[name].append(per_call_ms(call))
    print(f"JAX {jax.__version__}, PyTorch {torch.__version__}, {os.cpu_count()} threads; batch {args.batch}, "
          f"forward and gradient, ms a call (median of {args.repeats})")
    for name, t in times.items():
        print(f"  {name:<40} {statistics.median(t):6.2f}")


if __name__ == "__main__":
    main()
