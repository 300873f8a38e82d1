"""The one exception type for bad input: the CLI turns it into one line and exit code 2."""

from __future__ import annotations


class MnistjaxError(ValueError):
    """Bad input from the user: a file, folder, argument or checkpoint that is not as expected.

    The message names the thing and what was expected, in one line. ``param``: the library parameter
    it is about (say "batch_size"), shown in front of the message; the CLI shows its flag instead.
    """

    def __init__(self, message: str, param: str | None = None):
        super().__init__(f"{param}: {message}" if param else message)
        self.message, self.param = message, param


class TrainingDiverged(MnistjaxError):
    """The training loss went non-finite; the CLI exits 3 after printing what was done."""
