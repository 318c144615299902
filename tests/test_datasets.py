"""The idx reader: header parsing, byte order, gzip detection, and clear errors on bad files."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from manifold_robustness.data import idx

# ---------------------------------------------------------------------------------------------
# idx format


def test_idx_header_is_parsed_from_hand_made_bytes(tmp_path):
    pixels = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    raw = bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 2, 3, 4) + pixels.tobytes()
    dtype, dims, header_len = idx.parse_header(raw)
    assert (dtype, dims, header_len) == (np.dtype(">u1"), (2, 3, 4), 16)
    np.testing.assert_array_equal(idx.parse(raw), pixels)

    # Multi-byte types are big-endian in the file and come back in native order.
    ints = bytes([0, 0, 0x0C, 1]) + struct.pack(">I", 3) + struct.pack(">3i", 1, 256, -2)
    out = idx.parse(ints)
    assert out.dtype == np.int32 and out.dtype.isnative and out.tolist() == [1, 256, -2]

    # gzip is recognised by content, not by name; write() and read() round-trip.
    (tmp_path / "plain_name").write_bytes(gzip.compress(raw))
    np.testing.assert_array_equal(idx.read(tmp_path / "plain_name"), pixels)
    floats = np.linspace(-1, 1, 6, dtype=np.float32).reshape(3, 2)
    np.testing.assert_array_equal(idx.read(idx.write(tmp_path / "f.idx.gz", floats)), floats)


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"\x1f\x00\x08\x01" + struct.pack(">I", 1) + b"\x00", "two zero bytes"),
        (b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00", "unknown idx element type 0x07"),
        (b"\x00\x00\x08\x00", "0 dimensions"),
        (b"\x00\x00\x08\x03" + struct.pack(">I", 5), "data ends after 8 bytes"),
        (b"\x00\x00\x08\x01" + struct.pack(">I", 10) + b"\x00" * 9, "10 array of uint8, i.e. 18 bytes"),
        (b"\x00\x00", "too short"),
    ],
)
def test_corrupt_idx_header_is_a_clear_error(tmp_path, raw, message):
    path = tmp_path / "bad-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(raw))
    with pytest.raises(idx.IdxFormatError, match=message) as info:
        idx.read(path)
    assert str(path) in str(info.value) and isinstance(info.value, ValueError)


def test_damaged_gzip_is_a_clear_error(tmp_path):
    path = tmp_path / "cut.gz"
    noise = np.random.default_rng(0).integers(0, 256, 1000, dtype=np.uint8).tobytes()
    whole = gzip.compress(b"\x00\x00\x08\x01" + struct.pack(">I", 1000) + noise)
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(idx.IdxFormatError, match="gzip stream is damaged"):
        idx.read(path)
