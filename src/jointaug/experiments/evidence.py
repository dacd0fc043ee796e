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

from jointaug.experiments.pooled import (  # re-exported: the evidence API in one place
    METRICS,
    OOF,
    mixed_seed_metrics,
    pool_folds,
    seed_metrics,
    summarize,
)

__all__ = [
    "METRICS",
    "OOF",
    "CompareOptions",
    "Comparison",
    "compare",
    "finalize",
    "holm",
    "mixed_seed_metrics",
    "pool_folds",
    "seed_metrics",
    "summarize",
    "verdict",
]

LOWER_IS_BETTER = frozenset({"brier", "ece"})
N_BOOT = 2000
LEVEL = 0.95
ALPHA = 0.05
MARGIN = 0.03  # the equivalence margin, in units of the metric (GMS by default)


@dataclass(frozen=True)
class CompareOptions:
    """How :func:`compare` resamples and what it reports.

    metric: one of :data:`METRICS`; n_boot: bootstrap resamples; level: of the interval;
    margin: the TOST equivalence margin (units of the metric); seeds: "resample" (training
    noise in the interval, the default) or "fixed"; method / reference / threshold_mode:
    labels copied into the :class:`Comparison`.
    """

    metric: str = "gms"
    n_boot: int = N_BOOT
    level: float = LEVEL
    margin: float = MARGIN
    seeds: str = "resample"
    method: str = "A"
    reference: str = "B"
    threshold_mode: str = "default"


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
    options: CompareOptions | None = None,
    *,
    fold: np.ndarray | None = None,
) -> Comparison:
    """Paired cluster bootstrap over patients of metric(a) - metric(b) on the same images.

    a, b: OOF predictions of the two methods on the same (N, L) images ``y`` with patient ids
    ``patient`` (N,). Each of ``options.n_boot`` resamples draws P patient ids with replacement
    (all images of a patient move together, both methods with them); per resample and method
    the metric is computed on S seed pools and averaged:

    - ``options.seeds="fixed"``: the S real seed pools (training noise left out; anti-conservative
      when trainings vary, kept for comparison and for one-seed runs);
    - ``options.seeds="resample"`` with ``fold`` (N,) (the default; pass ``fold`` from
      :func:`pool_folds`): S - 1 pseudo-pools whose model for fold k is a seed drawn with
      replacement, independently per fold; the same draws for both methods;
    - ``options.seeds="resample"`` without ``fold``, or for auroc / auprc (not additive over folds):
      S - 1 whole seed pools drawn with replacement.

    The point estimate always uses the S real pools. With one seed (the seed ensemble) only
    patients are resampled: the ensemble's interval is conditional on its trained models (its
    training noise, smaller than a single model's, is not in it), so read it as a lower bound
    on the uncertainty. Resamples where the metric is undefined (e.g. no positive drawn) are
    dropped; ``options.n_boot`` in the result counts those kept.

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
    o = options or CompareOptions()
    y = np.asarray(y, dtype=np.float64)
    if a.probs.shape[1:] != y.shape or b.probs.shape[1:] != y.shape:
        raise ValueError(f"probs {a.probs.shape} / {b.probs.shape} do not match y {y.shape}")
    if o.seeds not in ("fixed", "resample"):
        raise ValueError(f"seeds must be 'fixed' or 'resample', got {o.seeds!r}")
    _, pidx = np.unique(np.asarray(patient), return_inverse=True)
    if pidx.size != y.shape[0]:
        raise ValueError(f"patient has {pidx.size} entries for {y.shape[0]} images")
    d = _boot_differences(a, b, y, pidx, rng, o, fold)
    return _summarise(d, o, _models(a, b), int(pidx.max()) + 1, min(a.n_seeds, b.n_seeds))


def _boot_differences(
    a: OOF,
    b: OOF,
    y: np.ndarray,
    pidx: np.ndarray,
    rng: np.random.Generator,
    o: CompareOptions,
    fold: np.ndarray | None,
) -> np.ndarray:
    """(1 + n_boot,) differences: the data set itself first, then the resamples."""
    n_pat, metric, n_boot = int(pidx.max()) + 1, o.metric, o.n_boot
    w = np.vstack([np.ones(n_pat), rng.multinomial(n_pat, np.full(n_pat, 1 / n_pat), n_boot)])
    n_seeds = a.n_seeds
    if o.seeds == "fixed" or n_seeds == 1 or b.n_seeds != n_seeds:
        va, vb = seed_metrics(metric, a, y, pidx, w), seed_metrics(metric, b, y, pidx, w)
        return va.mean(axis=1) - vb.mean(axis=1)
    if fold is not None and metric not in ("auroc", "auprc"):
        fold_of_patient = _fold_of_patient(np.asarray(fold), pidx, n_pat)
        n_folds = fold_of_patient.max() + 1
        pick = rng.integers(0, n_seeds, size=(n_boot, n_seeds - 1, n_folds))
        ident = np.broadcast_to(np.arange(n_seeds)[None, :, None], (1, n_seeds, n_folds))
        out = []
        for weights, picks in ((w[:1], ident), (w[1:], pick)):
            va = mixed_seed_metrics(metric, a, y, pidx, fold_of_patient, weights, picks)
            vb = mixed_seed_metrics(metric, b, y, pidx, fold_of_patient, weights, picks)
            out.append(va.mean(axis=1) - vb.mean(axis=1))
        return np.concatenate(out)
    va, vb = seed_metrics(metric, a, y, pidx, w), seed_metrics(metric, b, y, pidx, w)
    d0 = va[:1].mean(axis=1) - vb[:1].mean(axis=1)
    pick = rng.integers(0, n_seeds, (n_boot, n_seeds - 1))
    rows = np.arange(1, n_boot + 1)[:, None]
    return np.concatenate([d0, va[rows, pick].mean(axis=1) - vb[rows, pick].mean(axis=1)])


def _summarise(
    d: np.ndarray, o: CompareOptions, models: str, n_pat: int, n_seeds: int
) -> Comparison:
    """The :class:`Comparison` of differences ``d`` (the estimate first, then resamples)."""
    est, boot = float(d[0]), d[1:][np.isfinite(d[1:])]
    labels = (o.method, o.reference, o.metric, o.threshold_mode, models)
    if boot.size == 0 or math.isnan(est):
        nan = math.nan
        return Comparison(*labels, est, nan, nan, nan, nan, nan, nan, o.margin, n_pat, n_seeds, 0)
    q = (1 - o.level) / 2
    lo, hi, lo90, hi90 = np.quantile(boot, [q, 1 - q, 0.05, 0.95])
    p_tost = max(1 + np.sum(boot <= -o.margin), 1 + np.sum(boot >= o.margin)) / (boot.size + 1)
    return Comparison(
        *labels,
        est,
        float(lo),
        float(hi),
        float(lo90),
        float(hi90),
        _p_two_sided(boot),
        float(p_tost),
        o.margin,
        n_pat,
        n_seeds,
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
