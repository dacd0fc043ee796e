"""Out-of-fold predictions of a run: collected once, written as ``results/oof.csv``.

Every table, statistic and verdict of a run is computed from this one collection, so a
committed ``oof.csv`` (e.g. under ``docs/results/NAME/``) recomputes all of them without the
run folder (``jointaug stats oof.csv``).

What is collected, per trained method (and size), test fold and seed (and the seed
ensemble as the seed ``ensemble``): the test probabilities, labels and case ids
(``fold_K/classify/METHOD/seed_S/test_*``), each case's patient (from the dataset's
``cases.csv``) and two thresholds per model:

- ``default``: the configured threshold (``result.json``'s ``threshold``, 0.5 by default);
- ``tuned``: :func:`jointaug.classify.metrics.tune_threshold` on that model's own
  *validation* predictions (``val_probs.npy``), never the test fold; the ensemble's on the
  mean of its seeds' validation probabilities.

``oof.csv`` is long: one row per (method, size, seed, fold, case) with columns
``method, size, seed, fold, case_id, patient_id, threshold_default, threshold_tuned``, then
``p_<label>`` (probabilities, :data:`DECIMALS` decimals) and ``y_<label>`` (1, 0, or empty
for unknown). Probabilities are rounded to those decimals *before* any statistic is
computed, so statistics from the run folder and from its ``oof.csv`` are identical.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from jointaug.classify.metrics import tune_threshold
from jointaug.experiments.pooled import OOF, pool_folds
from jointaug.experiments.rundir import RunDir
from jointaug.outputs import DONE

DECIMALS = 5
MODES = ("default", "tuned")
ENSEMBLE = "ensemble"
KEY_COLUMNS = ("method", "size", "seed", "fold", "case_id", "patient_id")


@dataclass
class Trained:
    """One finished training's outputs."""

    fold: int
    method: str
    size: int
    seed: int
    threshold: float
    val_probs: np.ndarray
    val_labels: np.ndarray
    test_probs: np.ndarray
    test_labels: np.ndarray
    test_ids: list[str]


def _load(path: Path) -> np.ndarray:
    return np.load(path, allow_pickle=False)


def finished_trainings(run: RunDir) -> list[Trained]:
    """Every ``classify/*/seed_*`` folder with a ``done`` marker."""
    out = []
    for d in run.classify_dirs():
        if not (d / DONE).is_file():
            continue
        r = json.loads((d / "result.json").read_text(encoding="utf-8"))
        out.append(
            Trained(
                int(r["fold"]),
                str(r["method"]),
                int(r["size"]),
                int(r["seed"]),
                float(r["threshold"]),
                _load(d / "val_probs.npy"),
                _load(d / "val_labels.npy"),
                _load(d / "test_probs.npy"),
                _load(d / "test_labels.npy"),
                json.loads((d / "test_case_ids.json").read_text(encoding="utf-8")),
            )
        )
    return out


def quantize(probs: np.ndarray) -> np.ndarray:
    """Probabilities as ``oof.csv`` stores them (float64, :data:`DECIMALS` decimals)."""
    return np.round(np.asarray(probs, dtype=np.float64), DECIMALS)


@dataclass
class FoldPreds:
    """One method's test fold: cases, their patients and labels, and each model's output.

    probs: seed label ("0", "1", ..., "ensemble") -> (n, L); thresholds: seed label ->
    {"default": t, "tuned": t}.
    """

    case_ids: list[str]
    patient: np.ndarray
    y: np.ndarray
    probs: dict[str, np.ndarray] = field(default_factory=dict)
    thresholds: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def seeds(self) -> list[str]:
        """The single models' seed labels, in numeric order (the ensemble left out)."""
        return sorted((s for s in self.probs if s != ENSEMBLE), key=int)


def row_label(method: str, size: int) -> str:
    """A method's row label in every table: ``"mp (512)"``, the bare name at size 0."""
    return f"{method} ({size})" if size else method


def method_size(label: str) -> tuple[str, int]:
    """A row label back to its (method, size): ``"mp (512)"`` -> ("mp", 512),
    ``"tuned_threshold"`` -> ("tuned_threshold", 0); the inverse of ``row_label``."""
    name, sep, rest = label.rpartition(" (")
    if sep and rest.endswith(")") and rest[:-1].isdigit():
        return name, int(rest[:-1])
    return label, 0


@dataclass
class MethodPreds:
    """One trained method (at one size): its test folds by fold index."""

    method: str
    size: int
    folds: dict[int, FoldPreds] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return row_label(self.method, self.size)


@dataclass
class Pooled:
    """One method's pooled OOF predictions in one threshold mode (input of evidence.compare).

    fold: (N,) the fold *index* of each image (0..K-1 over ``folds``), ``folds`` the fold
    numbers pooled, ``seeds`` the seed labels in ``oof`` (["ensemble"] for the ensemble).
    """

    oof: OOF
    y: np.ndarray
    patient: np.ndarray
    fold: np.ndarray
    folds: list[int]
    seeds: list[str]


@dataclass
class OOFSet:
    """Every trained method's out-of-fold predictions; keys (method, size)."""

    labels: list[str]
    methods: dict[tuple[str, int], MethodPreds] = field(default_factory=dict)

    def pooled(
        self, key: tuple[str, int], mode: str, ensemble: bool, folds: list[int] | None = None
    ) -> Pooled:
        """The pooled predictions of ``key`` over ``folds`` (default: all of its folds) at
        threshold ``mode``: the seeds every one of those folds has, or the ensemble."""
        m = self.methods[key]
        folds = sorted(m.folds) if folds is None else sorted(folds)
        if ensemble:
            seeds = [ENSEMBLE]
        else:
            common = set.intersection(*(set(m.folds[k].seeds) for k in folds))
            seeds = sorted(common, key=int)
        if not seeds:
            raise ValueError(f"{m.label}: no seed is in every one of folds {folds}")
        entries = []
        for k in folds:
            f = m.folds[k]
            entries.append(
                {
                    "probs": np.stack([f.probs[s] for s in seeds]),
                    "y": f.y,
                    "patient": f.patient,
                    "thresholds": np.array([f.thresholds[s][mode] for s in seeds]),
                }
            )
        oof, y, patient, fold = pool_folds(entries)
        return Pooled(oof, y, patient, fold, folds, seeds)


def _fold_preds(members: list, patient_of: dict[str, str]) -> FoldPreds:
    """A fold's :class:`FoldPreds` from its seeds' trainings (:class:`Trained`)."""
    members = sorted(members, key=lambda t: t.seed)
    ids = members[0].test_ids
    if any(t.test_ids != ids for t in members):
        raise ValueError(f"fold {members[0].fold} {members[0].method}: seeds tested other images")
    missing = [c for c in ids if c not in patient_of]
    if missing:
        raise ValueError(f"test cases not in the dataset (no patient id): {missing[:5]}")
    f = FoldPreds(
        list(ids),
        np.array([patient_of[c] for c in ids]),
        np.asarray(members[0].test_labels, dtype=np.float64),
    )
    for t in members:
        f.probs[str(t.seed)] = quantize(t.test_probs)
        tuned = tune_threshold(t.val_labels, t.val_probs)  # the model's own validation part
        f.thresholds[str(t.seed)] = {"default": float(t.threshold), "tuned": tuned}
    val = np.mean([np.asarray(t.val_probs, np.float64) for t in members], axis=0)
    f.probs[ENSEMBLE] = quantize(
        np.mean([np.asarray(t.test_probs, np.float64) for t in members], 0)
    )
    f.thresholds[ENSEMBLE] = {
        "default": float(members[0].threshold),
        "tuned": tune_threshold(members[0].val_labels, val),
    }
    return f


def collect(trained: list, labels: list[str], patient_of: dict[str, str]) -> OOFSet:
    """The :class:`OOFSet` of finished trainings (:func:`finished_trainings`);
    ``patient_of``: case id -> patient id."""
    groups: dict[tuple[str, int, int], list] = defaultdict(list)
    for t in trained:
        groups[(t.method, t.size, t.fold)].append(t)
    out = OOFSet(list(labels))
    for (method, size, fold), members in sorted(groups.items()):
        m = out.methods.setdefault((method, size), MethodPreds(method, size))
        m.folds[fold] = _fold_preds(members, patient_of)
    return out


def collect_run(run) -> OOFSet:
    """The :class:`OOFSet` of a run folder's finished trainings."""
    trained = finished_trainings(run)
    if not trained:
        raise ValueError(
            f"{run.path}: no finished classifier trainings (fold_*/classify/*/seed_*/done)"
        )
    patient_of = {c.case_id: c.patient_id for c in run.dataset.cases}
    return collect(trained, run.dataset.labels, patient_of)


def _num(x: float) -> str:
    return "" if math.isnan(x) else f"{x:.{DECIMALS}f}"


def oof_csv(data: OOFSet) -> str:
    """The text of ``oof.csv`` (see the module docstring)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        [*KEY_COLUMNS, "threshold_default", "threshold_tuned"]
        + [f"p_{lab}" for lab in data.labels]
        + [f"y_{lab}" for lab in data.labels]
    )
    for (method, size), m in sorted(data.methods.items()):
        for fold, f in sorted(m.folds.items()):
            ys = [[("" if math.isnan(v) else str(int(v))) for v in row] for row in f.y]
            for seed in [*f.seeds, ENSEMBLE]:
                thr = f.thresholds[seed]
                head = [repr(thr["default"]), repr(thr["tuned"])]
                for i, case in enumerate(f.case_ids):
                    probs = [_num(v) for v in f.probs[seed][i]]
                    w.writerow(
                        [method, size, seed, fold, case, f.patient[i], *head, *probs, *ys[i]]
                    )
    return buf.getvalue()


def read_oof_csv(path: str | os.PathLike) -> OOFSet:
    """An :class:`OOFSet` from an ``oof.csv`` written by :func:`oof_csv`."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or tuple(header[:6]) != KEY_COLUMNS:
            raise ValueError(f"{path}: not an oof.csv (header {header[:6] if header else None})")
        n_lab = (len(header) - 8) // 2
        labels = [h[2:] for h in header[8 : 8 + n_lab]]
        rows: dict[tuple, list[list[str]]] = defaultdict(list)
        for r in reader:
            rows[(r[0], int(r[1]), int(r[3]), r[2])].append(r)
    out = OOFSet(labels)
    for (method, size, fold, seed), rs in rows.items():
        m = out.methods.setdefault((method, size), MethodPreds(method, size))
        probs = np.array([[float(v) if v else math.nan for v in r[8 : 8 + n_lab]] for r in rs])
        if fold not in m.folds:
            y = np.array([[float(v) if v else math.nan for v in r[8 + n_lab :]] for r in rs])
            m.folds[fold] = FoldPreds([r[4] for r in rs], np.array([r[5] for r in rs]), y)
        f = m.folds[fold]
        if [r[4] for r in rs] != f.case_ids:
            raise ValueError(f"{path}: {method} fold {fold} seed {seed} has other cases")
        f.probs[seed] = probs
        f.thresholds[seed] = {"default": float(rs[0][6]), "tuned": float(rs[0][7])}
    return out


def write_oof(data: OOFSet, path: str | os.PathLike) -> Path:
    from jointaug.files import write_text_atomic

    write_text_atomic(Path(path), oof_csv(data))
    return Path(path)


def merge(sets: dict[str, OOFSet]) -> OOFSet:
    """Several datasets' OOF predictions as one (the pooled confirmation result).

    Each dataset keeps its own clusters: patient and case ids are prefixed with the
    dataset's name, so no two datasets share a patient, and folds are renumbered
    (``index * 1000 + fold``) so each (dataset, fold) keeps its own seed redraw. The pooled
    bootstrap then resamples the patients of all datasets together (not stratified by
    dataset: with equal-sized datasets the difference is small). Methods (and sizes) missing
    from a dataset are left out of the pool; the labels must agree.
    """
    names = list(sets)
    labels = sets[names[0]].labels
    if any(s.labels != labels for s in sets.values()):
        raise ValueError("the datasets have different labels")
    keys = set.intersection(*(set(s.methods) for s in sets.values()))
    out = OOFSet(list(labels))
    for key in sorted(keys):
        m = out.methods.setdefault(key, MethodPreds(*key))
        for i, name in enumerate(names):
            for fold, f in sets[name].methods[key].folds.items():
                m.folds[i * 1000 + fold] = FoldPreds(
                    [f"{name}:{c}" for c in f.case_ids],
                    np.array([f"{name}:{p}" for p in f.patient]),
                    f.y,
                    dict(f.probs),
                    dict(f.thresholds),
                )
    return out
