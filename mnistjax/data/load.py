"""Which data to use: ``data_dir``/``$MNISTJAX_DATA`` → cache → download → (auto only) the embedded sample."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mnistjax.data import download
from mnistjax.data.dataset import Dataset
from mnistjax.data.folders import is_image_folder, load_folders
from mnistjax.data.idx_dir import find_idx_files, load_idx_dir, parse_sums
from mnistjax.errors import MnistjaxError

TINY_DIR = Path(__file__).parent / "tiny"
DATASETS = ("auto", "mnist", "tiny")


def load_tiny() -> Dataset:
    """The embedded sample (made by ``scripts/make_tiny.py``): checked against its own hashes."""
    known = parse_sums((TINY_DIR / "SHA256SUMS").read_text())
    return load_idx_dir(TINY_DIR, known, name="tiny", strict=True)


def load_dir(folder: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Dataset:
    """A folder of IDX files (MNIST's names, .gz or raw) or of PNG folders (train/valid or training/testing)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise MnistjaxError(f"{folder}: not a folder; expected the four MNIST IDX files or train/ and valid/ PNG folders",
                            param="data_dir")
    if find_idx_files(folder) is not None:
        return load_idx_dir(folder)
    if is_image_folder(folder):
        return load_folders(folder, download.cache_dir(cache_dir))
    raise MnistjaxError(f"{folder}: holds neither MNIST IDX files nor train/ and valid/ (or training/ and testing/) "
                        "PNG folders", param="data_dir")


def is_local(dataset: str = "auto", data_dir: str | os.PathLike | None = None,
             cache_dir: str | os.PathLike | None = None) -> bool:
    """Whether ``load`` with these arguments reads only files already here (no download, no fallback)."""
    if dataset == "tiny" or data_dir or os.environ.get("MNISTJAX_DATA"):
        return True
    try:
        return find_idx_files(download.mnist_cache(download.cache_dir(cache_dir))) is not None
    except MnistjaxError:
        return False


def load(dataset: str = "auto", data_dir: str | os.PathLike | None = None,
         cache_dir: str | os.PathLike | None = None, mirrors: list[str] | None = None,
         progress: bool = True) -> Dataset:
    """Load the data a command asked for; the result's ``name`` says which it got.

    dataset="tiny":  the embedded sample. "mnist": full MNIST or a clear error saying how to get it.
    "auto": full MNIST when it can be had, else the embedded sample with a one-line warning.
    A ``data_dir`` (or ``$MNISTJAX_DATA``) is used as given, whatever ``dataset`` says, except "tiny".
    """
    if dataset not in DATASETS:
        raise MnistjaxError(f"{dataset!r}: expected one of {', '.join(DATASETS)}", param="dataset")
    if data_dir == "":
        raise MnistjaxError("'': expected a folder", param="data_dir")
    if dataset == "tiny":
        return load_tiny()
    data_dir = data_dir or os.environ.get("MNISTJAX_DATA")
    if data_dir:
        return load_dir(data_dir, cache_dir)
    cached = download.mnist_cache(download.cache_dir(cache_dir))
    try:
        return load_idx_dir(cached, strict=True)
    except MnistjaxError:  # nothing cached yet, or some files missing or corrupt: fetch what is not verified
        pass
    try:
        return load_idx_dir(download.fetch(cache_dir, mirrors, progress=progress), strict=True)
    except MnistjaxError as e:
        if dataset == "mnist":
            raise MnistjaxError(f"full MNIST is not available ({e}); expected the four IDX files in a data folder "
                                "(data_dir, $MNISTJAX_DATA) or in the cache ('mnistjax data fetch' downloads them)",
                                param="dataset") from None
        print(f"mnistjax: warning: full MNIST is not available ({e.message}), so this uses the embedded 'tiny' sample "
              "(10,000 images); with the files at hand, name their folder with --data-dir or $MNISTJAX_DATA",
              file=sys.stderr)
        return load_tiny()
