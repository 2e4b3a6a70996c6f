"""IDX parsing: round trips through hand-written files, and corrupt files rejected by name."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from spikeconv.data import read_idx
from spikeconv.errors import DataError

_CODES = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D}


def _write_idx(path: Path, array: np.ndarray, *, gz: bool) -> Path:
    """Encode ``array`` as IDX by hand (big-endian header and values), optionally gzipped."""
    big = array.astype(array.dtype.newbyteorder(">"))
    header = bytes([0, 0, _CODES[big.dtype], array.ndim]) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    payload = header + big.tobytes()
    path.write_bytes(gzip.compress(payload) if gz else payload)
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_uint8_round_trip(tmp_path: Path, gz: bool) -> None:
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    name = "x-idx3-ubyte.gz" if gz else "x-idx3-ubyte"
    parsed = read_idx(_write_idx(tmp_path / name, array, gz=gz))
    assert parsed.dtype == np.uint8
    assert parsed.shape == (2, 3, 4)
    np.testing.assert_array_equal(parsed, array)


@pytest.mark.parametrize(
    ("dtype", "values"),
    [("i1", [[-3, 100], [7, -7]]), ("<i4", [[-3, 1000], [7, -70000]]), ("<f4", [[0.5, -2.25]])],
)
def test_signed_and_multibyte_types_round_trip(tmp_path: Path, dtype: str, values: list) -> None:
    array = np.array(values, dtype=dtype)
    parsed = read_idx(_write_idx(tmp_path / "v.idx", array, gz=False))
    assert parsed.dtype.isnative
    np.testing.assert_array_equal(parsed, array)


def test_int32_values_are_read_big_endian(tmp_path: Path) -> None:
    # magic 0x0C01 (int32, 1 dim), 1 item: 0x00000102 == 258 when read big-endian
    path = tmp_path / "one.idx"
    path.write_bytes(bytes([0, 0, 0x0C, 1, 0, 0, 0, 1, 0, 0, 1, 2]))
    np.testing.assert_array_equal(read_idx(path), [258])


def test_known_bytes_decode_to_known_labels(tmp_path: Path) -> None:
    # magic 2049 (uint8, 1 dim), 3 items: 7, 0, 9
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 0, 9]))
    np.testing.assert_array_equal(read_idx(path), [7, 0, 9])


@pytest.mark.parametrize("magic", [b"\x12\x34\x08\x03", b"\x00\x00\x07\x03", b"\x00\x00\x08\x00"])
def test_wrong_magic_is_a_data_error_naming_the_file(tmp_path: Path, magic: bytes) -> None:
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(magic + b"\x00" * 16)
    with pytest.raises(DataError, match="bad-idx3-ubyte.*not an IDX file"):
        read_idx(path)


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_payload_is_rejected(tmp_path: Path, gz: bool) -> None:
    path = _write_idx(tmp_path / "t.idx", np.zeros((4, 5), dtype=np.uint8), gz=False)
    data = path.read_bytes()[:-3]
    path.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(DataError, match=r"t\.idx has 29 bytes .* needs 32"):
        read_idx(path)


def test_extra_bytes_are_rejected(tmp_path: Path) -> None:
    path = _write_idx(tmp_path / "t.idx", np.zeros((2, 2), dtype=np.uint8), gz=False)
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(DataError, match="truncated or corrupt"):
        read_idx(path)


def test_broken_gzip_stream_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.gz"
    path.write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x02\x01\x02")[:-6])
    with pytest.raises(DataError, match="broken.gz"):
        read_idx(path)


def test_missing_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nothing-here"):
        read_idx(tmp_path / "nothing-here")
