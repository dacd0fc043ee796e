"""Intensity normalisation and the paper's augmentation (batched, equal to MONAI's chain)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from monai.transforms import Flip, Rotate, SpatialCrop, SpatialPad

from jointaug.classify.transforms import (
    NORM_PERCENTILE,
    AugmentParams,
    PaperAugment,
    apply_augment,
    crop_pad_px,
    pad_to_square,
    prepare_image,
    resize_area,
)


def counts(seed: int = 0, shape=(64, 64), scale: float = 10.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lam = np.zeros(shape)
    lam[8:-8, 8:-8] = scale
    lam[20:28, 20:28] = 8 * scale
    return rng.poisson(lam).astype(np.float32)


def test_prepare_image_is_dose_invariant_and_percentile_scaled():
    img = counts()
    a = prepare_image(img, 32)
    b = prepare_image(4.0 * img, 32)  # four times the dose: same normalised image
    assert a.shape == (32, 32) and a.dtype == np.float32
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert np.percentile(a, NORM_PERCENTILE) == pytest.approx(1.0, rel=1e-5)
    # sqrt compresses the 8x hot square to ~sqrt(8) x tissue
    ratio = a[12, 12] / a[6, 12]
    assert 2.0 < ratio < 4.0


def test_prepare_image_blank_and_non_square():
    assert np.all(prepare_image(np.zeros((40, 40)), 16) == 0)
    wide = np.ones((20, 40), np.float32)
    out = prepare_image(wide, 20)  # padded to 40 x 40 (centred), then halved
    assert out.shape == (20, 20)
    assert np.all(out[:5] == 0) and np.all(out[-5:] == 0) and np.all(out[5:15] > 0)
    with pytest.raises(ValueError, match="2D"):
        prepare_image(np.ones((2, 3, 4)), 8)


def test_resize_area_block_mean_and_general():
    x = np.arange(16, dtype=np.float32).reshape(4, 4)
    np.testing.assert_allclose(resize_area(x, 2), [[2.5, 4.5], [10.5, 12.5]])
    y = resize_area(np.ones((30, 30), np.float32), 16)
    assert y.shape == (16, 16) and np.allclose(y, 1.0, atol=1e-5)
    assert pad_to_square(np.ones((3, 5))).shape == (5, 5)


def test_crop_pad_scales_with_image_size():
    assert crop_pad_px(32, 256) == 32
    assert crop_pad_px(32, 64) == 8
    assert crop_pad_px(32, 128) == 16


def monai_chain(img: torch.Tensor, angle, flip_rows, flip_cols, dy, dx, pad) -> torch.Tensor:
    """The paper's augmentation with MONAI's transforms, one image (C, H, W)."""
    s = img.shape[-1]
    y = Rotate(
        angle=angle, keep_size=True, mode="bilinear", padding_mode="zeros", align_corners=False
    )(img)
    if flip_rows:
        y = Flip(spatial_axis=0)(y)
    if flip_cols:
        y = Flip(spatial_axis=1)(y)
    y = SpatialPad(spatial_size=(s + 2 * pad, s + 2 * pad))(y)
    y = SpatialCrop(roi_start=(pad + dy, pad + dx), roi_end=(pad + dy + s, pad + dx + s))(y)
    return torch.as_tensor(y)


@pytest.mark.parametrize(
    "angle,flip_rows,flip_cols,dy,dx",
    [
        (0.3, 0, 0, 0, 0),
        (0.3, 1, 0, 0, 0),
        (-0.5, 0, 1, 0, 0),
        (0.0, 0, 0, 3, -4),
        (-0.4, 1, 1, -4, 1),
        (0.52, 0, 1, 4, 4),
    ],
)
def test_batched_augmentation_equals_monai_chain(angle, flip_rows, flip_cols, dy, dx):
    pad = 4
    img = torch.rand(1, 32, 32, generator=torch.Generator().manual_seed(0))
    ref = monai_chain(img, angle, flip_rows, flip_cols, dy, dx, pad)
    params = AugmentParams(
        torch.tensor([angle]),
        torch.tensor([bool(flip_rows)]),
        torch.tensor([bool(flip_cols)]),
        torch.tensor([[dy, dx]]),
    )
    out = apply_augment(img[None], params)[0]
    assert out.shape == img.shape
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


def test_sampled_parameters_cover_the_paper_ranges():
    aug = PaperAugment(rotate_deg=30, flip_prob=0.5, crop_prob=0.5, pad_px=8)
    p = aug.sample(4000, torch.Generator().manual_seed(0))
    deg = torch.rad2deg(p.angle_rad)
    assert float(deg.abs().max()) <= 30.0 + 1e-4 and float(deg.abs().max()) > 29.0
    assert abs(float(deg.mean())) < 1.5  # uniform in [-30, 30]: mean 0, std 30/sqrt(3)
    assert abs(float(deg.std()) - 30 / math.sqrt(3)) < 1.0
    for flips in (p.flip_rows, p.flip_cols):
        assert 0.45 < float(flips.float().mean()) < 0.55
    cropped = (p.shift != 0).any(dim=1)
    assert 0.44 < float(cropped.float().mean()) < 0.53  # p = 0.5 (shift (0, 0) also possible)
    assert int(p.shift.abs().max()) == 8


def test_augmentation_keeps_size_and_is_reproducible_from_the_generator():
    x = torch.rand(6, 1, 24, 24)
    aug = PaperAugment(pad_px=3)
    a = aug(x, torch.Generator().manual_seed(7))
    b = aug(x, torch.Generator().manual_seed(7))
    c = aug(x, torch.Generator().manual_seed(8))
    assert a.shape == x.shape
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_pure_flip_and_shift_are_exact():
    x = torch.rand(2, 1, 16, 16)
    p = AugmentParams(
        torch.zeros(2),
        torch.tensor([True, False]),
        torch.tensor([False, True]),
        torch.tensor([[0, 0], [2, -1]]),
    )
    out = apply_augment(x, p)
    torch.testing.assert_close(out[0, 0], x[0, 0].flip(0), atol=1e-6, rtol=0)
    # image 1: horizontal flip, then the crop window moved by (+2 rows, -1 col)
    f = x[1, 0].flip(1)
    expect = torch.zeros_like(f)
    expect[:14, 1:] = f[2:, :15]
    torch.testing.assert_close(out[1, 0], expect, atol=1e-6, rtol=0)


def test_bad_augmentation_settings_are_rejected():
    with pytest.raises(ValueError, match="probabilities"):
        PaperAugment(flip_prob=1.5)
