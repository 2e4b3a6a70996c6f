"""Reader for the IDX format of (Fashion-)MNIST, plain or gzip-compressed.

IDX layout (LeCun's MNIST page): two zero bytes, a type code, the number of dimensions ``d``,
then ``d`` big-endian uint32 sizes, then the values in C order, big-endian. Fashion-MNIST images
use magic 2051 (``00 00 08 03``: uint8, 3 dims) and labels 2049 (``00 00 08 01``).
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from spikeconv.errors import DataError

_GZIP_MAGIC = b"\x1f\x8b"
_IDX_DTYPES: dict[int, str] = {
    0x08: "u1",
    0x09: "i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}


def idx_magic(dtype_code: int, ndim: int) -> int:
    """Return the IDX magic number for a type code and a dimension count (e.g. 0x08, 3 -> 2051)."""
    return (dtype_code << 8) | ndim


def _read_bytes(path: Path) -> bytes:
    """Return the file's bytes, gunzipped when it starts with the gzip magic."""
    try:
        with path.open("rb") as handle:
            raw = handle.read()
        if raw[:2] == _GZIP_MAGIC:
            return gzip.decompress(raw)
        return raw
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"cannot read IDX file {path}: {err}; replace the file") from err


def read_idx(path: str | Path) -> np.ndarray:
    """Parse an IDX file (``.gz`` or not) into a native-byte-order numpy array.

    The magic number and the sizes in the header are checked against the payload, so a truncated
    download or a wrong file fails here with the file's name instead of later as a bad shape.

    Args:
        path: The IDX file.

    Returns:
        An array with the header's shape and type (uint8 for Fashion-MNIST).

    Raises:
        DataError: Unreadable file, bad magic number, or a payload that does not match the header.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES or raw[3] == 0:
        raise DataError(
            f"{path} is not an IDX file (magic bytes {raw[:4].hex() or 'missing'}); "
            "replace it with the original download"
        )
    ndim = raw[3]
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise DataError(f"IDX file {path} is truncated inside its header; replace the file")
    dims = struct.unpack(f">{ndim}I", raw[4:header_len])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    count = math.prod(dims)
    expected = header_len + count * dtype.itemsize
    if len(raw) != expected:
        raise DataError(
            f"IDX file {path} has {len(raw)} bytes but its header {tuple(dims)} needs {expected}; "
            "the file is truncated or corrupt, replace it"
        )
    values = np.frombuffer(raw, dtype=dtype, count=count, offset=header_len)
    return values.astype(dtype.newbyteorder("="), copy=True).reshape(dims)
