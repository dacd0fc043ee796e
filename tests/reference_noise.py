"""Reference implementations used as test oracles and benchmark baselines (not shipped).

- :func:`improved_noise` — Ken Perlin's 2002 reference *Improved Noise* (3D, scalar),
  a line-by-line port of his Java code; ``improved_noise(3.14, 42, 7)`` is
  ``0.13691995878400012`` exactly. It anchors the conventions (quintic fade, gradient
  dot products, lerps) of :mod:`jointaug.masks.noise`.
- :func:`reference_noise` / :func:`perlin_2d_reference` — the textbook per-pixel 2D
  formulation: oracle of the fast maps and baseline of ``benchmarks/bench_perlin.py``.
- :func:`vary_mask_reference` — the Perlin variation written as the paper describes it
  (one full-image map per try): oracle of ``vary_mask`` and the benchmark's baseline.

Imported by the tests (pytest puts ``tests/`` on the path) and by
``benchmarks/bench_perlin.py`` (which adds ``tests/`` to ``sys.path``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from jointaug.masks.noise import lattice_shape, random_gradients
from jointaug.masks.perlin import VariationResult, res_for_shape, scaled_min_pixels


def _fade_array(t: np.ndarray) -> np.ndarray:
    return t * t * t * (t * (t * 6.0 - 15.0) + 10.0)


# --------------------------------------------------------------------------------------
# Ken Perlin's Improved Noise (2002), reference implementation
# --------------------------------------------------------------------------------------

_PERMUTATION = (
    151,
    160,
    137,
    91,
    90,
    15,
    131,
    13,
    201,
    95,
    96,
    53,
    194,
    233,
    7,
    225,
    140,
    36,
    103,
    30,
    69,
    142,
    8,
    99,
    37,
    240,
    21,
    10,
    23,
    190,
    6,
    148,
    247,
    120,
    234,
    75,
    0,
    26,
    197,
    62,
    94,
    252,
    219,
    203,
    117,
    35,
    11,
    32,
    57,
    177,
    33,
    88,
    237,
    149,
    56,
    87,
    174,
    20,
    125,
    136,
    171,
    168,
    68,
    175,
    74,
    165,
    71,
    134,
    139,
    48,
    27,
    166,
    77,
    146,
    158,
    231,
    83,
    111,
    229,
    122,
    60,
    211,
    133,
    230,
    220,
    105,
    92,
    41,
    55,
    46,
    245,
    40,
    244,
    102,
    143,
    54,
    65,
    25,
    63,
    161,
    1,
    216,
    80,
    73,
    209,
    76,
    132,
    187,
    208,
    89,
    18,
    169,
    200,
    196,
    135,
    130,
    116,
    188,
    159,
    86,
    164,
    100,
    109,
    198,
    173,
    186,
    3,
    64,
    52,
    217,
    226,
    250,
    124,
    123,
    5,
    202,
    38,
    147,
    118,
    126,
    255,
    82,
    85,
    212,
    207,
    206,
    59,
    227,
    47,
    16,
    58,
    17,
    182,
    189,
    28,
    42,
    223,
    183,
    170,
    213,
    119,
    248,
    152,
    2,
    44,
    154,
    163,
    70,
    221,
    153,
    101,
    155,
    167,
    43,
    172,
    9,
    129,
    22,
    39,
    253,
    19,
    98,
    108,
    110,
    79,
    113,
    224,
    232,
    178,
    185,
    112,
    104,
    218,
    246,
    97,
    228,
    251,
    34,
    242,
    193,
    238,
    210,
    144,
    12,
    191,
    179,
    162,
    241,
    81,
    51,
    145,
    235,
    249,
    14,
    239,
    107,
    49,
    192,
    214,
    31,
    181,
    199,
    106,
    157,
    184,
    84,
    204,
    176,
    115,
    121,
    50,
    45,
    127,
    4,
    150,
    254,
    138,
    236,
    205,
    93,
    222,
    114,
    67,
    29,
    24,
    72,
    243,
    141,
    128,
    195,
    78,
    66,
    215,
    61,
    156,
    180,
)
_P = _PERMUTATION + _PERMUTATION  # p[256 + i] = p[i]


def _fade(t: float) -> float:
    return t * t * t * (t * (t * 6 - 15) + 10)


def _lerp(t: float, a: float, b: float) -> float:
    return a + t * (b - a)


def _grad(hash_: int, x: float, y: float, z: float) -> float:
    h = hash_ & 15  # low 4 bits of the hash code pick one of 12 gradient directions
    u = x if h < 8 else y
    v = y if h < 4 else (x if h in (12, 14) else z)
    return (u if (h & 1) == 0 else -u) + (v if (h & 2) == 0 else -v)


def improved_noise(x: float, y: float, z: float) -> float:
    """Ken Perlin's Improved Noise (SIGGRAPH 2002) at one 3D point, in about [-1, 1].

    A faithful port of the Java reference (``ImprovedNoise.noise``), same operation order,
    so results agree to the last bit: ``improved_noise(3.14, 42, 7) == 0.13691995878400012``.
    Deterministic (fixed permutation table); zero at every integer lattice point.
    """
    xi, yi, zi = math.floor(x) & 255, math.floor(y) & 255, math.floor(z) & 255
    x -= math.floor(x)
    y -= math.floor(y)
    z -= math.floor(z)
    u, v, w = _fade(x), _fade(y), _fade(z)
    p = _P
    a = p[xi] + yi
    aa = p[a] + zi
    ab = p[a + 1] + zi
    b = p[xi + 1] + yi
    ba = p[b] + zi
    bb = p[b + 1] + zi
    return _lerp(
        w,
        _lerp(
            v,
            _lerp(u, _grad(p[aa], x, y, z), _grad(p[ba], x - 1, y, z)),
            _lerp(u, _grad(p[ab], x, y - 1, z), _grad(p[bb], x - 1, y - 1, z)),
        ),
        _lerp(
            v,
            _lerp(u, _grad(p[aa + 1], x, y, z - 1), _grad(p[ba + 1], x - 1, y, z - 1)),
            _lerp(u, _grad(p[ab + 1], x, y - 1, z - 1), _grad(p[bb + 1], x - 1, y - 1, z - 1)),
        ),
    )


# --------------------------------------------------------------------------------------
# Textbook reference
# --------------------------------------------------------------------------------------


def reference_noise(
    gy: np.ndarray, gx: np.ndarray, shape: tuple[int, int], res: tuple[float, float]
) -> np.ndarray:
    """Textbook 2D Perlin noise (H, W) float32 from one lattice of gradients (rows, cols):
    per pixel, gather the four corner gradients, dot them with the offsets, fade, lerp.

    The straightforward formulation (as in the common numpy recipes), kept as the oracle
    for :func:`noise_from_gradients` and the baseline of ``benchmarks/bench_perlin.py``.
    """
    y = np.arange(shape[0]) * (res[0] / shape[0])
    x = np.arange(shape[1]) * (res[1] / shape[1])
    yy, xx = np.meshgrid(y, x, indexing="ij")
    iy, ix = np.floor(yy).astype(np.intp), np.floor(xx).astype(np.intp)
    fy, fx = yy - iy, xx - ix

    def dot(dy: int, dx: int) -> np.ndarray:
        return gy[iy + dy, ix + dx] * (fy - dy) + gx[iy + dy, ix + dx] * (fx - dx)

    u, v = _fade_array(fx), _fade_array(fy)
    top = dot(0, 0) + u * (dot(0, 1) - dot(0, 0))
    bottom = dot(1, 0) + u * (dot(1, 1) - dot(1, 0))
    return np.clip(math.sqrt(2.0) * (top + v * (bottom - top)), -1.0, 1.0).astype(np.float32)


def perlin_2d_reference(
    shape: tuple[int, int], res: tuple[float, float], rng: np.random.Generator
) -> np.ndarray:
    """One (H, W) map like :func:`perlin_2d` (same random draws), the textbook way."""
    gy, gx = random_gradients(rng, lattice_shape(res), 1)
    return reference_noise(gy[0], gx[0], shape, res)


def vary_mask_reference(
    mask: np.ndarray,
    rng: np.random.Generator,
    min_pixels: float = 25,
    max_fraction: float = 0.9,
    max_tries: int = 5000,
    res: Sequence[float] = (2, 4, 8),
    threshold_low: float = 0.2,
    threshold_high: float = 0.8,
    noise=None,
) -> VariationResult:
    """The straightforward version of :func:`vary_mask`: one full-image map per try.

    Same criteria and distributions, written as the paper describes it, with the
    textbook noise (``perlin_2d_reference``, or ``noise=perlin_2d`` for the fast maps);
    kept as the baseline of ``benchmarks/bench_perlin.py`` and as an oracle in the tests.
    """
    mask = np.asarray(mask, dtype=bool)
    area = int(mask.sum())
    lo = scaled_min_pixels(min_pixels, mask.shape)
    noise = noise or perlin_2d_reference
    for tries in range(1, max_tries + 1):
        periods = float(res[rng.integers(len(res))])
        noise01 = 0.5 * (noise(mask.shape, res_for_shape(periods, mask.shape), rng) + 1.0)
        threshold = rng.uniform(threshold_low, threshold_high)
        candidate = (noise01 * mask) > threshold
        n = int(candidate.sum())
        if lo <= n <= max_fraction * area:
            return VariationResult(candidate, tries, False)
    return VariationResult(mask.copy(), max_tries, True)
