"""The checks of one row of cases.csv (part of
:func:`jointaug.dataset.validate.validate_dataset`): its ids and label cells, and its
files (image and label maps: readable, values, shapes, positive regions present).

:func:`check_row` adds what it finds to the :class:`~jointaug.dataset.issues.Report`
and counts into a :class:`Tally` what the checks over all rows need.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from jointaug.dataset.format import (
    TISSUE_VALUES,
    DatasetError,
    is_blank_row,
    parse_label_cell,
    safe_relpath,
)
from jointaug.dataset.io import ImageReadError, read_image, read_label_map
from jointaug.dataset.issues import Report

SCIENTIFIC = re.compile(r"^[+-]?\d([.,]\d+)?E[+-]?\d+$", re.IGNORECASE)  # Excel's 1.23457E+11


@dataclass
class Tally:
    """What the row checks count for the totals and the summary."""

    labels: list[str]
    ids: Counter  # case_id -> occurrences (0 once a duplicate is reported)
    positives: np.ndarray = field(init=False)
    known: np.ndarray = field(init=False)
    views: Counter = field(default_factory=Counter)
    labelled_views: Counter = field(default_factory=Counter)
    patients: set = field(default_factory=set)
    bad_cells: dict[str, list[tuple[str, str]]] = field(
        default_factory=dict
    )  # bad value -> (case, column)
    mangled: dict[str, list[str]] = field(default_factory=lambda: {"case_id": [], "patient_id": []})
    blank: int = 0

    def __post_init__(self) -> None:
        self.positives = np.zeros(len(self.labels), dtype=int)
        self.known = np.zeros(len(self.labels), dtype=int)


def check_row(
    root: Path, row: dict, line: int, t: Tally, report: Report, check_files: bool
) -> None:
    """Ids, labels and (``check_files``) the files of one row of cases.csv."""
    if is_blank_row(row):
        t.blank += 1
        return
    labels = t.labels
    cid = row["case_id"].strip()
    name = cid or f"<line {line}>"
    if not cid:
        report.add("case-id", f"empty case_id on line {line}", file="cases.csv")
    elif t.ids[cid] > 1:
        report.add("case-id", f"duplicate case_id (appears {t.ids[cid]} times)", name, "cases.csv")
        t.ids[cid] = 0  # report once
    pid = row["patient_id"].strip()
    if not pid:
        report.add("patient-id", "empty patient_id", name, "cases.csv")
    for column, value in (("case_id", cid), ("patient_id", pid)):
        if SCIENTIFIC.match(value):
            t.mangled[column].append(name)
    t.patients.add(pid)
    view = row["view"].strip()
    t.views[view] += 1
    vec = np.full(len(labels), np.nan)
    for j, lab in enumerate(labels):
        if lab not in row:
            continue
        try:
            vec[j] = parse_label_cell(row[lab])
        except ValueError:
            t.bad_cells.setdefault(row[lab].strip(), []).append((name, lab))
    finite = np.isfinite(vec)
    t.known += finite
    t.positives += finite & (vec == 1)
    if finite.any():
        t.labelled_views[view] += 1
    if check_files:
        _check_files(root, row, name, labels, finite & (vec == 1), report)


def _check_files(
    root: Path, row: dict, name: str, labels: list[str], positive: np.ndarray, report: Report
) -> None:
    """The image and the maps of one case: readable, values, shapes, positive regions."""
    image_rel = row["image"].strip()
    image = None
    if not image_rel:
        report.add("path", "empty image path", name, "cases.csv")
    else:
        image = _read_checked(root, image_rel, name, "image", report, read_image)
    if image is not None:
        if not np.all(np.isfinite(image)):
            report.add("image-values", "image has non-finite values (NaN or inf)", name, image_rel)
        elif image.size and image.min() < 0:
            report.add(
                "image-values", f"image has negative values (min {image.min():g})", name, image_rel
            )
    regions = None
    for column, allowed in (
        ("tissue", set(TISSUE_VALUES)),
        ("regions", set(range(len(labels) + 1))),
    ):
        rel = row[column].strip()
        if not rel:
            continue
        lm = _read_checked(root, rel, name, column, report, read_label_map)
        if lm is None:
            continue
        if image is not None and lm.shape != image.shape:
            report.add(
                "shape",
                f"{column} map shape {lm.shape} differs from image shape {image.shape}",
                name,
                rel,
            )
        bad = sorted(set(np.unique(lm).tolist()) - allowed)
        if bad:
            report.add(
                "map-values",
                f"{column} map has values {bad[:8]} outside the allowed {{0..{max(allowed)}}}",
                name,
                rel,
            )
        if column == "regions":
            regions = lm
    if regions is not None:
        present = set(np.unique(regions).tolist())
        for j in np.flatnonzero(positive):
            if (j + 1) not in present:
                report.add(
                    "positive-region-empty",
                    f"label {labels[j]!r} is 1 but its region (value {j + 1}) is empty",
                    name,
                    row["regions"].strip(),
                    warning=True,
                )


def _read_checked(
    root: Path, rel: str, case: str, column: str, report: Report, reader: Callable
) -> np.ndarray | None:
    try:
        path = safe_relpath(root, rel)
    except DatasetError as exc:
        report.add("path", f"{column}: {exc}", case, rel)
        return None
    if not path.is_file():
        report.add(
            "file-missing", f"{column} file does not exist{_case_hint(path, root)}", case, rel
        )
        return None
    try:
        return reader(path)
    except ImageReadError as exc:
        report.add("unreadable", str(exc).replace(str(path), rel), case, rel)
        return None


def _case_hint(path: Path, root: Path) -> str:
    """' (found images/P1.PNG: ...)' when the name exists in another letter case."""
    parent = path.parent
    if not parent.is_dir():
        return ""
    lower = path.name.lower()
    for other in parent.iterdir():
        if other.name.lower() == lower:
            rel = (
                other.relative_to(root.resolve()).as_posix()
                if other.is_relative_to(root.resolve())
                else other
            )
            return f" (found {rel}: file names are case-sensitive here, unlike on Windows or macOS)"
    return ""
