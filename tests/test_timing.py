"""The benchmark scripts' clocks: medians of calls, and a command's wall time with its output."""

import subprocess
import sys

import pytest

from mnistjax.timing import command_seconds, median_seconds


def test_median_seconds_calls_the_function_each_time():
    calls = []
    assert median_seconds(lambda: calls.append(1), 3) >= 0 and len(calls) == 3


def test_command_seconds_gives_stdout_and_fails_loudly():
    seconds, out = command_seconds([sys.executable, "-c", "print('hi')"])
    assert out == "hi\n" and seconds > 0
    with pytest.raises(subprocess.CalledProcessError):
        command_seconds([sys.executable, "-c", "raise SystemExit(3)"])
