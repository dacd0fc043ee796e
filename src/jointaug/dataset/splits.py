"""Patient-level k-fold splits (the paper's 60/20/20) and ``splits.json``.

Patients are dealt into ``k`` parts; for fold ``f`` the test part is ``f``, the
validation part is ``(f + 1) % k`` and the rest train (with k = 5: 60/20/20).
Patients never cross parts. Parts are balanced in patient count, image count and
per-label positive counts as far as a small dataset allows, by a seeded greedy
assignment (rarest labels first, like iterative stratification) over a few random
restarts, keeping the best-balanced one.

``splits.json`` is meant to be read and edited by hand (like nnU-Net's
``splits_final.json``)::

    {"k": 5, "seed": 0, "parts": [["p01", "p07", ...], ...],
     "folds": [{"fold": 0, "train": [...], "val": [...], "test": [...]}, ...]}

A user-supplied file is checked by :func:`validate_splits`: every fold's parts are
disjoint, cover every patient with classification cases, and name no unknown patient.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jointaug.dataset.format import Dataset, DatasetError
from jointaug.files import write_text_atomic


@dataclass(frozen=True)
class Fold:
    fold: int
    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]


@dataclass
class Splits:
    k: int
    seed: int
    parts: list[list[str]]
    folds: list[Fold]

    def fold(self, f: int) -> Fold:
        if not 0 <= f < len(self.folds):
            raise ValueError(f"fold {f} does not exist (splits have {len(self.folds)} folds)")
        return self.folds[f]

    def to_json(self) -> dict:
        return {
            "k": self.k,
            "seed": self.seed,
            "parts": [list(p) for p in self.parts],
            "folds": [
                {"fold": f.fold, "train": list(f.train), "val": list(f.val), "test": list(f.test)}
                for f in self.folds
            ],
        }


def folds_from_parts(parts: list[list[str]]) -> list[Fold]:
    k = len(parts)
    folds = []
    for f in range(k):
        val_idx = (f + 1) % k
        train = sorted(p for i, part in enumerate(parts) if i not in (f, val_idx) for p in part)
        folds.append(Fold(f, tuple(train), tuple(sorted(parts[val_idx])), tuple(sorted(parts[f]))))
    return folds


def _patient_table(dataset: Dataset) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Patients with classification cases, their image counts and positive counts per label."""
    cases = dataset.classification_cases()
    patients = sorted({c.patient_id for c in cases})
    index = {p: i for i, p in enumerate(patients)}
    n_images = np.zeros(len(patients))
    positives = np.zeros((len(patients), len(dataset.labels)))
    for c in cases:
        i = index[c.patient_id]
        n_images[i] += 1
        positives[i] += np.nan_to_num(c.labels, nan=0.0)
    return patients, n_images, positives


def _imbalance(n_images: np.ndarray, positives: np.ndarray, assign: np.ndarray, k: int) -> float:
    """Sum over images and labels of squared relative deviation of each part from 1/k."""
    cost = 0.0
    for col in (n_images[:, None], positives):
        totals = col.sum(axis=0)
        keep = totals > 0
        if not keep.any():
            continue
        per_part = np.stack([col[assign == j].sum(axis=0) for j in range(k)])
        share = per_part[:, keep] / totals[keep]
        cost += float(((share - 1.0 / k) ** 2).sum())
    return cost


def make_splits(dataset: Dataset, k: int = 5, seed: int = 0, restarts: int = 20) -> Splits:
    """Deal patients into ``k`` balanced parts (seeded) and derive the k folds."""
    if k < 3:
        raise ValueError(f"k = {k}: need at least 3 parts (test, validation, train)")
    patients, n_images, positives = _patient_table(dataset)
    if len(patients) < k:
        raise DatasetError(
            f"{dataset.root}: {len(patients)} patients with labelled classification cases; "
            f"{k} folds need at least {k}"
        )
    rng = np.random.default_rng(seed)
    n = len(patients)
    target = n / k
    # rarest labels first, then the patients carrying them; ties broken randomly
    label_total = positives.sum(axis=0)
    rarity = np.where(label_total > 0, label_total, np.inf)
    best, best_cost = None, np.inf
    for _ in range(restarts):
        noise = rng.random(n)
        key = np.array(
            [
                rarity[positives[i] > 0].min() if (positives[i] > 0).any() else np.inf
                for i in range(n)
            ]
        )
        order = np.lexsort((noise, -positives.sum(axis=1), key))
        assign = np.full(n, -1)
        load = np.zeros((k, positives.shape[1]))
        images = np.zeros(k)
        counts = np.zeros(k)
        for i in order:
            open_parts = np.flatnonzero(counts < np.ceil(target))
            need = (load[open_parts] + positives[i]) / np.maximum(label_total, 1)
            score = (need**2).sum(axis=1) + (
                (images[open_parts] + n_images[i]) / n_images.sum()
            ) ** 2
            score = score + 1e-9 * rng.random(len(open_parts))
            j = open_parts[np.argmin(score)]
            assign[i] = j
            load[j] += positives[i]
            images[j] += n_images[i]
            counts[j] += 1
        cost = _imbalance(n_images, positives, assign, k)
        if cost < best_cost:
            best, best_cost = assign.copy(), cost
    parts = [sorted(patients[i] for i in np.flatnonzero(best == j)) for j in range(k)]
    return Splits(k=k, seed=seed, parts=parts, folds=folds_from_parts(parts))


def write_splits(splits: Splits, path: str | os.PathLike) -> None:
    write_text_atomic(path, json.dumps(splits.to_json(), indent=1) + "\n")


def read_splits(path: str | os.PathLike, dataset: Dataset | None = None) -> Splits:
    """Read ``splits.json``; with a dataset, also check it for leakage and coverage."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read splits ({exc})") from exc
    try:
        folds = [
            Fold(
                int(f.get("fold", i)),
                tuple(map(str, f["train"])),
                tuple(map(str, f["val"])),
                tuple(map(str, f["test"])),
            )
            for i, f in enumerate(obj["folds"])
        ]
        parts = [list(map(str, p)) for p in obj.get("parts", [])]
    except (KeyError, TypeError, AttributeError) as exc:
        raise DatasetError(
            f"{path}: each fold needs 'train', 'val' and 'test' lists of patient ids ({exc!r})"
        ) from exc
    splits = Splits(
        k=int(obj.get("k", len(folds))), seed=int(obj.get("seed", -1)), parts=parts, folds=folds
    )
    problems = validate_splits(splits, dataset)
    if problems:
        raise DatasetError(f"{path}: invalid splits:\n  " + "\n  ".join(problems))
    return splits


def validate_splits(splits: Splits, dataset: Dataset | None = None) -> list[str]:
    """Problems with a splits object: leakage between parts, unknown or missing patients."""
    problems = []
    known = None
    needed: set[str] = set()
    if dataset is not None:
        known = set(dataset.patients())
        needed = {c.patient_id for c in dataset.classification_cases()}
    if not splits.folds:
        problems.append("no folds")
    for f in splits.folds:
        sets = {"train": set(f.train), "val": set(f.val), "test": set(f.test)}
        for name, ids in (("train", f.train), ("val", f.val), ("test", f.test)):
            if len(set(ids)) != len(ids):
                problems.append(f"fold {f.fold}: a patient is listed twice in {name}")
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            both = sets[a] & sets[b]
            if both:
                problems.append(
                    f"fold {f.fold}: patients in both {a} and {b} (leakage): {sorted(both)[:5]}"
                )
        if not f.test or not f.val or not f.train:
            problems.append(f"fold {f.fold}: train, val and test must each hold a patient")
        union = sets["train"] | sets["val"] | sets["test"]
        if known is not None:
            unknown = union - known
            if unknown:
                problems.append(f"fold {f.fold}: unknown patients {sorted(unknown)[:5]}")
            missing = needed - union
            if missing:
                problems.append(f"fold {f.fold}: patients in no part: {sorted(missing)[:5]}")
    return problems


def split_summary(splits: Splits, dataset: Dataset) -> list[dict]:
    """Per fold and part: patients, images and positive labels (for printing)."""
    rows = []
    for f in splits.folds:
        for part in ("train", "val", "test"):
            cases = dataset.classification_cases(getattr(f, part))
            y = dataset.label_matrix(cases)
            rows.append(
                {
                    "fold": f.fold,
                    "part": part,
                    "patients": len(getattr(f, part)),
                    "images": len(cases),
                    "positives": int(np.nansum(y)),
                    "positive_rate": float(np.nanmean(y)) if y.size else float("nan"),
                }
            )
    return rows
