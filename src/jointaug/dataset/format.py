"""The dataset folder contract (``docs/dataset_format.md``): read and write.

A dataset folder holds ``dataset.json`` (labels, groups, classification views),
``cases.csv`` (one row per image) and the image and label-map files that rows name.
:func:`read_dataset` parses the two index files (it does not open images; use
:func:`jointaug.dataset.validate.validate_dataset` for the full check);
:class:`jointaug.dataset.writer.DatasetWriter` writes a folder atomically and resumably.
The arrow runs one way: ``writer`` imports ``format``, never the reverse.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from jointaug.dataset.errors import DatasetError
from jointaug.dataset.io import read_image, read_label_map
from jointaug.dataset.mirror import layout_problems

HAND_JOINTS = (
    "wrist",
    "mcp1",
    "mcp2",
    "mcp3",
    "mcp4",
    "mcp5",
    "ip1",
    "pip2",
    "pip3",
    "pip4",
    "pip5",
    "dip2",
    "dip3",
    "dip4",
    "dip5",
)
HAND_LABELS = tuple(f"{side}_{j}" for side in ("R", "L") for j in HAND_JOINTS)
HAND_GROUPS = {
    "right": [f"R_{j}" for j in HAND_JOINTS],
    "left": [f"L_{j}" for j in HAND_JOINTS],
}
REQUIRED_COLUMNS = ("case_id", "patient_id", "view", "image", "tissue", "regions")
TISSUE_VALUES = (0, 1, 2, 3)  # background, normal, low inflammation, high inflammation


class CsvFormatError(DatasetError):
    """``cases.csv`` is not comma-separated UTF-8 text (a spreadsheet's other exports)."""

    rule = "csv-format"


@dataclass
class DatasetMeta:
    """Contents of ``dataset.json``."""

    name: str
    labels: list[str]
    groups: dict[str, list[str]]
    classification_views: list[str] = field(default_factory=lambda: ["palmar", "dorsal"])
    description: str = ""
    modality: str = "NM"
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        out = dict(self.extra)
        out.update(
            name=self.name,
            description=self.description,
            modality=self.modality,
            labels=list(self.labels),
            groups={k: list(v) for k, v in self.groups.items()},
            classification_views=list(self.classification_views),
        )
        return out

    @classmethod
    def from_json(cls, obj: dict) -> DatasetMeta:
        known = {"name", "description", "modality", "labels", "groups", "classification_views"}
        return cls(
            name=str(obj.get("name", "")),
            description=str(obj.get("description", "")),
            modality=str(obj.get("modality", "")),
            labels=[str(x) for x in obj.get("labels", [])],
            groups={str(k): [str(x) for x in v] for k, v in (obj.get("groups") or {}).items()},
            classification_views=[str(x) for x in obj.get("classification_views", [])],
            extra={k: v for k, v in obj.items() if k not in known},
        )

    @classmethod
    def hands(cls, name: str, description: str = "") -> DatasetMeta:
        """The default two-hand, 30-label metadata."""
        return cls(
            name=name,
            description=description,
            labels=list(HAND_LABELS),
            groups={k: list(v) for k, v in HAND_GROUPS.items()},
        )


@dataclass
class Case:
    """One row of ``cases.csv``. ``labels`` is float: 1, 0, or NaN for unknown."""

    case_id: str
    patient_id: str
    view: str
    image: str
    tissue: str = ""
    regions: str = ""
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def is_labelled(self) -> bool:
        return bool(self.labels.size) and bool(np.any(np.isfinite(self.labels)))


def safe_relpath(root: Path, rel: str) -> Path:
    """Resolve ``rel`` inside ``root``; raise DatasetError if it is absolute or escapes."""
    if not rel:
        raise DatasetError("empty path")
    p = PurePosixPath(rel.replace("\\", "/"))
    if p.is_absolute() or (len(rel) > 1 and rel[1] == ":"):
        raise DatasetError(
            f"path {rel!r} is absolute; paths must be relative to the dataset folder"
        )
    full = (root / Path(*p.parts)).resolve()
    if not full.is_relative_to(root.resolve()):
        raise DatasetError(f"path {rel!r} escapes the dataset folder")
    return full


_LABEL_HINTS = (
    (("true", "yes", "y", "x", "pos", "positive", "inflamed"), "write 1 for inflamed"),
    (("false", "no", "n", "neg", "negative", "normal"), "write 0 for not inflamed"),
    (("na", "n/a", "nan", "none", "null", "?", "-", "unknown"), "leave the cell empty for unknown"),
    (("1,0", "0,0", "1,00", "0,00"), "a decimal comma: write 1 or 0"),
)


def label_cell_hint(value: str) -> str:
    """What to write instead of a bad label cell, e.g. 'TRUE' -> 'write 1 for inflamed'."""
    v = value.strip().lower()
    for values, hint in _LABEL_HINTS:
        if v in values:
            return hint
    return "use 1 (inflamed), 0 (not) or leave it empty (unknown)"


def parse_label_cell(value: str) -> float:
    """'1' -> 1.0, '0' -> 0.0, '' -> NaN; anything else raises ValueError (with a hint)."""
    v = value.strip()
    if v == "":
        return math.nan
    if v in ("1", "1.0"):
        return 1.0
    if v in ("0", "0.0"):
        return 0.0
    raise ValueError(f"label cell {value!r} is not 0, 1 or empty ({label_cell_hint(value)})")


def is_blank_row(row: dict[str, str]) -> bool:
    """A row whose every cell is empty (spreadsheets export trailing rows like ``,,,,``)."""
    return all(not (v or "").strip() for v in row.values())


def format_label_cell(value: float) -> str:
    return "" if not np.isfinite(value) else str(int(value))


@dataclass
class Dataset:
    """A parsed dataset folder. Images are read on demand."""

    root: Path
    meta: DatasetMeta
    cases: list[Case]

    @property
    def labels(self) -> list[str]:
        return self.meta.labels

    def path(self, rel: str) -> Path:
        return safe_relpath(self.root, rel)

    def image(self, case: Case) -> np.ndarray:
        return read_image(self.path(case.image))

    def tissue(self, case: Case) -> np.ndarray | None:
        return read_label_map(self.path(case.tissue)) if case.tissue else None

    def regions(self, case: Case) -> np.ndarray | None:
        return read_label_map(self.path(case.regions)) if case.regions else None

    def case(self, case_id: str) -> Case:
        for c in self.cases:
            if c.case_id == case_id:
                return c
        raise KeyError(case_id)

    def patients(self) -> list[str]:
        return sorted({c.patient_id for c in self.cases})

    def classification_cases(self, patients: Iterable[str] | None = None) -> list[Case]:
        """Labelled cases of the classification views (optionally of some patients only)."""
        views = set(self.meta.classification_views)
        keep = None if patients is None else set(patients)
        return [
            c
            for c in self.cases
            if c.view in views and c.is_labelled and (keep is None or c.patient_id in keep)
        ]

    def label_matrix(self, cases: Sequence[Case]) -> np.ndarray:
        """(N, L) float32 array of labels, NaN where unknown."""
        if not cases:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return np.stack([c.labels for c in cases]).astype(np.float32)


# ---- optional layout keys: which views are mirrored, which labels mirror each other ----


def read_meta(root: str | os.PathLike) -> DatasetMeta:
    root = Path(root)
    path = root / "dataset.json"
    if not path.is_file():
        raise DatasetError(f"{path}: missing (every dataset folder needs dataset.json)")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(obj, dict):
        raise DatasetError(f"{path}: must hold a JSON object")
    if not isinstance(obj.get("labels"), list) or not obj["labels"]:
        raise DatasetError(f"{path}: 'labels' must be a non-empty list")
    problems = layout_problems(obj)
    if problems:
        raise DatasetError(f"{path}: {'; '.join(problems)}")
    return DatasetMeta.from_json(obj)


SAVE_AS_CSV = (
    "save it again as comma-separated UTF-8 (Excel: File > Save As > "
    "'CSV UTF-8 (Comma delimited)'; LibreOffice: Save As > Text CSV, character set "
    "UTF-8, field delimiter ',')"
)
_DELIMITERS = {";": "semicolons (';')", "\t": "tabs", "|": "vertical bars ('|')"}


def _decode_cases_csv(path: Path, data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise CsvFormatError(
            f"{path}: UTF-16 text (a spreadsheet's 'Unicode Text' export), not UTF-8 CSV; {SAVE_AS_CSV}"
        )
    try:
        return data.decode("utf-8-sig")  # a UTF-8 byte-order mark (Excel's 'CSV UTF-8') is fine
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise CsvFormatError(
            f"{path} line {line}: not UTF-8 text (byte {data[exc.start]:#04x}; likely a legacy "
            f"encoding such as Windows-1252 from Excel's plain 'CSV (Comma delimited)'); {SAVE_AS_CSV}"
        ) from exc


def _check_delimiter(path: Path, text: str, header: list[str]) -> None:
    """Raise one clear CsvFormatError when the header is not comma-separated."""
    if "case_id" in header:
        return
    first = next((line for line in text.splitlines() if line.strip()), "")
    for delim, name in _DELIMITERS.items():
        cells = [c.strip().strip('"') for c in first.split(delim)]
        if len(cells) > 1 and "case_id" in cells:
            raise CsvFormatError(
                f"{path}: the columns are separated by {name}, not commas (found "
                f"{len(cells)} columns such as {', '.join(cells[:3])}); a spreadsheet saved as CSV "
                f"with a European locale does this. The contract's cases.csv is comma-separated: "
                f"{SAVE_AS_CSV}"
            )


def read_cases_table(root: str | os.PathLike) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of ``cases.csv`` as strings (blank rows kept, so that row i is line i+2).

    Raises :class:`CsvFormatError` (one message saying what to do) for a file separated by
    semicolons, tabs or bars, UTF-16 text or a legacy 8-bit encoding.
    """
    path = Path(root) / "cases.csv"
    if not path.is_file():
        raise DatasetError(f"{path}: missing (every dataset folder needs cases.csv)")
    text = _decode_cases_csv(path, path.read_bytes())
    reader = csv.DictReader(io.StringIO(text))
    header = [(h or "").strip() for h in (reader.fieldnames or [])]
    _check_delimiter(path, text, header)
    rows = [
        {(k or "").strip(): (v or "") for k, v in row.items() if k is not None} for row in reader
    ]
    return header, rows


def header_problems(header: Sequence[str], labels: Sequence[str]) -> tuple[list[str], list[str]]:
    """(missing-column messages, duplicate-column messages) of a cases.csv header.

    A missing column whose name appears in another letter case is named
    ("'case_id' is missing; found 'Case_ID' (names are case-sensitive)").
    """
    lower = {h.lower(): h for h in header if h}
    missing = []
    for col in (*REQUIRED_COLUMNS, *labels):
        if col not in header:
            kind = "label column" if col in labels else "required column"
            near = lower.get(col.lower())
            hint = f"; found {near!r} (column names are case-sensitive)" if near else ""
            missing.append(f"{kind} {col!r} is missing{hint}")
    counts: dict[str, int] = {}
    for h in header:
        if h:
            counts[h] = counts.get(h, 0) + 1
    dupes = [
        f"column {h!r} appears {n} times (only one can be read)" for h, n in counts.items() if n > 1
    ]
    return missing, dupes


def read_dataset(root: str | os.PathLike) -> Dataset:
    """Parse ``dataset.json`` and ``cases.csv``. Raises DatasetError on a broken index.

    Bad label cells raise; files are not opened here (see ``validate_dataset``).
    """
    root = Path(root)
    meta = read_meta(root)
    header, rows = read_cases_table(root)
    missing, dupes = header_problems(header, meta.labels)
    if missing or dupes:
        raise DatasetError(f"{root / 'cases.csv'}: {'; '.join(missing + dupes)}")
    known = set(REQUIRED_COLUMNS) | set(meta.labels)
    cases = []
    for i, row in enumerate(rows, start=2):
        if is_blank_row(row):
            continue
        try:
            labels = np.array([parse_label_cell(row[lab]) for lab in meta.labels], dtype=np.float32)
        except ValueError as exc:
            raise DatasetError(
                f"{root / 'cases.csv'} line {i} (case {row['case_id']!r}): {exc}"
            ) from exc
        cases.append(
            Case(
                case_id=row["case_id"].strip(),
                patient_id=row["patient_id"].strip(),
                view=row["view"].strip(),
                image=row["image"].strip(),
                tissue=row["tissue"].strip(),
                regions=row["regions"].strip(),
                labels=labels,
                extra={k: v for k, v in row.items() if k not in known},
            )
        )
    return Dataset(root=root, meta=meta, cases=cases)


def case_row(case: Case, labels: Sequence[str], extra_columns: Sequence[str]) -> list[str]:
    return [
        case.case_id,
        case.patient_id,
        case.view,
        case.image,
        case.tissue,
        case.regions,
        *(format_label_cell(v) for v in case.labels),
        *(str(case.extra.get(c, "")) for c in extra_columns),
    ]


def cases_csv_text(
    cases: Sequence[Case], labels: Sequence[str], extra_columns: Sequence[str]
) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*REQUIRED_COLUMNS, *labels, *extra_columns])
    for c in cases:
        w.writerow(case_row(c, labels, extra_columns))
    return buf.getvalue()


def is_complete(root: str | os.PathLike) -> bool:
    """A dataset folder is complete when ``dataset.json`` and ``cases.csv`` exist."""
    root = Path(root)
    return (root / "dataset.json").is_file() and (root / "cases.csv").is_file()
