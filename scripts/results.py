"""The chapter's accuracy table: every trained model, mean ± std over seeds, beside the book's.

    python scripts/results.py [--data-dir ../shared/data/mnist] [--seeds 0,1,2] [--only NAME ...] [--json OUT]
                              [--update-readme]

Runs the 3-vs-7 steps of ``mnistjax run`` (linear, simple_net, cnn) and the ten-digit mlp and
cnn on full MNIST, each with every seed, and prints validation/test accuracy against the goals.
``--update-readme`` rewrites the README's results table (between its results markers) from the rows.
"""

import argparse
import json
import os
import platform
import re
import statistics
import time
from pathlib import Path

import jax

from mnistjax import data, reports

RUNS = {
    **{f"{name} 3v7": ((3, 7), config) for name, config in reports.CHAPTER_RUNS.items()},
    "mlp 10 digits": (tuple(range(10)), {"model": "mlp", "epochs": 10, "lr": 1e-3, "opt": "adam",
                                          "schedule": "onecycle", "batch_size": 128}),
    "cnn 10 digits": (tuple(range(10)), {"model": "cnn", "epochs": 8, "lr": 3e-3, "opt": "adam",
                                          "schedule": "onecycle", "batch_size": 64, "augment": 2}),
}
GOALS = {"linear 3v7": 0.975, "simple_net 3v7": 0.982, "cnn 3v7": 0.997, "mlp 10 digits": 0.980, "cnn 10 digits": 0.992}


def config_text(c: dict) -> str:
    opt = {"sgd": "SGD", "momentum": "SGD+momentum", "adam": "Adam"}[c["opt"]]
    sched = " one-cycle" if c.get("schedule") == "onecycle" else ""
    aug = f", shifts ±{c['augment']}px" if c.get("augment") else ""
    order = ", book order (no shuffle)" if c.get("shuffle") is False else ""
    width = f"{c['channels'][0]}/{c['channels'][1]} channels, " if c.get("channels") else ""
    return f"{width}{opt}{sched} lr {c['lr']:g}, batch {c.get('batch_size', 256)}, {c['epochs']} epochs{aug}{order}"


def markdown(meta: dict) -> str:
    """The README's results table."""
    base = meta["baseline"]
    lines = [f"Made by `python scripts/results.py --update-readme` on {meta['dataset']} (verified: {meta['verified']}), "
             f"seeds {', '.join(map(str, meta['rows'][0]['seeds']))}, {meta['machine']}, {meta['device']}.", "",
             "| run | configuration | ours (mean ± std) | book | goal |", "|---|---|---|---|---|",
             f"| pixel similarity, 3 vs 7 | nearest mean image, L1 | {base['balanced_accuracy']:.4f} "
             f"(3s {base['per_class_accuracy']['3']:.4f}, 7s {base['per_class_accuracy']['7']:.4f}) | 0.9511 (0.9168, 0.9854) | = book |"]
    for r in meta["rows"]:
        ok = "✓" if r["mean"] >= r["goal"] else "✗"
        book = f"{r['book']:.4f}" if r["book"] else "—"
        lines.append(f"| {r['run']} | {config_text(r['config'])} | {r['mean']:.4f} ± {r['std']:.4f} | {book} | ≥ {r['goal']} {ok} |")
    return "\n".join(lines)


def update_readme(table: str, readme: Path = Path(__file__).resolve().parents[1] / "README.md") -> None:
    text = readme.read_text()
    new, n = re.subn(r"(<!-- results -->\n).*?(\n<!-- /results -->)", lambda m: m[1] + table + m[2], text, flags=re.S)
    if n != 1:
        raise SystemExit(f"{readme}: expected one <!-- results --> ... <!-- /results --> block")
    readme.write_text(new)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="../shared/data/mnist")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--only", nargs="*", choices=list(RUNS), help="run only these rows")
    p.add_argument("--json", metavar="OUT", help="also write the rows as JSON here")
    p.add_argument("--update-readme", action="store_true", help="rewrite the README's results table from these rows")
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
    meta = {"dataset": ds.name, "verified": ds.verified, "device": f"JAX {jax.__version__} on {jax.devices()[0]}",
            "machine": f"{platform.machine()} with {os.cpu_count()} cores", "rows": rows,
            "baseline": reports.baseline(ds, (3, 7), "l1")}
    if args.update_readme:
        update_readme(markdown(meta))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(meta, f, indent=1)


if __name__ == "__main__":
    main()
