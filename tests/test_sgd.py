"""Gradient descent from first principles: the book's gradients, trajectories against NumPy, divergence."""

import json

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from matplotlib.figure import Figure

from mnistjax import plots, reports
from mnistjax.sgd import descend, diverged, fit_loss, init_params, lstsq_quadratic, roller_coaster, sgd
from tests_helpers import run_cli


def test_the_books_gradients():
    assert jax.grad(lambda x: x**2)(3.0) == 6.0
    np.testing.assert_array_equal(jax.grad(lambda x: (x**2).sum())(jnp.array([3.0, 4.0, 10.0])), [6.0, 8.0, 20.0])


class DescendTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_trajectory_equals_a_numpy_loop(self):
        t, speed = roller_coaster(jax.random.key(0))
        params = init_params(jax.random.key(1), (3,))
        traj = self.variant(descend, static_argnums=(0, 2, 3))(fit_loss(t, speed), params, sgd(1e-5), 20)
        chex.assert_shape([traj.params, traj.loss], [(21, 3), (21,)])
        T, S, p = np.asarray(t, np.float64), np.asarray(speed, np.float64), np.asarray(params, np.float64)
        for i in range(21):
            err = p[0] * T**2 + p[1] * T + p[2] - S
            np.testing.assert_allclose(traj.params[i], p, rtol=1e-4)
            np.testing.assert_allclose(traj.loss[i], (err**2).mean(), rtol=1e-4)
            grad = 2 * np.array([(err * T**2).mean(), (err * T).mean(), err.mean()])
            p = p - 1e-5 * grad


def test_hand_written_sgd_equals_optax_sgd_on_a_pytree():
    params = {"w": jnp.array([1.0, -2.0, 0.5]), "b": jnp.array(0.3)}
    loss = lambda p: ((p["w"] ** 2).sum() + jnp.sin(p["b"])) ** 2  # noqa: E731
    ours = descend(loss, params, sgd(0.05), 30)
    theirs = descend(loss, params, optax.sgd(0.05), 30)
    chex.assert_trees_all_close(ours, theirs, rtol=1e-6)
    chex.assert_shape(ours.params["w"], (31, 3))


def test_vmap_over_learning_rates_and_divergence_is_reported():
    f = lambda x: x**2  # noqa: E731
    lrs = jnp.array([0.01, 0.1, 0.95, 1.1, 100.0])
    runs = jax.vmap(lambda lr: descend(f, jnp.float32(-1.5), sgd(lr), 10))(lrs)
    np.testing.assert_array_equal(diverged(runs.loss), [False, False, False, True, True])
    np.testing.assert_allclose(runs.params[1], -1.5 * 0.8 ** np.arange(11), rtol=1e-5)  # x ← (1 − 2·lr)·x
    assert (np.sign(runs.params[2][1:]) != np.sign(runs.params[2][:-1])).all()  # 0.95 bounces across 0


def test_learning_rate_cases_as_data_and_figures():
    r = reports.learning_rates()
    assert [c["diverged"] for c in r["runs"]] == [False, False, False, True]
    json.dumps(r, allow_nan=False)
    figures = plots.learning_rate_figures(r)
    assert set(figures) == {"quadratic", "loss1", "loss2", "loss3", "low_learning_rate_descent",
                            "high_learning_rate_descent", "high_learning_rate_descent2"}
    assert all(isinstance(f, Figure) for f in figures.values())


def test_roller_coaster_against_least_squares_and_reproducible():
    report = reports.sgd_example(seed=3, steps=10, long_steps=2000)
    a, b = report.summary, reports.sgd_example(seed=3, steps=10, long_steps=2000).summary
    assert a["losses"] == b["losses"]  # same seed, same numbers
    assert len(a["losses"]) == 11 and a["losses"][10] < a["losses"][0]
    np.testing.assert_allclose(a["lstsq_params"], np.polyfit(*map(np.asarray, roller_coaster(
        jax.random.split(jax.random.key(3))[0])), 2), rtol=1e-3)
    steps = a["steps_to_within_1pct_of_lstsq"]
    assert steps["sgd lr=1e-5, raw time (the book)"] is None  # the book's SGD is far from done
    assert steps["sgd lr=0.5, scaled time"] < 200  # scaling the input fixes the conditioning
    sweep = a["lr_sweep"]
    assert not sweep["diverged"][0] and sweep["diverged"][-1]
    json.dumps(a, allow_nan=False)
    assert set(plots.sgd_figures(report)) == {"sgd_scatter", "show_preds", "roller_coaster_loss", "lr_sweep"}
    assert next(iter(report.variants)) == "sgd lr=1e-5, raw time (the book)"  # the legend's order: the book first


def test_lstsq_matches_numpy():
    t, speed = roller_coaster(jax.random.key(5))
    np.testing.assert_allclose(lstsq_quadratic(t, speed), np.polyfit(np.asarray(t), np.asarray(speed), 2), rtol=1e-3)


def test_cli_sgd_json_and_divergence(tmp_path):
    out = json.loads(run_cli("sgd", "--steps", "5", "--json", "--figures", str(tmp_path)).stdout)
    assert len(out["losses"]) == 6 and len(out["params"]) == 3 and len(out["lstsq_params"]) == 3
    assert not out["diverged"] and (tmp_path / "show_preds.png").exists() and (tmp_path / "lr_sweep.png").exists()
    bad = json.loads(run_cli("sgd", "--lr", "0.01", "--json").stdout)
    assert bad["diverged"] is True
    assert "DIVERGED" in run_cli("sgd", "--lr", "0.01").stdout


@pytest.mark.parametrize("args", [["--steps", "0"], ["--lr", "-1"], ["--lr", "abc"]])
def test_cli_sgd_bad_arguments(args):
    proc = run_cli("sgd", *args, check_rc=2)
    assert proc.stderr.startswith("mnistjax: error:") and proc.stderr.count("\n") == 1
