"""The speed benchmark on an accelerator: check that JAX sees a GPU or TPU, then run scripts/bench.py.

    pip install -e . "jax[cuda12]"        # on a machine with an NVIDIA GPU (or jax[cuda13], or jax[tpu] on a TPU VM)
    python scripts/gpu_check.py [--data-dir ../shared/data/mnist] [--json OUT]

Prints the devices, then the same table as bench.py (compile and train seconds, examples/s,
GFLOP/s against the measured matmul peak, speedup over a Python loop), so GPU figures can be
compared row by row with the CPU ones. Exits 2 with one line when no accelerator is visible.
"""

import os
import runpy
import sys
from pathlib import Path

# bench.py's time-to-99 % runs start processes of their own: this one must not hold 75 % of the GPU's memory.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax  # noqa: E402  (after the allocator setting, which is read when jax starts its backend)


def main() -> int:
    devices = jax.devices()
    if devices[0].platform == "cpu":
        print(f"gpu_check: error: JAX sees only CPU devices ({len(devices)}); install jax[cuda12] or jax[tpu] "
              "on a machine with an accelerator", file=sys.stderr)
        return 2
    print(f"jax {jax.__version__}: {len(devices)} x {devices[0].device_kind} ({devices[0].platform})")
    sys.argv = [str(Path(__file__).with_name("bench.py")), *sys.argv[1:]]
    runpy.run_path(sys.argv[0], run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
