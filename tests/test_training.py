"""Training: the chapter's definitions by hand, scan == Python loop, shuffling, variants, sweeps,
checkpoints that survive a real kill, divergence, and the CLI."""

import json
import signal
import subprocess
import sys
import os
import time

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mnistjax import checkpoint, data, losses, models, training
from mnistjax.errors import MnistjaxError
from mnistjax.training import (BasicOptim, Learner, batch_indices, data_from, fit, init, init_many, predict,
                               train_epoch, train_step, weighted)
from tests_helpers import run_cli


@pytest.fixture(scope="module")
def d37(tiny):
    return data_from(data.mnist_sample(tiny, (3, 7)))


@pytest.fixture(scope="module")
def d10(tiny):
    return data_from(data.mnist_sample(tiny, range(10)))


def test_mnist_loss_and_batch_accuracy_by_hand():
    # the book's example: targets [1, 0, 1], predictions [0.9, 0.4, 0.2] after the sigmoid
    logits = jnp.log(jnp.array([0.9, 0.4, 0.2]) / (1 - jnp.array([0.9, 0.4, 0.2])))
    targets = jnp.array([1, 0, 1])
    np.testing.assert_allclose(losses.mnist_loss(logits, targets), (0.1 + 0.4 + 0.8) / 3, rtol=1e-5)
    np.testing.assert_allclose(losses.batch_accuracy(logits, targets), 2 / 3, rtol=1e-6)
    with pytest.raises(AssertionError):
        losses.mnist_loss(jnp.zeros(3), jnp.zeros(4))


def test_cross_entropy_is_optax():
    logits, labels = jnp.array([[2.0, 1.0, 0.1], [0.0, 0.0, 3.0]]), jnp.array([0, 2])
    by_hand = -np.mean([jax.nn.log_softmax(logits[0])[0], jax.nn.log_softmax(logits[1])[2]])
    np.testing.assert_allclose(losses.cross_entropy(logits, labels), by_hand, rtol=1e-6)


class WeightedLossTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_weighted_is_the_mean_over_the_weighted_examples(self):
        logits, y = jax.random.normal(jax.random.key(0), (8,)), jnp.array([0, 1] * 4)
        w = jnp.array([1.0] * 5 + [0.0] * 3)  # a batch of 5 padded to 8
        got = self.variant(weighted(losses.binary.loss))(logits, y, w)
        np.testing.assert_allclose(got, losses.binary.loss(logits[:5], y[:5]), rtol=1e-6)
        k_logits = jax.random.normal(jax.random.key(1), (8, 3))
        np.testing.assert_allclose(self.variant(weighted(losses.cross_entropy))(k_logits, y, jnp.ones(8)),
                                   losses.cross_entropy(k_logits, y), rtol=1e-6)


class ModelShapeTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_models_output_shapes(self):
        x = jnp.zeros((5, 28, 28))
        for name, n_out, shape in [("linear", 1, (5,)), ("simple_net", 1, (5,)), ("mlp", 10, (5, 10)),
                                   ("cnn", 10, (5, 10)), ("cnn", 1, (5,))]:
            m = models.build(name, n_out)
            chex.assert_shape(self.variant(m.apply)(m.init(jax.random.key(0)), x), shape)

    @chex.variants(with_jit=True, without_jit=True)
    def test_conv_as_patches_and_matmul_is_a_convolution(self):
        for k, stride, c_in, size in [(5, 2, 1, 28), (3, 2, 4, 14), (3, 1, 2, 7)]:
            x = jax.random.normal(jax.random.key(0), (2, size, size, c_in))
            p = models.draw(jax.random.key(1), models.conv_spec(c_in, 3, k))
            with jax.default_matmul_precision("highest"):  # on a GPU both would otherwise round to TF32, differently
                ours = self.variant(models.conv, static_argnums=(2, 3))(p, x, k, stride)
                ref = jax.lax.conv_general_dilated(x, p["w"].reshape(k, k, c_in, 3), (stride, stride),
                                                   [(k // 2, k // 2)] * 2, dimension_numbers=("NHWC", "HWIO", "NHWC")) + p["b"]
            chex.assert_trees_all_close(ours, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n", [1, 6, 7, 8, 20])
def test_predict_in_chunks_equals_one_apply(n):
    m = models.simple_net()
    params, x = m.init(jax.random.key(0)), jax.random.uniform(jax.random.key(n), (n, 28, 28))
    chex.assert_trees_all_close(predict(params, x, m, chunk=7), m.apply(params, x), rtol=1e-5, atol=1e-6)


def test_torch_default_init_bounds():
    p = models.simple_net().init(jax.random.key(0))
    assert float(jnp.abs(p["layer0"]["w"]).max()) <= 1 / np.sqrt(784)
    assert float(jnp.abs(p["layer1"]["w"]).max()) <= 1 / np.sqrt(30)
    assert float(jnp.abs(p["layer1"]["w"]).max()) > 0.9 / np.sqrt(30)
    cnn = models.cnn().init(jax.random.key(0))  # every tensor its own fan-in, though drawn in one call
    for name, fan_in in [("conv1", 25), ("conv2", 32 * 9), ("fc1", 64 * 49), ("fc2", 128)]:
        for leaf in cnn[name].values():
            assert 0.9 / np.sqrt(fan_in) < float(jnp.abs(leaf).max()) <= 1 / np.sqrt(fan_in), name
    book = models.linear(init=models.book_init(1.0)).init(jax.random.key(0))
    assert 0.9 < float(book["layer0"]["w"].std()) < 1.1


@pytest.mark.parametrize("n,b,drop", [(10, 3, False), (10, 3, True), (12, 4, False), (5, 8, False)])
def test_shuffle_covers_every_example_once(n, b, drop):
    full, rest = batch_indices(jax.random.key(1), n, b, drop)
    seen = np.concatenate([np.asarray(full).ravel(), np.asarray(rest)])
    assert len(set(seen.tolist())) == len(seen) == ((n // b) * b if drop else n)  # no repeats, nothing lost
    assert set(seen.tolist()) <= set(range(n))
    if not drop:
        assert sorted(seen.tolist()) == list(range(n))
    assert full.shape == (n // b, b) and rest.shape == ((0,) if drop else (n % b,))
    other, _ = batch_indices(jax.random.key(2), n, b, drop)
    assert n < b or not np.array_equal(full, other)  # a new key, a new order


def test_one_scanned_epoch_equals_a_python_loop(d37):
    learner = Learner(models.simple_net(), losses.binary, BasicOptim(0.1), d37, batch_size=300)
    params, state = init(learner, jax.random.key(0))
    key = jax.random.key(5)
    scanned, _, _ = jax.jit(lambda p, s: train_epoch(p, s, key, learner))(params, state)
    full, rest = batch_indices(key, d37.x_train.shape[0], 300)
    for idx in [*full, rest]:
        params, state, _ = train_step(params, state, d37.x_train[idx], d37.y_train[idx], learner)
    chex.assert_trees_all_close(scanned, params, rtol=1e-5, atol=1e-6)


def test_unshuffled_epoch_walks_the_data_in_order_as_the_book(d37):
    full, rest = batch_indices(jax.random.key(1), 10, 3, shuffle=False)
    assert np.asarray(full).tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]] and np.asarray(rest).tolist() == [9]
    learner = Learner(models.linear(), losses.binary, BasicOptim(1.0), d37, batch_size=300, shuffle=False)
    params, state = init(learner, jax.random.key(0))
    epoch = jax.jit(lambda p, s, k: train_epoch(p, s, k, learner))
    ordered, _, _ = epoch(params, state, jax.random.key(5))
    for start in range(0, d37.x_train.shape[0], 300):  # the book's loop: consecutive slices
        sl = slice(start, start + 300)
        params, state, _ = train_step(params, state, d37.x_train[sl], d37.y_train[sl], learner)
    chex.assert_trees_all_close(ordered, params, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_equal(ordered, epoch(*init(learner, jax.random.key(0)), jax.random.key(6))[0])  # key unused


def test_fit_returns_the_validation_logits_of_its_params(d37):
    learner = Learner(models.simple_net(), losses.binary, optax.sgd(0.1), d37)
    r = fit(learner, 2, jax.random.key(0), progress=False)
    chex.assert_trees_all_close(r.valid_logits, predict(r.params, d37.x_valid, learner.model), rtol=1e-5, atol=1e-6)
    assert fit(learner, 2, jax.random.key(0), params=r.params, opt_state=r.opt_state, start_epoch=2,
               progress=False).valid_logits is None  # nothing ran


def test_basic_optim_trains_exactly_like_optax_sgd(d37):
    runs = [fit(Learner(models.linear(), losses.binary, opt, d37), 2, jax.random.key(0), progress=False)
            for opt in (BasicOptim(1.0), optax.sgd(1.0))]
    chex.assert_trees_all_close(runs[0].params, runs[1].params, rtol=1e-6)


@pytest.mark.parametrize("name,epochs,opt,floor", [("linear", 5, optax.sgd(1.0), 0.93),
                                                   ("simple_net", 10, optax.sgd(0.1), 0.9),
                                                   ("cnn", 2, optax.adam(1e-3), 0.9)])
def test_short_runs_learn_on_the_embedded_sample(d37, name, epochs, opt, floor):
    r = fit(Learner(models.build(name, 1), losses.binary, opt, d37), epochs, jax.random.key(0), progress=False)
    assert r.history[-1]["train_loss"] < r.history[0]["train_loss"]
    assert r.history[-1]["valid_accuracy"] > floor


def test_ten_digits_and_swapping_one_argument(d10):
    base = Learner(models.build("mlp", 10), losses.task_for(10), optax.adam(1e-3), d10)
    variants = {"base": base,
                "optimizer": base._replace(optimizer=optax.sgd(0.1, momentum=0.9)),
                "model": base._replace(model=models.linear(n_out=10)),
                "loss": base._replace(task=base.task._replace(
                    loss=lambda logits, y: optax.sigmoid_focal_loss(logits, jax.nn.one_hot(y, 10)).mean()))}
    for name, learner in variants.items():
        r = fit(learner, 2, jax.random.key(0), progress=False)
        assert r.history[-1]["valid_accuracy"] > 0.7, name  # chance is 0.1


def test_same_seed_same_numbers(d37):
    a, b = (fit(Learner(models.simple_net(), losses.binary, optax.sgd(0.1), d37), 3, jax.random.key(7),
                progress=False) for _ in range(2))
    assert a.history == b.history
    chex.assert_trees_all_equal(a.params, b.params)


def test_fitting_a_learner_again_reuses_its_program_with_the_new_data(d37):
    def learner(d):
        return Learner(models.linear(), losses.binary, optax.sgd(1.0), d, shuffle=False)

    first = learner(d37)
    fit(first, 1, jax.random.key(0), progress=False)
    flipped = d37._replace(x_train=d37.x_train[::-1], y_train=d37.y_train[::-1])  # same shapes, other batches
    hits = training._compiled_epoch.cache_info().hits
    again = fit(first._replace(data=flipped), 1, jax.random.key(0), progress=False)
    assert training._compiled_epoch.cache_info().hits == hits + 1
    fresh = fit(learner(flipped), 1, jax.random.key(0), progress=False)  # new functions: compiled anew
    chex.assert_trees_all_equal(again.params, fresh.params)
    assert again.history == fresh.history


def test_vmap_over_seeds_equals_separate_runs(d37):
    learner = Learner(models.simple_net(), losses.binary, optax.sgd(0.1), d37)
    keys = jax.random.split(jax.random.key(0), 3)
    many = fit(learner, 2, keys, n_models=3, progress=False)
    for i in range(3):
        one = fit(learner, 2, keys[i], progress=False)
        chex.assert_trees_all_close(jax.tree.map(lambda x: x[i], many.params), one.params, rtol=1e-4, atol=1e-5)
    assert len(many.history[-1]["valid_accuracy"]) == 3


def test_vmap_over_learning_rates(d37):
    learner = Learner(models.linear(), losses.binary, optax.inject_hyperparams(optax.sgd)(learning_rate=0.1), d37)
    keys = jnp.stack([jax.random.key(0)] * 3)
    params, state = init_many(learner, keys, jnp.array([1e-4, 1e-1, 1.0]))
    r = fit(learner, 2, keys, params=params, opt_state=state, n_models=3, progress=False)
    acc = r.history[-1]["valid_accuracy"]
    assert acc[0] < acc[1] <= acc[2] + 0.01  # a tiny rate has barely moved


def test_divergence_stops_and_keeps_finite_params(d37):
    learner = Learner(models.simple_net(n_out=2), losses.multiclass._replace(n_out=2), optax.sgd(1e30), d37)
    r = fit(learner, 5, jax.random.key(0), progress=False)
    assert r.diverged_at == 1 and r.history == []
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(r.params))


def test_cli_divergence_exits_3_naming_the_epoch():
    proc = run_cli("train", "--dataset", "tiny", "--lr", "1e30", "--loss", "cross_entropy", "--epochs", "3", "--json",
                   check_rc=3)
    assert proc.stderr.strip().splitlines()[-1].startswith("mnistjax: error: training diverged at epoch 1")
    assert json.loads(proc.stdout)["diverged_at"] == 1


def test_cli_train_json_and_figures(tmp_path):
    out = json.loads(run_cli("train", "--dataset", "tiny", "--model", "linear", "--lr", "1", "--epochs", "3",
                             "--no-shuffle", "--json", "--figures", str(tmp_path)).stdout)
    assert out["shuffle"] is False
    for key in ("dataset", "model", "classes", "epochs", "valid_accuracy", "history", "compile_seconds", "train_seconds"):
        assert key in out
    assert out["dataset"] == "tiny" and len(out["history"]) == 3
    assert set(out["history"][0]) == {"epoch", "train_loss", "valid_loss", "valid_accuracy"}
    assert {p.name for p in tmp_path.iterdir()} == {"loss.png", "accuracy.png", "confusion.png", "top_wrong.png"}


def _checkpoint_leaves(folder):
    with np.load(folder / checkpoint.FILENAME) as z:
        return {k: z[k] for k in z.files if k != "meta"}, json.loads(str(z["meta"]))


def test_killed_and_resumed_run_is_bit_identical(tmp_path):
    args = ["train", "--dataset", "tiny", "--model", "simple_net", "--epochs", "400", "--json"]
    run_cli(*args, "--checkpoint-dir", str(tmp_path / "whole"))
    env = {**os.environ}
    proc = subprocess.Popen([sys.executable, "-m", "mnistjax.cli", *args, "--checkpoint-dir", str(tmp_path / "cut")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = tmp_path / "cut" / checkpoint.FILENAME
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (ckpt.exists() and _checkpoint_leaves(tmp_path / "cut")[1]["epoch"] >= 20):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = _checkpoint_leaves(tmp_path / "cut")[1]["epoch"]
    assert proc.returncode == -signal.SIGKILL and killed_at < 400, "the run finished before the kill"
    run_cli(*args, "--checkpoint-dir", str(tmp_path / "cut"), "--resume")
    whole, meta_whole = _checkpoint_leaves(tmp_path / "whole")
    resumed, meta_resumed = _checkpoint_leaves(tmp_path / "cut")
    assert meta_resumed["epoch"] == 400 and meta_resumed["history"] == meta_whole["history"]
    for k in whole:
        np.testing.assert_array_equal(whole[k], resumed[k])


def test_corrupt_and_mismatched_checkpoints_are_clear_errors(tmp_path):
    base = ["train", "--dataset", "tiny", "--model", "linear", "--epochs", "2", "--checkpoint-dir", str(tmp_path)]
    run_cli(*base)
    proc = run_cli(*base, "--resume", "--model", "simple_net", check_rc=2)
    assert "checkpoint is of another run (model: saved 'linear', now 'simple_net')" in proc.stderr
    (tmp_path / checkpoint.FILENAME).write_bytes(b"not a zip")
    proc = run_cli(*base, "--resume", check_rc=2)
    assert "corrupt checkpoint" in proc.stderr and proc.stderr.count("\n") == 1
    proc = run_cli("train", "--dataset", "tiny", "--resume", "--checkpoint-dir", str(tmp_path / "none"), check_rc=2)
    assert "no checkpoint at" in proc.stderr


def test_mnist_loss_needs_two_classes():
    with pytest.raises(MnistjaxError, match="needs exactly two classes"):
        from mnistjax import reports
        reports.train(data.load_tiny(), "linear", (1, 2, 3), loss="mnist_loss", progress=False)


def test_cli_seeds_and_lrs_train_together():
    out = json.loads(run_cli("train", "--dataset", "tiny", "--seeds", "0,1,2", "--epochs", "2", "--json").stdout)
    assert out["n_models"] == 3 and [r["seed"] for r in out["runs"]] == [0, 1, 2]
    accs = [r["valid_accuracy"] for r in out["runs"]]
    assert out["valid_accuracy_mean"] == pytest.approx(np.mean(accs)) and out["valid_accuracy_std"] == pytest.approx(np.std(accs))
    alone = json.loads(run_cli("train", "--dataset", "tiny", "--seed", "1", "--epochs", "2", "--json").stdout)
    assert out["runs"][1]["valid_accuracy"] == pytest.approx(alone["valid_accuracy"], abs=2e-3)
    sweep = json.loads(run_cli("train", "--dataset", "tiny", "--model", "linear", "--lrs", "0.0001,1", "--epochs", "2",
                               "--json").stdout)
    assert [r["lr"] for r in sweep["runs"]] == [0.0001, 1.0]
    assert sweep["runs"][0]["valid_accuracy"] < sweep["runs"][1]["valid_accuracy"]


@pytest.mark.parametrize("args,message", [(["--lrs", "0.1,x"], "expected a comma list of floats"),
                                          (["--seeds", "0,1", "--figures", "f"], "work with one run"),
                                          (["--seeds", "0,1", "--lrs", "0.1,0.2,0.3"], "as many seeds as")])
def test_cli_sweep_errors(args, message):
    proc = run_cli("train", "--dataset", "tiny", "--epochs", "1", *args, check_rc=2)
    assert message in proc.stderr and proc.stderr.count("\n") == 1


def test_persistent_compile_cache_is_used_and_can_be_turned_off(tmp_path):
    args = ["train", "--dataset", "tiny", "--epochs", "1", "--json", "--compile-cache", str(tmp_path / "xla")]
    run_cli(*args)
    entries = sorted(p.name for p in (tmp_path / "xla").iterdir())
    assert entries
    run_cli(*args)
    assert sorted(p.name for p in (tmp_path / "xla").iterdir()) == entries  # all reused, nothing compiled anew
    run_cli("train", "--dataset", "tiny", "--epochs", "1", "--no-compile-cache", "--compile-cache", str(tmp_path / "off"))
    assert not (tmp_path / "off").exists()


def test_random_shift_moves_images_and_keeps_shape():
    from mnistjax.training import random_shift

    x = jnp.zeros((4, 28, 28)).at[:, 14, 14].set(1.0)
    out = random_shift(2)(jax.random.key(0), x)
    chex.assert_shape(out, (4, 28, 28))
    rows, cols = np.nonzero(np.asarray(out).sum(0))
    assert np.asarray(out).sum() == 4 and all(12 <= r <= 16 for r in rows) and all(12 <= c <= 16 for c in cols)
    np.testing.assert_array_equal(out, random_shift(2)(jax.random.key(0), x))


def test_augmented_training_learns(d37):
    from mnistjax.training import random_shift

    r = fit(Learner(models.simple_net(), losses.binary, optax.sgd(0.1), d37, augment=random_shift(1)), 5,
            jax.random.key(0), progress=False)
    assert r.history[-1]["valid_accuracy"] > 0.9


def test_same_batches_trains_each_model_like_alone_with_the_first_keys_batches(d37):
    learner = Learner(models.simple_net(), losses.binary, optax.sgd(0.1), d37)
    keys = jax.random.split(jax.random.key(0), 3)
    many = fit(learner, 2, keys, n_models=3, same_batches=True, progress=False)
    for i in range(3):  # model i: its own init, the batches of keys[0]
        params, state = init(learner, keys[i])
        one = fit(learner, 2, keys[0], params=params, opt_state=state, progress=False)
        chex.assert_trees_all_close(jax.tree.map(lambda x: x[i], many.params), one.params, rtol=1e-4, atol=1e-5)


def test_time_to_accuracy_recipe_runs_with_its_channels(tiny):
    from mnistjax import reports

    r = reports.train(tiny, classes=tuple(range(10)), progress=False, **{**reports.FAST_CNN10, "epochs": 1})
    assert r["channels"] == [24, 48] and r["batch_size"] == 120 and r["valid_accuracy"] > 0.5
