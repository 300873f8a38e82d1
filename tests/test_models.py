"""The built-in models and your own by name: output shapes, the book's structure, plug-ins and their errors."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mnistjax import layers, models
from mnistjax.errors import MnistjaxError


class ModelShapeTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_every_model_gives_n_out_logits(self):
        x = jnp.zeros((5, 28, 28))
        for name, n_out in [(name, 10) for name in models.MODELS] + [("linear", 1), ("cnn", 1)]:
            m = models.build(name, n_out, **({"channels": (4, 8, 16)} if name == "resnet" else {}))
            params, state = layers.init(m, jax.random.key(0))
            out, new_state = self.variant(m.apply, static_argnums=(4,))(params, state, x, jax.random.key(1), True)
            chex.assert_shape(out, (5, n_out))
            assert jax.tree.structure(new_state) == jax.tree.structure(state), name


def test_simple_net_is_the_books():
    params, state = layers.init(models.simple_net(), jax.random.key(0))
    assert {k: v["w"].shape for k, v in params.items()} == {"1": (784, 30), "3": (30, 1)} and state == {}
    x = jax.random.uniform(jax.random.key(1), (3, 28, 28))
    out, _ = models.simple_net().apply(params, state, x, None, False)
    by_hand = np.maximum(np.asarray(x).reshape(3, -1) @ params["1"]["w"] + params["1"]["b"], 0) @ params["3"]["w"] + params["3"]["b"]
    np.testing.assert_allclose(out, by_hand, rtol=1e-5, atol=1e-6)


def test_batch_norm_models_carry_state():
    for name in ("cnn_bn", "resnet"):
        _, state = layers.init(models.build(name, 10), jax.random.key(0))
        assert jax.tree.leaves(state), name


PLUGIN = '''
from mnistjax import layers

def wide(n_out, width=64) -> layers.Module:
    return layers.sequential(layers.flatten(), layers.dense(784, width), layers.relu(), layers.dense(width, n_out))

def fixed() -> "layers.Module":  # no n_out: always five outputs
    return layers.sequential(layers.flatten(), layers.dense(784, 5))

def not_a_model(n_out) -> layers.Module:
    return 42

def broken(n_out) -> layers.Module:
    raise RuntimeError("oops")

def unannotated(n_out):
    return layers.sequential(layers.flatten(), layers.dense(784, n_out))
'''


def test_plug_in_models_from_a_file_and_a_module(tmp_path, monkeypatch):
    (tmp_path / "mine.py").write_text(PLUGIN)
    m = models.build(f"{tmp_path}/mine.py:wide", 10, width=32)
    params, _ = layers.init(m, jax.random.key(0))
    assert params["1"]["w"].shape == (784, 32) and params["3"]["w"].shape == (32, 10)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert isinstance(models.build("mine:fixed", 10), layers.Module)  # n_out not taken: the trainer checks the width


@pytest.mark.parametrize("spec,args,message", [
    ("nope", {}, "not a model; expected one of linear"),
    ("{d}/missing.py:f", {}, "missing.py: no such file"),
    ("{d}/mine.py:absent", {}, "has no function 'absent'"),
    ("{d}/mine.py:not_a_model", {}, "returned int, not a model"),
    ("{d}/mine.py:broken", {}, "failed (RuntimeError: oops)"),
    ("{d}/mine.py:wide", {"depth": 3}, "takes no argument 'depth'"),
    ("cnn", {"n_out": 3}, "takes no argument 'n_out'"),
    ("no_such_package_xyz:f", {}, "cannot import no_such_package_xyz (ModuleNotFoundError"),
    # only functions that say they build a model are ever called: never os.system or the like
    ("{d}/mine.py:unannotated", {}, "not a model function; expected a function that says it returns a layers.Module"),
    ("os:system", {"command": "touch {d}/ran"}, "os:system: not a model function"),
    ("subprocess:getoutput", {"cmd": "touch {d}/ran"}, "subprocess:getoutput: not a model function"),
])
def test_plug_in_errors_name_the_model(tmp_path, spec, args, message):
    (tmp_path / "mine.py").write_text(PLUGIN)
    with pytest.raises(MnistjaxError, match="^model") as e:
        models.build(spec.format(d=tmp_path), 10, **{k: v.format(d=tmp_path) if isinstance(v, str) else v
                                                     for k, v in args.items()})
    assert message in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "ran").exists()
