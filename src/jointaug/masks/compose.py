"""Compose a condition map from a source case and an inflammation vector (paper: Fig. 3).

The condition is a label map in the tissue-map convention of the dataset contract
(0 background, 1 normal tissue, 2 low inflammation, 3 high inflammation):

- normal = the hand, ``tissue > 0`` (the source case's own clinician-marked inflammation
  becomes normal tissue: the new vector alone decides where inflammation is);
- low = the union of the region masks of labels with vector == 1, high likewise for 2,
  each optionally varied with Perlin noise (:func:`jointaug.masks.perlin.vary_in_box`);
- high is painted over low, low over normal (with one region label map the regions of
  two labels never share a pixel, so the order only fixes the convention).

Inflammation is clipped to the hand: a label's region is first intersected with
``tissue > 0``, and the Perlin variation and its criteria (>= min pixels, <= 90 %) act
on that clipped region. Reason: in the clinician maps the diffusion model learns from,
inflamed pixels are always part of the tissue outline; painting a layperson region that
sticks out of the hand would grow the hand in the "normal" channel
(:func:`condition_channels` counts every non-zero pixel as hand) and show the model a
hand shape it never saw. An inflamed label whose clipped region is empty paints nothing
and is flagged in ``Composed.missing``; its label stays 1, as the sampled vector says.

:func:`condition_channels` turns a real case's tissue map or a composed condition into
the (3, H, W) input the diffusion model sees.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from jointaug.config import PerlinConfig
from jointaug.masks.perlin import (
    Variation,
    check_variation_params,
    region_min_pixels,
    scaled_min_pixels,
    vary_in_box,
)

BACKGROUND, NORMAL, LOW, HIGH = 0, 1, 2, 3


@dataclass
class Composed:
    """A composed condition.

    condition: (H, W) uint8 tissue-convention map (0 bg, 1 normal, 2 low, 3 high).
    labels: (L,) float32 binary label vector (vector > 0), the new sample's labels.
    vector: (L,) int8 the sampled levels (0 none, 1 low, 2 high).
    tries: (L,) int32 Perlin candidates drawn per label (0 for labels not inflamed, not
        varied, or whose region cannot pass the criteria).
    fell_back: (L,) bool, True where an inflamed label's unvaried region was used
        because no candidate passed (only with Perlin variation).
    missing: (L,) bool, True where an inflamed label has no region pixels in the hand.
    """

    condition: np.ndarray
    labels: np.ndarray
    vector: np.ndarray
    tries: np.ndarray
    fell_back: np.ndarray
    missing: np.ndarray

    @property
    def n_fell_back(self) -> int:
        return int(self.fell_back.sum())

    @property
    def total_tries(self) -> int:
        return int(self.tries.sum())


def _perlin_config(perlin: PerlinConfig | dict | None) -> PerlinConfig | None:
    if perlin is None or isinstance(perlin, PerlinConfig):
        return perlin
    if isinstance(perlin, dict):
        return PerlinConfig(**perlin)
    raise TypeError(f"perlin must be a PerlinConfig, a dict or None, got {type(perlin).__name__}")


def _check_inputs(tissue: np.ndarray, regions: np.ndarray, vector: np.ndarray) -> None:
    """Raise ValueError unless the maps are 2D, alike in shape, and fit the vector."""
    if tissue.ndim != 2 or regions.shape != tissue.shape:
        raise ValueError(
            f"tissue map {tissue.shape} and region map {regions.shape} must be 2D and the same shape"
        )
    if vector.ndim != 1:
        raise ValueError(f"inflammation vector must be 1D, got shape {vector.shape}")
    if vector.size and (vector.min() < 0 or vector.max() > 2):
        raise ValueError("inflammation vector values must be 0 (none), 1 (low) or 2 (high)")
    n_labels = vector.size
    if regions.size and (regions.min() < 0 or regions.max() > n_labels):
        raise ValueError(
            f"region map has values up to {int(regions.max())} but the vector has {n_labels} labels"
        )


def _variation(
    cfg: PerlinConfig, rng: np.random.Generator | None, shape: tuple[int, ...]
) -> tuple[int, Variation]:
    """Checked Perlin settings for a map of ``shape``: (min pixels scaled, Variation)."""
    if rng is None:
        raise ValueError("compose_condition: Perlin variation needs an explicit rng")
    params = (
        cfg.max_fraction,
        cfg.max_tries,
        cfg.batch,
        cfg.res,
        cfg.threshold_low,
        cfg.threshold_high,
    )
    check_variation_params(*params)
    return scaled_min_pixels(cfg.min_pixels, shape), Variation(*params)


def compose_condition(
    tissue: np.ndarray,
    regions: np.ndarray,
    vector: np.ndarray,
    rng: np.random.Generator | None = None,
    perlin: PerlinConfig | dict | None = None,
) -> Composed:
    """Build the condition for a sampled inflammation vector on a source case.

    Args:
        tissue: (H, W) int tissue map of the source case; only ``tissue > 0`` is used.
        regions: (H, W) int region map: value i (1-based) = the i-th label's region.
        vector: (L,) levels per label, 0 none, 1 low, 2 high (see ``sample_inflammation``).
        rng: random source; required when ``perlin`` is given.
        perlin: Perlin variation settings (``PerlinConfig`` or its fields as a dict);
            None composes the unvaried regions.

    Returns:
        :class:`Composed`. Works for any label count L and any image size.
    """
    tissue = np.asarray(tissue)
    regions = np.asarray(regions)
    vector = np.asarray(vector)
    _check_inputs(tissue, regions, vector)
    n_labels = vector.size
    cfg = _perlin_config(perlin)
    if cfg is not None:
        min_px, variation = _variation(cfg, rng, tissue.shape)

    hand = tissue > 0
    condition = hand.astype(np.uint8)  # NORMAL where the hand is
    tries = np.zeros(n_labels, dtype=np.int32)
    fell_back = np.zeros(n_labels, dtype=bool)
    missing = np.zeros(n_labels, dtype=bool)
    # boxes of each region id; clipped to the hand, the regions only shrink
    boxes = ndimage.find_objects(np.where(hand, regions, 0).astype(np.int32), max_label=n_labels)
    for level, paint in ((1, LOW), (2, HIGH)):  # low first, high painted over it
        for i in np.flatnonzero(vector == level):
            sl = boxes[i]
            if sl is None:
                missing[i] = True
                continue
            region = (regions[sl] == i + 1) & hand[sl]
            if cfg is not None:
                box = (sl[0].start, sl[0].stop, sl[1].start, sl[1].stop)
                need = region_min_pixels(
                    int(np.count_nonzero(region)), min_px, cfg.max_fraction, cfg.min_fraction
                )
                region, tries[i], fell_back[i] = vary_in_box(
                    region, box, tissue.shape, rng, need, variation
                )
            condition[sl][region] = paint
    return Composed(
        condition=condition,
        labels=(vector > 0).astype(np.float32),
        vector=vector.astype(np.int8),
        tries=tries,
        fell_back=fell_back,
        missing=missing,
    )


def condition_channels(condition: np.ndarray) -> np.ndarray:
    """Tissue-convention map(s) (..., H, W) -> (..., 3, H, W) float32 channels.

    Channels: [normal = condition > 0 (the whole hand, inflamed pixels included),
    low = condition == 2, high = condition == 3], each 0.0 or 1.0. Used for both a real
    case's clinician tissue map and a composed condition.
    """
    c = np.asarray(condition)
    if c.ndim < 2:
        raise ValueError(f"condition must be at least 2D (H, W), got shape {c.shape}")
    return np.stack([c > 0, c == LOW, c == HIGH], axis=-3).astype(np.float32)
