"""Make the embedded 'tiny' sample (mnistjax/data/tiny/) from the canonical MNIST files.

    python scripts/make_tiny.py [--source ../shared/data/mnist]

Deterministic: the first PER_CLASS images of each digit, in MNIST order, from train and from
test, written as gzipped IDX files (mtime 0, so the bytes repeat) with their SHA256SUMS.
The source files must match the published hashes.
"""

import argparse
import hashlib
import gzip
from pathlib import Path

import numpy as np

from mnistjax.data.idx import write_idx
from mnistjax.files import atomic_write
from mnistjax.data.idx_dir import FILES, load_idx_dir
from mnistjax.data.load import TINY_DIR

PER_CLASS = {"train": 800, "test": 200}


def first_per_class(labels: np.ndarray, n: int) -> np.ndarray:
    """Indices of the first ``n`` images of each class, in their original order."""
    return np.sort(np.concatenate([np.flatnonzero(labels == c)[:n] for c in range(10)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="../shared/data/mnist", help="folder with the four MNIST IDX files")
    args = parser.parse_args()
    ds = load_idx_dir(args.source, strict=True)
    sums = []
    for split_name, split in (("train", ds.train), ("test", ds.test)):
        rows = first_per_class(split.labels, PER_CLASS[split_name])
        for kind, arr in (("images", split.images[rows]), ("labels", split.labels[rows].astype(np.uint8))):
            name = FILES[split_name, kind]
            write_idx(TINY_DIR / f"{name}.gz", arr)
            raw = gzip.decompress((TINY_DIR / f"{name}.gz").read_bytes())
            sums.append(f"{hashlib.sha256(raw).hexdigest()}  {name}\n")
    atomic_write(TINY_DIR / "SHA256SUMS", "".join(sums).encode())
    size = sum(p.stat().st_size for p in Path(TINY_DIR).iterdir())
    print(f"wrote {TINY_DIR}: {PER_CLASS} per class, {size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
