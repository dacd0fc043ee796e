"""Segmenter inputs and outputs as numpy: square hand crops and back.

The segmenter sees each photo cropped to a square around the hand mask (the
photo border padded with white), the background set to white, resized to S x S
and scaled to [0, 1]. Predictions go back through the same box.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

WHITE = 255


@dataclass(frozen=True)
class CropBox:
    """A square box (may extend past the photo) in photo pixels: rows r0..r0+side, cols c0..c0+side."""

    r0: int
    c0: int
    side: int


def hand_box(mask: np.ndarray, margin: float = 0.06) -> CropBox:
    """Square box around the True pixels of ``mask`` with ``margin`` (fraction of the side)."""
    rr, cc = np.nonzero(mask)
    if rr.size == 0:
        h, w = mask.shape
        side = max(h, w)
        return CropBox((h - side) // 2, (w - side) // 2, side)
    r0, r1, c0, c1 = rr.min(), rr.max() + 1, cc.min(), cc.max() + 1
    side = int(np.ceil(max(r1 - r0, c1 - c0) * (1 + 2 * margin)))
    return CropBox(int((r0 + r1 - side) // 2), int((c0 + c1 - side) // 2), max(side, 2))


def _take(arr: np.ndarray, box: CropBox, fill) -> np.ndarray:
    """The box's pixels of ``arr`` (H, W[, C]), ``fill`` outside the array."""
    h, w = arr.shape[:2]
    out = np.full((box.side, box.side, *arr.shape[2:]), fill, dtype=arr.dtype)
    r0, c0 = max(box.r0, 0), max(box.c0, 0)
    r1, c1 = min(box.r0 + box.side, h), min(box.c0 + box.side, w)
    if r1 > r0 and c1 > c0:
        out[r0 - box.r0 : r1 - box.r0, c0 - box.c0 : c1 - box.c0] = arr[r0:r1, c0:c1]
    return out


def crop_input(rgb: np.ndarray, hand: np.ndarray, size: int, box: CropBox | None = None):
    """Network input of one photo.

    Args:
        rgb: (H, W, 3) uint8 photo. hand: (H, W) bool mask. size: S.

    Returns:
        ((3, S, S) float32 in [0, 1] with a white background, the CropBox used).
    """
    box = box or hand_box(hand)
    img = np.where(hand[..., None], rgb, np.uint8(WHITE)).astype(np.uint8)
    crop = Image.fromarray(_take(img, box, WHITE)).resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(crop, dtype=np.float32).transpose(2, 0, 1) / 255.0, box


def crop_labels(regions: np.ndarray, box: CropBox, size: int) -> np.ndarray:
    """(H, W) uint8 label map -> (S, S) int64 through the box (nearest neighbour)."""
    crop = Image.fromarray(_take(regions.astype(np.uint8), box, 0))
    return np.asarray(crop.resize((size, size), Image.Resampling.NEAREST)).astype(np.int64)


def uncrop_labels(pred: np.ndarray, box: CropBox, shape: tuple[int, int]) -> np.ndarray:
    """(S, S) label map predicted in the box -> (H, W) uint8 of the photo (0 outside the box)."""
    big = Image.fromarray(pred.astype(np.uint8)).resize(
        (box.side, box.side), Image.Resampling.NEAREST
    )
    big = np.asarray(big)
    h, w = shape
    out = np.zeros((h, w), np.uint8)
    r0, c0 = max(box.r0, 0), max(box.c0, 0)
    r1, c1 = min(box.r0 + box.side, h), min(box.c0 + box.side, w)
    if r1 > r0 and c1 > c0:
        out[r0:r1, c0:c1] = big[r0 - box.r0 : r1 - box.r0, c0 - box.c0 : c1 - box.c0]
    return out


def uncrop_scores(scores: np.ndarray, box: CropBox, shape: tuple[int, int]) -> np.ndarray:
    """(C, S, S) class scores in the box -> (H, W) uint8 argmax labels of the photo.

    Each class's score is resized bilinearly to the box before the argmax, so
    region edges are smooth rather than S-pixel blocks; 0 outside the box.
    """
    big = np.stack(
        [
            np.asarray(
                Image.fromarray(c.astype(np.float32)).resize(
                    (box.side, box.side), Image.Resampling.BILINEAR
                )
            )
            for c in scores
        ]
    )
    return uncrop_labels(big.argmax(0).astype(np.uint8), box, shape)
