"""A procedural stand-in for 11k Hands photos (the real photos cannot ship).

:func:`draw_hand` renders one photo the 11k way: one hand, fingers up, the
forearm leaving through the bottom border, on white or light grey paper with a
soft neutral shadow. Skin tones vary; the dorsal side shows nails (sometimes
polished), the palmar side is lighter with creases. Some hands carry an accessory
(a ring or a watch band in a saturated colour) and some are closed (fingers
pressed together, or a fist), so the filters have something to reject. The 15
joint positions of the hand are known exactly (:class:`HandGeometry`).

Geometry is built for a hand whose thumb is on the image's left (a right hand seen
from the back, or a left hand seen from the palm) and mirrored for the other two
aspects, which is how 11k photos look.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

SKIN_TONES = (
    (236, 196, 168),
    (226, 176, 142),
    (205, 148, 112),
    (176, 120, 86),
    (142, 94, 64),
    (104, 68, 48),
)
SKIN_NAMES = ("very fair", "fair", "medium", "medium", "dark", "very dark")
ACCESSORY_COLOURS = ((214, 172, 40), (200, 30, 40), (30, 70, 200), (20, 150, 70), (130, 70, 35))
POLISH_COLOURS = ((170, 20, 40), (200, 40, 120), (120, 20, 60))
THUMB_LEFT_ASPECTS = ("dorsal right", "palmar left")


@dataclass
class HandGeometry:
    """Where everything is, in pixels of the photo (x right, y down).

    ``joints``: joint name -> (x, y). ``capsules``: (x0, y0, x1, y1, r0, r1)
    tapered segments (fingers, thumb, thenar). ``boxes``: (cx, cy, half_w, half_h,
    corner_radius, angle_rad) rounded rectangles (palm, forearm).
    """

    joints: dict[str, tuple[float, float]]
    capsules: list[tuple[float, ...]]
    boxes: list[tuple[float, ...]]
    tips: dict[str, tuple[float, float]]
    finger_radius: dict[str, float]
    pose: str  # "open", "together" or "fist"
    extras: dict = field(default_factory=dict)


def _rot(points: np.ndarray, centre: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    d = points - centre
    return centre + np.stack([c * d[..., 0] - s * d[..., 1], s * d[..., 0] + c * d[..., 1]], -1)


def _finger_angles(pose: str, rng: np.random.Generator) -> tuple[dict[str, float], float]:
    """Directions (radians from straight up) of fingers 2-5 and of the thumb: spread
    apart for an "open" hand, nearly parallel for "together" and "fist"."""
    if pose == "open":
        spread = rng.uniform(1.1, 1.6)
        base_angles = {"2": -13.0, "3": -1.0, "4": 11.0, "5": 24.0}
        angles = {k: np.deg2rad(v * spread + rng.normal(0, 1.5)) for k, v in base_angles.items()}
        thumb_angle = np.deg2rad(rng.uniform(-62, -45))
    else:
        angles = {
            k: np.deg2rad(v + rng.normal(0, 0.5))
            for k, v in {"2": 2.0, "3": 0.5, "4": -1.0, "5": -2.5}.items()
        }
        thumb_angle = np.deg2rad(rng.uniform(-22, -15))
    return angles, thumb_angle


def _add_fingers(
    geom: HandGeometry, angles: dict[str, float], palm: tuple[float, float, float], s: float
) -> None:
    """Fingers 2-5 (MCP, PIP, DIP, tip, a tapered capsule each) along the knuckle line,
    in place. ``palm``: (centre x, knuckle line y, palm width); ``s``: hand size in
    pixels. A fist shows only the knuckles. No random draws."""
    cx, y_mcp, pw = palm
    lengths = {"2": 0.31, "3": 0.35, "4": 0.325, "5": 0.25}
    radii = {"2": 0.045, "3": 0.047, "4": 0.044, "5": 0.038}
    for i, k in enumerate("2345"):
        x_mcp = cx - pw / 2 + pw * (0.13 + 0.25 * i)
        y = y_mcp - 0.02 * s * np.cos((i - 1.5) / 1.5 * np.pi / 2)
        d = np.array([np.sin(angles[k]), -np.cos(angles[k])])
        L = lengths[k] * s
        base = np.array([x_mcp, y])
        pip, dip, tip = base + 0.45 * L * d, base + 0.75 * L * d, base + L * d
        r = radii[k] * s
        if geom.pose == "fist":  # fingers curled under: only the knuckles show
            pip, dip, tip = base + 0.12 * L * d, base + 0.16 * L * d, base + 0.20 * L * d
        geom.joints[f"mcp{k}"], geom.joints[f"pip{k}"], geom.joints[f"dip{k}"] = (
            tuple(base),
            tuple(pip),
            tuple(dip),
        )
        geom.tips[k] = tuple(tip)
        geom.finger_radius[k] = r
        geom.capsules.append((*base, *tip, r, 0.82 * r))


def _add_thumb(geom: HandGeometry, cmc: np.ndarray, thumb_angle: float, s: float) -> None:
    """The thumb from its carpometacarpal base ``cmc`` (MCP, IP, tip, the thenar
    eminence and the thumb's capsule), in place. No random draws."""
    d = np.array([np.sin(thumb_angle), -np.cos(thumb_angle)])
    mcp1 = cmc + 0.15 * s * d
    ip1 = mcp1 + 0.11 * s * d
    tip1 = ip1 + 0.09 * s * d
    if geom.pose == "fist":
        tip1 = ip1 + 0.03 * s * d
    geom.joints["mcp1"], geom.joints["ip1"] = tuple(mcp1), tuple(ip1)
    geom.tips["1"] = tuple(tip1)
    geom.finger_radius["1"] = 0.05 * s
    geom.capsules.append((*cmc, *mcp1, 0.085 * s, 0.055 * s))  # thenar eminence
    geom.capsules.append((*mcp1, *tip1, 0.052 * s, 0.043 * s))


def _tilted(geom: HandGeometry, tilt: float) -> HandGeometry:
    """``geom`` rotated by ``tilt`` radians about the wrist (boxes take the tilt as angle)."""
    centre = np.array(geom.joints["wrist"])
    return HandGeometry(
        joints={k: tuple(_rot(np.array(v), centre, tilt)) for k, v in geom.joints.items()},
        capsules=[
            (
                *_rot(np.array(c[:2]), centre, tilt),
                *_rot(np.array(c[2:4]), centre, tilt),
                c[4],
                c[5],
            )
            for c in geom.capsules
        ],
        boxes=[(*_rot(np.array(b[:2]), centre, tilt), b[2], b[3], b[4], tilt) for b in geom.boxes],
        tips={k: tuple(_rot(np.array(v), centre, tilt)) for k, v in geom.tips.items()},
        finger_radius=geom.finger_radius,
        pose=geom.pose,
    )


def hand_geometry(
    width: int, height: int, rng: np.random.Generator, pose: str = "open", scale: float = 1.0
) -> HandGeometry:
    """Random hand layout, thumb on the left, fingers up, forearm to the bottom border.

    Args:
        width, height: photo size in pixels.
        pose: "open" (fingers apart), "together" (fingers pressed together) or "fist".
        scale: hand size factor (1 = a typical 11k hand relative to the frame).
    """
    H = float(height)
    s = scale * H
    cx = width / 2 + rng.uniform(-0.06, 0.06) * width
    y_wrist = H * rng.uniform(0.82, 0.88)
    pw, ph = 0.30 * s, 0.35 * s  # palm width and height
    y_mcp = y_wrist - ph
    angles, thumb_angle = _finger_angles(pose, rng)
    geom = HandGeometry(joints={}, capsules=[], boxes=[], tips={}, finger_radius={}, pose=pose)
    _add_fingers(geom, angles, (cx, y_mcp, pw), s)
    # thumb: carpometacarpal base low on the palm's thumb side
    _add_thumb(geom, np.array([cx - pw * 0.36, y_wrist - 0.18 * ph]), thumb_angle, s)
    geom.joints["wrist"] = (cx, y_wrist)
    geom.boxes += [
        (cx, (y_mcp + y_wrist) / 2, pw / 2, ph / 2 + 0.01 * s, 0.09 * s, 0.0),  # palm
        (cx, y_wrist + 0.6 * H, 0.40 * pw, 0.6 * H + 0.04 * s, 0.02 * s, 0.0),  # forearm
    ]
    if pose == "fist":  # curled fingers make a rounded bump over the knuckles
        geom.boxes.append((cx + 0.02 * s, y_mcp + 0.01 * s, pw / 2, 0.07 * s, 0.06 * s, 0.0))
    # whole-hand tilt about the wrist
    return _tilted(geom, np.deg2rad(rng.normal(0, 5.0)))


def _capsule_sdf(xx, yy, x0, y0, x1, y1, r0, r1):
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((xx - x0) * dx + (yy - y0) * dy) / max(dx * dx + dy * dy, 1e-9), 0, 1)
    return np.hypot(xx - (x0 + t * dx), yy - (y0 + t * dy)) - (r0 + t * (r1 - r0))


def _box_sdf(xx, yy, cx, cy, hw, hh, rc, angle):
    c, s = np.cos(-angle), np.sin(-angle)
    px, py = c * (xx - cx) - s * (yy - cy), s * (xx - cx) + c * (yy - cy)
    qx, qy = np.abs(px) - hw + rc, np.abs(py) - hh + rc
    return np.hypot(np.maximum(qx, 0), np.maximum(qy, 0)) + np.minimum(np.maximum(qx, qy), 0) - rc


def hand_sdf(geom: HandGeometry, shape: tuple[int, int]) -> np.ndarray:
    """Signed distance (pixels, negative inside) of the hand silhouette on an (H, W) grid."""
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float32) + 0.5
    d = np.full(shape, np.inf, dtype=np.float32)
    for c in geom.capsules:
        d = np.minimum(d, _capsule_sdf(xx, yy, *c))
    for b in geom.boxes:
        d = np.minimum(d, _box_sdf(xx, yy, *b))
    return d


def _smooth_noise(shape, rng, sigma, amp):
    return (
        ndimage.gaussian_filter(rng.normal(0, 1, shape), sigma)
        * amp
        / max(1e-6, 1.0 / (2 * np.sqrt(np.pi) * sigma))
    )


def _paint_band(img, alpha_img, xx, yy, p0, p1, r, colour):
    d = _capsule_sdf(xx, yy, *p0, *p1, r, r)
    a = np.clip(0.5 - d, 0, 1)[..., None]
    img[:] = img * (1 - a) + np.asarray(colour, np.float32) * a
    alpha_img[:] = np.maximum(alpha_img, a[..., 0])


def render_photo(
    geom: HandGeometry,
    shape: tuple[int, int],
    rng: np.random.Generator,
    skin: tuple[int, int, int],
    face: str,
    accessory: str = "",
    polish: tuple[int, int, int] | None = None,
) -> np.ndarray:
    """Render a photo (H, W, 3) uint8 with the thumb on the left.

    Args:
        face: "dorsal" (nails, knuckle wrinkles) or "palmar" (lighter, creases).
        accessory: "", "ring" or "watch" (a saturated band).
        polish: nail colour for dorsal hands with nail polish, else None.
    """
    h, w = shape
    yy, xx = np.mgrid[:h, :w].astype(np.float32) + 0.5
    sdf = hand_sdf(geom, shape)
    alpha = np.clip(0.5 - sdf, 0, 1)
    bg = _paper(sdf, shape, rng, yy, xx)
    # skin: base tone, palms lighter, rim darkening, low-frequency mottling
    base = np.asarray(skin, np.float32)
    if face == "palmar":
        base = 0.7 * base + 0.3 * np.array([238, 196, 180], np.float32)
    depth = np.clip(-sdf / (0.035 * h), 0, 1)
    shade = 0.84 + 0.16 * depth + _smooth_noise(shape, rng, 6, 0.03)
    img = base * shade[..., None] + rng.normal(0, 1.5, (h, w, 3))
    hand_alpha = alpha.copy()
    img = _skin_marks(img, geom, face, polish, xx, yy)
    if accessory:
        _paint_accessory(img, hand_alpha, geom, rng, accessory, xx, yy)
    a = hand_alpha[..., None]
    out = bg * (1 - a) + img * a
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _paper(
    sdf: np.ndarray,
    shape: tuple[int, int],
    rng: np.random.Generator,
    yy: np.ndarray,
    xx: np.ndarray,
) -> np.ndarray:
    """The background (H, W, 3): white to light grey paper, a gentle gradient, a soft
    neutral shadow of the hand."""
    h, w = shape
    level = rng.uniform(228, 252)
    grad = 1.0 - rng.uniform(0.0, 0.08) * (yy / h) - rng.uniform(-0.03, 0.03) * (xx / w)
    paper = level * grad + _smooth_noise(shape, rng, 8, 1.5)
    off = rng.uniform(0.01, 0.025) * h
    shadow = ndimage.shift(np.clip(-sdf, 0, 1), (off, off * 0.6), order=1, mode="nearest")
    shadow = ndimage.gaussian_filter(shadow, 0.012 * h + 1)
    paper = paper * (1 - rng.uniform(0.12, 0.25) * shadow)
    tint = rng.uniform(-3, 3, size=3)
    return paper[..., None] + tint + rng.normal(0, 1.2, (h, w, 3))


def _skin_marks(
    img: np.ndarray,
    geom: HandGeometry,
    face: str,
    polish: tuple[int, int, int] | None,
    xx: np.ndarray,
    yy: np.ndarray,
) -> np.ndarray:
    """Knuckle wrinkles / creases (thin darker arcs at PIP and DIP), then palm creases
    (palmar) or nails near the finger tips (dorsal). No random draws."""
    for k in "2345":
        for j in ("pip", "dip"):
            x, y = geom.joints[f"{j}{k}"]
            mx, my = geom.joints[f"mcp{k}"]
            tx, ty = geom.tips[k]
            d = np.array([tx - mx, ty - my]) / max(np.hypot(tx - mx, ty - my), 1e-6)
            n = np.array([-d[1], d[0]]) * geom.finger_radius[k] * 0.7
            dark = 0.80 if face == "palmar" else 0.88
            line = _capsule_sdf(xx, yy, x - n[0], y - n[1], x + n[0], y + n[1], 0.6, 0.6)
            img *= (1 - (1 - dark) * np.clip(0.5 - line, 0, 1))[..., None]
    if face == "palmar":  # two palm creases
        wx, wy = geom.joints["wrist"]
        for frac, tilt in ((0.45, 0.25), (0.65, -0.15)):
            x2, y2 = geom.joints["mcp5"]
            x0, y0 = geom.joints["mcp1"]
            p0 = (x0 + 0.1 * (x2 - x0), y0 + frac * (wy - y0) * 0.4)
            p1 = (x2, y2 + frac * (wy - y2) + tilt * 20)
            line = _capsule_sdf(xx, yy, *p0, *p1, 0.7, 0.7)
            img *= (1 - 0.18 * np.clip(0.5 - line, 0, 1))[..., None]
    else:  # nails near the finger tips
        for k in "12345":
            tx, ty = geom.tips[k]
            bx, by = geom.joints["ip1"] if k == "1" else geom.joints[f"dip{k}"]
            d = np.array([tx - bx, ty - by])
            p0 = (bx + 0.45 * d[0], by + 0.45 * d[1])
            p1 = (bx + 0.85 * d[0], by + 0.85 * d[1])
            r = geom.finger_radius[k] * 0.55
            nail = np.clip(0.5 - _capsule_sdf(xx, yy, *p0, *p1, r, r), 0, 1)[..., None]
            colour = np.asarray(polish if polish else (238, 205, 196), np.float32)
            img = img * (1 - nail) + colour * nail
    return img


def _paint_accessory(
    img: np.ndarray,
    hand_alpha: np.ndarray,
    geom: HandGeometry,
    rng: np.random.Generator,
    accessory: str,
    xx: np.ndarray,
    yy: np.ndarray,
) -> None:
    """A ring on a finger or a watch band across the forearm (a saturated band), in place."""
    h = img.shape[0]
    colour = ACCESSORY_COLOURS[int(rng.integers(len(ACCESSORY_COLOURS)))]
    if accessory == "ring":
        k = "234"[int(rng.integers(3))]
        mx, my = geom.joints[f"mcp{k}"]
        px, py = geom.joints[f"pip{k}"]
        c = (mx + 0.55 * (px - mx), my + 0.55 * (py - my))
        d = np.array([px - mx, py - my]) / max(np.hypot(px - mx, py - my), 1e-6)
        n = np.array([-d[1], d[0]]) * geom.finger_radius[k] * 1.05
        _paint_band(
            img,
            hand_alpha,
            xx,
            yy,
            (c[0] - n[0], c[1] - n[1]),
            (c[0] + n[0], c[1] + n[1]),
            0.02 * h,
            colour,
        )
    else:  # watch band across the forearm
        wx, wy = geom.joints["wrist"]
        half = geom.boxes[1][2] * 1.08
        y0 = wy + 0.06 * h
        _paint_band(img, hand_alpha, xx, yy, (wx - half, y0), (wx + half, y0), 0.035 * h, colour)


def mirror_geometry(geom: HandGeometry, width: int) -> HandGeometry:
    """Mirror a geometry left-right in a photo of ``width`` pixels."""

    def fx(p):
        return (width - p[0], p[1])

    return HandGeometry(
        joints={k: fx(v) for k, v in geom.joints.items()},
        capsules=[(width - c[0], c[1], width - c[2], c[3], c[4], c[5]) for c in geom.capsules],
        boxes=[(width - b[0], b[1], b[2], b[3], b[4], -b[5]) for b in geom.boxes],
        tips={k: fx(v) for k, v in geom.tips.items()},
        finger_radius=dict(geom.finger_radius),
        pose=geom.pose,
        extras=dict(geom.extras),
    )
