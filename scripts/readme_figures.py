"""Make the README's pictures from real runs into docs/figures/ (small PNGs, committed).

    python scripts/readme_figures.py [--data-dir ../shared/data/mnist] [--out docs/figures]

The mean 3 and 7 and the pixel view (pixel similarity), the learning-rate descents and the roller
coaster (gradient descent), simple_net's curves, confusion matrix and most confident mistakes, the
learning-rate finder for simple_net (three seeds), and the top losses of the fast99 recipe's model.
"""

import argparse
import dataclasses
from pathlib import Path

from mnistjax import config, data, experiment, interpret, plots, reports

KEEP = {
    "baseline": ["prototypes", "pixels"],
    "sgd": ["loss3", "low_learning_rate_descent", "high_learning_rate_descent2", "high_learning_rate_descent",
            "show_preds", "roller_coaster_loss", "lr_sweep"],
    "simple_net": ["loss", "accuracy", "confusion", "top_wrong"],
    "use": ["lr_find", "top_losses"],
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="../shared/data/mnist")
    p.add_argument("--out", default="docs/figures")
    args = p.parse_args()
    ds = data.load_dir(args.data_dir)
    p37 = experiment.prepare(ds, "3,7")
    simple_net = experiment.train(config.recipe("simple_net"), p37, progress=False)
    lr_find = experiment.lr_find(dataclasses.replace(config.recipe("simple_net"), seeds=(0, 1, 2)), p37, 1e-4, 100.0)
    fast = experiment.train(config.recipe("fast99"), experiment.prepare(ds, "all"), progress=False)
    mistakes = interpret.summary(interpret.from_training(fast), k=16)
    figures = {"use": {"lr_find": plots.lr_find_figure(lr_find.summary),
                       "top_losses": plots.top_losses_figure(fast.prepared.data.x_valid, mistakes["top_losses"])},
               "baseline": plots.baseline_figures(reports.baseline(ds, (3, 7), "l1")),
               "sgd": {**plots.learning_rate_figures(reports.learning_rates()), **plots.sgd_figures(reports.sgd_example(42))},
               "simple_net": plots.training_figures(simple_net)}
    for step, names in KEEP.items():
        plots.save_all(Path(args.out) / step, {name: figures[step][name] for name in names})
    print(f"wrote {sum(len(v) for v in KEEP.values())} figures under {args.out}")


if __name__ == "__main__":
    main()
