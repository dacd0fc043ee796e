"""Perlin gradient noise: batched 2D maps.

The conventions (quintic fade ``6t^5 - 15t^4 + 10t^3``, gradient dot products, lerps)
are Ken Perlin's 2002 *Improved Noise*. The reference implementations the maps are
tested against (a line-by-line port of Perlin's Java code, and the textbook per-pixel
2D formulation) are test oracles and benchmark baselines, so they live beside the
tests, in ``tests/reference_noise.py``, not in the package.

- :func:`perlin_2d` — 2D lattice gradient noise with random unit gradients drawn from an
  explicit ``rng``, in [-1, 1] (the 2D bound with unit gradients is ``sqrt(2)/2``, so the
  map is scaled by ``sqrt(2)``), batched when ``batch`` is given.
- :func:`box_noise` — a batch of maps evaluated only over a box of the image, drawing
  only the lattice gradients around the box (used by the mask variation).

Fast path: the noise is bilinear in the lattice gradients, so a map is four small
matrix products with per-axis interpolation matrices (two non-zeros per row) instead
of a per-pixel gather of corner gradients.
"""

from __future__ import annotations

import math

import numpy as np

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
