"""The Perlin variation of joint masks (paper: "Perlin noise").

:func:`vary_mask` — the paper's variation of one joint mask: a random Perlin map in
[0, 1] times the mask, a random threshold; accept the first candidate with at least
``min_pixels`` pixels and at most ``max_fraction`` of the mask's pixels; after
``max_tries`` candidates fall back to the unvaried mask. Candidates are drawn in
vectorised batches and only over the mask's bounding box (the noise is evaluated at
the box's pixels in full-image lattice coordinates, so it is the same random field
as a full-image map cropped to the box). The straightforward one-full-map-per-try
loop (benchmark baseline, test oracle) is ``vary_mask_reference`` in
``tests/reference_noise.py``, outside the package.

Scale rules for image sizes other than 256x256: ``min_pixels`` is given at 256x256 and
scaled by ``H*W/65536`` (rounded, at least 1; see :func:`scaled_min_pixels`);
``max_fraction`` is a fraction and does not scale; the noise resolution ``res`` is in
periods across the image's longer side, so the blob size relative to the image (and to
the joints) is the same at every size.

The noise itself lives in :mod:`jointaug.masks.noise`; its public functions
(``perlin_2d``, ``box_noise``, ...) are re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from jointaug.masks.noise import (
    axis_weights,
    bilinear_noise,
    box_noise,
    noise_from_gradients,
    perlin_2d,
    random_gradients,
)

__all__ = [
    "Variation",
    "VariationResult",
    "bounding_box",
    "box_noise",
    "check_variation_params",
    "noise_from_gradients",
    "perlin_2d",
    "res_for_shape",
    "region_min_pixels",
    "scaled_min_pixels",
    "vary_in_box",
    "vary_mask",
]

REFERENCE_AREA = 256 * 256  # the paper's image size, at which min_pixels is given

# --------------------------------------------------------------------------------------
# Perlin variation of a mask
# --------------------------------------------------------------------------------------


@dataclass
class VariationResult:
    """Outcome of :func:`vary_mask`.

    mask: (H, W) bool, the varied mask (a subset of the input), or the input on fallback.
    tries: candidates drawn until one was accepted (1 = the first), ``max_tries`` when
        none was, 0 when no candidate could possibly pass (region too small) or empty.
    fell_back: True when the unvaried mask was returned.
    """

    mask: np.ndarray
    tries: int
    fell_back: bool


def region_min_pixels(area: int, min_pixels: int, max_fraction: float, min_fraction: float) -> int:
    """The minimum varied area of one region of ``area`` pixels (``min_pixels`` scaled).

    The paper's rule is ``min_pixels``: a region with ``max_fraction * area < min_pixels``
    can pass no candidate and is left whole. With ``min_fraction > 0`` such a region is
    varied too, keeping at least ``ceil(min_fraction * area)`` pixels (at least 1); every
    region the paper's rule can vary keeps its rule.
    """
    if min_fraction <= 0 or math.floor(max_fraction * area) >= min_pixels:
        return min_pixels
    return max(1, math.ceil(min_fraction * area))


def scaled_min_pixels(min_pixels: float, shape: tuple[int, int]) -> int:
    """``min_pixels`` (given at 256x256) scaled to an image of ``shape`` by area.

    ``max(1, round(min_pixels * H * W / 65536))``: 25 at 256x256, 6 at 128x128, 2 at 64x64.
    """
    return max(1, int(round(min_pixels * shape[0] * shape[1] / REFERENCE_AREA)))


def res_for_shape(periods: float, shape: tuple[int, int]) -> tuple[float, float]:
    """(rows, cols) periods for ``periods`` across the longer side, keeping cells square."""
    side = max(shape)
    return periods * shape[0] / side, periods * shape[1] / side


def bounding_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(y0, y1, x0, x1) half-open box of the True pixels of a 2D mask, None if empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


@dataclass(frozen=True)
class Variation:
    """The candidate settings of a Perlin variation (:func:`vary_mask`'s arguments)."""

    max_fraction: float = 0.9
    max_tries: int = 5000
    batch: int = 64
    res: Sequence[float] = (2, 4, 8)
    threshold_low: float = 0.2
    threshold_high: float = 0.8


def vary_in_box(
    mask_box: np.ndarray,
    box: tuple[int, int, int, int],
    shape: tuple[int, int],
    rng: np.random.Generator,
    min_pixels: int,
    v: Variation = Variation(),
) -> tuple[np.ndarray, int, bool]:
    """The variation on a mask already cropped to its box; ``min_pixels`` already scaled.

    Returns (varied box mask (h, w) bool, tries, fell_back). See :func:`vary_mask`.
    """
    max_fraction, max_tries, batch, res = v.max_fraction, v.max_tries, v.batch, v.res
    threshold_low, threshold_high = v.threshold_low, v.threshold_high
    area = int(np.count_nonzero(mask_box))
    max_pixels = math.floor(max_fraction * area)
    if area == 0 or max_pixels < min_pixels:
        return mask_box.copy(), 0, True
    # interpolation matrices of the box for each resolution choice, (K, h or w, points)
    res_choices = np.array([res_for_shape(float(r), shape) for r in res])  # (K, 2)
    py, oy = axis_weights(shape[0], res_choices[:, 0], box[0], box[1])
    px, ox = axis_weights(shape[1], res_choices[:, 1], box[2], box[3])
    lattice = (py.shape[2], px.shape[2])
    tries = 0
    while tries < max_tries:
        n = min(batch, max_tries - tries)
        pick = rng.integers(len(res_choices), size=n)  # each candidate's resolution
        gy, gx = random_gradients(rng, lattice, n)
        noise = bilinear_noise(py[pick], oy[pick], px[pick], ox[pick], gy, gx)
        thresholds = rng.uniform(threshold_low, threshold_high, size=n).astype(np.float32)
        # Perlin map rescaled to [0, 1], times the mask, above the threshold:
        # 0.5 * (noise + 1) > t  <=>  noise > 2t - 1 (and the mask, since t >= 0)
        keep = noise > (2.0 * thresholds - 1.0)[:, None, None]
        keep &= mask_box
        counts = keep.reshape(n, -1).sum(axis=1)
        ok = np.flatnonzero((counts >= min_pixels) & (counts <= max_pixels))
        if ok.size:
            first = int(ok[0])
            return keep[first], tries + first + 1, False
        tries += n
    return mask_box.copy(), tries, True


def vary_mask(
    mask: np.ndarray,
    rng: np.random.Generator,
    min_pixels: float = 25,
    max_fraction: float = 0.9,
    max_tries: int = 5000,
    batch: int = 64,
    res: Sequence[float] = (2, 4, 8),
    threshold_low: float = 0.2,
    threshold_high: float = 0.8,
) -> VariationResult:
    """Vary one region mask with Perlin noise, as the paper does for each inflamed joint.

    Each candidate: a Perlin map (periods per longer image side drawn uniformly from
    ``res``) rescaled to [0, 1], times the mask, binarised above a threshold drawn
    uniformly from [threshold_low, threshold_high]. The first candidate with at least
    ``scaled_min_pixels(min_pixels, mask.shape)`` pixels and at most
    ``floor(max_fraction * mask pixels)`` pixels is returned. Candidates are drawn
    ``batch`` at a time over the mask's bounding box only; after ``max_tries`` candidates
    the unvaried mask is returned (``fell_back=True``). When no candidate can pass (the
    mask has fewer pixels than the minimum allows) or the mask is empty, the mask is
    returned at once with ``tries=0, fell_back=True``.

    Args:
        mask: (H, W) bool region (e.g. one joint).
        rng: random source; the result is a deterministic function of its state.
        min_pixels: minimum varied area in pixels, given at 256x256 (scaled by area).
        max_fraction: maximum varied area as a fraction of the mask's area.

    Returns:
        :class:`VariationResult` with an (H, W) bool mask that is a subset of ``mask``.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2D, got shape {mask.shape}")
    check_variation_params(max_fraction, max_tries, batch, res, threshold_low, threshold_high)
    box = bounding_box(mask)
    if box is None:
        return VariationResult(mask.copy(), 0, True)
    y0, y1, x0, x1 = box
    varied, tries, fell_back = vary_in_box(
        mask[y0:y1, x0:x1],
        box,
        mask.shape,
        rng,
        scaled_min_pixels(min_pixels, mask.shape),
        Variation(max_fraction, max_tries, batch, res, threshold_low, threshold_high),
    )
    out = np.zeros_like(mask)
    out[y0:y1, x0:x1] = varied
    return VariationResult(out, tries, fell_back)


def check_variation_params(
    max_fraction: float,
    max_tries: int,
    batch: int,
    res: Sequence[float],
    threshold_low: float,
    threshold_high: float,
) -> None:
    """Raise ValueError naming the rule when Perlin variation settings are unusable."""
    if not 0 < max_fraction <= 1:
        raise ValueError(f"perlin max_fraction must be in (0, 1], got {max_fraction}")
    if max_tries < 1 or batch < 1:
        raise ValueError(f"perlin max_tries and batch must be >= 1, got {max_tries}, {batch}")
    if not res or min(res) <= 0:
        raise ValueError(f"perlin res must be a non-empty list of positive periods, got {res}")
    if not 0 <= threshold_low <= threshold_high <= 1:
        raise ValueError(
            f"perlin thresholds must satisfy 0 <= low <= high <= 1, got {threshold_low}, {threshold_high}"
        )
