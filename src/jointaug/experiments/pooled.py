"""Pooled out-of-fold metrics under patient weightings (numpy only; no torch).

The machinery of :mod:`jointaug.experiments.evidence`: one method's pooled OOF predictions
(:class:`OOF`, :func:`pool_folds`) and every metric of it as a function of patient
multiplicities (a row of ones is the data set itself; a bootstrap resample is a row of
counts), so B resamples are evaluated without copying data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from jointaug.classify.metrics import ECE_BINS, ece_bin, macro_ranking

METRICS = ("gms", "tpr", "tnr", "auroc", "auprc", "brier", "ece")


@dataclass(frozen=True)
class OOF:
    """One method's pooled out-of-fold predictions, one pool per seed.

    probs: (S, N, L) probabilities in [0, 1]. thresholds: the decision threshold of each
    prediction, broadcastable to (S, N, L): a scalar, (S, 1, 1), (S, N, 1) (one threshold per
    model, expanded to its fold's images) or (S, N, L). Only GMS / TPR / TNR use it.
    """

    probs: np.ndarray
    thresholds: np.ndarray | float = 0.5

    def __post_init__(self) -> None:
        probs = np.asarray(self.probs, dtype=np.float64)
        if probs.ndim == 2:
            probs = probs[None]
        if probs.ndim != 3:
            raise ValueError(f"probs must be (S, N, L), got shape {probs.shape}")
        thr = np.broadcast_to(np.asarray(self.thresholds, dtype=np.float64), probs.shape)
        object.__setattr__(self, "probs", probs)
        object.__setattr__(self, "thresholds", thr)

    @property
    def n_seeds(self) -> int:
        return self.probs.shape[0]

    def ensemble(self, thresholds: np.ndarray | float) -> OOF:
        """The seed ensemble (mean probability over seeds) as a one-seed OOF.

        ``thresholds`` broadcastable to (N, L): the ensemble's own threshold (e.g. tuned on
        the ensemble's validation probabilities, per fold, expanded to the fold's images).
        """
        return OOF(self.probs.mean(axis=0, keepdims=True), np.asarray(thresholds, float)[None])


def pool_folds(folds: Sequence[dict]) -> tuple[OOF, np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate the test folds of one method into (OOF, y, patient, fold).

    Each fold is a dict with ``probs`` (S, n_k, L), ``y`` (n_k, L), ``patient`` (n_k,) and
    ``thresholds`` (S,) or (S, L) (each seed's model threshold for that fold). Raises when a
    patient appears in two folds. ``fold`` (N,) is the index of each image's fold in ``folds``.
    Two methods pooled from the same folds in the same order share ``y``, ``patient`` and
    ``fold`` (check it before comparing).
    """
    probs = np.concatenate([np.asarray(f["probs"], float) for f in folds], axis=1)
    y = np.concatenate([np.asarray(f["y"], float) for f in folds], axis=0)
    patient = np.concatenate([np.asarray(f["patient"]) for f in folds])
    thr = []
    for f in folds:
        t = np.asarray(f["thresholds"], float)
        t = t[:, None, None] if t.ndim == 1 else t[:, None, :]
        thr.append(np.broadcast_to(t, (t.shape[0], len(f["y"]), t.shape[2])))
    seen: dict = {}
    for k, f in enumerate(folds):
        for p in set(np.asarray(f["patient"]).tolist()):
            if seen.setdefault(p, k) != k:
                raise ValueError(f"patient {p!r} is tested in folds {seen[p]} and {k}")
    fold = np.concatenate([np.full(len(f["y"]), k) for k, f in enumerate(folds)])
    return OOF(probs, np.concatenate(thr, axis=1)), y, patient, fold


def _per_image_stats(metric: str, probs: np.ndarray, thr: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(N, k) additive per-image statistics from which the pooled ``metric`` is a ratio."""
    known = np.isfinite(y)
    pos = known & (np.nan_to_num(y) > 0.5)
    neg = known & ~pos
    if metric in ("gms", "tpr", "tnr"):
        pred = probs >= thr
        cols = [pos & pred, pos & ~pred, neg & ~pred, neg & pred]  # tp, fn, tn, fp
        return np.stack([c.sum(axis=1) for c in cols], axis=1).astype(np.float64)
    if metric == "brier":
        err = np.where(known, (probs - np.nan_to_num(y)) ** 2, 0.0)
        return np.stack([err.sum(axis=1), known.sum(axis=1)], axis=1)
    if metric == "ece":
        b = ece_bin(probs)
        out = np.zeros((probs.shape[0], 3 * ECE_BINS))
        for k in range(ECE_BINS):
            m = known & (b == k)
            out[:, k] = m.sum(axis=1)
            out[:, ECE_BINS + k] = np.where(m, probs, 0).sum(axis=1)
            out[:, 2 * ECE_BINS + k] = (m & pos).sum(axis=1)
        return out
    raise ValueError(f"unknown metric {metric!r}; choose from {METRICS}")


def _from_totals(metric: str, t: np.ndarray) -> np.ndarray:
    """The pooled metric from summed statistics t (B, k); NaN where undefined."""
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric in ("gms", "tpr", "tnr"):
            tpr = t[:, 0] / (t[:, 0] + t[:, 1])
            tnr = t[:, 2] / (t[:, 2] + t[:, 3])
            return {"tpr": tpr, "tnr": tnr, "gms": np.sqrt(tpr * tnr)}[metric]
        if metric == "brier":
            return t[:, 0] / t[:, 1]
        n, sp, sy = np.split(t, 3, axis=1)  # ece
        return np.abs(sy - sp).sum(axis=1) / n.sum(axis=1)


def seed_metrics(
    metric: str, oof: OOF, y: np.ndarray, patient_index: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """The pooled ``metric`` of every seed under every patient weighting.

    patient_index (N,) in [0, P); weights (B, P) patient multiplicities (a row of ones is the
    data set itself). Returns (B, S). All images of a patient carry the patient's weight, so
    a bootstrap resample moves them together.
    """
    y = np.asarray(y, dtype=np.float64)
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    n_pat = weights.shape[1]
    out = np.empty((weights.shape[0], oof.n_seeds))
    for s in range(oof.n_seeds):
        if metric in ("auroc", "auprc"):
            auroc, auprc = macro_ranking(y, oof.probs[s], weights[:, patient_index])
            out[:, s] = auroc if metric == "auroc" else auprc
            continue
        per_img = _per_image_stats(metric, oof.probs[s], oof.thresholds[s], y)
        per_pat = np.stack(
            [np.bincount(patient_index, per_img[:, j], n_pat) for j in range(per_img.shape[1])],
            axis=1,
        )
        out[:, s] = _from_totals(metric, weights @ per_pat)
    return out


def mixed_seed_metrics(
    metric: str,
    oof: OOF,
    y: np.ndarray,
    patient_index: np.ndarray,
    fold_of_patient: np.ndarray,
    weights: np.ndarray,
    pick: np.ndarray,
) -> np.ndarray:
    """Pooled metric of pseudo-seed pools whose seed is drawn per fold.

    weights (B, P) patient multiplicities; pick (B, S, K): for resample b and pseudo-seed j,
    the seed whose model predicts fold k. The S x K trainings of a fold-seed grid are
    independent trainings, so a fold's seed is resampled independently of the other folds'.
    Additive metrics only (gms, tpr, tnr, brier, ece). Returns (B, S).
    """
    y = np.asarray(y, dtype=np.float64)
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    n_pat, n_folds = weights.shape[1], pick.shape[2]
    per_fold = []  # (K, B, S, k): each fold's totals under each seed
    for s in range(oof.n_seeds):
        per_img = _per_image_stats(metric, oof.probs[s], oof.thresholds[s], y)
        per_pat = np.stack(
            [np.bincount(patient_index, per_img[:, j], n_pat) for j in range(per_img.shape[1])],
            axis=1,
        )
        per_fold.append([(weights * (fold_of_patient == k)) @ per_pat for k in range(n_folds)])
    tot = np.asarray(per_fold).transpose(1, 2, 0, 3)  # (K, B, S, k)
    rows = np.arange(weights.shape[0])[:, None]
    totals = sum(tot[k][rows, pick[:, :, k]] for k in range(n_folds))  # (B, S, k)
    b, s, k = totals.shape
    return _from_totals(metric, totals.reshape(b * s, k)).reshape(b, s)


def summarize(
    oof: OOF, y: np.ndarray, patient: np.ndarray, metrics: Sequence[str] = METRICS
) -> dict[str, float]:
    """Each metric of one method, averaged over its seeds' pools (the table's point values).

    NaN for a metric undefined on every seed (e.g. TNR without negatives).
    """
    import warnings

    _, pidx = np.unique(np.asarray(patient), return_inverse=True)
    ones = np.ones((1, pidx.max() + 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return {m: float(np.nanmean(seed_metrics(m, oof, y, pidx, ones))) for m in metrics}
