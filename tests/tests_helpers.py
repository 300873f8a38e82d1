"""Helpers the tests share (not fixtures): running the real CLI in a subprocess."""

import os
import signal
import subprocess
import sys


def run_cli(*args, env=None, check_rc=0):
    """Run ``python -m mnistjax.cli ARGS``; assert its exit code (None: any)."""
    proc = subprocess.run([sys.executable, "-m", "mnistjax.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=900)
    if check_rc is not None:
        assert proc.returncode == check_rc, proc.stderr
    return proc


def start_cli(*args, env=None, **kwargs) -> subprocess.Popen:
    """Start ``python -m mnistjax.cli ARGS`` so that Ctrl-C reaches it as in a terminal. A job a shell starts
    in the background (``cmd &``) ignores SIGINT and its children inherit that (Python then never raises
    KeyboardInterrupt), so this process takes Python's usual handler back first; a handled signal is
    reset to its default in the child."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    return subprocess.Popen([sys.executable, "-m", "mnistjax.cli", *args], env={**os.environ, **(env or {})}, text=True,
                            **kwargs)
