"""Write every figure of the gradient-descent section into a folder (compiled, a few seconds).

    python scripts/sgd_figures.py [OUT_DIR] [--seed 42]

quadratic.png, loss1-3.png, the low/high learning-rate descents, sgd_scatter.png, show_preds.png,
roller_coaster_loss.png and lr_sweep.png: the book's pictures, made with mnistjax.
"""

import argparse
import json
from pathlib import Path

from mnistjax import plots, reports


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", nargs="?", default="figures/sgd")
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args()
    out = Path(args.out)
    r = reports.sgd_example(args.seed)
    plots.save_all(out, {**plots.learning_rate_figures(reports.learning_rates()), **plots.sgd_figures(r)})
    print(json.dumps({"figures": sorted(p.name for p in out.glob("*.png")), "folder": str(out),
                      "steps_to_within_1pct_of_lstsq": r.summary["steps_to_within_1pct_of_lstsq"]}, indent=1))


if __name__ == "__main__":
    main()
