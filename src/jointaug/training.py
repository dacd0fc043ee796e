"""What both training loops (diffusion, classifier) share: when to checkpoint, and the log.

- :class:`CheckpointClock`: a checkpoint every ``checkpoint_minutes`` of wall time (and
  every ``checkpoint_every`` steps when that is > 0), and always at the end -- not at
  every evaluation or every N steps: at the paper profile a diffusion checkpoint is
  ~1 GB and a classifier checkpoint (model, best model, Adam state) 112 MB, which at an
  evaluation every ~580 samples would be up to ~1 TB written per classifier training.
  A killed run resumes from its last checkpoint exactly (the loops checkpoint only at
  points from which they can resume bit for bit); it loses at most that much time.
- :class:`LogFile`: ``log.csv`` appended one row at a time, rewritten only once per call
  (at the start, keeping the rows the checkpoint knows about); given a
  :class:`~jointaug.curves.CurveSpec`, the same rows also go to TensorBoard event files
  and ``progress.png`` beside it (:mod:`jointaug.curves`).
- :class:`GracefulInterrupt`: Ctrl-C stops at the next point a checkpoint can resume from
  exactly, writes it, then raises KeyboardInterrupt.
"""

from __future__ import annotations

import csv
import io
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from jointaug.curves import Curves, CurveSpec
from jointaug.files import append_text, write_text_atomic


class CheckpointClock:
    """Is a checkpoint due at ``step``? Every ``minutes`` of wall time, every ``every``
    steps when > 0, and always at ``end``."""

    def __init__(self, minutes: float, every: int, end: int):
        self.seconds, self.every, self.end = max(0.0, float(minutes)) * 60.0, int(every), int(end)
        self.last = time.monotonic()

    def due(self, step: int) -> bool:
        return (
            step >= self.end
            or (self.every > 0 and step % self.every == 0)
            or time.monotonic() - self.last >= self.seconds
        )

    def reset(self) -> None:
        self.last = time.monotonic()


def _fmt(v) -> str | int:
    return f"{v:.6g}" if isinstance(v, float) else v


class LogFile:
    """``log.csv`` with fixed columns, appended row by row (and its curves, given a spec)."""

    def __init__(
        self, path: Path, columns: Sequence[str], keep: list[dict], curves: CurveSpec | None = None
    ):
        """Start the log with the rows ``keep`` (those the checkpoint knows about): one
        atomic rewrite, then appends. A column missing from a row is left empty. With
        ``curves``, event files and ``progress.png`` in the same folder; :meth:`close` at
        the end of the call draws the last picture."""
        self.path, self.columns = Path(path), tuple(columns)
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.columns, lineterminator="\n", extrasaction="ignore")
        w.writeheader()
        for r in keep:
            w.writerow({k: _fmt(r.get(k, "")) for k in self.columns})
        write_text_atomic(self.path, buf.getvalue())
        self.curves = None if curves is None else Curves(self.path.parent, curves, keep)

    def append(self, row: dict) -> None:
        append_text(self.path, ",".join(str(_fmt(row.get(k, ""))) for k in self.columns) + "\n")
        if self.curves is not None:
            self.curves.add(row)

    def close(self) -> None:
        """The curves' last drawing; the event files closed."""
        if self.curves is not None:
            self.curves.close()


class GracefulInterrupt:
    """The first Ctrl-C (SIGINT) asks the loop to stop at its next resumable point (a step
    boundary for the diffusion loop, the next evaluation for the classifier), where it
    writes a checkpoint and raises KeyboardInterrupt; a second Ctrl-C interrupts at once
    (without a checkpoint: the state could be half a step old). Outside the main thread
    (where signal handlers cannot be set) it does nothing."""

    def __init__(self, what: str = "training"):
        self.what = what
        self.requested = False
        self._previous = None

    def _handler(self, signum, frame) -> None:  # noqa: ARG002
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(
            f"\ninterrupt: {self.what} stops at the next checkpoint-safe point; "
            "press Ctrl-C again to stop at once (loses the work since the last checkpoint)",
            file=sys.stderr,
            flush=True,
        )

    def __enter__(self) -> GracefulInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
