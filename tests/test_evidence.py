"""Patient-level evidence (experiments/evidence.py) and the pooled metrics it uses (no torch)."""

from __future__ import annotations

import importlib.util
import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from jointaug.classify.metrics import (
    average_precision,
    brier,
    ece,
    macro_ranking,
    per_joint_table,
    pool_summary,
    pooled_metrics,
    roc_auc,
)
from jointaug.experiments.evidence import (
    OOF,
    CompareOptions,
    Comparison,
    compare,
    finalize,
    holm,
    mixed_seed_metrics,
    pool_folds,
    seed_metrics,
    summarize,
    verdict,
)

sklearn_metrics = pytest.importorskip("sklearn.metrics")


def _bench():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_coverage.py"
    spec = importlib.util.spec_from_file_location("bench_coverage", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def _study(rng, n_pat=48, imgs=2, L=30, prev=0.11, noise_a=1.0, noise_b=1.0, n_seeds=3):
    """Patients with ``imgs`` identical-label images; probs = sigmoid(4 (y - .5) * 2 + noise)."""
    patient = np.repeat(np.arange(n_pat), imgs)
    y = np.repeat((rng.random((n_pat, L)) < prev).astype(float), imgs, axis=0)
    base = np.repeat(rng.normal(0, 1, (n_pat, L)), imgs, axis=0)  # patient-level difficulty

    def probs(noise):
        z = 3 * (y - 0.5) + base + rng.normal(0, noise, (n_seeds,) + y.shape)
        return 1 / (1 + np.exp(-z))

    return y, patient, probs(noise_a), probs(noise_b)


# --- metrics ------------------------------------------------------------------------------


def test_ranking_metrics_match_sklearn_with_ties_and_weights():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(4, 40))
        y = (rng.random(n) < 0.3).astype(float)
        y[:2] = [0, 1]
        s = np.round(rng.random(n), 1)  # many ties
        w = rng.integers(1, 4, n).astype(float)
        assert average_precision(y, s) == pytest.approx(
            sklearn_metrics.average_precision_score(y, s)
        )
        assert roc_auc(y, s) == pytest.approx(sklearn_metrics.roc_auc_score(y, s))
        ap_w = average_precision(y, s, w[None])[0]
        assert ap_w == pytest.approx(sklearn_metrics.average_precision_score(y, s, sample_weight=w))
        auc_w = roc_auc(y, s, w[None])[0]
        assert auc_w == pytest.approx(sklearn_metrics.roc_auc_score(y, s, sample_weight=w))


def test_macro_ranking_skips_labels_without_the_needed_classes():
    rng = np.random.default_rng(1)
    y = (rng.random((40, 5)) < 0.3).astype(float)
    y[:, 3] = 0  # no positive: out of both
    y[:, 4] = 1  # no negative: in AUPRC (AP = 1), out of AUROC
    p = rng.random((40, 5))
    auroc, auprc = macro_ranking(y, p)
    assert auroc == pytest.approx(
        np.mean([sklearn_metrics.roc_auc_score(y[:, j], p[:, j]) for j in range(3)])
    )
    assert auprc == pytest.approx(
        np.mean([sklearn_metrics.average_precision_score(y[:, j], p[:, j]) for j in (0, 1, 2, 4)])
    )


def test_brier_ece_and_pool_summary_by_hand():
    y = np.array([[1.0, 0.0], [0.0, np.nan]])
    p = np.array([[0.9, 0.15], [0.05, 0.7]])
    assert brier(y, p) == pytest.approx((0.01 + 0.0225 + 0.0025) / 3)
    # bins: 0.9 -> 9 (y 1), 0.15 -> 1 (y 0), 0.05 -> 0 (y 0): |1-.9| + |0-.15| + |0-.05|
    assert ece(y, p) == pytest.approx((0.1 + 0.15 + 0.05) / 3)
    s = pool_summary(y, p, 0.5)
    assert s["gms"] == pytest.approx(pooled_metrics(y, p >= 0.5)["gms"]) == 1.0
    rows = per_joint_table(y, p, 0.5, ["a", "b"])
    assert rows[0]["positives"] == 1 and rows[0]["auprc"] == 1.0 and math.isnan(rows[1]["auprc"])


# --- resampling ---------------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["gms", "tpr", "brier", "ece", "auprc", "auroc"])
def test_patient_weight_equals_duplicating_the_patients_images(metric):
    rng = np.random.default_rng(2)
    y, patient, pa, _ = _study(rng, n_pat=8, imgs=2, L=6, prev=0.3, n_seeds=2)
    y[0, 0] = 1.0
    y[1, 0] = 0.0
    oof = OOF(pa, 0.5)
    w = np.array([[3, 0, 1, 1, 2, 0, 1, 0]], float)  # patient 0 three times, 1 gone, ...
    rows = np.concatenate(
        [np.flatnonzero(patient == k).repeat(1) for k in range(8) for _ in range(int(w[0, k]))]
    )
    expect = seed_metrics(metric, OOF(pa[:, rows]), y[rows], patient[rows], np.ones((1, 8)))
    got = seed_metrics(metric, oof, y, patient, w)
    np.testing.assert_allclose(got, expect)


def test_mixed_seed_pools_with_identity_pick_are_the_seed_pools():
    rng = np.random.default_rng(3)
    y, patient, pa, _ = _study(rng, n_pat=10, L=5, prev=0.3)
    fold_of_patient = np.arange(10) % 5
    w = rng.multinomial(10, np.full(10, 0.1), 4).astype(float)
    ident = np.broadcast_to(np.arange(3)[None, :, None], (4, 3, 5))
    got = mixed_seed_metrics("gms", OOF(pa), y, patient, fold_of_patient, w, ident)
    np.testing.assert_allclose(got, seed_metrics("gms", OOF(pa), y, patient, w))


def test_cluster_bootstrap_is_wider_than_image_bootstrap_for_duplicated_images():
    """Each patient has 4 identical images: resampling images pretends 4x the data."""
    rng = np.random.default_rng(4)
    y, patient, pa, pb = _study(rng, imgs=4, noise_a=0.7, noise_b=1.2, n_seeds=1)
    pa, pb = np.repeat(pa[:, ::4], 4, axis=1), np.repeat(pb[:, ::4], 4, axis=1)  # identical images
    a, b = OOF(pa), OOF(pb)
    by_patient = compare(a, b, y, patient, np.random.default_rng(0), CompareOptions(n_boot=1000))
    by_image = compare(
        a, b, y, np.arange(len(y)), np.random.default_rng(0), CompareOptions(n_boot=1000)
    )
    assert by_patient.estimate == pytest.approx(by_image.estimate)
    w_pat = by_patient.ci_high - by_patient.ci_low
    w_img = by_image.ci_high - by_image.ci_low
    assert w_pat > 1.5 * w_img  # ~ sqrt(4) = 2 in expectation


# --- verdicts -----------------------------------------------------------------------------


def test_strong_effect_helps_and_reverse_hurts():
    rng = np.random.default_rng(5)
    y, patient, pa, pb = _study(rng, noise_a=0.3, noise_b=2.5)
    a, b = OOF(pa), OOF(pb)
    c = finalize(
        [
            compare(a, b, y, patient, rng, CompareOptions(n_boot=500)),
            compare(b, a, y, patient, rng, CompareOptions(n_boot=500)),
        ]
    )
    assert c[0].estimate > 0.05 and c[0].ci_low > 0 and c[0].verdict == "helps"
    assert c[1].verdict == "hurts" and c[0].n_patients == 48 and c[0].n_seeds == 3


def test_null_is_not_called_helps():
    rng = np.random.default_rng(6)
    calls = []
    for _ in range(10):
        y, patient, pa, pb = _study(rng)
        calls.append(
            finalize([compare(OOF(pa), OOF(pb), y, patient, rng, CompareOptions(n_boot=300))])[
                0
            ].verdict
        )
    assert calls.count("helps") <= 1


def test_equivalence_only_within_the_margin():
    rng = np.random.default_rng(7)
    y, patient, pa, _ = _study(rng)
    pb = np.clip(pa + rng.normal(0, 0.01, pa.shape), 0, 1)  # nearly the same model
    a, b = OOF(pa), OOF(pb)
    eq = finalize(
        [compare(a, b, y, patient, np.random.default_rng(0), CompareOptions(n_boot=500))]
    )[0]
    assert eq.verdict == "equivalent" and eq.p_tost < 0.05
    assert -0.03 < eq.ci90_low and eq.ci90_high < 0.03
    tight = finalize(
        [
            compare(
                a, b, y, patient, np.random.default_rng(0), CompareOptions(n_boot=500, margin=1e-4)
            )
        ]
    )[0]
    assert tight.verdict == "inconclusive"
    # a real difference of ~0.05+ is not "equivalent" at the +-0.03 margin
    _, _, pa2, pb2 = _study(np.random.default_rng(8), noise_a=0.3, noise_b=2.5)
    far = finalize([compare(OOF(pa2), OOF(pb2), y, patient, rng, CompareOptions(n_boot=300))])[0]
    assert far.verdict != "equivalent"


def test_verdict_rules_and_lower_is_better_metrics():
    c = Comparison(
        "m",
        "r",
        "gms",
        "default",
        "seeds",
        0.05,
        0.01,
        0.09,
        0.02,
        0.08,
        0.01,
        0.9,
        0.03,
        48,
        3,
        2000,
        p_holm=0.04,
    )
    assert verdict(c) == "helps"
    assert verdict(replace(c, p_holm=0.06)) == "inconclusive"
    assert verdict(replace(c, metric="brier")) == "hurts"  # a higher Brier score is worse
    assert (
        verdict(
            replace(
                c,
                estimate=0.0,
                ci_low=-0.02,
                ci_high=0.02,
                ci90_low=-0.015,
                ci90_high=0.015,
                p_holm=1.0,
            )
        )
        == "equivalent"
    )


def test_holm_matches_hand_computation():
    p = [0.01, 0.04, 0.03, 0.005, math.nan]
    # sorted 0.005, 0.01, 0.03, 0.04 (m = 4): 4*.005=.02, 3*.01=.03, 2*.03=.06, max(.06, .04)
    np.testing.assert_allclose(holm(p), [0.03, 0.06, 0.06, 0.02, math.nan])
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    q = np.random.default_rng(9).random(12) ** 3
    np.testing.assert_allclose(holm(q), multitest.multipletests(q, method="holm")[1])


# --- inputs -------------------------------------------------------------------------------


def test_pool_folds_and_ensemble():
    rng = np.random.default_rng(10)
    folds = [
        {
            "probs": rng.random((3, 2, 4)),
            "y": np.ones((2, 4)),
            "patient": [f"p{k}", f"p{k}"],
            "thresholds": [0.3, 0.4, 0.5],
        }
        for k in range(3)
    ]
    oof, y, patient, fold = pool_folds(folds)
    assert oof.probs.shape == (3, 6, 4) and y.shape == (6, 4) and list(fold) == [0, 0, 1, 1, 2, 2]
    assert oof.thresholds[1, 3, 2] == 0.4
    ens = oof.ensemble(0.5)
    assert ens.n_seeds == 1 and np.allclose(ens.probs[0], oof.probs.mean(axis=0))
    assert set(summarize(oof, y, patient)) >= {"gms", "auprc", "ece"}
    folds[1]["patient"] = ["p0", "p0"]
    with pytest.raises(ValueError, match="p0"):
        pool_folds(folds)


def test_small_coverage_simulation():
    """60 simulated studies with fold- and seed-level training noise: the default method
    (patients x seeds per fold) covers the true difference (>= 0.85, so not flaky)."""
    bench = _bench()
    rng = np.random.default_rng(11)
    sim = bench.Sim()
    truth, _ = bench.true_delta(sim, rng, n_patients=6000)
    cover = 0
    for _ in range(60):
        d = bench.simulate(sim, rng)
        c = compare(
            OOF(d["probs_a"]),
            OOF(d["probs_b"]),
            d["y"],
            d["patient"],
            rng,
            CompareOptions(n_boot=400),
            fold=d["fold"],
        )
        cover += c.ci_low <= truth <= c.ci_high
    assert cover / 60 >= 0.85
