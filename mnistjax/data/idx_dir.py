"""A folder of the four MNIST IDX files: find them, read them in parallel, check their hashes."""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from mnistjax.data.dataset import DIGITS, Dataset, Split
from mnistjax.data.idx import parse_idx, read_bytes
from mnistjax.errors import MnistjaxError

# The four files, by their standard names (each may also be gzipped: NAME.gz).
FILES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}

# The published SHA-256 of the decompressed MNIST files (the same sums the public mirrors publish).
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

# Their decompressed sizes (an IDX header, then one byte per pixel or label): where a download's
# decompression stops, so that a gzip bomb on a mirror is never inflated past them.
MNIST_SIZES = {"train-images-idx3-ubyte": 16 + 60_000 * 784, "train-labels-idx1-ubyte": 8 + 60_000,
               "t10k-images-idx3-ubyte": 16 + 10_000 * 784, "t10k-labels-idx1-ubyte": 8 + 10_000}


def parse_sums(text: str) -> dict[str, str]:
    """``sha256sum`` output ("HASH  NAME" lines) → {NAME: HASH}."""
    return {name.lstrip("*"): h for h, name in (line.split(None, 1) for line in text.splitlines() if line.strip())}


def find_idx_files(folder: str | os.PathLike) -> dict[str, Path] | None:
    """{standard name: path} when ``folder`` holds all four files (raw or .gz), None when it holds none.

    A folder with some but not all of them is an error that names the missing ones.
    """
    folder = Path(folder)
    found = {}
    for name in FILES.values():
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                found[name] = candidate
                break
    if not found:
        return None
    missing = [n for n in FILES.values() if n not in found]
    if missing:
        raise MnistjaxError(f"{folder}: missing {', '.join(missing)} (.gz or raw); expected all four MNIST IDX files")
    return found


def _read(path: Path) -> tuple[np.ndarray, str]:
    data = read_bytes(path)
    return parse_idx(data, str(path)), hashlib.sha256(data).hexdigest()


def _split(images: np.ndarray, labels: np.ndarray, paths: tuple[Path, Path], n_classes: int) -> Split:
    ipath, lpath = paths
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise MnistjaxError(f"{ipath}: images of shape {images.shape} {images.dtype}; expected (N, 28, 28) uint8")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise MnistjaxError(f"{lpath}: labels of shape {labels.shape} {labels.dtype}; expected (N,) uint8")
    if not len(images):
        raise MnistjaxError(f"{ipath}: no images; expected at least one in each split")
    if len(images) != len(labels):
        raise MnistjaxError(f"{ipath} has {len(images)} images but {lpath} has {len(labels)} labels; expected equal counts")
    if len(labels) and labels.max() >= n_classes:
        bad = int(np.flatnonzero(labels >= n_classes)[0])
        raise MnistjaxError(f"{lpath}: label {labels[bad]} at index {bad}; expected labels 0..{n_classes - 1}")
    return Split(images, labels.astype(np.int32), np.arange(len(labels), dtype=np.int64))


def load_idx_dir(folder: str | os.PathLike, known: dict[str, str] = MNIST_SHA256, name: str = "mnist",
                 strict: bool = False) -> Dataset:
    """Load the four IDX files of ``folder``; the four decompress and hash in parallel.

    ``verified`` is True when every file's SHA-256 equals ``known``; then the dataset is called
    ``name``, otherwise "custom" (your own IDX data is welcome, just not called MNIST).
    ``strict`` turns a mismatch into an error (for files mnistjax itself cached or ships).
    """
    paths = find_idx_files(folder)
    if paths is None:
        raise MnistjaxError(f"{folder}: no MNIST IDX files; expected {', '.join(FILES.values())} (.gz or raw)")
    with ThreadPoolExecutor(4) as pool:  # zlib and hashlib release the GIL
        results = dict(zip(paths, pool.map(_read, paths.values())))
    sums = {n: h for n, (_, h) in results.items()}
    bad = [n for n, h in sums.items() if known.get(n) != h]
    if strict and bad:
        raise MnistjaxError(
            f"{paths[bad[0]]}: SHA-256 {sums[bad[0]]} does not match the published {known.get(bad[0])}; "
            "delete it and fetch again (mnistjax data fetch)"
        )
    names = DIGITS if not bad else class_names(Path(folder))  # MNIST, recognised by its hashes, keeps its digits
    split = {
        s: _split(results[FILES[s, "images"]][0], results[FILES[s, "labels"]][0],
                  (paths[FILES[s, "images"]], paths[FILES[s, "labels"]]), len(names))
        for s in ("train", "test")
    }
    return Dataset(name if not bad else "custom", str(Path(folder).resolve()), not bad,
                   split["train"], split["test"], names, sums)


def class_names(folder: Path) -> tuple[str, ...]:
    """The names in ``folder/classes.txt`` (one per line, in label order), or the digits without one."""
    path = folder / "classes.txt"
    if not path.is_file():
        return DIGITS
    try:
        names = tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    except (OSError, UnicodeDecodeError) as e:
        raise MnistjaxError(f"{path}: cannot read ({type(e).__name__}); expected one class name per line") from None
    if not names or len(set(names)) != len(names):
        raise MnistjaxError(f"{path}: expected distinct class names, one per line in label order")
    return names
