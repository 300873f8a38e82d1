"""Fetch the four MNIST files from a list of mirrors into the user cache, verified or not at all.

Each file is downloaded into a staging folder of this process inside the cache, decompressed and
checked against the published SHA-256 of the decompressed data, and only then renamed into place.
A failed, corrupt or interrupted download therefore never leaves a file where the loader looks; a
killed process leaves at most its staging folder, which the next fetch removes. Processes sharing a
cache take turns (a file lock): the second finds the files the first verified.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import sys
import tempfile
import time
import zlib
from pathlib import Path

from mnistjax.data.idx_dir import FILES, MNIST_SHA256, MNIST_SIZES
from mnistjax.errors import MnistjaxError
from mnistjax.files import alive, writable_dir

# Maintained public mirrors, most reliable first; the original host has been down for long stretches.
DEFAULT_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
_STAGING = re.compile(r"^\.staging-pid(\d+)-")
_UNREACHABLE = ("ConnectionError", "ConnectTimeout")  # no answer at all: offline, or a name that does not resolve


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
    """None when ``gz`` decompresses to the published bytes, else what is wrong with it. Streamed and
    hashed as it goes, never past the published size: a gzip bomb is stopped there, not inflated."""
    digest, size, limit = hashlib.sha256(), 0, MNIST_SIZES[name]
    try:
        with gzip.open(gz, "rb") as f:
            while chunk := f.read(min(1 << 20, limit + 1 - size)):
                digest.update(chunk)
                size += len(chunk)
                if size > limit:
                    return f"decompresses to more than the published {limit:,} bytes"
    except (OSError, EOFError, zlib.error) as e:
        return f"corrupt gzip ({e})"
    digest = digest.hexdigest()
    return None if digest == MNIST_SHA256[name] else f"SHA-256 {digest[:12]}… is not the published {MNIST_SHA256[name][:12]}…"


def _download(url: str, dest: Path, progress: bool, timeout: float, min_rate: float, grace: float) -> str | None:
    """Download ``url`` to ``dest``; None on success, else the reason it failed. Gives up on a mirror
    that sends nothing for ``timeout`` seconds, or whose average rate after ``grace`` seconds is
    below ``min_rate`` bytes/s (a trickle would otherwise hold the fetch forever)."""
    import requests
    import urllib3
    from tqdm import tqdm

    start, done = time.monotonic(), 0
    try:
        with requests.get(url, stream=True, timeout=timeout) as r, open(dest, "wb") as f:
            r.raise_for_status()
            with tqdm(total=int(r.headers.get("content-length", 0)) or None, unit="B", unit_scale=True, leave=False,
                      disable=not progress, desc=url.rsplit("/", 1)[-1], file=sys.stderr) as bar:
                while chunk := r.raw.read1(1 << 16, decode_content=True):  # what has arrived: checked between packets
                    f.write(chunk)
                    done += len(chunk)
                    bar.update(len(chunk))
                    elapsed = time.monotonic() - start
                    if elapsed > grace and done / elapsed < min_rate:
                        return f"too slow ({done / elapsed:.0f} B/s after {elapsed:.0f} s; expected at least {min_rate:.0f})"
    except (requests.RequestException, urllib3.exceptions.HTTPError) as e:  # raw reads raise urllib3's own
        return f"{type(e).__name__}: {e}".splitlines()[0][:200]
    return None


def _remove_dead_staging(target: Path) -> None:
    """Staging folders of processes that are gone (a live process's folder is its own)."""
    for entry in target.iterdir():
        m = _STAGING.match(entry.name)
        if m and not alive(int(m[1])):
            shutil.rmtree(entry, ignore_errors=True)


def fetch(root: str | os.PathLike | None = None, mirror_list: list[str] | None = None, progress: bool = True,
          timeout: float = 30.0, min_rate: float = 20_000.0, grace: float = 30.0) -> Path:
    """Make sure the cache holds the four verified MNIST files; returns the folder holding them.

    Files already there and verified are kept; missing or corrupt ones are fetched. For each the
    mirrors are tried in order; the first whose bytes verify wins. If every mirror fails, the error
    lists why each did. ``timeout``, ``min_rate``, ``grace``: when to give up on a mirror (see ``_download``).
    """
    from filelock import FileLock

    target = mnist_cache(cache_dir(root))
    writable_dir(target, "cache_dir", what="the downloads")
    with FileLock(target / ".fetch.lock"):
        _remove_dead_staging(target)
        staging = Path(tempfile.mkdtemp(prefix=f".staging-pid{os.getpid()}-", dir=target))
        try:
            for name in FILES.values():
                final = target / f"{name}.gz"
                if final.is_file() and _verified(final, name) is None:
                    continue
                final.unlink(missing_ok=True)
                _fetch_one(name, mirrors(mirror_list), staging / f"{name}.gz", final,
                           lambda url, dest: _download(url, dest, progress, timeout, min_rate, grace), progress)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _fetch_one(name: str, urls: list[str], part: Path, final: Path, download, progress: bool) -> None:
    failures = []
    for base in urls:
        why = download(f"{base}{name}.gz", part) or _verified(part, name)
        if why is None:
            os.replace(part, final)
            return
        part.unlink(missing_ok=True)
        failures.append(f"{base}: {why}")
        if progress and not why.startswith(_UNREACHABLE):  # a mirror that answered wrongly is news; offline is one line
            print(f"mnistjax: {base}{name}.gz failed ({why}); trying the next mirror", file=sys.stderr)
    if all(f.split(": ", 1)[1].startswith(_UNREACHABLE) for f in failures):
        raise MnistjaxError(f"no mirror could be reached ({len(failures)} tried; no network?)")
    raise MnistjaxError(f"could not download {name}.gz from any mirror ({'; '.join(failures)}); "
                        "check the connection, or name other mirrors ($MNISTJAX_MIRRORS) or a folder with the files")
