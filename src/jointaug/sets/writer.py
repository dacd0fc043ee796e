"""The one set writer: every augmentation-set kind plugs a batch maker into it.

A kind (``sets/diffusion.py``, ``sets/forward.py``, ``sets/oracle.py``, a test's toy)
decides only what is its own: the settings it records, the dataset metadata, its extra
columns, the plan of a case (:class:`~jointaug.sets.sources.CasePlanner`) and how a
batch of planned cases becomes images (:class:`MakeBatch`). :func:`write_set` does the
rest, the same way for every kind:

- records the settings in ``augmentation.json`` first; a set (finished or partly
  written) made with other settings is never extended or removed
  (:class:`~jointaug.outputs.StaleOutputError`); a folder that is not a set: ValueError;
- returns a complete set of at least ``n`` cases unchanged (sets never shrink);
- writes cases ``[0, n)`` (or a shard ``[start, stop)`` into ``.shards/``) in batches
  aligned to the kind's batch size ``B`` (a batch is always ``[k*B, (k+1)*B)`` cut at
  the end), so an interrupted, resumed or grown set holds the same cases as one written
  in one go; a batch whose cases are all written is skipped, a partly written batch is
  made whole and only its missing cases are written;
- case ``i`` is ``<name>_<i:06d>`` in subfolder ``<i // 1000:03d>``; rows go through
  :class:`~jointaug.dataset.writer.DatasetWriter` (journal, atomic files, resumable);
  ``dataset.json`` (the completeness marker) is written after the last case.

:func:`merge_shards` moves finished shards into the set and writes its index files.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from jointaug.dataset.format import (
    Dataset,
    DatasetError,
    DatasetMeta,
    cases_csv_text,
    is_complete,
    read_dataset,
)
from jointaug.dataset.writer import DatasetWriter
from jointaug.files import write_text_atomic
from jointaug.outputs import SET_SETTINGS, Output, StaleOutput, StaleOutputError, check
from jointaug.progress import progress_bar
from jointaug.sets.sources import CasePlanner, PlannedCase

SETTINGS_FILE = SET_SETTINGS  # augmentation.json, written first
CASES_PER_SUBDIR = 1000
SHARDS = ".shards"


@dataclass
class SetCase:
    """One written case of a set: what a :class:`MakeBatch` returns per planned case."""

    patient_id: str
    view: str
    image: np.ndarray  # counts (H, W)
    labels: np.ndarray  # (L,)
    tissue: np.ndarray | None
    regions: np.ndarray | None
    extra: dict[str, str]  # the kind's extra columns


class Planned(Protocol):
    """What a planner returns for case ``index`` (a :class:`PlannedCase`, or a kind's own
    record, e.g. the case of another set that it reads)."""

    index: int


class MakeBatch(Protocol):
    """A kind's generator: the cases of a batch of planned cases (same order and length).
    It is called for whole aligned batches, also when some of their cases are written
    already (those results are dropped), so per-case draws stay where they were."""

    def __call__(self, plans: Sequence[PlannedCase]) -> Sequence[SetCase]: ...


@dataclass
class SetSpec:
    """What a kind tells the writer about its set."""

    name: str  # case ids ``<name>_000000``
    settings: dict  # recorded in augmentation.json, compared on resume
    meta: DatasetMeta
    extra_columns: Sequence[str]
    planner: CasePlanner | Callable[[int], Planned]  # case index -> its plan
    what: str = "augmentation set"  # named in stale / size errors
    batch_size: int = 1
    # settings keys added after sets were first written, with the value such sets were made with
    later_keys: dict = field(default_factory=dict)
    not_compared: frozenset[str] = frozenset()  # keys a case does not depend on
    desc: str = ""  # progress bar


def case_id(name: str, index: int) -> str:
    return f"{name}_{index:06d}"


def check_size(n: int, what: str = "augmentation set") -> None:
    if n < 1:
        raise ValueError(f"{what} size must be >= 1, got {n}")


def stale_set(
    out: Path,
    settings: dict,
    what: str = "augmentation set",
    later_keys: dict | None = None,
    not_compared: frozenset[str] = frozenset(),
) -> StaleOutput | None:
    """The set in ``out`` (finished or partly written) if made with other settings
    (:func:`jointaug.outputs.check` decides)."""
    return check(
        Output(
            what,
            Path(out),
            settings=settings,
            record=SETTINGS_FILE,
            ignore=not_compared,
            defaults=later_keys or {},
        )
    ).stale


def record_settings(out: Path, spec: SetSpec) -> None:
    """Write ``augmentation.json``; refuse (deleting nothing) a set made with other settings."""
    out = Path(out)
    stale = stale_set(out, spec.settings, spec.what, spec.later_keys, spec.not_compared)
    if stale is not None:
        raise StaleOutputError([stale])
    if not (out / SETTINGS_FILE).is_file() and out.exists() and any(out.iterdir()):
        raise ValueError(
            f"{out}: exists but is not an augmentation set (no {SETTINGS_FILE}); move it away"
        )
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / SETTINGS_FILE, json.dumps(spec.settings, indent=2) + "\n")


def claim_settings(out: Path, settings: dict) -> dict:
    """Record ``settings`` unless a set is recorded in ``out`` already; return the recorded
    settings (the claimed ones, or those another process recorded first).

    Exclusive: the file is linked into place (``os.link`` fails if it exists), so of the
    shards of one set started at once exactly one decides what all use (its sampling
    batch). Stale settings are not judged here: :func:`record_settings` does that next."""
    out = Path(out)
    target = out / SETTINGS_FILE
    if not target.is_file() and not (out.exists() and any(out.iterdir())):
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / f".{SETTINGS_FILE}.{os.getpid()}.claim"
        tmp.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
        try:
            os.link(tmp, target)
        except FileExistsError:
            pass  # another shard recorded first: use its settings
        finally:
            tmp.unlink(missing_ok=True)
    try:
        return json.loads(target.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return settings  # not a set folder: record_settings reports it


def recorded_batch(out: Path) -> int | None:
    """The batch size a set was started with (None: no set there yet)."""
    try:
        return int(
            json.loads((Path(out) / SETTINGS_FILE).read_text(encoding="utf-8"))["batch_size"]
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def shard_ranges(n: int, shards: int, batch_size: int) -> list[tuple[int, int]]:
    """Split cases [0, n) into at most ``shards`` ranges aligned to ``batch_size``."""
    batches = -(-n // batch_size)
    per = -(-batches // max(1, shards))
    return [(a * batch_size, min(n, (a + per) * batch_size)) for a in range(0, batches, per)]


def shard_dir(out: Path, start: int, stop: int) -> Path:
    return Path(out) / SHARDS / f"{start:06d}-{stop:06d}"


def write_set(
    out: Path,
    n: int,
    spec: SetSpec,
    make_batch: MakeBatch,
    *,
    progress: bool = True,
    shard: tuple[int, int] | None = None,
) -> Path:
    """Write (or resume, or grow) the set ``out`` to ``n`` cases; return the folder written
    (``out``, or the shard folder with ``shard=(start, stop)``). Module docstring."""
    check_size(n, spec.what)
    out = Path(out)
    record_settings(out, spec)
    complete = read_dataset(out).cases if is_complete(out) else []
    if len(complete) >= n:
        return out
    lo, hi, target = 0, n, out
    if shard is not None:
        lo, hi = int(shard[0]), min(int(shard[1]), n)
        if lo % spec.batch_size:
            raise ValueError(
                f"shard start {lo} is not a multiple of the set's batch size {spec.batch_size}"
            )
        target = shard_dir(out, lo, hi)
        if is_complete(target):
            return target
    writer = DatasetWriter(target, spec.meta, spec.extra_columns, append=True)
    done = writer.done_ids | ({c.case_id for c in complete} if shard is not None else set())
    bar = progress_bar(
        hi - lo,
        sum(case_id(spec.name, i) in done for i in range(lo, hi)),
        spec.desc or spec.name,
        "img",
        enabled=progress,
    )
    try:
        for start in range(lo, hi, spec.batch_size):
            idx = range(start, min(start + spec.batch_size, hi))
            if all(case_id(spec.name, i) in done for i in idx):
                continue
            plans = [spec.planner(i) for i in idx]
            for p, case in zip(plans, make_batch(plans), strict=True):
                if case_id(spec.name, p.index) not in done:
                    _add(writer, spec.name, p.index, case)
                    bar.update(1)
    except BaseException:
        writer.abort()
        raise
    finally:
        bar.close()
    ds = writer.close()
    if shard is None and len(ds.cases) < n:  # pragma: no cover - defensive
        raise DatasetError(f"{out}: wrote {len(ds.cases)} of {n} cases")
    return target


def _add(writer: DatasetWriter, name: str, index: int, case: SetCase) -> None:
    writer.add(
        case_id=case_id(name, index),
        patient_id=case.patient_id,
        view=case.view,
        image=case.image,
        labels=case.labels,
        tissue=case.tissue,
        regions=case.regions,
        extra=case.extra,
        subdir=f"{index // CASES_PER_SUBDIR:03d}",
    )


def merge_shards(
    out: Path,
    n: int,
    ranges: Sequence[tuple[int, int]],
    *,
    name: str,
    meta_of: Callable[[dict], DatasetMeta],
    extra_columns: Sequence[str],
) -> Path:
    """Move the finished shards' files into the set ``out``, then write its cases.csv and
    dataset.json (the completeness marker) last; remove the shard folders.
    ``meta_of(settings)``: the set's metadata from its recorded settings."""
    out = Path(out)
    complete = read_dataset(out).cases if is_complete(out) else []
    if len(complete) >= n:
        _remove_shards(out, len(complete))
        return out
    settings = json.loads((out / SETTINGS_FILE).read_text(encoding="utf-8"))
    cases = {c.case_id: c for c in complete}
    for lo, hi in ranges:
        if all(case_id(name, i) in cases for i in range(lo, min(hi, n))):
            continue  # already in the set (merged before)
        part = shard_dir(out, lo, min(hi, n))
        if not is_complete(part):
            raise DatasetError(
                f"{part}: shard [{lo}, {hi}) of {out} is not finished; run its task first"
            )
        _move_cases(read_dataset(part), out, cases)
    missing = [c for c in (case_id(name, i) for i in range(n)) if c not in cases]
    if missing:
        raise DatasetError(f"{out}: shards do not cover {len(missing)} cases, e.g. {missing[0]}")
    ordered = [cases[c] for c in sorted(cases)]
    meta = meta_of(settings)
    write_text_atomic(out / "cases.csv", cases_csv_text(ordered, meta.labels, list(extra_columns)))
    write_text_atomic(out / "dataset.json", json.dumps(meta.to_json(), indent=2) + "\n")
    (out / DatasetWriter.JOURNAL).unlink(missing_ok=True)
    _remove_shards(out, n)  # the merged (now emptied) shards; a larger growth's shards stay
    return out


def _move_cases(part: Dataset, out: Path, cases: dict) -> None:
    """Move a shard's case files into ``out``; add its cases to ``cases``."""
    for c in part.cases:
        if c.case_id in cases:
            continue
        for rel in (c.image, c.tissue, c.regions):
            if rel:
                (out / rel).parent.mkdir(parents=True, exist_ok=True)
                os.replace(part.root / rel, out / rel)
        cases[c.case_id] = c


def _remove_shards(out: Path, covered: int) -> None:
    """Remove the shard folders ``[lo, hi)`` with ``hi <= covered`` (their cases are in the
    set); shards of cases beyond it (a larger growth, interrupted) are finished work: kept."""
    root = Path(out) / SHARDS
    for part in sorted(root.glob("*-*")) if root.is_dir() else []:
        try:
            hi = int(part.name.split("-")[1])
        except (IndexError, ValueError):
            continue
        if hi <= covered:
            shutil.rmtree(part, ignore_errors=True)
    if root.is_dir() and not any(root.iterdir()):
        root.rmdir()


def set_meta(
    name: str,
    fold: int,
    labels: Sequence[str],
    groups: dict,
    views: Sequence[str],
    description: str,
    modality: str,
    settings: dict,
) -> DatasetMeta:
    """The ``dataset.json`` of a set of kind ``name`` for ``fold``: the labels and groups it
    carries, its classification views, a description and the settings it was made with."""
    return DatasetMeta(
        name=f"{name}-fold{fold}",
        labels=list(labels),
        groups={k: list(v) for k, v in groups.items()},
        classification_views=list(views),
        description=description,
        modality=modality,
        extra={"augmentation": settings},
    )
