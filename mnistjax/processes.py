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
import threading
import time

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
    where = coordinator or "the coordinator the cluster names"
    # The runtime aborts with a stack trace when its own wait runs out: ours, a little shorter, says it in a line.
    late = threading.Timer(timeout, _stop, [f"--coordinator: {where}: not every process joined within {timeout} s "
                                            "(--distributed-timeout); expected the same command in each, started together"])
    late.daemon = True
    late.start()
    kwargs = {"initialization_timeout": timeout + 30, "heartbeat_timeout_seconds": 3 * STOPPED_AFTER}
    try:
        jax.distributed.initialize(*given, **kwargs)  # all None with auto: the cluster's variables
    except Exception as e:  # noqa: BLE001 -- the runtime's own error, whatever it is: one line naming the address
        raise MnistjaxError(f"{where}: could not join the run's processes ({type(e).__name__}: "
                            f"{' '.join(str(e).split())[:160]})", param="coordinator") from None
    finally:
        late.cancel()
    print(f"mnistjax: process {jax.process_index()} of {jax.process_count()}", file=sys.stderr, flush=True)
    threading.Thread(target=_watch, args=(where,), daemon=True).start()
    return True


STOPPED_AFTER = 10  # seconds without a sign of life from another process before this one gives up
_FINISHED = threading.Event()


def _stop(message: str) -> None:
    """One line on standard error and exit 2, from any thread, whatever the main thread is waiting for."""
    print(f"mnistjax: error: {message}", file=sys.stderr, flush=True)
    os._exit(2)


def _read(client, key: str) -> str | None:
    try:
        return client.key_value_try_get(key)
    except Exception:  # noqa: BLE001 -- not written yet
        return None


def _watch(where: str) -> None:
    """Every second, this process's beat in the runtime's key-value store, and the others' read: a
    process whose beat stops for ``STOPPED_AFTER`` seconds before it finished (killed, or stuck), or
    a coordinator that no longer answers, ends this one with one line instead of a wait in a
    collective that never ends."""
    import jax
    from jax._src import distributed

    client, me, n = distributed.global_state.client, jax.process_index(), jax.process_count()
    beats, seen, count = {}, dict.fromkeys(range(n), time.monotonic()), 0
    while not _FINISHED.is_set():
        count += 1
        try:
            client.key_value_set(f"mnistjax/beat/{me}", str(count), allow_overwrite=True)
        except Exception as e:  # noqa: BLE001 -- the coordinator is gone
            if not _FINISHED.is_set():
                _stop(f"--coordinator: {where}: lost the run's coordinator, process 0 ({' '.join(str(e).split())[:100]})")
        for i in set(range(n)) - {me}:
            beat = _read(client, f"mnistjax/beat/{i}")
            if beat != beats.get(i) or _read(client, f"mnistjax/done/{i}"):
                beats[i], seen[i] = beat, time.monotonic()
        stopped = [i for i in range(n) if i != me and time.monotonic() - seen[i] > STOPPED_AFTER]
        if stopped and not _FINISHED.is_set():
            _stop(f"process {stopped[0]} of {n} stopped (no sign of it for {STOPPED_AFTER} s); this one stops too")
        time.sleep(1)


def finish() -> None:
    """The command is done here: say so to the others, and leave the runtime together with them."""
    import jax
    from jax._src import distributed

    _FINISHED.set()
    distributed.global_state.client.key_value_set(f"mnistjax/done/{jax.process_index()}", "1", allow_overwrite=True)
    jax.distributed.shutdown()


_RESULT_FD = None  # where process 0's result goes: the standard output it was started with


def _stdout_to_stderr() -> None:
    """Keep the real standard output for the result alone; anything else printed there (the runtime's
    chatter, in C++) goes to standard error."""
    global _RESULT_FD
    sys.stdout.flush()
    _RESULT_FD = os.dup(1)
    os.dup2(2, 1)


def joined() -> bool:
    """Whether this process is one of several (``start`` joined them)."""
    return _RESULT_FD is not None


def unfinished() -> bool:
    """One of several that did not finish its command (an error): it must leave at once, not wait at
    exit for the others to leave the runtime with it."""
    return joined() and not _FINISHED.is_set()


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


def across(cfg, settings: dict):
    """``cfg`` (a RunConfig) over every process's devices unless its ``devices`` names fewer, after
    ``same_command(settings)``. Checkpoints are written by process 0 and, to resume, read by each
    from a folder they share."""
    import dataclasses

    same_command(settings)
    return cfg if cfg.devices is not None else dataclasses.replace(cfg, devices="all")


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
