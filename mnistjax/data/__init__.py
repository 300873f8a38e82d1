"""The data layer: IDX and PNG-folder readers, verified downloads, and the chapter's views.

>>> from mnistjax import data
>>> ds = data.load()                      # full MNIST if it can be had, else the embedded sample
>>> sample = data.mnist_sample(ds)        # the book's 3s and 7s: sample.train, sample.valid
>>> x = data.as_float(sample.train.images)  # (N, 28, 28) float32 in [0, 1], on the device
>>> d = data.data_from(sample)            # train and valid arrays on the device, as training.fit takes them
"""

from mnistjax.data.dataset import (DIGITS, MNIST_DATASETS, Data, Dataset, Sample, Split, as_float, book_order, data_from,
                                   mnist_sample, parse_classes, select)
from mnistjax.data.download import DEFAULT_MIRRORS, cache_dir, fetch
from mnistjax.data.folders import load_folders
from mnistjax.data.idx import read_idx, write_idx
from mnistjax.data.idx_dir import MNIST_SHA256, load_idx_dir
from mnistjax.data.load import load, load_dir, load_tiny

__all__ = [
    "DEFAULT_MIRRORS", "DIGITS", "Data", "Dataset", "MNIST_DATASETS", "MNIST_SHA256", "Sample", "Split", "as_float",
    "book_order", "data_from",
    "cache_dir", "fetch", "load", "load_dir", "load_folders", "load_idx_dir", "load_tiny", "mnist_sample",
    "parse_classes", "read_idx", "select", "write_idx",
]
