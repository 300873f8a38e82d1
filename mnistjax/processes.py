"""Several processes, one run or sweep: JAX's own distributed runtime (``jax.distributed``; gloo
collectives on CPUs, NCCL or ICI on accelerators). Every process runs the same command; after
``start`` each one sees every process's devices (``jax.devices()``), so the meshes of ``mesh`` span
them all: one model's batches split over every device, a sweep's runs spread over them. Process 0
alone writes the result, logs and files; the others' standard output goes to their standard error,
with the runtime's own chatter (gloo's connection lines) of every process.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

from mnistjax.errors import MnistjaxError


def start(coordinator: str | None, num_processes: int | None, process_id: int | None, auto: bool,
          timeout: int) -> bool:
    """Join the run's processes (``jax.distributed.initialize``) when the flags ask for it: the three
    of ``--coordinator HOST:PORT --num-processes N --process-id I``, or ``auto`` (SLURM, Open MPI and
    TPU pods describe the job themselves). Returns whether there are several processes."""
    given = [coordinator, num_processes, process_id]
    if not auto and all(v is None for v in given):
        return False
    if not auto and any(v is None for v in given):
        raise MnistjaxError("expected all three of --coordinator HOST:PORT, --num-processes N and --process-id I "
                            "(or --distributed auto)", param="coordinator")
    if not auto and not 0 <= process_id < num_processes:
        raise MnistjaxError(f"{process_id}: expected 0 to {num_processes - 1}", param="process_id")
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # before the backend starts
    _stdout_to_stderr()
    try:
        jax.distributed.initialize(*given, initialization_timeout=timeout) if not auto else jax.distributed.initialize(
            initialization_timeout=timeout)
    except Exception as e:  # noqa: BLE001 -- the runtime's own error, whatever it is: one line naming the address
        where = coordinator or "the coordinator the cluster names"
        raise MnistjaxError(f"{where}: could not join the run's processes within {timeout} s "
                            f"({type(e).__name__}: {' '.join(str(e).split())[:160]})", param="coordinator") from None
    print(f"mnistjax: process {jax.process_index()} of {jax.process_count()}", file=sys.stderr, flush=True)
    return True


_RESULT_FD = None  # where process 0's result goes: the standard output it was started with


def _stdout_to_stderr() -> None:
    """Keep the real standard output for the result alone; anything else printed there (the runtime's
    chatter, in C++) goes to standard error."""
    global _RESULT_FD
    sys.stdout.flush()
    _RESULT_FD = os.dup(1)
    os.dup2(2, 1)


def is_main() -> bool:
    """Process 0 (or the only one): the one that writes results, logs and files."""
    import jax

    return jax.process_index() == 0


def result_stream():
    """Where the result is printed: the saved standard output on process 0 of several, None on the
    others (they print none), ``sys.stdout`` otherwise."""
    if _RESULT_FD is None:
        return sys.stdout
    if not is_main():
        return None
    return os.fdopen(os.dup(_RESULT_FD), "w", encoding=sys.stdout.encoding, errors="backslashreplace")


def same_command(settings: dict) -> None:
    """Refuse (one line, in every process) when the processes were given different settings: each
    would train a different run and the collectives would mix them. Each process's hash goes to all."""
    import numpy as np
    from jax.experimental import multihost_utils

    digest = np.frombuffer(hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).digest()[:8], np.uint32)
    every = np.asarray(multihost_utils.process_allgather(digest))
    other = [i for i, d in enumerate(every) if not np.array_equal(d, every[0])]
    if other:
        raise MnistjaxError(f"process {other[0]} was given other settings than process 0; expected the same command "
                            "in every process", param="process_id")
