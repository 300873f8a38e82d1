"""Files written safely: atomically (temp file + rename), with leftovers of killed processes cleaned up."""

from __future__ import annotations

import csv
import errno
import io
import json
import math
import os
import re
import tempfile
from pathlib import Path

from mnistjax.errors import MnistjaxError

_TEMP = re.compile(r"^\..+\.pid(\d+)\.[^.]+\.tmp$")


def _cannot_write(path, e: OSError, param: str | None = None) -> MnistjaxError:
    return MnistjaxError(f"{path}: cannot write ({e.strerror or e}); nothing was written there", param=param)


def atomic_write(path: str | os.PathLike, data: bytes, param: str | None = None) -> None:
    """Write ``data`` to a temp file beside ``path`` and rename it: no half-written file, ever. A
    full disk or a file-size limit is a one-line MnistjaxError (naming ``param``), the old file intact.

    The temp file's name carries this process's id, so ``remove_stale_temps`` can tell a dead
    writer's leftover (a killed earlier write of this or another file, removed here first) from a
    live writer's file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.pid{os.getpid()}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a data file is for everyone to read
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            raise _cannot_write(path, e, param) from None
        raise


def refuse_irregular(path: str | os.PathLike, expected: str, param: str | None = None) -> None:
    """A one-line MnistjaxError when ``path`` exists but is no regular file: a FIFO or a device
    (``/dev/zero``) would block or never end the read, a folder holds no data."""
    if Path(path).exists() and not Path(path).is_file():
        raise MnistjaxError(f"{path}: not a regular file; expected {expected}", param=param)


def read_table(path: str | os.PathLike, expected: str, param: str, max_bytes: int) -> dict:
    """A TOML (``.toml``) or JSON file's table, read as data (nothing in it runs), or a one-line
    MnistjaxError naming ``param`` when it is not a regular file, is over ``max_bytes``, or is no table."""
    import tomllib

    path = Path(path)
    refuse_irregular(path, f"{expected} (TOML or JSON)", param)
    if path.is_file() and path.stat().st_size > max_bytes:
        raise MnistjaxError(f"{path}: {path.stat().st_size:,} bytes; expected {expected} (at most {max_bytes:,} bytes)",
                            param=param)
    try:
        text = path.read_text()
        d = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except OSError as e:
        raise MnistjaxError(f"{path}: cannot read ({e.strerror or e})", param=param) from None
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise MnistjaxError(f"{path}: not valid {'TOML' if path.suffix == '.toml' else 'JSON'} ({e})", param=param) from None
    if not isinstance(d, dict):
        raise MnistjaxError(f"{path}: expected {expected}, a table", param=param)
    return d


def _not_replaceable(path: Path) -> bool:
    """A link, or something there that is no regular file: never replaced by a file of ours."""
    return path.is_symlink() or (path.exists() and not path.is_file())


def output_file(path: str | os.PathLike, param: str) -> Path:
    """``path`` as a file mnistjax may write (a new name, or a regular file it replaces, in a writable
    folder), or a one-line error naming ``param``, checked before any work: a folder, a link, a
    device (/dev/null) or a FIFO is never replaced."""
    path = Path(path)
    if _not_replaceable(path):
        what = "a link" if path.is_symlink() else "a folder" if path.is_dir() else "not a regular file (a device or a FIFO)"
        raise MnistjaxError(f"{path}: {what}; expected a new file name or a regular file to replace", param=param)
    writable_dir(path.parent, param)
    return path


def writable_dir(path: str | os.PathLike, param: str, suffix: str | None = None, what: str = "") -> Path:
    """``path`` as a folder that exists and takes files (created if need be), where everything below
    it ending in ``suffix`` is a regular file that can be replaced, or a one-line error naming
    ``param`` (and ``what`` would be written there): checked before any work starts, so no result is
    lost at the end. The one writable-folder probe of the package."""
    folder = Path(path)
    odd = next(filter(_not_replaceable, folder.rglob(f"*{suffix}")), None) if suffix and folder.is_dir() else None
    if odd is not None:
        raise MnistjaxError(f"{odd}: not a regular file; expected a folder whose {suffix} files can be replaced",
                            param=param)
    if folder.exists() and not folder.is_dir():
        raise MnistjaxError(f"{path}: not a folder (a file of that name exists); expected a folder to write into",
                            param=param)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as e:
        raise MnistjaxError(f"{path}: cannot write {what + ' ' if what else ''}here ({e.strerror or e}); expected a "
                            "writable folder", param=param) from None
    return folder


def open_log(path: str | os.PathLike, param: str = "log", append: bool = False, swept: tuple[str, ...] = ()) -> "RunLog":
    """A ``RunLog`` at ``path`` for runs of a sweep of ``swept`` keys, or a one-line error naming
    ``param`` when it cannot be written, holds records already and ``append`` is not set, or is a CSV
    of other columns."""
    if Path(path).suffix not in (".jsonl", ".csv"):
        raise MnistjaxError(f"{path}: expected a .jsonl or .csv file name", param=param)
    output_file(path, param)
    if not append and Path(path).is_file() and Path(path).stat().st_size:
        raise MnistjaxError(f"{path}: holds records of an earlier run; expected a new file (or --log-append, "
                            "log_append=True, to add to it)", param=param)
    try:
        return RunLog(path, swept)
    except OSError as e:
        raise MnistjaxError(f"{path}: cannot write ({e.strerror or e}); expected a file in a writable folder", param=param) from None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temps(folder: str | os.PathLike) -> None:
    """Delete the temp files that killed writers left in ``folder`` (those of live processes stay)."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        m = _TEMP.match(entry.name)
        if m and not alive(int(m[1])):
            Path(entry.path).unlink(missing_ok=True)


def _finite(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def strict_json(obj) -> str:
    """JSON that strict parsers accept: non-finite numbers (a diverged loss) become null."""
    return json.dumps(_finite(obj), allow_nan=False)


def _csv_line(values: list) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(["" if v is None else v for v in values])
    return buf.getvalue()


class RunLog:
    """A training log in long form, for tables and plots of other tools: a record per run and epoch
    (``run``, ``seed``, each swept setting, ``epoch``, ``train_loss``, ``valid_loss``,
    ``valid_accuracy``), and in JSON lines (``.jsonl``) also a record per step (``step`` and its
    ``train_loss``), numbers as numbers. Written and synced as it goes, so a killed run keeps every
    epoch it finished; a record is a whole line or none. A CSV that is added to must have the same columns."""

    METRICS = ("train_loss", "valid_loss", "valid_accuracy")

    def __init__(self, path: str | os.PathLike, swept: tuple[str, ...] = ()):
        self.path = Path(path)
        self.csv = self.path.suffix == ".csv"
        self.columns = ["run", "seed", *swept, "epoch", *self.METRICS]
        if self.csv and self.path.is_file():
            self._same_columns()
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if self.csv and os.fstat(self.fd).st_size == 0:
            self._line(_csv_line(self.columns))

    def _line(self, text: str) -> None:
        """Append one line; a write that fails (a full disk) is cut back off and is a one-line error."""
        end = os.lseek(self.fd, 0, os.SEEK_END)
        data = (text + "\n").encode()
        try:
            while data:
                data = data[os.write(self.fd, data):]
            os.fsync(self.fd)
        except OSError as e:
            os.ftruncate(self.fd, end)
            raise _cannot_write(self.path, e, "log") from None

    def _same_columns(self) -> None:
        """A CSV added to must have this run's columns."""
        with open(self.path, newline="") as f:
            first = next(csv.reader(f), None)
        if first is not None and first != self.columns:
            raise MnistjaxError(f"{self.path}: its columns {','.join(first)} are not this run's {','.join(self.columns)}; "
                                "expected a log of the same kind of run, or a new file", param="log")

    def write(self, rows: list[tuple[dict, dict]]) -> None:
        """One epoch of several runs: per run, the columns that name it (run, seed, swept values) and
        its own history row (epoch, train_loss, step_losses, valid_loss, valid_accuracy)."""
        lines = []
        for run, row in rows:
            record = {**run, "epoch": row["epoch"], **{k: row[k] for k in self.METRICS}}
            if self.csv:
                lines.append(_csv_line([_finite(record[k]) for k in self.columns]))
                continue
            lines += [strict_json({**run, "epoch": row["epoch"], "step": step, "train_loss": loss})
                      for step, loss in enumerate(row["step_losses"])]
            lines.append(strict_json(record))
        self._line("\n".join(lines))  # the epoch's records in one write and one sync

    def close(self) -> None:
        os.close(self.fd)
