"""Is the hand open? Count separated fingers from the silhouette.

The scintigraphy hands lie flat with the fingers apart, so the paper keeps only
11k photos of open hands. The rule used here (rotation-invariant, needs only the
bool hand mask):

1. ``R`` = the palm's inscribed radius = the maximum of the mask's Euclidean
   distance transform (pixels).
2. The *palm body* is the morphological opening of the mask with a disc of radius
   ``opening_fraction * R`` (default 0.5 R). A single finger (half-width about
   0.2 R) or two touching fingers (about 0.45 R) vanish in the opening; four
   fingers pressed together (about 0.85 R) or a fist survive it as palm.
   The mask is edge-padded first, so a forearm cut by the photo border stays palm.
3. Pixels of ``mask & ~palm`` more than ``base_fraction * R`` (default 0.25 R) from
   the palm body are grouped into connected components (the web between finger
   bases, nearer the palm, would otherwise join neighbouring fingers); each that
   reaches at least ``min_length_fraction * R`` (default 0.7 R) away from the palm
   body is a *finger protrusion* (slivers along the palm edge are shorter).
4. The hand is open when it has at least ``min_fingers`` protrusions (default 4:
   the thumb and three separated fingers or finger pairs; 5 demands every finger
   apart).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def disk_opening(mask: np.ndarray, radius_px: float) -> np.ndarray:
    """Morphological opening with a Euclidean disc, via two distance transforms.

    Erosion keeps pixels farther than ``radius_px`` from the background; dilation
    adds pixels within ``radius_px`` of the eroded set. Pixels outside the array
    count as background.
    """
    eroded = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1] > radius_px
    if not eroded.any():
        return eroded
    return ndimage.distance_transform_edt(~eroded) <= radius_px


def palm_radius(mask: np.ndarray) -> float:
    """Inscribed radius of the hand's widest part (max of the distance transform), pixels."""
    if not mask.any():
        return 0.0
    return float(ndimage.distance_transform_edt(np.pad(mask, 1)).max())


def finger_protrusions(
    mask: np.ndarray,
    opening_fraction: float = 0.5,
    min_length_fraction: float = 0.7,
    base_fraction: float = 0.25,
) -> tuple[np.ndarray, int]:
    """Label the finger protrusions of a hand mask.

    Args:
        mask: (H, W) bool hand silhouette.
        opening_fraction: disc radius of the palm opening, as a fraction of R.
        min_length_fraction: shortest protrusion counted, as a fraction of R.
        base_fraction: protrusion pixels closer than this (fraction of R) to the palm
            body are ignored, so fingers are not joined through the web between them.

    Returns:
        ((H, W) int32 label image of the counted protrusions, 1..n; their number n).
    """
    mask = np.asarray(mask, dtype=bool)
    radius = palm_radius(mask)
    if radius < 2:
        return np.zeros(mask.shape, np.int32), 0
    r = max(1.0, opening_fraction * radius)
    pad = int(np.ceil(r)) + 1
    palm = disk_opening(np.pad(mask, pad, mode="edge"), r)[pad:-pad, pad:-pad] & mask
    out = np.zeros(mask.shape, np.int32)
    if not palm.any():
        return out, 0
    dist_from_palm = ndimage.distance_transform_edt(~palm)
    # the web between finger bases hugs the palm body: leave it out so that
    # neighbouring fingers are not joined through it
    protrusion = mask & ~palm & (dist_from_palm > base_fraction * radius)
    lab, n = ndimage.label(protrusion, structure=np.ones((3, 3), bool))
    if n == 0:
        return out, 0
    reach = ndimage.maximum(dist_from_palm, lab, index=np.arange(1, n + 1))
    keep = 0
    for i, length in enumerate(np.atleast_1d(reach), start=1):
        if length >= min_length_fraction * radius:
            keep += 1
            out[lab == i] = keep
    return out, keep


def count_fingers(mask: np.ndarray, **kwargs) -> int:
    """Number of separated finger protrusions (see the module docstring)."""
    return finger_protrusions(mask, **kwargs)[1]


def is_open_hand(mask: np.ndarray, min_fingers: int = 4, **kwargs) -> bool:
    """True when the silhouette shows at least ``min_fingers`` separated fingers."""
    return count_fingers(mask, **kwargs) >= min_fingers
