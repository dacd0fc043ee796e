"""Composition of condition maps from tissue + region maps + an inflammation vector."""

from __future__ import annotations

import numpy as np
import pytest

from jointaug.config import PerlinConfig
from jointaug.masks.compose import compose_condition, condition_channels


def small_case():
    """A 40x50 'hand' with 3 labels: 1 a rectangle, 2 a disc, 3 a rectangle overlapping
    label 2 (regions are a label map, so overlap means 3 took some of 2's pixels)."""
    tissue = np.zeros((40, 50), np.uint8)
    tissue[5:35, 5:45] = 1
    tissue[10:14, 10:14] = 3  # the source's own clinician inflammation
    regions = np.zeros((40, 50), np.uint8)
    regions[8:16, 8:20] = 1
    yy, xx = np.mgrid[:40, :50]
    regions[(yy - 25) ** 2 + (xx - 30) ** 2 <= 36] = 2
    regions[22:30, 33:40] = 3
    return tissue, regions


def test_plain_composition_generic_labels_and_size():
    tissue, regions = small_case()
    c = compose_condition(tissue, regions, np.array([1, 2, 0]))
    assert c.condition.dtype == np.uint8 and c.condition.shape == (40, 50)
    expect = (tissue > 0).astype(np.uint8)
    expect[regions == 1] = 2
    expect[regions == 2] = 3
    assert np.array_equal(c.condition, expect)
    # label 3 is not inflamed: its pixels are normal tissue
    assert np.all(c.condition[regions == 3] == 1)
    # the source's clinician inflammation is no longer there (the vector decides)
    assert np.all(c.condition[10:14, 10:14] == 2)  # inside label 1's region, now low
    assert c.labels.dtype == np.float32 and c.labels.tolist() == [1.0, 1.0, 0.0]
    assert c.vector.tolist() == [1, 2, 0]
    assert not c.tries.any() and not c.fell_back.any() and not c.missing.any()


def test_source_inflammation_becomes_normal():
    tissue, regions = small_case()
    c = compose_condition(tissue, regions, np.zeros(3, np.int8))
    assert np.array_equal(c.condition, (tissue > 0).astype(np.uint8))
    assert c.labels.sum() == 0


def test_low_and_high_levels():
    tissue = np.ones((20, 20), np.uint8)
    regions = np.zeros((20, 20), np.uint8)
    regions[2:10, 2:10] = 1
    regions[8:16, 8:16] = 2
    cond = compose_condition(tissue, regions, np.array([2, 1])).condition
    assert np.all(cond[regions == 1] == 3) and np.all(cond[regions == 2] == 2)
    cond = compose_condition(tissue, regions, np.array([1, 2])).condition
    assert np.all(cond[regions == 1] == 2) and np.all(cond[regions == 2] == 3)
    # varied: only tissue values, nothing outside the regions
    rng = np.random.default_rng(0)
    for _ in range(10):
        c = compose_condition(tissue, regions, np.array([1, 2]), rng, PerlinConfig())
        assert set(np.unique(c.condition)) <= {1, 2, 3}
        assert np.all(c.condition[regions == 0] == 1)


def test_inflammation_clipped_to_hand_and_missing_regions():
    tissue = np.zeros((30, 30), np.uint8)
    tissue[:, :15] = 1
    regions = np.zeros((30, 30), np.uint8)
    regions[5:10, 10:20] = 1  # half outside the hand
    regions[20:25, 20:28] = 2  # entirely outside the hand
    c = compose_condition(tissue, regions, np.array([2, 1]))
    assert np.all(c.condition[5:10, 10:15] == 3)
    assert np.all(c.condition[:, 15:] == 0)  # nothing painted outside the hand
    assert c.missing.tolist() == [False, True]
    assert c.labels.tolist() == [1.0, 1.0]  # the label stays as sampled


def test_perlin_variation_subsets_and_counters():
    tissue = np.ones((64, 64), np.uint8)
    regions = np.zeros((64, 64), np.uint8)
    yy, xx = np.mgrid[:64, :64]
    regions[(yy - 20) ** 2 + (xx - 20) ** 2 <= 64] = 1  # 197 px disc
    regions[(yy - 45) ** 2 + (xx - 45) ** 2 <= 49] = 2
    regions[5, 60] = 3  # one pixel: cannot be varied (90 % of 1 px < 1 px)
    rng = np.random.default_rng(1)
    varied_any = False
    for _ in range(20):
        c = compose_condition(
            tissue, regions, np.array([1, 2, 1]), rng, {"min_pixels": 25, "max_fraction": 0.9}
        )
        low, high = c.condition == 2, c.condition == 3
        assert not np.any(low & ~np.isin(regions, [1, 3]))
        assert not np.any(high & ~(regions == 2))
        for lab, m in ((1, low & (regions == 1)), (2, high)):
            n, area = int(m.sum()), int((regions == lab).sum())
            assert 2 <= n <= 0.9 * area  # min 25 at 256x256 -> round(25/16) = 2 at 64x64
        varied_any |= bool(low.sum() < (regions == 1).sum())
        assert c.tries[0] >= 1 and c.tries[1] >= 1 and not c.fell_back[:2].any()
        assert c.fell_back[2] and c.tries[2] == 0 and c.condition[5, 60] == 2
        assert c.n_fell_back == 1 and c.total_tries == int(c.tries.sum())
    assert varied_any


def test_perlin_none_means_no_variation_and_rng_required():
    tissue, regions = small_case()
    a = compose_condition(tissue, regions, np.array([1, 1, 2]), np.random.default_rng(0), None)
    b = compose_condition(tissue, regions, np.array([1, 1, 2]))
    assert np.array_equal(a.condition, b.condition)
    with pytest.raises(ValueError, match="rng"):
        compose_condition(tissue, regions, np.array([1, 1, 2]), None, PerlinConfig())


def test_perlin_composition_deterministic():
    tissue, regions = small_case()
    v = np.array([1, 2, 1])
    a = compose_condition(tissue, regions, v, np.random.default_rng(5), PerlinConfig())
    b = compose_condition(tissue, regions, v, np.random.default_rng(5), PerlinConfig())
    assert np.array_equal(a.condition, b.condition) and np.array_equal(a.tries, b.tries)


def test_bad_inputs():
    tissue, regions = small_case()
    with pytest.raises(ValueError, match="same shape"):
        compose_condition(tissue, regions[:, :10], np.zeros(3))
    with pytest.raises(ValueError, match="0 \\(none\\), 1 \\(low\\) or 2"):
        compose_condition(tissue, regions, np.array([0, 3, 0]))
    with pytest.raises(ValueError, match="vector has 2 labels"):
        compose_condition(tissue, regions, np.array([1, 0]))
    with pytest.raises(TypeError):
        compose_condition(tissue, regions, np.zeros(3), np.random.default_rng(0), perlin=5)
    with pytest.raises(ValueError):  # unknown PerlinConfig field
        compose_condition(tissue, regions, np.zeros(3), np.random.default_rng(0), {"nope": 1})


def test_condition_channels():
    cond = np.array([[0, 1, 2], [3, 1, 0]], np.uint8)
    ch = condition_channels(cond)
    assert ch.shape == (3, 2, 3) and ch.dtype == np.float32
    assert ch[0].tolist() == [[0, 1, 1], [1, 1, 0]]  # normal covers the whole hand
    assert ch[1].tolist() == [[0, 0, 1], [0, 0, 0]]
    assert ch[2].tolist() == [[0, 0, 0], [1, 0, 0]]
    batch = condition_channels(np.stack([cond, cond * 0]))
    assert batch.shape == (2, 3, 2, 3) and batch[1].sum() == 0
    # a composed condition and a clinician map of the same layout look the same
    tissue, regions = small_case()
    c = compose_condition(tissue, regions, np.array([0, 0, 2]))
    clinician = (tissue > 0).astype(np.uint8)
    clinician[regions == 3] = 3
    assert np.array_equal(condition_channels(c.condition), condition_channels(clinician))


def test_min_fraction_varies_regions_too_small_for_min_pixels():
    """At 64x64, min_pixels 400 (at 256) is 25 px: a 13-px 'finger joint' is left whole by
    the paper's rule; with min_fraction 0.5 it is varied keeping >= 7 px, while a 197-px
    'wrist' keeps the paper's rule (>= 25 px) either way."""
    from jointaug.masks.perlin import region_min_pixels

    tissue = np.ones((64, 64), np.uint8)
    regions = np.zeros((64, 64), np.uint8)
    yy, xx = np.mgrid[:64, :64]
    regions[(yy - 20) ** 2 + (xx - 20) ** 2 <= 64] = 1  # 197 px
    regions[(yy - 48) ** 2 + (xx - 48) ** 2 <= 4] = 2  # 13 px
    finger = int((regions == 2).sum())
    paper = {"min_pixels": 400, "max_fraction": 0.9}
    rng = np.random.default_rng(3)
    for _ in range(10):
        c = compose_condition(tissue, regions, np.array([2, 2]), rng, paper)
        assert c.fell_back[1] and int((c.condition == 3)[regions == 2].sum()) == finger
    varied = 0
    for _ in range(10):
        c = compose_condition(tissue, regions, np.array([2, 2]), rng, paper | {"min_fraction": 0.5})
        kept = int((c.condition == 3)[regions == 2].sum())
        assert int(np.ceil(0.5 * finger)) <= kept <= 0.9 * finger
        assert 25 <= int((c.condition == 3)[regions == 1].sum()) <= 0.9 * 197
        varied += not c.fell_back[1]
    assert varied == 10
    assert region_min_pixels(197, 25, 0.9, 0.5) == 25  # the paper's rule applies
    assert region_min_pixels(13, 25, 0.9, 0.5) == 7
    assert region_min_pixels(13, 25, 0.9, 0.0) == 25  # off: left whole (fell back)


def test_min_fraction_off_keeps_set_keys():
    """Sets made before min_fraction existed keep their settings key."""
    from jointaug.keys import perlin_settings

    assert "min_fraction" not in perlin_settings(PerlinConfig())
    assert perlin_settings(PerlinConfig(min_fraction=0.5))["min_fraction"] == 0.5
    assert perlin_settings(None) is None
