"""The fault suite: what a fault-injection run does, kept as tests. Bit flips in every file mnistjax
reads, broken and shared caches, trickling and stalling mirrors, kills and interrupts at random
points, every output path that cannot be written, and strict JSON from every command.

Bounded in time: seeded loops of a few hundred flips in-process, a handful of real processes."""

import contextlib
import gzip
import http.server
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mnistjax import checkpoint, data
from mnistjax.config import RunConfig
from mnistjax.data import folders
from mnistjax.data.download import mnist_cache
from mnistjax.data.idx import parse_idx, read_bytes
from mnistjax.data.idx_dir import FILES
from mnistjax.errors import MnistjaxError
from tests_helpers import run_cli, start_cli

RNG = random.Random(0)


def flips(blob: bytes, n: int):
    """``n`` copies of ``blob``, each with one random bit flipped (seeded: the same every run)."""
    for _ in range(n):
        b = bytearray(blob)
        i = RNG.randrange(len(b))
        b[i] ^= 1 << RNG.randrange(8)
        yield bytes(b)


def only_clear_errors(fn, blobs) -> int:
    """Call ``fn`` on each blob: it returns, or raises MnistjaxError. Returns how many raised."""
    raised = 0
    for blob in blobs:
        try:
            fn(blob)
        except MnistjaxError as e:
            assert "\n" not in str(e)
            raised += 1
    return raised


# Bit flips.

def test_bit_flips_in_idx_files_load_or_are_one_line_errors(tiny, tmp_path):
    raw = (data.load_tiny().source and Path(data.load_tiny().source) / "t10k-labels-idx1-ubyte.gz").read_bytes()
    path = tmp_path / "x.gz"

    def load(blob):
        path.write_bytes(blob)
        parse_idx(read_bytes(path), str(path))

    assert only_clear_errors(load, flips(raw, 300)) > 250  # gzip's CRC catches nearly every flip
    header = gzip.decompress(raw)[:64]
    only_clear_errors(lambda b: parse_idx(b + gzip.decompress(raw)[64:]), flips(header, 300))


def test_huge_idx_dimensions_are_a_clear_error():
    blob = bytes([0, 0, 8, 3]) + np.array([2**22, 2**21, 2**21], ">u4").tobytes()
    with pytest.raises(MnistjaxError, match=r"truncated: shape \(4194304, 2097152, 2097152\) needs 18446744073709551632 bytes"):
        parse_idx(blob, "huge")
    blob = bytes([0, 0, 8, 3]) + np.array([2**32 - 1] * 3, ">u4").tobytes()
    with pytest.raises(MnistjaxError, match=str((2**32 - 1) ** 3 + 16)):
        parse_idx(blob, "huge")


@pytest.fixture(scope="module")
def saved_checkpoint(tmp_path_factory, tiny):
    from mnistjax import experiment, training

    folder = tmp_path_factory.mktemp("ckpt")
    cfg = RunConfig(model="cnn_bn", model_args={"channels": [2, 4]}, epochs=1, checkpoint_dir=str(folder), opt="adam",
                    lr=1e-3, dataset="tiny")
    p = experiment.prepare(tiny, "3,7")
    experiment.train(cfg, p, progress=False)
    template = training.init(experiment.learner(cfg, p), experiment.run_keys(cfg))
    return folder, template, cfg.to_dict(), experiment.data_id(p)


def test_bit_flips_in_checkpoints_resume_exactly_or_are_one_line_errors(saved_checkpoint, tmp_path):
    folder, template, cfg, ident = saved_checkpoint
    blob = (folder / checkpoint.FILENAME).read_bytes()
    good = checkpoint.load(folder, template, cfg, ident)

    def load(b):
        (tmp_path / checkpoint.FILENAME).write_bytes(b)
        ts, history = checkpoint.load(tmp_path, template, cfg, ident)
        import jax

        for x, y in zip(jax.tree.leaves(ts), jax.tree.leaves(good[0])):  # loaded means loaded right
            np.testing.assert_array_equal(x, y)

    assert only_clear_errors(load, flips(blob, 300)) > 200
    for meta in ({"history": [], "config": [1], "data": ident, "treedef": "x"}, [1, 2], {"history": []}):
        buf = io.BytesIO()
        np.savez(buf, meta=np.array(json.dumps(meta)), leaf0=np.zeros(1))
        with pytest.raises(MnistjaxError, match="corrupt checkpoint .*no run description in it"):
            load(buf.getvalue())


def test_bit_flips_in_the_folder_cache_are_rebuilt(tmp_path, tiny):
    root = tmp_path / "pngs"
    for dirname, split in (("train", tiny.train), ("valid", tiny.test)):
        for i in range(20):
            (root / dirname / str(split.labels[i])).mkdir(parents=True, exist_ok=True)
            Image.fromarray(split.images[i]).save(root / dirname / str(split.labels[i]) / f"{i}.png")
    first = data.load_folders(root, tmp_path / "c")
    (cached,) = (tmp_path / "c" / "folders").glob("*.npz")
    blob = cached.read_bytes()
    for b in list(flips(blob, 150)) + [bytes(len(blob))]:  # and a file of zeros
        cached.write_bytes(b)
        again = data.load_folders(root, tmp_path / "c")
        np.testing.assert_array_equal(again.train.images, first.train.images)
    files = folders.scan(root)
    images = {s: np.zeros_like(first.train.images if s == "train" else first.test.images) for s in files}
    buf = io.BytesIO()  # well-formed, right shapes, wrong content: its hash gives it away
    np.savez(buf, sha256=np.array("0" * 64), **images)
    cached.write_bytes(buf.getvalue())
    np.testing.assert_array_equal(data.load_folders(root, tmp_path / "c").train.images, first.train.images)


# Other bad input in data folders.

def test_odd_files_in_image_folders_are_one_line_errors(tmp_path, tiny):
    root = tmp_path / "pngs"
    for dirname, split in (("train", tiny.train), ("valid", tiny.test)):
        for i in range(4):
            (root / dirname / "3").mkdir(parents=True, exist_ok=True)
            Image.fromarray(split.images[i]).save(root / dirname / "3" / f"{i}.png")
    rows = ["name,label"] + [f"{p.relative_to(root).as_posix()},0" for p in sorted(root.rglob("*.png"))]
    for text, message in [("\n".join(rows[:-1] + ["train/3/0.png"]), "line 9 has 1 column"),
                          ("name,label\n".encode() + b"\xff\xfe,0\n", "not a UTF-8 CSV file")]:
        (root / "labels.csv").write_bytes(text if isinstance(text, bytes) else text.encode())
        with pytest.raises(MnistjaxError, match=message):
            data.load_folders(root, None)
    (root / "labels.csv").unlink()
    for make in (lambda p: p.symlink_to(tmp_path / "nowhere.png"), lambda p: p.symlink_to(p)):
        link = root / "train" / "3" / "zz.png"
        make(link)
        with pytest.raises(MnistjaxError, match="zz.png: not a readable file"):
            data.load_folders(root, tmp_path / "cache")
        link.unlink()


def test_sixteen_bit_pngs_are_scaled_not_clipped(tmp_path, tiny):
    root = tmp_path / "pngs"
    for dirname, split in (("train", tiny.train), ("valid", tiny.test)):
        for i in range(3):
            (root / dirname / "3").mkdir(parents=True, exist_ok=True)
            Image.fromarray(split.images[i].astype(np.uint16) * 257).save(root / dirname / "3" / f"{i}.png")
    ds = data.load_folders(root, None)
    np.testing.assert_array_equal(ds.train.images, tiny.train.images[:3])


def test_empty_splits_and_classes_are_refused(tmp_path, tiny):
    from mnistjax.data import write_idx

    for (split, kind), name in FILES.items():
        arr = getattr(getattr(tiny, split), kind)
        write_idx(tmp_path / f"{name}.gz", (arr[:0] if split == "test" else arr).astype("uint8"))
    proc = run_cli("train", "--data-dir", str(tmp_path), "--epochs", "1", check_rc=2)
    assert "t10k-images-idx3-ubyte.gz: no images" in proc.stderr
    proc = run_cli("baseline", "--dataset", "tiny", "--classes", "3,7", "--data-dir", "", check_rc=2)
    assert "--data-dir: '': expected a folder" in proc.stderr


# The download cache: repaired when broken, shared by processes, mirrors that trickle or stall.

class Handler(http.server.SimpleHTTPRequestHandler):
    """Serves good/ (the real files), slow/ (the real files, 64 KB every 0.02 s), trickle/ (1 byte
    every 0.1 s) and stall/ (headers, then nothing)."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        kind, _, name = self.path.strip("/").partition("/")
        if kind not in ("slow", "trickle", "stall"):
            return super().do_GET()
        body = Path(self.directory, "good", name).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        step, pause = {"slow": (65536, 0.02), "trickle": (1, 0.1), "stall": (0, 60)}[kind]
        try:
            for i in range(0, len(body), max(step, 1)):
                self.wfile.write(body[i:i + step])
                self.wfile.flush()
                time.sleep(pause)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture(scope="module")
def server(mnist_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("www")
    (root / "good").mkdir()
    for name in FILES.values():
        shutil.copy(mnist_dir / f"{name}.gz", root / "good")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: Handler(*a, directory=str(root)))
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_a_partial_or_corrupt_cache_is_repaired_not_replaced_by_tiny(server, mnist_dir, tmp_path):
    cache = mnist_cache(tmp_path)
    cache.mkdir(parents=True)
    shutil.copy(mnist_dir / "train-images-idx3-ubyte.gz", cache)  # as a first fetch cut short would leave it
    (cache / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b garbage")
    env = {"MNISTJAX_DATA": "", "MNISTJAX_CACHE": str(tmp_path)}
    out = json.loads(run_cli("data", "info", "--json", "--mirror", f"{server}/good", env=env).stdout)
    assert out["dataset"] == "mnist" and out["verified"]


def test_a_gzip_bomb_on_a_mirror_is_stopped_at_the_published_size(server, tmp_path):
    import tracemalloc

    from mnistjax.data import download

    bomb = tmp_path / "www" / "train-labels-idx1-ubyte.gz"
    bomb.parent.mkdir()
    with gzip.open(bomb, "wb", compresslevel=1) as f:
        for _ in range(64):
            f.write(bytes(1 << 22))  # 256 MB of zeros in 250 KB
    tracemalloc.start()
    why = download._verified(bomb, "train-labels-idx1-ubyte")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert why == "decompresses to more than the published 60,008 bytes" and peak < 8 << 20
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: Handler(*a, directory=str(bomb.parent))) as httpd:
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        data.fetch(tmp_path / "cache", [f"http://127.0.0.1:{httpd.server_address[1]}", f"{server}/good"], progress=False)
        httpd.shutdown()
    assert data.load_idx_dir(mnist_cache(tmp_path / "cache"), strict=True).verified  # the next mirror was tried


def test_trickling_and_stalling_mirrors_are_given_up_on(server, tmp_path):
    t = time.monotonic()
    data.fetch(tmp_path, [f"{server}/trickle", f"{server}/stall", f"{server}/good"], progress=False,
               timeout=1, min_rate=1000, grace=1)
    assert data.load_idx_dir(mnist_cache(tmp_path), strict=True).verified
    assert time.monotonic() - t < 4 * (1 + 1) + 20  # each file: ≈ 1 s of trickle, ≈ 1 s of stall, then the good one


def test_two_processes_fetching_into_one_cache_both_succeed(server, tmp_path):
    env = {**os.environ, "MNISTJAX_DATA": "", "MNISTJAX_CACHE": str(tmp_path), "MNISTJAX_MIRRORS": f"{server}/slow"}
    procs = [subprocess.Popen([sys.executable, "-m", "mnistjax.cli", *cmd, "--json"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for cmd in (["data", "fetch"], ["data", "info", "--dataset", "mnist"], ["data", "fetch"])]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert json.loads(out)["dataset"] == "mnist"
    assert sorted(p.name for p in mnist_cache(tmp_path).iterdir() if not p.name.startswith(".")) == \
        sorted(f"{n}.gz" for n in FILES.values())


# Kills and interrupts at random points.

def _history(folder: Path) -> int:
    with np.load(folder / checkpoint.FILENAME) as z:
        return len(json.loads(str(z["meta"]))["history"])


def test_kill_9_at_random_points_then_resume_ends_like_an_uninterrupted_run(tmp_path):
    args = ["train", "--dataset", "tiny", "--model", "simple_net", "--epochs", "400", "--json",
            "--compile-cache", str(tmp_path / "xla")]
    whole = json.loads(run_cli(*args, "--checkpoint-dir", str(tmp_path / "whole")).stdout)
    cut = tmp_path / "cut"
    for target in sorted(RNG.sample(range(5, 300), 3)):  # kill once the checkpoint has this many epochs
        proc = subprocess.Popen([sys.executable, "-m", "mnistjax.cli", *args, "--checkpoint-dir", str(cut)]
                                + (["--resume"] if (cut / checkpoint.FILENAME).exists() else []),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline, seen = time.monotonic() + 120, None
        while time.monotonic() < deadline:
            time.sleep(0.001)
            with contextlib.suppress(FileNotFoundError):  # read each checkpoint once, not a thousand times a second
                written = (cut / checkpoint.FILENAME).stat().st_mtime_ns
                if written != seen:
                    seen = written
                    if _history(cut) >= target:
                        break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL and _history(cut) < 400  # killed mid-run; the checkpoint whole
    resumed = json.loads(run_cli(*args, "--checkpoint-dir", str(cut), "--resume").stdout)
    assert resumed["history"] == whole["history"]
    assert [p.name for p in cut.iterdir() if p.name != ".lock"] == [checkpoint.FILENAME]  # no leftovers (.lock: the run's lock)


def test_ctrl_c_at_random_points_of_run_exits_130_at_once(tmp_path):
    interrupted, runs = 0, []
    for delay in (RNG.uniform(0.5, 3), RNG.uniform(3, 9)):
        proc = start_cli("run", "--dataset", "tiny", "--compile-cache", str(tmp_path / "xla"), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
        time.sleep(delay)
        t = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        runs.append((round(delay, 2), proc.returncode, round(time.monotonic() - t, 2), err[-300:]))
        if proc.returncode == 0:
            continue  # it had finished already
        interrupted += 1
        assert time.monotonic() - t < 2 and "Traceback" not in err, err
        assert proc.returncode in (130, -signal.SIGINT), err  # -SIGINT: interrupted while Python was starting
    assert interrupted, f"both runs finished before Ctrl-C: the first comes within 3 s, before any run can be done: {runs}"


DROPPED_INTERRUPT = """
import gc, os, signal, sys, threading, time
from mnistjax import background
sys.unraisablehook = background.resend_dropped_interrupts(sys.unraisablehook)
def slow(phase, info):  # Ctrl-C lands in a garbage collector's callback, as it may in JAX's
    t = time.monotonic()
    while phase == "start" and time.monotonic() - t < 0.5:
        pass
gc.callbacks.append(slow)
threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT)).start()
try:
    gc.collect()
    t = time.monotonic()
    while time.monotonic() - t < 10:
        pass
    print("ran on")
except KeyboardInterrupt:
    print("interrupted")
"""


def test_ctrl_c_dropped_inside_a_garbage_collector_callback_comes_again():
    proc = subprocess.run([sys.executable, "-c", DROPPED_INTERRUPT], capture_output=True, text=True, timeout=60)
    assert (proc.stdout, proc.stderr) == ("interrupted\n", ""), proc.stderr


INTERRUPTED_IMPORT = """
import os, signal, sys, time
class Held:  # holds JAX's import a moment and sends Ctrl-C meanwhile, as a user may while it loads
    def find_spec(self, name, path=None, target=None):
        if name == "jax":
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(10)
            except KeyboardInterrupt:  # raised inside jaxlib's C++ initialisation, it kills the process
                print("KeyboardInterrupt inside the import", flush=True)
                raise
sys.meta_path.insert(0, Held())
sys.argv = ["mnistjax", "recipes"]
from mnistjax import cli
cli.console()
"""


def test_ctrl_c_while_jax_loads_exits_130_at_once_without_an_exception_inside_the_import():
    t = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", INTERRUPTED_IMPORT], capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout, proc.stderr) == (130, "", "mnistjax: interrupted\n")
    assert time.monotonic() - t < 8


# Output paths, checked before any work starts.

@pytest.mark.parametrize("args,message", [
    (["train", "--figures", "{file}"], "--figures: {file}: not a folder"),
    (["train", "--figures", "/proc/nope"], "--figures: /proc/nope: cannot write here"),
    (["train", "--checkpoint-dir", "{file}"], "--checkpoint-dir: {file}: not a folder"),
    (["train", "--log", "{file}/log.csv"], "--log: {file}: not a folder"),
    (["train", "--log", "log.txt"], "--log: log.txt: expected a .jsonl or .csv file name"),
    (["train", "--checkpoint-every", "0"], "--checkpoint-every: 0: expected a positive integer"),
    (["run", "--figures", "{file}"], "--figures: {file}: not a folder"),
    (["baseline", "--figures", "{file}"], "--figures: {file}: not a folder"),
    (["sgd", "--figures", "{file}"], "--figures: {file}: not a folder"),
])
def test_every_output_path_is_checked_first(tmp_path, args, message):
    file = tmp_path / "a_file"
    file.write_text("")
    args = [a.format(file=file) for a in args] + (["--dataset", "tiny"] if args[0] != "sgd" else [])
    t = time.monotonic()
    proc = run_cli(*args, check_rc=2)
    assert proc.stderr == f"mnistjax: error: {message.format(file=file)}" + proc.stderr.split(message.format(file=file))[1]
    assert proc.stderr.count("\n") == 1 and proc.stdout == ""
    assert time.monotonic() - t < 30  # before the work, not after it


def test_a_cache_folder_that_cannot_be_written(tmp_path, mnist_dir):
    file = tmp_path / "a_file"
    file.write_text("")
    proc = run_cli("data", "fetch", "--cache-dir", str(file), check_rc=2)
    assert proc.stderr.startswith("mnistjax: error: --cache-dir: ") and "cannot write the downloads here" in proc.stderr
    env = {"MNISTJAX_CACHE": str(file), "MNISTJAX_COMPILE_CACHE": ""}  # a read-only cache: the run goes on without the compilation cache
    proc = run_cli("train", "--dataset", "tiny", "--epochs", "1", "--json", env=env)
    assert "note: no compilation cache" in proc.stderr and json.loads(proc.stdout)["valid_accuracy"] > 0.5
    readonly = tmp_path / "ro"
    shutil.copytree(mnist_dir, mnist_cache(readonly))  # it holds the data: they load, though nothing can be written
    env = {"MNISTJAX_DATA": "", "MNISTJAX_CACHE": str(readonly)}
    os.chmod(mnist_cache(readonly), 0o555)
    try:
        assert json.loads(run_cli("data", "info", "--json", env=env).stdout)["dataset"] == "mnist"
    finally:
        os.chmod(mnist_cache(readonly), 0o755)


def test_corrupt_compile_cache_entries_are_one_note_and_replaced(tmp_path):
    args = ["train", "--dataset", "tiny", "--model", "linear", "--epochs", "1", "--json", "--compile-cache", str(tmp_path)]
    first = json.loads(run_cli(*args).stdout)
    for entry in tmp_path.glob("*-cache"):
        b = bytearray(entry.read_bytes())
        b[len(b) // 2] ^= 0xFF
        entry.write_bytes(bytes(b))
    proc = run_cli(*args)
    notes = [line for line in proc.stderr.splitlines() if "compilation cache" in line]
    assert len(notes) == 1 and "could not read" in notes[0] and "Warning" not in proc.stderr
    assert json.loads(proc.stdout)["history"] == first["history"]
    assert "compilation cache" not in run_cli(*args).stderr  # replaced: the next run reads them


# Strict JSON from every command.

def strict(text: str):
    return json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))


@pytest.mark.parametrize("args,rc", [
    (["data", "info", "--dataset", "tiny"], 0), (["recipes"], 0), (["baseline", "--dataset", "tiny"], 0),
    (["sgd", "--lr", "1"], 0), (["sgd", "--lr", "1e30"], 0),
    (["train", "--dataset", "tiny", "--epochs", "1"], 0),
    (["train", "--dataset", "tiny", "--epochs", "1", "--lr", "1e30", "--loss", "cross_entropy"], 3),
    (["train", "--dataset", "tiny", "--epochs", "1", "--lrs", "0.1,1e30", "--loss", "cross_entropy"], 3),
])
def test_json_output_is_strict_everywhere(args, rc):
    out = strict(run_cli(*args, "--json", check_rc=rc).stdout)
    assert isinstance(out, dict) and out


# Files are data: code named by a model file or a config file runs only with --trust-code.

def test_a_forged_model_file_or_config_runs_no_code(tmp_path):
    from safetensors.numpy import save

    meta = {"format": "mnistjax-model/1", "spec": {"model": "os:system", "model_args": {"command": f"touch {tmp_path}/ran"},
                                                   "loss": "mnist_loss", "classes": ["3", "7"]}}
    (tmp_path / "m.safetensors").write_bytes(save({"params/1/w": np.zeros((784, 1), np.float32)},
                                                  {"mnistjax": json.dumps(meta)}))
    Image.new("L", (28, 28)).save(tmp_path / "d.png")
    for command in (["predict", str(tmp_path / "m.safetensors"), str(tmp_path / "d.png")],
                    ["interpret", str(tmp_path / "m.safetensors"), "--dataset", "tiny"]):
        proc = run_cli(*command, check_rc=2)
        assert proc.stderr.count("\n") == 1 and "built by code, os:system" in proc.stderr and "--trust-code" in proc.stderr
        proc = run_cli(*command, "--trust-code", check_rc=2)
        assert "os:system: not a model function" in proc.stderr
    (tmp_path / "evil.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w')\n")
    (tmp_path / "result.json").write_text(json.dumps({"config": {"model": f"{tmp_path}/evil.py:net", "epochs": 1}}))
    proc = run_cli("train", "--config", str(tmp_path / "result.json"), "--dataset", "tiny", check_rc=2)
    assert proc.stderr.startswith("mnistjax: error: --config: ") and "evil.py:net; run it only if you trust" in proc.stderr
    assert not (tmp_path / "ran").exists()


# Predictions on the model's own kind of data; pictures decoded one way for training and prediction.

def test_ink_in_the_alpha_channel_trains_as_it_predicts(tmp_path, tiny):
    root = tmp_path / "pngs"
    for dirname, split in (("train", tiny.train), ("valid", tiny.test)):
        for i in range(3):
            (root / dirname / "3").mkdir(parents=True, exist_ok=True)
            la = np.stack([np.zeros_like(split.images[i]), split.images[i]], -1)  # black ink, drawn in alpha only
            Image.fromarray(la, "LA").save(root / dirname / "3" / f"{i}.png")
    ds = data.load_folders(root, None)
    np.testing.assert_array_equal(ds.train.images, 255 - tiny.train.images[:3])  # dark ink on white paper, not all black
    from mnistjax import preprocess

    picture = preprocess.read_image(root / "train" / "3" / "0.png")
    np.testing.assert_allclose(picture * 255, ds.train.images[0], atol=0.5)


def test_a_model_of_other_data_trains_all_classes_and_predicts_pictures_as_it_trained(tmp_path, tiny):
    from mnistjax.data.idx import write_idx

    # Other data: the sample's digits dark on light and moved to a corner (not MNIST's form, nor its hash).
    moved = {s: np.pad(255 - getattr(tiny, s).images[:, 4:, 4:], ((0, 0), (0, 4), (0, 4)), constant_values=255)
             for s in ("train", "test")}
    for (split, kind), name in FILES.items():
        arr = moved[split] if kind == "images" else getattr(tiny, split).labels
        write_idx(tmp_path / f"{name}.gz", arr.astype("uint8"))
    out = json.loads(run_cli("train", "--data-dir", str(tmp_path), "--model", "cnn", "--opt", "adam", "--lr", "3e-3",
                             "--epochs", "3", "--batch-size", "64", "--save", str(tmp_path / "m.safetensors"),
                             "--json").stdout)
    assert out["dataset"] == "custom" and out["classes"] == [str(d) for d in range(10)]  # all classes, not 3 and 7
    for i in range(20):  # test pictures at twice the size, as a user would have them
        Image.fromarray(moved["test"][i]).resize((56, 56)).save(tmp_path / f"{i:02d}.png")
    labels = [str(d) for d in tiny.test.labels[:20]]
    results = {}
    for how in ("auto", "mnist"):
        pred = json.loads(run_cli("predict", str(tmp_path / "m.safetensors"), *sorted(map(str, tmp_path.glob("??.png"))),
                                  "--preprocess", how, "--json").stdout)
        results[pred["preprocess"]] = np.mean([p["class"] == y for p, y in zip(pred["predictions"], labels)])
    assert results["resize"] >= 0.8 and results["resize"] > results["mnist"], results


# Output targets that are not files, full disks, closed outputs, signals, shared checkpoint folders.

def test_non_regular_output_targets_are_refused_before_the_work(tmp_path):
    (tmp_path / "link.safetensors").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "out.jsonl").symlink_to("/proc/self/fd/1")
    (tmp_path / "figs" / "loss.png").mkdir(parents=True)
    for args, message in [(["--save", str(tmp_path)], f"--save: {tmp_path}: a folder"),
                          (["--save", str(tmp_path / "link.safetensors")], "link.safetensors: a link"),
                          (["--save", "/dev/null"], "--save: /dev/null: not a regular file (a device or a FIFO)"),
                          (["--log", str(tmp_path / "out.jsonl")], "out.jsonl: a link"),
                          (["--figures", str(tmp_path / "figs")], "figs/loss.png: not a regular file")]:
        proc = run_cli("train", "--dataset", "tiny", "--epochs", "1", *args, check_rc=2)
        assert message in proc.stderr and proc.stderr.count("\n") == 1 and proc.stdout == "", args
    assert Path("/dev/null").is_char_device()


def _limited(command: str, kbytes: int) -> subprocess.CompletedProcess:
    """A mnistjax command under a file-size limit (writes past it fail with EFBIG, as on a full disk)."""
    return subprocess.run(["bash", "-c", f"ulimit -f {kbytes}; exec {sys.executable} -m mnistjax.cli {command}"],
                          capture_output=True, text=True, timeout=300)


def test_a_full_disk_while_saving_or_logging_is_one_line_and_keeps_the_result(tmp_path):
    model = tmp_path / "m.safetensors"
    model.write_bytes(b"the old model")
    proc = _limited(f"train --dataset tiny --epochs 1 --save {model} --json", 40)  # simple_net: 95 KB
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith(f"mnistjax: error: --save: {model}: "
                                                                                     "cannot write (File too large)")
    assert json.loads(proc.stdout)["valid_accuracy"] > 0.5  # the result is printed all the same
    assert model.read_bytes() == b"the old model" and [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]
    log = tmp_path / "log.jsonl"
    proc = _limited(f"train --dataset tiny --model linear --epochs 50 --log {log} --json", 4)
    assert proc.returncode == 2 and f"--log: {log}: cannot write (File too large)" in proc.stderr
    lines = log.read_text().splitlines(keepends=True)
    assert lines and all(line.endswith("\n") and json.loads(line) for line in lines)  # whole records only
    for command in ("recipes >&-", "recipes > /dev/full"):
        proc = subprocess.run(["bash", "-c", f"{sys.executable} -m mnistjax.cli {command}"], capture_output=True, text=True)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "standard output" in proc.stderr, command


def test_sigterm_leaves_no_temp_file_and_a_second_run_cannot_share_a_checkpoint_folder(tmp_path):
    from mnistjax import checkpoint

    folder = tmp_path / "ck"
    dead = folder / ".checkpoint.npz.pid999999999.x.tmp"  # what a run killed mid-write left
    folder.mkdir()
    dead.write_bytes(b"half")
    proc = start_cli("train", "--dataset", "tiny", "--epochs", "400", "--checkpoint-dir", str(folder), "--json",
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(8)
    proc.terminate()
    proc.communicate(timeout=60)
    assert proc.returncode == 143 and not dead.exists() and not list(folder.glob("*.tmp"))
    with checkpoint.held(folder):  # another run holds it
        proc = run_cli("train", "--dataset", "tiny", "--epochs", "1", "--checkpoint-dir", str(folder), check_rc=2)
    assert "--checkpoint-dir: " in proc.stderr and "another run is training with this folder now" in proc.stderr


def test_every_odd_picture_gets_its_own_entry_and_names_are_printed_escaped(tmp_path):
    from mnistjax import layers, models, saved

    model = models.simple_net(1)
    path = saved.save_model(tmp_path / "m.safetensors", saved.Spec("simple_net", {}, "mnist_loss", ("3", "7"), model.arch),
                            *layers.init(model, __import__("jax").random.key(0)))
    pics = tmp_path / "pics"
    pics.mkdir()
    digit = np.zeros((28, 28), np.uint8)
    digit[4:24, 12:16] = 255
    Image.fromarray(digit).save(pics / "a good one\n\x1b[31mred.png")
    Image.new("L", (1, 1)).save(pics / "bomb.png")
    blob = bytearray((pics / "bomb.png").read_bytes())  # its header says 20000x20000: a decompression bomb
    blob[16:24] = (20000).to_bytes(4, "big") * 2
    blob[29:33] = zlib.crc32(blob[12:29]).to_bytes(4, "big")
    (pics / "bomb.png").write_bytes(bytes(blob))
    (pics / "dangling.png").symlink_to(pics / "nowhere.png")
    (pics / "loop.png").symlink_to(pics / "loop.png")
    os.mkfifo(pics / "fifo.png")
    proc = run_cli("predict", str(path), str(pics), check_rc=2)
    assert "\x1b" not in proc.stdout and "a good one\\n\\x1b[31mred.png: " in proc.stdout
    rows = {line.split(": ")[0]: line for line in proc.stdout.splitlines()}
    assert "too large a picture" in rows[f"{pics}/bomb.png"] and "no such file" in rows[f"{pics}/dangling.png"]
    assert "not a readable image" in rows[f"{pics}/loop.png"] and "not a regular file" in rows[f"{pics}/fifo.png"]
    assert proc.stderr.count("\n") == 1 and "4 of 5 images could not be predicted" in proc.stderr
    env = {"PYTHONIOENCODING": "ascii"}
    (pics / "fifo.png").unlink()
    proc = run_cli("predict", str(path), str(pics / "a good one\n\x1b[31mred.png"), str(tmp_path / "é.png"), env=env, check_rc=2)
    assert "\\xe9.png: ERROR no such file" in proc.stdout and "internal error" not in proc.stderr


# The library's inputs, checked at its public boundary.

def test_library_inputs_are_checked_at_the_boundary(tiny):
    import jax
    import jax.numpy as jnp
    import optax

    from mnistjax import layers, losses, models, prototypes, saved, training

    model = models.simple_net(1)
    m = saved.SavedModel(saved.Spec("simple_net", {}, "mnist_loss", ("3", "7")), model, losses.binary,
                         *layers.init(model, jax.random.key(0)), {})
    x = tiny.test.images[:8]
    means = jnp.zeros((2, 28, 28))
    learner = training.Learner(models.simple_net(), losses.binary, optax.sgd(0.1), batch_size=50)
    good = data.Data(jnp.zeros((200, 28, 28)), jnp.zeros(200, jnp.int32), jnp.zeros((20, 28, 28)), jnp.zeros(20, jnp.int32))
    ten = training.Learner(models.simple_net(10), losses.multiclass(10), optax.sgd(0.1), batch_size=50)
    cases = [
        (lambda: saved.probabilities(m, x), "images: uint8: expected floats"),
        (lambda: saved.probabilities(m, x[0] / 255.0), "images: shape (28, 28); expected (N, 28, 28)"),
        (lambda: prototypes.classify(jnp.asarray(x), means, jnp.arange(2)), "x: uint8: expected floats"),
        (lambda: training.fit(learner, good._replace(y_train=jnp.zeros(150, jnp.int32)), 1, jax.random.key(0)),
         "data.y_train: int32 of shape (150,); expected integer class indices, one per image (200,)"),
        (lambda: training.fit(learner, good._replace(y_train=jnp.full(200, 0.5)), 1, jax.random.key(0)),
         "data.y_train: float32 of shape (200,)"),
        (lambda: training.fit(learner, good._replace(y_valid=jnp.full(20, 5)), 1, jax.random.key(0)),
         "data.y_valid: labels from 5 to 5; expected class indices 0 to 1"),
        (lambda: training.fit(ten, good._replace(y_train=jnp.full(200, 12)), 1, jax.random.key(0)),
         "expected class indices 0 to 9"),
        (lambda: training.fit(learner, good._replace(x_train=jnp.zeros((200, 28, 28), jnp.uint8)), 1, jax.random.key(0)),
         "data.x_train: uint8: expected floats"),
        (lambda: training.fit(learner, good, 1, 0), "key: 0; expected jax.random.key(seed)"),
        (lambda: __import__("mnistjax").data.mnist_sample(tiny, (3, 11)),
         "classes: (3, 11); expected distinct class ids from 0 to 9"),
    ]
    for call, message in cases:
        with pytest.raises(MnistjaxError) as e:
            call()
        assert message in str(e.value) and "\n" not in str(e.value), (message, str(e.value))


# Plug-ins and arguments: the user's mistake named as such, never an internal error.

PLUGINS = '''
import sys
import jax.numpy as jnp
from mnistjax import layers

def int_logits(n_out=1) -> layers.Module:
    return layers.stateless(lambda p, x: jnp.zeros((len(x), n_out), jnp.int32))

def string_param(n_out=1) -> layers.Module:
    return layers.stateless(lambda p, x: x.reshape(len(x), -1)[:, :n_out], {"w": "abc"})

def asserts(n_out=1) -> layers.Module:
    import chex
    return layers.stateless(lambda p, x: (chex.assert_rank(x, 4), x)[1])

def exits(n_out=1) -> layers.Module:
    sys.exit(0)

def nan_from_the_start(n_out=1) -> layers.Module:
    return layers.sequential(layers.flatten(), layers.dense(784, n_out, init=lambda k, s, f: jnp.full(s, jnp.nan)))
'''


@pytest.mark.parametrize("name,message", [
    ("int_logits", "--model: the model gives int32 outputs; expected float logits"),
    ("string_param", "--model: the model fails on a batch of 2 images (TypeError"),
    ("asserts", "--model: the model fails on a batch of 2 images (AssertionError"),
    ("exits", "exits(n_out=1) failed (SystemExit: 0)"),
    ("nan_from_the_start", "the model's outputs are not finite from the start"),
])
def test_a_plug_in_that_fails_is_named(tmp_path, name, message):
    (tmp_path / "p.py").write_text(PLUGINS)
    proc = run_cli("train", "--dataset", "tiny", "--epochs", "1", "--model", f"{tmp_path}/p.py:{name}", check_rc=None)
    assert proc.returncode in (2, 3) and message in proc.stderr and "internal error" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 or proc.returncode == 3


def test_argument_values_are_checked_like_names_and_class_names_may_hold_commas(tmp_path, tiny):
    for args, message in [(["--opt", "adam", "--opt-arg", "b1=x"], "--opt-arg: adam argument b1='x': expected a number"),
                          (["--schedule", "cosine", "--schedule-arg", "alpha=[1,2]"], "alpha=[1, 2]: expected a number"),
                          (["--schedule", "warmup_cosine", "--schedule-arg", "warmup=200"],
                           "warmup is a fraction of the run, from 0 to under 1")]:
        proc = run_cli("train", "--dataset", "tiny", "--epochs", "1", *args, check_rc=2)
        assert message in proc.stderr and proc.stderr.count("\n") == 1
    from mnistjax.data.idx import write_idx

    for (split, kind), name in FILES.items():  # the sample upside down: other data, with names that hold commas
        arr = getattr(getattr(tiny, split), kind)
        write_idx(tmp_path / f"{name}.gz", (arr[:, ::-1] if kind == "images" else arr).astype("uint8"))
    (tmp_path / "classes.txt").write_text("zero\none,uno\n" + "".join(f"c{i}\n" for i in range(2, 10)))
    run_cli("train", "--data-dir", str(tmp_path), "--epochs", "1", "--save", str(tmp_path / "m.safetensors"))
    out = json.loads(run_cli("interpret", str(tmp_path / "m.safetensors"), "--json").stdout)
    assert out["classes"][:2] == ["zero", "one,uno"] and out["n"] == len(tiny.test.labels)


# Memory and sizes: what is read and what is asked for is bounded; running out is one line.

def test_sizes_and_memory_are_bounded(tmp_path):
    (tmp_path / "huge.toml").write_text("epochs = 99999999999999999999999\n")
    (tmp_path / "big.json").write_text(" " * (1 << 20) + "{}")
    for args, message in [(["train", "--config", "/dev/zero"], "--config: /dev/zero: not a regular file"),
                          (["train", "--config", str(tmp_path / "big.json")], "big.json: 1,048,578 bytes; expected a file"),
                          (["train", "--config", str(tmp_path / "huge.toml")], "--epochs: 99999999999999999999999: expected a number"),
                          (["sgd", "--steps", "1000000000"], "expected steps from 1 to 1,000,000"),
                          # 1.45e9 parameters: within the machine's total memory at 16 B each, not what training needs
                          (["train", "--model", "mlp", "--model-arg", "hidden=[1849000]"], "1,453,314,001 parameters need")]:
        proc = run_cli(*args, *(["--dataset", "tiny"] if args[0] == "train" else []), check_rc=2)
        assert message in proc.stderr and proc.stderr.count("\n") == 1, args
    proc = subprocess.run(["bash", "-c", f"ulimit -v 3000000; exec {sys.executable} -m mnistjax.cli train --dataset tiny "
                           "--model mlp --model-arg hidden=[400000] --epochs 1"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.startswith("mnistjax: error: out of memory")
