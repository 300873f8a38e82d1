"""The command line as a user meets it: real processes, JSON on stdout, one-line errors with exit 2."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from mnistjax import config, data, experiment
from tests_helpers import run_cli as mnistjax
from tests_helpers import start_cli


def strict(text: str):
    """json.loads that refuses NaN and Infinity, as strict parsers do."""
    return json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))


def test_data_info_json_on_tiny():
    out = strict(mnistjax("data", "info", "--dataset", "tiny", "--json").stdout)
    assert out["dataset"] == "tiny" and out["verified"] is True
    assert out["splits"]["train"]["per_class"]["3"] == 800


def test_data_info_on_real_data(mnist_dir):
    out = strict(mnistjax("data", "info", "--data-dir", str(mnist_dir), "--json").stdout)
    assert out["dataset"] == "mnist" and out["verified"] is True and out["splits"]["test"]["count"] == 10000


def test_a_command_that_reads_no_data_never_loads_it(tmp_path):
    env = {"MNISTJAX_DATA": "", "MNISTJAX_CACHE": str(tmp_path)}  # loading would warn of the tiny fallback
    proc = mnistjax("sgd", "--steps", "2", "--json", env=env)
    assert "warning" not in proc.stderr


def test_auto_without_data_falls_back_to_tiny_with_one_warning(tmp_path):
    env = {"MNISTJAX_DATA": "", "MNISTJAX_CACHE": str(tmp_path)}
    proc = mnistjax("data", "info", "--json", env=env)
    assert strict(proc.stdout)["dataset"] == "tiny"
    warnings = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "embedded 'tiny' sample" in warnings[0]
    # offline: one line, saying so and how to point at files already here (no line per unreachable mirror)
    assert proc.stderr.count("\n") == 1 and "no mirror could be reached" in warnings[0]
    assert "--data-dir or $MNISTJAX_DATA" in warnings[0]


def test_dataset_mnist_insists(tmp_path):
    proc = mnistjax("data", "info", "--dataset", "mnist", env={"MNISTJAX_DATA": "", "MNISTJAX_CACHE": str(tmp_path)},
                    check_rc=2)
    assert "--dataset: full MNIST is not available" in proc.stderr and "mnistjax data fetch" in proc.stderr


@pytest.mark.parametrize("args,message", [
    (["run", "--data-dir", "/no/such/dir"], "--data-dir: /no/such/dir: not a folder"),
    (["run", "--dataset", "imagenet"], "argument --dataset: invalid choice"),
    (["run", "--bogus"], "unrecognized arguments: --bogus"),
    ([], "the following arguments are required: command"),
    (["train", "--dataset", "tiny", "--batch-size", "0"], "--batch-size: 0: expected a positive integer"),
    (["train", "--dataset", "tiny", "--opt", "adamz"], "--opt: 'adamz': expected one of adabelief"),
    (["train", "--dataset", "tiny", "--opt", "adam", "--opt-arg", "momentum=0.9"], "--opt-arg: adam takes no argument 'momentum'"),
    (["train", "--dataset", "tiny", "--schedule-arg", "x"], "argument --schedule-arg: expected KEY=VALUE"),
    (["train", "--dataset", "tiny", "--model", "cnn", "--model-arg", "widths=3"], "--model-arg: cnn takes no argument 'widths'"),
    (["train", "--dataset", "tiny", "--model", "cnn_bn", "--model-arg", "drop=1"], "dropout rate 1: expected a number"),
    (["train", "--dataset", "tiny", "--model", "simple_net", "--model-arg", "hidden=2.5"], "dense: n_out 2.5: expected an integer"),
    (["lr-find", "--dataset", "tiny", "--num-it", "1"], "--num-it: 1: expected 2 or more steps"),
    (["train", "--dataset", "tiny", "--augment", "28"], "--augment: 28: expected fewer pixels than the images' 28"),
    (["train", "--dataset", "tiny", "--lrs", "0.1,x"], "expected a comma list of floats"),
    (["train", "--dataset", "tiny", "--seeds", ""], "expected a comma list of ints"),
    (["train", "--dataset", "tiny", "--seed", "1", "--seeds", "1,2"], "--seed: give --seed or --seeds, not both"),
    (["train", "--dataset", "tiny", "--seeds", "0,1", "--figures", "f"], "--figures: draws one model's figures"),
    (["train", "--dataset", "tiny", "--lrs", "0.1,0.2", "--sweep", "lr=0.3"], "--sweep: lr is swept twice"),
    (["train", "--dataset", "tiny", "--sweep", "seeds=1,2"], "--sweep: 'seeds': expected a setting of a run"),
    (["train", "--dataset", "tiny", "--sweep", "lr"], "--sweep: 'lr': expected KEY=V1,V2,..."),
    (["train", "--dataset", "tiny", "--sweep", "opt.b1=0.9,x", "--opt", "adam"],
     "--sweep: opt.b1=x: adam argument b1='x': expected a number"),
    (["train", "--dataset", "tiny", "--sweep", "ema=0.9,2"], "--sweep: ema=2: ema: 2: expected a decay"),
    (["train", "--dataset", "tiny", "--model", "simple_net,n_out=5"], "--model-arg: simple_net takes no argument 'n_out'"),
    (["train", "--dataset", "tiny", "--recipe", "nope"], "--recipe: 'nope': no such recipe"),
    (["train", "--dataset", "tiny", "--config", "/no/such.toml"], "--config: /no/such.toml: cannot read"),
    (["train", "--dataset", "tiny", "--classes", "3,x"], "classes: 'x' is not a class"),
    (["train", "--dataset", "tiny", "--batch-size", "100000"], "--batch-size: 100000: expected 1 to 1600"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    proc = mnistjax(*args, check_rc=2)
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("mnistjax: error: ")
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_corrupt_data_dir_is_one_line(tmp_path, tiny):
    from mnistjax.data import write_idx
    from mnistjax.data.idx_dir import FILES

    for (split, kind), name in FILES.items():
        write_idx(tmp_path / f"{name}.gz", getattr(tiny.test, kind)[:10].astype("uint8"))
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"garbage")
    proc = mnistjax("data", "info", "--data-dir", str(tmp_path), check_rc=2)
    assert "t10k-labels-idx1-ubyte.gz: not an IDX file" in proc.stderr and proc.stderr.count("\n") == 1


def test_env_var_names_the_data_dir(mnist_dir):
    out = strict(mnistjax("data", "info", "--json", env={"MNISTJAX_DATA": str(mnist_dir)}).stdout)
    assert out["source"] == str(mnist_dir)


def test_recipes_lists_each_with_a_line():
    out = strict(mnistjax("recipes", "--json").stdout)["recipes"]
    assert out == config.recipes()
    assert len(mnistjax("recipes").stdout.splitlines()) == len(out)


def test_train_json_figures_and_log(tmp_path):
    out = strict(mnistjax("train", "--dataset", "tiny", "--model", "linear", "--lr", "1", "--epochs", "3", "--no-shuffle",
                          "--json", "--figures", str(tmp_path / "figs"), "--log", str(tmp_path / "log.csv")).stdout)
    assert out["config"]["shuffle"] is False and out["config"]["model"] == "linear"
    for key in ("dataset", "classes", "valid_accuracy", "per_class_accuracy", "history", "compile_seconds", "train_seconds"):
        assert key in out
    assert out["dataset"] == "tiny" and len(out["history"]) == 3 and out["book"] == 0.9785
    assert set(out["history"][0]) == {"epoch", "train_loss", "step_losses", "valid_loss", "valid_accuracy"}
    assert len(out["history"][0]["step_losses"]) == 7  # 1600 images in batches of 256
    assert {p.name for p in (tmp_path / "figs").iterdir()} == {"loss.png", "accuracy.png", "confusion.png", "top_wrong.png"}
    lines = (tmp_path / "log.csv").read_text().splitlines()
    assert lines[0] == "run,seed,epoch,train_loss,valid_loss,valid_accuracy" and len(lines) == 4
    assert lines[3].split(",")[:3] == ["0", "0", "3"] and float(lines[3].split(",")[5]) == out["valid_accuracy"]


def test_any_optax_optimizer_and_schedule_from_the_command_line():
    out = strict(mnistjax("train", "--dataset", "tiny", "--model", "mlp", "--classes", "all", "--epochs", "2", "--opt", "adamw",
                          "--opt-arg", "weight_decay=0.05", "--lr", "0.003", "--schedule", "warmup_cosine",
                          "--schedule-arg", "warmup=0.1", "--json").stdout)
    assert out["config"]["opt_args"] == {"weight_decay": 0.05} and out["valid_accuracy"] > 0.8


def test_a_plug_in_model_from_a_file_trains_with_seeds_and_checkpoints(tmp_path):
    (tmp_path / "mine.py").write_text(
        "from mnistjax import layers\n"
        "def tiny_cnn(n_out, width=4) -> layers.Module:\n"
        "    return layers.sequential(layers.reshape(28, 28, 1), layers.conv(1, width, 3, stride=2, padding=1),\n"
        "                             layers.batch_norm(width), layers.relu(), layers.flatten(),\n"
        "                             layers.dropout(0.1), layers.dense(14 * 14 * width, n_out))\n")
    model = f"{tmp_path}/mine.py:tiny_cnn"
    one = strict(mnistjax("train", "--dataset", "tiny", "--model", model, "--model-arg", "width=6", "--epochs", "2",
                          "--opt", "adam", "--lr", "0.003", "--checkpoint-dir", str(tmp_path / "ck"), "--json").stdout)
    assert one["valid_accuracy"] > 0.9 and one["config"]["model"] == model
    resumed = strict(mnistjax("train", "--dataset", "tiny", "--model", model, "--model-arg", "width=6", "--epochs", "3",
                              "--opt", "adam", "--lr", "0.003", "--checkpoint-dir", str(tmp_path / "ck"), "--resume",
                              "--json").stdout)
    assert resumed["history"][:2] == one["history"]
    many = strict(mnistjax("train", "--dataset", "tiny", "--model", model, "--seeds", "0,1", "--epochs", "1", "--opt", "adam",
                           "--lr", "0.003", "--json").stdout)
    assert [r["seed"] for r in many["runs"]] == [0, 1]
    (tmp_path / "bad.py").write_text("import no_such_module_here\n")
    proc = mnistjax("train", "--dataset", "tiny", "--model", f"{tmp_path}/bad.py:f", check_rc=2)
    assert "--model: " in proc.stderr and "cannot import" in proc.stderr and proc.stderr.count("\n") == 1
    proc = mnistjax("train", "--dataset", "tiny", "--model", f"{tmp_path}/mine.py:tiny_cnn", "--classes", "all",
                    "--loss", "mnist_loss", check_rc=2)
    assert "--loss: mnist_loss needs exactly two classes" in proc.stderr


def test_seeds_and_lrs_train_together_and_a_diverged_run_exits_3():
    out = strict(mnistjax("train", "--dataset", "tiny", "--seeds", "0,1,2", "--epochs", "2", "--json").stdout)
    assert [r["seed"] for r in out["runs"]] == [0, 1, 2]
    alone = strict(mnistjax("train", "--dataset", "tiny", "--seed", "1", "--epochs", "2", "--json").stdout)
    assert out["runs"][1]["valid_accuracy"] == pytest.approx(alone["valid_accuracy"], abs=2e-3)
    proc = mnistjax("train", "--dataset", "tiny", "--model", "mlp", "--classes", "all", "--opt", "adam", "--lrs", "0.001,1e12",
                    "--epochs", "2", "--json", check_rc=3)
    out = strict(proc.stdout)
    assert out["runs"][0]["diverged_at"] is None and out["runs"][1]["diverged_at"] == 1
    assert "1 of 2 runs diverged (loss not finite): lr=1000000000000.0, seed 0 at epoch 1" in proc.stderr


def test_divergence_of_one_run_exits_3_naming_the_epoch():
    proc = mnistjax("train", "--dataset", "tiny", "--lr", "1e30", "--loss", "cross_entropy", "--epochs", "3", "--json",
                    check_rc=3)
    assert proc.stderr.strip().splitlines()[-1].startswith("mnistjax: error: training diverged at epoch 1")
    assert strict(proc.stdout)["diverged_at"] == 1


def test_sgd_json_is_strict_even_when_it_diverges():
    for lr in ("1", "inf"):
        proc = mnistjax("sgd", "--json", "--lr", lr, check_rc=None)
        if proc.returncode == 0:
            assert strict(proc.stdout)["diverged"] is True


def test_the_log_of_a_killed_run_keeps_every_finished_epoch(tmp_path):
    log = tmp_path / "run.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "mnistjax.cli", "train", "--dataset", "tiny", "--epochs", "2000",
                             "--log", str(log)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not log.exists() or log.read_text().count("valid_accuracy") < 5):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    records = list(map(strict, log.read_text().splitlines()))
    rows = [row for row in records if "step" not in row]  # the epochs' records; the others are each step's
    assert len(rows) >= 5 and [r["epoch"] for r in rows] == list(range(1, len(rows) + 1))
    assert [r["step"] for r in records if r["epoch"] == 1 and "step" in r] == list(range(7))


def test_persistent_compile_cache_is_used_and_can_be_turned_off(tmp_path):
    args = ["train", "--dataset", "tiny", "--epochs", "1", "--json", "--compile-cache", str(tmp_path / "xla")]
    mnistjax(*args)
    entries = sorted(p.name for p in (tmp_path / "xla").iterdir())
    assert entries
    mnistjax(*args)
    assert sorted(p.name for p in (tmp_path / "xla").iterdir()) == entries  # all reused, nothing compiled anew
    mnistjax("train", "--dataset", "tiny", "--epochs", "1", "--no-compile-cache", "--compile-cache", str(tmp_path / "off"))
    assert not (tmp_path / "off").exists()


def test_run_is_the_chapter_in_one_table(tmp_path):
    out = strict(mnistjax("run", "--dataset", "tiny", "--json", "--figures", str(tmp_path)).stdout)
    assert out["dataset"] == "tiny"
    for step in ("baseline", "linear", "simple_net", "cnn"):  # written from four threads at once
        pngs = sorted((tmp_path / step).glob("*.png"))
        assert len(pngs) >= 3 and all(Image.open(p).size[0] > 100 for p in pngs), step
    assert [s["step"].split()[0] for s in out["steps"]] == ["pixel", "linear", "simple_net", "cnn"]
    assert all(0.9 < s["accuracy"] <= 1 and s["book"] > 0.95 for s in out["steps"])
    assert out["seconds"] > 0
    table = mnistjax("run", "--dataset", "tiny").stdout
    assert "* the book's figures are on full MNIST; tiny is a small sample" in table and "cnn (adam, 4 epochs)" in table
    tiny = experiment.prepare(data.load_tiny(), "3,7")  # the steps ran side by side, each giving what it gives alone
    for step, name in zip(out["steps"][1:3], ("linear", "simple_net")):
        alone = experiment.train(config.recipe(name), tiny, progress=False).summary
        assert step["accuracy"] == alone["valid_accuracy"], name


def test_book_numbers_only_for_mnist(tmp_path, tiny):
    from mnistjax.data import write_idx
    from mnistjax.data.idx_dir import FILES

    for (split, kind), name in FILES.items():  # the tiny sample's images upside down: not MNIST any more
        arr = getattr(getattr(tiny, split), kind)
        write_idx(tmp_path / f"{name}.gz", (arr[:, ::-1] if kind == "images" else arr).astype("uint8"))
    out = strict(mnistjax("train", "--data-dir", str(tmp_path), "--epochs", "1", "--json").stdout)
    assert out["dataset"] == "custom" and out["book"] is None
    assert "book" not in mnistjax("train", "--data-dir", str(tmp_path), "--epochs", "1").stdout
    base = strict(mnistjax("baseline", "--data-dir", str(tmp_path), "--json").stdout)
    assert "book" not in base and "a_3_distances" not in base
    assert "book" not in mnistjax("baseline", "--data-dir", str(tmp_path)).stdout


def test_ctrl_c_in_run_exits_130_at_once():
    proc = start_cli("run", "--dataset", "tiny", "--no-compile-cache", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(3)  # JAX imported, the steps compiling and training side by side (the whole run: 5-6 s quiet)
    t = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and time.monotonic() - t < 1.5, (proc.returncode, time.monotonic() - t)
    assert "mnistjax: interrupted" in err.splitlines()[-1]


def test_save_predict_and_interpret_a_model(tmp_path, tiny):
    model = tmp_path / "m.safetensors"
    out = strict(mnistjax("train", "--recipe", "cnn10", "--dataset", "tiny", "--epochs", "2", "--save", str(model),
                          "--json").stdout)
    assert out["saved"] == str(model)
    folder = tmp_path / "pictures"
    folder.mkdir()
    for i in range(6):  # dark ink on light paper, 8x bigger, RGB JPEG or PNG
        im = Image.fromarray(255 - tiny.test.images[i * 150]).resize((224, 224)).convert("RGB")
        im.save(folder / (f"{i}.jpg" if i % 2 else f"{i}.png"))
    (folder / "broken.png").write_bytes(b"not an image")
    proc = mnistjax("predict", str(model), str(folder), "--json", "--top", "2", "--show", str(tmp_path / "seen"), check_rc=2)
    preds = {Path(p["file"]).stem: p for p in strict(proc.stdout)["predictions"]}
    assert len(preds) == 7 and preds.pop("broken")["error"].startswith("not a readable image")
    right = [p["class"] == str(tiny.test.labels[int(stem) * 150]) for stem, p in preds.items()]
    assert sum(right) >= 5 and all(len(p["top"]) == 2 and p["top"][0][1] == p["probability"] for p in preds.values())
    assert len(list((tmp_path / "seen").glob("*.png"))) == 6
    assert "1 of 7 images could not be predicted" in proc.stderr.splitlines()[-1]
    out = strict(mnistjax("interpret", str(model), "--json", "--top-losses", "4", "--figures", str(tmp_path / "f")).stdout)
    assert set(out) >= {"confusion_matrix", "most_confused", "top_losses", "per_class"} and out["dataset"] == "tiny"
    assert len(out["top_losses"]) == 4 and {p.name for p in (tmp_path / "f").iterdir()} == {"confusion.png", "top_losses.png"}
    (tmp_path / "bad.safetensors").write_bytes(model.read_bytes()[:1000])
    proc = mnistjax("predict", str(tmp_path / "bad.safetensors"), str(folder), check_rc=2)
    assert "not a mnistjax model" in proc.stderr and proc.stderr.count("\n") == 1


def test_class_names_through_every_output(tmp_path, tiny):
    from mnistjax.data import write_idx
    from mnistjax.data.idx_dir import FILES

    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    for (split, kind), name in FILES.items():  # MNIST's digits upside down: not MNIST, so they can be named
        arr = getattr(getattr(tiny, split), kind)
        write_idx(tmp_path / "d" / f"{name}.gz", (arr[:, ::-1] if kind == "images" else arr).astype("uint8"))
    (tmp_path / "d" / "classes.txt").write_text("\n".join(names) + "\n")
    model = tmp_path / "m.safetensors"
    out = strict(mnistjax("train", "--data-dir", str(tmp_path / "d"), "--classes", "three,seven", "--epochs", "2",
                          "--save", str(model), "--json").stdout)
    assert out["classes"] == ["three", "seven"] and set(out["per_class_accuracy"]) == {"three", "seven"}
    assert "(three, seven)" in mnistjax("train", "--data-dir", str(tmp_path / "d"), "--classes", "three,seven",
                                        "--epochs", "1").stdout
    Image.fromarray(tiny.test.images[0][::-1]).save(tmp_path / "x.png")
    pred = strict(mnistjax("predict", str(model), str(tmp_path / "x.png"), "--json").stdout)["predictions"][0]
    assert pred["class"] in ("three", "seven")
    out = strict(mnistjax("interpret", str(model), "--json").stdout)
    assert out["classes"] == ["three", "seven"] and set(out["per_class"]) == {"three", "seven"}
    base = strict(mnistjax("baseline", "--data-dir", str(tmp_path / "d"), "--classes", "ONE,TWO", "--json",
                           "--class-names", ",".join(n.upper() for n in names)).stdout)
    assert list(base["per_class_accuracy"]) == ["ONE", "TWO"]
    proc = mnistjax("train", "--dataset", "tiny", "--class-names", "a,b", check_rc=2)
    assert "--class-names: tiny's classes are its digits" in proc.stderr


def test_lr_find_from_the_command_line(tmp_path):
    out = strict(mnistjax("lr-find", "--dataset", "tiny", "--model", "simple_net", "--batch-size", "16", "--seeds", "0,1",
                          "--json", "--figures", str(tmp_path)).stdout)
    assert len(out["lrs"]) == 100 and len(out["runs"]) == 2 and set(out["suggestions"]) == {"valley", "steep", "minimum"}
    assert (tmp_path / "lr_find.png").stat().st_size > 5000
