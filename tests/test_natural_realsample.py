"""Checks on the 196 real 11k Hands photos in ../shared (skipped where that folder is absent)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from jointaug.natural.background import hand_mask
from jointaug.natural.check import hands11k_check
from jointaug.natural.hands11k import load_photo, photo_path, read_hand_info, select_photos

SAMPLE = Path(
    os.environ.get(
        "JOINTAUG_HANDS11K_SAMPLE",
        Path(__file__).resolve().parents[2] / "shared" / "data" / "hands11k-sample",
    )
)
pytestmark = pytest.mark.skipif(
    not (SAMPLE / "HandInfo.csv").is_file(), reason=f"real 11k sample not at {SAMPLE}"
)


def test_real_csv_reads_with_string_ids():
    recs = read_hand_info(SAMPLE)
    assert len(recs) == 196
    assert all(len(r.id) == 7 and r.id.isdigit() for r in recs)
    assert {r.aspect for r in recs} == {
        "dorsal right",
        "dorsal left",
        "palmar right",
        "palmar left",
    }


def test_masks_are_one_hand_sized_blob_leaving_through_the_bottom():
    recs = read_hand_info(SAMPLE)
    bottom = 0
    for r in recs[::4]:
        rgb = load_photo(photo_path(SAMPLE, r.image_name))
        m = hand_mask(rgb)
        assert 0.1 < m.mean() < 0.5, r.image_name  # a hand, not paper, not nothing
        bottom += bool(m[-1].any())
    assert bottom >= 0.9 * len(recs[::4])  # 11k hands enter from the bottom edge


def test_filters_keep_open_accessory_free_photos():
    recs = read_hand_info(SAMPLE)
    kept, decisions = select_photos(SAMPLE, recs, 500, 4, np.random.default_rng(0))
    assert 20 <= len(kept) <= 80
    assert all(r.accessories == 0 for r in kept)
    assert any(d.reason.startswith("closed") for d in decisions)


@pytest.mark.slow
def test_check_montage_pages(tmp_path):
    pages, rows = hands11k_check(SAMPLE, tmp_path / "m.png", tile_px=48)
    assert len(rows) == 196 and len(pages) == 5
    assert pages[1].name == "m_2.png" and (tmp_path / "m.csv").is_file()
