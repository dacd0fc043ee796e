"""One writer per run folder: an OS-level lock on ``RUN/.lock``.

Every command that writes a run folder takes :func:`run_lock` first; a second writer
exits at once with a message naming the holder (pid, host, command, since when).
The lock is ``fcntl.flock`` on an open file: the kernel releases it when the holding
process ends, however it ends, so a lock left by a killed process never blocks (the
holder's details in the file are then simply out of date). Readers (``--plan``) do not
take it. With the Ray executor the driver holds it while its tasks write.

Note: flock is advisory and, on some network file systems, local to one machine; on a
shared file system used from several nodes, start one driver per run folder.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock
    fcntl = None  # type: ignore[assignment]

LOCK = ".lock"
_held: dict[str, int] = {}  # resolved run path -> depth (re-entrant within a process)


class RunLockedError(ValueError):
    """Another process is writing this run folder."""


def holder(run_path: str | os.PathLike) -> dict | None:
    """The details the current (or last) holder wrote into the lock file, if any."""
    try:
        info = json.loads((Path(run_path) / LOCK).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _describe(info: dict | None) -> str:
    if not info:
        return "another process (no details recorded)"
    return (
        f"pid {info.get('pid')} on {info.get('host')}, running `{info.get('command')}` "
        f"since {info.get('since')}"
    )


@contextmanager
def run_lock(run_path: str | os.PathLike, command: str | None = None) -> Iterator[None]:
    """Hold the run folder's write lock for the block; raise RunLockedError if held."""
    path = Path(run_path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such run folder")
    key = str(path.resolve())
    if key in _held or fcntl is None:
        _held[key] = _held.get(key, 0) + 1
        try:
            yield
        finally:
            _held[key] -= 1
            if not _held[key]:
                del _held[key]
        return
    fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLockedError(
                f"{path}: another jointaug command is writing this run folder: "
                f"{_describe(holder(path))}. Wait for it to finish (or stop it); two writers "
                f"on one run folder would corrupt it. Reading it (`jointaug run ... --plan`) is fine."
            ) from None
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": command or " ".join(["jointaug", *sys.argv[1:]]),
            "since": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        _held[key] = 1
        try:
            yield
        finally:
            del _held[key]
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
