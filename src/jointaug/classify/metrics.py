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
        tp=int(np.sum(t & p)),
        fp=int(np.sum(~t & p)),
        tn=int(np.sum(~t & ~p)),
        fn=int(np.sum(t & ~p)),
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


# --- ranking, calibration and per-joint metrics of a pooled prediction set -------------------
# Added for jointaug.experiments.evidence. All accept NaN targets (left out) and optional
# non-negative sample weights; a weight matrix (B, N) evaluates B weightings at once, which is
# how the patient bootstrap evaluates its resamples without copying data.

ECE_BINS = 10


def ranking_curves(y: np.ndarray, score: np.ndarray, weights: np.ndarray | None = None):
    """Weighted cumulative true / false positives at each distinct score, highest first.

    y, score: (N,) binary targets (NaN = unknown, dropped) and scores. weights: None, (N,) or
    (B, N). Returns ``tps, fps`` of shape (B, K) (B = 1 without a weight matrix), K = the
    number of distinct known scores: column k counts every sample with score >= the k-th
    largest distinct score, as sklearn's ``_binary_clf_curve``.
    """
    y = np.asarray(y, dtype=np.float64)
    score = np.asarray(score, dtype=np.float64)
    w = np.ones((1, y.size)) if weights is None else np.atleast_2d(np.asarray(weights, float))
    known = np.isfinite(y)
    y, score, w = y[known], score[known], w[:, known]
    order = np.argsort(-score, kind="mergesort")
    y, score, w = y[order], score[order], w[:, order]
    last = np.r_[np.flatnonzero(np.diff(score) != 0), score.size - 1]  # end of each tie group
    pos = y > 0.5
    tps = np.cumsum(w * pos, axis=1)[:, last]
    fps = np.cumsum(w * ~pos, axis=1)[:, last]
    return tps, fps


def _ap_from_curves(tps: np.ndarray, fps: np.ndarray) -> np.ndarray:
    """Step-wise average precision sum_k (R_k - R_{k-1}) P_k per row (NaN: no positives)."""
    p_tot = tps[:, -1:] if tps.shape[1] else np.zeros((tps.shape[0], 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tps + fps > 0, tps / np.maximum(tps + fps, 1e-300), 0.0)
        d_recall = np.diff(np.concatenate([np.zeros((tps.shape[0], 1)), tps], axis=1), axis=1)
        ap = np.sum(d_recall * precision, axis=1) / p_tot[:, 0]
    return np.where(p_tot[:, 0] > 0, ap, np.nan)


def _auc_from_curves(tps: np.ndarray, fps: np.ndarray) -> np.ndarray:
    """Trapezoidal ROC area per row (ties count one half; NaN: no positives or no negatives)."""
    zero = np.zeros((tps.shape[0], 1))
    t = np.concatenate([zero, tps], axis=1)
    f = np.concatenate([zero, fps], axis=1)
    area = np.sum(np.diff(f, axis=1) * (t[:, 1:] + t[:, :-1]) / 2, axis=1)
    den = t[:, -1] * f[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, area / np.where(den > 0, den, 1.0), np.nan)


def average_precision(y: np.ndarray, score: np.ndarray, sample_weight: np.ndarray | None = None):
    """Average precision, the step-wise definition of sklearn's ``average_precision_score``.

    (N,) inputs give a float; a (B, N) ``sample_weight`` gives (B,). NaN without positives.
    """
    ap = _ap_from_curves(*ranking_curves(y, score, sample_weight))
    return float(ap[0]) if sample_weight is None or np.ndim(sample_weight) == 1 else ap


def roc_auc(y: np.ndarray, score: np.ndarray, sample_weight: np.ndarray | None = None):
    """Area under the ROC curve as sklearn's ``roc_auc_score`` (ties: one half).

    (N,) inputs give a float; a (B, N) ``sample_weight`` gives (B,). NaN without both classes.
    """
    auc = _auc_from_curves(*ranking_curves(y, score, sample_weight))
    return float(auc[0]) if sample_weight is None or np.ndim(sample_weight) == 1 else auc


def macro_ranking(y: np.ndarray, probs: np.ndarray, weights: np.ndarray | None = None):
    """Macro AUROC and AUPRC over the labels (columns) of (N, L) arrays.

    AUPRC averages the labels with at least one (weighted) positive, AUROC those with at
    least one positive and one negative; labels without are left out (not counted as 0 or 1).
    With a (B, N) weight matrix both results are (B,) arrays, else floats.
    """
    y = np.asarray(y, dtype=np.float64)
    probs = np.asarray(probs, dtype=np.float64)
    aps, aucs = [], []
    for j in range(y.shape[1]):
        tps, fps = ranking_curves(y[:, j], probs[:, j], weights)
        aps.append(_ap_from_curves(tps, fps))
        aucs.append(_auc_from_curves(tps, fps))
    aps_, aucs_ = np.stack(aps, axis=1), np.stack(aucs, axis=1)
    import warnings

    with warnings.catch_warnings():  # a row with no eligible label is NaN, silently
        warnings.simplefilter("ignore", RuntimeWarning)
        auroc, auprc = np.nanmean(aucs_, axis=1), np.nanmean(aps_, axis=1)
    if weights is None or np.ndim(weights) == 1:
        return float(auroc[0]), float(auprc[0])
    return auroc, auprc


def brier(y: np.ndarray, probs: np.ndarray) -> float:
    """Mean squared error of the probabilities over every known label of every image."""
    y = np.asarray(y, dtype=np.float64)
    known = np.isfinite(y)
    return (
        float(np.mean((np.asarray(probs, float)[known] - y[known]) ** 2))
        if known.any()
        else math.nan
    )


def ece_bin(probs: np.ndarray, n_bins: int = ECE_BINS) -> np.ndarray:
    """Equal-width bin index in [0, n_bins) of each probability (1.0 goes to the last bin)."""
    return np.minimum((np.asarray(probs, float) * n_bins).astype(np.int64), n_bins - 1)


def ece(y: np.ndarray, probs: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """Expected calibration error over all label probabilities pooled.

    Equal-width bins on [0, 1]; ECE = sum_b (n_b / n) |mean(y)_b - mean(p)_b|.
    """
    y = np.asarray(y, dtype=np.float64)
    known = np.isfinite(y)
    p, t = np.asarray(probs, float)[known], y[known]
    if p.size == 0:
        return math.nan
    b = ece_bin(p, n_bins)
    n = np.bincount(b, minlength=n_bins)
    gap = np.abs(np.bincount(b, t, n_bins) - np.bincount(b, p, n_bins))
    return float(gap.sum() / n.sum())


def pool_summary(y: np.ndarray, probs: np.ndarray, threshold: float | np.ndarray = 0.5) -> dict:
    """Every headline metric of one pooled prediction set (N, L).

    gms / tpr / tnr: micro over all labels of all images at ``threshold`` (scalar, (L,),
    (N, 1) or (N, L)); auroc / auprc: macro over the labels that have the needed classes;
    brier; ece (10 equal-width bins).
    """
    m = pooled_metrics(y, binarize(probs, threshold))
    auroc, auprc = macro_ranking(y, probs)
    return {
        "gms": m["gms"],
        "tpr": m["tpr"],
        "tnr": m["tnr"],
        "auroc": auroc,
        "auprc": auprc,
        "brier": brier(y, probs),
        "ece": ece(y, probs),
    }


def per_joint_table(
    y: np.ndarray, probs: np.ndarray, threshold: float | np.ndarray, labels: list[str]
) -> list[dict]:
    """One row per joint: label, positives, TPR, TNR (at ``threshold``), AUPRC (NaN if no positive)."""
    y = np.asarray(y, dtype=np.float64)
    probs = np.asarray(probs, dtype=np.float64)
    pred = np.broadcast_to(binarize(probs, threshold), probs.shape)
    rows = []
    for j, name in enumerate(labels):
        r = rates(confusion(y[:, j], pred[:, j]))
        rows.append(
            {
                "label": name,
                "positives": int(np.sum(y[:, j] > 0.5)),
                "tpr": r["tpr"],
                "tnr": r["tnr"],
                "auprc": average_precision(y[:, j], probs[:, j]),
            }
        )
    return rows
