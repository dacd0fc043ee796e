"""The paper's background heuristic and the openness check, on synthetic photos (numpy only)."""

from __future__ import annotations

import numpy as np
import pytest

from jointaug.natural.background import hand_mask, neutral_pixels
from jointaug.natural.openness import count_fingers, disk_opening, is_open_hand, palm_radius
from jointaug.natural.standin import SKIN_TONES, hand_geometry, hand_sdf, render_photo

SKIN = np.array([205, 148, 112], np.uint8)


def paper(h: int = 120, w: int = 160) -> np.ndarray:
    """White paper with a grey gradient (neutral everywhere)."""
    level = np.linspace(250, 215, w)[None, :].repeat(h, 0)
    return np.repeat(level[..., None], 3, axis=2).astype(np.uint8)


def test_threshold_is_ten_percent_of_range():
    rgb = np.array(
        [[[200, 200, 175], [200, 200, 174], [30, 10, 10]]], np.uint8
    )  # chroma 25, 26, 20
    assert neutral_pixels(rgb).tolist() == [[True, False, True]]
    # float input in [0, 1] is scaled the same way
    assert neutral_pixels(rgb.astype(np.float32) / 255).tolist() == [[True, False, True]]


def test_grey_shadow_is_background_and_hand_is_kept():
    rgb = paper()
    rgb[30:90, 60:100] = SKIN
    rgb[90:100, 60:100] = (150, 150, 150)  # a grey shadow below the hand
    rgb[30:90, 100:106] = (120, 121, 119)  # a darker shadow beside it
    m = hand_mask(rgb)
    expected = np.zeros(m.shape, bool)
    expected[30:90, 60:100] = True
    assert np.array_equal(m, expected)


def test_enclosed_paper_between_touching_fingers_becomes_hand():
    rgb = paper()
    rgb[60:110, 40:120] = SKIN  # palm
    for x0 in (40, 60, 80, 100):  # four fingers
        rgb[10:60, x0 : x0 + 12] = SKIN
    rgb[10:16, 40:112] = SKIN  # finger tips touching: the gaps are closed at the top
    m = hand_mask(rgb)
    assert m[30, 55] and m[30, 75]  # the enclosed gaps are hand now
    assert not m[5, 55] and not m[30, 130]  # outside paper stays background


def test_gap_open_to_the_border_stays_background():
    rgb = paper()
    rgb[60:110, 40:120] = SKIN
    for x0 in (40, 60, 80, 100):
        rgb[10:60, x0 : x0 + 12] = SKIN
    m = hand_mask(rgb)
    assert not m[30, 55]


def test_stray_coloured_blob_is_removed_and_largest_component_kept():
    rgb = paper()
    rgb[30:100, 50:110] = SKIN
    rgb[5:12, 5:12] = (20, 60, 200)  # a stray blue pen mark
    rgb[110:114, 140:150] = (200, 30, 30)
    m = hand_mask(rgb)
    assert m[60, 80]
    assert not m[8, 8] and not m[112, 145]
    assert m.sum() == 70 * 60


def test_blank_photo_gives_empty_mask():
    assert not hand_mask(paper()).any()


def test_rejects_non_rgb_input():
    with pytest.raises(ValueError, match="RGB"):
        hand_mask(np.zeros((10, 10)))


def test_disk_opening_removes_thin_and_keeps_thick():
    m = np.zeros((60, 60), bool)
    m[10:50, 10:50] = True  # thick block
    m[0:10, 28:32] = True  # thin stick (half-width 2)
    opened = disk_opening(m, 5)
    assert not opened[3, 30]  # the stick is gone
    assert opened[30, 30] and opened[10, 30] and opened[30, 10]  # block and its sides stay
    assert not opened[10, 10]  # a convex corner is rounded off by the disc
    assert not (opened & ~m).any()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_openness_accepts_open_and_rejects_closed_stand_in_hands(seed):
    rng = np.random.default_rng(seed)
    for pose, want_open in (("open", True), ("together", False), ("fist", False)):
        geom = hand_geometry(400, 300, rng, pose=pose)
        mask = hand_sdf(geom, (300, 400)) < 0
        assert is_open_hand(mask) == want_open, (pose, count_fingers(mask))


def test_openness_on_rendered_photo_matches_silhouette():
    rng = np.random.default_rng(5)
    geom = hand_geometry(400, 300, rng, pose="open")
    photo = render_photo(geom, (300, 400), rng, SKIN_TONES[2], "dorsal")
    truth = hand_sdf(geom, (300, 400)) < 0
    m = hand_mask(photo)
    iou = (m & truth).sum() / (m | truth).sum()
    assert iou > 0.95
    assert count_fingers(m) == 5
    assert palm_radius(m) > 20
