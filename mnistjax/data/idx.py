"""The IDX file format of MNIST: read (gzip or raw) with strict validation, and write.

An IDX file is a 4-byte magic ``00 00 <dtype code> <rank>``, then ``rank`` big-endian
uint32 dimensions, then the data in C order, big-endian. MNIST uses code 0x08 (uint8).
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from mnistjax.errors import MnistjaxError
from mnistjax.files import atomic_write

# dtype code -> big-endian numpy dtype
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_bytes(path: str | os.PathLike) -> bytes:
    """The file's bytes, decompressed when it is gzip (by its magic, not its name)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise MnistjaxError(f"{path}: cannot read ({e.strerror or e})") from None
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise MnistjaxError(f"{path}: corrupt gzip data ({e}); expected a valid .gz file") from None


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse IDX bytes into an array in native byte order (uint8 stays uint8)."""
    if len(data) < 4:
        raise MnistjaxError(f"{name}: truncated: {len(data)} bytes, expected at least a 4-byte IDX magic")
    zero, code, rank = data[:2], data[2], data[3]
    if zero != b"\x00\x00" or code not in IDX_DTYPES:
        raise MnistjaxError(
            f"{name}: not an IDX file: magic {data[:4].hex()}, expected 0000 + a dtype code "
            f"({', '.join(f'{c:02x}' for c in IDX_DTYPES)}) + rank"
        )
    if rank == 0:
        raise MnistjaxError(f"{name}: IDX rank is 0, expected at least 1 dimension")
    header = 4 + 4 * rank
    if len(data) < header:
        raise MnistjaxError(f"{name}: truncated: header needs {header} bytes, file has {len(data)}")
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", count=rank, offset=4))
    dtype = IDX_DTYPES[code]
    expected = header + math.prod(dims) * dtype.itemsize  # Python ints: no overflow for absurd dimensions
    if len(data) < expected:
        raise MnistjaxError(f"{name}: truncated: shape {dims} needs {expected} bytes, file has {len(data)}")
    if len(data) > expected:
        raise MnistjaxError(
            f"{name}: {len(data) - expected} trailing bytes after the data of shape {dims}; expected exactly {expected} bytes"
        )
    arr = np.frombuffer(data, dtype, offset=header).reshape(dims)
    return arr if dtype.itemsize == 1 else arr.astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (``.gz`` or raw) and validate its header against its length."""
    return parse_idx(read_bytes(path), str(path))


def to_idx(arr: np.ndarray) -> bytes:
    """The IDX bytes of ``arr`` (uint8, int8, int16, int32, float32 or float64)."""
    arr = np.asarray(arr)
    codes = {dt.newbyteorder("="): c for c, dt in IDX_DTYPES.items()}
    native = arr.dtype.newbyteorder("=")
    if native not in codes:
        raise MnistjaxError(f"cannot write dtype {arr.dtype} as IDX; expected one of {sorted(map(str, codes))}")
    code = codes[native]
    header = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, ">u4").tobytes()
    return header + np.ascontiguousarray(arr, IDX_DTYPES[code]).tobytes()


def write_idx(path: str | os.PathLike, arr: np.ndarray) -> None:
    """Write ``arr`` as IDX, gzip-compressed (reproducibly: mtime 0) when the name ends in .gz."""
    data = to_idx(arr)
    if str(path).endswith(".gz"):
        data = gzip.compress(data, compresslevel=9, mtime=0)
    atomic_write(path, data)
