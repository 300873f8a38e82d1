"""The chapter's accuracy table: every trained model, mean ± std over seeds, beside the book's.

    python scripts/results.py [--data-dir ../shared/data/mnist] [--seeds 0,1,2] [--only NAME ...] [--json OUT]

Runs the 3-vs-7 steps of ``mnistjax run`` (linear, simple_net, cnn) and the ten-digit mlp and
cnn on full MNIST, each with every seed, and prints validation/test accuracy against the goals.
"""

import argparse
import json
import platform
import statistics
import time

import jax

from mnistjax import data, reports

RUNS = {
    **{f"{name} 3v7": ((3, 7), config) for name, config in reports.CHAPTER_RUNS.items()},
    "mlp 10 digits": (tuple(range(10)), {"model": "mlp", "epochs": 10, "lr": 1e-3, "opt": "adam",
                                          "schedule": "onecycle", "batch_size": 128}),
    "cnn 10 digits": (tuple(range(10)), {"model": "cnn", "epochs": 6, "lr": 3e-3, "opt": "adam",
                                          "schedule": "onecycle", "batch_size": 64}),
}
GOALS = {"linear 3v7": 0.975, "simple_net 3v7": 0.982, "cnn 3v7": 0.997, "mlp 10 digits": 0.980, "cnn 10 digits": 0.992}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="../shared/data/mnist")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--only", nargs="*", choices=list(RUNS), help="run only these rows")
    p.add_argument("--json", metavar="OUT", help="also write the rows as JSON here")
    args = p.parse_args()
    ds = data.load_dir(args.data_dir)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    for name in args.only or RUNS:
        classes, config = RUNS[name]
        t = time.perf_counter()
        accs = [reports.train(ds, classes=classes, seed=s, progress=False, **config)["valid_accuracy"] for s in seeds]
        rows.append({"run": name, "config": config, "seeds": seeds, "accuracies": accs,
                     "mean": statistics.mean(accs), "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                     "goal": GOALS[name], "book": reports.BOOK_TRAINING.get(name.split()[0]) if "3v7" in name else None,
                     "seconds_per_seed": (time.perf_counter() - t) / len(seeds)})
        r = rows[-1]
        print(f"{name:16} {r['mean']:.4f} ± {r['std']:.4f}  goal ≥ {r['goal']}  "
              f"{'ok' if r['mean'] >= r['goal'] else 'MISSED'}  ({r['seconds_per_seed']:.1f} s/seed)", flush=True)
    meta = {"dataset": ds.name, "verified": ds.verified, "device": str(jax.devices()[0]),
            "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}", "rows": rows}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(meta, f, indent=1)


if __name__ == "__main__":
    main()
