"""Fidelity statistics (numpy only, no torch)."""

import numpy as np
import pytest

from jointaug.fidelity.stats import (
    intensity_ratio,
    intensity_summary,
    label_fidelity,
    memorisation,
    nearest_distances,
)

LABELS = [f"j{i}" for i in range(6)]


def _judge_probs(labels, rng, skill=0.9):
    """A judge that is right with probability ``skill`` per label."""
    right = rng.random(labels.shape) < skill
    return np.where(right, labels, 1 - labels).astype(np.float32)


def test_oracle_like_set_has_ratio_near_one():
    rng = np.random.default_rng(0)
    real = (rng.random((400, 6)) < 0.3).astype(np.float32)
    oracle = (rng.random((400, 6)) < 0.3).astype(np.float32)  # other images, true labels
    lf = label_fidelity(oracle, _judge_probs(oracle, rng), real, _judge_probs(real, rng), LABELS)
    assert lf["real"]["gms"] == pytest.approx(0.9, abs=0.03)
    assert lf["ratio"] == pytest.approx(1.0, abs=0.05)
    assert len(lf["per_joint"]) == 6 and all(j["ratio"] is not None for j in lf["per_joint"])


def test_shuffled_labels_are_near_chance():
    rng = np.random.default_rng(1)
    real = (rng.random((400, 6)) < 0.3).astype(np.float32)
    syn = (rng.random((600, 6)) < 0.3).astype(np.float32)
    probs = _judge_probs(syn, rng)  # the judge sees the images' true content ...
    shuffled = syn[rng.permutation(len(syn))]  # ... but the set claims other labels
    lf = label_fidelity(shuffled, probs, real, _judge_probs(real, rng), LABELS)
    assert lf["synthetic"]["gms"] < 0.6  # near chance for independent labels
    assert lf["ratio"] < 0.7
    good = label_fidelity(syn, probs, real, _judge_probs(real, rng), LABELS)
    assert good["ratio"] > 0.9


def test_label_fidelity_undefined_joint_is_none():
    real = np.zeros((10, 6), np.float32)
    real[:, 0] = 1
    lf = label_fidelity(real, real, real, real, LABELS)
    assert lf["per_joint"][1]["real_gms"] is None and lf["per_joint"][1]["ratio"] is None


def test_nearest_distances_match_brute_force():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(7, 5, 5)), rng.normal(size=(300, 5, 5))
    d, i = nearest_distances(a, b, chunk=3)
    brute = np.linalg.norm(a.reshape(7, 1, -1) - b.reshape(1, 300, -1), axis=2)
    np.testing.assert_allclose(d, brute.min(1), rtol=1e-9, atol=1e-9)
    assert np.array_equal(i, brute.argmin(1))
    ds, _ = nearest_distances(b, b, exclude_self=True, chunk=64)
    full = np.linalg.norm(b.reshape(300, 1, -1) - b.reshape(1, 300, -1), axis=2)
    np.fill_diagonal(full, np.inf)
    np.testing.assert_allclose(ds, full.min(1), atol=1e-9)


def test_exact_copies_count_as_memorised():
    rng = np.random.default_rng(3)
    train = rng.normal(size=(40, 1, 8, 8))
    fresh = rng.normal(size=(30, 1, 8, 8))
    copies = train[rng.integers(0, 40, 10)]
    m = memorisation(np.concatenate([fresh, copies]), train)
    assert m["near_copies"] == 10
    assert m["near_copy_fraction"] == pytest.approx(10 / 40)
    assert memorisation(fresh, train)["near_copies"] == 0
    # slightly noisy copies still count; the median ratio of fresh images is near 1
    noisy = copies + 0.01 * rng.normal(size=copies.shape)
    assert memorisation(noisy, train)["near_copies"] == 10
    assert memorisation(fresh, train)["median_ratio"] == pytest.approx(1.0, abs=0.25)


def test_intensity_summary_and_ratio():
    tissue = np.array([[0, 1], [2, 3]], np.uint8)
    img = np.array([[1.0, 10.0], [20.0, 40.0]])
    s = intensity_summary([img, 2 * img], [tissue, tissue])
    assert s["normal"] == pytest.approx(15.0) and s["high"] == pytest.approx(60.0)
    assert s["total"] == pytest.approx((71 + 142) / 2)
    r = intensity_ratio(intensity_summary([img], [tissue]), s)
    assert r["high"] == pytest.approx(40 / 60)
