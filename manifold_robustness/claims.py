"""Claims: one worker per piece of work, across processes and hosts that share a file system.

A claim is a small JSON file ``{"host", "pid", "token", "started"}`` created with
``O_CREAT | O_EXCL``, which succeeds for exactly one of any number of workers (also on NFS v3+).
While it holds the claim, the owner touches the file every ``heartbeat`` seconds from a daemon
thread.  A claim is *live* while its last heartbeat is younger than ``expiry`` seconds and, on the
owner's own host, its process still exists; a dead worker's claim is taken over by the next
worker that asks (at once on the same host, after ``expiry`` from another).

>>> with claims.claim(root / "claims" / "fonts/normal/n250.json") as c:
...     if c is None:   # another live worker holds it: go on to the next piece of work
...         ...
>>> with claims.wait(root / "claims" / "vaegan.json"):   # block until we hold it
...     ...

Taking over an expired claim renames it aside first, so two workers cannot both take it over;
an owner whose claim was taken over (it stalled past ``expiry``) finds that on its next
heartbeat, logs a warning and sets :attr:`Claim.lost`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Callable, Iterator

log = logging.getLogger(__name__)

HEARTBEAT_S = 30.0
EXPIRY_S = 300.0  # ten missed heartbeats


def read(path: Path) -> dict | None:
    """The claim's content with its last heartbeat (``beat``, the file's mtime), or None when
    there is no claim (or it is being written or taken over)."""
    try:
        info = json.loads(Path(path).read_text())
        info["beat"] = Path(path).stat().st_mtime
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return info if isinstance(info, dict) else None


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_live(info: dict | None, expiry: float = EXPIRY_S, now: float | None = None) -> bool:
    """Whether a claim (as :func:`read` returns it) belongs to a worker that is still working."""
    if info is None:
        return False
    if (now if now is not None else time.time()) - info.get("beat", 0.0) > expiry:
        return False
    return info.get("host") != socket.gethostname() or _process_exists(int(info.get("pid", -1)))


def describe(info: dict | None) -> str:
    return "nobody" if info is None else f"pid {info.get('pid')} on {info.get('host')}"


class Claim:
    """A held claim; :meth:`release` (or leaving the ``with`` block) removes it."""

    def __init__(self, path: Path, token: str, heartbeat: float):
        self.path, self.token, self.lost = path, token, False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(heartbeat,), daemon=True,
                                        name=f"claim-heartbeat {path.name}")
        self._thread.start()

    def _ours(self) -> bool:
        info = read(self.path)
        return info is not None and info.get("token") == self.token

    def _beat(self, every: float) -> None:
        while not self._stop.wait(every):
            if not self._ours():
                self.lost = True
                log.warning("claim %s was taken over by %s (this worker stalled for longer than its expiry)",
                            self.path, describe(read(self.path)))
                return
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def release(self) -> None:
        self._stop.set()
        self._thread.join()
        if self._ours():
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def __enter__(self) -> "Claim":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def try_claim(path: str | os.PathLike, *, heartbeat: float = HEARTBEAT_S, expiry: float = EXPIRY_S) -> Claim | None:
    """Claim ``path`` (taking over a dead worker's claim); None when a live worker holds it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    content = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "token": token, "started": time.time()})
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            info = read(path)
            if info is None and path.exists() and time.time() - _mtime(path) < expiry:
                return None  # being written this instant (or unreadable but fresh): treat as held
            if is_live(info, expiry):
                return None
            _take_over(path, info)
            continue
        with os.fdopen(fd, "w") as f:
            f.write(content)
        return Claim(path, token, heartbeat)
    return None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _take_over(path: Path, info: dict | None) -> None:
    """Remove an expired claim, unless someone replaced it meanwhile."""
    aside = path.with_name(f"{path.name}.expired-{uuid.uuid4().hex}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return  # another worker took it over first
    moved = read(aside)
    replaced = moved is not None and (info is None or moved.get("token") != info.get("token"))
    if replaced and is_live(moved):
        with contextlib.suppress(FileExistsError):  # a fresh claim: put it back
            os.link(aside, path)
    aside.unlink(missing_ok=True)
    log.info("took over the expired claim %s of %s", path, describe(info))


@contextlib.contextmanager
def claim(path: str | os.PathLike, **kwargs) -> Iterator[Claim | None]:
    """``with claim(path) as c``: c is the held :class:`Claim` (released on leaving) or None."""
    c = try_claim(path, **kwargs)
    try:
        yield c
    finally:
        if c is not None:
            c.release()


@contextlib.contextmanager
def wait(path: str | os.PathLike, *, poll: float = 2.0, say: Callable[[str], None] | None = None,
         **kwargs) -> Iterator[Claim]:
    """Hold ``path``, waiting while a live worker holds it."""
    told = False
    while (c := try_claim(path, **kwargs)) is None:
        if say is not None and not told:
            say(f"waiting for {describe(read(Path(path)))}, which holds {path}")
            told = True
        time.sleep(poll)
    try:
        yield c
    finally:
        c.release()


def oldest_live(folder: str | os.PathLike, expiry: float = EXPIRY_S) -> float:
    """The start time of the oldest live claim under ``folder`` (inf when there is none): a
    staging leftover older than that belongs to no live worker."""
    folder = Path(folder)
    starts = [info.get("started", 0.0) for p in folder.rglob("*.json") if is_live(info := read(p), expiry)] \
        if folder.is_dir() else []
    return min(starts, default=float("inf"))
