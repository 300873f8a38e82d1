"""Pictures of digits as people have them, brought to MNIST's form the way MNIST was made.

MNIST's digits were size-normalised to fit a 20×20 box keeping their aspect ratio (anti-aliased, so
with grey levels), then centred in 28×28 by their centre of mass; ink is light (1) on a dark (0)
background. ``to_mnist`` does the same to any PNG or JPEG: any size, RGB or grayscale, dark ink on
light paper or light on dark, the digit anywhere in the frame.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mnistjax.errors import MnistjaxError

BOX, SIZE = 20, 28
INK = 0.25  # a pixel is ink when it is this far from the background, as a fraction of the darkest-to-lightest range


def read_image(path: str | os.PathLike) -> np.ndarray:
    """An image file as (H, W) float32 gray in [0, 1]; transparency is laid over white paper."""
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)  # a phone's photo the way up it was taken
            if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
                im = Image.alpha_composite(Image.new("RGBA", im.size, "white"), im.convert("RGBA"))
            if im.mode.startswith("I;16"):
                return (np.asarray(im, np.float32) / 65535).astype(np.float32)
            return np.asarray(im.convert("L"), np.float32) / 255
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise MnistjaxError(f"{path}: not a readable image ({type(e).__name__}); expected a PNG or JPEG") from None


def to_mnist(gray: np.ndarray) -> np.ndarray:
    """(H, W) gray in [0, 1] -> (28, 28) float32 in [0, 1], light ink on black, as MNIST's digits are.

    Polarity: the background is the median of the border pixels; dark borders mean light ink.
    The ink (pixels more than ``INK`` of the contrast from the background) is cropped, scaled to fit
    20×20 keeping its aspect ratio (area-averaged, so edges come out grey), and placed so that its
    centre of mass is the 28×28 frame's. Raises MnistjaxError for an image with no ink.
    """
    gray = np.asarray(gray, np.float32)
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    background = float(np.median(border))
    ink = np.abs(gray - background)  # light ink on dark, whichever way the picture was
    contrast = float(ink.max())
    if contrast < 0.1:
        raise MnistjaxError("blank image (no ink: every pixel within 10 % of the background); expected a digit")
    ink = np.clip(ink / contrast, 0, 1)
    rows, cols = np.nonzero(ink > INK)
    crop = ink[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    scale = BOX / max(crop.shape)
    h, w = max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale))
    small = np.asarray(Image.fromarray(crop).resize((w, h), Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR))
    small = np.clip(small / max(float(small.max()), 1e-6), 0, 1)
    com = np.array([(small.sum(1) * np.arange(h)).sum(), (small.sum(0) * np.arange(w)).sum()]) / small.sum()
    top, left = np.clip(np.round(SIZE / 2 - com).astype(int), 0, [SIZE - h, SIZE - w])
    out = np.zeros((SIZE, SIZE), np.float32)
    out[top:top + h, left:left + w] = small
    return out


def image_files(paths: list[str | os.PathLike]) -> list[Path]:
    """The files named, and the images (PNG, JPEG) inside the folders named, sorted within each folder."""
    found = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in (".png", ".jpg", ".jpeg"))
        else:
            found.append(p)
    return found
