"""Downloads against a real HTTP server on 127.0.0.1: mirror fall-through, hash checks, no leftovers."""

import gzip
import http.server
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mnistjax import data
from mnistjax.data.download import mnist_cache
from mnistjax.data.idx_dir import FILES
from mnistjax.errors import MnistjaxError
from tests_helpers import start_cli


class Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the folder; /cut/NAME sends half of NAME then hangs up; /slow/NAME trickles it."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        for prefix in ("/cut/", "/slow/"):
            if self.path.startswith(prefix):
                body = Path(self.directory, "good", self.path[len(prefix):]).read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if prefix == "/cut/":
                    self.wfile.write(body[: len(body) // 2])
                else:
                    for i in range(0, len(body), 4096):
                        self.wfile.write(body[i:i + 4096])
                        time.sleep(0.05)
                return
        super().do_GET()


@pytest.fixture(scope="module")
def server(mnist_dir, tmp_path_factory):
    """http://127.0.0.1:PORT/ with good/ (the real files), bad/ (corrupt bytes), empty/ (404s)."""
    root = tmp_path_factory.mktemp("www")
    (root / "good").mkdir()
    (root / "bad").mkdir()
    (root / "empty").mkdir()
    for name in FILES.values():
        shutil.copy(mnist_dir / f"{name}.gz", root / "good")
        raw = bytearray(gzip.decompress((mnist_dir / f"{name}.gz").read_bytes()))
        raw[-1] ^= 0xFF  # one flipped pixel: valid gzip, valid IDX, wrong hash
        (root / "bad" / f"{name}.gz").write_bytes(gzip.compress(bytes(raw), compresslevel=1))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: Handler(*a, directory=str(root)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def cache_files(cache: Path) -> list[str]:
    folder = mnist_cache(cache)
    return sorted(p.name for p in folder.iterdir() if p.name != ".fetch.lock") if folder.exists() else []  # the lock stays


def test_falls_through_404_and_corrupt_mirrors_to_a_good_one(server, tmp_path, capsys):
    folder = data.fetch(tmp_path, [f"{server}/empty", f"{server}/bad", f"{server}/good"], progress=True)
    assert cache_files(tmp_path) == sorted(f"{n}.gz" for n in FILES.values())  # no leftovers
    ds = data.load_idx_dir(folder, strict=True)
    assert ds.verified and len(ds.train) == 60000
    err = capsys.readouterr().err
    assert "404" in err and "is not the published" in err
    # a second fetch keeps the verified files and downloads nothing
    data.fetch(tmp_path, [f"{server}/empty"], progress=False)


def test_cached_data_is_used_by_load(server, tmp_path, monkeypatch):
    monkeypatch.delenv("MNISTJAX_DATA", raising=False)
    ds = data.load("mnist", cache_dir=tmp_path, mirrors=[f"{server}/good"], progress=False)
    assert ds.name == "mnist" and ds.source == str(mnist_cache(tmp_path).resolve())


def test_interrupted_transfer_leaves_nothing(server, tmp_path):
    with pytest.raises(MnistjaxError, match=r"could not download train-images-idx3-ubyte.gz from any mirror"):
        data.fetch(tmp_path, [f"{server}/cut"], progress=False)
    assert cache_files(tmp_path) == []


def test_all_bad_mirrors_give_one_clear_error(server, tmp_path):
    with pytest.raises(MnistjaxError) as e:
        data.fetch(tmp_path, [f"{server}/empty", f"{server}/bad"], progress=False)
    message = str(e.value)
    assert "404" in message and "is not the published" in message and "other mirrors" in message
    assert cache_files(tmp_path) == []


def test_corrupted_cache_is_refused_not_trusted(server, tmp_path):
    folder = data.fetch(tmp_path, [f"{server}/good"], progress=False)
    target = folder / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(target.read_bytes()))
    raw[-1] = (raw[-1] + 1) % 10
    target.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(MnistjaxError, match="does not match the published"):
        data.load_idx_dir(folder, strict=True)
    data.fetch(tmp_path, [f"{server}/good"], progress=False)  # fetch replaces the bad file
    assert data.load_idx_dir(folder, strict=True).verified


def test_killed_download_leaves_nothing_that_verifies(server, tmp_path, monkeypatch):
    monkeypatch.delenv("MNISTJAX_DATA", raising=False)
    env = {**os.environ, "MNISTJAX_CACHE": str(tmp_path), "MNISTJAX_MIRRORS": f"{server}/slow"}
    proc = subprocess.Popen([sys.executable, "-m", "mnistjax.cli", "data", "fetch", "--json"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    staging = mnist_cache(tmp_path)
    deadline = time.monotonic() + 60
    while not any(staging.glob(".staging-*/*.gz")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert [n for n in cache_files(tmp_path) if not n.startswith(".staging-")] == []
    with pytest.raises(MnistjaxError):  # with dead mirrors, what is left does not load as MNIST
        data.load("mnist", cache_dir=tmp_path, mirrors=["http://127.0.0.1:9/"], progress=False)
    data.fetch(tmp_path, [f"{server}/good"], progress=False)  # the next fetch cleans up
    assert not any(n.startswith(".staging-") for n in cache_files(tmp_path))


def test_ctrl_c_during_a_download_exits_at_once(server, tmp_path, monkeypatch):
    # The CLI loads the data in a thread while it imports JAX: Ctrl-C must not wait for that thread.
    monkeypatch.delenv("MNISTJAX_DATA", raising=False)
    proc = start_cli("data", "info", "--dataset", "mnist", "--json", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                     env={"MNISTJAX_CACHE": str(tmp_path), "MNISTJAX_MIRRORS": f"{server}/slow"})
    deadline = time.monotonic() + 60
    while not any(mnist_cache(tmp_path).glob(".staging-*/*.gz")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(3)  # JAX imported by now (a Ctrl-C inside an extension's import can fail in other ways)
    proc.send_signal(signal.SIGINT)
    try:
        rc = proc.wait(timeout=15)  # the trickled download itself takes minutes
    finally:
        proc.kill()
    assert rc == 130 and "mnistjax: interrupted" in proc.stderr.read()
