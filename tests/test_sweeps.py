"""Sweeps: every combination of settings × seeds, one compiled program per shape group, each run
reproducible alone, one result shape, records other tools read, the runs spread over devices."""

import json
import os
import struct

import numpy as np
import pytest

from mnistjax import config, experiment, losses, sweeps
from mnistjax.config import RunConfig
from mnistjax.errors import MnistjaxError
from tests_helpers import forced_devices
from tests_helpers import run_cli as mnistjax


@pytest.fixture(scope="module")
def p37(tiny):
    return experiment.prepare(tiny, "3,7")


def steps(run: dict) -> np.ndarray:
    return np.array([row["step_losses"] for row in run["history"]])


def test_keys_values_and_groups():
    base = RunConfig(opt="adamw")
    assert sweeps.parse("lr=0.1,3e-2") == ("lr", [0.1, 0.03])
    assert sweeps.parse("model=cnn,simple_net") == ("model", ["cnn", "simple_net"])
    assert sweeps.parse("model.channels=[[8,16],[16,32]]") == ("model.channels", [[8, 16], [16, 32]])
    variants = sweeps.expand(base, {"lr": [0.1, 0.01], "opt.weight_decay": [0, 0.1], "model.hidden": [10, 20]})
    assert [v.values for v in variants[:3]] == [{"lr": 0.1, "opt.weight_decay": 0, "model.hidden": 10},
                                                {"lr": 0.1, "opt.weight_decay": 0, "model.hidden": 20},
                                                {"lr": 0.1, "opt.weight_decay": 0.1, "model.hidden": 10}]
    assert variants[2].config.opt_args == {"weight_decay": 0.1} and variants[2].config.model_args == {"hidden": 10}
    traced = sweeps.traced_keys({"lr": [0.1], "opt.weight_decay": [0], "model.hidden": [10]})
    assert traced == ("lr", "opt.weight_decay")
    assert sweeps.groups(variants, traced) == [[0, 2, 4, 6], [1, 3, 5, 7]]  # one program per width
    ema = sweeps.expand(base, {"ema": [0, 0.9, 0.99]})
    assert sweeps.groups(ema, ("ema",)) == [[0], [1, 2]]  # no average at all is a program of its own
    for bad, message in [("seeds=1,2", "'seeds': expected a setting"), ("classes=3,7", "'classes': expected a setting"),
                         ("lr", "expected KEY=V1,V2"), ("nope.x=1", "'nope.x'")]:
        with pytest.raises(MnistjaxError, match=message):
            sweeps.parse(bad)
    with pytest.raises(MnistjaxError, match="sweep: ema=2: ema: 2: expected a decay"):
        sweeps.expand(base, {"ema": [0.9, 2]})
    with pytest.raises(MnistjaxError, match="expected distinct values"):
        sweeps.expand(base, {"lr": [0.1, 0.1]})


def test_label_smoothing_is_the_smoothed_target():
    logits, y = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]], np.float32), np.array([0, 2])
    got = losses.task("cross_entropy", 3, label_smoothing=0.3).loss(logits, y)
    target = np.eye(3)[y] * 0.7 + 0.1
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    np.testing.assert_allclose(got, -(target * logp).sum(1), rtol=1e-6)
    np.testing.assert_allclose(losses.task("cross_entropy", 3, label_smoothing=0.0).loss(logits, y),
                               -logp[[0, 1], y], rtol=1e-6)


def test_a_sweep_trains_in_one_program_and_each_run_reproduces_alone(p37):
    base = RunConfig(model="cnn_bn", model_args={"channels": [4, 8], "hidden": 16}, opt="adamw", lr=1e-2,
                     schedule="cosine", epochs=2, batch_size=64, ema=0.9, rotate=5.0, seeds=(0, 1))
    sweep = {"lr": [1e-2, 3e-3], "opt.weight_decay": [0.0, 0.05], "model.drop": [0.1, 0.3], "ema": [0.9, 0.99],
             "rotate": [5.0, 10.0]}
    s = experiment.train(base, p37, sweep, progress=False).summary
    assert s["programs"] == 1 and len(s["runs"]) == 64 and len(s["variants"]) == 32
    assert [r["run"] for r in s["runs"]] == list(range(64)) and s["config"] == base.to_dict()
    middle = s["runs"][37]
    assert middle["values"] == {"lr": 3e-3, "opt.weight_decay": 0.0, "model.drop": 0.1, "ema": 0.99, "rotate": 5.0}
    assert middle["seed"] == 1 and middle["config"]["seeds"] == [1] and middle["config"]["model_args"]["drop"] == 0.1
    alone = experiment.train(config.from_dict(middle["config"]), p37, progress=False).summary
    # measured: not bit for bit (XLA orders a vmapped batch's sums otherwise), within 1e-6 and the same accuracy
    # (the middle run at the smaller rate: every such run within 1.2e-7 on an AVX-512 CPU, where at 1e-2 a
    # last-bit difference crossed a ReLU's kink at step 3 and the losses parted by 4e-4)
    np.testing.assert_allclose(steps(middle), steps(alone["runs"][0]), atol=1e-6, rtol=0)
    assert middle["valid_accuracy"] == alone["valid_accuracy"]
    v = s["variants"][18]
    accs = [r["valid_accuracy"] for r in s["runs"][36:38]]
    assert v["values"] == middle["values"] and v["n"] == 2
    assert v["valid_accuracy_mean"] == pytest.approx(np.mean(accs)) and v["valid_accuracy_std"] == pytest.approx(np.std(accs))


def test_settings_that_change_shapes_make_a_program_each(p37):
    base = RunConfig(model="mlp", epochs=1, opt="adam", lr=3e-3, seeds=(0, 1))
    s = experiment.train(base, p37, {"model.hidden": [[8], [16]], "batch_size": [64, 128], "opt.b1": [0.8, 0.9]},
                         progress=False).summary
    assert s["programs"] == 4 and len(s["runs"]) == 16
    assert [r["values"]["batch_size"] for r in s["runs"][:4]] == [64, 64, 64, 64]
    assert all(r["config"]["batch_size"] == r["values"]["batch_size"] for r in s["runs"])


def test_one_result_shape_for_one_run_seeds_and_sweeps():
    one = json.loads(mnistjax("train", "--dataset", "tiny", "--epochs", "1", "--json").stdout)
    seeds = json.loads(mnistjax("train", "--dataset", "tiny", "--epochs", "1", "--seeds", "0,1", "--json").stdout)
    sweep = json.loads(mnistjax("train", "--dataset", "tiny", "--epochs", "1", "--lrs", "0.1,0.2", "--json").stdout)
    for r, n in ((one, 1), (seeds, 2), (sweep, 2)):
        assert r["programs"] == 1 and len(r["runs"]) == n and {"config", "variants", "runs"} <= set(r)
        assert set(r["runs"][0]) >= {"config", "seed", "values", "valid_accuracy", "history", "diverged_at"}
    assert one["runs"][0]["history"] == one["history"] and one["valid_accuracy"] == one["runs"][0]["valid_accuracy"]
    assert seeds["variants"] == [{"values": {}, "valid_accuracy_mean": seeds["valid_accuracy_mean"],
                                  "valid_accuracy_std": seeds["valid_accuracy_std"], "n": 2}]
    assert sweep["sweep"] == {"lr": [0.1, 0.2]} and [v["values"] for v in sweep["variants"]] == [{"lr": 0.1}, {"lr": 0.2}]
    table = mnistjax("train", "--dataset", "tiny", "--epochs", "1", "--sweep", "lr=0.1,0.3", "--seeds", "0,1").stdout
    assert "4 models trained in 1 compiled program" in table and "* " in table and "seeds' spread" in table


def test_logs_are_long_form_and_never_append_silently(tmp_path):
    log, steps_log = tmp_path / "runs.csv", tmp_path / "runs.jsonl"
    args = ["train", "--dataset", "tiny", "--epochs", "2", "--sweep", "lr=0.1,0.3", "--seeds", "0,1"]
    out = json.loads(mnistjax(*args, "--log", str(log), "--json").stdout)
    lines = log.read_text().splitlines()
    assert lines[0] == "run,seed,lr,epoch,train_loss,valid_loss,valid_accuracy" and len(lines) == 1 + 4 * 2
    row = lines[1].split(",")
    assert row[:4] == ["0", "0", "0.1", "1"] and float(row[6]) == out["runs"][0]["history"][0]["valid_accuracy"]
    proc = mnistjax(*args, "--log", str(log), check_rc=2)
    assert "--log: " in proc.stderr and "--log-append" in proc.stderr and len(log.read_text().splitlines()) == 9
    mnistjax(*args, "--log", str(log), "--log-append")
    assert len(log.read_text().splitlines()) == 17
    proc = mnistjax("train", "--dataset", "tiny", "--epochs", "1", "--log", str(log), "--log-append", check_rc=2)
    assert "its columns run,seed,lr,epoch" in proc.stderr and len(log.read_text().splitlines()) == 17
    mnistjax(*args, "--log", str(steps_log))
    records = [json.loads(line) for line in steps_log.read_text().splitlines()]
    per_step = [r for r in records if "step" in r]
    assert len(per_step) == 4 * 2 * 7 and per_step[0] == {**per_step[0], "run": 0, "seed": 0, "lr": 0.1, "epoch": 1, "step": 0}
    assert len([r for r in records if "valid_accuracy" in r]) == 8


def _events(path) -> list:
    """The Event protos of one TensorBoard event file (TFRecord: length, its CRC, data, the data's CRC)."""
    from tensorboardX.proto import event_pb2

    data, out, at = path.read_bytes(), [], 0
    while at < len(data):
        (n,) = struct.unpack("<Q", data[at:at + 8])
        out.append(event_pb2.Event.FromString(data[at + 12:at + 12 + n]))
        at += 12 + n + 4
    return out


def test_tensorboard_runs_hold_scalars_and_hyperparameters(tmp_path):
    pytest.importorskip("tensorboardX")
    mnistjax("train", "--dataset", "tiny", "--epochs", "2", "--sweep", "lr=0.1,0.3", "--seeds", "0,1",
             "--tensorboard", str(tmp_path / "tb"))
    runs = sorted(p.name for p in (tmp_path / "tb").iterdir())
    assert runs == ["lr=0.1,seed=0", "lr=0.1,seed=1", "lr=0.3,seed=0", "lr=0.3,seed=1"]
    events = [e for f in (tmp_path / "tb" / runs[2]).iterdir() for e in _events(f)]
    values = [(v.tag, e.step, v.simple_value) for e in events for v in e.summary.value]
    assert len([v for v in values if v[0] == "train/step_loss"]) == 14
    assert [s for t, s, _ in values if t == "valid/accuracy"] == [1, 2]
    hparams = [v for e in events for v in e.summary.value if v.tag == "_hparams_/session_start_info"]
    assert hparams and b"lr" in hparams[0].metadata.plugin_data.content


def test_eight_cpu_devices_train_the_runs_as_one_does(tmp_path):
    args = ["train", "--dataset", "tiny", "--epochs", "2", "--opt", "adamw", "--sweep", "lr=1e-3,1e-2,3e-2",
            "--sweep", "opt.weight_decay=0,0.01", "--seeds", "0,1", "--json"]
    env = {**os.environ, **forced_devices(8)}
    eight = json.loads(mnistjax(*args, "--devices", "8", env=env).stdout)
    one = json.loads(mnistjax(*args, env=env).stdout)
    assert eight["config"]["devices"] == 8 and len(eight["runs"]) == 12  # 12 runs padded to 16: two per device
    for a, b in zip(eight["runs"], one["runs"]):
        np.testing.assert_allclose(steps(a), steps(b), atol=1e-6, rtol=0)
        assert a["valid_accuracy"] == b["valid_accuracy"]
    proc = mnistjax("train", "--dataset", "tiny", "--seeds", "0,1", "--devices", "2", check_rc=2)
    assert "XLA_FLAGS=--xla_force_host_platform_device_count=2" in proc.stderr


def test_lr_find_runs_a_range_test_per_variant(tmp_path):
    out = json.loads(mnistjax("lr-find", "--dataset", "tiny", "--opt", "adam", "--sweep", "batch_size=32,64",
                              "--figures", str(tmp_path), "--json").stdout)
    assert [v["values"] for v in out["variants"]] == [{"batch_size": 32}, {"batch_size": 64}]
    assert [len(v["lrs"]) for v in out["variants"]] == [50, 25]  # at most one epoch of 1,600 images
    assert out["suggestions"] == out["variants"][0]["suggestions"] and (tmp_path / "lr_find.png").is_file()
    proc = mnistjax("lr-find", "--dataset", "tiny", "--sweep", "lr=0.1,1", check_rc=2)
    assert "--sweep: lr-find tries the rates itself" in proc.stderr


def test_shards_collected_are_the_sweep(tmp_path):
    args = ["train", "--dataset", "tiny", "--epochs", "2", "--sweep", "model.hidden=10,20,30", "--sweep", "lr=0.1,0.3",
            "--seeds", "0,1", "--json"]
    whole = json.loads(mnistjax(*args).stdout)
    for i in range(2):
        (tmp_path / f"{i}.json").write_text(mnistjax(*args, "--shard", f"{i}/2").stdout)
    shares = [json.loads((tmp_path / f"{i}.json").read_text()) for i in range(2)]
    assert [s["shard"]["programs"] for s in shares] == [2, 1] and whole["programs"] == 3  # whole groups: 0 and 2, then 1
    merged = json.loads(mnistjax("collect", str(tmp_path / "1.json"), str(tmp_path / "0.json"), "--json").stdout)
    timings = ("compile_seconds", "train_seconds")
    assert {k: v for k, v in merged.items() if k not in timings} == {k: v for k, v in whole.items() if k not in timings}
    assert "best ahead of the runner-up" in mnistjax("collect", str(tmp_path / "0.json"), str(tmp_path / "1.json")).stdout
    proc = mnistjax("collect", str(tmp_path / "0.json"), check_rc=2)
    assert "--results: shards [0] of 2; expected each of 0 to 1 once" in proc.stderr
    (tmp_path / "other.json").write_text(json.dumps({**shares[1], "sweep": {"lr": [1.0]}}))
    proc = mnistjax("collect", str(tmp_path / "0.json"), str(tmp_path / "other.json"), check_rc=2)
    assert "result 2 is of another sweep" in proc.stderr
    proc = mnistjax(*args, "--shard", "2/2", check_rc=2)
    assert "--shard: expected I/N with 0 <= I < N" in proc.stderr


def test_fewer_groups_than_shards_slice_every_group():
    groups = [list(range(8)), [8, 9, 10]]
    assert sweeps.shard(groups, 0, 3) == [[0, 1], [8]] and sweeps.shard(groups, 2, 3) == [[5, 6, 7], [10]]
    assert sorted(x for i in range(3) for g in sweeps.shard(groups, i, 3) for x in g) == list(range(11))
    assert sweeps.shard(groups, 1, 2) == [[8, 9, 10]]  # at least as many groups as shards: whole groups
