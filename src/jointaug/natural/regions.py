"""Joint region maps of one hand photo (values 0 = none, 1..15 = HAND_JOINTS).

Keypoints become discs whose radius scales with the hand: a fraction of the
palm's inscribed radius ``R`` (:func:`jointaug.natural.openness.palm_radius`), larger
for the wrist, smaller for PIP and smallest for DIP joints. Regions are painted
large to small (wrist, MCP, IP/PIP, DIP), so a small joint is never hidden under a
neighbour, and are cut to the hand mask.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from jointaug.dataset.format import HAND_JOINTS
from jointaug.natural.labelstudio import JOINT_INDEX, PhotoLabels
from jointaug.natural.openness import palm_radius

#: Disc radius of a keypoint, as a fraction of the palm's inscribed radius R.
JOINT_RADIUS_FRACTION = {
    "wrist": 0.60,
    "mcp1": 0.28,
    "mcp2": 0.30,
    "mcp3": 0.30,
    "mcp4": 0.30,
    "mcp5": 0.27,
    "ip1": 0.24,
    "pip2": 0.24,
    "pip3": 0.24,
    "pip4": 0.24,
    "pip5": 0.21,
    "dip2": 0.19,
    "dip3": 0.19,
    "dip4": 0.19,
    "dip5": 0.17,
}

#: Paint order: large regions first.
PAINT_ORDER = (
    ["wrist"]
    + [j for j in HAND_JOINTS if j.startswith("mcp")]
    + [j for j in HAND_JOINTS if j.startswith(("ip", "pip"))]
    + [j for j in HAND_JOINTS if j.startswith("dip")]
)


def resize_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a bool mask to ``shape`` (rows, cols)."""
    mask = np.asarray(mask, dtype=bool)
    if mask.shape == tuple(shape):
        return mask
    im = Image.fromarray(mask.astype(np.uint8) * 255)
    return np.asarray(im.resize((shape[1], shape[0]), Image.Resampling.NEAREST)) > 127


def disc(shape: tuple[int, int], centre_rc: tuple[float, float], radius_px: float) -> np.ndarray:
    """(H, W) bool disc; pixel centres at integer coordinates."""
    rr, cc = np.ogrid[: shape[0], : shape[1]]
    return (rr - centre_rc[0]) ** 2 + (cc - centre_rc[1]) ** 2 <= radius_px**2


def regions_from_labels(
    labels: PhotoLabels,
    shape: tuple[int, int],
    hand: np.ndarray | None = None,
    radius_scale: float = 1.0,
) -> np.ndarray:
    """Rasterise one photo's joint labels at ``shape``.

    Args:
        labels: keypoints (fractions of width/height) and/or masks of the joints.
        shape: (H, W) of the photo as used (may differ from the labelling size).
        hand: (H, W) bool hand mask; regions are cut to it, and it sets the disc
            size. Without it the disc size comes from the keypoint spread.
        radius_scale: multiplies every disc radius.

    Returns:
        (H, W) uint8, 0 none, i = the i-th joint of HAND_JOINTS.
    """
    h, w = shape
    if hand is not None and hand.shape != (h, w):
        raise ValueError(f"hand mask {hand.shape} does not match shape {shape}")
    if hand is not None and hand.any():
        r_palm = palm_radius(hand)
    elif len(labels.keypoints) >= 2:
        pts = np.array([(y * h, x * w) for x, y in labels.keypoints.values()])
        r_palm = 0.25 * float(np.ptp(pts, axis=0).max())
    else:
        r_palm = 0.1 * min(h, w)
    out = np.zeros((h, w), dtype=np.uint8)
    for joint in PAINT_ORDER:
        region = None
        if joint in labels.masks:
            region = resize_mask(labels.masks[joint], (h, w))
        elif joint in labels.keypoints:
            x, y = labels.keypoints[joint]
            radius = JOINT_RADIUS_FRACTION[joint] * r_palm * radius_scale
            region = disc((h, w), (y * h - 0.5, x * w - 0.5), max(radius, 1.0))
        if region is not None:
            out[region] = JOINT_INDEX[joint]
    if hand is not None:
        out[~hand] = 0
    return out


def region_centroids(regions: np.ndarray) -> dict[str, tuple[float, float]]:
    """(row, col) centroid of every non-empty joint region of a 0..15 map."""
    out = {}
    for joint, idx in JOINT_INDEX.items():
        rr, cc = np.nonzero(regions == idx)
        if rr.size:
            out[joint] = (float(rr.mean()), float(cc.mean()))
    return out
