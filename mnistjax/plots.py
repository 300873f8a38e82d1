"""Pictures: digits, the book's pixel view, confusion matrices, curves. matplotlib's object API only
(``Figure``, no pyplot state), so plotting is as pure as the rest; every writer is atomic."""

from __future__ import annotations

import io
import os
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

from mnistjax.data.idx import atomic_write


def save(fig: Figure, path: str | os.PathLike | None, dpi: int = 100) -> Figure:
    """Write ``fig`` as PNG to ``path`` (temp file + rename) when a path is given; returns ``fig``."""
    if path is not None:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
        atomic_write(path, buf.getvalue())
    return fig


def show_image(images, titles: Sequence[str] | None = None, ncols: int = 8, size: float = 1.6,
               path: str | os.PathLike | None = None) -> Figure:
    """One image (H, W) or a grid of (N, H, W), ink dark on white like fastai's ``show_image``."""
    images = np.asarray(images)
    images = images[None] if images.ndim == 2 else images
    n = len(images)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig = Figure(figsize=(size * ncols, size * nrows + (0.3 if titles else 0)))
    for i, img in enumerate(images):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        ax.imshow(img, cmap="Greys", vmin=0, vmax=255 if img.dtype == np.uint8 else 1)
        ax.set_axis_off()
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
    return save(fig, path)


def pixel_grid(image, rows: tuple[int, int] = (4, 15), cols: tuple[int, int] = (4, 22),
               path: str | os.PathLike | None = None) -> Figure:
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
    return save(fig, path)


def pixel_text(image, rows: tuple[int, int] = (4, 15), cols: tuple[int, int] = (4, 22)) -> str:
    """The same slice as text for a terminal: numbers right-aligned, row and column indices at the edges."""
    part = np.asarray(image)[slice(*rows), slice(*cols)]
    head = "    " + "".join(f"{c:>4}" for c in range(*cols))
    return "\n".join([head] + [f"{r:>3} " + "".join(f"{v:>4}" for v in row) for r, row in zip(range(*rows), part)])


def confusion_figure(cm, class_names: Sequence[str], title: str = "confusion matrix",
                     path: str | os.PathLike | None = None) -> Figure:
    """A (K, K) confusion matrix (rows true, columns predicted) with the counts in the cells."""
    cm = np.asarray(cm)
    k = len(cm)
    fig = Figure(figsize=(1.0 + 0.55 * k, 0.8 + 0.5 * k))
    ax = fig.add_subplot()
    im = ax.imshow(cm, cmap="Blues")
    for (r, c), v in np.ndenumerate(cm):
        ax.text(c, r, str(v), ha="center", va="center", fontsize=8, color="white" if v > cm.max() / 2 else "black")
    ax.set_xticks(range(k), class_names)
    ax.set_yticks(range(k), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, shrink=0.8)
    return save(fig, path)


def _curve(ax, f, lo: float, hi: float) -> None:
    xs = np.linspace(lo, hi, 200)
    ax.plot(xs, np.asarray(f(xs)), color="tab:blue")
    ax.set_xlabel("x (the parameter)")
    ax.set_ylabel("loss")


def function_figure(f, lo: float = -2.0, hi: float = 2.0, point: float | None = None, tangent: bool = False,
                    title: str = "", path: str | os.PathLike | None = None) -> Figure:
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
    return save(fig, path)


def descent_figure(f, xs, title: str, path: str | os.PathLike | None = None) -> Figure:
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
    return save(fig, path)


def preds_figure(t, targets, preds, titles: Sequence[str], path: str | os.PathLike | None = None) -> Figure:
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
    return save(fig, path)


def curves_figure(series: dict[str, Sequence[float]], xlabel: str, ylabel: str, title: str, logy: bool = False,
                  path: str | os.PathLike | None = None) -> Figure:
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
    return save(fig, path)


def sweep_figure(lrs, final_losses, diverged, title: str, path: str | os.PathLike | None = None) -> Figure:
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
    return save(fig, path)
