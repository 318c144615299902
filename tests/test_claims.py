"""Claims (one worker per piece of work) and the clean-up of killed builders' staging folders."""

from __future__ import annotations

import json
import os
import socket
import threading
import time

import pytest

from manifold_robustness import claims
from manifold_robustness.data import cache


def _fake(path, *, host=None, pid=None, age=0.0):
    """A claim file as another worker would have left it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"host": host or socket.gethostname(), "pid": pid or os.getpid(),
                                "token": "theirs", "started": time.time() - age}))
    os.utime(path, (time.time() - age, time.time() - age))
    return path


def _dead_pid() -> int:
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_one_claim_at_a_time_and_released_on_leaving(tmp_path):
    path = tmp_path / "claims" / "g.json"
    with claims.claim(path) as first:
        assert first is not None and claims.read(path)["pid"] == os.getpid()
        assert claims.try_claim(path) is None
    assert not path.exists()
    with claims.claim(path) as again:
        assert again is not None


@pytest.mark.parametrize("host, dead, age, taken", [
    (None, True, 0.0, True),               # this host, the process is gone: taken over at once
    (None, False, 0.0, False),             # this host, alive and beating
    ("elsewhere", False, 10.0, False),     # another host, recent heartbeat: live
    ("elsewhere", False, 1000.0, True),    # another host, no heartbeat for longer than the expiry
])
def test_a_dead_workers_claim_expires(host, dead, age, taken, tmp_path):
    path = _fake(tmp_path / "g.json", host=host, pid=_dead_pid() if dead else None, age=age)
    c = claims.try_claim(path, expiry=300.0)
    assert (c is not None) == taken
    if c is not None:
        assert claims.read(path)["token"] == c.token
        c.release()
    else:
        assert claims.read(path)["token"] == "theirs"


def test_heartbeat_keeps_a_claim_fresh_and_wait_blocks_until_release(tmp_path):
    path = tmp_path / "v.json"
    held = claims.try_claim(path, heartbeat=0.05)
    os.utime(path, (time.time() - 30, time.time() - 30))
    got = []

    def other():
        with claims.wait(path, poll=0.05, expiry=60.0) as c:
            got.append(c.token)

    t = threading.Thread(target=other)
    t.start()
    deadline = time.time() + 60  # generous for a loaded machine; the loop ends at the first beat
    while time.time() - path.stat().st_mtime > 20 and time.time() < deadline:
        time.sleep(0.02)
    assert time.time() - path.stat().st_mtime < 20  # the heartbeat touched it
    assert not got  # still waiting while we hold it
    held.release()
    t.join(60)
    assert len(got) == 1 and got[0] != held.token


def test_killed_builds_staging_folders_are_removed_live_ones_kept(tmp_path):
    dead = tmp_path / ".abc.tmp-dead"
    dead.mkdir()
    (dead / "images.npy").write_bytes(b"x" * 100)
    _fake(tmp_path / ".abc.tmp-dead.claim", pid=_dead_pid())
    unclaimed_old = tmp_path / ".abc.tmp-old"
    unclaimed_old.mkdir()
    os.utime(unclaimed_old, (time.time() - 1000, time.time() - 1000))
    live = tmp_path / ".abc.tmp-live"
    live.mkdir()
    with claims.claim(tmp_path / ".abc.tmp-live.claim"):
        assert sorted(cache.clean_staging(tmp_path)) == sorted([dead, unclaimed_old])
        assert live.exists() and not (tmp_path / ".abc.tmp-dead.claim").exists()
    with cache.atomic_entry(tmp_path / "abc") as tmp:  # a build starts by cleaning up
        (tmp / "x.npy").write_bytes(b"")
    # the finished entry, and the (now unclaimed but young) folder, which waits for the expiry
    assert sorted(p.name for p in tmp_path.iterdir()) == [".abc.tmp-live", "abc"]
