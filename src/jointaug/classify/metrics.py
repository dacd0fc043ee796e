"""Multi-label metrics as the paper reports them (numpy only).

The paper's "whole image" figures pool every label of every image into one
confusion matrix (micro averaging): TPR = TP / (TP + FN), TNR = TN / (TN + FP),
accuracy, F1 = 2 TP / (2 TP + FP + FN), and GMS = sqrt(TPR * TNR) (its Eq. 1).
Unknown labels (NaN in the target) are left out. Per-label values use the same
formulas on one label's column.

Defined behaviour when a class is absent: a rate whose denominator is zero
(TPR with no positives, TNR with no negatives, F1 with no positives and no
predicted positives) is NaN, never a silent 0 or 1; GMS is then NaN too.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

METRICS = ("accuracy", "tpr", "tnr", "f1", "gms")


@dataclass(frozen=True)
class Confusion:
    tp: int
    fp: int
    tn: int
    fn: int

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.tn + self.fn


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else math.nan


def confusion(y_true: np.ndarray, y_pred: np.ndarray) -> Confusion:
    """Pooled confusion counts of binary arrays of equal shape; NaN targets are ignored."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"shape mismatch: y_true {y_true.shape} vs y_pred {y_pred.shape}")
    known = np.isfinite(y_true)
    t = y_true[known] > 0.5
    p = np.asarray(y_pred)[known].astype(bool)
    return Confusion(
        tp=int(np.sum(t & p)), fp=int(np.sum(~t & p)), tn=int(np.sum(~t & ~p)), fn=int(np.sum(t & ~p))
    )


def rates(c: Confusion) -> dict[str, float]:
    """accuracy, tpr, tnr, f1, gms from confusion counts."""
    tpr = _ratio(c.tp, c.tp + c.fn)
    tnr = _ratio(c.tn, c.tn + c.fp)
    return {
        "accuracy": _ratio(c.tp + c.tn, c.n),
        "tpr": tpr,
        "tnr": tnr,
        "f1": _ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn),
        "gms": math.sqrt(tpr * tnr) if not (math.isnan(tpr) or math.isnan(tnr)) else math.nan,
    }


def binarize(probs: np.ndarray, threshold: float | np.ndarray = 0.5) -> np.ndarray:
    """probs >= threshold (a scalar or one threshold per label, broadcast over the last axis)."""
    return np.asarray(probs) >= np.asarray(threshold)


def pooled_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """The paper's whole-image metrics: one confusion over all labels of all images."""
    c = confusion(y_true, y_pred)
    out = rates(c)
    out.update(asdict(c))
    return out


def per_label_metrics(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> list[dict]:
    """One row per label: its name, confusion counts and rates."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred)
    if y_true.ndim != 2 or y_true.shape[1] != len(labels):
        raise ValueError(f"y_true has shape {y_true.shape}, expected (N, {len(labels)})")
    rows = []
    for j, name in enumerate(labels):
        c = confusion(y_true[:, j], y_pred[:, j])
        rows.append({"label": name, **asdict(c), **rates(c)})
    return rows


def tune_threshold(y_true: np.ndarray, probs: np.ndarray, grid: np.ndarray | None = None) -> float:
    """The single decision threshold maximising pooled GMS on (validation) data.

    Ties go to the threshold closest to 0.5. Returns 0.5 when GMS is undefined
    (no positives or no negatives).
    """
    grid = np.linspace(0.01, 0.99, 99) if grid is None else np.asarray(grid)
    best_t, best_g = 0.5, -1.0
    for t in sorted(grid, key=lambda v: abs(v - 0.5)):
        g = pooled_metrics(y_true, binarize(probs, t))["gms"]
        if not math.isnan(g) and g > best_g + 1e-12:
            best_t, best_g = float(t), g
    return best_t


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1) over folds, ignoring NaN.

    One value gives std 0; none gives (nan, nan).
    """
    arr = np.asarray([v for v in values if not math.isnan(v)], dtype=np.float64)
    if arr.size == 0:
        return math.nan, math.nan
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0
