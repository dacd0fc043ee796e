"""Two-hand layout: orientation, mirroring, R/L sides, sizes (numpy only)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from jointaug.dataset.format import HAND_JOINTS, HAND_LABELS
from jointaug.natural.labelstudio import PhotoLabels
from jointaug.natural.layout import (
    extend_down,
    finger_direction,
    landmarks,
    make_scene,
    thumb_side,
)
from jointaug.natural.regions import regions_from_labels
from jointaug.natural.standin_folder import PhotoStyle, make_photo

ID = {name: i + 1 for i, name in enumerate(HAND_LABELS)}


def photo(aspect: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    rgb, truth = make_photo("1", "Hand_1.jpg", aspect, rng, style=PhotoStyle(pose="open"))
    h, w = truth.hand.shape
    lab = PhotoLabels(
        "Hand_1.jpg",
        keypoints={
            j: (x / w, y / h)
            for j, (x, y) in zip(
                HAND_JOINTS,
                truth.joints,
                strict=True,
            )
        },
    )
    return rgb, truth.hand, regions_from_labels(lab, (h, w), truth.hand)


def centroid(regions, *names):
    rr, cc = np.nonzero(np.isin(regions, [ID[n] for n in names]))
    return rr.mean(), cc.mean()


@pytest.mark.parametrize("aspect", ["dorsal right", "palmar right"])
@pytest.mark.parametrize("turn_deg", [0, 70, 180])
def test_scene_has_right_hand_left_thumbs_in_fingers_up(aspect, turn_deg):
    rgb, hand, regions = photo(aspect)
    if turn_deg:
        rgb = np.stack(
            [ndimage.rotate(rgb[..., k], turn_deg, order=1, cval=240) for k in range(3)], -1
        )
        hand = ndimage.rotate(hand.astype(np.uint8), turn_deg, order=0) > 0
        regions = ndimage.rotate(regions, turn_deg, order=0)
    scene = make_scene(rgb, hand, regions, 128, np.random.default_rng(1), aspect=aspect)
    assert scene.image.dtype == np.uint16 and scene.image.shape == (128, 128)
    assert set(np.unique(scene.tissue)) == {0, 1}
    assert np.all(scene.tissue[scene.regions > 0] == 1)
    assert np.all(scene.image[scene.tissue == 0] == 0) and scene.image[scene.tissue == 1].min() > 0
    r_ids = scene.regions[(scene.regions >= 1) & (scene.regions <= 15)]
    l_ids = scene.regions[scene.regions >= 16]
    assert len(np.unique(r_ids)) == 15 and len(np.unique(l_ids)) == 15
    # palmar convention: R on the image's left, L on the right
    _, r_col = centroid(scene.regions, *[f"R_{j}" for j in ("wrist", "mcp3", "pip3")])
    _, l_col = centroid(scene.regions, *[f"L_{j}" for j in ("wrist", "mcp3", "pip3")])
    assert r_col < 64 < l_col
    for side, inward in (("R", 1), ("L", -1)):
        # fingers up: DIPs above MCPs above the wrist
        dip_r, _ = centroid(scene.regions, *[f"{side}_dip{k}" for k in range(2, 6)])
        mcp_r, mcp_c = centroid(scene.regions, *[f"{side}_mcp{k}" for k in range(2, 6)])
        wrist_r, _ = centroid(scene.regions, f"{side}_wrist")
        assert dip_r < mcp_r < wrist_r
        # thumbs point to the image centre
        _, thumb_c = centroid(scene.regions, f"{side}_mcp1", f"{side}_ip1")
        assert (thumb_c - mcp_c) * inward > 0
    # one copy is mirrored: which one depends on which way the photo's thumb pointed
    assert scene.mirrored == ("R" if aspect == "dorsal right" else "L")


def test_scene_size_matches_phantom_proportions():
    rgb, hand, regions = photo("palmar left", seed=2)
    for seed in range(3):
        scene = make_scene(rgb, hand, regions, 256, np.random.default_rng(seed))
        rows = np.nonzero(scene.tissue.any(1))[0]
        assert 0.03 * 256 <= rows[0] <= 0.11 * 256  # finger tips near the top, like the phantom
        assert rows[-1] == 255  # forearms leave the image at the bottom
        wrist_r, _ = centroid(scene.regions, "R_wrist")
        length = (wrist_r - rows[0]) / 256
        assert 0.3 < length <= 0.63
        cols = np.nonzero(scene.tissue.any(0))[0]
        assert cols[0] >= 2 and cols[-1] <= 253
        assert ndimage.label(scene.tissue)[1] == 2  # two hands, apart


def test_scene_without_joint_map_uses_aspect_and_silhouette():
    rgb, hand, regions = photo("palmar right", seed=4)
    scene = make_scene(rgb, hand, None, 128, np.random.default_rng(0), aspect="palmar right")
    assert scene.regions.max() == 0 and scene.tissue.sum() > 0
    assert scene.mirrored == "L"  # palmar right: thumb on the right, the image-left copy as is


def test_helpers_on_simple_shapes():
    mask = np.zeros((60, 40), bool)
    mask[10:60, 15:25] = True  # touches the bottom border
    dx, dy = finger_direction(mask)
    assert dy < -0.99  # away from the border: up
    assert finger_direction(mask.T)[0] < -0.99  # touches the right border: points left
    assert (
        thumb_side(None, "dorsal right") == "left" and thumb_side(None, "palmar right") == "right"
    )
    top, wrist_row, wrist_col = landmarks(mask, None)
    assert top == 10 and wrist_row == 59 and wrist_col == 19.5
    m = np.zeros((10, 8), bool)
    m[2:5, 1:6] = True
    m[5, 1:3] = True
    m[5, 4:5] = True
    layer = np.arange(80, dtype=np.float32).reshape(10, 8)
    extend_down(m, layer, back=0)
    assert m[9].tolist() == [False, True, True, False, False, False, False, False]
    assert layer[9, 1] == layer[5, 1] and layer[9, 5] == 0


def test_empty_mask_is_an_error():
    with pytest.raises(ValueError, match="empty hand mask"):
        make_scene(
            np.zeros((10, 10, 3), np.uint8),
            np.zeros((10, 10), bool),
            None,
            32,
            np.random.default_rng(0),
        )
