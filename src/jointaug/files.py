"""Files written so that a crash or a full disk never leaves half a file: the one file
helper every room of the package may import (it imports nothing of the package).

Every writer is atomic: it writes a temp file beside the target and renames it, so a
crash never leaves a half-written file under the final name. A full disk (``ENOSPC``,
or a quota: ``EDQUOT``) while writing raises :class:`DiskFullError`, a user error the
CLI prints as one message: the temp file is removed, the previous version of the target
(if any) is unchanged, and rerunning the same command after freeing space resumes.
:func:`move_aside` moves finished outputs out of the way instead of deleting them.
"""

from __future__ import annotations

import errno
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
STALE = "stale"  # the folder (in a run folder) that outputs are moved aside to


class DiskFullError(OSError):
    """The disk (or the user's quota) filled up while the toolkit was writing ``path``."""

    def __init__(
        self,
        path: str | os.PathLike,
        what: str = "the file was not written and its previous version, if any, is unchanged",
    ):
        self.path = Path(path)
        super().__init__(
            errno.ENOSPC,
            f"{path}: the disk is full (no space left on device); {what}, so nothing finished "
            f"was lost. Free some space on {self.path.parent} (df -h shows how much is left) "
            f"and rerun the same command: it resumes where it stopped",
        )

    def __str__(self) -> str:
        return self.strerror


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS


def write_fd(fd: int, data: bytes | memoryview) -> None:
    """Write all of ``data`` to a file descriptor (``os.write`` may write part of it)."""
    view = memoryview(data)
    while view.nbytes:
        n = os.write(fd, view)
        view = view[n:]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside ``path``; rename it onto ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent
    )
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except DiskFullError:
        raise
    except OSError as exc:
        if is_disk_full(exc):
            raise DiskFullError(path) from exc
        raise
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_TRUNC)
        try:
            write_fd(fd, data)
        finally:
            os.close(fd)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def append_text(path: str | os.PathLike, text: str) -> None:
    """Append ``text`` (whole lines) to a log file; on a full disk cut it back and raise
    :class:`DiskFullError`, so no half line is left behind."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        size = os.fstat(fd).st_size
        try:
            write_fd(fd, text.encode("utf-8"))
        except OSError as exc:
            os.ftruncate(fd, size)
            if is_disk_full(exc):
                raise DiskFullError(
                    path, "the line was not added and the file is as it was"
                ) from exc
            raise
    finally:
        os.close(fd)


def move_aside(paths: Sequence[Path], run_root: Path, stamp: str | None = None) -> Path:
    """Move ``paths`` (inside ``run_root``) to ``run_root/stale/<stamp>/<relative path>``."""
    run_root = Path(run_root).resolve()
    stamp = stamp or time.strftime("%Y%m%d-%H%M%S")
    dest_root = run_root / STALE / stamp
    for p in paths:
        p = Path(p).resolve()
        if not p.exists():
            continue
        rel = p.relative_to(run_root)
        dest = dest_root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(p, dest)
    return dest_root
