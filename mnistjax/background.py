"""What the ``mnistjax`` process does besides its command: the data it starts loading in a thread
before JAX is imported, JAX's persistent compilation cache (where it lives, and one note for the
entries it could not use), and its signals (SIGTERM, a Ctrl-C that Python would drop).
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import signal
import sys
import threading
import warnings
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from mnistjax import config, data
from mnistjax.data.load import is_local
from mnistjax.errors import MnistjaxError
from mnistjax.files import writable_dir
from mnistjax.parser import READS_DATA


def in_background(fn: Callable, *args, **kwargs) -> Future:
    """``fn(*args, **kwargs)`` in a daemon thread: one that never holds the process up (after Ctrl-C
    in a download, say), which a ``ThreadPoolExecutor``'s worker would."""
    future = Future()

    def run():
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as e:  # handed to whoever asks for the result
            future.set_exception(e)

    threading.Thread(target=run, daemon=True).start()
    return future


def start_loading(argv: list[str]):
    """For a command that reads data already here, start loading what its options name, before JAX is
    imported (zlib and hashlib release the GIL, so both go on at once). JAX-free: only the
    data options and the recipe or config file they may come from are read here. Returns
    (request, future) or None."""
    words = [a for a in argv if not a.startswith("-")][:2]
    if not words or words[-1] not in READS_DATA or (words[0] == "data") != (words[-1] == "info"):
        return None
    if words[0] == "interpret" and not {"--data-dir", "--dataset"} & {a.split("=")[0] for a in argv}:
        return None  # its data are the saved model's own, known once the model is read
    p = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for name in ("--data-dir", "--dataset", "--cache-dir", "--recipe", "--config"):
        p.add_argument(name)
    p.add_argument("--mirror", action="append")
    p.add_argument("--json", action="store_true")
    p.add_argument("--trust-code", action="store_true")
    known = p.parse_known_args(argv)[0]
    try:
        given = {k: v for k, v in (("dataset", known.dataset), ("data_dir", known.data_dir)) if v is not None}
        s = config.settings(known.recipe, known.config, given, known.trust_code) if words[-1] in ("train", "lr-find") else given
    except MnistjaxError:
        return None  # the full parse reports it
    request = (s.get("dataset", "auto"), s.get("data_dir"), known.cache_dir, tuple(known.mirror or ()))
    if not is_local(*request[:3]):
        return None  # a download: only once the command line is known to be right (its progress and errors show)
    return request, in_background(data.load, request[0], request[1], known.cache_dir, known.mirror, progress=not known.json)


def use_compile_cache(args: argparse.Namespace) -> Path | None:
    """Point JAX's persistent compilation cache at a folder, so a second run skips XLA compiles.
    A folder that cannot be written is a one-line note, and the run compiles without it."""
    if not args.compiles:
        return None
    import jax

    if args.no_compile_cache:  # none at all, not even one that $JAX_COMPILATION_CACHE_DIR names
        jax.config.update("jax_enable_compilation_cache", False)
        return None

    folder = Path(args.compile_cache or os.environ.get("MNISTJAX_COMPILE_CACHE")
                  or data.cache_dir(vars(args).get("cache_dir")) / "xla")
    try:
        writable_dir(folder, "compile_cache")
    except MnistjaxError as e:
        print(f"mnistjax: note: no compilation cache ({e.message}); compiling afresh", file=sys.stderr)
        return None
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return folder


@contextmanager
def compile_cache_trouble(folder: Path | None):
    """JAX warns of each cache entry it cannot read or write, on every run (it never replaces an entry):
    gather those into one note, and remove the unreadable entries so that this run's compiles replace them."""
    if folder is None:
        yield
        return
    trouble, show = {}, warnings.showwarning

    def hook(message, category, filename, lineno, file=None, line=None):
        m = re.match(r"Error (reading|writing) persistent compilation cache entry for '([^']+)'", str(message))
        if m:
            trouble.setdefault(m[1], set()).add(m[2])
        else:
            show(message, category, filename, lineno, file, line)

    warnings.showwarning = hook
    try:
        yield
    finally:
        warnings.showwarning = show
        for name in trouble.get("reading", ()):
            for entry in folder.glob(f"{glob.escape(name)}-*"):
                entry.unlink(missing_ok=True)
        if trouble:
            print(f"mnistjax: note: the compilation cache {folder} had entries it could not "
                  f"{' or '.join({'reading': 'read', 'writing': 'write'}[w] for w in trouble)} "
                  f"({len(set().union(*trouble.values()))} programs); "
                  "they were compiled afresh",
                  file=sys.stderr)


def import_jax() -> None:
    """Import JAX, Ctrl-C meanwhile ending the process at once with exit code 130: a KeyboardInterrupt
    raised inside jaxlib's C++ module initialisation kills the process (``std::terminate``: SIGABRT or
    SIGSEGV), and nothing is being written yet."""
    if "jax" in sys.modules or threading.current_thread() is not threading.main_thread():
        return
    previous = signal.signal(signal.SIGINT, _exit_interrupted)
    try:
        import jax  # noqa: F401
    finally:
        signal.signal(signal.SIGINT, previous)


INTERRUPTED = "mnistjax: interrupted"  # what Ctrl-C prints, on a line of its own


def _exit_interrupted(signum, frame):
    os.write(2, f"{INTERRUPTED}\n".encode())
    os._exit(130)


def handle_signals() -> None:
    """SIGTERM unwinds like an exception (a file being written is cleaned up), and a Ctrl-C that Python
    would drop is sent again (``resend_dropped_interrupts``)."""
    signal.signal(signal.SIGTERM, _terminate)
    sys.unraisablehook = resend_dropped_interrupts(sys.unraisablehook)


def _terminate(signum, frame):
    raise SystemExit(128 + signum)


def resend_dropped_interrupts(hook: Callable) -> Callable:
    """``sys.unraisablehook`` that sends Ctrl-C again, silently, when Python drops its KeyboardInterrupt:
    raised inside a garbage collector's callback (JAX registers one), it is only reported, and the run
    would go on to its end. Other unraisable exceptions go to ``hook``."""
    def unraisable(u):
        if u.exc_type is not None and issubclass(u.exc_type, KeyboardInterrupt):
            again = threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT))  # once out of the collector
            again.daemon = True
            again.start()
        else:
            hook(u)

    return unraisable
