"""Optimizers and schedules by name: any optax alias, the schedules' shapes, one-line errors."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mnistjax import optimizers
from mnistjax.errors import MnistjaxError


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam", "adamw", "lion", "lamb", "rmsprop", "adagrad", "nadam",
                                  "radam", "adabelief", "yogi", "novograd", "sm3"])
def test_any_optax_alias_by_name_takes_a_step(name):
    opt = optimizers.optimizer(name, 0.1)
    params = {"w": jnp.array([1.0, -2.0])}
    updates, _ = opt.update({"w": jnp.array([0.5, -0.5])}, opt.init(params), params)
    assert np.all(np.isfinite(updates["w"])) and np.any(updates["w"] != 0), name


def test_arguments_reach_the_optimizer():
    ours = optimizers.optimizer("adamw", 0.1, weight_decay=0.05, b1=0.7)
    theirs = optax.adamw(0.1, weight_decay=0.05, b1=0.7)
    params, grads = {"w": jnp.array([1.0, -2.0])}, {"w": jnp.array([0.5, -0.5])}
    np.testing.assert_array_equal(ours.update(grads, ours.init(params), params)[0]["w"],
                                  theirs.update(grads, theirs.init(params), params)[0]["w"])


@pytest.mark.parametrize("call,message", [
    (lambda: optimizers.optimizer("adamz", 0.1), "opt: 'adamz': expected one of adabelief, "),
    (lambda: optimizers.optimizer("adam", 0.1, momentum=0.9), "opt_args: adam takes no argument 'momentum'; expected some of b1"),
    (lambda: optimizers.schedule("cos", 0.1, 10), "schedule: 'cos': expected one of constant, onecycle, cosine"),
    (lambda: optimizers.schedule("cosine", 0.1, 10, warmup=3), "schedule_args: cosine takes no argument 'warmup'"),
])
def test_unknown_names_and_arguments_list_the_valid_ones(call, message):
    with pytest.raises(MnistjaxError) as e:
        call()
    assert str(e.value).startswith(message)


def test_schedules_over_the_whole_run():
    steps, lr = 100, 0.5
    values = {name: np.array([float(optimizers.schedule(name, lr, steps)(i)) if name != "constant"
                              else optimizers.schedule(name, lr, steps) for i in range(steps + 1)])
              for name in optimizers.SCHEDULES}
    assert (values["constant"] == lr).all()
    for name in ("onecycle", "warmup_cosine"):  # warm up to the peak, then down to ~0
        assert values[name].max() == pytest.approx(lr, rel=1e-3) and values[name][0] < lr / 2 and values[name][-1] < lr / 100
    for name in ("cosine", "linear", "polynomial"):
        assert values[name][0] == pytest.approx(lr) and values[name][-1] == pytest.approx(0, abs=1e-6)
    assert values["exponential"][-1] == pytest.approx(lr * 0.01, rel=1e-4)
    assert float(optimizers.schedule("onecycle", lr, steps, pct_start=0.5)(50)) == pytest.approx(lr, rel=1e-3)


@pytest.mark.parametrize("steps,pct_start,lr", [(14, 0.25, 0.01), (1565, 0.3, 3e-3), (100, 0.0, 1.0), (7, 0.5, 0.01)])
def test_onecycle_is_optax_number_for_number_also_with_traced_arguments(steps, pct_start, lr):
    count = jnp.arange(steps + 3)
    expected = jax.vmap(optax.cosine_onecycle_schedule(steps, lr, pct_start))(count)
    np.testing.assert_array_equal(jax.vmap(optimizers.onecycle(lr, steps, pct_start))(count), expected)
    traced = jax.jit(lambda p, r: jax.vmap(optimizers.onecycle(r, steps, p))(count))  # a sweep's pct_start and lr
    # the same turning step; float32 lr / div_factor, not Python's double, so the last bit may differ
    np.testing.assert_allclose(traced(jnp.float32(pct_start), jnp.float32(lr)), expected, rtol=1e-6, atol=0)


def test_total_steps():
    assert optimizers.total_steps(1000, 256, 3) == 12 and optimizers.total_steps(1000, 256, 3, drop_last=True) == 9
