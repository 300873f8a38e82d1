"""The real data: counts, hashes, the book's views, and PNG folders equal to IDX bit for bit."""

import dataclasses
import os
import shutil
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from mnistjax import data
from mnistjax.data.idx_dir import MNIST_SHA256, parse_sums
from mnistjax.errors import MnistjaxError


def test_published_hashes_are_the_shared_ones(mnist_dir):
    assert parse_sums((mnist_dir / "SHA256SUMS").read_text()) == MNIST_SHA256


def test_full_mnist_counts_shapes_and_hashes(mnist):
    assert mnist.name == "mnist" and mnist.verified
    assert mnist.sha256 == MNIST_SHA256
    assert mnist.train.images.shape == (60000, 28, 28) and mnist.train.images.dtype == np.uint8
    assert mnist.test.images.shape == (10000, 28, 28)
    assert mnist.train.labels.dtype == np.int32
    assert mnist.train.counts(10) == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert mnist.test.counts(10) == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_mnist_sample_view_has_the_books_counts(mnist):
    s = data.mnist_sample(mnist)
    assert s.train.counts(10)[3] == 6131 and s.train.counts(10)[7] == 6265
    assert s.valid.counts(10)[3] == 1010 and s.valid.counts(10)[7] == 1028
    assert len(s.train) == 6131 + 6265 and len(s.valid) == 1010 + 1028
    # book order: class, then file name as a string ("10.png" < "10000.png" < "10011.png")
    threes = s.train.index[s.train.labels == 3]
    assert list(threes[:3]) == [10, 10000, 10011]


def test_any_class_subset(tiny):
    s = data.mnist_sample(tiny, data.parse_classes("0,1,8"))
    assert set(np.unique(s.train.labels)) == {0, 1, 8}
    assert data.parse_classes("all") == tuple(range(10))


@pytest.mark.parametrize("spec,message", [("3", "at least two"), ("3,x", "'x' is not a class"), ("3,3", "distinct")])
def test_bad_class_spec(spec, message):
    with pytest.raises(MnistjaxError, match=message):
        data.parse_classes(spec)


def test_a_class_without_examples_is_refused(tiny):
    no_sevens = dataclasses.replace(tiny, test=tiny.test.take(np.flatnonzero(tiny.test.labels != 7)))
    with pytest.raises(MnistjaxError, match="classes: class 7 has no validation examples"):
        data.mnist_sample(no_sevens, (3, 7))


def test_as_float_is_unit_interval_float32(tiny):
    x = data.as_float(tiny.test.images[:10])
    assert x.dtype == jnp.float32 and x.shape == (10, 28, 28)
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    with pytest.raises(MnistjaxError, match="expected uint8"):
        data.as_float(np.zeros((2, 28, 28), np.float32))


def test_png_folders_equal_idx_bit_for_bit(sample_dir, mnist, tmp_path):
    ds = data.load_folders(sample_dir, tmp_path)
    assert ds.classes == data.DIGITS
    for split, full in ((ds.train, mnist.train), (ds.test, mnist.test)):
        np.testing.assert_array_equal(split.images, full.images[split.index])
        np.testing.assert_array_equal(split.labels, full.labels[split.index])
    view = data.mnist_sample(mnist)
    np.testing.assert_array_equal(ds.train.images, view.train.images)  # same book order
    np.testing.assert_array_equal(ds.test.images, view.valid.images)
    cached = data.load_folders(sample_dir, tmp_path)  # second load: from the cache
    assert len(list((tmp_path / "folders").iterdir())) == 1
    np.testing.assert_array_equal(cached.train.images, ds.train.images)


def test_parallel_decode_equals_serial(sample_dir):
    serial = data.load_folders(sample_dir, None, workers=1)
    parallel = data.load_folders(sample_dir, None, workers=2)
    np.testing.assert_array_equal(serial.test.images, parallel.test.images)


def _mini_folders(root: Path, tiny, layout=("training", "testing")) -> Path:
    """A small PNG dataset in a given layout, written from the embedded sample."""
    for dirname, split in zip(layout, (tiny.train, tiny.test)):
        for i in range(20):
            folder = root / dirname / str(split.labels[i])
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(split.images[i]).save(folder / f"{split.index[i]}.png")
    return root


def test_full_mnist_png_layout_training_testing(tmp_path, tiny):
    ds = data.load_folders(_mini_folders(tmp_path, tiny), None)
    assert len(ds.train) == 20 and len(ds.test) == 20
    np.testing.assert_array_equal(ds.test.images, tiny.test.images[ds.test.index])


def test_changed_file_invalidates_the_cache(tmp_path, tiny):
    root = _mini_folders(tmp_path / "d", tiny, ("train", "valid"))
    first = data.load_folders(root, tmp_path / "c")
    victim = next((root / "valid").rglob("*.png"))
    Image.fromarray(np.full((28, 28), 7, np.uint8)).save(victim)
    os.utime(victim, ns=(1, 1))
    second = data.load_folders(root, tmp_path / "c")
    assert len(list((tmp_path / "c" / "folders").iterdir())) == 2
    assert not np.array_equal(first.test.images, second.test.images)


def test_rgb_png_is_converted_and_reported_once(tmp_path, tiny, capsys):
    root = _mini_folders(tmp_path, tiny)
    for p in list((root / "training").rglob("*.png"))[:3]:
        Image.open(p).convert("RGB").save(p)
    ds = data.load_folders(root, None)
    err = capsys.readouterr().err
    assert err.count("converted 3 image(s) to 8-bit grayscale") == 1
    np.testing.assert_array_equal(ds.train.images, tiny.train.images[ds.train.index])


def _break(root, how):
    cls = next(p for p in (root / "training").iterdir())
    if how == "size":
        Image.new("L", (28, 27)).save(cls / "big.png")
        return cls / "big.png", "size 28x27; expected 28x28"
    if how == "txt":
        (cls / "notes.txt").write_text("hello")
        return cls / "notes.txt", "not a readable image"
    if how == "empty":
        (root / "training" / "5x").mkdir()
        return root / "training" / "5x", "empty class folder"
    if how == "stray":
        (root / "training" / "README").write_text("x")
        return root / "training" / "README", "not a folder"
    if how == "nosplit":
        shutil.rmtree(root / "testing")
        return root, "no test split"


@pytest.mark.parametrize("how", ["size", "txt", "empty", "stray", "nosplit"])
def test_bad_image_folders_name_the_file(tmp_path, tiny, how):
    root = _mini_folders(tmp_path, tiny)
    path, message = _break(root, how)
    with pytest.raises(MnistjaxError, match=message) as e:
        data.load_folders(root, None)
    assert str(path) in str(e.value)


def test_labels_csv_must_match_the_folders(tmp_path, tiny):
    root = _mini_folders(tmp_path, tiny, ("train", "valid"))
    rows = ["name,label"] + [f"{p.relative_to(root).as_posix()},{p.parent.name}" for p in sorted(root.rglob("*.png"))]
    (root / "labels.csv").write_text("\n".join(rows))
    data.load_folders(root, None)
    (root / "labels.csv").write_text("\n".join(rows[:-1]))
    with pytest.raises(MnistjaxError, match="labels.csv: lists 39 images, the folders hold 40"):
        data.load_folders(root, None)


def test_corrupt_cache_file_is_rebuilt(tmp_path, tiny):
    root = _mini_folders(tmp_path / "d", tiny, ("train", "valid"))
    first = data.load_folders(root, tmp_path / "c")
    (cached,) = (tmp_path / "c" / "folders").iterdir()
    cached.write_bytes(b"truncated")
    again = data.load_folders(root, tmp_path / "c")
    np.testing.assert_array_equal(first.train.images, again.train.images)
    assert cached.stat().st_size > 1000  # rewritten
