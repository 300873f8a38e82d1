"""Shared fixtures: the real MNIST files from ../shared/data, and a sandboxed cache with no internet.

Tests that need the full data skip when it is absent, unless MNISTJAX_REQUIRE_DATA is set (as CI
does), in which case a missing file is a failure.
"""

import contextlib
import os
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"

# The suite checks what the code computes, not how fast: XLA's CPU code generated at -O1 instead of
# -O2 compiles sooner, and most of the suite's time is compiles. Not -O0: it compiles a fifth less but
# the tests that train for real run twice as long, and the whole suite is no faster (docs/speed.md).
# Set before JAX starts a backend, for this process and every one the tests start; a level in the
# caller's XLA_FLAGS wins.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=1".strip()


MIN_COMPILE_SECS = 0.5


@pytest.fixture(autouse=True, scope="session")
def _sandbox(tmp_path_factory):
    """No test writes to the user's cache or reaches the internet (port 9 refuses at once). One
    persistent XLA compilation cache serves the whole run, every xdist worker and every CLI process
    the tests start: most of the suite's time is compiling the same programs again (a test of the
    cache itself names its own folder). Only programs that took half a second or more to compile go
    in: writing and reading thousands of one-operation programs cost more than compiling them again
    (four test files: 134-138 s against 160-167 s with every program cached). A CLI command the
    tests run caches every program, as it does for a user."""
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "xla-cache"
    shared.mkdir(exist_ok=True)
    mp = pytest.MonkeyPatch()
    mp.setenv("MNISTJAX_CACHE", str(tmp_path_factory.mktemp("cache")))
    mp.setenv("MNISTJAX_MIRRORS", "http://127.0.0.1:9/")
    mp.setenv("MNISTJAX_COMPILE_CACHE", str(shared))
    # the same for notebook kernels and scripts
    for name, value in (("JAX_COMPILATION_CACHE_DIR", shared), ("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", 0),
                        ("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", MIN_COMPILE_SECS)):
        mp.setenv(name, str(value))
    import jax

    jax.config.update("jax_compilation_cache_dir", str(shared))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECS)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    yield
    mp.undo()


@pytest.fixture(autouse=True, scope="module")
def _release_programs():
    """After each test file, the compiled programs held in memory go (a worker otherwise keeps every
    one it ever compiled, gigabytes by the end); one needed again comes back from the cache above.
    Then the C heap's free pages go back to the system (glibc keeps a large array's freed pages)."""
    yield
    import ctypes
    import gc

    import jax

    jax.clear_caches()
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to give back this way
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _require(path: Path) -> Path:
    if not path.exists():
        if os.environ.get("MNISTJAX_REQUIRE_DATA"):
            pytest.fail(f"{path} is missing and MNISTJAX_REQUIRE_DATA is set")
        pytest.skip(f"needs {path} (the real MNIST files; MNISTJAX_DATA names their folder)")
    return path


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    return _require(Path(os.environ.get("MNISTJAX_DATA", SHARED / "mnist")).resolve())


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    from mnistjax.data import load_idx_dir

    return load_idx_dir(mnist_dir)


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory) -> Path:
    """The book's MNIST_SAMPLE PNG folders, extracted from ../shared/data/mnist_sample.tgz."""
    tgz = _require(SHARED / "mnist_sample.tgz")
    out = tmp_path_factory.mktemp("sample")
    with tarfile.open(tgz) as tar:
        tar.extractall(out, filter="data")
    return out / "mnist_sample"


@pytest.fixture(scope="session")
def tiny():
    from mnistjax.data import load_tiny

    return load_tiny()
