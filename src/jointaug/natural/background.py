"""The paper's background heuristic for hand photos on white/grey paper.

11k Hands photos show one hand on a white or light grey sheet. A pixel whose
colour is (nearly) neutral — the largest difference between its R, G and B values
is at most 10 % of the full range — is paper (or its shadow, or a black sleeve),
anything coloured is hand. Background pockets the hand encloses (a gap between
touching fingers, a pale highlight on the palm) become hand, and only the largest
connected hand component stays (stray coloured specks and objects go).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: 8-connectivity structuring element for connected components.
_EIGHT = np.ones((3, 3), dtype=bool)


def _as_rgb_uint8(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise ValueError(f"expected an RGB image of shape (H, W, 3), got {rgb.shape}")
    rgb = rgb[..., :3]
    if rgb.dtype == np.uint8:
        return rgb
    if rgb.dtype.kind == "f" and rgb.size and float(np.nanmax(rgb)) <= 1.0:
        rgb = rgb * 255.0
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def neutral_pixels(rgb: np.ndarray, max_chroma_fraction: float = 0.10) -> np.ndarray:
    """Pixels whose max(R,G,B) - min(R,G,B) is at most ``max_chroma_fraction`` of 255.

    Args:
        rgb: (H, W, 3) image, uint8 (0..255) or float in [0, 1].
        max_chroma_fraction: the paper's 10 %.

    Returns:
        (H, W) bool, True where the pixel is neutral (paper, shadow, black cloth).
    """
    rgb = _as_rgb_uint8(rgb).astype(np.int16)
    chroma = rgb.max(axis=2) - rgb.min(axis=2)
    return chroma <= max_chroma_fraction * 255.0


def largest_component(mask: np.ndarray) -> np.ndarray:
    """Keep the largest 8-connected True component of a (H, W) bool mask."""
    lab, n = ndimage.label(mask, structure=_EIGHT)
    if n <= 1:
        return lab > 0
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    return lab == int(np.argmax(sizes))


def fill_enclosed_background(foreground: np.ndarray) -> np.ndarray:
    """Set background regions that do not touch the image border to foreground.

    Background connectivity is 4-connected (the complement of 8-connected
    foreground), so a gap the hand closes diagonally counts as enclosed.
    """
    bg = ~foreground
    lab, n = ndimage.label(bg)  # 4-connected
    if n == 0:
        return foreground.copy()
    border = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    touching = np.zeros(n + 1, dtype=bool)
    touching[border] = True
    touching[0] = False
    return ~touching[lab]


def hand_mask(rgb: np.ndarray, max_chroma_fraction: float = 0.10) -> np.ndarray:
    """Hand silhouette of a photo on white/grey paper (the paper's heuristic).

    Steps: neutral pixels (max-min of RGB <= 10 % of 255) are background; background
    regions not connected to the image border become hand; the largest
    8-connected hand component is kept.

    Args:
        rgb: (H, W, 3) photo, uint8 or float in [0, 1].
        max_chroma_fraction: neutral threshold as a fraction of 255.

    Returns:
        (H, W) bool mask, True on the hand. All False if nothing is coloured.
    """
    fg = ~neutral_pixels(rgb, max_chroma_fraction)
    fg = fill_enclosed_background(fg)
    if not fg.any():
        return fg
    return largest_component(fg)
