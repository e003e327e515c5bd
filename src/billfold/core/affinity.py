"""Keeping an API process on one CPU.

An API process is an event loop in its main thread handing each request to a worker
thread and back. Under Python's GIL those threads run one at a time anyway; spread over
two cores, each hand-over crossed cores — a wake-up on the other core and the request's
objects moved between caches — and the same pay sessions cost a third more CPU (measured:
4.4 s of server CPU for 2,560 sessions on SQLite, 2.95 s pinned; on PostgreSQL 5.6 s and
3.6-3.8 s). Pinned, the hand-over stays on one core.

Each pinned process holds a lock file naming its CPU in the system's temporary directory
for as long as it lives, so the API processes of every Billfold on the machine spread
over the CPUs they may use, one each; a process that finds them all taken (or a machine
with one CPU) stays unpinned. Only the calling thread and the threads it starts from then
on are pinned: Linux keeps affinity per thread, so call it in the event loop's thread
before the server starts, and after starting any thread that should keep every core (a
worker's job threads, whose Typst renders and database waits let go of the GIL).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import IO

_LOCK_DIRECTORY = "billfold-cpus"
_held: list[IO[str]] = []  # the lock file of this process's CPU, open until it exits


def lock_directory() -> Path:
    return Path(tempfile.gettempdir()) / _LOCK_DIRECTORY


def pin_to_free_cpu(directory: Path | None = None) -> int | None:
    """Pin the calling thread (and the threads it starts later) to the first CPU of those
    it may run on that no other process has claimed in ``directory``; the CPU, or None
    when it stays unpinned (one CPU, no affinity calls on this system, all taken)."""
    if sys.platform != "linux" or _held:
        return None
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return None
    directory = directory or lock_directory()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:  # nowhere to claim a CPU: run unpinned rather than not at all
        return None
    with contextlib.suppress(OSError):  # every user's Billfold claims CPUs here
        directory.chmod(0o1777)
    for cpu in allowed:
        claim = _claim(directory / f"cpu-{cpu}.lock")
        if claim is None:
            continue
        os.sched_setaffinity(0, {cpu})
        _held.append(claim)
        return cpu
    return None


def _claim(path: Path) -> IO[str] | None:
    import fcntl  # Unix only, like the affinity calls

    try:
        handle = path.open("a")
    except OSError:  # another user's lock file, say
        return None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    with contextlib.suppress(OSError):
        path.chmod(0o666)
    return handle
