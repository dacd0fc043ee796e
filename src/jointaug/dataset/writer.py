"""Write a dataset folder in the contract format, atomically and resumably."""

from __future__ import annotations

import csv
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
from jointaug.dataset.io import write_counts_png, write_label_png, write_text_atomic


class DatasetWriter:
    """Write a dataset folder case by case, atomically and resumably.

    Every file is written to a temp name and renamed. Rows go to a journal
    (``.cases.partial.csv``) as they are added; :meth:`close` writes ``cases.csv``
    and then ``dataset.json``, so a folder with ``dataset.json`` is complete and
    one without it is not. Opening a writer on a half-written folder resumes it:
    :attr:`done_ids` holds the cases already written. ``append=True`` reopens a
    complete folder to add more cases (it is incomplete again until closed).

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
        if journal.is_file():
            header, rows = _read_csv(journal)
            if header == [*REQUIRED_COLUMNS, *meta.labels, *self.extra_columns]:
                for row in rows:
                    self.cases.append(_row_to_case(row, meta.labels, self.extra_columns))
            else:
                journal.unlink()
        self._journal = open(journal, "a", newline="", encoding="utf-8")  # noqa: SIM115
        self._csv = csv.writer(self._journal, lineterminator="\n")
        if not self.cases:
            self._csv.writerow([*REQUIRED_COLUMNS, *meta.labels, *self.extra_columns])
            self._journal.flush()

    def _reopen(self) -> None:
        """Turn a complete folder back into a journal so more cases can be appended.

        The journal is written first, then the completeness marker removed, so a crash
        at any point leaves either the complete folder or a resumable one.
        """
        existing = read_dataset(self.root)
        if existing.meta.labels != list(self.meta.labels):
            raise DatasetError(f"{self.root}: cannot append, its labels differ")
        write_text_atomic(
            self.root / self.JOURNAL, cases_csv_text(existing.cases, self.meta.labels, self.extra_columns)
        )
        (self.root / "dataset.json").unlink()
        (self.root / "cases.csv").unlink()

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
                raise ValueError(f"labels has shape {vec.shape}, expected ({len(self.meta.labels)},)")
        case = Case(case_id, patient_id, view, img_rel, tissue_rel, regions_rel, vec, dict(extra or {}))
        self._csv.writerow(case_row(case, self.meta.labels, self.extra_columns))
        self._journal.flush()
        os.fsync(self._journal.fileno())
        self.cases.append(case)
        return case

    def close(self) -> Dataset:
        """Finish: write ``cases.csv`` then ``dataset.json`` (the completeness marker)."""
        self._journal.close()
        write_text_atomic(
            self.root / "cases.csv", cases_csv_text(self.cases, self.meta.labels, self.extra_columns)
        )
        write_text_atomic(self.root / "dataset.json", json.dumps(self.meta.to_json(), indent=2) + "\n")
        (self.root / self.JOURNAL).unlink(missing_ok=True)
        return Dataset(self.root, self.meta, list(self.cases))

    def abort(self) -> None:
        """Stop without finishing; the journal stays so the next writer resumes."""
        if not self._journal.closed:
            self._journal.close()

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


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
