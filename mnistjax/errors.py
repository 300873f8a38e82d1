"""The one exception type for bad input (the CLI turns it into one line and exit code 2), and the
checks at public boundaries that raise it."""

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


def expect_floats(x, param: str) -> None:
    """``x`` is an array of floats (images in [0, 1]; uint8 pixels 0..255 and integer arrays are the
    usual mistake), or a one-line MnistjaxError naming ``param``."""
    import jax.numpy as jnp

    dtype = getattr(x, "dtype", None)
    if dtype is None or not jnp.issubdtype(dtype, jnp.floating):
        raise MnistjaxError(f"{dtype or type(x).__name__}: expected floats (images as float32 in [0, 1]: "
                            "data.as_float(uint8 images))", param=param)


def check_arguments(fn, args: dict, name: str, param: str, fixed: tuple[str, ...] = ()) -> None:
    """``args`` are arguments that ``fn`` (called ``name``) takes, by its signature (nothing is called),
    and none of the ``fixed`` ones that mnistjax sets itself; else a one-line MnistjaxError naming
    ``param``. The one such check for models, optimizers and schedules."""
    import inspect

    takes = inspect.signature(fn).parameters
    open_ended = any(p.kind is p.VAR_KEYWORD for p in takes.values())
    unknown = [k for k in args if k in fixed or not (k in takes or open_ended)]
    if unknown:
        why = f" ({unknown[0]} is set by mnistjax)" if unknown[0] in fixed else ""
        raise MnistjaxError(f"{name} takes no argument {unknown[0]!r}{why}; expected some of "
                            f"{', '.join(p for p in takes if p not in fixed) or 'none'}", param=param)
