"""The command line as a user meets it: real processes, JSON on stdout, one-line errors with exit 2."""

import json

import pytest
from PIL import Image

from mnistjax import cli, data, reports
from mnistjax.distances import DISTANCES
from tests_helpers import run_cli as mnistjax


def test_data_info_json_on_tiny():
    out = json.loads(mnistjax("data", "info", "--dataset", "tiny", "--json", check_rc=0).stdout)
    assert out["dataset"] == "tiny" and out["verified"] is True
    assert out["splits"]["train"]["per_class"]["3"] == 800


def test_data_info_on_real_data(mnist_dir):
    out = json.loads(mnistjax("data", "info", "--data-dir", str(mnist_dir), "--json", check_rc=0).stdout)
    assert out["dataset"] == "mnist" and out["verified"] is True and out["splits"]["test"]["count"] == 10000


def test_distance_choices_are_the_library_distances():
    assert sorted(cli.DISTANCE_NAMES) == sorted(DISTANCES)  # the CLI lists them without importing JAX


def test_a_command_that_reads_no_data_never_loads_it(tmp_path):
    env = {"MNISTJAX_DATA": "", "MNISTJAX_CACHE": str(tmp_path)}  # loading would warn of the tiny fallback
    proc = mnistjax("sgd", "--steps", "2", "--json", env=env, check_rc=0)
    assert "warning" not in proc.stderr


def test_auto_without_data_falls_back_to_tiny_with_one_warning(tmp_path):
    env = {"MNISTJAX_DATA": "", "MNISTJAX_CACHE": str(tmp_path)}
    proc = mnistjax("data", "info", "--json", env=env, check_rc=0)
    assert json.loads(proc.stdout)["dataset"] == "tiny"
    warnings = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "embedded 'tiny' sample" in warnings[0]


def test_dataset_mnist_insists(tmp_path):
    proc = mnistjax("data", "info", "--dataset", "mnist", env={"MNISTJAX_DATA": "", "MNISTJAX_CACHE": str(tmp_path)},
                    check_rc=2)
    assert "full MNIST is not available" in proc.stderr and "--data-dir" in proc.stderr


@pytest.mark.parametrize("args,message", [
    (["run", "--data-dir", "/no/such/dir"], "--data-dir /no/such/dir: not a folder"),
    (["run", "--dataset", "imagenet"], "argument --dataset: invalid choice"),
    (["run", "--bogus"], "unrecognized arguments: --bogus"),
    ([], "the following arguments are required: command"),
    (["train", "--dataset", "tiny", "--model", "linear", "--channels", "8,16"], "--channels [8, 16]: expected two positive"),
    (["train", "--dataset", "tiny", "--model", "cnn", "--channels", "8"], "--channels [8]: expected two positive"),
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
    out = json.loads(mnistjax("data", "info", "--json", env={"MNISTJAX_DATA": str(mnist_dir)}, check_rc=0).stdout)
    assert out["source"] == str(mnist_dir)


def test_run_is_the_chapter_in_one_table(tmp_path):
    out = json.loads(mnistjax("run", "--dataset", "tiny", "--json", "--figures", str(tmp_path), check_rc=0).stdout)
    assert out["dataset"] == "tiny"
    for step in ("baseline", "linear", "simple_net", "cnn"):  # written from four threads at once
        pngs = sorted((tmp_path / step).glob("*.png"))
        assert len(pngs) >= 3 and all(Image.open(p).size[0] > 100 for p in pngs), step
    assert [s["step"].split()[0] for s in out["steps"]] == ["pixel", "linear", "simple_net", "cnn"]
    assert all(0.9 < s["accuracy"] <= 1 and s["book"] > 0.95 for s in out["steps"])
    assert out["seconds"] > 0
    tiny = data.load_tiny()  # the steps ran side by side, each giving what it gives alone
    for step, name in zip(out["steps"][1:3], ("linear", "simple_net")):
        alone = reports.train(tiny, classes=(3, 7), progress=False, **reports.CHAPTER_RUNS[name])
        assert step["accuracy"] == alone["valid_accuracy"], name
