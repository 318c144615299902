"""The idx file format of MNIST, Fashion-MNIST and EMNIST, read and written with plain numpy.

An idx file is a header followed by a C-order array in big-endian byte order:

    bytes 0-1   zero
    byte  2     element type: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64
    byte  3     number of dimensions D
    4·D bytes   the dimensions, each a big-endian uint32
    then        prod(dims) elements

Files may be gzip-compressed (recognised by the gzip magic bytes, not by the file name).  The reader
checks the header against the file's length, so a truncated or foreign file is reported as such
instead of being reshaped into nonsense.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

# element type code -> big-endian numpy dtype
DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dt.newbyteorder("="): code for code, dt in DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"


class IdxFormatError(ValueError):
    """The bytes are not a well-formed idx file (bad magic, unknown type, or wrong length)."""


def parse_header(buf: bytes, source: str = "<bytes>") -> tuple[np.dtype, tuple[int, ...], int]:
    """Return (big-endian dtype, dims, header length in bytes) of the idx data in ``buf``.

    Raises :class:`IdxFormatError` saying what was expected when the magic number, the type code
    or the length do not fit.
    """
    if len(buf) < 4:
        raise IdxFormatError(f"{source}: {len(buf)} bytes is too short for an idx header (at least 4 expected)")
    zero0, zero1, code, ndim = buf[0], buf[1], buf[2], buf[3]
    if zero0 != 0 or zero1 != 0:
        raise IdxFormatError(
            f"{source}: not an idx file: the magic number must start with two zero bytes, got "
            f"{buf[:4].hex(' ')} (is it still compressed, or a different format?)"
        )
    if code not in DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in DTYPES)
        raise IdxFormatError(f"{source}: unknown idx element type 0x{code:02X}; expected one of {known}")
    if ndim == 0:
        raise IdxFormatError(f"{source}: idx header declares 0 dimensions; expected at least 1")
    header_len = 4 + 4 * ndim
    if len(buf) < header_len:
        raise IdxFormatError(f"{source}: header declares {ndim} dimensions but the data ends after {len(buf)} bytes")
    dims = struct.unpack(f">{ndim}I", buf[4:header_len])
    dtype = DTYPES[code]
    expected = header_len + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(buf) != expected:
        shape = "x".join(map(str, dims))
        raise IdxFormatError(
            f"{source}: header declares a {shape} array of {dtype.newbyteorder('=').name}, i.e. {expected} bytes "
            f"with the header, but the content has {len(buf)} bytes (truncated or not an idx file)"
        )
    return dtype, tuple(int(d) for d in dims), header_len


def read_bytes(path: str | os.PathLike) -> bytes:
    """The decompressed content of ``path`` (gzip detected by its magic bytes)."""
    path = Path(path)
    with open(path, "rb") as fh:
        magic = fh.read(2)
        fh.seek(0)
        if magic != _GZIP_MAGIC:
            return fh.read()
        try:
            return gzip.GzipFile(fileobj=fh).read()
        except (OSError, EOFError, zlib.error) as err:
            raise IdxFormatError(f"{path}: the gzip stream is damaged ({err})") from err


def parse(buf: bytes, source: str = "<bytes>") -> np.ndarray:
    """The array stored in idx bytes ``buf``, in native byte order (read-only when no swap is needed)."""
    dtype, dims, header_len = parse_header(buf, source)
    arr = np.frombuffer(buf, dtype=dtype, offset=header_len).reshape(dims)
    return arr if dtype.isnative or dtype.itemsize == 1 else arr.astype(dtype.newbyteorder("="))


def read(path: str | os.PathLike) -> np.ndarray:
    """Read an idx file (plain or gzip) into an array: e.g. uint8[N, 28, 28] images, uint8[N] labels."""
    return parse(read_bytes(path), source=str(path))


def write(path: str | os.PathLike, array: np.ndarray, compress: bool | None = None) -> Path:
    """Write ``array`` as an idx file; gzip-compressed when ``compress`` or (default) the name ends in .gz."""
    path = Path(path)
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in _CODES:
        raise ValueError(f"idx stores uint8, int8, int16, int32, float32 or float64; got {array.dtype}")
    if array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"idx stores arrays of 1 to 255 dimensions; got {array.ndim}")
    header = bytes([0, 0, _CODES[native], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=DTYPES[_CODES[native]]).tobytes()
    if compress if compress is not None else path.suffix == ".gz":
        payload = gzip.compress(payload, compresslevel=1, mtime=0)
    path.write_bytes(payload)
    return path
