"""Patient-level evidence for "method A beats reference B" (numpy only; no torch).

The unit of the experiment is the patient: ~48 patients, 1-3 images each, 30 joint labels
per image, patient-level 5-fold cross-validation, S seeds per fold. The images of one patient
are strongly correlated (the same hands), and the S seeds of a fold are tested on the very
same patients, so neither images nor (fold, seed) pairs are independent. This module
therefore works on *pooled out-of-fold (OOF) predictions*: per method and seed, the 5 test
folds are concatenated, so every patient is tested exactly once per seed.

Inputs (shapes):
    y        (N, L)     binary labels of the N test images (NaN = unknown, left out)
    patient  (N,)       the patient id of each image (any hashable values)
    OOF      .probs (S, N, L) per-seed probabilities; .thresholds broadcastable to it
             (fold-specific thresholds tuned on each model's validation data are expanded to
             the images of that fold, see :func:`pool_folds`)

What is resampled (:func:`compare`): patient ids, with replacement, all of a patient's
images together, and the two methods together (paired). A resample is a vector of patient
multiplicities; every metric is evaluated as a *weighted* pooled metric with those weights,
which is exactly the metric on the resampled data set. The seeds' metrics are averaged within
a resample (each seed's pool on the same resampled patients). The seed ensemble (mean
probability over seeds, :meth:`OOF.ensemble`) is compared as its own row.

Estimand: the difference of the seed-averaged pooled metric that the *training recipe*
reaches on the patient population, so training noise must be in the interval too. One
training moves GMS by ~0.05 on a fold's test set (design notes), and resampling patients
alone treats the 15 trained models as fixed: in the simulation of
``benchmarks/bench_coverage.py`` that interval covers only ~75-80 %. The default
(``seeds="resample"`` with ``fold`` given) is a crossed patients x seeds bootstrap: besides
the patients, each fold's seed is redrawn independently (the 5 x S trainings are independent
runs), S - 1 draws per pseudo-pool so that the seed part of the variance is unbiased
(with S draws it is (S - 1) / S too small). Crossed ("pigeonhole") bootstraps are known to be
slightly conservative; the simulation confirms coverage at or above nominal.

Multiplicity: :func:`finalize` applies Holm over the comparisons of one table and gives
each comparison its verdict (:func:`verdict`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from jointaug.classify.metrics import ECE_BINS, ece_bin, macro_ranking

METRICS = ("gms", "tpr", "tnr", "auroc", "auprc", "brier", "ece")
LOWER_IS_BETTER = frozenset({"brier", "ece"})
N_BOOT = 2000
LEVEL = 0.95
ALPHA = 0.05
MARGIN = 0.03  # the equivalence margin, in units of the metric (GMS by default)


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


@dataclass(frozen=True)
class Comparison:
    """One paired comparison: ``estimate`` = metric(method) - metric(reference).

    ci_low / ci_high: the ``level`` percentile interval; ci90_low / ci90_high: the 90 %
    interval used by TOST; p: two-sided bootstrap p of "difference = 0"; p_holm: Holm-adjusted
    over the table (NaN until :func:`finalize`); p_tost: the larger one-sided p of TOST with
    ``margin``; verdict: helps | hurts | equivalent | inconclusive ("pending" before
    :func:`finalize`). For brier / ece (lower is better) "helps" means a negative estimate.
    """

    method: str
    reference: str
    metric: str
    threshold_mode: str
    models: str
    estimate: float
    ci_low: float
    ci_high: float
    ci90_low: float
    ci90_high: float
    p: float
    p_tost: float
    margin: float
    n_patients: int
    n_seeds: int
    n_boot: int
    p_holm: float = math.nan
    verdict: str = "pending"


def _p_two_sided(boot: np.ndarray) -> float:
    """Percentile-inverted bootstrap p: the smallest alpha whose (1-alpha) interval excludes 0."""
    b = boot.size
    lo, hi = 1 + np.sum(boot <= 0), 1 + np.sum(boot >= 0)
    return float(min(1.0, 2 * min(lo, hi) / (b + 1)))


def compare(
    a: OOF,
    b: OOF,
    y: np.ndarray,
    patient: np.ndarray,
    rng: np.random.Generator,
    *,
    metric: str = "gms",
    n_boot: int = N_BOOT,
    level: float = LEVEL,
    margin: float = MARGIN,
    seeds: str = "resample",
    fold: np.ndarray | None = None,
    method: str = "A",
    reference: str = "B",
    threshold_mode: str = "default",
) -> Comparison:
    """Paired cluster bootstrap over patients of metric(a) - metric(b) on the same images.

    a, b: OOF predictions of the two methods on the same (N, L) images ``y`` with patient ids
    ``patient`` (N,). Each of ``n_boot`` resamples draws P patient ids with replacement
    (all images of a patient move together, both methods with them); per resample and method
    the metric is computed on S seed pools and averaged:

    - ``seeds="fixed"``: the S real seed pools (training noise left out; anti-conservative
      when trainings vary, kept for comparison and for one-seed runs);
    - ``seeds="resample"`` with ``fold`` (N,) (the default; pass ``fold`` from
      :func:`pool_folds`): S - 1 pseudo-pools whose model for fold k is a seed drawn with
      replacement, independently per fold; the same draws for both methods;
    - ``seeds="resample"`` without ``fold``, or for auroc / auprc (not additive over folds):
      S - 1 whole seed pools drawn with replacement.

    The point estimate always uses the S real pools. With one seed (the seed ensemble) only
    patients are resampled: the ensemble's interval is conditional on its trained models (its
    training noise, smaller than a single model's, is not in it), so read it as a lower bound
    on the uncertainty. Resamples where the metric is undefined (e.g. no positive drawn) are
    dropped; ``n_boot`` in the result counts those kept.

    Interval: percentile. With ~50 patients the difference of two paired pooled rates is close
    to symmetric and the simulation in ``benchmarks/bench_coverage.py`` shows the percentile
    interval at or above nominal coverage, so BCa's extra jackknife is not used.

    p-value: the percentile bootstrap inverted, p = 2 min(#{d* <= 0} + 1, #{d* >= 0} + 1) /
    (B + 1), on the same resamples as the interval, so "p < alpha" and "the 1 - alpha interval
    excludes 0" agree. Why not a sign-flip / swap permutation test: GMS is a pooled ratio
    (sqrt(TP/(TP+FN) * TN/(TN+FP)) over all patients), not a sum of per-patient
    contributions, so sign-flipping per-patient terms needs a linearisation with a symmetry
    assumption, and swapping A/B predictions within patients tests the sharp null "A and B
    are exchangeable", which rejects for differences other than in GMS. The cluster bootstrap
    of a smooth function of patient-level totals (a ratio estimator) is consistent for the
    weak null "delta GMS = 0" (delta method); its smallest attainable p is 2 / (B + 1).

    TOST: p_tost = max(P*(d* <= -margin), P*(d* >= +margin)) (with the same +1 rule);
    p_tost < 0.05 when the 90 % percentile interval lies inside (-margin, +margin) (the same
    event up to the quantile interpolation). The verdict uses the interval.
    """
    y = np.asarray(y, dtype=np.float64)
    if a.probs.shape[1:] != y.shape or b.probs.shape[1:] != y.shape:
        raise ValueError(f"probs {a.probs.shape} / {b.probs.shape} do not match y {y.shape}")
    if seeds not in ("fixed", "resample"):
        raise ValueError(f"seeds must be 'fixed' or 'resample', got {seeds!r}")
    ids, pidx = np.unique(np.asarray(patient), return_inverse=True)
    if pidx.size != y.shape[0]:
        raise ValueError(f"patient has {pidx.size} entries for {y.shape[0]} images")
    n_pat = ids.size
    w = np.vstack([np.ones(n_pat), rng.multinomial(n_pat, np.full(n_pat, 1 / n_pat), n_boot)])
    n_seeds = a.n_seeds
    if seeds == "fixed" or n_seeds == 1 or b.n_seeds != n_seeds:
        va, vb = seed_metrics(metric, a, y, pidx, w), seed_metrics(metric, b, y, pidx, w)
        d = va.mean(axis=1) - vb.mean(axis=1)
    elif fold is not None and metric not in ("auroc", "auprc"):
        fold_of_patient = _fold_of_patient(np.asarray(fold), pidx, n_pat)
        n_folds = fold_of_patient.max() + 1
        pick = rng.integers(0, n_seeds, size=(n_boot, n_seeds - 1, n_folds))
        ident = np.broadcast_to(np.arange(n_seeds)[None, :, None], (1, n_seeds, n_folds))
        va = mixed_seed_metrics(metric, a, y, pidx, fold_of_patient, w[:1], ident)
        vb = mixed_seed_metrics(metric, b, y, pidx, fold_of_patient, w[:1], ident)
        d0 = va.mean(axis=1) - vb.mean(axis=1)
        va = mixed_seed_metrics(metric, a, y, pidx, fold_of_patient, w[1:], pick)
        vb = mixed_seed_metrics(metric, b, y, pidx, fold_of_patient, w[1:], pick)
        d = np.concatenate([d0, va.mean(axis=1) - vb.mean(axis=1)])
    else:
        va, vb = seed_metrics(metric, a, y, pidx, w), seed_metrics(metric, b, y, pidx, w)
        d0 = va[:1].mean(axis=1) - vb[:1].mean(axis=1)
        pick = rng.integers(0, n_seeds, (n_boot, n_seeds - 1))
        rows = np.arange(1, n_boot + 1)[:, None]
        d = np.concatenate([d0, va[rows, pick].mean(axis=1) - vb[rows, pick].mean(axis=1)])
    est, boot = float(d[0]), d[1:][np.isfinite(d[1:])]
    if boot.size == 0 or math.isnan(est):
        nan = math.nan
        return Comparison(
            method,
            reference,
            metric,
            threshold_mode,
            _models(a, b),
            est,
            nan,
            nan,
            nan,
            nan,
            nan,
            nan,
            margin,
            n_pat,
            min(a.n_seeds, b.n_seeds),
            0,
        )
    q = (1 - level) / 2
    lo, hi, lo90, hi90 = np.quantile(boot, [q, 1 - q, 0.05, 0.95])
    p_tost = max(1 + np.sum(boot <= -margin), 1 + np.sum(boot >= margin)) / (boot.size + 1)
    return Comparison(
        method,
        reference,
        metric,
        threshold_mode,
        _models(a, b),
        est,
        float(lo),
        float(hi),
        float(lo90),
        float(hi90),
        _p_two_sided(boot),
        float(p_tost),
        margin,
        n_pat,
        min(a.n_seeds, b.n_seeds),
        int(boot.size),
    )


def _fold_of_patient(fold: np.ndarray, pidx: np.ndarray, n_pat: int) -> np.ndarray:
    """(P,) fold index 0..K-1 of each patient; raises if a patient's images span two folds."""
    _, f = np.unique(fold, return_inverse=True)
    out = np.full(n_pat, -1)
    out[pidx] = f
    if np.any(out[pidx] != f):
        raise ValueError("a patient's images are in more than one test fold")
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


def _models(a: OOF, b: OOF) -> str:
    return "ensemble" if a.n_seeds == 1 and b.n_seeds == 1 else "seeds"


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm step-down adjusted p-values (NaN entries stay NaN and do not count in m).

    p_(i) sorted ascending among the m finite values: adj_(i) = max_{j<=i} min(1, (m-j+1) p_(j)).
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, math.nan)
    fin = np.flatnonzero(np.isfinite(p))
    m = fin.size
    order = fin[np.argsort(p[fin], kind="mergesort")]
    running = 0.0
    for i, k in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[k]))
        out[k] = running
    return out


def verdict(c: Comparison, alpha: float = ALPHA) -> str:
    """helps | hurts | equivalent | inconclusive for a comparison with ``p_holm`` set.

    helps: Holm-adjusted p < alpha and the interval excludes 0 on the better side (lower bound
    > 0; for brier / ece upper bound < 0); hurts: symmetric. equivalent: not helps / hurts and
    TOST passes (90 % interval inside +-margin, unadjusted). Else inconclusive. A tiny
    significant effect inside the margin is reported as helps / hurts; check ``p_tost``.
    """
    if math.isnan(c.estimate) or math.isnan(c.ci_low):
        return "inconclusive"
    sign = -1.0 if c.metric in LOWER_IS_BETTER else 1.0
    lo, hi = sorted((sign * c.ci_low, sign * c.ci_high))
    if c.p_holm < alpha and lo > 0:
        return "helps"
    if c.p_holm < alpha and hi < 0:
        return "hurts"
    if -c.margin < c.ci90_low and c.ci90_high < c.margin:
        return "equivalent"
    return "inconclusive"


def finalize(comparisons: Sequence[Comparison], alpha: float = ALPHA) -> list[Comparison]:
    """Holm over all comparisons of one table, then a verdict for each (new objects)."""
    adj = holm([c.p for c in comparisons])
    out = []
    for c, ph in zip(comparisons, adj, strict=True):
        c = replace(c, p_holm=float(ph))
        out.append(replace(c, verdict=verdict(c, alpha)))
    return out


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
