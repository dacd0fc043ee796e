"""Finished outputs: what each one records, whether it is current, and stale ones.

Every output a stage writes (a diffusion model, an augmentation set, a classifier, the
natural source) is declared as an :class:`Output`: its folder, the settings key or
settings it should record under the current config, and the file that records them
(``done``, a JSON marker written last: ``{"key": ..., "settings": {...}, ...}``, or an
augmentation set's ``augmentation.json``, written first). :func:`check` is the one
place that says whether it is *current*, *missing* (absent, or partly written with the
same settings: a stage resumes it) or *stale* (made with other settings).

Nothing finished is ever deleted implicitly: :func:`handle_stale` is the one place that
does what the user asked with stale outputs: raise :class:`StaleOutputError` naming
every changed key (old -> new), or with ``--retrain`` move them aside
(:func:`jointaug.files.move_aside`, into ``RUN/stale/<timestamp>/<same relative
path>``), where they stay until the user deletes them. Moving (not deleting) keeps an
hours-long GPU model one ``mv`` away from being restored, and keeps the run folder's
layout one folder per output.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from jointaug.files import move_aside, write_text_atomic
from jointaug.keys import changed_settings

DONE = "done"  # the done marker of a finished output folder
SET_SETTINGS = "augmentation.json"  # the settings an augmentation set records, written first


def read_done(folder: Path) -> dict | None:
    """The done marker of ``folder`` (None when absent or unreadable)."""
    try:
        done = json.loads((Path(folder) / DONE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return done if isinstance(done, dict) else None


def write_done(folder: Path, key: str, settings: dict, **extra) -> None:
    write_text_atomic(
        Path(folder) / DONE, json.dumps({**extra, "key": key, "settings": settings}) + "\n"
    )


@dataclass
class StaleOutput:
    """A finished (or partly written) output made with other settings than asked now."""

    path: Path
    what: str
    changes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        lines = [f"{self.what}: {self.path}"]
        lines += [f"    {c}" for c in self.changes] or [
            "    (its settings were not recorded; its key differs)"
        ]
        return "\n".join(lines)


class StaleOutputError(ValueError):
    """Finished work would have to be replaced; the user must confirm (``--retrain``)."""

    def __init__(self, stale: Sequence[StaleOutput], hint: str = "rerun with --retrain"):
        self.stale = list(stale)
        head = (
            f"{len(self.stale)} finished output(s) were made with other settings than the "
            f"current config; nothing was changed:"
        )
        body = "\n".join(s.describe() for s in self.stale)
        tail = (
            f"to replace them, {hint} (the old outputs are moved to RUN/stale/, not deleted); "
            f"or restore the settings"
        )
        super().__init__(f"{head}\n{body}\n{tail}")


class Status(enum.Enum):
    CURRENT = "current"  # finished with the settings asked now
    MISSING = "missing"  # absent, or partly written with the settings asked now (resumable)
    STALE = "stale"  # made (finished or partly) with other settings


@dataclass(frozen=True)
class Output:
    """One output folder, declared once: where it is, what it should record, how it
    records it, and when it is finished.

    ``key``: compared with the key of the ``record`` file (a done marker); ``settings``:
    what it should record, listed against the recorded ones when they differ (compared
    whole when there is no ``key``, as an augmentation set's settings file is; ``ignore``:
    keys not compared, ``defaults``: values of keys added later, for records without
    them). Neither: only ``finished`` counts (e.g. the natural source). ``finished``:
    whether the folder is complete (default: the ``record`` file is there)."""

    what: str
    path: Path
    key: str | None = None
    settings: dict | None = None
    record: str = DONE
    finished: Callable[[Path], bool] | None = None
    ignore: frozenset[str] = frozenset()
    defaults: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Check:
    status: Status
    stale: StaleOutput | None = None  # what changed, when status is STALE

    @property
    def current(self) -> bool:
        return self.status is Status.CURRENT


def _changes(out: Output, recorded: dict) -> list[str] | None:
    """The changed settings of a recorded output (None: it is as asked)."""
    if out.key is not None:
        if recorded.get("key") == out.key:
            return None
        old = recorded.get("settings")
        return (
            changed_settings(old, out.settings)
            if isinstance(old, dict) and out.settings is not None
            else []
        )
    old = {**out.defaults, **recorded}
    new = json.loads(json.dumps(out.settings))  # as it will read back from its file
    changes = changed_settings(
        {k: v for k, v in old.items() if k not in out.ignore},
        {k: v for k, v in new.items() if k not in out.ignore},
    )
    return changes or None


def check(out: Output) -> Check:
    """Current, missing or stale: the one place that decides (reads files only). A record
    that cannot be read counts as stale (its settings are unknown)."""
    path = Path(out.path) / out.record
    if (out.key is not None or out.settings is not None) and path.is_file():
        try:
            recorded = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            recorded = None
        changes = _changes(out, recorded) if isinstance(recorded, dict) else []
        if changes is not None:
            return Check(Status.STALE, StaleOutput(Path(out.path), out.what, changes))
    finished = out.finished(Path(out.path)) if out.finished is not None else path.is_file()
    return Check(Status.CURRENT if finished else Status.MISSING)


def find_stale(outputs: Sequence[Output]) -> list[StaleOutput]:
    """The stale ones among ``outputs``, in order."""
    return [c.stale for o in outputs if (c := check(o)).stale is not None]


def handle_stale(
    stale: Sequence[StaleOutput | None],
    run_root: Path,
    *,
    retrain: bool,
    echo: Callable[[str], None] = print,
    hint: str = "rerun with --retrain",
    note: str = "",
) -> None:
    """What the user asked for with ``stale`` outputs (Nones ignored): stop with
    StaleOutputError listing them, or with ``retrain`` move them all aside (one stamp)
    and say where (``note`` appended to that line)."""
    stale = [s for s in stale if s is not None]
    if not stale:
        return
    if not retrain:
        raise StaleOutputError(stale, hint=hint)
    dest = move_aside([s.path for s in stale], run_root)
    echo(f"moved {len(stale)} stale output(s) to {dest}{note}")


def stale_vs(folder: Path, what: str, key: str, settings: dict) -> StaleOutput | None:
    """``folder``'s done marker against the wanted key: None if absent or up to date
    (an unreadable marker is not reported here; :func:`check` reports it stale)."""
    if read_done(folder) is None:
        return None
    return check(Output(what, Path(folder), key, settings)).stale
