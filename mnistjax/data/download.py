"""Fetch the four MNIST files from a list of mirrors into the user cache, verified or not at all.

Each file is downloaded (by pooch's HTTP downloader) into a private staging folder inside the
cache, decompressed and checked against the published SHA-256 of the decompressed data, and
only then renamed into place. A failed, corrupt or interrupted download therefore never leaves
a file where the loader looks; a killed process leaves at most a ``.staging-*`` folder, which
the next fetch removes.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import sys
import tempfile
import zlib
from pathlib import Path

from mnistjax.data.idx_dir import FILES, MNIST_SHA256
from mnistjax.errors import MnistjaxError

# Maintained public mirrors, most reliable first; the original host has been down for long stretches.
DEFAULT_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """Where downloads and decoded-folder caches live: ``override``, ``$MNISTJAX_CACHE``, or the platform's user cache."""
    if override or os.environ.get("MNISTJAX_CACHE"):
        return Path(override or os.environ["MNISTJAX_CACHE"]).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("mnistjax"))


def mirrors(override: list[str] | None = None) -> list[str]:
    """The mirror list: ``override``, ``$MNISTJAX_MIRRORS`` (comma or space separated) or the defaults."""
    if override:
        found = list(override)
    elif os.environ.get("MNISTJAX_MIRRORS"):
        found = os.environ["MNISTJAX_MIRRORS"].replace(",", " ").split()
    else:
        found = list(DEFAULT_MIRRORS)
    return [m if m.endswith("/") else m + "/" for m in found]


def mnist_cache(root: Path) -> Path:
    return root / "mnist"


def _verified(gz: Path, name: str) -> str | None:
    """None when ``gz`` decompresses to the published bytes, else what is wrong with it."""
    try:
        data = gzip.decompress(gz.read_bytes())
    except (OSError, EOFError, zlib.error) as e:
        return f"corrupt gzip ({e})"
    digest = hashlib.sha256(data).hexdigest()
    return None if digest == MNIST_SHA256[name] else f"SHA-256 {digest[:12]}… is not the published {MNIST_SHA256[name][:12]}…"


def _download(url: str, dest: Path, progress: bool, timeout: float) -> str | None:
    """Download ``url`` to ``dest``; None on success, else the reason it failed."""
    import pooch
    import requests

    try:
        pooch.HTTPDownloader(progressbar=progress, timeout=timeout)(url, str(dest), None)
    except requests.RequestException as e:
        return f"{type(e).__name__}: {e}".splitlines()[0][:200]
    return None


def fetch(root: str | os.PathLike | None = None, mirror_list: list[str] | None = None,
          progress: bool = True, timeout: float = 30.0) -> Path:
    """Make sure the cache holds the four verified MNIST files; returns the folder holding them.

    Files already there and verified are kept. For each missing file the mirrors are tried in
    order; the first whose bytes verify wins. If every mirror fails, the error lists why each did.
    """
    target = mnist_cache(cache_dir(root))
    target.mkdir(parents=True, exist_ok=True)
    for stale in target.glob(".staging-*"):  # left by a killed process; never read as data
        shutil.rmtree(stale, ignore_errors=True)
    urls = mirrors(mirror_list)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target))
    try:
        for name in FILES.values():
            final = target / f"{name}.gz"
            if final.is_file() and _verified(final, name) is None:
                continue
            final.unlink(missing_ok=True)
            failures = []
            for base in urls:
                part = staging / f"{name}.gz"
                why = _download(f"{base}{name}.gz", part, progress, timeout) or _verified(part, name)
                if why is None:
                    os.replace(part, final)
                    break
                part.unlink(missing_ok=True)
                failures.append(f"{base}: {why}")
                if progress:
                    print(f"mnistjax: {base}{name}.gz failed ({why}); trying the next mirror", file=sys.stderr)
            else:
                raise MnistjaxError(
                    f"could not download {name}.gz from any mirror ({'; '.join(failures)}); "
                    "check the connection, or name other mirrors ($MNISTJAX_MIRRORS) or a folder with the files"
                )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
