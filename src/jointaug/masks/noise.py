"""Perlin gradient noise: Ken Perlin's reference Improved Noise and batched 2D maps.

- :func:`improved_noise` — Ken Perlin's 2002 reference *Improved Noise* (3D, scalar),
  a line-by-line port of his Java code; ``improved_noise(3.14, 42, 7)`` is
  ``0.13691995878400012`` exactly. It anchors the conventions (quintic fade
  ``6t^5 - 15t^4 + 10t^3``, gradient dot products, lerps) used by the 2D maps.
- :func:`perlin_2d` — 2D lattice gradient noise with random unit gradients drawn from an
  explicit ``rng``, in [-1, 1] (the 2D bound with unit gradients is ``sqrt(2)/2``, so the
  map is scaled by ``sqrt(2)``), batched when ``batch`` is given.
- :func:`box_noise` — a batch of maps evaluated only over a box of the image, drawing
  only the lattice gradients around the box (used by the mask variation).
- :func:`reference_noise` / :func:`perlin_2d_reference` — the textbook per-pixel
  formulation: oracle for the tests and baseline for the benchmark.

Fast path: the noise is bilinear in the lattice gradients, so a map is four small
matrix products with per-axis interpolation matrices (two non-zeros per row) instead
of a per-pixel gather of corner gradients.
"""

from __future__ import annotations

import math

import numpy as np

# --------------------------------------------------------------------------------------
# Ken Perlin's Improved Noise (2002), reference implementation
# --------------------------------------------------------------------------------------

_PERMUTATION = (
    151, 160, 137, 91, 90, 15, 131, 13, 201, 95, 96, 53, 194, 233, 7, 225, 140, 36, 103, 30,
    69, 142, 8, 99, 37, 240, 21, 10, 23, 190, 6, 148, 247, 120, 234, 75, 0, 26, 197, 62, 94,
    252, 219, 203, 117, 35, 11, 32, 57, 177, 33, 88, 237, 149, 56, 87, 174, 20, 125, 136, 171,
    168, 68, 175, 74, 165, 71, 134, 139, 48, 27, 166, 77, 146, 158, 231, 83, 111, 229, 122,
    60, 211, 133, 230, 220, 105, 92, 41, 55, 46, 245, 40, 244, 102, 143, 54, 65, 25, 63, 161,
    1, 216, 80, 73, 209, 76, 132, 187, 208, 89, 18, 169, 200, 196, 135, 130, 116, 188, 159,
    86, 164, 100, 109, 198, 173, 186, 3, 64, 52, 217, 226, 250, 124, 123, 5, 202, 38, 147,
    118, 126, 255, 82, 85, 212, 207, 206, 59, 227, 47, 16, 58, 17, 182, 189, 28, 42, 223, 183,
    170, 213, 119, 248, 152, 2, 44, 154, 163, 70, 221, 153, 101, 155, 167, 43, 172, 9, 129,
    22, 39, 253, 19, 98, 108, 110, 79, 113, 224, 232, 178, 185, 112, 104, 218, 246, 97, 228,
    251, 34, 242, 193, 238, 210, 144, 12, 191, 179, 162, 241, 81, 51, 145, 235, 249, 14, 239,
    107, 49, 192, 214, 31, 181, 199, 106, 157, 184, 84, 204, 176, 115, 121, 50, 45, 127, 4,
    150, 254, 138, 236, 205, 93, 222, 114, 67, 29, 24, 72, 243, 141, 128, 195, 78, 66, 215,
    61, 156, 180,
)  # fmt: skip
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
# 2D gradient noise maps
# --------------------------------------------------------------------------------------


def _fade_array(t: np.ndarray) -> np.ndarray:
    return t * t * t * (t * (t * 6.0 - 15.0) + 10.0)


def axis_weights(
    n_pixels: int, periods: np.ndarray, start: int, stop: int, points: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Interpolation matrices of pixels ``start..stop`` of an axis of ``n_pixels`` pixels
    spanning ``periods[b]`` lattice cells, each (B, stop - start, P) float32.

    With cell c, offset f and fade u = fade(f) of a pixel, ``plain`` has 1 - u at column c
    and u at c + 1 (the lerp weights); ``offset`` has (1 - u) * f at c and u * (f - 1) at
    c + 1 (the lerp weights times the pixel's offset from each lattice point). With
    ``points`` given, columns are global lattice indices (P = points); with None they
    are local: counted from each map's first cell, P = the most lattice points any map
    of the batch needs over these pixels.
    """
    coord = np.arange(start, stop, dtype=np.float64)[None, :] * (periods[:, None] / n_pixels)
    cell = np.floor(coord)
    frac = coord - cell
    u = _fade_array(frac)
    cell = cell.astype(np.intp)
    if points is None:
        cell -= cell[:, :1]
        points = int(cell.max()) + 2
    shape = (*coord.shape, points)
    plain = np.zeros(shape, dtype=np.float32)
    offset = np.zeros(shape, dtype=np.float32)
    flat = (np.arange(cell.size) * points + cell.ravel()).reshape(cell.shape)
    plain.flat[flat] = 1.0 - u
    plain.flat[flat + 1] = u
    offset.flat[flat] = (1.0 - u) * frac
    offset.flat[flat + 1] = u * (frac - 1.0)
    return plain, offset


def bilinear_noise(py, oy, px, ox, gy, gx) -> np.ndarray:
    """The noise is bilinear in the gradients: each map is Oy @ gy @ Px^T + Py @ gx @ Ox^T
    (four small batched matrix products instead of a per-pixel gather of corner
    gradients), scaled by sqrt(2) to [-1, 1] (the 2D unit-gradient bound is sqrt(2)/2)."""
    out = (oy @ gy) @ px.transpose(0, 2, 1)
    out += (py @ gx) @ ox.transpose(0, 2, 1)
    out *= np.float32(math.sqrt(2.0))
    return np.clip(out, -1.0, 1.0, out=out)


def box_noise(
    rng: np.random.Generator,
    shape: tuple[int, int],
    res: tuple[np.ndarray, np.ndarray],
    box: tuple[int, int, int, int],
) -> np.ndarray:
    """B random Perlin maps cropped to ``box = (y0, y1, x0, x1)``: (B, h, w) float32.

    ``res`` = ((B,) periods along rows, (B,) along cols) of each full (H, W) map. Only
    the gradients of the lattice points around the box are drawn; as lattice gradients
    are independent, this is the same random field as a full map cropped to the box.
    """
    y0, y1, x0, x1 = box
    ry, rx = (np.asarray(r, dtype=np.float64) for r in res)
    py, oy = axis_weights(shape[0], ry, y0, y1)
    px, ox = axis_weights(shape[1], rx, x0, x1)
    gy, gx = random_gradients(rng, (py.shape[2], px.shape[2]), ry.size)
    return bilinear_noise(py, oy, px, ox, gy, gx)


def lattice_shape(res: tuple[float, float]) -> tuple[int, int]:
    """Number of lattice points (rows, cols) needed for ``res`` periods."""
    return int(math.ceil(res[0])) + 1, int(math.ceil(res[1])) + 1


def random_gradients(rng: np.random.Generator, lattice: tuple[int, int], batch: int = 1):
    """Unit gradients at the lattice points: two (batch, rows, cols) float32 arrays (gy, gx)."""
    angle = rng.uniform(0.0, 2.0 * np.pi, size=(batch, *lattice))
    return np.sin(angle).astype(np.float32), np.cos(angle).astype(np.float32)


def noise_from_gradients(
    gy: np.ndarray,
    gx: np.ndarray,
    shape: tuple[int, int],
    res: tuple[float | np.ndarray, float | np.ndarray],
    box: tuple[int, int, int, int] | None = None,
) -> np.ndarray:
    """Gradient noise (B, h, w) float32 in [-1, 1] from gradients (B, rows, cols).

    ``shape`` is the full image (H, W) the lattice spans; ``res = (rows, cols)`` periods,
    each a number or a (B,) array (one resolution per map; the lattice must have at least
    ``ceil(res) + 1`` points per axis, extra points are unused). ``box = (y0, y1, x0, x1)``
    evaluates only those pixels (default: all), giving exactly the crop of the full map.
    """
    h_img, w_img = shape
    n, rows, cols = gy.shape
    y0, y1, x0, x1 = box if box is not None else (0, h_img, 0, w_img)
    ry = np.broadcast_to(np.asarray(res[0], dtype=np.float64), (n,))
    rx = np.broadcast_to(np.asarray(res[1], dtype=np.float64), (n,))
    if math.ceil(ry.max()) + 1 > rows or math.ceil(rx.max()) + 1 > cols:
        raise ValueError(f"lattice {rows}x{cols} too small for res up to ({ry.max()}, {rx.max()})")
    py, oy = axis_weights(h_img, ry, y0, y1, rows)
    px, ox = axis_weights(w_img, rx, x0, x1, cols)
    return bilinear_noise(
        py, oy, px, ox, gy.astype(np.float32, copy=False), gx.astype(np.float32, copy=False)
    )


def perlin_2d(
    shape: tuple[int, int],
    res: tuple[float, float],
    rng: np.random.Generator,
    batch: int | None = None,
) -> np.ndarray:
    """Random 2D Perlin noise map(s), float32 in [-1, 1].

    Args:
        shape: (H, W) in pixels; any size (need not be a multiple of ``res``).
        res: (periods along H, periods along W), positive, may be fractional; one period
            is one lattice cell, so a feature ("blob") is about ``H / res[0] / 2`` pixels.
        rng: the random source of the lattice gradients (uniform unit vectors).
        batch: None for one (H, W) map, or B for a (B, H, W) stack of independent maps.

    The lattice has ``ceil(res)+1`` points per axis; the quintic fade makes the map C2
    smooth; it is 0 at every lattice point.
    """
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"shape must be (H, W) with positive sizes, got {shape}")
    if len(res) != 2 or min(res) <= 0:
        raise ValueError(f"res must be two positive numbers of periods, got {res}")
    n = 1 if batch is None else int(batch)
    if n < 1:
        raise ValueError(f"batch must be positive, got {batch}")
    gy, gx = random_gradients(rng, lattice_shape(res), n)
    out = noise_from_gradients(gy, gx, tuple(shape), tuple(res))
    return out[0] if batch is None else out


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
