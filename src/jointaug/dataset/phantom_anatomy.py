"""Hand geometry of the built-in phantom: joints, soft-tissue thickness, region maps.

A hand is described in its own *local* frame, in units of the hand length ``L``
(wrist centre to the tip of the middle finger): ``u`` points across the hand towards
the thumb, ``v`` along the hand towards the fingers, the wrist centre is ``(0, 0)``.
:class:`HandParams` places one hand in the image (pixels: ``x`` = column, ``y`` = row,
fingers up) and :func:`hand_layout` turns it into joint positions, bone capsules and the
palm/forearm outline. Rendering is numpy in, numpy out:

- :func:`soft_tissue` -> ``(H, W)`` float thickness (0 outside, ~1 in a finger's middle),
- :func:`region_map`  -> ``(H, W)`` uint8, 0 background, ``i`` the ``i``-th joint region.

Image convention (the palmar view): the patient's right hand on the image's left, the
left hand on the right, both thumbs towards the middle. The dorsal view is its mirror.
An oblique view squeezes the hand across (``squeeze`` < 1, the hand turned on its side)
and shears it, so that fingers and joints overlap.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage
from skimage.draw import polygon2mask

from jointaug.dataset.format import HAND_JOINTS

N_JOINTS = len(HAND_JOINTS)  # 15 per hand, order of HAND_JOINTS
WRIST = 0

# Digits: thumb, index, middle, ring, little. Base point (u, v), segment lengths (L),
# base angle (deg from the hand axis, positive towards the thumb), capsule radii (L).
_THUMB_BASE = (0.14, 0.08)
_THUMB_LENGTHS = (0.20, 0.15, 0.12)  # metacarpal, proximal, distal phalanx
_THUMB_BEND_DEG = (0.0, -12.0, -20.0)  # each segment's angle relative to the thumb angle
_THUMB_RADII = (0.066, 0.052, 0.047)
_MCP = ((0.13, 0.46), (0.04, 0.48), (-0.05, 0.46), (-0.135, 0.41))
_FINGER_LENGTHS = ((0.22, 0.13, 0.10), (0.25, 0.15, 0.11), (0.23, 0.14, 0.10), (0.17, 0.10, 0.09))
_FINGER_ANGLE_DEG = (7.0, 0.0, -7.0, -15.0)  # times the spread factor
_FINGER_RADIUS = (0.045, 0.047, 0.043, 0.038)

# Palm and forearm outline (u, v), ulnar side first, going round over the knuckles.
_OUTLINE = (
    (-0.2, -1.2),
    (-0.17, -0.3),
    (-0.15, -0.02),
    (-0.175, 0.09),
    (-0.2, 0.22),
    (-0.18, 0.40),
    (-0.14, 0.45),
    (-0.05, 0.50),
    (0.04, 0.52),
    (0.13, 0.50),
    (0.175, 0.44),
    (0.17, 0.33),
    (0.185, 0.15),
    (0.15, 0.03),
    (0.14, -0.05),
    (0.17, -0.3),
    (0.2, -1.2),
)
_PALM_EDGE = 0.07  # soft edge of the palm/forearm thickness profile, L

# Layperson joint regions: semi-axes (along the bone, across) in L, before digit scaling.
_WRIST_REGION_CENTRE = (0.0, 0.06)
_WRIST_REGION_AXES = (0.11, 0.21)
_REGION_AXES = {
    "mcp1": (0.065, 0.062),
    "mcp": (0.07, 0.055),
    "ip1": (0.055, 0.062),
    "pip": (0.06, 0.062),
    "dip": (0.045, 0.056),
}


@dataclass(frozen=True)
class HandParams:
    """One hand's placement and shape. Lengths in pixels, angles in degrees.

    ``mirror``: +1 if the thumb points to increasing columns (right hand in the palmar
    view), -1 otherwise. ``rotation_deg`` tilts the fingers towards the thumb.
    """

    length_px: float
    wrist_x: float
    wrist_y: float
    mirror: int
    rotation_deg: float = 0.0
    spread: float = 1.0
    thumb_deg: float = 45.0
    width: float = 1.0
    digit_scale: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0)

    def scaled(self, factor: float) -> HandParams:
        """The same hand in an image ``factor`` times larger."""
        return HandParams(
            self.length_px * factor,
            self.wrist_x * factor,
            self.wrist_y * factor,
            self.mirror,
            self.rotation_deg,
            self.spread,
            self.thumb_deg,
            self.width,
            self.digit_scale,
        )


@dataclass
class HandLayout:
    """One hand in image pixels.

    ``joints``: (15, 2) centre (x, y) of each joint region, order of ``HAND_JOINTS``;
    ``directions``: (15, 2) unit vector along the bone at each joint;
    ``axes``: (15, 2) region semi-axes (along, across) in px;
    ``capsules``: per digit (5), a list of ``(p0, p1, radius_px)`` bone capsules;
    ``outline``: (k, 2) palm + forearm polygon (x, y); ``edge_px``: its soft edge.
    """

    joints: np.ndarray
    directions: np.ndarray
    axes: np.ndarray
    capsules: list[list[tuple[np.ndarray, np.ndarray, float]]]
    outline: np.ndarray
    edge_px: float


def _unit(deg: float) -> np.ndarray:
    r = np.deg2rad(deg)
    return np.array([np.sin(r), np.cos(r)])


class _Frame:
    """The map from a hand's local frame (units of L) to image pixels: squeeze, shear,
    rotation, mirror, then the wrist as origin."""

    def __init__(self, hp: HandParams, squeeze: float, shear: float) -> None:
        self.L = hp.length_px
        rot = np.deg2rad(hp.rotation_deg)
        self.c, self.s = np.cos(rot), np.sin(rot)
        # local (u, v) -> squeezed (u, v)
        self.lin = np.array([[squeeze * hp.width, shear], [0.0, 1.0]])
        self.mirror = hp.mirror
        self.origin = np.array([hp.wrist_x, hp.wrist_y])

    def vec(self, uv: np.ndarray) -> np.ndarray:
        """Local displacement -> image displacement."""
        u, v = self.lin @ np.asarray(uv, dtype=float) * self.L
        ur, vr = u * self.c + v * self.s, -u * self.s + v * self.c
        return np.array([self.mirror * ur, -vr])

    def pt(self, uv) -> np.ndarray:
        """Local point -> image point."""
        return self.origin + self.vec(uv)

    def direction(self, uv: np.ndarray) -> np.ndarray:
        """Local displacement -> unit image direction."""
        d = self.vec(uv)
        return d / max(float(np.linalg.norm(d)), 1e-9)


def _digit_chains(hp: HandParams) -> tuple[list[list[np.ndarray]], list[tuple[float, ...]]]:
    """Joint points of each digit (thumb first) in local coordinates, base to tip, and
    the capsule radii (L) of its three segments."""
    chains, radii = [], []
    p = np.array(_THUMB_BASE, dtype=float)
    chain = [p]
    for length, bend in zip(_THUMB_LENGTHS, _THUMB_BEND_DEG, strict=True):
        p = p + length * hp.digit_scale[0] * _unit(hp.thumb_deg + bend)
        chain.append(p)
    chains.append(chain)
    radii.append(_THUMB_RADII)
    for i in range(4):
        p = np.array(_MCP[i], dtype=float)
        d = _unit(_FINGER_ANGLE_DEG[i] * hp.spread)
        chain = [p]
        for length in _FINGER_LENGTHS[i]:
            p = p + length * hp.digit_scale[i + 1] * d
            chain.append(p)
        chains.append(chain)
        r = _FINGER_RADIUS[i]
        radii.append((r, 0.95 * r, 0.9 * r))
    return chains, radii


def _joint_regions(
    frame: _Frame, hp: HandParams, chains: list[list[np.ndarray]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(joints, directions, axes), each (15, 2) in HAND_JOINTS order, in image pixels."""
    L = frame.L
    joints = np.zeros((N_JOINTS, 2))
    dirs = np.zeros((N_JOINTS, 2))
    axes = np.zeros((N_JOINTS, 2))
    joints[WRIST] = frame.pt(_WRIST_REGION_CENTRE)
    dirs[WRIST] = frame.direction(np.array([0.0, 1.0]))
    axes[WRIST] = np.array(_WRIST_REGION_AXES) * L * np.array([1.0, hp.width])

    def put(name: str, chain: list[np.ndarray], k: int, key: str, scale: float) -> None:
        j = HAND_JOINTS.index(name)
        joints[j] = frame.pt(chain[k])
        dirs[j] = frame.direction(chain[k + 1] - chain[k - 1] if k > 0 else chain[k + 1] - chain[k])
        axes[j] = np.array(_REGION_AXES[key]) * L * scale

    put("mcp1", chains[0], 1, "mcp1", hp.digit_scale[0])
    put("ip1", chains[0], 2, "ip1", hp.digit_scale[0])
    for i in range(4):
        rscale = _FINGER_RADIUS[i] / 0.045
        put(f"mcp{i + 2}", chains[i + 1], 0, "mcp", 1.0)
        put(f"pip{i + 2}", chains[i + 1], 1, "pip", rscale)
        put(f"dip{i + 2}", chains[i + 1], 2, "dip", rscale)
    return joints, dirs, axes


def hand_layout(hp: HandParams, squeeze: float = 1.0, shear: float = 0.0) -> HandLayout:
    """Place one hand in the image. ``squeeze`` < 1 and ``shear`` make an oblique view."""
    frame = _Frame(hp, squeeze, shear)
    chains, radii = _digit_chains(hp)
    capsules = [
        [(frame.pt(ch[k]), frame.pt(ch[k + 1]), rad[k] * frame.L) for k in range(3)]
        for ch, rad in zip(chains, radii, strict=True)
    ]
    joints, dirs, axes = _joint_regions(frame, hp, chains)
    outline = np.array([frame.pt(q) for q in _OUTLINE])
    return HandLayout(joints, dirs, axes, capsules, outline, _PALM_EDGE * frame.L)


def hand_extent(lay: HandLayout) -> tuple[float, float, float]:
    """(x_min, x_max, y_min) of a hand's outline and bones in pixels (y_min: fingertips)."""
    pts = [lay.outline]
    for caps in lay.capsules:
        for p0, p1, r in caps:
            pts += [np.stack([p0, p1]) - r, np.stack([p0, p1]) + r]
    allpts = np.concatenate(pts)
    return float(allpts[:, 0].min()), float(allpts[:, 0].max()), float(allpts[:, 1].min())


def fit_hand(hp: HandParams, size: int, margin_px: float, side: int) -> HandParams:
    """Move (and if need be shrink) a hand so it lies ``margin_px`` inside its half of the
    image: ``side`` -1 for the left half, +1 for the right half; fingertips in view."""
    lo, hi = (
        (margin_px, size / 2 - margin_px) if side < 0 else (size / 2 + margin_px, size - margin_px)
    )
    x0, x1, y0 = hand_extent(hand_layout(hp))
    if x1 - x0 > hi - lo:
        f = (hi - lo) / (x1 - x0)
        hp = replace(hp, length_px=hp.length_px * f)
        x0, x1, y0 = hand_extent(hand_layout(hp))
    shift = max(lo - x0, 0.0) - max(x1 - hi, 0.0)
    down = max(margin_px - y0, 0.0)
    return replace(hp, wrist_x=hp.wrist_x + shift, wrist_y=hp.wrist_y + down)


def ellipse_radius(
    x: np.ndarray, y: np.ndarray, dx: float, dy: float, a: float, b: float
) -> np.ndarray:
    """Normalised radius of offsets (x, y) in an ellipse with semi-axes a (along the unit
    direction (dx, dy)) and b (across it): 1 on the ellipse's edge."""
    along = x * dx + y * dy
    across = -x * dy + y * dx
    return np.sqrt((along / a) ** 2 + (across / b) ** 2)


def _window(cx: float, cy: float, radius: float, shape: tuple[int, int]):
    """Slices and coordinate grids of the box ``radius`` around ``(cx, cy)``, clipped."""
    h, w = shape
    y0, y1 = max(int(np.floor(cy - radius)), 0), min(int(np.ceil(cy + radius)) + 1, h)
    x0, x1 = max(int(np.floor(cx - radius)), 0), min(int(np.ceil(cx + radius)) + 1, w)
    if y0 >= y1 or x0 >= x1:
        return None
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    return (slice(y0, y1), slice(x0, x1)), xx, yy


def capsule_thickness(
    shape: tuple[int, int], p0: np.ndarray, p1: np.ndarray, radius_px: float
) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """Path length through a cylinder with hemispherical caps, as seen from above.

    Returns ``(window, values)`` with values in [0, 1] (1 on the axis), or None if off-image.
    """
    lo, hi = np.minimum(p0, p1) - radius_px, np.maximum(p0, p1) + radius_px
    centre, half = (lo + hi) / 2, float(np.max(hi - lo) / 2)
    win = _window(centre[0], centre[1], half, shape)
    if win is None:
        return None
    sl, xx, yy = win
    d = p1 - p0
    t = ((xx - p0[0]) * d[0] + (yy - p0[1]) * d[1]) / max(float(d @ d), 1e-9)
    t = np.clip(t, 0.0, 1.0)
    dist2 = (xx - p0[0] - t * d[0]) ** 2 + (yy - p0[1] - t * d[1]) ** 2
    return sl, np.sqrt(np.clip(1.0 - dist2 / radius_px**2, 0.0, None))


def soft_tissue(layouts: list[HandLayout], shape: tuple[int, int]) -> np.ndarray:
    """(H, W) float32 soft-tissue thickness of the hands (0 outside, ~1 in a finger).

    Within a digit the thickness is the maximum over its bones; digits add up, so
    fingers that overlap in an oblique view are brighter where they cross.
    """
    out = np.zeros(shape, np.float32)
    for lay in layouts:
        body = polygon2mask(shape, lay.outline[:, ::-1]).astype(np.float32)
        if body.any():
            dist = ndimage.distance_transform_edt(body)
            body = np.sqrt(np.clip(dist / lay.edge_px, 0.0, 1.0)).astype(np.float32) * 1.15
        digits = np.zeros(shape, np.float32)
        for caps in lay.capsules:
            one = np.zeros(shape, np.float32)
            for p0, p1, r in caps:
                got = capsule_thickness(shape, p0, p1, r)
                if got is not None:
                    sl, val = got
                    np.maximum(one[sl], val, out=one[sl])
            digits += one
        out += np.maximum(body, digits)
    return out


def region_map(
    layouts: list[HandLayout], tissue: np.ndarray, first_ids: list[int], margin_px: float = 2.0
) -> np.ndarray:
    """(H, W) uint8 layperson joint regions: one ellipse per joint, clipped to the hand.

    ``first_ids[h]`` is the region id of hand ``h``'s wrist (its 15 joints get
    ``first_ids[h] .. first_ids[h] + 14``). Where ellipses overlap, the pixel goes to
    the joint whose ellipse it is deepest in. The hand is ``tissue`` (bool) dilated by
    ``margin_px``. Every joint inside the image gets at least its centre pixel.
    """
    shape = tissue.shape
    best = np.full(shape, 1.0, np.float32)  # normalised elliptical distance; <= 1 inside
    out = np.zeros(shape, np.uint8)
    for lay, first in zip(layouts, first_ids, strict=True):
        for j in range(N_JOINTS):
            (cx, cy), (dx, dy), (a, b) = lay.joints[j], lay.directions[j], lay.axes[j]
            win = _window(cx, cy, max(a, b) + 1, shape)
            if win is None:
                continue
            sl, xx, yy = win
            rho = ellipse_radius(xx - cx, yy - cy, dx, dy, a, b)
            take = rho < best[sl]
            best[sl][take] = rho[take]
            out[sl][take] = first + j
    hand = ndimage.binary_dilation(tissue, iterations=max(int(round(margin_px)), 1))
    out[~hand] = 0
    for lay, first in zip(layouts, first_ids, strict=True):
        for j in range(N_JOINTS):
            x, y = np.rint(lay.joints[j]).astype(int)
            if 0 <= y < shape[0] and 0 <= x < shape[1] and not (out == first + j).any():
                out[y, x] = first + j
    return out
