"""Who is inflamed where in the phantom: the prevalence model and the synovial uptake.

Per patient, a latent severity ``s ~ N(0, 1)`` and a per-hand effect ``h ~ N(0, HAND_SD)``
set the log-odds of each joint: ``logit p_j = b_j + SEVERITY_WEIGHT * s + h_hand``; a
fraction ``P_REMISSION`` of patients has no inflammation at all. The offsets ``b_j`` are
solved (Gauss-Hermite quadrature) so that the *marginal* rate of each joint equals
:data:`JOINT_PREVALENCE`, a table in the spirit of the paper's Fig. 1c (wrists and
MCP2-3 most often inflamed, DIPs rarely; ~12 % of all joints overall). Inflamed joints
therefore cluster in patients and both hands are correlated. An inflamed joint is
*high* (rather than low) with probability ``sigmoid(HIGH_BIAS + HIGH_WEIGHT * s)``.

Uptake is drawn as :class:`Blob` records (pixel-free: offsets and sizes relative to the
joint's layperson region) and rasterised by :func:`render_blobs` in any view geometry.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jointaug.dataset.format import HAND_JOINTS
from jointaug.dataset.phantom_anatomy import N_JOINTS, WRIST, HandLayout, _window, ellipse_radius

# Fraction of classification images in which the joint is inflamed (each hand).
JOINT_PREVALENCE: dict[str, float] = {
    "wrist": 0.42,
    "mcp1": 0.08,
    "mcp2": 0.30,
    "mcp3": 0.26,
    "mcp4": 0.13,
    "mcp5": 0.11,
    "ip1": 0.07,
    "pip2": 0.12,
    "pip3": 0.13,
    "pip4": 0.08,
    "pip5": 0.06,
    "dip2": 0.03,
    "dip3": 0.03,
    "dip4": 0.02,
    "dip5": 0.02,
}
P_REMISSION = 0.08  # patients with no inflamed joint at all (besides chance)
SEVERITY_WEIGHT = 1.6  # log-odds per unit of patient severity
HAND_SD = 0.6  # log-odds spread between a patient's two hands
HIGH_BIAS, HIGH_WEIGHT = -0.3, 0.9  # P(high | inflamed) = sigmoid(bias + weight * s)
KEEP_AT_FOLLOW_UP = 0.75  # at the second visit each joint keeps its state with this prob.

# Synovial uptake, relative to soft tissue (1 = the middle of a finger).
NORMAL_UPTAKE = (0.15, 0.5)  # mild uptake in every non-inflamed joint
LOW_UPTAKE = (1.2, 2.4)
HIGH_UPTAKE = (3.5, 7.0)
RING_WIDTH = 0.45  # radial width of the uptake profile, in units of the blob's semi-axes
FOOTPRINT = 0.46  # the clinician outlines the blob where it is >= exp(-(0.46/0.45)^2) ~ 35 %


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _solve_offsets() -> np.ndarray:
    """Per-joint log-odds offsets b_j whose marginal rate is JOINT_PREVALENCE (15,)."""
    z, w = np.polynomial.hermite_e.hermegauss(64)
    w = w / w.sum()
    sd = float(np.hypot(SEVERITY_WEIGHT, HAND_SD))
    target = np.array([JOINT_PREVALENCE[j] for j in HAND_JOINTS]) / (1.0 - P_REMISSION)
    lo, hi = np.full(N_JOINTS, -30.0), np.full(N_JOINTS, 30.0)
    for _ in range(80):
        mid = (lo + hi) / 2
        rate = (_sigmoid(mid[:, None] + sd * z[None, :]) * w).sum(1)
        lo, hi = np.where(rate < target, mid, lo), np.where(rate < target, hi, mid)
    return (lo + hi) / 2


JOINT_LOGIT_OFFSET = _solve_offsets()


def disease_model() -> dict:
    """The prevalence and uptake constants, for dataset.json."""
    return {
        "p_remission": P_REMISSION,
        "severity_weight": SEVERITY_WEIGHT,
        "hand_sd": HAND_SD,
        "p_high": f"sigmoid({HIGH_BIAS} + {HIGH_WEIGHT} * severity)",
        "keep_at_follow_up": KEEP_AT_FOLLOW_UP,
        "logit_offsets": {
            j: round(float(b), 3) for j, b in zip(HAND_JOINTS, JOINT_LOGIT_OFFSET, strict=True)
        },
        "uptake_vs_soft_tissue": {"normal": NORMAL_UPTAKE, "low": LOW_UPTAKE, "high": HIGH_UPTAKE},
    }


@dataclass
class Disease:
    """One patient's latent disease state."""

    severity: float
    hand_effect: np.ndarray  # (2,) right, left
    remission: bool

    def probabilities(self) -> np.ndarray:
        """(30,) probability that each joint (R then L) is inflamed."""
        if self.remission:
            return np.zeros(2 * N_JOINTS)
        logit = np.tile(JOINT_LOGIT_OFFSET, 2) + SEVERITY_WEIGHT * self.severity
        return _sigmoid(logit + np.repeat(self.hand_effect, N_JOINTS))


def sample_disease(rng: np.random.Generator) -> Disease:
    remission = bool(rng.random() < P_REMISSION)
    severity = float(rng.standard_normal())
    return Disease(severity, rng.standard_normal(2) * HAND_SD, remission)


def sample_state(
    rng: np.random.Generator, disease: Disease, previous: np.ndarray | None = None
) -> np.ndarray:
    """(30,) int8 joint state: 0 normal, 2 low, 3 high inflammation.

    With ``previous`` (a follow-up visit) each joint keeps its state with probability
    ``KEEP_AT_FOLLOW_UP``. Always draws the same amount of randomness.
    """
    inflamed = rng.random(2 * N_JOINTS) < disease.probabilities()
    high = rng.random(2 * N_JOINTS) < _sigmoid(HIGH_BIAS + HIGH_WEIGHT * disease.severity)
    state = np.where(inflamed, np.where(high, 3, 2), 0).astype(np.int8)
    keep = rng.random(2 * N_JOINTS) < KEEP_AT_FOLLOW_UP
    if previous is not None:
        state = np.where(keep, previous, state).astype(np.int8)
    return state


def sample_label_vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 30) 0/1 label vectors of n independent patients (no images drawn)."""
    return np.stack([sample_state(rng, sample_disease(rng)) > 0 for _ in range(n)]).astype(np.int8)


@dataclass
class Blob:
    """Synovial uptake at one joint, relative to the joint's region ellipse.

    ``joint``: 0..29 (R then L); ``offset``: (along, across) shift of the centre in units
    of the region semi-axes; ``size``: blob semi-axes as fractions of the region's;
    ``ring``: radius of the ring maximum (0: a solid blob); ``amplitude``: peak uptake
    relative to soft tissue; ``level``: 0 normal, 2 low, 3 high (tissue-map value).
    """

    joint: int
    offset: tuple[float, float]
    size: tuple[float, float]
    ring: float
    amplitude: float
    level: int


def sample_blobs(rng: np.random.Generator, state: np.ndarray) -> list[Blob]:
    """Uptake blobs for a (30,) state vector: mild in normal joints, hot in inflamed ones.

    An inflamed wrist gets 1-3 blobs (only some of the carpal joints light up).
    """
    blobs = []
    for joint, level in enumerate(state.tolist()):
        is_wrist = joint % N_JOINTS == WRIST
        if level == 0:
            size = float(rng.uniform(0.45, 0.7))
            amp = float(rng.uniform(*NORMAL_UPTAKE)) * (0.6 if is_wrist else 1.0)
            blobs.append(Blob(joint, (0.0, 0.0), (size, size), 0.0, amp, 0))
            continue
        uptake = HIGH_UPTAKE if level == 3 else LOW_UPTAKE
        n_sub = int(rng.integers(1, 4)) if is_wrist else 1
        for _ in range(n_sub):
            if is_wrist:
                r, t = 0.5 * np.sqrt(rng.random()), rng.uniform(0, 2 * np.pi)
                offset = (float(r * np.cos(t)), float(r * np.sin(t)))
                size = (float(rng.uniform(0.3, 0.55)), float(rng.uniform(0.25, 0.45)))
            else:
                offset = (float(rng.uniform(-0.2, 0.2)), float(rng.uniform(-0.15, 0.15)))
                size = (float(rng.uniform(0.45, 0.75)), float(rng.uniform(0.55, 0.85)))
            ring = float(rng.uniform(0.0, 0.5))
            blobs.append(Blob(joint, offset, size, ring, float(rng.uniform(*uptake)), level))
    return blobs


def render_blobs(
    layouts: list[HandLayout], blobs: list[Blob], shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Rasterise blobs in the geometry of ``layouts`` (right hand, left hand).

    Returns ``uptake`` (H, W) float32 (relative to soft tissue) and ``level`` (H, W)
    uint8, the clinician's outline: 2 or 3 where an inflamed blob is above ~35 % of its
    peak (always at least the pixel under its centre), else 0.
    """
    uptake = np.zeros(shape, np.float32)
    level = np.zeros(shape, np.uint8)
    for b in blobs:
        lay = layouts[b.joint // N_JOINTS]
        j = b.joint % N_JOINTS
        (dx, dy), (ax, bx) = lay.directions[j], lay.axes[j]
        along, across = b.offset[0] * ax, b.offset[1] * bx
        cx = lay.joints[j][0] + along * dx - across * dy
        cy = lay.joints[j][1] + along * dy + across * dx
        a, c = max(b.size[0] * ax, 0.5), max(b.size[1] * bx, 0.5)
        win = _window(cx, cy, (b.ring + 1.4) * max(a, c) + 1, shape)
        if win is None:
            continue
        sl, xx, yy = win
        rho = ellipse_radius(xx - cx, yy - cy, dx, dy, a, c)
        uptake[sl] += b.amplitude * np.exp(-(((rho - b.ring) / RING_WIDTH) ** 2))
        if b.level:
            inside = rho <= b.ring + FOOTPRINT
            np.maximum(level[sl], np.where(inside, b.level, 0).astype(np.uint8), out=level[sl])
            y, x = int(round(cy)), int(round(cx))
            if 0 <= y < shape[0] and 0 <= x < shape[1]:
                level[y, x] = max(level[y, x], b.level)
    return uptake, level
