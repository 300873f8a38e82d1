"""The in-memory dataset: splits of uint8 images and int32 labels, and the views the chapter needs."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, NamedTuple

import numpy as np

from mnistjax.errors import MnistjaxError

if TYPE_CHECKING:  # jax is imported lazily: `mnistjax data info` should not pay for it
    import jax

DIGITS = tuple(str(d) for d in range(10))
MNIST_DATASETS = ("mnist", "tiny", "mnist_sample")  # the names of MNIST and its samples (``Dataset.name``)


@dataclass(frozen=True)
class Split:
    """One split of a dataset, kept as NumPy on the host until a view puts it on the device.

    images: (N, 28, 28) uint8, 0 = background, 255 = ink.
    labels: (N,) int32 class ids.
    index:  (N,) int64, each image's position in the file it came from (its MNIST index).
    """

    images: np.ndarray
    labels: np.ndarray
    index: np.ndarray

    def __post_init__(self):
        n = len(self.images)
        if self.images.dtype != np.uint8 or self.images.ndim != 3:
            raise MnistjaxError(f"images: expected (N, H, W) uint8, got {self.images.shape} {self.images.dtype}")
        if self.labels.shape != (n,) or self.index.shape != (n,):
            raise MnistjaxError(
                f"labels/index: expected shape ({n},) to match {n} images, got {self.labels.shape} / {self.index.shape}"
            )

    def __len__(self) -> int:
        return len(self.images)

    def take(self, rows: np.ndarray) -> "Split":
        return Split(self.images[rows], self.labels[rows], self.index[rows])

    def counts(self, n_classes: int) -> list[int]:
        return np.bincount(self.labels, minlength=n_classes).tolist()

    def sha256(self) -> str:
        """The SHA-256 of the images and labels (as int32), in their order: what these data are."""
        h = hashlib.sha256(np.ascontiguousarray(self.images).tobytes())
        h.update(np.ascontiguousarray(self.labels, np.int32).tobytes())
        return h.hexdigest()


@dataclass(frozen=True)
class Dataset:
    """A loaded dataset and where it came from, so every result can name it.

    name:     "mnist" (the verified canonical files), "tiny" (the embedded sample), "mnist_sample" (the
              book's PNG folders, recognised by their hashes) or "custom".
    source:   the folder (or cache folder) the files were read from.
    verified: True when every file matched its published SHA-256.
    """

    name: str
    source: str
    verified: bool
    train: Split
    test: Split
    classes: tuple[str, ...] = DIGITS
    sha256: dict[str, str] = field(default_factory=dict)

    @property
    def is_mnist(self) -> bool:
        """MNIST itself or one of its samples: the data the book's numbers are about."""
        return self.name in MNIST_DATASETS

    def with_classes(self, names) -> "Dataset":
        """The same data with its classes named ``names`` (in label order), a comma list or a sequence.
        MNIST (recognised by its hashes) keeps its digits."""
        names = tuple(n.strip() for n in names.split(",")) if isinstance(names, str) else tuple(names)
        n = int(max(self.train.labels.max(), self.test.labels.max())) + 1
        if self.verified:
            raise MnistjaxError(f"{self.name}'s classes are its digits; expected names only for other data", param="class_names")
        if len(names) < n or len(set(names)) != len(names) or not all(names):
            raise MnistjaxError(f"{','.join(names)}: expected {n} distinct names, one per label 0..{n - 1}", param="class_names")
        return dataclasses.replace(self, classes=names)

    def describe(self) -> dict:
        """A JSON-ready summary: name, source, verification and counts per split and class."""
        k = len(self.classes)
        return {
            "dataset": self.name,
            "source": self.source,
            "verified": self.verified,
            "classes": list(self.classes),
            "splits": {
                s: {"count": len(split), "per_class": dict(zip(self.classes, split.counts(k)))}
                for s, split in (("train", self.train), ("test", self.test))
            },
            "sha256": self.sha256,
        }


def parse_classes(spec: str | Iterable, classes: tuple[str, ...] = DIGITS) -> tuple[int, ...]:
    """Class ids from "3,7", "all" or an iterable of ids; a clear error for anything else."""
    if isinstance(spec, str):
        if spec == "all":
            return tuple(range(len(classes)))
        parts = [p.strip() for p in spec.split(",") if p.strip()]
    else:
        parts = list(spec)
    ids = []
    for p in parts:
        if isinstance(p, str):
            if p not in classes:
                raise MnistjaxError(f"classes: {p!r} is not a class; expected 'all' or a comma list of {', '.join(classes)}")
            p = classes.index(p)
        if not 0 <= int(p) < len(classes):
            raise MnistjaxError(f"classes: {p} is out of range 0..{len(classes) - 1}")
        ids.append(int(p))
    if len(ids) < 2 or len(set(ids)) != len(ids):
        raise MnistjaxError(f"classes: expected at least two distinct classes, got {spec!r}")
    return tuple(ids)


def book_order(split: Split) -> Split:
    """Sort as the book's ``ls().sorted()`` does on ``train/3/10.png``, ``train/3/10000.png``, ...

    That is by class, then by file name as a string, so the book's ``threes[1]`` is our image 1.
    """
    keys = np.char.add(split.index.astype(str), ".png")
    return split.take(np.lexsort((keys, split.labels)))


def select(split: Split, classes: Iterable[int]) -> Split:
    """The images of the given classes, in book order (class, then file name)."""
    return book_order(split.take(np.flatnonzero(np.isin(split.labels, list(classes)))))


class Sample(NamedTuple):
    """The book's MNIST_SAMPLE shape of data: a train and a valid split of some classes."""

    train: Split
    valid: Split
    classes: tuple[int, ...]


def mnist_sample(ds: Dataset, classes: Iterable[int] = (3, 7)) -> Sample:
    """The book's MNIST_SAMPLE: the 3s and 7s of MNIST train (6,131 + 6,265) and test (1,010 + 1,028).

    Any class subset works the same way; the test split serves as the validation set, as in the book.
    """
    classes = tuple(classes)
    if not classes or len(set(classes)) != len(classes) or not all(
            isinstance(c, (int, np.integer)) and 0 <= c < len(ds.classes) for c in classes):
        raise MnistjaxError(f"{classes!r}; expected distinct class ids from 0 to {len(ds.classes) - 1} "
                            f"(this dataset's {len(ds.classes)} classes)", param="classes")
    sample = Sample(select(ds.train, classes), select(ds.test, classes), classes)
    for split, name in ((sample.train, "training"), (sample.valid, "validation")):
        counts = np.bincount(split.labels, minlength=len(ds.classes))[list(classes)]
        if not counts.all():
            raise MnistjaxError(f"class {ds.classes[classes[int(np.argmin(counts))]]} has no {name} examples; "
                                "expected every class in both splits", param="classes")
    return sample


# Each pixel value's float, divided on the host: exact (XLA's CPU division can be an ulp off).
PIXEL_VALUES = np.arange(256, dtype=np.float32) / np.float32(255)


@functools.cache
def _lookup():
    import jax

    return jax.jit(lambda images, table: table[images])


def as_float(images: np.ndarray) -> "jax.Array":
    """uint8 images (..., 28, 28) → float32 in [0, 1] on the default device, as the book's ``.float()/255``."""
    import chex
    import jax.numpy as jnp

    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise MnistjaxError(f"images: expected uint8 pixels 0..255, got {images.dtype}")
    out = _lookup()(images, PIXEL_VALUES)  # a quarter of the bytes to copy, then one gather on the device
    chex.assert_type(out, jnp.float32)
    chex.assert_shape(out, (..., 28, 28))
    return out


class Data(NamedTuple):
    """Train and validation arrays on the device, as ``training.fit`` takes them. x: (N, 28, 28)
    float32 in [0, 1]; y: (N,) int32 class indices (positions in the sample's classes, so for 3 vs 7:
    3 -> 0, 7 -> 1)."""

    x_train: "jax.Array"
    y_train: "jax.Array"
    x_valid: "jax.Array"
    y_valid: "jax.Array"


def data_from(sample: Sample) -> Data:
    """Put a ``Sample`` on the device as float images and class indices."""
    import jax.numpy as jnp

    lookup = np.full(max(sample.classes) + 1, -1, np.int32)
    lookup[list(sample.classes)] = np.arange(len(sample.classes))
    return Data(as_float(sample.train.images), jnp.asarray(lookup[sample.train.labels]),
                as_float(sample.valid.images), jnp.asarray(lookup[sample.valid.labels]))
