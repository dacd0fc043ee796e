"""Fidelity statistics of a synthetic set against real images (numpy only).

The pieces of a set's fidelity record (:mod:`jointaug.fidelity.measure` computes them
for a run's sets and writes ``fidelity.json``):

- :func:`label_fidelity`: a judge (a classifier trained on real images) scores the
  synthetic images against the labels they were generated for ("GAN-test"); the same
  judge on the real test part gives the reference, and the ratio of the two GMS says how
  much of its real-image skill carries over. Pooled (the paper's micro metrics) and per
  joint.
- :func:`intensity_summary`: mean counts per condition class (normal, low, high,
  background) and total counts per image.
- :func:`memorisation`: for each synthetic image, the distance to its nearest real train
  image, against the real train images' own nearest-neighbour distances. A synthetic
  image closer to a train image than ``copy_fraction`` x the 5th percentile of the
  real-to-real distances is a near-copy (exact copies have distance 0).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from jointaug.classify.metrics import binarize, per_label_metrics, pooled_metrics
from jointaug.fidelity.quality import region_means, total_counts

RATE_KEYS = ("accuracy", "tpr", "tnr", "f1", "gms")


def _finite(x: float) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b <= 0:
        return None
    return float(a / b)


def label_fidelity(
    synthetic_labels: np.ndarray,
    synthetic_probs: np.ndarray,
    real_labels: np.ndarray,
    real_probs: np.ndarray,
    labels: Sequence[str],
    threshold: float | np.ndarray = 0.5,
) -> dict:
    """The judge's metrics on synthetic vs real images, pooled and per joint.

    Args:
        synthetic_labels: (N, L) the labels the synthetic images were generated for.
        synthetic_probs: (N, L) the judge's probabilities on them.
        real_labels, real_probs: (M, L) the same on real (test) images; NaN = unknown.
        labels: the L label names.
        threshold: the judge's decision threshold (scalar or (L,)).

    Returns:
        ``{"synthetic": {...}, "real": {...}, "ratio": GMS_syn / GMS_real,
        "per_joint": [{"label", "synthetic_gms", "real_gms", "ratio", "positives"}]}``
        (None where undefined, e.g. a joint with no positive real image).
    """
    s_pred = binarize(synthetic_probs, threshold)
    r_pred = binarize(real_probs, threshold)
    syn = pooled_metrics(synthetic_labels, s_pred)
    real = pooled_metrics(real_labels, r_pred)
    per_s = per_label_metrics(synthetic_labels, s_pred, list(labels))
    per_r = per_label_metrics(real_labels, r_pred, list(labels))
    joints = []
    for a, b in zip(per_s, per_r, strict=True):
        sg, rg = _finite(a["gms"]), _finite(b["gms"])
        joints.append(
            {
                "label": a["label"],
                "synthetic_gms": sg,
                "real_gms": rg,
                "ratio": _ratio(sg, rg),
                "positives": int(a["tp"] + a["fn"]),
            }
        )
    s = {k: _finite(syn[k]) for k in RATE_KEYS}
    r = {k: _finite(real[k]) for k in RATE_KEYS}
    return {
        "synthetic": s,
        "real": r,
        "ratio": _ratio(s["gms"], r["gms"]),
        "per_joint": joints,
        "n_synthetic": int(len(synthetic_labels)),
        "n_real": int(len(real_labels)),
    }


def intensity_summary(images: Sequence[np.ndarray], conditions: Sequence[np.ndarray]) -> dict:
    """Mean counts per pixel in background / normal / low / high regions of the tissue
    maps (0-3), and the mean total counts per image."""
    out = {k: _finite(v) for k, v in region_means(images, conditions).items()}
    out["total"] = float(total_counts(images).mean()) if len(images) else None
    return out


def intensity_ratio(synthetic: dict, real: dict) -> dict:
    """Per key synthetic / real (None where either is missing)."""
    return {k: _ratio(synthetic.get(k), real.get(k)) for k in real}


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    aa = np.einsum("ij,ij->i", a, a)[:, None]
    bb = np.einsum("ij,ij->i", b, b)[None, :]
    return np.maximum(aa + bb - 2.0 * (a @ b.T), 0.0)


def nearest_distances(
    queries: np.ndarray, reference: np.ndarray, exclude_self: bool = False, chunk: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distance of each query row to its nearest reference row, and its index.

    queries (N, D), reference (M, D) (images flattened). ``exclude_self``: queries ARE the
    reference (same order); a row's distance to itself is skipped.
    """
    q = np.asarray(queries, dtype=np.float64).reshape(len(queries), -1)
    r = np.asarray(reference, dtype=np.float64).reshape(len(reference), -1)
    if exclude_self and len(q) != len(r):
        raise ValueError("exclude_self needs queries and reference to be the same rows")
    if len(r) < (2 if exclude_self else 1):
        raise ValueError("need at least one reference image (two with exclude_self)")
    dist = np.empty(len(q))
    idx = np.empty(len(q), dtype=np.intp)
    for s in range(0, len(q), chunk):
        d = _sq_dists(q[s : s + chunk], r)
        if exclude_self:
            rows = np.arange(d.shape[0])
            d[rows, rows + s] = np.inf
        idx[s : s + chunk] = d.argmin(1)
        dist[s : s + chunk] = np.sqrt(d[np.arange(d.shape[0]), idx[s : s + chunk]])
    return dist, idx


def memorisation(synthetic: np.ndarray, real_train: np.ndarray, copy_fraction: float = 0.5) -> dict:
    """Near-copies of train images among the synthetic ones.

    Args:
        synthetic: (N, ...) synthetic images, prepared as the classifier sees them.
        real_train: (M, ...) the fold's real train images, prepared the same way (M >= 2).
        copy_fraction: a synthetic image is a near-copy when its nearest-train distance is
            below ``copy_fraction`` x the 5th percentile of the real-to-real distances.

    Returns:
        ``{"near_copies", "near_copy_fraction", "threshold", "synthetic_median",
        "real_median", "median_ratio"}``: distances are Euclidean on the flattened images;
        ``median_ratio`` = median synthetic-to-train / median train-to-train nearest distance.
    """
    d_syn, _ = nearest_distances(synthetic, real_train)
    d_real, _ = nearest_distances(real_train, real_train, exclude_self=True)
    thr = copy_fraction * float(np.percentile(d_real, 5))
    near = int(np.sum(d_syn <= thr))
    med_s, med_r = float(np.median(d_syn)), float(np.median(d_real))
    return {
        "near_copies": near,
        "near_copy_fraction": near / max(len(d_syn), 1),
        "threshold": thr,
        "synthetic_median": med_s,
        "real_median": med_r,
        "median_ratio": _ratio(med_s, med_r),
    }
