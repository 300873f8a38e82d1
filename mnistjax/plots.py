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
