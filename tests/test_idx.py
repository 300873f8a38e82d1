"""The IDX reader: round trips, and each malformed file refused with its own clear message."""

import gzip

import numpy as np
import pytest

from mnistjax.data import load_idx_dir, read_idx, write_idx
from mnistjax.data.idx_dir import FILES
from mnistjax.errors import MnistjaxError


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_round_trip(tmp_path, dtype, suffix):
    arr = (np.arange(2 * 3 * 5) - 7).astype(dtype).reshape(2, 3, 5)
    write_idx(tmp_path / f"a{suffix}", arr)
    back = read_idx(tmp_path / f"a{suffix}")
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    np.testing.assert_array_equal(back, arr)


def write_dataset(folder, train_images, train_labels, test_images=None, test_labels=None, gz=True):
    """A folder of the four IDX files, from arrays (test split defaults to the train split)."""
    arrays = {("train", "images"): train_images, ("train", "labels"): train_labels,
              ("test", "images"): train_images if test_images is None else test_images,
              ("test", "labels"): train_labels if test_labels is None else test_labels}
    for key, arr in arrays.items():
        write_idx(folder / (FILES[key] + (".gz" if gz else "")), arr)
    return folder


@pytest.fixture
def small(tmp_path, tiny):
    return write_dataset(tmp_path, tiny.train.images[:50], tiny.train.labels[:50].astype(np.uint8))


def test_own_idx_data_loads_unverified(small):
    ds = load_idx_dir(small)
    assert ds.name == "custom" and ds.verified is False
    assert ds.train.images.shape == (50, 28, 28) and ds.train.labels.dtype == np.int32


def test_raw_and_gz_files_both_load(tmp_path, tiny):
    folder = write_dataset(tmp_path, tiny.test.images[:5], tiny.test.labels[:5].astype(np.uint8), gz=False)
    np.testing.assert_array_equal(load_idx_dir(folder).train.images, tiny.test.images[:5])


def _rewrite(path, change):
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(change(raw)))


IMAGES = "train-images-idx3-ubyte.gz"
LABELS = "train-labels-idx1-ubyte.gz"


@pytest.mark.parametrize("name,change,message", [
    (IMAGES, lambda b: b[:-100], r"truncated: shape \(50, 28, 28\) needs"),
    (IMAGES, lambda b: b[:6], r"truncated: header needs"),
    (IMAGES, lambda b: b"\x00\x01" + b[2:], r"not an IDX file: magic 0001"),
    (IMAGES, lambda b: b[:2] + b"\x07" + b[3:], r"not an IDX file: magic 0000070?3"),
    (IMAGES, lambda b: b + b"extra", r"5 trailing bytes"),
    (LABELS, lambda b: b[:-1] + b"\x0a", r"label 10 at index 49; expected labels 0..9"),
    (LABELS, lambda b: b[:7] + b"\x31" + b[8:-1], r"50 images but .* has 49 labels"),
])
def test_malformed_idx_is_refused(small, name, change, message):
    _rewrite(small / name, change)
    with pytest.raises(MnistjaxError, match=message) as e:
        load_idx_dir(small)
    assert name.removesuffix(".gz") in str(e.value)


def test_corrupt_gzip_is_refused(small):
    data = bytearray((small / IMAGES).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (small / IMAGES).write_bytes(bytes(data))
    with pytest.raises(MnistjaxError, match=f"{IMAGES}: corrupt gzip"):
        load_idx_dir(small)


def test_truncated_gzip_is_refused(small):
    (small / IMAGES).write_bytes((small / IMAGES).read_bytes()[:-30])
    with pytest.raises(MnistjaxError, match=f"{IMAGES}: corrupt gzip"):
        load_idx_dir(small)


def test_images_that_are_not_28x28_are_refused(tmp_path):
    write_dataset(tmp_path, np.zeros((4, 27, 28), np.uint8), np.zeros(4, np.uint8))
    with pytest.raises(MnistjaxError, match=r"images of shape \(4, 27, 28\) uint8; expected \(N, 28, 28\)"):
        load_idx_dir(tmp_path)


def test_missing_file_is_named(small):
    (small / LABELS).unlink()
    with pytest.raises(MnistjaxError, match="missing train-labels-idx1-ubyte"):
        load_idx_dir(small)
