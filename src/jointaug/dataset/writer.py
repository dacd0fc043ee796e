"""Write a dataset folder in the contract format, atomically and resumably."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jointaug.dataset.format import (
    REQUIRED_COLUMNS,
    Case,
    Dataset,
    DatasetError,
    DatasetMeta,
    case_row,
    cases_csv_text,
    is_complete,
    parse_label_cell,
    read_dataset,
)
from jointaug.dataset.io import write_counts_png, write_label_png
from jointaug.files import DiskFullError, is_disk_full, write_fd, write_text_atomic


class DatasetWriter:
    """Write a dataset folder case by case, atomically and resumably.

    Every file is written to a temp name and renamed. Rows go to a journal
    (``.cases.partial.csv``) as they are added, one whole line per write (a line torn by
    a crash or a full disk is cut off when the journal is reopened); :meth:`close`
    writes ``cases.csv`` and then ``dataset.json``, so a new folder with
    ``dataset.json`` is complete and one without it is not. Opening a writer on a
    half-written folder resumes it: :attr:`done_ids` holds the cases already written.

    ``append=True`` reopens a complete folder to add more cases. Its ``dataset.json``
    and ``cases.csv`` stay in place until :meth:`close` replaces ``cases.csv``
    atomically, so while it grows (and after a crash or a full disk mid-growth) the
    folder still reads as the complete set it was; the journal beside it holds the
    rows added so far and the next ``append=True`` writer resumes from it.

    Example::

        with DatasetWriter(out, DatasetMeta.hands("phantom"), extra_columns=["seed"]) as w:
            w.add(case_id="p01_palmar", patient_id="p01", view="palmar", image=counts,
                  tissue=tissue, regions=regions, labels=vec, extra={"seed": "3"})
    """

    JOURNAL = ".cases.partial.csv"

    def __init__(
        self,
        root: str | os.PathLike,
        meta: DatasetMeta,
        extra_columns: Sequence[str] = (),
        overwrite: bool = False,
        append: bool = False,
    ):
        self.root = Path(root)
        self.meta = meta
        self.extra_columns = list(extra_columns)
        if is_complete(self.root) and append and not overwrite:
            self._reopen()
        elif is_complete(self.root) and not overwrite:
            raise DatasetError(
                f"{self.root}: already a complete dataset (pass overwrite=True or append=True)"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        if overwrite:
            for name in ("dataset.json", "cases.csv", self.JOURNAL):
                (self.root / name).unlink(missing_ok=True)
        self.cases: list[Case] = []
        journal = self.root / self.JOURNAL
        header = [*REQUIRED_COLUMNS, *meta.labels, *self.extra_columns]
        if journal.is_file():
            _cut_torn_line(journal)
            old_header, rows = _read_csv(journal)
            if old_header == header:
                for row in rows:
                    self.cases.append(_row_to_case(row, meta.labels, self.extra_columns))
            else:
                journal.unlink()
        self._fd: int | None = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        if not self.cases and os.fstat(self._fd).st_size == 0:
            self._append_line(header, "the journal of this new folder could not be started")

    def _reopen(self) -> None:
        """Start appending to a complete folder: write its rows to the journal (unless an
        interrupted append left one, which holds them and the rows added since).

        ``dataset.json`` and ``cases.csv`` stay until :meth:`close`, so the folder stays
        readable as it was, whatever happens while it grows.
        """
        existing = read_dataset(self.root)
        if existing.meta.labels != list(self.meta.labels):
            raise DatasetError(f"{self.root}: cannot append, its labels differ")
        journal = self.root / self.JOURNAL
        if journal.is_file():
            _cut_torn_line(journal)
            header, rows = _read_csv(journal)
            ids = {r["case_id"] for r in rows} if "case_id" in header else set()
            if header == [*REQUIRED_COLUMNS, *self.meta.labels, *self.extra_columns] and ids >= {
                c.case_id for c in existing.cases
            }:
                return
        write_text_atomic(
            journal, cases_csv_text(existing.cases, self.meta.labels, self.extra_columns)
        )

    def _append_line(self, cells: Sequence[str], what: str = "") -> None:
        """Append one CSV line to the journal in one write; on a full disk cut it off again."""
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(cells)
        data = buf.getvalue().encode("utf-8")
        assert self._fd is not None, "writer is closed"
        size = os.fstat(self._fd).st_size
        try:
            write_fd(self._fd, data)
            os.fsync(self._fd)
        except OSError as exc:
            try:
                os.ftruncate(self._fd, size)  # no torn line left behind
            except OSError:
                pass  # the next writer cuts it off (see _cut_torn_line)
            if is_disk_full(exc):
                what = what or (
                    f"case {cells[0]!r} was not added; the {len(self.cases)} cases "
                    "written before it are kept in this journal"
                )
                raise DiskFullError(self.root / self.JOURNAL, what) from exc
            raise

    @property
    def done_ids(self) -> set[str]:
        return {c.case_id for c in self.cases}

    def add(
        self,
        case_id: str,
        patient_id: str,
        view: str,
        image: np.ndarray,
        labels: Sequence[float] | np.ndarray | None = None,
        tissue: np.ndarray | None = None,
        regions: np.ndarray | None = None,
        extra: dict[str, str] | None = None,
        subdir: str = "",
    ) -> Case:
        """Write one case's files (16-bit PNG counts, 8-bit PNG maps) and journal its row."""
        if case_id in self.done_ids:
            raise DatasetError(f"duplicate case_id {case_id!r}")
        sub = f"{subdir.strip('/')}/" if subdir else ""
        img_rel = f"images/{sub}{case_id}.png"
        write_counts_png(self.root / img_rel, image)
        tissue_rel = regions_rel = ""
        if tissue is not None:
            tissue_rel = f"masks/tissue/{sub}{case_id}.png"
            write_label_png(self.root / tissue_rel, tissue)
        if regions is not None:
            regions_rel = f"masks/regions/{sub}{case_id}.png"
            write_label_png(self.root / regions_rel, regions)
        if labels is None:
            vec = np.full(len(self.meta.labels), np.nan, dtype=np.float32)
        else:
            vec = np.asarray(labels, dtype=np.float32)
            if vec.shape != (len(self.meta.labels),):
                raise ValueError(
                    f"labels has shape {vec.shape}, expected ({len(self.meta.labels)},)"
                )
        case = Case(
            case_id, patient_id, view, img_rel, tissue_rel, regions_rel, vec, dict(extra or {})
        )
        self._append_line(case_row(case, self.meta.labels, self.extra_columns))
        self.cases.append(case)
        return case

    def _close_journal(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def close(self) -> Dataset:
        """Finish: write ``cases.csv`` then ``dataset.json`` (the completeness marker).

        A full disk here leaves the journal and the folder's previous index files as
        they were (each write is atomic), so the next writer resumes."""
        self._close_journal()
        write_text_atomic(
            self.root / "cases.csv",
            cases_csv_text(self.cases, self.meta.labels, self.extra_columns),
        )
        write_text_atomic(
            self.root / "dataset.json", json.dumps(self.meta.to_json(), indent=2) + "\n"
        )
        (self.root / self.JOURNAL).unlink(missing_ok=True)
        return Dataset(self.root, self.meta, list(self.cases))

    def abort(self) -> None:
        """Stop without finishing; the journal stays so the next writer resumes."""
        self._close_journal()

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            self._close_journal()

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _cut_torn_line(path: Path) -> None:
    """Cut a journal back to its last complete line (each row is written as one line)."""
    with open(path, "rb+") as f:
        data = f.read()
        if data and not data.endswith(b"\n"):
            f.truncate(data.rfind(b"\n") + 1)


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows:
        return [], []
    header = rows[0]
    # a torn last line (crash mid-write) has the wrong number of cells: drop it
    body = [dict(zip(header, r, strict=True)) for r in rows[1:] if len(r) == len(header)]
    return header, body


def _row_to_case(row: dict[str, str], labels: Sequence[str], extra_columns: Sequence[str]) -> Case:
    return Case(
        case_id=row["case_id"],
        patient_id=row["patient_id"],
        view=row["view"],
        image=row["image"],
        tissue=row["tissue"],
        regions=row["regions"],
        labels=np.array([parse_label_cell(row[lab]) for lab in labels], dtype=np.float32),
        extra={c: row.get(c, "") for c in extra_columns},
    )
