"""Which comparisons a run makes, how many resamples Holm needs, and the verdict words (no torch)."""

from __future__ import annotations

import math

from jointaug.experiments.stats import Spec, comparison_specs, min_boot
from jointaug.experiments.verdicts import effect, headline, markdown_stats, verdict_lines


def test_comparisons_baseline_controls_and_pair():
    keys = [("baseline", 0), ("mp", 64), ("mp-perlin", 64), ("shuffled", 64), ("oversample", 64)]
    keys += [("oversample-prev", 128), ("focal", 0)]
    specs = comparison_specs(keys)
    assert specs[0] == Spec(
        ("baseline", 0), ("baseline", 0), "gms", "tuned", "default", "threshold", "tuned_threshold"
    )
    refs = {(s.a, s.b, s.role) for s in specs}
    assert (("mp-perlin", 64), ("mp", 64), "pair") in refs
    assert (("mp-perlin", 64), ("shuffled", 64), "control") in refs
    assert (("mp-perlin", 64), ("oversample", 64), "control") in refs
    # a control of another size is not a reference; controls and focal only vs baseline
    assert not any(s.b == ("oversample-prev", 128) for s in specs)
    assert {s.b for s in specs if s.a in (("shuffled", 64), ("focal", 0))} == {("baseline", 0)}
    # three metrics per reference: GMS at 0.5, GMS tuned (both sides), AUPRC
    mp = [(s.metric, s.mode_a, s.mode_b) for s in specs if s.a == ("mp", 64)]
    assert mp[:3] == [
        ("gms", "default", "default"),
        ("gms", "tuned", "tuned"),
        ("auprc", "none", "none"),
    ]
    assert comparison_specs([("mp", 64)]) == []  # no baseline, nothing to compare


def test_min_boot_lets_holm_reach_alpha():
    for m in (1, 13, 43, 100):
        b = min_boot(m)
        assert 2 * m / (b + 1) <= 0.8 * 0.05 + 1e-12
    assert min_boot(43) == 2149


def _r(method, reference, role, metric, threshold, verdict, est=0.05, lo=0.01, hi=0.09, value=0.7):
    return {
        "models": "single",
        "method": method,
        "reference": reference,
        "role": role,
        "metric": metric,
        "threshold": threshold,
        "estimate": est,
        "ci_low": lo,
        "ci_high": hi,
        "p": 0.001,
        "p_holm": 0.01 if verdict == "helps" else 0.5,
        "p_tost": 0.5,
        "margin": 0.03,
        "verdict": verdict,
        "value_reference": value,
    }


def test_verdict_lines_order_controls_strongest_first_and_headline():
    rows = []
    for ref, role, value in (("baseline", "baseline", 0.6), ("oversample (64)", "control", 0.65)):
        rows += [_r("mp (64)", ref, role, "gms", "tuned", "helps", value=value)]
        rows += [_r("mp (64)", ref, role, "auprc", "none", "helps", value=value)]
    rows += [_r("mp (64)", "shuffled (64)", "control", "gms", "tuned", "inconclusive", value=0.7)]
    rows += [_r("mp (64)", "shuffled (64)", "control", "auprc", "none", "helps", value=0.7)]
    (line,) = verdict_lines(rows)
    assert line.index("vs baseline") < line.index("vs shuffled (64)") < line.index("vs oversample")
    h = headline(rows, rows)
    assert h.startswith("not shown to beat its controls (not above shuffled (64) on GMS@tuned)")
    assert "not beyond them" in h  # no control helps vs baseline here
    good = [dict(r, verdict="helps", p_holm=0.01) for r in rows]
    assert headline(good, good).startswith("the generator helps")
    bad = [dict(r, verdict="hurts") if r["reference"] == "shuffled (64)" else r for r in rows]
    assert headline(bad, bad).startswith("below a control (shuffled (64)")
    eq = dict(rows[0], verdict="equivalent", p_tost=0.01)
    assert "within ±0.03, TOST p 0.010" in effect(eq)
    md = markdown_stats(rows, "title")
    assert md.count("\n| mp (64) |") == len(rows) and math.isfinite(rows[0]["estimate"])
