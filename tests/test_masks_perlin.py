"""Perlin noise (reference Improved Noise, 2D maps) and the Perlin variation of masks."""

from __future__ import annotations

import numpy as np
import pytest
from reference_noise import (
    improved_noise,
    perlin_2d_reference,
    reference_noise,
    vary_mask_reference,
)
from scipy import ndimage

from jointaug.masks.noise import axis_weights, random_gradients
from jointaug.masks.perlin import (
    bounding_box,
    box_noise,
    noise_from_gradients,
    perlin_2d,
    scaled_min_pixels,
    vary_mask,
)


def disc(shape, center, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - center[0]) ** 2 + (xx - center[1]) ** 2 <= radius**2


# --- Improved Noise (Ken Perlin, 2002) ------------------------------------------------


def test_improved_noise_reference_vector():
    assert improved_noise(3.14, 42, 7) == 0.13691995878400012


def test_improved_noise_zero_on_lattice_and_bounded():
    assert improved_noise(1, 2, 3) == 0.0 and improved_noise(-5, 0, 255) == 0.0
    rng = np.random.default_rng(0)
    values = [improved_noise(*p) for p in rng.uniform(-300, 300, size=(2000, 3))]
    assert max(abs(v) for v in values) <= 1.0
    assert np.std(values) > 0.1
    # continuity: a tiny step changes the value a tiny bit
    assert abs(improved_noise(3.14, 42, 7) - improved_noise(3.14 + 1e-6, 42, 7)) < 1e-5


# --- 2D maps --------------------------------------------------------------------------


def test_perlin_2d_shape_range_and_lattice_zeros():
    rng = np.random.default_rng(0)
    m = perlin_2d((64, 96), (4, 6), rng)
    assert m.shape == (64, 96) and m.dtype == np.float32
    assert m.min() >= -1 and m.max() <= 1 and m.std() > 0.1
    # lattice points (every 16 px) are zeros of gradient noise
    assert np.allclose(m[::16, ::16], 0, atol=1e-6)
    b = perlin_2d((40, 50), (2.5, 3), rng, batch=5)  # any size, fractional res
    assert b.shape == (5, 40, 50)
    assert not np.allclose(b[0], b[1])


def test_perlin_2d_uses_most_of_its_range():
    stack = perlin_2d((64, 64), (4, 4), np.random.default_rng(1), batch=64)
    assert stack.min() < -0.6 and stack.max() > 0.6


def test_perlin_2d_is_smooth():
    rng = np.random.default_rng(2)
    m = perlin_2d((128, 128), (4, 4), rng).astype(np.float64)
    white = rng.normal(0, m.std(), size=m.shape)
    rough = lambda a: np.mean(np.abs(np.diff(a, axis=0))) + np.mean(np.abs(np.diff(a, axis=1)))  # noqa: E731
    assert rough(m) < 0.15 * rough(white)
    # no creases at cell borders: the slope changes slowly (a kink would make the
    # largest second difference comparable to the largest first difference)
    for axis in (0, 1):
        d1 = np.abs(np.diff(m, axis=axis)).max()
        d2 = np.abs(np.diff(m, n=2, axis=axis)).max()
        assert d2 < 0.3 * d1


def test_perlin_2d_determinism():
    a = perlin_2d((32, 32), (2, 2), np.random.default_rng(5), batch=3)
    b = perlin_2d((32, 32), (2, 2), np.random.default_rng(5), batch=3)
    c = perlin_2d((32, 32), (2, 2), np.random.default_rng(6), batch=3)
    assert np.array_equal(a, b) and not np.allclose(a, c)


def test_perlin_2d_bad_arguments():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError):
        perlin_2d((0, 5), (1, 1), rng)
    with pytest.raises(ValueError):
        perlin_2d((8, 8), (0, 1), rng)


def test_fast_maps_equal_the_textbook_formulation():
    rng = np.random.default_rng(9)
    gy, gx = random_gradients(rng, (4, 7), 1)
    fast = noise_from_gradients(gy, gx, (60, 90), (2.5, 6.0))[0]
    assert np.allclose(fast, reference_noise(gy[0], gx[0], (60, 90), (2.5, 6.0)), atol=1e-5)
    a = perlin_2d((32, 48), (2, 3), np.random.default_rng(4))
    b = perlin_2d_reference((32, 48), (2, 3), np.random.default_rng(4))
    assert np.allclose(a, b, atol=1e-5)  # same random draws, same map


def test_box_is_the_crop_of_the_full_map():
    rng = np.random.default_rng(3)
    gy, gx = random_gradients(rng, (6, 9), 4)
    res = (np.array([2.0, 3.0, 4.5, 5.0]), np.array([8.0, 3.0, 1.5, 7.2]))
    full = noise_from_gradients(gy, gx, (100, 120), res)
    box = noise_from_gradients(gy, gx, (100, 120), res, (17, 63, 40, 101))
    assert np.allclose(full[:, 17:63, 40:101], box, atol=1e-6)


def test_box_noise_local_lattice_equals_full_lattice():
    shape, res, box = (256, 256), 8.0, (100, 130, 60, 75)
    py, _ = axis_weights(shape[0], np.array([res]), box[0], box[1])
    px, _ = axis_weights(shape[1], np.array([res]), box[2], box[3])
    local = (py.shape[2], px.shape[2])
    out = box_noise(np.random.default_rng(4), shape, (np.full(3, res), np.full(3, res)), box)
    gy_l, gx_l = random_gradients(np.random.default_rng(4), local, 3)
    # the same gradients placed into a full lattice at the box's first cell
    gy, gx = np.zeros((3, 9, 9), np.float32), np.zeros((3, 9, 9), np.float32)
    cy, cx = int(box[0] * res // shape[0]), int(box[2] * res // shape[1])
    gy[:, cy : cy + local[0], cx : cx + local[1]] = gy_l
    gx[:, cy : cy + local[0], cx : cx + local[1]] = gx_l
    full = noise_from_gradients(gy, gx, shape, (res, res))
    assert np.allclose(full[:, box[0] : box[1], box[2] : box[3]], out, atol=1e-6)


# --- variation ------------------------------------------------------------------------


def shapes_256():
    s = (256, 256)
    rect = np.zeros(s, bool)
    rect[30:70, 100:160] = True
    ell = np.zeros(s, bool)
    ell[200:215, 20:26] = True
    ell[200:206, 20:60] = True  # an L
    return [disc(s, (128, 128), 6), disc(s, (40, 200), 15), rect, ell, disc(s, (250, 3), 9)]


def test_vary_mask_meets_the_criteria():
    rng = np.random.default_rng(0)
    for mask in shapes_256():
        area = int(mask.sum())
        for _ in range(20):
            r = vary_mask(mask, rng)
            n = int(r.mask.sum())
            assert not r.fell_back and r.tries >= 1
            assert r.mask.dtype == bool and r.mask.shape == mask.shape
            assert not np.any(r.mask & ~mask)  # a subset of the region
            assert 25 <= n <= 0.9 * area


def test_varied_mask_has_smooth_cuts():
    # thresholded smooth noise cuts the region along a few smooth curves: few pieces
    # and a short cut, where a speckled subset of the same size would be all edge
    rng = np.random.default_rng(1)
    mask = disc((256, 256), (128, 128), 20)
    for _ in range(20):
        r = vary_mask(mask, rng)
        assert ndimage.label(r.mask)[1] <= 3
        inner = ndimage.binary_erosion(mask)
        cut = r.mask & inner & ~ndimage.binary_erosion(r.mask, border_value=1)
        assert cut.sum() <= 4 * 20, cut.sum()


def test_fallback_when_impossible():
    mask = np.zeros((256, 256), bool)
    mask[10, 10:20] = True  # 10 pixels < 25
    r = vary_mask(mask, np.random.default_rng(0))
    assert r.fell_back and r.tries == 0 and np.array_equal(r.mask, mask)
    mask[11, 10:27] = True  # 27 pixels: 90 % is 24 < 25, also impossible
    r = vary_mask(mask, np.random.default_rng(0))
    assert r.fell_back and np.array_equal(r.mask, mask)
    empty = vary_mask(np.zeros((8, 8), bool), np.random.default_rng(0))
    assert empty.fell_back and empty.tries == 0 and not empty.mask.any()


def test_fallback_after_max_tries_is_counted():
    mask = disc((64, 64), (32, 32), 10)
    # thresholds of 1.0: no map in [0, 1] exceeds it, every candidate is empty
    r = vary_mask(
        mask,
        np.random.default_rng(0),
        max_tries=130,
        batch=64,
        threshold_low=1.0,
        threshold_high=1.0,
    )
    assert r.fell_back and r.tries == 130 and np.array_equal(r.mask, mask)


def test_min_pixels_scale_with_area():
    assert scaled_min_pixels(25, (256, 256)) == 25
    assert scaled_min_pixels(25, (128, 128)) == 6
    assert scaled_min_pixels(25, (64, 64)) == 2
    assert scaled_min_pixels(25, (512, 512)) == 100
    assert scaled_min_pixels(25, (8, 8)) == 1
    small = disc((64, 64), (30, 30), 2)  # 13 pixels: varies at 64x64 ...
    r = vary_mask(small, np.random.default_rng(0))
    assert not r.fell_back and 2 <= r.mask.sum() <= 0.9 * small.sum()
    big = np.zeros((256, 256), bool)
    big[:4, :4] = small[28:32, 28:32]  # ... but not at 256x256
    assert vary_mask(big, np.random.default_rng(0)).fell_back
    rng = np.random.default_rng(1)
    large = disc((512, 512), (256, 256), 30)
    for _ in range(5):
        assert vary_mask(large, rng).mask.sum() >= 100


def test_vary_mask_determinism():
    mask = disc((128, 128), (60, 70), 12)
    a = vary_mask(mask, np.random.default_rng(3))
    b = vary_mask(mask, np.random.default_rng(3))
    assert np.array_equal(a.mask, b.mask) and a.tries == b.tries


def test_batched_matches_reference_in_distribution():
    """Same criteria and field: accepted area and tries agree with the one-at-a-time loop."""
    mask = disc((64, 64), (30, 34), 6)
    rng = np.random.default_rng(8)
    fast = [vary_mask(mask, rng) for _ in range(300)]
    ref = [vary_mask_reference(mask, rng) for _ in range(300)]
    for stat in (lambda r: r.mask.sum() / mask.sum(), lambda r: r.tries):
        a = np.array([stat(r) for r in fast], float)
        b = np.array([stat(r) for r in ref], float)
        se = np.sqrt(a.var() / a.size + b.var() / b.size)
        assert abs(a.mean() - b.mean()) < 4.5 * se, (a.mean(), b.mean(), se)
    assert all(np.all(r.mask <= mask) for r in ref)


def test_bounding_box_and_bad_arguments():
    m = np.zeros((10, 12), bool)
    assert bounding_box(m) is None
    m[2:5, 7] = True
    assert bounding_box(m) == (2, 5, 7, 8)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="2D"):
        vary_mask(np.zeros((2, 3, 3), bool), rng)
    with pytest.raises(ValueError, match="max_fraction"):
        vary_mask(m, rng, max_fraction=1.5)
    with pytest.raises(ValueError, match="thresholds"):
        vary_mask(m, rng, threshold_low=0.9, threshold_high=0.1)
