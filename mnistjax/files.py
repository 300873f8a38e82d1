"""Files written safely: atomically (temp file + rename), with leftovers of killed processes cleaned up."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import tempfile
from pathlib import Path

from mnistjax.errors import MnistjaxError

_TEMP = re.compile(r"^\..+\.pid(\d+)\.[^.]+\.tmp$")


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to a temp file beside ``path`` and rename it: no half-written file, ever.

    The temp file's name carries this process's id, so ``remove_stale_temps`` can tell a dead
    writer's leftover from a live writer's file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.pid{os.getpid()}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a data file is for everyone to read
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def writable_dir(path: str | os.PathLike, param: str) -> Path:
    """``path`` as a folder that exists and takes files (created if need be), or a one-line error
    naming ``param``: checked before any work starts, so no result is lost at the end."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except (FileExistsError, NotADirectoryError):
        raise MnistjaxError(f"{path}: not a folder (a file of that name exists); expected a folder to write into",
                            param=param) from None
    except OSError as e:
        raise MnistjaxError(f"{path}: cannot write here ({e.strerror or e}); expected a writable folder", param=param) from None
    return folder


def open_log(path: str | os.PathLike, param: str = "log") -> "EpochLog":
    """An ``EpochLog`` at ``path``, or a one-line error naming ``param`` when it cannot be written."""
    if Path(path).suffix not in (".jsonl", ".csv"):
        raise MnistjaxError(f"{path}: expected a .jsonl or .csv file name", param=param)
    try:
        return EpochLog(path)
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


class EpochLog:
    """A training log that grows by one record per epoch, flushed and synced as it goes, so a killed
    run keeps every epoch it finished: JSON lines (``.jsonl``) or CSV (``.csv``, without the per-step
    losses). Appends to an existing file."""

    COLUMNS = ("epoch", "train_loss", "valid_loss", "valid_accuracy")

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.csv = self.path.suffix == ".csv"
        new = not self.path.exists() or self.path.stat().st_size == 0
        self.file = open(self.path, "a", encoding="utf-8")
        if self.csv and new:
            self._line(",".join(self.COLUMNS))

    def _line(self, text: str) -> None:
        self.file.write(text + "\n")
        self.file.flush()
        os.fsync(self.file.fileno())

    def write(self, row: dict) -> None:
        if self.csv:
            buf = io.StringIO()
            csv.writer(buf, lineterminator="").writerow([strict_json(row.get(c)) for c in self.COLUMNS])
            self._line(buf.getvalue())
        else:
            self._line(strict_json(row))

    def close(self) -> None:
        self.file.close()
