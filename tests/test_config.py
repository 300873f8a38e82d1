"""RunConfig: validated in one place, loaded from TOML and JSON, layered, and a result's config
reproduces the result bit for bit."""

import json

import pytest

from mnistjax import config
from mnistjax.config import RunConfig
from mnistjax.errors import MnistjaxError
from tests_helpers import run_cli


def test_round_trip_through_a_dict_and_json():
    c = RunConfig(model="cnn", model_args={"channels": [8, 16]}, opt="adamw", opt_args={"weight_decay": 0.05},
                  schedule="cosine", seeds=(0, 1, 2), classes="all")
    d = c.to_dict()
    assert json.loads(json.dumps(d)) == d and d["seeds"] == [0, 1, 2]
    assert config.from_dict(d) == c


def test_toml_file_recipe_and_overrides_in_layers(tmp_path):
    (tmp_path / "run.toml").write_text('description = "mine"\nrecipe_note = 1\n')
    with pytest.raises(MnistjaxError, match="unknown setting 'recipe_note'"):
        config.load_config(tmp_path / "run.toml")
    (tmp_path / "run.toml").write_text('model = "mlp"\nepochs = 3\nclasses = ["0", "1", "2"]\nopt_args = {b1 = 0.7}\n'
                                       'opt = "adam"\n')
    c = config.load_config(tmp_path / "run.toml", recipe="cnn10", overrides={"epochs": 5})
    assert (c.model, c.epochs, c.classes, c.opt_args, c.batch_size) == ("mlp", 5, "0,1,2", {"b1": 0.7}, 64)  # batch: the recipe's


def test_a_results_config_object_loads_as_it_is(tmp_path):
    result = {"config": RunConfig(epochs=2).to_dict(), "valid_accuracy": 0.9}
    (tmp_path / "result.json").write_text(json.dumps(result))
    assert config.load_config(tmp_path / "result.json") == RunConfig(epochs=2)


def test_every_recipe_is_a_valid_config():
    names = config.recipes()
    assert {"linear", "simple_net", "cnn", "mlp10", "cnn10", "fast99"} <= set(names) and all(names.values())
    for name in names:
        assert isinstance(config.recipe(name), RunConfig)
    with pytest.raises(MnistjaxError, match="recipe: 'nope': no such recipe; expected one of best, best_gpu, cnn, "):
        config.recipe("nope")


@pytest.mark.parametrize("settings,message", [
    ({"epochs": 0}, "epochs: 0: expected a positive integer"),
    ({"epochs": 2.5}, "epochs: 2.5: expected a value of type int"),
    ({"rotate": 200.0}, "rotate: 200.0: expected 0 to 180 degrees"),
    ({"zoom": 1.0}, "zoom: 1.0: expected 0 or more and under 1"),
    ({"shuffle": "yes"}, "shuffle: 'yes': expected a value of type bool"),
    ({"lr": float("inf")}, "lr: inf: expected a positive, finite learning rate"),
    ({"lr": -1.0}, "lr: -1.0: expected a positive, finite learning rate"),
    ({"opt": "adamz"}, "opt: 'adamz': expected one of"),
    ({"opt_args": {"momentum": 0.9}, "opt": "adam"}, "opt_args: adam takes no argument 'momentum'"),
    ({"schedule": "cos"}, "schedule: 'cos': expected one of constant, onecycle"),
    ({"model": "nope"}, "model: 'nope': expected one of linear, simple_net"),
    ({"loss": "hinge"}, "loss: 'hinge': expected one of mnist_loss, cross_entropy"),
    ({"seeds": (99999999999999999999,)}, "seeds: (99999999999999999999,): expected one or more seeds from 0 to 2**32 - 1"),
    ({"seeds": ()}, "seeds: (): expected one or more seeds"),
    ({"seeds": (0, 1, 0)}, "seeds: (0, 1, 0): expected distinct seeds"),
    ({"loss": "cross_entropy", "loss_args": {"smoothing": 0.1}}, "loss_args: cross_entropy takes no argument 'smoothing'"),
    ({"devices": 0, "seeds": (0, 1)}, "devices: 0: expected a positive number or 'all'"),
    ({"devices": "some"}, "devices: 'some': expected a value of type int"),
    ({"dataset": "imagenet"}, "dataset: 'imagenet': expected one of auto, mnist, tiny"),
    ({"data_dir": ""}, "data_dir: '': expected a folder"),
    ({"classes": ""}, "classes: '': expected 'all' or a comma list"),
    ({"checkpoint_every": 0}, "checkpoint_every: 0: expected a positive integer"),
])
def test_each_rule_is_one_line_naming_the_field(settings, message):
    with pytest.raises(MnistjaxError) as e:
        RunConfig(**settings)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_feeding_back_a_results_config_reproduces_it_bit_for_bit(tmp_path):
    first = json.loads(run_cli("train", "--recipe", "cnn", "--dataset", "tiny", "--epochs", "2", "--seed", "3",
                               "--opt", "adamw", "--opt-arg", "weight_decay=0.01", "--json").stdout)
    (tmp_path / "config.json").write_text(json.dumps(first["config"]))
    again = json.loads(run_cli("train", "--config", str(tmp_path / "config.json"), "--json").stdout)
    timings = ("compile_seconds", "train_seconds")
    assert {k: v for k, v in again.items() if k not in timings} == {k: v for k, v in first.items() if k not in timings}


def test_show_config_prints_the_effective_settings(tmp_path):
    (tmp_path / "c.toml").write_text('epochs = 7\nlr = 0.5\n')
    out = json.loads(run_cli("train", "--recipe", "simple_net", "--config", str(tmp_path / "c.toml"), "--lr", "0.2",
                             "--model", "cnn,channels=4,8", "--schedule-arg", "pct_start=0.2", "--schedule", "onecycle",
                             "--show-config").stdout)
    assert (out["model"], out["model_args"], out["epochs"], out["lr"], out["shuffle"]) == ("cnn", {"channels": [4, 8]}, 7, 0.2, False)
    assert out["schedule_args"] == {"pct_start": 0.2}


def test_a_config_file_naming_code_is_refused_unless_trusted_or_named(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"model": "mine.py:net", "epochs": 2}))
    with pytest.raises(MnistjaxError, match="^config: .*run.json: names a model built by code, mine.py:net; .*--trust-code"):
        config.load_config(tmp_path / "run.json")
    assert config.load_config(tmp_path / "run.json", trust_code=True).model == "mine.py:net"
    assert config.load_config(tmp_path / "run.json", overrides={"model": "mine.py:net"}).epochs == 2  # the user names it
