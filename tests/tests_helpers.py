"""Helpers the tests share (not fixtures): running the real CLI, in this process or in a new one."""

import contextlib
import gc
import io
import os
import signal
import subprocess
import sys

import jax

# What a process sets up once, when it starts: JAX's flags and devices, Python's streams (the environment),
# JAX's compilation cache and its distributed runtime (the options). A run naming one needs a process of its own.
STARTUP_ENV = ("XLA_FLAGS", "JAX_", "TF_CPP", "PYTHON")
STARTUP_ARGS = ("--compile-cache", "--coordinator", "--distributed")
# What a command may change in JAX's configuration (the compilation cache): put back after an in-process run.
JAX_SETTINGS = ("jax_enable_compilation_cache", "jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
                "jax_persistent_cache_min_entry_size_bytes")


def forced_devices(n: int) -> dict:
    """The environment of a process with N CPU devices: XLA_FLAGS as this process has them (the suite's
    compile settings), and XLA's forced host device count."""
    return {"XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={n}".strip()}


def run_cli(*args, env=None, check_rc=0, process=False):
    """Run the CLI with ARGS and assert its exit code (None: any). In this process (``cli.main``, its
    output captured, ``env`` set for the call: no interpreter and JAX to start, the programs compiled
    by earlier calls still at hand) unless ``process`` or ``env`` sets what a process reads when it
    starts (``STARTUP_ENV``, ``STARTUP_ARGS``); then ``python -m mnistjax.cli ARGS``, as a user runs it."""
    env = env or {}
    if process or any(name.startswith(STARTUP_ENV) for name in env) or any(a in STARTUP_ARGS for a in args):
        proc = subprocess.run([sys.executable, "-m", "mnistjax.cli", *args], capture_output=True, text=True,
                              env={**os.environ, **env}, timeout=900)
    else:
        proc = _in_process(list(args), env)
    if check_rc is not None:
        assert proc.returncode == check_rc, proc.stderr
    return proc


def _in_process(argv: list[str], env: dict) -> subprocess.CompletedProcess:
    from mnistjax import cli

    streams = [io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True) for _ in range(2)]
    settings = {name: getattr(jax.config, name) for name in JAX_SETTINGS}
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update({k: str(v) for k, v in env.items()})
    try:
        with contextlib.redirect_stdout(streams[0]), contextlib.redirect_stderr(streams[1]):
            try:
                code = cli.main(argv)
            except SystemExit as e:  # argparse's usage errors
                code = e.code if isinstance(e.code, int) else 2
    finally:
        gc.unfreeze()  # main freezes what is alive for a fast exit: this process goes on
        for name, value in saved.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value
        for name, value in settings.items():
            jax.config.update(name, value)
    out, err = (s.buffer.getvalue().decode() for s in streams)
    return subprocess.CompletedProcess(["mnistjax", *argv], code, out, err)


def start_cli(*args, env=None, **kwargs) -> subprocess.Popen:
    """Start ``python -m mnistjax.cli ARGS`` so that Ctrl-C reaches it as in a terminal. A job a shell starts
    in the background (``cmd &``) ignores SIGINT and its children inherit that (Python then never raises
    KeyboardInterrupt), so this process takes Python's usual handler back first; a handled signal is
    reset to its default in the child."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    return subprocess.Popen([sys.executable, "-m", "mnistjax.cli", *args], env={**os.environ, **(env or {})}, text=True,
                            **kwargs)
