"""Training curves: TensorBoard event files and a ``progress.png`` beside the model.

A training's :class:`~jointaug.training.LogFile` hands every ``log.csv`` row to a
:class:`Curves`, which writes into the training's output folder:

- ``events/``: TensorBoard event files, one scalar per logged column under the tags of
  its :class:`CurveSpec` and the spec's step column as TensorBoard's step.
  ``tensorboard --logdir RUN`` shows every training of a run folder, each named by its
  path (``fold_0/diffusion/events``, ``fold_0/classify/METHOD/seed_0/events``).
  Optional: it needs the ``tensorboard`` package (``pip install "jointaug[tensorboard]"``);
  without it one note is printed (once per process) and only ``progress.png`` is drawn.
- ``progress.png`` (always; nnU-Net draws one every epoch): one panel per group of
  columns (losses, validation metrics, learning rate) and a speed panel, written
  atomically. Redrawn as rows come, but only once the time since the last drawing is
  :data:`REDRAW_FACTOR` times what that drawing took (so drawing costs at most ~2% of the
  training: a few hundred milliseconds at most every ~10 s), and always when the call ends.

Resume: like ``log.csv``, the events are rewritten once per call, at its start, from the
rows the checkpoint knows about (older event files are removed: everything in them is in
``log.csv``, or came after the checkpoint and is trained again), then appended. The new
file opens with TensorBoard's ``purge_step`` = 0, so a TensorBoard already watching the
folder also drops what it read of the interrupted call: no step is ever shown twice.

Neither draws random numbers nor touches the model or its optimiser: a training's
weights are the same with and without them (``tests/test_curves.py``).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from jointaug.files import DiskFullError, atomic_path

EVENTS = "events"  # the TensorBoard folder inside a training's output folder
PROGRESS = "progress.png"
REDRAW_FACTOR = 50.0  # redraw once the time since the last drawing is 50x what it took
PANEL_PX = (900, 230)  # width, height of one panel in progress.png (pixels at DPI)
DPI = 100
INSTALL_HINT = 'pip install "jointaug[tensorboard]"'
_noted = False


@dataclass(frozen=True)
class Panel:
    """One panel of ``progress.png``: the columns drawn against the step column."""

    title: str
    columns: tuple[str, ...]
    log_y: bool = False


@dataclass(frozen=True)
class CurveSpec:
    """What a training's curves are: its step column, TensorBoard tags, panels.

    x: the step column (TensorBoard's step; must grow row by row); xlabel: its meaning.
    tags: (column, TensorBoard tag) pairs; a tag's prefix before ``/`` is its section.
    panels: the panels of ``progress.png``, top to bottom; a speed panel (``x`` per second
    of ``wall_s``) is added last when the log has a ``wall_s`` column.
    best: a column holding the step of the best model (a dashed line), or None.
    """

    x: str
    xlabel: str
    tags: tuple[tuple[str, str], ...]
    panels: tuple[Panel, ...]
    best: str | None = None

    def label(self, column: str) -> str:
        return dict(self.tags).get(column, column)


def _num(v) -> float | None:
    """A log value as a float (None for an empty cell or text)."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f


def note(message: str) -> None:
    """One line on stderr (the task's log under an executor)."""
    print(f"note: {message}", file=sys.stderr, flush=True)


def tensorboard_hint(run_path: str | Path) -> str:
    """The one line ``jointaug run`` prints: where the curves are, how to watch them."""
    import importlib.util
    import shlex

    cmd = f"tensorboard --logdir {shlex.quote(str(run_path))}"
    missing = importlib.util.find_spec("tensorboard") is None
    return f"training curves: progress.png beside each model; live: {cmd}" + (
        f" (after {INSTALL_HINT})" if missing else ""
    )


def summary_writer(folder: Path):
    """A fresh TensorBoard writer in ``folder`` (older event files there removed), or None
    when the tensorboard package is not installed (noted once per process)."""
    global _noted
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        if not _noted:
            _noted = True
            note(f"tensorboard is not installed: no TensorBoard event files ({INSTALL_HINT})")
        return None
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("events.out.tfevents.*"):
        old.unlink(missing_ok=True)
    return SummaryWriter(str(folder), purge_step=0, flush_secs=30)


class Curves:
    """The event files and ``progress.png`` of one training call (module docstring)."""

    def __init__(self, folder: str | Path, spec: CurveSpec, rows: Sequence[dict] = ()):
        """Start with the rows ``rows`` (those the checkpoint knows about): the event files
        rewritten with them; ``progress.png`` is drawn when rows come and at :meth:`close`."""
        self.folder, self.spec = Path(folder), spec
        self.rows = [dict(r) for r in rows]
        self.writer = summary_writer(self.folder / EVENTS)
        self._last, self._took, self._dirty = time.monotonic(), 0.2, False
        if self.writer is not None and self.rows:
            now, end = time.time(), _num(self.rows[-1].get("wall_s")) or 0.0
            for r in self.rows:  # wall times as if the rows had come at their training times
                self._scalars(r, now - max(0.0, end - (_num(r.get("wall_s")) or 0.0)))
            self.writer.flush()

    def _scalars(self, row: dict, walltime: float | None = None) -> None:
        step = _num(row.get(self.spec.x))
        if step is None:
            return
        for column, tag in self.spec.tags:
            v = _num(row.get(column))
            if v is not None:
                self.writer.add_scalar(tag, v, global_step=int(step), walltime=walltime)

    def add(self, row: dict) -> None:
        """A new log row: its scalars, and ``progress.png`` redrawn when due."""
        self.rows.append(dict(row))
        self._dirty = True
        if self.writer is not None:
            self._scalars(row)
        if time.monotonic() - self._last >= REDRAW_FACTOR * self._took:
            self.draw()

    def draw(self) -> Path:
        """Redraw ``progress.png`` now (and flush the event files)."""
        t0 = time.monotonic()
        if self.writer is not None:
            self.writer.flush()
        try:
            draw_progress(self.rows, self.spec, self.folder / PROGRESS)
        except DiskFullError:
            raise
        except Exception as exc:  # a picture never stops a training
            note(f"{self.folder / PROGRESS} not drawn: {exc!r}")
        self._last = time.monotonic()
        self._took, self._dirty = self._last - t0, False
        return self.folder / PROGRESS

    def close(self) -> None:
        """The last drawing (if rows came since) and the event files closed."""
        if self._dirty:
            self.draw()
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _series(rows: Sequence[dict], x: str, column: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for r in rows:
        a, b = _num(r.get(x)), _num(r.get(column))
        if a is not None and b is not None and math.isfinite(b):
            xs.append(a)
            ys.append(b)
    return xs, ys


def _speed(rows: Sequence[dict], x: str) -> tuple[list[float], list[float]]:
    """(x, x per second of training) between consecutive rows."""
    xs, ys = [], []
    for a, b in zip(rows, rows[1:], strict=False):
        dx = (_num(b.get(x)) or 0.0) - (_num(a.get(x)) or 0.0)
        dt = (_num(b.get("wall_s")) or 0.0) - (_num(a.get("wall_s")) or 0.0)
        if dx > 0 and dt > 0:
            xs.append(_num(b.get(x)))
            ys.append(dx / dt)
    return xs, ys


def _where(folder: Path) -> str:
    """The folder from its ``fold_K`` part on (``fold_0/classify/baseline/seed_0``)."""
    parts = folder.parts
    k = next((i for i, p in enumerate(parts) if p.startswith("fold_")), len(parts) - 1)
    return "/".join(parts[k:])


def panels_of(spec: CurveSpec, rows: Sequence[dict]) -> list[Panel]:
    """The panels ``progress.png`` has for ``rows``: the spec's and the speed panel."""
    speed = any("wall_s" in r for r in rows)
    return [
        *spec.panels,
        *([Panel("speed (per second of training time)", ("wall_s",))] if speed else []),
    ]


def _y_axis(ax, log_y: bool) -> None:
    """Plain numbers on the y axis (no "1e-5" offset text over the panel's title); a log
    scale when asked and the values span a decade; a constant series (a fixed learning
    rate) centred in [0, 2 v]."""
    from matplotlib.ticker import FormatStrFormatter

    ax.tick_params(labelsize=8)
    ys = [y for line in ax.get_lines() for y in line.get_ydata()]
    if log_y and ys and min(ys) > 0 and max(ys) >= 10 * min(ys):  # a decade or more
        ax.set_yscale("log")
        return
    ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))
    if ys and min(ys) == max(ys) and ys[0] > 0:
        ax.set_ylim(0, 2 * ys[0])


def draw_progress(rows: Sequence[dict], spec: CurveSpec, out: str | Path) -> Path:
    """Draw ``rows`` (log.csv rows) as ``out`` (PNG, written atomically): one panel per
    :func:`panels_of`, ``PANEL_PX`` pixels each, the step column on a shared x axis."""
    from matplotlib.figure import Figure  # no pyplot: no global figure state

    panels = panels_of(spec, rows)
    w, h = PANEL_PX
    height = h * len(panels)  # fixed margins (in pixels): a layout engine doubles the time
    fig = Figure(figsize=(w / DPI, height / DPI), dpi=DPI)
    fig.subplots_adjust(
        left=80 / w, right=1 - 190 / w, top=1 - 60 / height, bottom=45 / height, hspace=0.35
    )
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    best = _num(rows[-1].get(spec.best)) if rows and spec.best else None
    for ax, panel in zip(axes, panels, strict=True):
        if panel.columns == ("wall_s",):
            ax.plot(*_speed(rows, spec.x), color="tab:gray", label=spec.x)
        else:
            for column in panel.columns:
                ax.plot(*_series(rows, spec.x, column), label=spec.label(column))
        _y_axis(ax, panel.log_y)
        if best is not None:
            ax.axvline(
                best, color="k", ls="--", lw=0.8, label="best model" if ax is axes[0] else None
            )
        ax.set_title(panel.title, fontsize=10, loc="left")
        ax.grid(alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    axes[-1].set_xlabel(spec.xlabel)
    last = rows[-1].get(spec.x) if rows else "-"
    fig.suptitle(
        f"{_where(Path(out).parent)}: {len(rows)} rows, {spec.x} {last}",
        fontsize=10,
        y=1 - 8 / height,
        va="top",
    )
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return Path(out)
