"""Finished outputs: done markers that record their settings, staleness, moving aside.

A finished output folder (a diffusion model, an augmentation set, a classifier) holds
``done``, a JSON marker written last: ``{"key": ..., "settings": {...}, ...}``. When
the current config asks for other settings, the output is *stale*. Nothing finished
is ever deleted implicitly: a stage that finds stale work raises
:class:`StaleOutputError` naming every changed key (old -> new), and only an explicit
``--retrain`` moves the old folders aside (:func:`jointaug.files.move_aside`, into
``RUN/stale/<timestamp>/<same relative path>``), where they stay until the user
deletes them. Moving (not deleting) keeps an hours-long GPU model one ``mv`` away
from being restored, and keeps the run folder's layout one folder per output.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from jointaug.files import write_text_atomic
from jointaug.keys import changed_settings

DONE = "done"


def read_done(folder: Path) -> dict | None:
    """The done marker of ``folder`` (None when absent or unreadable)."""
    try:
        done = json.loads((Path(folder) / DONE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return done if isinstance(done, dict) else None


def write_done(folder: Path, key: str, settings: dict, **extra) -> None:
    write_text_atomic(Path(folder) / DONE, json.dumps({**extra, "key": key, "settings": settings}) + "\n")


@dataclass
class StaleOutput:
    """A finished (or partly written) output made with other settings than asked now."""

    path: Path
    what: str
    changes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        lines = [f"{self.what}: {self.path}"]
        lines += [f"    {c}" for c in self.changes] or ["    (its settings were not recorded; its key differs)"]
        return "\n".join(lines)


class StaleOutputError(ValueError):
    """Finished work would have to be replaced; the user must confirm (``--retrain``)."""

    def __init__(self, stale: Sequence[StaleOutput], hint: str = "rerun with --retrain"):
        self.stale = list(stale)
        head = (f"{len(self.stale)} finished output(s) were made with other settings than the "
                f"current config; nothing was changed:")  # fmt: skip
        body = "\n".join(s.describe() for s in self.stale)
        tail = (f"to replace them, {hint} (the old outputs are moved to RUN/stale/, not deleted); "
                f"or restore the settings")  # fmt: skip
        super().__init__(f"{head}\n{body}\n{tail}")


def stale_vs(folder: Path, what: str, key: str, settings: dict) -> StaleOutput | None:
    """``folder``'s done marker against the wanted key: None if absent or up to date."""
    done = read_done(folder)
    if done is None or done.get("key") == key:
        return None
    old = done.get("settings")
    return StaleOutput(Path(folder), what, changed_settings(old, settings) if isinstance(old, dict) else [])




def record_set_settings(out: Path, settings: dict, what: str = "augmentation set",
                        filename: str = "augmentation.json") -> None:  # fmt: skip
    """Record ``settings`` in ``out/filename`` before a set generator writes ``out``; a set
    already there with other settings is never extended or removed: StaleOutputError
    (names the changed keys; ``--retrain`` moves it aside). A non-set folder: ValueError."""
    out = Path(out)
    path = out / filename
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        if old != settings:
            raise StaleOutputError([StaleOutput(out, what, changed_settings(old, settings))])
    elif out.exists() and any(out.iterdir()):
        raise ValueError(f"{out}: exists but is not an augmentation set (no {filename}); move it away")
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(settings, indent=2) + "\n")
