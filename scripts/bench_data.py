"""How fast the data loads: full MNIST from .gz, and the 14,434-file PNG sample first and cached.

    python scripts/bench_data.py [--mnist ../shared/data/mnist] [--sample ../shared/data/mnist_sample.tgz] [--json]

Goals on a 2-core machine: IDX ≤ 0.5 s; PNG first load ≤ 3 s, cached ≤ 0.2 s. Medians of --repeats runs.
"""

import argparse
import json
import statistics
import tarfile
import tempfile
import time
from pathlib import Path

from mnistjax import data
from mnistjax.timing import median_seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mnist", default="../shared/data/mnist")
    p.add_argument("--sample", default="../shared/data/mnist_sample.tgz")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    r = {"idx_gz_seconds": median_seconds(lambda: data.load_idx_dir(args.mnist), args.repeats)}
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(args.sample) as tar:
            tar.extractall(tmp, filter="data")
        root = Path(tmp) / "mnist_sample"
        first = []
        for i in range(args.repeats):  # a fresh cache folder each time: a true first load
            cache = Path(tmp) / f"cache{i}"
            t = time.perf_counter()
            ds = data.load_folders(root, cache)
            first.append(time.perf_counter() - t)
        r["png_first_seconds"] = statistics.median(first)
        r["png_cached_seconds"] = median_seconds(lambda: data.load_folders(root, cache), args.repeats)
        r["png_files"] = len(ds.train) + len(ds.test)
    goals = {"idx_gz_seconds": 0.5, "png_first_seconds": 3.0, "png_cached_seconds": 0.2}
    if args.json:
        print(json.dumps(r))
        return
    for k, goal in goals.items():
        print(f"{k:20} {r[k]:7.3f} s   goal ≤ {goal} s   {'ok' if r[k] <= goal else 'MISSED'}")
    print(f"{'png_files':20} {r['png_files']}")


if __name__ == "__main__":
    main()
