"""The hierarchical inflammation sampler: marginals, at-least-one rules, exclusion, seeds."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from jointaug.config import SamplerConfig
from jointaug.dataset.format import HAND_LABELS, DatasetMeta
from jointaug.masks.sampler import (
    bernoulli_at_least_one,
    exclusion_mask,
    groups_from_meta,
    sample_inflammation,
    sample_with_config,
)

HANDS = [list(range(15)), list(range(15, 30))]


def draw(n, groups=HANDS, n_labels=30, seed=0, **kw):
    rng = np.random.default_rng(seed)
    return np.stack([sample_inflammation(groups, n_labels, rng, **kw) for _ in range(n)])


def assert_close(observed: float, expected: float, n: int, sigmas: float = 4.5):
    """|observed - expected| within ``sigmas`` binomial standard errors."""
    se = math.sqrt(max(expected * (1 - expected), 1e-12) / n)
    assert abs(observed - expected) <= sigmas * se, (observed, expected, se)


@pytest.fixture(scope="module")
def hand_draws():
    return draw(20000, seed=1)


def test_vector_type_and_values(hand_draws):
    assert hand_draws.dtype == np.int8 and hand_draws.shape == (20000, 30)
    assert set(np.unique(hand_draws)) <= {0, 1, 2}


def test_paper_marginals(hand_draws):
    v = hand_draws
    n = len(v)
    inflamed = v.any(axis=1)
    # P(any) = p_any exactly: all-zero vectors only come from the first decision
    assert_close(inflamed.mean(), 0.9, n)
    # P(hand | image inflamed) with "at least one hand": 0.75 / (1 - 0.25**2) = 0.8
    for g in HANDS:
        hand_on = (v[:, g] > 0).any(axis=1)
        assert_close(hand_on[inflamed].mean(), 0.75 / (1 - 0.25**2), inflamed.sum())
        assert_close(hand_on.mean(), 0.9 * 0.8, n)
        # P(joint | hand inflamed) = 0.5 / (1 - 0.5**15)
        joints = v[hand_on][:, g] > 0
        assert_close(joints.mean(), 0.5 / (1 - 0.5**15), joints.size)
    # low / high split
    levels = v[v > 0]
    assert_close((levels == 2).mean(), 0.5, levels.size)


def test_at_least_one_hand_when_inflamed(hand_draws):
    inflamed = hand_draws.any(axis=1)
    n_hands = sum((hand_draws[:, g] > 0).any(axis=1).astype(int) for g in HANDS)
    assert np.all(n_hands[inflamed] >= 1)
    # both hands inflamed happens (0.75**2 / 0.9375 = 0.6 of inflamed images)
    assert_close((n_hands[inflamed] == 2).mean(), 0.6, inflamed.sum())


def test_forcing_keeps_p_any_even_when_groups_rarely_fire():
    # without the at-least-one rules most vectors would be all zero
    v = draw(6000, groups=[[0, 1, 2], [3, 4]], n_labels=5, p_group=0.05, p_label=0.05)
    assert_close(v.any(axis=1).mean(), 0.9, len(v))
    inflamed = v[v.any(axis=1)]
    for g in ([0, 1, 2], [3, 4]):
        on = (inflamed[:, g] > 0).any(axis=1)
        expect = 0.05 / (1 - 0.95**2)
        assert_close(on.mean(), expect, len(on))


def test_small_groups_exact_conditional_marginals():
    groups = [[0, 1, 2], [3, 4], [5]]
    v = draw(15000, groups=groups, n_labels=6, seed=3)
    inflamed = v[v.any(axis=1)]
    p_group = 0.75 / (1 - 0.25**3)
    for g in groups:
        on = (inflamed[:, g] > 0).any(axis=1)
        assert_close(on.mean(), p_group, len(on))
        joints = inflamed[on][:, g] > 0
        assert_close(joints.mean(), 0.5 / (1 - 0.5 ** len(g)), joints.size)
        # an inflamed group always has an inflamed label (our documented rule)
        assert np.all(joints.any(axis=1))


def test_zero_probabilities_force_exactly_one():
    v = draw(500, groups=[[0, 1, 2], [3, 4, 5]], n_labels=6, p_any=1.0, p_group=0.0, p_label=0.0)
    n_groups = (v[:, :3] > 0).any(axis=1).astype(int) + (v[:, 3:] > 0).any(axis=1)
    assert np.all(n_groups == 1)
    assert np.all((v > 0).sum(axis=1) == 1)
    # the forced one is uniform over groups and labels
    assert 0.4 < (v[:, :3] > 0).any(axis=1).mean() < 0.6
    assert np.all(np.bincount(np.argmax(v > 0, axis=1), minlength=6) > 40)


def test_extreme_probabilities():
    assert not draw(200, p_any=0.0).any()
    full = draw(50, p_any=1.0, p_group=1.0, p_label=1.0, p_high=1.0)
    assert np.all(full == 2)
    low_only = draw(50, p_any=1.0, p_high=0.0)
    assert low_only.any(axis=1).all() and np.all(low_only[low_only > 0] == 1)


def test_bernoulli_at_least_one_exact_law():
    rng = np.random.default_rng(7)
    n, p, draws = 3, 0.3, 30000
    counts = {}
    for _ in range(draws):
        key = tuple(bernoulli_at_least_one(n, p, rng).astype(int))
        counts[key] = counts.get(key, 0) + 1
    assert (0, 0, 0) not in counts
    norm = 1 - (1 - p) ** n
    for pattern in itertools.product((0, 1), repeat=n):
        if not any(pattern):
            continue
        k = sum(pattern)
        expected = p**k * (1 - p) ** (n - k) / norm
        assert_close(counts.get(pattern, 0) / draws, expected, draws)


def test_exclusion():
    exclude = exclusion_mask(HAND_LABELS, ["wrist"])
    assert np.flatnonzero(exclude).tolist() == [0, 15]
    v = draw(5000, exclude=exclude, seed=4)
    assert not v[:, exclude].any()
    # the at-least-one rules still hold over the eligible labels
    assert_close(v.any(axis=1).mean(), 0.9, len(v))
    hand_on = (v[:, :15] > 0).any(axis=1)
    joints = v[hand_on][:, 1:15] > 0
    assert_close(joints.mean(), 0.5 / (1 - 0.5**14), joints.size)


def test_group_fully_excluded_is_never_inflamed():
    exclude = np.zeros(30, bool)
    exclude[:15] = True
    v = draw(2000, exclude=exclude, seed=5)
    assert not v[:, :15].any()
    # the other hand takes the forced inflammation: inflamed whenever the image is
    assert_close((v[:, 15:] > 0).any(axis=1).mean(), 0.9, len(v))
    assert not draw(100, exclude=np.ones(30, bool)).any()


def test_determinism():
    a = draw(50, seed=11)
    b = draw(50, seed=11)
    c = draw(50, seed=12)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_config_wrapper_matches():
    cfg = SamplerConfig(p_any=1.0, p_group=0.5, p_label=0.25, p_high=0.0)
    a = sample_with_config(HANDS, 30, np.random.default_rng(9), cfg)
    b = sample_inflammation(HANDS, 30, np.random.default_rng(9), 1.0, 0.5, 0.25, 0.0)
    assert np.array_equal(a, b)
    assert set(np.unique(a)) <= {0, 1} and a.any()


def test_bad_arguments():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="p_group"):
        sample_inflammation(HANDS, 30, rng, p_group=1.5)
    with pytest.raises(ValueError, match="exclude"):
        sample_inflammation(HANDS, 30, rng, exclude=np.zeros(5, bool))
    with pytest.raises(ValueError, match="outside"):
        sample_inflammation([[0, 40]], 30, rng)
    with pytest.raises(ValueError, match="matches none"):
        exclusion_mask(HAND_LABELS, ["elbow"])


def test_groups_from_meta():
    meta = DatasetMeta.hands("t")
    assert groups_from_meta(meta) == HANDS
    meta = DatasetMeta(name="t", labels=["a", "b", "c", "d"], groups={"g": ["c", "a"]})
    assert groups_from_meta(meta) == [[2, 0], [1, 3]]  # ungrouped labels: one extra group
    assert groups_from_meta(DatasetMeta(name="t", labels=["a", "b"], groups={})) == [[0, 1]]
    with pytest.raises(ValueError, match="unknown label 'z'"):
        groups_from_meta(DatasetMeta(name="t", labels=["a"], groups={"g": ["z"]}))
    with pytest.raises(ValueError, match="'a' is in groups"):
        groups_from_meta(DatasetMeta(name="t", labels=["a"], groups={"g": ["a"], "h": ["a"]}))
