"""Pixel similarity: the book's numbers on the real data (from IDX and from PNGs), and the parts."""

import json

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mnistjax import data, metrics, plots, reports
from mnistjax.distances import cosine, rmse
from mnistjax.prototypes import classify, fit_prototypes, is_3, kmeans_prototypes, knn, nearest
from tests_helpers import run_cli

BOOK = {"3": 0.9168, "7": 0.9854}


def check_book_numbers(ds):
    r = reports.baseline(ds, (3, 7), "l1").summary
    assert r["n_train"] == 6131 + 6265 and r["n_valid"] == 1010 + 1028
    assert {k: round(v, 4) for k, v in r["per_class_accuracy"].items()} == BOOK
    assert round(r["balanced_accuracy"], 4) == 0.9511
    assert {k: round(v, 4) for k, v in r["a_3_distances"].items()} == r["book"]["a_3_distances"]


def test_book_numbers_from_idx(mnist):
    check_book_numbers(mnist)


def test_book_numbers_from_png_folders(sample_dir, tmp_path):
    ds = data.load_folders(sample_dir, tmp_path)
    assert ds.name == "mnist_sample" and ds.verified  # recognised by the hashes of its images and labels
    check_book_numbers(ds)


def test_book_steps_by_hand(mnist):
    """The chapter's own steps, one line each: stack, mean, distance, is_3, accuracy."""
    s = data.mnist_sample(mnist)
    stacked_threes = data.as_float(s.train.images[s.train.labels == 3])
    stacked_sevens = data.as_float(s.train.images[s.train.labels == 7])
    assert stacked_threes.shape == (6131, 28, 28)
    mean3, mean7 = stacked_threes.mean(0), stacked_sevens.mean(0)
    valid_3_tens = data.as_float(s.valid.images[s.valid.labels == 3])
    valid_7_tens = data.as_float(s.valid.images[s.valid.labels == 7])
    assert (valid_3_tens.shape, valid_7_tens.shape) == ((1010, 28, 28), (1028, 28, 28))
    accuracy_3s = is_3(valid_3_tens, mean3, mean7).mean()
    accuracy_7s = (1 - is_3(valid_7_tens, mean3, mean7)).mean()
    assert (round(float(accuracy_3s), 4), round(float(accuracy_7s), 4)) == (0.9168, 0.9854)
    assert round(float((accuracy_3s + accuracy_7s) / 2), 4) == 0.9511


class PrototypeTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_fit_prototypes_is_the_class_mean(self):
        rng = np.random.default_rng(0)
        x, y = rng.random((40, 6, 5), np.float32), rng.integers(0, 4, 40).astype(np.int32)
        got = self.variant(fit_prototypes)(x, y, jnp.array([3, 0, 2]))
        chex.assert_shape(got, (3, 6, 5))
        for row, c in zip(got, (3, 0, 2)):
            np.testing.assert_allclose(row, x[y == c].mean(0), rtol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_classify_picks_the_nearest(self):
        protos = jnp.stack([jnp.zeros((4, 4)), jnp.ones((4, 4))])
        x = jnp.stack([jnp.full((4, 4), v) for v in (0.1, 0.9, 0.4, 0.6)])
        pred = self.variant(classify, static_argnames="distance")(x, protos, jnp.array([3, 7]), distance=rmse)
        np.testing.assert_array_equal(pred, [3, 7, 3, 7])
        assert pred.dtype == jnp.int32
        with pytest.raises(AssertionError, match="shape prefix"):  # a label per prototype, not per class wanted
            self.variant(classify)(x, protos, jnp.array([3, 7, 9]))

    @chex.variants(with_jit=True, without_jit=True)
    def test_is_3_single_and_batch(self):
        mean3, mean7 = jnp.zeros((28, 28)), jnp.ones((28, 28))
        fn = self.variant(is_3)
        assert bool(fn(jnp.full((28, 28), 0.2), mean3, mean7))
        chex.assert_shape(fn(jnp.zeros((5, 28, 28)), mean3, mean7), (5,))


def test_research_variants_plug_in(tiny):
    """Cosine distance, and k-means centroids per class, each by changing one argument."""
    s = data.mnist_sample(tiny, range(10))
    x, y = data.as_float(s.train.images), jnp.asarray(s.train.labels)
    xv, yv = data.as_float(s.valid.images), jnp.asarray(s.valid.labels)
    classes = jnp.arange(10)
    means = fit_prototypes(x, y, classes)
    acc_l1 = metrics.accuracy(classify(xv, means, classes), yv)
    acc_cos = metrics.accuracy(classify(xv, means, classes, cosine), yv)
    protos, labels = kmeans_prototypes(jax.random.key(0), x, y, classes, k=4, iters=5)
    chex.assert_shape([protos, labels], [(40, 28, 28), (40,)])
    acc_km = metrics.accuracy(classify(xv, protos, labels), yv)
    assert min(acc_l1, acc_cos, acc_km) > 0.5  # far above chance (0.1)
    assert acc_km > acc_l1  # more prototypes per class help nearest-prototype classification
    again, _ = kmeans_prototypes(jax.random.key(0), x, y, classes, k=4, iters=5)
    np.testing.assert_array_equal(protos, again)  # same key, same centroids


def test_all_ten_digits_on_full_mnist(mnist):
    report = reports.baseline(mnist, tuple(range(10)), "rmse")
    r = report.summary
    assert r["n_valid"] == 10000 and len(r["per_class_accuracy"]) == 10
    assert 0.80 < r["accuracy"] < 0.84  # nearest mean image: 0.8203 measured with RMSE
    assert np.asarray(r["confusion_matrix"]).sum() == 10000
    assert set(plots.baseline_figures(report)) == {"prototypes", "pixels", "confusion"}


def test_pixel_text_is_the_books_slice(mnist):
    s = data.mnist_sample(mnist)
    im3 = s.train.images[1]
    text = plots.pixel_text(im3, (4, 10), (4, 10)).splitlines()
    assert text[2].split()[1:] == ["0", "0", "0", "0", "0", "29"]  # row 5, as in the book
    assert text[4].split()[1:] == ["0", "93", "244", "249", "253", "187"]


def test_cli_baseline_json(mnist_dir, tmp_path):
    out = json.loads(run_cli("baseline", "--data-dir", str(mnist_dir), "--json", "--figures", str(tmp_path)).stdout)
    for key in ("dataset", "classes", "distance", "per_class_accuracy", "balanced_accuracy", "accuracy", "n_valid"):
        assert key in out
    assert out["dataset"] == "mnist" and out["per_class_accuracy"]["3"] == pytest.approx(0.9168, abs=5e-5)
    assert (tmp_path / "confusion.png").stat().st_size > 1000


def test_cli_baseline_human_shows_the_book_beside_ours():
    out = run_cli("baseline", "--dataset", "tiny").stdout
    assert "pixel similarity (l1) on tiny" in out and "0.9511" in out


def test_nearest_is_jit_compiled_once_per_shape(tiny):
    x = data.as_float(tiny.test.images[:10])
    nearest(x, x[:3])
    before = nearest._cache_size()
    nearest(x + 0.1, x[3:6])
    assert nearest._cache_size() == before


def _knn_reference(train, labels, test, k, distance, weighted):
    """k-NN in NumPy, float64 (exact integers for L2 and L1): the nearest first, ties to the first image."""
    a, b = test.reshape(len(test), -1).astype(np.int64), train.reshape(len(train), -1).astype(np.int64)
    if distance == "l2":
        d = np.sqrt((a**2).sum(1)[:, None] + (b**2).sum(1)[None] - 2 * a @ b.T)
    elif distance == "l1":
        d = np.stack([np.abs(row - b).sum(-1) for row in a])  # a row at a time: (N, M, D) int64 would be gigabytes
    else:
        d = 1 - a @ b.T / (np.linalg.norm(a, axis=1)[:, None] * np.linalg.norm(b, axis=1)[None])
    idx = np.argsort(d, 1, kind="stable")[:, :k]
    w = 1 / (np.take_along_axis(d, idx, 1) + 1e-6) if weighted else np.broadcast_to(1 + 1e-3 / (1 + np.arange(k)), idx.shape)
    scores = np.zeros((len(test), 10))
    np.add.at(scores, (np.arange(len(test))[:, None], labels[idx]), w)
    return scores.argmax(1)


@pytest.mark.parametrize("k, distance, weighted", [(1, "l2", False), (3, "l2", False), (5, "l2", True), (3, "cosine", False),
                                                   (1, "l1", False), (4, "l1", True)])
def test_knn_against_numpy(tiny, k, distance, weighted):
    train, labels, test = tiny.train.images[:3000], tiny.train.labels[:3000], tiny.test.images[:130]
    got = knn(jnp.asarray(train), jnp.asarray(labels), jnp.asarray(test), 10, k, distance, weighted, chunk=50)
    chex.assert_shape(got, (130,))
    np.testing.assert_array_equal(got, _knn_reference(train, labels, test, k, distance, weighted))


def test_knn_reproduces_lecuns_table(mnist):
    """1-NN with L2 on full MNIST: 3.09 % test error, as LeCun's table gives it; deskewed: better, as there."""
    plain = reports.knn(mnist, tuple(range(10)))
    assert plain["accuracy"] == plain["lecun"] == 0.9691
    deskewed = reports.knn(mnist, tuple(range(10)), deskew=True)
    assert deskewed["lecun"] == 0.976 and deskewed["accuracy"] > 0.98, deskewed["accuracy"]  # 0.9844 here


def test_knn_command(tmp_path):
    out = json.loads(run_cli("knn", "--dataset", "tiny", "--k", "3", "--weighted", "--deskew", "--classes", "3,7",
                             "--json").stdout)
    assert {"accuracy", "per_class_accuracy", "k", "distance", "seconds"} <= set(out)
    assert (out["k"], out["distance"], out["weighted"], out["deskew"]) == (3, "l2", True, True)
    assert set(out["per_class_accuracy"]) == {"3", "7"} and out["accuracy"] > 0.95 and "lecun" not in out
    err = run_cli("knn", "--dataset", "tiny", "--k", "0", check_rc=2).stderr
    assert err.count("\n") == 1 and "--k" in err
