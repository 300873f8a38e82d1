"""Pictures of digits as people have them, brought to MNIST's form the way MNIST was made.

MNIST's digits were size-normalised to fit a 20×20 box keeping their aspect ratio (anti-aliased, so
with grey levels), then centred in 28×28 by their centre of mass; ink is light (1) on a dark (0)
background. ``to_mnist`` does the same to any PNG or JPEG: any size, RGB or grayscale, dark ink on
light paper or light on dark, the digit anywhere in the frame. ``resize`` does only what a model
trained on other data needs: their size and polarity. ``deskew`` straightens slanted digits, the
preprocessing of LeCun's table that helps nearest neighbours most.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image, UnidentifiedImageError

from mnistjax.data.folders import as_seen
from mnistjax.errors import MnistjaxError
from mnistjax.files import refuse_irregular

BOX, SIZE = 20, 28
INK = 0.25  # a pixel is ink when it is this far from the background, as a fraction of the darkest-to-lightest range


def read_image(path: str | os.PathLike) -> np.ndarray:
    """An image file as (H, W) float32 gray in [0, 1], decoded as training decodes pictures
    (``data.folders.as_seen``). Anything but a regular file holding a PNG or JPEG of at most
    Pillow's safe size (``Image.MAX_IMAGE_PIXELS``) is a one-line MnistjaxError naming it."""
    path = Path(path)
    refuse_irregular(path, "a PNG or JPEG")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # a picture too large to be one is refused
            with Image.open(path) as im:
                im = as_seen(im)
                if im.mode.startswith("I;16"):
                    return (np.asarray(im, np.float32) / 65535).astype(np.float32)
                return np.asarray(im.convert("L"), np.float32) / 255
    except FileNotFoundError:
        raise MnistjaxError(f"{path}: no such file; expected a PNG or JPEG") from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise MnistjaxError(f"{path}: too large a picture (over {Image.MAX_IMAGE_PIXELS:,} pixels, a decompression "
                            "bomb's size); expected a PNG or JPEG of a digit") from None
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
    background = float(np.median(_border(gray)))
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


def _border(image: np.ndarray) -> np.ndarray:
    return np.concatenate([image[..., 0, :], image[..., -1, :], image[..., :, 0], image[..., :, -1]], axis=-1)


def ink_of(images: np.ndarray) -> str:
    """The polarity of images (N, H, W) uint8: "light" ink on a dark background (MNIST's), or "dark"
    on a light one, by the median of their border pixels."""
    return "dark" if np.median(_border(np.asarray(images))) > 127 else "light"


def resize(gray: np.ndarray, size: tuple[int, int] = (SIZE, SIZE), ink: str = "light") -> np.ndarray:
    """(H, W) gray in [0, 1] -> ``size`` float32 in [0, 1] with ``ink``'s polarity ("light" on dark or
    "dark" on light): a picture brought to a model's training images, nothing else (no crop, no
    centring), for data that are not MNIST. Area-averaged when it shrinks, bilinear when it grows;
    inverted when its border says its polarity is the other one."""
    image = Image.fromarray(np.asarray(gray, np.float32))
    if image.size != size[::-1]:
        shrink = image.size[0] > size[1] or image.size[1] > size[0]
        image = image.resize(size[::-1], Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR)
    out = np.clip(np.asarray(image, np.float32), 0, 1)
    light_background = float(np.median(_border(out))) > 0.5
    return 1 - out if light_background == (ink == "light") else out


# How ``predict`` brings a picture to a model's input, by the name a saved model records.
PREPROCESS = {"mnist": lambda gray, ink: to_mnist(gray), "resize": lambda gray, ink: resize(gray, ink=ink)}


def deskew(images: jax.Array) -> jax.Array:
    """Straighten slanted digits: (N, H, W) uint8 or float -> the same shape and dtype (uint8 rounded).

    Each image is sheared along its rows by the slant of its ink (the row-column covariance of the
    pixel mass over its row variance), so that its principal axis is upright, and moved so that its
    centre of mass is the frame's centre (bilinear sampling, zeros outside): the usual deskewing of
    MNIST, as ``scipy.ndimage.affine_transform`` with the image's moments does it.
    """
    x = jnp.asarray(images).astype(jnp.float32)
    h, w = x.shape[1:]
    r, c = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32), indexing="ij")

    def one(im):
        mass = im.sum() + 1e-6
        mr, mc = (r * im).sum() / mass, (c * im).sum() / mass
        slant = ((r - mr) * (c - mc) * im).sum() / (((r - mr) ** 2 * im).sum() + 1e-6)
        src = [r - h / 2 + mr, c - w / 2 + mc + slant * (r - h / 2)]  # where each output pixel comes from
        return jax.scipy.ndimage.map_coordinates(im, src, order=1, mode="constant")

    out = jax.vmap(one)(x)
    return jnp.clip(jnp.round(out), 0, 255).astype(jnp.uint8) if images.dtype == jnp.uint8 else out.astype(images.dtype)


def image_files(paths: list[str | os.PathLike]) -> list[Path]:
    """The files named, and the entries inside the folders named whose names end in .png, .jpg or
    .jpeg, sorted within each folder: links that lead nowhere, FIFOs and the like included, so that
    each gets its own error rather than being skipped in silence."""
    found = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(f for f in p.rglob("*") if f.suffix.lower() in (".png", ".jpg", ".jpeg") and not f.is_dir())
        else:
            found.append(p)
    return found
