"""From one single-hand photo to a two-hand, scintigraphy-like scene.

Steps (all numpy; ``rng`` draws the size and the small jitters):

1. **Fingers up.** The finger direction is the vector from the centroid of the
   MCP2-5 regions to the centroid of the PIP/DIP2-5 regions when the joint map
   has them; otherwise the mask's principal axis, pointing away from the side
   where the mask touches the photo border (the forearm leaves the frame there),
   or, with no border contact, towards the end that lies farther from the centroid
   (the fingers are longer than the heel of the hand). The photo is rotated so
   that direction points up.
2. **Thumb side.** From the joint map (MCP1/IP1 left or right of MCP2-5), else from
   the 11k aspect (``dorsal right`` and ``palmar left`` show the thumb on the left).
3. **Landmarks.** Top = the mask's first row (finger tips); MCP line = mean row of
   the MCP2-5 regions, else (no joint map) the median lowest row of the finger
   protrusions of the openness check; wrist = the wrist region's centroid, else the
   MCP line plus 0.95 finger lengths (the phantom's hand: wrist-MCP 0.48 L, MCP-tip
   0.51 L; this often lies below an 11k photo's edge), else the mask's last row.
4. **Size and place, like the phantom** (:mod:`jointaug.dataset.phantom`): hand
   length (wrist to finger tips) drawn from ``hand_length`` x scene size (phantom
   0.52-0.62), finger tips at ``top`` x size (phantom 0.04-0.09), shrunk if a
   hand would not fit its half (``margin`` from the side, ``gap`` between hands),
   placed at a random column within its half. The photo's forearm is cut ``forearm_keep`` hand
   lengths below the wrist, and its lowest cross-section (the widest run of its
   last row) is continued straight down to the scene's bottom edge, as the
   phantom's forearms leave the image there.
5. **Two hands.** Palmar convention (:data:`R_ON_IMAGE_LEFT`, :data:`THUMBS_TOWARD_CENTRE`):
   the patient's right hand sits on the image's left with its thumb towards the
   image centre; the left hand is the mirror image on the right. The copy that
   needs it is mirrored; joints of the left-side copy become ``R_*`` regions
   (ids 1..15) and those of the right-side copy ``L_*`` (ids 16..30).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from jointaug.natural.labelstudio import JOINT_INDEX
from jointaug.natural.openness import finger_protrusions
from jointaug.natural.regions import region_centroids

#: The palmar view of the scintigraphy: patient's R hand on the image's left ...
R_ON_IMAGE_LEFT = True
#: ... with both thumbs pointing towards the image centre.
THUMBS_TOWARD_CENTRE = True
THUMB_LEFT_ASPECTS = ("dorsal right", "palmar left")

_BASE = ("mcp2", "mcp3", "mcp4", "mcp5")
_DISTAL = ("pip2", "pip3", "pip4", "pip5", "dip2", "dip3", "dip4", "dip5")


@dataclass
class Scene:
    """A two-hand scene of ``size x size`` pixels.

    image: uint16 photo luminance (x 257) on the hands, 0 elsewhere.
    tissue: uint8, 1 = hand, 0 = background. regions: uint8, 0 or 1..30 (HAND_LABELS ids).
    mirrored: which copy is the mirror image of the photo ("L" or "R").
    """

    image: np.ndarray
    tissue: np.ndarray
    regions: np.ndarray
    mirrored: str
    rotation_deg: float
    thumb_side: str


def _mean_point(cent: dict, names) -> np.ndarray | None:
    pts = [cent[n] for n in names if n in cent]
    return np.mean(pts, axis=0) if pts else None


def finger_direction(mask: np.ndarray, regions: np.ndarray | None = None) -> np.ndarray:
    """Unit (dx, dy) in image coordinates (y down) pointing from wrist to fingers."""
    if regions is not None:
        cent = region_centroids(regions)
        base, distal = _mean_point(cent, _BASE), _mean_point(cent, _DISTAL)
        if base is not None and distal is not None and np.hypot(*(distal - base)) > 1:
            d = distal - base  # (row, col)
            return np.array([d[1], d[0]]) / np.hypot(*d)
    rr, cc = np.nonzero(mask)
    if rr.size < 3:
        return np.array([0.0, -1.0])
    pts = np.stack([cc, rr], 1).astype(np.float64)
    centre = pts.mean(0)
    _, vecs = np.linalg.eigh(np.cov((pts - centre).T))
    axis = vecs[:, -1]
    h, w = mask.shape
    border = (rr == 0) | (rr == h - 1) | (cc == 0) | (cc == w - 1)
    if border.any():
        towards_border = pts[border].mean(0) - centre
        return -axis if axis @ towards_border > 0 else axis
    proj = (pts - centre) @ axis
    return axis if proj.max() >= -proj.min() else -axis


def thumb_side(regions: np.ndarray | None, aspect: str = "") -> str:
    """'left' or 'right': where the thumb is in a fingers-up image."""
    if regions is not None:
        cent = region_centroids(regions)
        thumb, base = _mean_point(cent, ("mcp1", "ip1")), _mean_point(cent, _BASE)
        if thumb is not None and base is not None and abs(thumb[1] - base[1]) > 0.5:
            return "left" if thumb[1] < base[1] else "right"
    return "left" if aspect in THUMB_LEFT_ASPECTS or not aspect else "right"


def _rotate(arr: np.ndarray, angle_deg: float, order: int) -> np.ndarray:
    """Rotate counter-clockwise by ``angle_deg`` about the centre, growing the canvas."""
    return ndimage.rotate(arr, angle_deg, axes=(1, 0), reshape=True, order=order, mode="constant")


def upright(
    rgb: np.ndarray, mask: np.ndarray, regions: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, float]:
    """Rotate photo, mask and joint map so the fingers point up; returns them and the angle."""
    dx, dy = finger_direction(mask, regions)
    # a counter-clockwise turn by a (as displayed, y down) maps (dx, dy) to
    # (dx cos a + dy sin a, -dx sin a + dy cos a); that is (0, -1) for a = atan2(dx, -dy)
    angle = float(np.degrees(np.arctan2(dx, -dy)))
    if abs(angle) < 0.5:
        return rgb, mask, regions, 0.0
    rgb_r = np.stack([_rotate(rgb[..., k], angle, 1) for k in range(3)], -1)
    mask_r = _rotate(mask.astype(np.uint8), angle, 0) > 0
    reg_r = None if regions is None else _rotate(regions, angle, 0)
    return rgb_r, mask_r, reg_r, angle


def mcp_row_from_silhouette(mask: np.ndarray) -> float | None:
    """Row of the finger bases of a fingers-up hand from its silhouette alone.

    The finger protrusions of the openness check (:mod:`jointaug.natural.openness`)
    end where the fingers meet the palm; the median of their lowest rows is taken
    (the thumb, joining lower, is one vote of five).
    """
    lab, n = finger_protrusions(mask)
    if n < 2:
        return None
    bottoms = ndimage.labeled_comprehension(
        np.arange(lab.size).reshape(lab.shape) // lab.shape[1],
        lab,
        np.arange(1, n + 1),
        np.max,
        float,
        np.nan,
    )
    return float(np.median(bottoms))


def landmarks(mask: np.ndarray, regions: np.ndarray | None) -> tuple[float, float, float]:
    """(top row, wrist row, wrist column) of a fingers-up hand, pixels.

    The wrist row may lie below the mask (11k photos often stop above the wrist).
    """
    rows = np.nonzero(mask.any(1))[0]
    top, bottom = float(rows[0]), float(rows[-1])
    cent = region_centroids(regions) if regions is not None else {}
    base = _mean_point(cent, _BASE)
    mcp_row = base[0] if base is not None else mcp_row_from_silhouette(mask)
    wrist_row = None
    if "wrist" in cent and cent["wrist"][0] > top:
        wrist_row = cent["wrist"][0]
    elif mcp_row is not None and mcp_row > top:
        wrist_row = mcp_row + 0.95 * (mcp_row - top)
    if wrist_row is None or wrist_row - top < 4:
        wrist_row = bottom
    r = int(np.clip(round(wrist_row), rows[0], rows[-1]))
    while r > rows[0] and not mask[r].any():
        r -= 1
    if "wrist" in cent:
        wrist_col = float(cent["wrist"][1])
    else:
        lo, hi = _widest_run(mask[r])
        wrist_col = (lo + hi - 1) / 2.0
    return top, float(wrist_row), wrist_col


def _widest_run(row: np.ndarray) -> tuple[int, int]:
    """(start, stop) of the longest run of True in a 1-D bool array ((0, 0) if none)."""
    padded = np.concatenate([[False], row, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    if edges.size == 0:
        return 0, 0
    starts, stops = edges[::2], edges[1::2]
    k = int(np.argmax(stops - starts))
    return int(starts[k]), int(stops[k])


def _place(
    layer: np.ndarray, scale: float, src_anchor, out_anchor, out_size: int, mirror: bool, order: int
) -> np.ndarray:
    """Scale ``layer`` by ``scale`` (mirrored left-right if asked), mapping ``src_anchor``
    (row, col) onto ``out_anchor`` (row, col) of an ``out_size`` square."""
    sign = -1.0 if mirror else 1.0
    matrix = np.array([1.0 / scale, sign / scale])
    offset = np.array(src_anchor, float) - matrix * np.array(out_anchor, float)
    return ndimage.affine_transform(
        layer,
        matrix,
        offset=offset,
        output_shape=(out_size, out_size),
        order=order,
        mode="constant",
        cval=0,
    )


def trim_bottom(mask: np.ndarray, from_row: float, min_fraction: float = 0.7) -> np.ndarray:
    """Cut a fingers-up mask below its last full-width row.

    Rows from ``from_row`` (e.g. the MCP line) down are measured by their widest
    run; rows below the last one at least ``min_fraction`` of the median width go
    (a tilted photo edge or a thin sleeve gap leaves a tapering tail there), so the
    cross-section continued by :func:`extend_down` is a full one.
    """
    rows = np.nonzero(mask.any(1))[0]
    start = int(np.clip(np.ceil(from_row), rows[0], rows[-1]))
    widths = np.array(
        [np.subtract(*_widest_run(mask[r])[::-1]) for r in range(start, rows[-1] + 1)]
    )
    if widths.size == 0:
        return mask
    full = np.flatnonzero(widths >= min_fraction * np.median(widths))
    last = start + int(full[-1])
    out = mask.copy()
    out[last + 1 :] = False
    return out


def extend_down(mask: np.ndarray, *layers: np.ndarray, back: int = 2) -> None:
    """Continue the hand's lowest cross-section straight down to the bottom edge, in place.

    The widest run of the row ``back`` rows above the mask's last row (so the
    interpolated edge of the cut does not stripe it) is repeated in every row
    below; other runs of that row (a thumb tip crossing it) are not. Layers get
    the same row's values over the same columns.
    """
    rows = np.nonzero(mask.any(1))[0]
    if rows.size == 0 or rows[-1] == mask.shape[0] - 1:
        return
    src = max(rows[0], rows[-1] - back)
    lo, hi = _widest_run(mask[src])
    mask[src + 1 :] = False
    mask[src + 1 :, lo:hi] = True
    for layer in layers:
        layer[src + 1 :] = 0
        layer[src + 1 :, lo:hi] = layer[src, lo:hi]


@dataclass(frozen=True)
class Layout:
    """Where and how large the two hands of a scene are.

    hand_length: range of the wrist-to-finger-tip length, fraction of the scene side.
    top: range of the finger tips' row, fraction of the side.
    forearm_keep: forearm kept below the wrist, in hand lengths.
    margin: least room between a hand and the image side, fraction of the side.
    gap: least room between the two hands, fraction of the side.
    """

    hand_length: tuple[float, float] = (0.52, 0.62)
    top: tuple[float, float] = (0.04, 0.09)
    forearm_keep: float = 0.2
    margin: float = 0.01
    gap: float = 0.02


def _cut_forearm(
    mask_u: np.ndarray, top_row: float, wrist_row: float, forearm_keep: float
) -> np.ndarray:
    """A copy of the upright mask cut ``forearm_keep`` hand lengths below the wrist, then
    trimmed to its last full-width row (:func:`trim_bottom`)."""
    length_px = wrist_row - top_row
    mask_u = mask_u.copy()
    mask_u[int(np.ceil(wrist_row + forearm_keep * length_px)) + 1 :] = False
    return trim_bottom(mask_u, top_row + 0.5 * length_px)


def _left_copy_column(
    extent: tuple[float, float], scale: float, size: int, layout: Layout, rng: np.random.Generator
) -> float:
    """A random wrist column for the image-left copy, which spans ``extent`` = (left,
    right) photo pixels around its wrist column: kept in [margin, centre - gap/2]."""
    ext_left, ext_right = extent
    lo = layout.margin * size + ext_left * scale
    hi = (0.5 - layout.gap / 2) * size - ext_right * scale
    return rng.uniform(lo, hi) if hi > lo else (lo + hi) / 2


def _paste_copy(
    scene: Scene,
    hand: tuple[np.ndarray, np.ndarray, np.ndarray | None],
    anchors: tuple[tuple[float, float], tuple[float, float]],
    s: float,
    mirror: bool,
    region_offset: int,
) -> None:
    """Paste one copy of ``hand`` = (mask, luminance, joint map or None) into ``scene``
    (float luminance, not yet uint16) where no hand is yet, in place: scaled by ``s``,
    mirrored if asked, ``anchors`` = (photo (row, col), scene (row, col)), the forearm
    continued down; joint ids shifted by ``region_offset``."""
    mask_u, lum, reg = hand
    anchor_src, anchor_out = anchors
    size = scene.tissue.shape[0]
    m = _place(mask_u.astype(np.uint8), s, anchor_src, anchor_out, size, mirror, 0) > 0
    lum_p = _place(lum, s, anchor_src, anchor_out, size, mirror, 1)
    extend_down(m, lum_p)
    free = m & (scene.tissue == 0)
    scene.tissue[free] = 1
    scene.image[free] = lum_p[free]
    if reg is not None:
        reg_p = _place(reg, s, anchor_src, anchor_out, size, mirror, 0)
        joint = free & (reg_p > 0)
        scene.regions[joint] = reg_p[joint] + region_offset


def make_scene(
    rgb: np.ndarray,
    mask: np.ndarray,
    regions: np.ndarray | None,
    size: int,
    rng: np.random.Generator,
    aspect: str = "",
    layout: Layout = Layout(),
) -> Scene:
    """Build the two-hand scene of one photo.

    Args:
        rgb: (H, W, 3) uint8 photo. mask: (H, W) bool hand. regions: (H, W) uint8
            joint map 0..15 (HAND_JOINTS order) or None.
        size: scene side in pixels.
        aspect: the 11k ``aspectOfHand`` (used when the joint map cannot tell the thumb side).
        layout: hand size and placement ranges (:class:`Layout`).
    """
    if not mask.any():
        raise ValueError("empty hand mask: nothing to lay out")
    rgb_u, mask_u, reg_u, angle = upright(rgb, mask, regions)
    side = thumb_side(reg_u, aspect)
    top_row, wrist_row, wrist_col = landmarks(mask_u, reg_u)
    mask_u = _cut_forearm(mask_u, top_row, wrist_row, layout.forearm_keep)
    cc = np.nonzero(mask_u.any(0))[0]
    # horizontal extent relative to the wrist column, in photo pixels
    ext_lo, ext_hi = wrist_col - cc[0] + 0.5, cc[-1] - wrist_col + 0.5
    half = 0.5 * size - layout.gap * size / 2 - layout.margin * size  # one hand's room
    scale = rng.uniform(*layout.hand_length) * size / (wrist_row - top_row)
    scale = min(scale, half / (ext_lo + ext_hi))
    lum = rgb_u.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    lum = np.where(mask_u, lum, 0.0).astype(np.float32)
    reg = np.where(mask_u, reg_u, 0).astype(np.uint8) if reg_u is not None else None
    # the image-left hand must have its thumb on its right (towards the centre)
    want_left_copy_thumb = "right" if THUMBS_TOWARD_CENTRE else "left"
    mirror_left_copy = side != want_left_copy_thumb
    left_label, right_label = ("R", "L") if R_ON_IMAGE_LEFT else ("L", "R")
    scene = Scene(
        image=np.zeros((size, size), np.float32),
        tissue=np.zeros((size, size), np.uint8),
        regions=np.zeros((size, size), np.uint8),
        mirrored=left_label if mirror_left_copy else right_label,
        rotation_deg=angle,
        thumb_side=side,
    )
    top_out = rng.uniform(*layout.top) * size
    extent = (ext_hi, ext_lo) if mirror_left_copy else (ext_lo, ext_hi)
    x_left = _left_copy_column(extent, scale, size, layout, rng)
    for wx, mirror, prefix in (
        (x_left, mirror_left_copy, left_label),
        (size - 1 - x_left, not mirror_left_copy, right_label),
    ):
        s = scale * rng.uniform(0.98, 1.0)
        anchor_out = (top_out + rng.uniform(-0.01, 0.01) * size, wx)
        offset = 0 if prefix == "R" else len(JOINT_INDEX)
        _paste_copy(
            scene, (mask_u, lum, reg), ((top_row, wrist_col), anchor_out), s, mirror, offset
        )
    scene.image = np.clip(np.rint(scene.image * 257.0), 0, 65535).astype(np.uint16)
    return scene
