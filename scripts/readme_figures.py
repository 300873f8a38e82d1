"""Make the README's pictures from real runs into docs/figures/ (small PNGs, committed).

    python scripts/readme_figures.py [--data-dir ../shared/data/mnist] [--out docs/figures]

The mean 3 and 7 and the pixel view (pixel similarity), the learning-rate descents and the roller
coaster (gradient descent), and simple_net's curves, confusion matrix and most confident mistakes.
"""

import argparse
import shutil
import tempfile
from pathlib import Path

from mnistjax import data, reports

KEEP = {
    "baseline": ["prototypes.png", "pixels.png"],
    "sgd": ["loss3.png", "low_learning_rate_descent.png", "high_learning_rate_descent2.png",
            "high_learning_rate_descent.png", "show_preds.png", "roller_coaster_loss.png", "lr_sweep.png"],
    "simple_net": ["loss.png", "accuracy.png", "confusion.png", "top_wrong.png"],
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="../shared/data/mnist")
    p.add_argument("--out", default="docs/figures")
    args = p.parse_args()
    ds = data.load_dir(args.data_dir)
    out = Path(args.out)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        reports.baseline(ds, (3, 7), "l1", tmp / "baseline")
        reports.learning_rates(figures=tmp / "sgd")
        reports.sgd_example(42, figures=tmp / "sgd")
        reports.train(ds, classes=(3, 7), figures=tmp / "simple_net", progress=False, **reports.CHAPTER_RUNS["simple_net"])
        for step, names in KEEP.items():
            (out / step).mkdir(parents=True, exist_ok=True)
            for name in names:
                shutil.copy(tmp / step / name, out / step / name)
    print(f"wrote {sum(len(v) for v in KEEP.values())} figures under {out}")


if __name__ == "__main__":
    main()
