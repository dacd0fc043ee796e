"""The U-Net joint segmenter: crops, training, Dice, weight cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jointaug.config import NaturalConfig
from jointaug.init import kaiming_uniform_
from jointaug.natural.joints import (
    N_CLASSES,
    build_unet,
    data_key,
    dice_per_class,
    load_segmenter,
    predict,
    save_segmenter,
    split_indices,
    train_segmenter,
    write_dice_csv,
)
from jointaug.natural.segdata import CropBox, crop_input, crop_labels, hand_box, uncrop_labels

CFG = NaturalConfig(
    segmenter_image_size=32,
    segmenter_channels=[8, 16],
    segmenter_epochs=12,
    segmenter_batch_size=4,
    segmenter_lr=3e-3,
    segmenter_val_fraction=0.25,
)


def toy_data(n: int = 8, size: int = 32, seed: int = 0):
    """Images with a bright square whose position is its label (class 1..3)."""
    rng = np.random.default_rng(seed)
    x = np.full((n, 3, size, size), 1.0, np.float32)
    y = np.zeros((n, size, size), np.int64)
    for i in range(n):
        for k, col in enumerate((4, 14, 24), start=1):
            r = int(rng.integers(4, 20))
            x[i, :, r : r + 6, col : col + 5] = np.array([0.2 * k, 0.5, 0.9 - 0.2 * k])[
                :, None, None
            ]
            y[i, r : r + 6, col : col + 5] = k
    return x, y


def test_dice_per_class_by_hand():
    t = np.array([[0, 1, 1], [2, 2, 0]])
    p = np.array([[0, 1, 0], [2, 2, 2]])
    d = dice_per_class(p, t, n_classes=4)
    assert d[1] == pytest.approx(2 * 1 / 3) and d[2] == pytest.approx(2 * 2 / 5)
    assert d[0] == pytest.approx(2 * 1 / 4) and np.isnan(d[3])


def test_split_keeps_one_for_validation():
    tr, va = split_indices(10, 0.2, 0)
    assert len(va) == 2 and set(tr) | set(va) == set(range(10)) and not set(tr) & set(va)
    assert len(split_indices(1, 0.2, 0)[1]) == 0


def test_crop_round_trip():
    rgb = np.full((40, 60, 3), 200, np.uint8)
    hand = np.zeros((40, 60), bool)
    hand[5:35, 20:32] = True
    rgb[hand] = (180, 120, 90)
    x, box = crop_input(rgb, hand, 16)
    assert x.shape == (3, 16, 16) and x.max() <= 1.0
    assert box == hand_box(hand)
    regions = hand.astype(np.uint8) * 3
    y = crop_labels(regions, box, 16)
    back = uncrop_labels(y, box, (40, 60))
    assert (back == 3).sum() == pytest.approx(hand.sum(), rel=0.15)
    assert not back[:, :15].any()
    assert uncrop_labels(np.ones((4, 4)), CropBox(-10, -10, 5), (8, 8)).sum() == 0


def test_unet_shapes_and_kaiming_uniform_init():
    net = build_unet([8, 16, 32])
    kaiming_uniform_(net, torch.Generator().manual_seed(0))
    out = net(torch.zeros(2, 3, 32, 32))
    assert out.shape == (2, N_CLASSES, 32, 32)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs
    for m in convs:
        fan_in = m.weight[0].numel()
        bound = np.sqrt(6.0 / fan_in)  # kaiming uniform, leaky_relu slope 0
        w = m.weight.detach().abs()
        assert float(w.max()) <= bound + 1e-6 and float(w.max()) > 0.8 * bound
        assert m.bias is None or float(m.bias.detach().abs().max()) == 0.0


def test_training_lowers_the_loss_and_is_deterministic(tmp_path):
    x, y = toy_data()
    a = train_segmenter(x, y, CFG, seed=3)
    assert a.losses[-1] < 0.7 * a.losses[0]
    assert a.n_train == 6 and a.n_val == 2
    assert np.nanmean(a.val_dice[1:4]) > 0.2
    b = train_segmenter(x, y, CFG, seed=3, epochs=2)
    c = train_segmenter(x, y, CFG, seed=3, epochs=2)
    for (ka, va), (_, vb) in zip(
        b.model.state_dict().items(), c.model.state_dict().items(), strict=True
    ):
        assert torch.equal(va, vb), ka
    # cache: same data and settings load, anything else does not
    key = data_key(x, y, CFG, 3)
    save_segmenter(tmp_path / "seg.safetensors", a, key)
    loaded = load_segmenter(tmp_path / "seg.safetensors", CFG, key)
    assert loaded is not None and loaded.losses == pytest.approx(a.losses)
    assert np.array_equal(predict(loaded.model, x), predict(a.model, x))
    assert load_segmenter(tmp_path / "seg.safetensors", CFG, data_key(x, y, CFG, 4)) is None
    assert load_segmenter(tmp_path / "missing.safetensors", CFG, key) is None
    write_dice_csv(tmp_path / "dice.csv", a)
    lines = (tmp_path / "dice.csv").read_text().splitlines()
    assert lines[0] == "joint,val_dice,n_train,n_val" and lines[1].startswith("wrist,")
    assert len(lines) == 17 and lines[-1].startswith("mean,")


def test_no_labelled_photos_is_an_error():
    with pytest.raises(ValueError, match="no labelled photos"):
        train_segmenter(np.zeros((0, 3, 8, 8), np.float32), np.zeros((0, 8, 8), np.int64), CFG, 0)
