"""Counts <-> [-1, 1] mapping and resampling (numpy only, no torch)."""

import numpy as np
import pytest

from jointaug.diffusion.intensity import (
    IntensityMap,
    area_resize,
    downsample_channels,
    downsample_counts,
    fit_intensity,
    poisson_counts,
    upsample_nearest,
)


@pytest.mark.parametrize("mode", ["sqrt", "linear"])
@pytest.mark.parametrize("offset", [0.0, -0.7])
def test_mapping_round_trip(mode, offset):
    m = IntensityMap(scale=80.0, mode=mode, offset=offset)
    counts = np.linspace(0, 80, 1001)
    y = m.to_model(counts)
    lo, hi = m.model_range
    assert y.min() == pytest.approx(lo) and y.max() == pytest.approx(hi, abs=1e-6)
    assert np.all(np.diff(y) > 0)  # strictly increasing
    np.testing.assert_allclose(m.to_counts(y), counts, rtol=1e-5, atol=1e-4)


def test_mapping_clips_outside_range():
    m = IntensityMap(scale=10.0)
    assert m.to_model(np.array([25.0]))[0] == pytest.approx(1.0)
    assert m.to_counts(np.array([3.0]))[0] == pytest.approx(10.0)
    assert m.to_counts(np.array([-7.0]))[0] == 0.0


def test_sqrt_mapping_values():
    m = IntensityMap(scale=100.0)
    # y = 2 sqrt(c / s) - 1: 25 counts -> 0, 0 -> -1, 100 -> 1
    np.testing.assert_allclose(
        m.to_model(np.array([0.0, 25.0, 100.0])), [-1.0, 0.0, 1.0], atol=1e-6
    )


def test_fit_intensity_scale_is_max_and_centres():
    rng = np.random.default_rng(0)
    imgs = rng.gamma(2.0, 3.0, size=(5, 16, 16)).astype(np.float32)
    m = fit_intensity(imgs)
    assert m.scale == pytest.approx(float(imgs.max()))
    y = m.to_model(imgs)
    assert abs(float(y.mean())) < 1e-5  # centred
    assert y.max() <= m.model_range[1] + 1e-6
    assert fit_intensity(imgs, centre=False).offset == 0.0
    with pytest.raises(ValueError, match="no positive counts"):
        fit_intensity(np.zeros((2, 4, 4)))


def test_json_round_trip():
    m = IntensityMap(12.5, "linear", -0.25)
    assert IntensityMap.from_json(m.to_json()) == m
    with pytest.raises(ValueError):
        IntensityMap(0.0)
    with pytest.raises(ValueError):
        IntensityMap(1.0, mode="log")


def test_downsample_counts_block_means():
    rng = np.random.default_rng(1)
    img = rng.poisson(5.0, size=(256, 256)).astype(np.float32)
    small = downsample_counts(img, 128)
    assert small.shape == (128, 128)
    np.testing.assert_allclose(small, img.reshape(128, 2, 128, 2).mean(axis=(1, 3)), rtol=1e-5)
    assert small.mean() == pytest.approx(img.mean(), rel=1e-5)  # counts preserved in mean


def test_area_resize_non_integer_factor_preserves_mean():
    rng = np.random.default_rng(2)
    img = rng.random((10, 7))
    out = area_resize(img, (4, 3))
    assert out.shape == (4, 3)
    assert out.mean() == pytest.approx(img.mean(), rel=1e-6)
    # a constant image stays constant
    np.testing.assert_allclose(area_resize(np.full((10, 7), 3.0), (4, 3)), 3.0, rtol=1e-6)


def test_condition_channels_keep_small_hot_spot():
    cond = np.zeros((256, 256), dtype=np.uint8)
    cond[40:200, 40:200] = 1
    cond[100:103, 100:103] = 3  # a 9-pixel hot spot, far smaller than an 8x8 block
    chans = np.stack([cond > 0, cond == 2, cond == 3]).astype(np.float32)
    small = downsample_channels(chans, 32)
    assert small.shape == (3, 32, 32)
    assert small[2].max() > 0  # survives
    assert small[2].sum() * 64 == pytest.approx(9.0)  # area preserved, not grown
    assert small[0].sum() * 64 == pytest.approx(160 * 160)
    assert small.min() >= 0 and small.max() <= 1


def test_upsample_nearest_replicates_blocks():
    a = np.arange(16, dtype=np.float32).reshape(4, 4)
    up = upsample_nearest(a, (8, 8))
    np.testing.assert_array_equal(up, np.kron(a, np.ones((2, 2))))
    assert upsample_nearest(a, (6, 10)).shape == (6, 10)


def test_downsample_then_upsample_keeps_total_counts():
    rng = np.random.default_rng(3)
    img = rng.poisson(4.0, size=(64, 64)).astype(np.float32)
    back = upsample_nearest(downsample_counts(img, 16), (64, 64))
    assert back.sum() == pytest.approx(img.sum(), rel=1e-5)


def test_poisson_counts():
    rate = np.full((64, 64), 7.5, dtype=np.float32)
    a = poisson_counts(rate, np.random.default_rng(5))
    b = poisson_counts(rate, np.random.default_rng(5))
    assert a.dtype == np.uint16 and a.shape == rate.shape
    np.testing.assert_array_equal(a, b)
    assert a.mean() == pytest.approx(7.5, rel=0.05)
    assert poisson_counts(np.zeros((3, 3)), np.random.default_rng(0)).sum() == 0
    with pytest.raises(ValueError):
        poisson_counts(np.array([[-1.0]]), np.random.default_rng(0))
