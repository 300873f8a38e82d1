"""Pictures: digits, the book's pixel view, confusion matrices, curves, and each report's set of them.

Every function returns a matplotlib ``Figure`` (the object API: no pyplot state, so plotting is as
pure as the rest); a notebook shows it as it is, ``save``/``save_all`` write PNGs atomically.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

from mnistjax.files import atomic_write


def save(fig: Figure, path: str | os.PathLike, dpi: int = 100) -> None:
    """Write ``fig`` as PNG to ``path`` (temp file + rename)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    atomic_write(path, buf.getvalue())


def save_all(folder: str | os.PathLike, figures: dict[str, Figure]) -> None:
    """Each figure of {name: Figure} as ``folder/name.png``."""
    for name, fig in figures.items():
        save(fig, Path(folder) / f"{name}.png")


def show_image(images, titles: Sequence[str] | None = None, ncols: int = 8, size: float = 1.6) -> Figure:
    """One image (H, W) or a grid of (N, H, W), ink dark on white like fastai's ``show_image``."""
    images = np.asarray(images)
    images = images[None] if images.ndim == 2 else images
    n = len(images)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    title_lines = max((t.count("\n") + 1 for t in titles), default=0) if titles is not None else 0
    fig = Figure(figsize=(size * ncols, (size + 0.17 * title_lines) * nrows + 0.1), layout="constrained")
    for i, img in enumerate(images):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        ax.imshow(img, cmap="Greys", vmin=0, vmax=255 if img.dtype == np.uint8 else 1)
        ax.set_axis_off()
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
    return fig


def pixel_grid(image, rows: tuple[int, int] = (4, 15), cols: tuple[int, int] = (4, 22)) -> Figure:
    """The book's pixel view: a slice of a uint8 image as a grey-shaded table of its numbers."""
    part = np.asarray(image)[slice(*rows), slice(*cols)]
    fig = Figure(figsize=(0.42 * part.shape[1] + 0.6, 0.42 * part.shape[0] + 0.6))
    ax = fig.add_subplot()
    ax.imshow(part, cmap="Greys", vmin=0, vmax=255)
    for (r, c), v in np.ndenumerate(part):
        ax.text(c, r, str(v), ha="center", va="center", fontsize=7, color="white" if v > 128 else "black")
    ax.set_xticks(range(part.shape[1]), [str(c) for c in range(*cols)], fontsize=7)
    ax.set_yticks(range(part.shape[0]), [str(r) for r in range(*rows)], fontsize=7)
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    ax.set_title(f"pixels, rows {rows[0]}–{rows[1] - 1}, columns {cols[0]}–{cols[1] - 1}")
    return fig


def pixel_text(image, rows: tuple[int, int] = (4, 15), cols: tuple[int, int] = (4, 22)) -> str:
    """The same slice as text for a terminal: numbers right-aligned, row and column indices at the edges."""
    part = np.asarray(image)[slice(*rows), slice(*cols)]
    head = "    " + "".join(f"{c:>4}" for c in range(*cols))
    return "\n".join([head] + [f"{r:>3} " + "".join(f"{v:>4}" for v in row) for r, row in zip(range(*rows), part)])


def confusion_figure(cm, class_names: Sequence[str], title: str = "confusion matrix") -> Figure:
    """A (K, K) confusion matrix (rows true, columns predicted) with the counts in the cells."""
    cm = np.asarray(cm)
    k = len(cm)
    fig = Figure(figsize=(1.0 + 0.55 * k, 0.8 + 0.5 * k))
    ax = fig.add_subplot()
    im = ax.imshow(cm, cmap="Blues")
    for (r, c), v in np.ndenumerate(cm):
        ax.text(c, r, str(v), ha="center", va="center", fontsize=8, color="white" if v > cm.max() / 2 else "black")
    names = [n if len(n) <= 12 else n[:11] + "…" for n in map(str, class_names)]  # long names abbreviated
    slanted = max(map(len, names)) > 2  # words, not digits: turned so that they do not overlap
    ax.set_xticks(range(k), names, rotation=45 if slanted else 0, ha="right" if slanted else "center")
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, shrink=0.8)
    return fig


def _curve(ax, f, lo: float, hi: float) -> None:
    xs = np.linspace(lo, hi, 200)
    ax.plot(xs, np.asarray(f(xs)), color="tab:blue")
    ax.set_xlabel("x (the parameter)")
    ax.set_ylabel("loss")


def function_figure(f, lo: float = -2.0, hi: float = 2.0, point: float | None = None, tangent: bool = False,
                    title: str = "") -> Figure:
    """A loss curve (``quadratic.png``), with a starting point in red (``loss1``) and its slope (``loss2``)."""
    import jax

    fig = Figure(figsize=(5, 3.6))
    ax = fig.add_subplot()
    _curve(ax, f, lo, hi)
    if point is not None:
        y, slope = float(f(point)), float(jax.grad(f)(float(point)))
        ax.scatter([point], [y], color="red", zorder=3, label=f"start x={point}")
        if tangent:
            xs = np.array([point - 0.6, point + 0.6])
            ax.plot(xs, y + slope * (xs - point), "--", color="red", label=f"slope {slope:.1f}")
        ax.legend()
    ax.set_title(title)
    return fig


def descent_figure(f, xs, title: str) -> Figure:
    """The parameter's path down a loss curve: one point per step, joined by arrows (``loss3``, the lr descents)."""
    xs = np.asarray(xs, float)
    xs = xs[np.isfinite(xs)]
    span = max(2.0, float(np.abs(xs).max()) * 1.1)
    fig = Figure(figsize=(5, 3.6))
    ax = fig.add_subplot()
    _curve(ax, f, -span, span)
    ys = np.asarray(f(xs))
    ax.scatter(xs, ys, c=np.arange(len(xs)), cmap="autumn", zorder=3)
    for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
        ax.annotate("", (x1, y1), (x0, y0), arrowprops={"arrowstyle": "->", "color": "red", "lw": 0.8})
    ax.set_title(title)
    return fig


def preds_figure(t, targets, preds, titles: Sequence[str]) -> Figure:
    """The book's ``show_preds`` at several steps: data as dots, the model's predictions in red."""
    preds = np.asarray(preds)
    fig = Figure(figsize=(3.2 * len(preds), 3))
    for i, (p, title) in enumerate(zip(preds, titles)):
        ax = fig.add_subplot(1, len(preds), i + 1)
        ax.scatter(t, targets, s=12, label="measured")
        ax.scatter(t, p, s=12, color="red", label="predicted")
        ax.set_ylim(-300, 100) if np.abs(p).max() > 1000 else None
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("speed") if i == 0 else None
    fig.axes[0].legend(fontsize=7)
    return fig


def curves_figure(series: dict[str, Sequence[float]], xlabel: str, ylabel: str, title: str, logy: bool = False) -> Figure:
    """Named curves against their index (losses per step or epoch, accuracies)."""
    fig = Figure(figsize=(5.5, 3.6))
    ax = fig.add_subplot()
    for name, ys in series.items():
        ax.plot(np.arange(len(ys)), np.asarray(ys, float), label=name)
    ax.set_yscale("log") if logy else None
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig


def sweep_figure(lrs, final_losses, diverged, title: str) -> Figure:
    """Final loss against learning rate, log axes; diverged runs marked with a red x at the top."""
    lrs, losses, bad = np.asarray(lrs), np.asarray(final_losses, float), np.asarray(diverged, bool)
    fig = Figure(figsize=(5.5, 3.6))
    ax = fig.add_subplot()
    ax.plot(lrs[~bad], losses[~bad], "o-", label="final loss")
    if bad.any():
        top = np.nanmax(losses[~bad]) * 3 if (~bad).any() else 1.0
        ax.scatter(lrs[bad], np.full(bad.sum(), top), marker="x", color="red", label="diverged")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss after the run")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig


# Each report's figures, by the file names the CLI writes them under.

def baseline_figures(report) -> dict[str, Figure]:
    """Pixel similarity (``reports.baseline``): the ideal digits, the book's pixel view of its im3, the confusion matrix."""
    s = report.summary
    return {"prototypes": show_image(report.prototypes, [f"ideal {n}" for n in s["classes"]]),
            "pixels": pixel_grid(report.sample.train.images[1]),  # the book's im3 = threes[1]
            "confusion": confusion_figure(s["confusion_matrix"], s["classes"], f"nearest mean ({s['distance']}), validation")}


def learning_rate_figures(summary: dict, f=lambda x: x**2) -> dict[str, Figure]:
    """The chapter's x² pictures and ``reports.learning_rates``' four descents."""
    x0 = summary["x0"]
    names = {"good": "loss3", "too low": "low_learning_rate_descent", "diverges": "high_learning_rate_descent",
             "bounces": "high_learning_rate_descent2"}
    return {"quadratic": function_figure(f, title="f(x) = x²: our pretend loss"),
            "loss1": function_figure(f, point=x0, title="start from a random parameter"),
            "loss2": function_figure(f, point=x0, tangent=True, title="the slope says which way is down"),
            **{names[run["name"]]: descent_figure(f, np.array(run["x"], float), f"lr {run['lr']}: {run['name']}")
               for run in summary["runs"]}}


def sgd_figures(report) -> dict[str, Figure]:
    """The roller coaster (``reports.sgd_example``): the data, the fit over time, the variants, the sweep."""
    from mnistjax.sgd import quadratic

    s, t, speed = report.summary, report.time, report.speed
    losses = report.variants["sgd lr=1e-5, raw time (the book)"]
    shown = [n for n in (0, s["steps"], 1000, len(losses) - 1) if n < len(losses)]
    lrs, final, bad = report.sweep
    return {"sgd_scatter": preds_figure(t, speed, [speed], ["the measurements"]),
            "show_preds": preds_figure(t, speed, [np.asarray(quadratic(report.params[n], t)) for n in shown],
                                       [f"after {n} steps (loss {float(losses[n]):.0f})" for n in shown]),
            "roller_coaster_loss": curves_figure(report.variants, "step", "MSE loss",
                                                 f"roller coaster: least squares reaches {s['lstsq_loss']:.2f}", logy=True),
            "lr_sweep": sweep_figure(lrs, final, bad, "plain SGD, 1000 steps: loss vs learning rate")}


def top_wrong(images, actual, predicted, confidence, names, k: int = 16) -> Figure | None:
    """The k most confident mistakes: images (N, 28, 28), actual and predicted class indices (N,),
    the probability given to the prediction (N,). None when there is no mistake."""
    wrong = np.flatnonzero(np.asarray(actual) != np.asarray(predicted))
    worst = wrong[np.argsort(-np.asarray(confidence)[wrong], kind="stable")][:k]
    if not len(worst):
        return None
    titles = [f"true {names[int(actual[i])]}\npred {names[int(predicted[i])]}\np={float(confidence[i]):.2f}" for i in worst]
    return show_image(np.asarray(images)[worst], titles)


def training_figures(report) -> dict[str, Figure]:
    """One model's training (``experiment.train``): loss and accuracy per epoch, the confusion matrix,
    the most confident mistakes on the validation images."""
    from mnistjax import metrics

    s, d, task, logits = report.summary, report.prepared.data, report.learner.task, report.fit.valid_logits
    h, names = s["history"], s["classes"]
    title = f"{s['config']['model']} on {s['dataset']} ({', '.join(names)})"
    pred = task.predict(logits)
    figs = {"loss": curves_figure({"train loss": [e["train_loss"] for e in h], "valid loss": [e["valid_loss"] for e in h]},
                                  "epoch", "loss", title),
            "accuracy": curves_figure({"valid accuracy": [e["valid_accuracy"] for e in h]}, "epoch", "accuracy", title),
            "confusion": confusion_figure(metrics.confusion_matrix(pred, d.y_valid, len(names)), names,
                                          f"{s['config']['model']}, validation")}
    confidence = np.asarray(task.probabilities(logits)).max(-1)
    wrong = top_wrong(np.asarray(d.x_valid), np.asarray(d.y_valid), np.asarray(pred), confidence, names)
    return {**figs, **({"top_wrong": wrong} if wrong is not None else {})}


def lr_find_figure(summary: dict) -> Figure:
    """Loss against learning rate (log axis) from ``experiment.lr_find``: the mean curve, the band of the
    runs (min to max) when there are several seeds, and the suggestions marked."""
    lrs = np.asarray(summary["lrs"], float)
    fig = Figure(figsize=(5.5, 3.6))
    ax = fig.add_subplot()
    if "sweep" in summary:  # a curve per variant, each labelled with its values and valley
        for v in summary["variants"]:
            named = ", ".join(f"{k}={x}" for k, x in v["values"].items())
            ax.plot(np.asarray(v["lrs"], float), np.array(v["losses"], float),
                    label=f"{named}: valley {v['suggestions']['valley']:.2g}")
    else:
        runs = np.array(summary.get("runs", []), float)  # JSON's nulls (a diverged stretch) become NaN
        if len(runs):
            ax.fill_between(lrs, np.nanmin(runs, 0), np.nanmax(runs, 0), alpha=0.25, label=f"{len(runs)} seeds, min to max")
        mean = np.array(summary["losses"], float)
        ax.plot(lrs, mean, label="loss (smoothed)")
        for (name, lr), marker in zip(summary["suggestions"].items(), "ovs"):
            ax.plot([lr], [np.interp(np.log(lr), np.log(lrs[np.isfinite(mean)]), mean[np.isfinite(mean)])], marker,
                    markersize=8, label=f"{name} {lr:.2g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title(f"learning-rate finder: {summary['config']['model']}, {summary['config']['opt']}")
    ax.legend(fontsize=8)
    return fig


def top_losses_figure(images, rows: list[dict]) -> Figure:
    """Images (N, 28, 28) with the rows of ``interpret.top_losses`` as titles: actual and predicted class
    on lines of their own (a class name may hold any character), loss, probability; a square-ish grid."""
    titles = [f"true {r['actual']}\npred {r['predicted']}\nloss {r['loss']:.2f} p={r['probability']:.2f}" for r in rows]
    return show_image(np.asarray(images)[[r["index"] for r in rows]], titles, ncols=max(1, math.ceil(math.sqrt(len(rows)))))


def interpretation_figures(summary: dict, images) -> dict[str, Figure]:
    """``interpret.summary``'s pictures: the confusion matrix and the top losses on their images."""
    return {"confusion": confusion_figure(summary["confusion_matrix"], summary["classes"], "confusion matrix"),
            "top_losses": top_losses_figure(images, summary["top_losses"])}
