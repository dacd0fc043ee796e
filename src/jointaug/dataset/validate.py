"""Check a dataset folder against every rule of the contract (``docs/dataset_format.md``).

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
from pathlib import Path

from jointaug.dataset.case_checks import Tally, check_row
from jointaug.dataset.format import (
    REQUIRED_COLUMNS,
    DatasetError,
    DatasetMeta,
    header_problems,
    label_cell_hint,
    read_cases_table,
)
from jointaug.dataset.issues import Issue, Report
from jointaug.dataset.mirror import layout_problems

__all__ = ["Issue", "Report", "validate_dataset"]

PER_CELL_LIMIT = 3  # a bad label value in more cells than this is reported once, with counts


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
    tally = Tally(meta.labels, Counter(r["case_id"].strip() for r in rows))
    iterator = progress(rows) if progress is not None else rows
    for line, row in enumerate(iterator, start=2):
        check_row(root, row, line, tally, report, check_files)
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


def _report_totals(report: Report, t: Tally, meta, n_rows: int) -> None:
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
