"""Checks of generated images against their conditions and the real data (numpy only).

- :func:`region_means`: pooled mean counts in background, normal, low and high pixels of
  the condition maps (sum of counts over all images / number of pixels). A model that
  follows its conditions gives high > low > normal.
- :func:`total_counts`: counts per image; compare their mean with the real train images'
  (the issue's goal: within 20 %).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

CLASSES = ("background", "normal", "low", "high")


def region_means(
    images: Sequence[np.ndarray], conditions: Sequence[np.ndarray]
) -> dict[str, float]:
    """Pooled mean counts per condition class; NaN for a class with no pixel."""
    sums = np.zeros(4)
    pixels = np.zeros(4)
    for image, cond in zip(images, conditions, strict=True):
        image = np.asarray(image, dtype=np.float64)
        cond = np.asarray(cond)
        if image.shape != cond.shape:
            raise ValueError(f"image {image.shape} and condition {cond.shape} differ in shape")
        sums += np.bincount(cond.ravel(), weights=image.ravel(), minlength=4)[:4]
        pixels += np.bincount(cond.ravel(), minlength=4)[:4]
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / pixels
    return {name: float(m) for name, m in zip(CLASSES, means, strict=True)}


def total_counts(images: Sequence[np.ndarray]) -> np.ndarray:
    """(N,) float64 total counts of each image."""
    return np.array([float(np.asarray(im, dtype=np.float64).sum()) for im in images])


def ordering_ok(means: dict[str, float]) -> bool:
    """high > low > normal (classes with no pixel are skipped)."""
    seq = [means[k] for k in ("normal", "low", "high") if np.isfinite(means[k])]
    return all(a < b for a, b in zip(seq, seq[1:], strict=False))
