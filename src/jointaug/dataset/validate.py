"""Check a dataset folder against every rule of the contract (``DATASET_FORMAT.md``).

:func:`validate_dataset` never raises for a broken folder: it returns a
:class:`Report` listing every violation (errors) and every warning, each naming
the case, the file and the rule, plus a summary of what it found.

Rules (ids as printed):

========================  ==========================================================
``json``                  dataset.json missing, unreadable or malformed
``labels-unique``         ``labels`` empty or holding a name twice
``groups``                a group names an unknown label, a label sits in two groups
                          or in none
``csv``                   cases.csv missing or unreadable
``csv-format``            cases.csv separated by semicolons/tabs, UTF-16 or not UTF-8 (one
                          message saying how to save it again)
``column-duplicate``      a column name appears twice in the header
``column-missing``        a required column or a label column is missing
``column-not-a-label``    a column named like a label (``R_...``) is not in ``labels``
``case-id``               empty or duplicate ``case_id``
``patient-id``            empty ``patient_id``
``path``                  empty image path, absolute path or one escaping the folder
``file-missing``          a named file does not exist
``unreadable``            a file cannot be read as a single-channel 2D image
``image-values``          image not finite or negative
``shape``                 a label map's shape differs from its image's
``map-values``            tissue values outside {0,1,2,3}, region values outside
                          {0..len(labels)}
``label-cell``            a label cell not in {0, 1, empty} (one message per bad value
                          when it fills many cells, e.g. a column of TRUE/FALSE)
``blank-rows``            (warning) rows whose every cell is empty (skipped)
``id-mangled``            (warning) case or patient ids in scientific notation (a
                          spreadsheet rewrote long numbers: distinct ids may have merged)
``positive-region-empty`` (warning) a label set to 1 whose region is empty
``view-unlabelled``       (warning) a classification view with no labelled case
========================  ==========================================================
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from jointaug.dataset.format import (
    REQUIRED_COLUMNS,
    TISSUE_VALUES,
    DatasetError,
    DatasetMeta,
    header_problems,
    is_blank_row,
    label_cell_hint,
    layout_problems,
    parse_label_cell,
    read_cases_table,
    safe_relpath,
)
from jointaug.dataset.io import ImageReadError, read_image, read_label_map

PER_CELL_LIMIT = 3  # a bad label value in more cells than this is reported once, with counts
SCIENTIFIC = re.compile(r"^[+-]?\d([.,]\d+)?E[+-]?\d+$", re.IGNORECASE)  # Excel's 1.23457E+11


@dataclass(frozen=True)
class Issue:
    rule: str
    message: str
    case: str = ""
    file: str = ""
    severity: str = "error"

    def __str__(self) -> str:
        where = ", ".join(x for x in (f"case {self.case}" if self.case else "", self.file) if x)
        return f"[{self.rule}] {where + ': ' if where else ''}{self.message}"


@dataclass
class Report:
    root: Path
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    summary: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    def add(
        self, rule: str, message: str, case: str = "", file: str = "", warning: bool = False
    ) -> None:
        issue = Issue(rule, message, case, file, "warning" if warning else "error")
        (self.warnings if warning else self.errors).append(issue)

    def rules(self) -> set[str]:
        return {i.rule for i in self.errors}


def _check_meta(root: Path, report: Report) -> DatasetMeta | None:
    path = root / "dataset.json"
    if not path.is_file():
        report.add("json", "missing: every dataset folder needs dataset.json", file="dataset.json")
        return None
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        report.add("json", f"not valid JSON ({exc})", file="dataset.json")
        return None
    if not isinstance(obj, dict):
        report.add("json", "must hold a JSON object", file="dataset.json")
        return None
    labels = obj.get("labels")
    if (
        not isinstance(labels, list)
        or not labels
        or not all(isinstance(x, str) and x for x in labels)
    ):
        report.add(
            "labels-unique", "'labels' must be a non-empty list of names", file="dataset.json"
        )
        return None
    for name, n in Counter(labels).items():
        if n > 1:
            report.add("labels-unique", f"label {name!r} is listed {n} times", file="dataset.json")
    groups = obj.get("groups")
    if not isinstance(groups, dict) or not all(isinstance(v, list) for v in groups.values()):
        report.add(
            "groups", "'groups' must map group names to lists of labels", file="dataset.json"
        )
        groups = {}
    seen: dict[str, str] = {}
    for gname, members in groups.items():
        for lab in members:
            if lab not in labels:
                report.add(
                    "groups", f"group {gname!r} names unknown label {lab!r}", file="dataset.json"
                )
            elif lab in seen:
                report.add(
                    "groups",
                    f"label {lab!r} is in two groups ({seen[lab]!r} and {gname!r})",
                    file="dataset.json",
                )
            else:
                seen[lab] = gname
    if groups:
        for lab in labels:
            if lab not in seen:
                report.add("groups", f"label {lab!r} is in no group", file="dataset.json")
    views = obj.get("classification_views", [])
    if not isinstance(views, list):
        report.add("json", "'classification_views' must be a list", file="dataset.json")
        obj["classification_views"] = []
    for message in layout_problems(obj):
        report.add("json", message, file="dataset.json")
    return DatasetMeta.from_json(obj)


def _label_prefixes(labels: list[str]) -> set[str]:
    return {m.group(1) for lab in labels if (m := re.match(r"^([A-Za-z]+_)", lab))}


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


def _report_bad_cells(report: Report, bad: dict[str, list[tuple[str, str]]]) -> None:
    """One issue per bad cell, or one per bad value when it fills many cells."""
    for value, where in bad.items():
        hint = label_cell_hint(value)
        if len(where) <= PER_CELL_LIMIT:
            for case, lab in where:
                report.add(
                    "label-cell",
                    f"column {lab!r}: {value!r} is not 0, 1 or empty ({hint})",
                    case,
                    "cases.csv",
                )
            continue
        columns = list(dict.fromkeys(lab for _, lab in where))
        cases = list(dict.fromkeys(case for case, _ in where))
        report.add(
            "label-cell",
            f"{value!r} is not 0, 1 or empty ({hint}): {len(where)} cells in {len(cases)} cases and "
            f"{len(columns)} columns ({', '.join(columns[:4])}{', ...' if len(columns) > 4 else ''})",
            f"{cases[0]} and {len(cases) - 1} more" if len(cases) > 1 else cases[0],
            "cases.csv",
        )


def validate_dataset(
    root: str | os.PathLike, check_files: bool = True, progress: Callable | None = None
) -> Report:
    """Check a dataset folder; return a Report (never raises for a broken folder).

    ``progress`` (optional) wraps the iterable of rows, e.g. ``rich.progress.track``.
    """
    root = Path(root)
    report = Report(root)
    if not root.is_dir():
        report.add("json", "dataset folder does not exist", file=str(root))
        return report
    meta = _check_meta(root, report)
    try:
        header, rows = read_cases_table(root)
    except DatasetError as exc:
        message = str(exc).replace(str(root / "cases.csv"), "").strip(": ")
        report.add(exc.rule, message, file="cases.csv")
        return report
    if meta is None:
        return report
    _check_header(report, header, meta.labels)
    if any(i.rule == "column-missing" and "required" in i.message for i in report.errors):
        return report
    tally = _Tally(meta.labels, Counter(r["case_id"].strip() for r in rows))
    iterator = progress(rows) if progress is not None else rows
    for line, row in enumerate(iterator, start=2):
        _check_row(root, row, line, tally, report, check_files)
    _report_totals(report, tally, meta, len(rows))
    return report


def _check_header(report: Report, header: list[str], labels: list[str]) -> None:
    missing, dupes = header_problems(header, labels)
    for message in missing:
        report.add("column-missing", message, file="cases.csv")
    for message in dupes:
        report.add("column-duplicate", message, file="cases.csv")
    prefixes = _label_prefixes(labels)
    for col in header:
        if (
            col not in labels
            and col not in REQUIRED_COLUMNS
            and any(col.startswith(p) for p in prefixes)
        ):
            report.add(
                "column-not-a-label",
                f"column {col!r} looks like a label but is not in dataset.json 'labels'",
                file="cases.csv",
            )


@dataclass
class _Tally:
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


def _check_row(
    root: Path, row: dict, line: int, t: _Tally, report: Report, check_files: bool
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


def _report_totals(report: Report, t: _Tally, meta, n_rows: int) -> None:
    """Issues over all rows (bad label values, mangled ids, blank rows, unlabelled views)
    and the report's summary."""
    _report_bad_cells(report, t.bad_cells)
    for column, names in t.mangled.items():
        if names:
            report.add(
                "id-mangled",
                f"{len(names)} {column} values look like numbers a spreadsheet "
                "rewrote in scientific notation (e.g. 1.23457E+11): different ids may have "
                "become one; format the column as text before saving",
                names[0],
                "cases.csv",
                warning=True,
            )
    if t.blank:
        report.add(
            "blank-rows",
            f"{t.blank} rows with every cell empty were skipped",
            file="cases.csv",
            warning=True,
        )
    for view in meta.classification_views:
        if t.labelled_views[view] == 0:
            report.add(
                "view-unlabelled",
                f"classification view {view!r} has no labelled case",
                file="dataset.json",
                warning=True,
            )
    report.summary = {
        "name": meta.name,
        "cases": n_rows - t.blank,
        "patients": len(t.patients - {""}),
        "views": dict(sorted(t.views.items())),
        "classification_cases": sum(t.labelled_views[v] for v in meta.classification_views),
        "labels": t.labels,
        "positives": t.positives.tolist(),
        "known": t.known.tolist(),
    }
