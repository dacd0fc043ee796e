import math

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, recall_score

from jointaug.classify.metrics import (
    binarize,
    mean_std,
    per_label_metrics,
    pooled_metrics,
    tune_threshold,
)


@pytest.mark.parametrize("seed", range(5))
def test_pooled_metrics_match_sklearn_micro(seed):
    rng = np.random.default_rng(seed)
    y = (rng.random((40, 30)) < 0.15).astype(float)
    p = rng.random((40, 30)) < 0.3
    m = pooled_metrics(y, p)
    yt, yp = y.ravel().astype(int), p.ravel().astype(int)
    assert m["accuracy"] == pytest.approx(accuracy_score(yt, yp))
    assert m["tpr"] == pytest.approx(recall_score(yt, yp))
    assert m["tnr"] == pytest.approx(recall_score(yt, yp, pos_label=0))
    assert m["f1"] == pytest.approx(f1_score(yt, yp))
    assert m["f1"] == pytest.approx(f1_score(y.astype(int), p.astype(int), average="micro"))
    assert m["gms"] == pytest.approx(math.sqrt(m["tpr"] * m["tnr"]))


def test_per_label_match_sklearn():
    rng = np.random.default_rng(7)
    y = (rng.random((50, 4)) < 0.3).astype(float)
    p = rng.random((50, 4)) < 0.4
    rows = per_label_metrics(y, p, ["a", "b", "c", "d"])
    for j, r in enumerate(rows):
        assert r["label"] == "abcd"[j]
        assert r["tpr"] == pytest.approx(recall_score(y[:, j], p[:, j]))
        assert r["tnr"] == pytest.approx(recall_score(y[:, j], p[:, j], pos_label=0))


def test_unknown_labels_are_left_out():
    y = np.array([[1, np.nan], [0, 1]])
    p = np.array([[1, 0], [1, 1]], bool)
    m = pooled_metrics(y, p)
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (2, 1, 0, 0)


def test_absent_class_gives_nan_not_a_guess():
    y = np.zeros((5, 3))
    m = pooled_metrics(y, np.zeros((5, 3), bool))
    assert math.isnan(m["tpr"]) and math.isnan(m["gms"]) and math.isnan(m["f1"])
    assert m["tnr"] == 1.0 and m["accuracy"] == 1.0
    m = pooled_metrics(np.ones((2, 2)), np.ones((2, 2), bool))
    assert math.isnan(m["tnr"]) and m["tpr"] == 1.0


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="shape"):
        pooled_metrics(np.zeros((2, 3)), np.zeros((3, 2)))


def test_tuned_threshold_improves_gms_on_skewed_scores():
    rng = np.random.default_rng(0)
    y = (rng.random((200, 10)) < 0.1).astype(float)
    probs = np.clip(0.15 + 0.2 * y + 0.05 * rng.standard_normal(y.shape), 0, 1)  # all below 0.5
    t = tune_threshold(y, probs)
    assert t < 0.5
    assert (
        pooled_metrics(y, binarize(probs, t))["gms"]
        > pooled_metrics(y, binarize(probs, 0.5))["gms"] + 0.3
    )


def test_mean_std():
    assert mean_std([0.5, 0.7]) == pytest.approx((0.6, np.std([0.5, 0.7], ddof=1)))
    assert mean_std([0.4]) == (0.4, 0.0)
    m, s = mean_std([float("nan")])
    assert math.isnan(m) and math.isnan(s)
