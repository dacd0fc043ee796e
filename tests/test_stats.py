"""Paired statistics (experiments/stats.py) and the tables' tuned / stats rows (no torch)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jointaug.experiments.stats import (
    bootstrap_ci,
    comparisons,
    markdown_stats,
    paired,
    stats_rows,
    verdict,
    verdict_lines,
    wilcoxon_p,
)


def _rows(method: str, size: int, gms: list[float], kind: str = "default", tpr=None, tnr=None):
    """metrics.csv-like rows: fold i, seed "0" (and "1" for the second half)."""
    out = []
    for i, g in enumerate(gms):
        out.append(
            {
                "fold": i % 5,
                "method": method,
                "size": size,
                "seed": str(i // 5),
                "threshold": kind,
                "gms": g,
                "tpr": (tpr or gms)[i],
                "tnr": (tnr or gms)[i],
            }
        )
    return out


def test_method_against_itself_is_degenerate_zero():
    rng = np.random.default_rng(3)
    g = list(rng.uniform(0.4, 0.8, 10))
    rows = _rows("baseline", 0, g) + _rows("same", 0, g)
    s = paired(rows, ("same", 0, "default"), ("baseline", 0, "default"))
    assert s["n"] == 10
    assert s["ci_low"] == 0.0 and s["ci_high"] == 0.0
    assert s["d_gms"] == 0.0 and s["p"] == 1.0
    assert s["verdict"] == "no evidence"


def test_known_shift_is_detected_both_ways():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.4, 0.7, 15)
    noise = rng.normal(0, 0.02, 15)
    rows = _rows("baseline", 0, list(base)) + _rows("up", 512, list(base + 0.1 + noise))
    rows += _rows("down", 512, list(base - 0.1 + noise))
    up = paired(rows, ("up", 512, "default"), ("baseline", 0, "default"))
    assert up["d_gms"] == pytest.approx(0.1 + noise.mean())
    assert 0.07 < up["ci_low"] < up["d_gms"] < up["ci_high"] < 0.13
    assert up["p"] < 0.001 and up["verdict"] == "helps"
    down = paired(rows, ("down", 512, "default"), ("baseline", 0, "default"))
    assert down["ci_high"] < 0 and down["verdict"] == "hurts"


def test_pure_noise_gives_no_evidence():
    rng = np.random.default_rng(1)
    base = rng.uniform(0.4, 0.7, 15)
    rows = _rows("baseline", 0, list(base)) + _rows(
        "noise", 64, list(base + rng.normal(0, 0.05, 15))
    )
    s = paired(rows, ("noise", 64, "default"), ("baseline", 0, "default"))
    assert s["ci_low"] < 0 < s["ci_high"] and s["verdict"] == "no evidence"


def test_wilcoxon_hand_computed():
    # d = [1, -2, 3, 4, 5]: ranks of |d| = 1..5, W- = 2, W+ = 13; exact two-sided
    # p = 2 * P(W <= 2) with 2**5 sign patterns: sums <= 2 are {}, {1}, {2} -> 3/32.
    assert wilcoxon_p([1, -2, 3, 4, 5]) == pytest.approx(2 * 3 / 32)
    # all positive, n = 5: only the empty set has sum 0 -> p = 2/32
    assert wilcoxon_p([0.1, 0.2, 0.3, 0.4, 0.5]) == pytest.approx(2 / 32)
    assert wilcoxon_p([0.0, 0.0]) == 1.0
    assert wilcoxon_p([]) == 1.0


def test_bootstrap_is_seeded_and_covers_the_mean():
    d = [0.1, 0.3, -0.1, 0.2, 0.0, 0.15]
    a = bootstrap_ci(d, np.random.default_rng(7))
    b = bootstrap_ci(d, np.random.default_rng(7))
    assert a == b
    assert a[0] < np.mean(d) < a[1]
    assert min(d) <= a[0] and a[1] <= max(d)
    assert all(math.isnan(x) for x in bootstrap_ci([], np.random.default_rng(0)))


def test_verdict_rules():
    assert verdict(0.01, 0.2) == "helps"
    assert verdict(-0.2, -0.01) == "hurts"
    assert verdict(-0.01, 0.2) == "no evidence"
    assert verdict(math.nan, 0.1) == "n/a"


def test_pairs_only_matching_fold_seed_and_ensembles_apart():
    rows = _rows("baseline", 0, [0.5, 0.6, 0.7]) + _rows("m", 8, [0.6, 0.7])
    rows.append(
        {
            "fold": 0,
            "method": "m",
            "size": 8,
            "seed": "ensemble",
            "threshold": "default",
            "gms": 0.0,
            "tpr": 0.0,
            "tnr": 0.0,
        }
    )
    s = paired(rows, ("m", 8, "default"), ("baseline", 0, "default"))
    assert s["n"] == 2 and s["d_gms"] == pytest.approx(0.1)
    e = paired(rows, ("m", 8, "default"), ("baseline", 0, "default"), ensemble=True)
    assert e["n"] == 0


def test_comparisons_tuned_rows_and_oversample():
    keys = [
        ("baseline", "baseline", 0, "default"),
        ("tuned_threshold", "baseline", 0, "tuned"),
        ("oversample (512)", "oversample", 512, "default"),
        ("mp (512)", "mp", 512, "default"),
        ("mp (512) + tuned", "mp", 512, "tuned"),
    ]
    cs = comparisons(keys, {("baseline", 0), ("oversample", 512), ("mp", 512)})
    pairs = {(c["row"], c["reference"]) for c in cs}
    assert ("tuned_threshold", "baseline") in pairs
    assert ("mp (512)", "baseline") in pairs and ("mp (512)", "oversample (512)") in pairs
    assert ("mp (512) + tuned", "tuned_threshold") in pairs
    assert ("mp (512) + tuned", "oversample (512) + tuned") in pairs
    assert ("oversample (512)", "baseline") in pairs
    assert not any(c["row"] == "baseline" for c in cs)


def test_stats_rows_and_markdown_verdicts():
    rng = np.random.default_rng(2)
    base = rng.uniform(0.4, 0.7, 10)
    rows = _rows("baseline", 0, list(base)) + _rows("mp", 512, list(base + 0.2))
    keys = [("baseline", "baseline", 0, "default"), ("mp (512)", "mp", 512, "default")]
    st = stats_rows(rows, keys)
    assert len(st) == 1 and st[0]["verdict"] == "helps" and st[0]["d_gms"] == pytest.approx(0.2)
    md = markdown_stats(st, "title")
    assert "| mp (512) | baseline | 10 | +0.200 |" in md and "helps" in md
    (line,) = verdict_lines(st)
    assert line.startswith("mp (512) vs baseline: helps (ΔGMS +0.200")
