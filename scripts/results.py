"""The chapter's accuracy table: each results recipe, mean ± std over seeds, beside the book's.

    python scripts/results.py [--data-dir ../shared/data/mnist] [--seeds 0,1,2] [--only RECIPE ...] [--json OUT]
                              [--update-readme] [--from-json OUT]

Runs the recipes below (``mnistjax recipes`` describes them), each with every seed in one vmapped
call, on full MNIST, and prints validation/test accuracy against the goals. ``--update-readme``
rewrites the README's results table (between its results markers) from the rows.
"""

import argparse
import dataclasses
import json
import os
import platform
import re
import time
from pathlib import Path

import jax

from mnistjax import config, data, experiment, reports

# recipe -> the accuracy it should reach (mean over the seeds)
GOALS = {"linear": 0.975, "simple_net": 0.982, "cnn": 0.997, "resnet": 0.997, "mlp10": 0.980, "cnn10": 0.992,
         "cnn_bn10": 0.992, "resnet10": 0.993}


def config_text(c: dict) -> str:
    """A recipe in a few words, for the table."""
    opt = {"sgd": "SGD", "momentum": "SGD+momentum", "adam": "Adam", "adamw": "AdamW"}.get(c["opt"], c["opt"])
    sched = "" if c["schedule"] == "constant" else f" {c['schedule'].replace('onecycle', 'one-cycle')}"
    args = ", ".join(f"{k} {'/'.join(map(str, v)) if isinstance(v, list) else v}" for k, v in c["model_args"].items())
    aug = f", shifts ±{c['augment']}px" if c["augment"] else ""
    order = ", book order (no shuffle)" if not c["shuffle"] else ""
    return (f"{c['model']}{f' ({args})' if args else ''}, {opt}{sched} lr {c['lr']:g}, batch {c['batch_size']}, "
            f"{c['epochs']} epochs{aug}{order}")


def markdown(meta: dict) -> str:
    """The README's results table."""
    base = meta["baseline"]
    lines = [f"Made by `python scripts/results.py --update-readme` on {meta['dataset']} (verified: {meta['verified']}), "
             f"seeds {', '.join(map(str, meta['seeds']))}, {meta['machine']}, {meta['device']}.", "",
             "| recipe | classes | configuration | ours (mean ± std) | book | goal |", "|---|---|---|---|---|---|",
             f"| pixel similarity | 3, 7 | nearest mean image, L1 | {base['balanced_accuracy']:.4f} "
             f"(3s {base['per_class_accuracy']['3']:.4f}, 7s {base['per_class_accuracy']['7']:.4f}) | 0.9511 (0.9168, 0.9854) | = book |"]
    for r in meta["rows"]:
        ok = "✓" if r["mean"] >= r["goal"] else "✗"
        book = f"{r['book']:.4f}" if r["book"] else "—"
        classes = "all" if r["config"]["classes"] == "all" else r["config"]["classes"].replace(",", ", ")
        lines.append(f"| `{r['recipe']}` | {classes} | {config_text(r['config'])} | {r['mean']:.4f} ± {r['std']:.4f} | "
                     f"{book} | ≥ {r['goal']} {ok} |")
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
    p.add_argument("--only", nargs="*", choices=list(GOALS), help="run only these recipes")
    p.add_argument("--json", metavar="OUT", help="also write the rows as JSON here")
    p.add_argument("--update-readme", action="store_true", help="rewrite the README's results table from these rows")
    p.add_argument("--from-json", metavar="FILE", help="take the rows from an earlier --json OUT instead of training")
    args = p.parse_args()
    if args.from_json:
        with open(args.from_json) as f:
            update_readme(markdown(json.load(f)))
        return
    ds = data.load_dir(args.data_dir)
    seeds = tuple(int(s) for s in args.seeds.split(","))
    rows = []
    for name in args.only or GOALS:
        cfg = dataclasses.replace(config.recipe(name), seeds=seeds, data_dir=args.data_dir)
        t = time.perf_counter()
        s = experiment.train(cfg, experiment.prepare(ds, cfg.classes), progress=False).summary
        accs = [run["valid_accuracy"] for run in s["runs"]] if "runs" in s else [s["valid_accuracy"]]
        rows.append({"recipe": name, "config": config.recipe(name).to_dict(), "seeds": seeds, "accuracies": accs,
                     "mean": s.get("valid_accuracy_mean", s.get("valid_accuracy")), "std": s.get("valid_accuracy_std", 0.0),
                     "goal": GOALS[name], "book": s["book"], "seconds": time.perf_counter() - t})
        r = rows[-1]
        print(f"{name:12} {r['mean']:.4f} ± {r['std']:.4f}  goal ≥ {r['goal']}  "
              f"{'ok' if r['mean'] >= r['goal'] else 'MISSED'}  ({r['seconds']:.1f} s for {len(seeds)} seeds)", flush=True)
    meta = {"dataset": ds.name, "verified": ds.verified, "device": f"JAX {jax.__version__} on {jax.devices()[0]}",
            "machine": f"{platform.machine()} with {os.cpu_count()} cores", "seeds": seeds, "rows": rows,
            "baseline": reports.baseline(ds, (3, 7), "l1").summary}
    if args.update_readme:
        update_readme(markdown(meta))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(meta, f, indent=1)


if __name__ == "__main__":
    main()
