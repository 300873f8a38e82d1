"""The one exception type for bad input: the CLI turns it into one line and exit code 2."""


class MnistjaxError(ValueError):
    """Bad input from the user: a file, folder, argument or checkpoint that is not as expected.

    The message names the thing and what was expected, in one line.
    """


class TrainingDiverged(MnistjaxError):
    """The training loss went non-finite; the CLI exits 3 after printing what was done."""
