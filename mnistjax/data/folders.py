"""Image folders (PNG) in the book's layouts, decoded in parallel and cached.

Layouts: ``root/{train,valid}/{class}/*.png`` (fastai's MNIST_SAMPLE, optional ``labels.csv``)
and ``root/{training,testing}/{class}/*.png`` (fastai's full MNIST). Images come out exactly as
in the IDX files: uint8 (N, 28, 28), in book order (class, then file name as a string).
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import sys
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mnistjax.data.dataset import DIGITS, Dataset, Split
from mnistjax.files import atomic_write, remove_stale_temps
from mnistjax.errors import MnistjaxError

# folder name -> our split; "valid" and "testing" both play the book's validation set
SPLIT_NAMES = {"train": "train", "training": "train", "valid": "test", "validation": "test",
               "test": "test", "testing": "test"}
SIZE = (28, 28)
# SHA-256 of the images and labels (int32) of each split of the book's MNIST_SAMPLE (the 3s and 7s of
# MNIST, book order): PNG folders holding exactly these are that sample, and its book numbers apply.
MNIST_SAMPLE_SHA256 = {
    "train": "144aa344ab3714361b165ee2cfb68908ad18f52fa0914b1374f081750449425c",
    "test": "586b80667d380e1691ca40fc2648a16541b7c91a478fe71d43eeb22349b3f39c",
}


def is_image_folder(root: str | os.PathLike) -> bool:
    root = Path(root)
    return any((root / name).is_dir() for name in SPLIT_NAMES)


def scan(root: Path) -> dict[str, list[tuple[str, str]]]:
    """{split: [(class name, path relative to root), ...]} in book order, with a clear error for odd layouts.

    Plain strings and ``os.scandir``: pathlib costs more than decoding at 14,434 files.
    """
    found: dict[str, list[tuple[str, str]]] = {}
    for dirname, split in SPLIT_NAMES.items():
        folder = root / dirname
        if not folder.is_dir():
            continue
        if split in found:
            raise MnistjaxError(f"{root}: two folders for the {split} split; expected one of train/training and one of valid/testing")
        items = []
        for cls in sorted(os.scandir(folder), key=lambda e: e.name):
            if not cls.is_dir():
                raise MnistjaxError(f"{cls.path}: not a folder; expected class folders such as {folder}/3/")
            names = sorted(os.listdir(cls.path))
            if not names:
                raise MnistjaxError(f"{cls.path}: empty class folder; expected PNG images")
            bad = next((n for n in names if not os.path.isfile(os.path.join(cls.path, n))), None)
            if bad is not None:  # a folder, a dangling link or a link loop
                raise MnistjaxError(f"{os.path.join(cls.path, bad)}: not a readable file; expected PNG images")
            items += [(cls.name, f"{dirname}/{cls.name}/{n}") for n in names]
        if not items:
            raise MnistjaxError(f"{folder}: no class folders; expected {folder}/<class>/*.png")
        found[split] = items
    missing = {"train", "test"} - found.keys()
    if missing:
        raise MnistjaxError(f"{root}: no {' or '.join(sorted(missing))} split; expected train/ + valid/ or training/ + testing/")
    return found


def as_seen(im: Image.Image) -> Image.Image:
    """A picture as a person sees it: the way up its EXIF says, transparency laid over white paper
    (ink drawn only in the alpha channel shows). The one decoding of pictures, for training and for
    ``predict`` alike."""
    im = ImageOps.exif_transpose(im)
    if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
        return Image.alpha_composite(Image.new("RGBA", im.size, "white"), im.convert("RGBA"))
    return im


def _decode(path: str) -> tuple[np.ndarray, str | None]:
    """One PNG → (28, 28) uint8, and the mode it was converted from (None when already 8-bit gray)."""
    try:
        with Image.open(path, formats=["PNG"]) as im:
            im = as_seen(im)
            if im.size != SIZE:
                raise MnistjaxError(f"{path}: image of size {im.size[0]}x{im.size[1]}; expected 28x28")
            mode = None if im.mode == "L" else im.mode
            if im.mode.startswith("I;16"):  # 16-bit gray: scaled to 0..255 ("L" would clip every value above 255)
                arr = np.round(np.asarray(im, np.float64) / 257).astype(np.uint8)
            else:
                arr = np.asarray(im if mode is None else im.convert("L"), np.uint8)
    except (UnidentifiedImageError, OSError) as e:
        raise MnistjaxError(f"{path}: not a readable image ({type(e).__name__}); expected a 28x28 PNG") from None
    return arr, mode


def _check_labels_csv(root: Path, files: dict[str, list[tuple[str, str]]]) -> None:
    """A ``labels.csv`` (name,label) must list exactly the images, with one label per class folder."""
    path = root / "labels.csv"
    if not path.is_file():
        return
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (UnicodeDecodeError, csv.Error) as e:
        raise MnistjaxError(f"{path}: not a UTF-8 CSV file ({type(e).__name__}); expected lines 'name,label'") from None
    if not rows or rows[0][:2] != ["name", "label"]:
        raise MnistjaxError(f"{path}: expected a header 'name,label'")
    short = [i for i, r in enumerate(rows[1:], 2) if r and len(r) < 2]
    if short:
        raise MnistjaxError(f"{path}: line {short[0]} has {len(rows[short[0] - 1])} column; expected 'name,label'")
    listed = {r[0]: r[1] for r in rows[1:] if r}
    on_disk = {rel: cls for items in files.values() for cls, rel in items}
    if listed.keys() != on_disk.keys():
        extra = sorted(listed.keys() - on_disk.keys())[:1] or sorted(on_disk.keys() - listed.keys())[:1]
        raise MnistjaxError(f"{path}: lists {len(listed)} images, the folders hold {len(on_disk)} (first difference: {extra[0]})")
    per_class: dict[str, set[str]] = {}
    for name, label in listed.items():
        per_class.setdefault(on_disk[name], set()).add(label)
    mixed = [c for c, labels in per_class.items() if len(labels) > 1]
    if mixed:
        raise MnistjaxError(f"{path}: class folder {mixed[0]!r} has several labels; expected one label per folder")


def _cache_key(root: Path, files: dict[str, list[tuple[str, str]]]) -> str:
    h = hashlib.sha256(str(root.resolve()).encode())
    for items in files.values():
        for _, rel in items:
            st = os.stat(os.path.join(root, rel))
            h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32]


def _decode_chunk(paths: list[str]) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """Decode a chunk of files in one worker process: stacked images and the conversions made."""
    decoded = [_decode(p) for p in paths]
    images = np.stack([a for a, _ in decoded]) if decoded else np.zeros((0, *SIZE), np.uint8)
    return images, [(p, mode) for p, (_, mode) in zip(paths, decoded) if mode]


def _decode_all(root: Path, files: dict[str, list[tuple[str, str]]], workers: int) -> dict[str, np.ndarray]:
    """Decode every file, in ``workers`` processes when there are many.

    Processes, not threads: most of a small PNG's cost is Pillow's Python code, which holds the
    GIL (on 2 cores, two threads were slower than one loop). forkserver,
    not fork: JAX may already be running threads in this process.
    """
    paths = [os.path.join(root, rel) for items in files.values() for _, rel in items]
    if workers > 1 and len(paths) >= 2000:
        chunks = [paths[i::workers * 4] for i in range(workers * 4)]
        method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
        with ProcessPoolExecutor(workers, mp_context=mp.get_context(method)) as pool:
            parts = list(pool.map(_decode_chunk, chunks))
        images = np.empty((len(paths), *SIZE), np.uint8)
        for i, (chunk_images, _) in enumerate(parts):
            images[i::workers * 4] = chunk_images
        converted = [c for _, conv in parts for c in conv]
    else:
        images, converted = _decode_chunk(paths)
    if converted:
        print(f"mnistjax: note: converted {len(converted)} image(s) to 8-bit grayscale "
              f"(first: {converted[0][0]}, mode {converted[0][1]})", file=sys.stderr)
    out, start = {}, 0
    for split, items in files.items():
        out[split] = images[start:start + len(items)]
        start += len(items)
    return out


def _digest(images: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for split in sorted(images):
        h.update(split.encode() + np.ascontiguousarray(images[split]).tobytes())
    return h.hexdigest()


def _read_cache(cache: Path, files: dict) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None when there are none, they do not fit, or their content hash is not
    the one stored with them (then they are rebuilt)."""
    try:
        with np.load(cache, allow_pickle=False) as z:
            images, stored = {s: z[s] for s in files}, str(z["sha256"])
    except Exception:  # missing, or whatever a flipped bit breaks (zip, zlib, npy header)
        return None
    ok = all(images[s].shape == (len(items), *SIZE) and images[s].dtype == np.uint8 for s, items in files.items())
    return images if ok and stored == _digest(images) else None


def _write_cache(cache: Path, images: dict[str, np.ndarray]) -> None:
    """Keep the decoded arrays with their hash; a cache that cannot be written is a note, not an error."""
    buf = io.BytesIO()
    np.savez(buf, sha256=np.array(_digest(images)), **images)
    try:
        atomic_write(cache, buf.getvalue())
    except OSError as e:
        print(f"mnistjax: note: cannot cache the decoded images in {cache.parent} ({e.strerror or e}); "
              "they will be decoded again next time", file=sys.stderr)


def _default_workers() -> int:
    cores = os.cpu_count() or 1
    return 1 if cores <= 2 else min(cores, 8)


def load_folders(root: str | os.PathLike, cache_dir: str | os.PathLike | None = None,
                 workers: int | None = None) -> Dataset:
    """Load an image-folder dataset; decoded arrays are cached by paths, sizes and mtimes.

    Class folders named 0..9 keep their digits as labels (so images and labels equal MNIST's);
    other names get ids in sorted order. ``cache_dir=None`` disables the cache. ``workers``
    defaults to one process on machines with at most 2 cores (starting worker processes there
    costs more than it saves) and to the core count (at most 8)
    elsewhere.
    """
    root = Path(root)
    files = scan(root)
    _check_labels_csv(root, files)
    names = sorted({cls for items in files.values() for cls, _ in items})
    classes = DIGITS if all(n in DIGITS for n in names) else tuple(names)
    cache = Path(cache_dir) / "folders" / f"{_cache_key(root, files)}.npz" if cache_dir else None
    if cache is not None:
        remove_stale_temps(cache.parent)
    images = _read_cache(cache, files) if cache is not None else None
    if images is None:
        images = _decode_all(root, files, workers or _default_workers())
        if cache is not None:
            _write_cache(cache, images)
    splits = {}
    for split, items in files.items():
        ids = {c: classes.index(c) for c in names}
        labels = np.array([ids[c] for c, _ in items], np.int32)
        stems = [rel.rsplit("/", 1)[1].split(".", 1)[0] for _, rel in items]
        index = np.array([int(s) if s.isdigit() else i for i, s in enumerate(stems)], np.int64)
        splits[split] = Split(images[split], labels, index)
    sums = {name: split.sha256() for name, split in splits.items()}
    book = sums == MNIST_SAMPLE_SHA256
    return Dataset("mnist_sample" if book else "custom", str(root.resolve()), book, splits["train"], splits["test"],
                   classes, sha256=sums)

