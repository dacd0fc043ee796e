"""Reading the 11k Hands dataset (Afifi 2019) in its own layout, and the paper's filters.

Layout::

    DIR/HandInfo.csv    id,age,gender,skinColor,accessories,nailPolish,aspectOfHand,imageName,irregularities
    DIR/Hands/Hand_0000002.jpg ...

``id`` is a string (leading zeros kept). Filters (the paper's): no accessories, a
palmar or dorsal aspect, an open hand (:mod:`jointaug.natural.openness`), plus a
user-edited include list (names kept whatever the automatic checks say) and
exclude list (names always dropped), and a cap on the number kept.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from jointaug.natural.background import hand_mask
from jointaug.natural.openness import count_fingers

HAND_INFO = "HandInfo.csv"
HANDS_DIR = "Hands"
COLUMNS = (
    "id",
    "age",
    "gender",
    "skinColor",
    "accessories",
    "nailPolish",
    "aspectOfHand",
    "imageName",
    "irregularities",
)
ASPECTS = ("dorsal right", "dorsal left", "palmar right", "palmar left")


class HandsDataError(ValueError):
    """The 11k folder or its HandInfo.csv breaks the expected layout."""


@dataclass(frozen=True)
class HandRecord:
    """One row of ``HandInfo.csv``."""

    id: str
    age: str
    gender: str
    skin_color: str
    accessories: int
    nail_polish: int
    aspect: str
    image_name: str
    irregularities: int

    @property
    def side(self) -> str:
        """``"right"`` or ``"left"``: which hand of the subject."""
        return self.aspect.split()[-1]

    @property
    def face(self) -> str:
        """``"dorsal"`` or ``"palmar"``."""
        return self.aspect.split()[0]


def _int_cell(value: str, column: str, path: Path, line: int) -> int:
    try:
        return int(float(value.strip()))
    except ValueError:
        raise HandsDataError(
            f"{path} line {line}: column {column!r} must be an integer, got {value!r}"
        ) from None


def read_hand_info(path: str | os.PathLike) -> list[HandRecord]:
    """Parse ``HandInfo.csv``; raise HandsDataError naming the file and line on bad rows."""
    path = Path(path)
    if path.is_dir() or path.suffix.lower() != ".csv":
        path = path / HAND_INFO
    if not path.is_file():
        raise HandsDataError(
            f"{path}: missing (an 11k Hands folder holds {HAND_INFO} and {HANDS_DIR}/)"
        )
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise HandsDataError(f"{path}: not UTF-8 text ({exc})") from exc
    reader = csv.reader(io.StringIO(text))
    header = [h.strip() for h in next(reader, [])]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise HandsDataError(f"{path} line 1: missing columns {missing} (header {header})")
    col = {name: header.index(name) for name in COLUMNS}
    records, seen = [], set()
    for line, row in enumerate(reader, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise HandsDataError(
                f"{path} line {line}: {len(row)} cells, expected {len(header)} like the header"
            )
        cell = {name: row[i].strip() for name, i in col.items()}
        aspect = " ".join(cell["aspectOfHand"].lower().split())
        if aspect not in ASPECTS:
            raise HandsDataError(
                f"{path} line {line}: aspectOfHand {cell['aspectOfHand']!r} is not one of {ASPECTS}"
            )
        name = cell["imageName"]
        if not name or "/" in name or "\\" in name or name in (".", ".."):
            raise HandsDataError(f"{path} line {line}: imageName {name!r} is not a file name")
        if name in seen:
            raise HandsDataError(f"{path} line {line}: imageName {name!r} appears twice")
        if not cell["id"]:
            raise HandsDataError(f"{path} line {line}: empty id")
        seen.add(name)
        records.append(
            HandRecord(
                id=cell["id"],
                age=cell["age"],
                gender=cell["gender"],
                skin_color=cell["skinColor"],
                accessories=_int_cell(cell["accessories"], "accessories", path, line),
                nail_polish=_int_cell(cell["nailPolish"], "nailPolish", path, line),
                aspect=aspect,
                image_name=name,
                irregularities=_int_cell(cell["irregularities"], "irregularities", path, line),
            )
        )
    return records


def hand_info_text(records: Iterable[HandRecord]) -> str:
    """``HandInfo.csv`` text for records (the 11k quoting style)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
    w.writerow(COLUMNS)
    for r in records:
        w.writerow(
            [
                r.id,
                int(r.age) if r.age.isdigit() else r.age,
                r.gender,
                r.skin_color,
                r.accessories,
                r.nail_polish,
                r.aspect,
                r.image_name,
                r.irregularities,
            ]
        )
    return buf.getvalue()


def photo_path(root: str | os.PathLike, name: str) -> Path:
    return Path(root) / HANDS_DIR / name


def load_photo(path: str | os.PathLike, max_side: int | None = None) -> np.ndarray:
    """Read a photo as (H, W, 3) uint8 RGB, downscaled (area filter) so max(H, W) <= max_side."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if max_side and max(im.size) > max_side:
                scale = max_side / max(im.size)
                size = (max(1, round(im.size[0] * scale)), max(1, round(im.size[1] * scale)))
                im = im.resize(size, Image.Resampling.BOX)
            return np.asarray(im, dtype=np.uint8).copy()
    except FileNotFoundError:
        raise HandsDataError(f"{path}: photo missing (named in {HAND_INFO})") from None
    except OSError as exc:
        raise HandsDataError(f"{path}: cannot read photo ({exc})") from exc


def read_name_list(path: str | os.PathLike | None) -> set[str]:
    """Image names from a plain-text list: one per line, ``#`` comments, blank lines ignored."""
    if path is None:
        return set()
    path = Path(path)
    if not path.is_file():
        raise HandsDataError(f"{path}: name list missing")
    names = set()
    for raw in path.read_text(encoding="utf-8-sig").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            names.add(Path(line).name)
    return names


def metadata_reason(record: HandRecord, aspects: Iterable[str] = ASPECTS) -> str:
    """Why the CSV row alone rules the photo out ('' when it passes)."""
    if record.accessories != 0:
        return "accessories"
    if record.aspect not in set(aspects):
        return f"aspect {record.aspect}"
    return ""


@dataclass
class Decision:
    """Why a photo was kept or dropped (one row of ``selection.csv``)."""

    image_name: str
    kept: bool
    reason: str
    n_fingers: int = -1


def iter_decisions(
    root: str | os.PathLike,
    records: list[HandRecord],
    min_fingers: int,
    include: set[str] = frozenset(),
    exclude: set[str] = frozenset(),
    photo_max_side: int | None = None,
    aspects: Iterable[str] = ASPECTS,
) -> Iterator[tuple[HandRecord, Decision]]:
    """Decide each record in order: exclude list, include list, metadata, openness.

    The openness check loads the photo and computes its hand mask, so photos the
    metadata already rules out are never opened.
    """
    aspects = tuple(aspects)
    for rec in records:
        name = rec.image_name
        if name in exclude:
            yield rec, Decision(name, False, "exclude list")
            continue
        if name in include:
            yield rec, Decision(name, True, "include list")
            continue
        why = metadata_reason(rec, aspects)
        if why:
            yield rec, Decision(name, False, why)
            continue
        rgb = load_photo(photo_path(root, name), photo_max_side)
        n = count_fingers(hand_mask(rgb))
        ok = n >= min_fingers
        yield rec, Decision(name, ok, "open" if ok else f"closed ({n} < {min_fingers} fingers)", n)


def select_photos(
    root: str | os.PathLike,
    records: list[HandRecord],
    max_images: int,
    min_fingers: int,
    rng: np.random.Generator,
    include: set[str] = frozenset(),
    exclude: set[str] = frozenset(),
    photo_max_side: int | None = None,
    progress: bool = False,
) -> tuple[list[HandRecord], list[Decision]]:
    """The kept photos (at most ``max_images``) and every decision taken.

    Records are visited in a seeded random order (include-listed names first), so a
    cap draws subjects from the whole dataset; scanning stops at the cap.
    """
    known = {r.image_name for r in records}
    unknown = sorted((include | exclude) - known)
    if unknown:
        raise HandsDataError(
            f"include/exclude lists name photos not in {HAND_INFO}: {unknown[:5]}"
            + (" ..." if len(unknown) > 5 else "")
        )
    order = [records[i] for i in rng.permutation(len(records))]
    order.sort(key=lambda r: r.image_name not in include)  # stable: included first
    kept: list[HandRecord] = []
    decisions: list[Decision] = []
    it = iter_decisions(root, order, min_fingers, include, exclude, photo_max_side)
    bar = None
    if progress:
        from jointaug.progress import progress_bar

        bar = progress_bar(max_images, 0, "select photos", "kept")
    for rec, dec in it:
        decisions.append(dec)
        if dec.kept:
            kept.append(rec)
            if bar is not None:
                bar.update(1)
            if len(kept) >= max_images:
                break
    if bar is not None:
        bar.close()
    return kept, decisions


def decisions_csv_text(decisions: Iterable[Decision]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["imageName", "kept", "reason", "n_fingers"])
    for d in decisions:
        w.writerow([d.image_name, int(d.kept), d.reason, d.n_fingers if d.n_fingers >= 0 else ""])
    return buf.getvalue()
