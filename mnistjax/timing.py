"""Wall-clock measurement for the benchmark scripts: medians, not single runs."""

import statistics
import subprocess
import time
from typing import Callable


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    """The median wall time of ``repeats`` calls of ``fn`` (which must block until its work is done)."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def command_seconds(cmd: list[str]) -> tuple[float, str]:
    """Run ``cmd`` to its end (``CalledProcessError`` if it fails): its wall seconds and its stdout."""
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return time.perf_counter() - t, out
