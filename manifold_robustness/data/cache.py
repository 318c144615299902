"""On-disk array cache: one folder per build config, written atomically, verified on read.

A cache entry is a folder holding ``*.npy`` arrays and ``meta.json``.  It is written into a
temporary sibling folder and renamed into place only when every file is complete and fsynced, so an
interrupted build never leaves a folder that is later read as valid.  ``meta.json`` records each
array's shape, dtype and CRC-32; :func:`read_entry` checks them and reports a corrupted entry
instead of returning bad data.  A killed build's temporary folder is removed by the next build in
the same folder once its claim (:mod:`manifold_robustness.claims`) is dead.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from manifold_robustness import claims

log = logging.getLogger(__name__)

DATA_DIR_ENV = "MANIFOLD_ROBUSTNESS_DATA"
FORMAT_VERSION = 1


class CorruptCacheError(RuntimeError):
    """A cache entry exists but does not match its metadata."""


def data_dir(override: str | os.PathLike | None = None) -> Path:
    """The data directory: ``override``, else ``$MANIFOLD_ROBUSTNESS_DATA``, else
    ``~/.cache/manifold_robustness``.  Created if missing; a clear error if it cannot be written."""
    path = Path(override or os.environ.get(DATA_DIR_ENV) or "~/.cache/manifold_robustness").expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as err:
        raise PermissionError(
            f"The data directory {path} is not writable ({err.strerror}). Set the environment variable "
            f"{DATA_DIR_ENV} to a writable folder, e.g. `export {DATA_DIR_ENV}=$HOME/mr-data`."
        ) from err
    return path


def config_key(config: dict[str, Any]) -> str:
    """A short stable digest of a JSON-serialisable build config."""
    blob = json.dumps({"format": FORMAT_VERSION, **config}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def file_crc32(path: Path, chunk: int = 1 << 24) -> int:
    crc = 0
    with open(path, "rb") as f:
        while block := f.read(chunk):
            crc = zlib.crc32(block, crc)
    return crc


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_entry(final: Path) -> Iterator[Path]:
    """Yield a temporary folder next to ``final``; on success rename it to ``final``.

    On an exception the temporary folder is removed and ``final`` is untouched.  If another
    process completed the same entry meanwhile (same key, same content), its entry is kept and
    ours discarded, so a reader never sees an entry disappear under it.  Remove a corrupt entry
    with :func:`discard_entry` before rebuilding it.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_staging(final.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    held = claims.try_claim(_claim_of(tmp))  # a new name: ours; tells other builders we are alive
    try:
        yield tmp
        for f in tmp.iterdir():
            _fsync(f)
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / "meta.json").exists():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # a concurrent build finished first
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if held is not None:
            held.release()


def _claim_of(staging: Path) -> Path:
    return staging.with_name(staging.name + ".claim")


def clean_staging(folder: Path) -> list[Path]:
    """Remove the temporary folders of builds that were killed (their claim is dead, or they have
    none and are older than a claim's expiry); a live build's folder stays."""
    gone = []
    for tmp in sorted(folder.glob(".*.tmp-*")):
        if tmp.name.endswith(".claim"):
            continue
        info = claims.read(_claim_of(tmp))
        stale = info is None and time.time() - tmp.stat().st_mtime > claims.EXPIRY_S
        if (info is not None and not claims.is_live(info)) or stale:
            shutil.rmtree(tmp, ignore_errors=True)
            _claim_of(tmp).unlink(missing_ok=True)
            gone.append(tmp)
    if gone:
        log.info("removed %d leftover(s) of killed builds in %s", len(gone), folder)
    return gone


def discard_entry(folder: Path) -> None:
    """Remove a (corrupt) entry so it can be rebuilt."""
    shutil.rmtree(folder, ignore_errors=True)


def finish_entry(folder: Path, meta: dict[str, Any]) -> None:
    """Record every ``*.npy`` file's shape, dtype and CRC in ``meta.json`` (written last)."""
    arrays = {}
    for f in sorted(folder.glob("*.npy")):
        arr = np.load(f, mmap_mode="r")
        arrays[f.stem] = {"shape": list(arr.shape), "dtype": str(arr.dtype), "crc32": file_crc32(f)}
        del arr
    with open(folder / "meta.json", "w") as fh:
        json.dump({**meta, "format": FORMAT_VERSION, "arrays": arrays}, fh, indent=1, sort_keys=True)


_VERIFIED = ".verified.json"  # per file: the stat of its last passed checksum


def _stat_key(path: Path) -> list[int]:
    """What any write changes: size, modification and status-change times (ctime cannot be set
    back by hand), inode (a replaced file)."""
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _verified(folder: Path) -> dict[str, list[int]]:
    try:
        return json.loads((folder / _VERIFIED).read_text())
    except (OSError, ValueError):
        return {}


def _remember_verified(folder: Path, stats: dict[str, list[int]]) -> None:
    """Best effort (a read-only cache just checksums again next time)."""
    try:
        tmp = folder / f"{_VERIFIED}.{os.getpid()}"
        tmp.write_text(json.dumps(stats))
        os.replace(tmp, folder / _VERIFIED)
    except OSError:
        pass


def read_entry(folder: Path, verify: bool = True) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Return (meta, arrays memory-mapped read-only).  Raises :class:`CorruptCacheError` when a
    file is missing, truncated or altered, and FileNotFoundError when there is no entry.

    ``verify``: check every file's CRC, except files unchanged (same size, times and inode) since
    their last passed check — reading the full FONTS' 880 MB for its checksum took ~1.4 s of every
    command's start-up."""
    meta_path = folder / "meta.json"
    if not meta_path.exists():
        raise FileNotFoundError(folder)
    try:
        meta = json.loads(meta_path.read_text())
        expected = meta["arrays"]
    except (json.JSONDecodeError, KeyError) as err:
        raise CorruptCacheError(f"{meta_path} is unreadable: {err}") from err
    arrays = {}
    known, passed = _verified(folder) if verify else {}, {}
    for name, spec in expected.items():
        path = folder / f"{name}.npy"
        try:
            arr = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as err:
            raise CorruptCacheError(f"{path} is missing or truncated: {err}") from err
        if list(arr.shape) != spec["shape"] or str(arr.dtype) != spec["dtype"]:
            raise CorruptCacheError(f"{path} has shape {arr.shape} {arr.dtype}, expected {spec}")
        if verify:
            stat = _stat_key(path)
            if known.get(name) != stat and file_crc32(path) != spec["crc32"]:
                raise CorruptCacheError(f"{path} fails its checksum (the file was altered or damaged)")
            passed[name] = stat
        arrays[name] = arr
    if verify and passed != known:
        _remember_verified(folder, passed)
    return meta, arrays
