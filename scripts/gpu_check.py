"""The checks to run on an accelerator: its targets first, then the speed benchmark.

    pip install -e . "jax[cuda12]"        # on a machine with an NVIDIA GPU (or jax[cuda13], or jax[tpu] on a TPU VM)
    python scripts/gpu_check.py [--data-dir ../shared/data/mnist] [--json OUT] [--targets-only]

1. ``fast99`` from a cold process (no compilation cache), seeds 0-2: median wall <= 4 s and
   training <= 0.1 s a seed, each >= 99 %.
2. ``best_gpu`` (deep_cnn, 30 epochs), seeds 0-2: mean test accuracy >= 99.6 %, <= 5 minutes a seed.
3. scripts/bench.py's table (compile and train seconds, examples/s, GFLOP/s against the measured
   matmul peak), to compare row by row with the CPU's in docs/speed.md.

Each target prints ✓ or ✗ with its figures; the exit status is 1 when one is missed. Exits 2 with
one line when no accelerator is visible.
"""

import argparse
import os
import runpy
import statistics
import sys
from pathlib import Path

# The runs start processes of their own: this one must not hold 75 % of the accelerator's memory.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax  # noqa: E402  (after the allocator setting, which is read when jax starts its backend)

BENCH = Path(__file__).with_name("bench.py")


def targets(data_dir: str) -> bool:
    """Run the two targets' commands, print each run and a verdict; True when both are met."""
    time_to_accuracy = runpy.run_path(str(BENCH))["time_to_accuracy"]
    met = True
    for recipe, check in (("fast99", lambda r: (statistics.median(x["wall_seconds"] for x in r) <= 4
                                                and max(x["train_seconds"] for x in r) <= 0.1
                                                and min(x["test_accuracy"] for x in r) >= 0.99)),
                          ("best_gpu", lambda r: (statistics.mean(x["test_accuracy"] for x in r) >= 0.996
                                                  and max(x["wall_seconds"] for x in r) <= 300))):
        runs = time_to_accuracy(data_dir, [0, 1, 2], recipe)["runs"]
        for r in runs:
            print(f"  {recipe} seed {r['seed']}: {r['wall_seconds']:.1f} s wall (compile {r['compile_seconds']:.1f}, "
                  f"train {r['train_seconds']:.2f}); test accuracy {r['test_accuracy']:.4f}", flush=True)
        ok = check(runs)
        met &= ok
        print(f"{'✓' if ok else '✗'} {recipe}: median wall {statistics.median(r['wall_seconds'] for r in runs):.1f} s, "
              f"mean accuracy {statistics.mean(r['test_accuracy'] for r in runs):.4f}", flush=True)
    return met


def main() -> int:
    devices = jax.devices()
    if devices[0].platform == "cpu":
        print(f"gpu_check: error: JAX sees only CPU devices ({len(devices)}); install jax[cuda12] or jax[tpu] "
              "on a machine with an accelerator", file=sys.stderr)
        return 2
    print(f"jax {jax.__version__}: {len(devices)} x {devices[0].device_kind} ({devices[0].platform})", flush=True)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="../shared/data/mnist")
    p.add_argument("--targets-only", action="store_true", help="skip bench.py's table")
    args, rest = p.parse_known_args()  # the rest (--json OUT, ...) is bench.py's
    met = targets(args.data_dir)
    if not args.targets_only:
        sys.argv = [str(BENCH), "--data-dir", args.data_dir, *rest]
        runpy.run_path(str(BENCH), run_name="__main__")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
