"""Helpers the tests share (not fixtures): running the real CLI in a subprocess."""

import os
import subprocess
import sys


def run_cli(*args, env=None, check_rc=0):
    """Run ``python -m mnistjax.cli ARGS``; assert its exit code (None: any)."""
    proc = subprocess.run([sys.executable, "-m", "mnistjax.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=900)
    if check_rc is not None:
        assert proc.returncode == check_rc, proc.stderr
    return proc
