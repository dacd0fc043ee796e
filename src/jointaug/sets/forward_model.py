"""A non-learned imaging model: clinician maps -> count-rate image (numpy/scipy only).

The ``forward`` control set (:mod:`jointaug.sets.forward`) asks whether the
diffusion model beats a physics sketch. The sketch renders a tissue map (0 background,
1 normal, 2 low, 3 high) as

    rate = blur_sigma( sum_k r_k * [tissue == k] )        then Poisson counts

with a Gaussian blur (the camera's resolution and the tracer's spread) and per-class
count rates ``r_k``, all fitted on the fold's train images against their own clinician
maps (:func:`fit_forward_model`):

- for each of a grid of ``sigma`` values the four rates of every train image are the
  non-negative least-squares fit of the image by the four blurred class indicators;
  the sigma with the smallest total squared residual is kept;
- per image, background and normal rates are kept (they carry the patient's dose and
  uptake); low and high are pooled as median ratios to the image's normal rate over
  the images that have such pixels (a sampled condition inflames joints the source
  image may not have).

:func:`render_rate` draws a condition with the parameters of its source image. What the
sketch leaves out (and a learned generator may capture): texture within tissue, the
shape of hot spots inside a joint region, bone/soft-tissue structure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.optimize import nnls

SIGMAS_AT_256 = (0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0)
DEFAULT_LOW_RATIO = 2.0  # used only when no train image has a low / high pixel
DEFAULT_HIGH_RATIO = 4.0


def blur(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian blur (sigma in pixels; 0 = none), edges by nearest value; float64."""
    a = np.asarray(image, dtype=np.float64)
    return gaussian_filter(a, sigma_px, mode="nearest") if sigma_px > 0 else a


def class_indicators(tissue: np.ndarray, sigma_px: float) -> np.ndarray:
    """(4, H, W) blurred indicators of tissue classes 0-3."""
    t = np.asarray(tissue)
    return np.stack([blur((t == k).astype(np.float64), sigma_px) for k in range(4)])


def fit_rates(image: np.ndarray, tissue: np.ndarray, sigma_px: float) -> tuple[np.ndarray, float]:
    """Non-negative per-class rates (4,) (NaN for a class with no pixel) and the squared residual."""
    ind = class_indicators(tissue, sigma_px)
    present = [k for k in range(4) if np.any(np.asarray(tissue) == k)]
    a = ind[present].reshape(len(present), -1).T
    b = np.asarray(image, dtype=np.float64).ravel()
    coef, resid = nnls(a, b)
    rates = np.full(4, np.nan)
    rates[present] = coef
    return rates, float(resid**2)


@dataclass
class ForwardModel:
    """sigma_px: blur at the images' size; per_image: {case_id: (background, normal)} rates;
    low_ratio / high_ratio: low and high rates as multiples of the normal rate."""

    sigma_px: float
    low_ratio: float
    high_ratio: float
    per_image: dict[str, tuple[float, float]] = field(default_factory=dict)
    residual_by_sigma: dict[str, float] = field(default_factory=dict)

    def rates_for(self, case_id: str) -> np.ndarray:
        """(4,) class rates for a condition drawn on source image ``case_id`` (a train case;
        an unknown one gets the median background and normal rates)."""
        if case_id in self.per_image:
            bg, normal = self.per_image[case_id]
        else:
            vals = np.array(list(self.per_image.values()))
            bg, normal = np.median(vals, axis=0)
        return np.array([bg, normal, self.low_ratio * normal, self.high_ratio * normal])

    def to_json(self) -> dict:
        return asdict(self)


def fit_forward_model(
    images: Sequence[np.ndarray],
    tissues: Sequence[np.ndarray],
    case_ids: Sequence[str],
    sigmas: Sequence[float] | None = None,
    max_fit_images: int = 24,
) -> ForwardModel:
    """Fit blur and rates on train images and their clinician tissue maps (see module doc).

    Args:
        images: (H, W) count images; tissues: their tissue maps (0-3), same shapes.
        case_ids: one per image (the per-image rates are keyed by them).
        sigmas: blur grid in pixels (default: ``SIGMAS_AT_256`` scaled to the image size).
        max_fit_images: sigma is chosen on the first this many images (evenly spaced).
    """
    if not images or len(images) != len(tissues) or len(images) != len(case_ids):
        raise ValueError("need one tissue map and one case id per image, and at least one image")
    for im, t in zip(images, tissues, strict=True):
        if np.shape(im) != np.shape(t):
            raise ValueError(f"image {np.shape(im)} and tissue map {np.shape(t)} differ in shape")
    size = max(np.shape(images[0]))
    grid = list(sigmas) if sigmas is not None else [s * size / 256 for s in SIGMAS_AT_256]
    pick = np.unique(
        np.linspace(0, len(images) - 1, min(max_fit_images, len(images))).round().astype(int)
    )
    resid = {s: sum(fit_rates(images[i], tissues[i], s)[1] for i in pick) for s in grid}
    sigma = min(resid, key=resid.get)
    per, lows, highs = {}, [], []
    for im, t, cid in zip(images, tissues, case_ids, strict=True):
        r, _ = fit_rates(im, t, sigma)
        normal = r[1] if np.isfinite(r[1]) else np.nan
        per[str(cid)] = (float(np.nan_to_num(r[0])), float(normal))
        if np.isfinite(normal) and normal > 0:
            if np.isfinite(r[2]):
                lows.append(r[2] / normal)
            if np.isfinite(r[3]):
                highs.append(r[3] / normal)
    normals = [v[1] for v in per.values() if np.isfinite(v[1])]
    if not normals:
        raise ValueError("no train image has normal tissue (class 1) in its tissue map")
    fill = float(np.median(normals))
    per = {k: (b, n if np.isfinite(n) else fill) for k, (b, n) in per.items()}
    low = float(np.median(lows)) if lows else DEFAULT_LOW_RATIO
    high = float(np.median(highs)) if highs else max(DEFAULT_HIGH_RATIO, low)
    return ForwardModel(
        float(sigma), low, high, per, {f"{s:g}": float(v) for s, v in resid.items()}
    )


def render_rate(tissue: np.ndarray, rates: np.ndarray, sigma_px: float) -> np.ndarray:
    """Count-rate image (H, W) float64 >= 0 of a tissue map with class rates (4,)."""
    t = np.asarray(tissue)
    if t.min() < 0 or t.max() > 3:
        raise ValueError("tissue map values must be 0-3")
    r = np.asarray(rates, dtype=np.float64)
    return np.maximum(blur(r[t.astype(np.intp)], sigma_px), 0.0)
