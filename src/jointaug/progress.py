"""Progress bars that suit where the output goes.

On a terminal: a tqdm bar redrawn in place. Anywhere else (a Slurm log, CI, a Ray
worker, a pipe): plain lines, one per ``every_s`` seconds (default a minute) and, with
``line_per_postfix``, one per ``set_postfix`` call (the classifier calls it once per
evaluation), instead of thousands of carriage-return updates.
"""

from __future__ import annotations

import os
import sys
import time
from typing import IO


def is_terminal(stream: IO | None = None) -> bool:
    stream = stream or sys.stderr
    try:
        return stream.isatty() and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):
        return False


class LineProgress:
    """The subset of tqdm's API the training loops use, printing plain lines."""

    def __init__(
        self,
        total: int | None = None,
        initial: int = 0,
        desc: str = "",
        unit: str = "it",
        every_s: float = 60.0,
        line_per_postfix: bool = False,
        stream: IO | None = None,
    ):
        self.total, self.n, self.desc, self.unit = total, initial, desc, unit
        self.every_s, self.line_per_postfix = every_s, line_per_postfix
        self.stream = stream
        self.postfix = ""
        self.t0 = self._last = time.monotonic()

    def _line(self) -> None:
        total = f"/{self.total:,}" if self.total else ""
        post = f" {self.postfix}" if self.postfix else ""
        elapsed = time.monotonic() - self.t0
        print(
            f"{self.desc}: {self.n:,}{total} {self.unit}, {elapsed:.0f} s{post}",
            file=self.stream or sys.stderr,
            flush=True,
        )
        self._last = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.n += n
        if time.monotonic() - self._last >= self.every_s:
            self._line()

    def set_postfix(self, **kw) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in kw.items())
        if self.line_per_postfix:
            self._line()

    def close(self) -> None:
        if self.n and (
            self.total is None or self.n >= self.total or time.monotonic() - self.t0 > 1
        ):
            self._line()


class _Off:
    total = n = 0

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **kw) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(
    total: int | None = None,
    initial: int = 0,
    desc: str = "",
    unit: str = "it",
    enabled: bool = True,
    line_per_postfix: bool = False,
    **tqdm_kw,
):
    """A tqdm bar on a terminal, a :class:`LineProgress` elsewhere, nothing if not ``enabled``."""
    if not enabled:
        return _Off()
    if not is_terminal():
        return LineProgress(total, initial, desc, unit, line_per_postfix=line_per_postfix)
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True, **tqdm_kw)


def progress_iter(iterable, desc: str = "", unit: str = "it", total: int | None = None):
    """Iterate ``iterable`` with a :func:`progress_bar` (terminal bar or plain lines)."""
    if total is None:
        try:
            total = len(iterable)
        except TypeError:
            total = None
    bar = progress_bar(total, 0, desc, unit)
    try:
        for item in iterable:
            yield item
            bar.update(1)
    finally:
        bar.close()
