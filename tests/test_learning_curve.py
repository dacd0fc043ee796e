"""The learning-curve fit behind "will more data help?" (numpy only)."""

from __future__ import annotations

import numpy as np
import pytest

from jointaug.experiments.learning_curve import Curve, fit_curve


def points(curve, sizes, folds, noise, seed=0):
    rng = np.random.default_rng(seed)
    n, s, g = [], [], []
    for k in range(folds):
        shift = rng.normal(0, noise)  # a fold's test patients move all its points together
        for size in sizes:
            n.append(size)
            s.append(float(curve(size)) + shift + rng.normal(0, noise / 2))
            g.append(k)
    return n, s, g


def test_a_known_curve_is_recovered_and_its_gain_predicted():
    true = Curve(0.90, 1.5, 0.5)
    n, s, g = points(true, [15, 30, 45, 60], folds=5, noise=0.01)
    fit = fit_curve(n, s, g, rng=np.random.default_rng(1), n_boot=200)
    est, lo, hi = fit.gain(60, 512)
    truth = float(true(572) - true(60))
    assert est == pytest.approx(truth, abs=0.04) and lo <= truth <= hi and lo < est < hi
    assert fit.gain(60, 2048)[0] > est > 0  # more extra data, more gain, saturating
    assert fit.gain(60, 2048)[0] - est < est


def test_no_trend_predicts_no_gain():
    n, s, g = points(Curve(0.6, 0.0, 1.0), [15, 30, 45, 60], folds=5, noise=0.02, seed=3)
    fit = fit_curve(n, s, g, rng=np.random.default_rng(0), n_boot=200)
    est, lo, hi = fit.gain(60, 512)
    assert abs(est) < 0.05 and lo <= 0.0 + 1e-9 and hi < 0.1
    assert fit.curve.b >= 0 and fit.curve.a <= 1


def test_bad_points_are_refused():
    with pytest.raises(ValueError, match=">= 3 points"):
        fit_curve([10, 20], [0.5, 0.6])
    with pytest.raises(ValueError, match="two different sizes"):
        fit_curve([10, 10, 10], [0.5, 0.6, 0.7])
