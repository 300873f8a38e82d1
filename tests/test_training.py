"""Training: scan == Python loop, shuffling and padding, models with state and randomness, K models in
one vmap == K runs, per-step losses, the checks before training, divergence."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mnistjax import augment, data, layers, losses, lr_finder, models, training
from mnistjax.errors import MnistjaxError
from mnistjax.batches import batch_indices
from mnistjax.data import data_from
from mnistjax.sgd import sgd
from mnistjax.training import (Learner, TrainState, calc_grad, fit, init, init_many, predict, train_epoch,
                               train_step)


@pytest.fixture(scope="module")
def d37(tiny):
    return data_from(data.mnist_sample(tiny, (3, 7)))


@pytest.fixture(scope="module")
def d10(tiny):
    return data_from(data.mnist_sample(tiny, range(10)))


def dropout_net(n_out=1):
    return layers.sequential(layers.flatten(), layers.dense(784, 32), layers.relu(), layers.dropout(0.3),
                             layers.dense(32, n_out))


def bn_net(n_out=1):
    return layers.sequential(layers.flatten(), layers.dense(784, 16), layers.batch_norm(16), layers.relu(),
                             layers.dense(16, n_out))


class WeightedLossTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_a_padded_batch_weighted_is_the_short_batchs_mean(self):
        m = models.simple_net()
        params, state = layers.init(m, jax.random.key(0))
        x, y = jax.random.uniform(jax.random.key(1), (8, 28, 28)), jnp.array([0, 1] * 4)
        w = jnp.array([1.0] * 5 + [0.0] * 3)  # a batch of 5 padded to 8
        grad = self.variant(calc_grad, static_argnums=(4, 5))
        padded = grad(params, state, x, y, m, losses.binary.loss, None, w)
        short = grad(params, state, x[:5], y[:5], m, losses.binary.loss)
        chex.assert_trees_all_close(padded, short, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("n,b,drop", [(10, 3, False), (10, 3, True), (12, 4, False), (5, 8, False)])
def test_every_example_once_per_epoch_and_the_last_batch_filled_with_real_ones(n, b, drop):
    idx, w = batch_indices(jax.random.key(1), n, b, drop)
    idx, w = np.asarray(idx), np.asarray(w)
    steps = n // b if drop else -(-n // b)
    assert idx.shape == w.shape == (steps, b)
    counted = idx[w == 1]
    assert len(set(counted.tolist())) == len(counted) == (steps * b if drop else n)  # no repeats, nothing lost
    assert set(idx.ravel().tolist()) <= set(range(n))
    if not drop and n % b:  # the filler: the epoch's first examples again, weighted 0
        np.testing.assert_array_equal(idx.ravel()[n:], np.resize(idx.ravel()[:n], steps * b)[n:])
    other, _ = batch_indices(jax.random.key(2), n, b, drop)
    assert not np.array_equal(idx, other)  # a new key, a new order
    ordered, _ = batch_indices(jax.random.key(1), 10, 3, shuffle=False)
    assert np.asarray(ordered).tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 0, 1]]


def test_one_scanned_epoch_equals_a_python_loop(d37):
    learner = Learner(models.simple_net(), losses.binary, sgd(0.1), batch_size=300)
    ts = init(learner, jax.random.key(0))
    key = jax.random.key(5)
    scanned, step_losses, _ = jax.jit(lambda ts: train_epoch(ts, key, key, learner, d37))(ts)
    idx, w = batch_indices(key, d37.x_train.shape[0], 300)
    for i, (rows, weights) in enumerate(zip(idx, w)):
        rows = rows[weights == 1]
        ts, loss = train_step(ts, d37.x_train[rows], d37.y_train[rows], learner)
        np.testing.assert_allclose(step_losses[i], loss, rtol=1e-5)
    chex.assert_trees_all_close(scanned, ts, rtol=1e-5, atol=1e-6)


def test_a_convolutional_epoch_a_step_a_call_equals_the_scan(d37):
    """fit's route for a convolutional net on the CPU with JAX >= 0.12: XLA's own convolutions, a
    compiled step a call. The same keys, batches, augmentation and dropout as the scanned epoch, the
    same numbers up to rounding (here on any JAX)."""
    L = layers
    model = L.sequential(L.reshape(28, 28, 1), L.conv(1, 4, 3, 2, 1, bias=False), L.batch_norm(4), L.relu(),
                         L.residual(L.conv(4, 4, 3, padding=1)), L.dropout(0.2), L.flatten(), L.dense(14 * 14 * 4, 1))
    fast = L.xla_convolutions(model)
    assert L.xla_convolutions(models.simple_net()) is None
    learner = Learner(model, losses.binary, optax.adam(1e-2), batch_size=100, augment=augment.random_shift(2))
    ts, key = init(learner, jax.random.key(0)), jax.random.key(5)
    d37 = d37._replace(x_train=d37.x_train[:250], y_train=d37.y_train[:250])  # 3 steps, the last partial
    chex.assert_trees_all_close(fast.apply(ts.params, ts.model_state, d37.x_valid, None, False),
                                model.apply(ts.params, ts.model_state, d37.x_valid, None, False), rtol=1e-4, atol=1e-5)
    folded = jax.random.fold_in(key, 3)
    scanned, losses_, _ = jax.jit(lambda ts: train_epoch(ts, folded, folded, learner, d37))(ts)
    stepped, stats, _ = training._Steps.jitted(learner, fast)(ts, key, key, 3, d37)
    np.testing.assert_allclose(stats["step_losses"], losses_, rtol=1e-4)
    chex.assert_trees_all_close(stepped, scanned, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(stats["valid_loss"], training.validate_epoch(stepped, learner, d37)["valid_loss"], rtol=1e-4)


def test_unshuffled_epoch_walks_the_data_in_order_as_the_book(d37):
    learner = Learner(models.linear(), losses.binary, sgd(1.0), batch_size=300, shuffle=False)
    ts = init(learner, jax.random.key(0))
    epoch = jax.jit(lambda ts, k: train_epoch(ts, k, k, learner, d37)[0])
    ordered = epoch(ts, jax.random.key(5))
    for start in range(0, d37.x_train.shape[0], 300):  # the book's loop: consecutive slices
        sl = slice(start, start + 300)
        ts, _ = train_step(ts, d37.x_train[sl], d37.y_train[sl], learner)
    chex.assert_trees_all_close(ordered, ts, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_equal(ordered, epoch(init(learner, jax.random.key(0)), jax.random.key(6)))  # key unused


def test_fit_history_step_losses_and_validation_logits(d37):
    learner = Learner(models.simple_net(), losses.binary, optax.sgd(0.1))
    r = fit(learner, d37, 2, jax.random.key(0), progress=False)
    assert [set(row) for row in r.history] == [{"epoch", "train_loss", "step_losses", "valid_loss", "valid_accuracy"}] * 2
    steps = r.history[0]["step_losses"]
    assert len(steps) == 7 and np.isclose(r.history[0]["train_loss"], (np.sum(steps[:6]) * 256 + steps[6] * 64) / 1600)
    chex.assert_trees_all_close(r.valid_logits, predict(r.state.params, r.state.model_state, d37.x_valid, learner.model),
                                rtol=1e-5, atol=1e-6)
    again = fit(learner, d37, 2, jax.random.key(0), start=r.state, history=r.history, progress=False)
    assert again.valid_logits is None and again.history == r.history  # nothing left to run


def test_the_hand_written_sgd_trains_exactly_like_optax_sgd(d37):
    runs = [fit(Learner(models.linear(), losses.binary, opt), d37, 2, jax.random.key(0), progress=False)
            for opt in (sgd(1.0), optax.sgd(1.0))]
    chex.assert_trees_all_close(runs[0].state.params, runs[1].state.params, rtol=1e-6)


@pytest.mark.parametrize("name,args,epochs,opt,batch,floor", [
    ("linear", {}, 5, optax.sgd(1.0), 256, 0.93), ("simple_net", {}, 10, optax.sgd(0.1), 256, 0.9),
    ("cnn", {}, 2, optax.adam(1e-3), 256, 0.9), ("fast_cnn", {}, 2, optax.adam(1e-3), 128, 0.9),
    ("fast_cnn_bn", {}, 2, optax.adam(1e-3), 128, 0.9),
    ("cnn_bn", {}, 2, optax.adam(1e-3), 256, 0.9),
    ("resnet", {"channels": (8, 16, 16)}, 3, optax.adam(1e-3), 64, 0.9)])  # running statistics need steps to catch up
def test_short_runs_learn_on_the_embedded_sample(d37, name, args, epochs, opt, batch, floor):
    r = fit(Learner(models.build(name, 1, **args), losses.binary, opt, batch), d37, epochs, jax.random.key(0), progress=False)
    assert r.history[-1]["train_loss"] < r.history[0]["step_losses"][0]
    assert r.history[-1]["valid_accuracy"] > floor


def test_ten_digits_and_swapping_one_field(d10):
    base = Learner(models.mlp(10), losses.multiclass(10), optax.adam(1e-3))
    variants = {"base": base,
                "optimizer": base._replace(optimizer=optax.sgd(0.1, momentum=0.9)),
                "model": base._replace(model=models.linear(10)),
                "loss": base._replace(task=base.task._replace(
                    loss=lambda logits, y: optax.sigmoid_focal_loss(logits, jax.nn.one_hot(y, 10)).sum(-1)))}
    for name, learner in variants.items():
        r = fit(learner, d10, 2, jax.random.key(0), progress=False)
        assert r.history[-1]["valid_accuracy"] > 0.7, name  # chance is 0.1


def test_same_seed_same_numbers_also_with_dropout(d37):
    a, b = (fit(Learner(dropout_net(), losses.binary, optax.sgd(0.1)), d37, 3, jax.random.key(7), progress=False)
            for _ in range(2))
    assert a.history == b.history
    chex.assert_trees_all_equal(a.state.params, b.state.params)


def test_fitting_a_learner_again_reuses_its_program_with_the_new_data(d37):
    learner = Learner(models.linear(), losses.binary, optax.sgd(1.0), shuffle=False)
    fit(learner, d37, 1, jax.random.key(0), progress=False)
    flipped = d37._replace(x_train=d37.x_train[::-1], y_train=d37.y_train[::-1])  # same shapes, other batches
    hits = training._compiled_epoch.cache_info().hits
    again = fit(learner, flipped, 1, jax.random.key(0), progress=False)
    assert training._compiled_epoch.cache_info().hits == hits + 1
    fresh = fit(Learner(models.linear(), losses.binary, optax.sgd(1.0), shuffle=False), flipped, 1, jax.random.key(0),
                progress=False)  # a new model: compiled anew
    chex.assert_trees_all_equal(again.state.params, fresh.state.params)
    assert again.history == fresh.history


@pytest.mark.parametrize("net", [models.simple_net, dropout_net, bn_net])
def test_k_models_in_one_vmap_equal_k_separate_runs(d37, net):
    learner = Learner(net(), losses.binary, optax.sgd(0.1))
    keys = jax.random.split(jax.random.key(0), 4)
    many = fit(learner, d37, 2, keys, progress=False)
    for i in range(4):
        one = fit(learner, d37, 2, keys[i], progress=False)
        chex.assert_trees_all_close(jax.tree.map(lambda x: x[i], (many.state.params, many.state.model_state)),
                                    (one.state.params, one.state.model_state), rtol=1e-4, atol=1e-5)
    assert len(many.history[-1]["valid_accuracy"]) == 4


def test_same_batches_gives_every_model_the_first_keys_batches(d37):
    learner = Learner(dropout_net(), losses.binary, optax.sgd(0.1), same_batches=True)
    keys = jax.random.split(jax.random.key(0), 3)
    many = fit(learner, d37, 2, keys, progress=False)
    data_key, _ = training.stream_keys(keys[0])
    for i in range(3):  # model i: its own init and dropout, the batches of keys[0]
        ts, model_key = init(learner, keys[i]), training.stream_keys(keys[i])[1]
        for epoch in range(2):
            ts, _, _ = train_epoch(ts, jax.random.fold_in(data_key, epoch), jax.random.fold_in(model_key, epoch), learner, d37)
        chex.assert_trees_all_close(jax.tree.map(lambda x: x[i], many.state.params), ts.params, rtol=1e-4, atol=1e-5)


def test_vmap_over_learning_rates(d37):
    base = Learner(models.linear(), losses.binary, optax.sgd(0.1))
    learner = base._replace(vary=lambda h: base._replace(optimizer=optax.sgd(h["lr"])))  # each model's rate, traced
    keys = jnp.stack([jax.random.key(0)] * 3)
    r = fit(learner, d37, 2, keys, start=init_many(learner, keys, {"lr": [1e-4, 1e-1, 1.0]}), progress=False)
    acc = r.history[-1]["valid_accuracy"]
    assert acc[0] < acc[1] <= acc[2] + 0.01  # a tiny rate has barely moved


def test_evaluation_uses_running_statistics_and_no_dropout(d37):
    learner = Learner(layers.sequential(bn_net(), layers.dropout(0.5)), losses.binary, optax.sgd(0.1))
    r = fit(learner, d37, 1, jax.random.key(0), progress=False)
    assert jax.tree.leaves(r.state.model_state)  # the running statistics moved with training
    a = predict(r.state.params, r.state.model_state, d37.x_valid, learner.model)
    chex.assert_trees_all_equal(a, predict(r.state.params, r.state.model_state, d37.x_valid, learner.model))  # deterministic
    b = predict(r.state.params, r.state.model_state, d37.x_valid[:100], learner.model)  # each image alone, not batch statistics
    chex.assert_trees_all_close(a[:100], b, rtol=1e-5, atol=1e-5)


def test_augmentations_see_labels(d37):
    def mixup(key, xb, yb):  # a mixup-style variant in one function: blend each image with its neighbour
        lam = jax.random.uniform(key, (xb.shape[0], 1, 1), minval=0.8, maxval=1.0)
        return lam * xb + (1 - lam) * jnp.roll(xb, 1, 0), yb

    for each in (mixup, augment.random_shift(1)):
        r = fit(Learner(models.simple_net(), losses.binary, optax.sgd(0.1), augment=each), d37, 3, jax.random.key(0),
                progress=False)
        assert r.history[-1]["valid_accuracy"] > 0.9


def test_random_shift_moves_images_and_keeps_shape_and_labels():
    x = jnp.zeros((4, 28, 28)).at[:, 14, 14].set(1.0)
    y = jnp.arange(4)
    out, labels = augment.random_shift(2)(jax.random.key(0), x, y)
    chex.assert_shape(out, (4, 28, 28))
    rows, cols = np.nonzero(np.asarray(out).sum(0))
    assert np.asarray(out).sum() == 4 and all(12 <= r <= 16 for r in rows) and all(12 <= c <= 16 for c in cols)
    np.testing.assert_array_equal(labels, y)


@pytest.mark.parametrize("learner,epochs,message", [
    (Learner(models.simple_net(n_out=5), losses.multiclass(10), optax.sgd(0.1)), 1,
     "model: the model gives outputs of shape (5,) per image; the task expects (10,) (one logit per class)"),
    (Learner(models.simple_net(n_out=2), losses.binary, optax.sgd(0.1)), 1, "expects (1,) (one logit for mnist_loss)"),
    (Learner(models.simple_net(), losses.binary._replace(loss=lambda lg, y: losses.binary.loss(lg, y).mean()),
             optax.sgd(0.1)), 1, "loss: gives shape () for a batch of 2; expected one loss per example"),
    (Learner(models.simple_net(), losses.binary, optax.sgd(0.1), batch_size=5000), 1,
     "batch_size: 5000: expected 1 to 1600, the number of training images"),
    (Learner(models.simple_net(), losses.binary, optax.sgd(0.1)), 0, "epochs: 0: expected at least 1"),
])
def test_mistakes_are_caught_before_training(d37, learner, epochs, message):
    with pytest.raises(MnistjaxError) as e:
        fit(learner, d37, epochs, jax.random.key(0), progress=False)
    assert message in str(e.value)


def test_divergence_stops_one_model_and_lists_each_of_many(d37):
    learner = Learner(models.simple_net(n_out=2), losses.multiclass(2), optax.sgd(1e30))
    r = fit(learner, d37, 5, jax.random.key(0), progress=False)
    assert r.diverged_at == 1 and r.history == []
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(r.state.params))
    base = Learner(models.simple_net(n_out=2), losses.multiclass(2), optax.sgd(0.1))
    sweep = base._replace(vary=lambda h: base._replace(optimizer=optax.sgd(h["lr"])))
    keys = jnp.stack([jax.random.key(0)] * 2)
    many = fit(sweep, d37, 2, keys, start=init_many(sweep, keys, {"lr": [0.1, 1e30]}), progress=False)
    assert many.diverged_at == [None, 1] and len(many.history) == 2


def test_train_state_is_what_fit_returns(d37):
    r = fit(Learner(bn_net(), losses.binary, optax.adam(1e-3)), d37, 1, jax.random.key(0), progress=False)
    assert isinstance(r.state, TrainState) and jax.tree.leaves(r.state.model_state)


def test_lr_find_on_a_problem_with_known_curvature(d37):
    """A loss of curvature L: plain SGD converges for rates below 2/L and diverges above. The finder's
    suggestions are below 2/L, and its curve ends (4× the minimum) within a decade above it."""
    L = 100.0
    model = layers.Module({"w": layers.Param((1,), 1)}, {},
                          lambda p, s, x, key, train: (jnp.broadcast_to(p["w"], (x.shape[0], 1)), s))
    task = losses.binary._replace(loss=lambda logits, y: 0.5 * L * (logits[:, 0] - 3.0) ** 2)
    learner = Learner(model, task, optax.sgd(0.1), batch_size=16)
    r = lr_finder.lr_find(learner, d37, jax.random.key(0), lambda lr: optax.sgd(lr), 1e-5, 10.0, 100)
    assert r.lrs.shape == r.losses.shape == (100,) and r.lrs[0] == pytest.approx(1e-5) and r.lrs[-1] == pytest.approx(10)
    assert all(1e-4 < lr < 2 / L for lr in r.suggestions.values()), r.suggestions
    end = r.lrs[np.isfinite(r.losses)][-1]
    assert 2 / L < end < 20 / L
    many = lr_finder.lr_find(learner, d37, jax.random.split(jax.random.key(0), 3), lambda lr: optax.sgd(lr), 1e-5, 10.0, 100)
    assert many.losses.shape == (3, 100)


def test_lr_find_suggestion_rules_on_a_curve():
    lrs = np.logspace(-5, 1, 60)
    losses = 1 / (1 + np.exp(3 * (np.log10(lrs) + 2))) + 0.1  # falls steepest at 1e-2, flat after
    losses[50:] = np.nan  # diverged
    assert lr_finder.steep(lrs, losses) == pytest.approx(1e-2, rel=0.3)
    assert 1e-3 < lr_finder.valley(lrs, losses) < 1e-1
    assert lr_finder.minimum(lrs, losses) == pytest.approx(lrs[np.nanargmin(losses[6:45]) + 6] / 10)


def test_valley_is_fastais():
    """fastai.callback.schedule.valley, transcribed: the same index on noisy curves."""
    def fastai_valley(lrs, losses):
        lrs, losses = lrs[len(losses) // 10:-5], losses[len(losses) // 10:-5]
        n, max_start, max_end, lds = len(losses), 0, 0, [1] * len(losses)
        for i in range(1, n):
            for j in range(0, i):
                if losses[i] < losses[j] and lds[i] < lds[j] + 1:
                    lds[i] = lds[j] + 1
                if lds[max_end] < lds[i]:
                    max_end, max_start = i, i - lds[i]
        sections = (max_end - max_start) / 3
        return lrs[max_start + int(sections) + int(sections / 2)]

    rng = np.random.default_rng(0)
    lrs = np.logspace(-6, 1, 100)
    for _ in range(20):
        losses = 1 / (1 + np.exp(3 * (np.log10(lrs) + 2))) + rng.normal(0, 0.05, 100)
        assert lr_finder.valley(lrs, losses) == fastai_valley(lrs, losses)


def test_random_affine_turns_and_scales_about_the_centre():
    x = jnp.zeros((3, 28, 28)).at[:, 4:24, 13:15].set(1.0)  # a vertical bar through the centre
    same, y = augment.random_affine(1e-6)(jax.random.key(0), x, jnp.arange(3))
    np.testing.assert_allclose(same, x, atol=1e-5)
    np.testing.assert_array_equal(y, jnp.arange(3))
    turned, _ = augment.random_affine(30)(jax.random.key(1), x, jnp.arange(3))
    mass = np.asarray(turned).sum((1, 2))
    assert np.all(np.abs(mass - 40) < 4) and not np.allclose(turned, x, atol=0.1)  # the ink moved, and most of it stayed
    scaled, _ = augment.random_affine(0, max_zoom=0.5)(jax.random.key(2), jnp.tile(x, (3, 1, 1)), jnp.arange(9))
    length = (np.asarray(scaled)[:, :, 13] > 0.5).sum(1)  # the bar's length, 20 pixels unscaled: 10 to 30 now
    np.testing.assert_allclose(scaled[:, :, 13:15], scaled[:, :, 13:15][:, ::-1], atol=1e-5)  # still centred
    assert np.all((9 <= length) & (length <= 28)) and len(set(length.tolist())) > 2
    both = augment.compose(augment.random_shift(2), augment.random_affine(10, 0.1))
    chex.assert_shape(both(jax.random.key(2), x, jnp.arange(3))[0], (3, 28, 28))


def test_augmented_batches_are_those_of_each_step_alone(d37):
    """train_epoch augments all batches before its scan: the same batches, keys and losses as step by step."""
    learner = Learner(models.simple_net(), losses.binary, optax.sgd(0.1), augment=augment.random_shift(2))
    ts = init(learner, jax.random.key(0))
    idx, weights = batch_indices(jax.random.key(1), 512, 128)
    data_key, model_key = jax.random.key(2), jax.random.key(3)
    _, scanned, _ = training.train_epoch(ts, data_key, model_key, learner, d37, (idx, weights))
    one_by_one = []
    for i, (rows, w) in enumerate(zip(idx, weights)):
        xb, yb = learner.augment(jax.random.fold_in(data_key, i), d37.x_train[rows], d37.y_train[rows])
        ts, loss = train_step(ts, xb, yb, learner, jax.random.fold_in(model_key, i), w)
        one_by_one.append(loss)
    np.testing.assert_allclose(scanned, one_by_one, rtol=1e-5)


def test_ema_of_the_params_is_debiased_and_what_validation_uses(d37):
    learner = Learner(models.simple_net(), losses.binary, optax.sgd(0.1), ema=0.9)
    ts = init(learner, jax.random.key(0))
    chex.assert_trees_all_equal(ts.eval_params, ts.params)
    xb, yb = d37.x_train[:256], d37.y_train[:256]
    one, _ = train_step(ts, xb, yb, learner)
    chex.assert_trees_all_equal(one.average.params, one.params)  # no weight left on the initial params
    two, _ = train_step(one, xb, yb, learner)
    # decay-weighted mean of the steps' params: (0.9 * p1 + p2) / 1.9
    chex.assert_trees_all_close(two.average.params, jax.tree.map(lambda a, b: (0.9 * a + b) / 1.9, one.params, two.params),
                                rtol=1e-6, atol=1e-7)
    assert int(two.average.steps) == 2
    r = fit(learner, d37, 2, jax.random.key(0), progress=False)
    chex.assert_trees_all_close(r.valid_logits, predict(r.state.average.params, r.state.model_state, d37.x_valid, learner.model),
                                rtol=1e-5, atol=1e-6)
    assert r.state.eval_params is r.state.average.params and init(learner._replace(ema=0.0), jax.random.key(0)).average is None


def test_a_short_run_with_a_slow_average_is_still_a_trained_model(d37):
    """5 epochs of 7 steps at decay 0.999: a plain moving average would keep 97 % of its weight on the initial
    params (chance accuracy, 0.5); the debiased one is as good as the params themselves."""
    learner = Learner(models.simple_net(), losses.binary, optax.sgd(0.1), ema=0.999)
    assert fit(learner, d37, 5, jax.random.key(0), progress=False).history[-1]["valid_accuracy"] > 0.9


@pytest.mark.parametrize("n", [1, 6, 7, 8, 20])
def test_predict_in_chunks_equals_one_apply(n):
    m = models.cnn_bn(10, channels=(4, 8))
    params, state = layers.init(m, jax.random.key(0))
    x = jax.random.uniform(jax.random.key(n), (n, 28, 28))
    chex.assert_trees_all_close(predict(params, state, x, m, chunk=7), m.apply(params, state, x, None, False)[0],
                                rtol=1e-5, atol=1e-6)
