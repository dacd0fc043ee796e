"""Paired statistics of every method against a reference (numpy / scipy; no torch).

Folds and seeds vary far more than the effects looked for (one training moves by ~0.05
GMS from floating-point noise alone, folds by ±0.08), so a method is compared with the
baseline *paired*: per (fold, seed) the difference of the two models' test metrics,
trained on the same patients with the same seed. Reported per method:

- mean ΔGMS (and ΔTPR, ΔTNR) over the pairs;
- a 95 % bootstrap confidence interval of the mean ΔGMS (percentile method, pairs
  resampled with replacement, ``numpy.random.default_rng(seed)``);
- the Wilcoxon signed-rank p of the ΔGMS (two-sided, ``scipy.stats.wilcoxon``; 1.0 when
  every difference is 0);
- a verdict: ``helps`` when the CI lies above 0, ``hurts`` when below, else
  ``no evidence``.

Single models are paired over folds x seeds (Table 1); seed ensembles over folds (Table 2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

N_BOOT = 10_000
LEVEL = 0.95
DELTAS = ("gms", "tpr", "tnr")


def bootstrap_ci(
    diffs: Sequence[float], rng: np.random.Generator, n_boot: int = N_BOOT, level: float = LEVEL
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of ``diffs`` (NaN, NaN for no data)."""
    d = np.asarray([x for x in diffs if not math.isnan(x)], dtype=np.float64)
    if d.size == 0:
        return math.nan, math.nan
    idx = rng.integers(0, d.size, size=(n_boot, d.size))
    means = d[idx].mean(axis=1)
    a = (1 - level) / 2
    return float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


def wilcoxon_p(diffs: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p of paired differences (zeros dropped; 1.0 if none left)."""
    from scipy.stats import wilcoxon

    d = np.asarray([x for x in diffs if not math.isnan(x)], dtype=np.float64)
    if d.size == 0 or not np.any(d != 0):
        return 1.0
    return float(wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)


def verdict(lo: float, hi: float) -> str:
    if math.isnan(lo) or math.isnan(hi):
        return "n/a"
    if lo > 0:
        return "helps"
    if hi < 0:
        return "hurts"
    return "no evidence"


def _by_pair(rows: Sequence[dict], method: str, size: int, kind: str, ensemble: bool) -> dict:
    out = {}
    for r in rows:
        if (r["method"], int(r["size"]), r["threshold"]) != (method, size, kind):
            continue
        if (str(r["seed"]) == "ensemble") != ensemble:
            continue
        out[(int(r["fold"]), str(r["seed"]))] = r
    return out


def paired(
    rows: Sequence[dict],
    a: tuple[str, int, str],
    b: tuple[str, int, str],
    ensemble: bool = False,
    seed: int = 0,
) -> dict:
    """Paired comparison of row key ``a`` = (method, size, threshold kind) against ``b``.

    ``rows`` are ``metrics.csv`` rows (:func:`jointaug.experiments.tables.metric_rows`).
    Returns n, mean ΔGMS/ΔTPR/ΔTNR, the bootstrap CI of ΔGMS, the Wilcoxon p, the verdict.
    """
    ra, rb = _by_pair(rows, *a, ensemble), _by_pair(rows, *b, ensemble)
    pairs = sorted(set(ra) & set(rb))
    d = {k: [float(ra[p][k]) - float(rb[p][k]) for p in pairs] for k in DELTAS}
    lo, hi = bootstrap_ci(d["gms"], np.random.default_rng(seed))
    out = {"n": len(pairs)}
    for k in DELTAS:
        finite = [x for x in d[k] if not math.isnan(x)]
        out[f"d_{k}"] = float(np.mean(finite)) if finite else math.nan
    out.update({"ci_low": lo, "ci_high": hi, "p": wilcoxon_p(d["gms"]), "verdict": verdict(lo, hi)})
    return out


def comparisons(
    keys: Sequence[tuple[str, str, int, str]], present: set[tuple[str, int]]
) -> list[dict]:
    """Which table row is compared with which reference.

    Every row at the default threshold against the baseline at the default threshold;
    every tuned row against the baseline's tuned threshold (``tuned_threshold``); and,
    when an ``oversample`` row exists, every synthetic-set row against it (same threshold
    kind, same size), since a synthetic set only helps if it beats duplicating real images.
    """
    out = []
    over = {s for m, s in present if m == "oversample"}
    for label, method, size, kind in keys:
        if method == "baseline" and kind == "default":
            continue
        if method == "baseline":  # the tuned threshold alone, against the plain baseline
            out.append(
                {
                    "row": label,
                    "a": (method, size, kind),
                    "b": ("baseline", 0, "default"),
                    "reference": "baseline",
                }
            )
        else:
            out.append(
                {
                    "row": label,
                    "a": (method, size, kind),
                    "b": ("baseline", 0, kind),
                    "reference": "baseline" if kind == "default" else "tuned_threshold",
                }
            )
        if size in over and method not in ("oversample", "baseline") and size > 0:
            ref = "oversample" + (f" ({size})" if kind == "default" else f" ({size}) + tuned")
            out.append(
                {
                    "row": label,
                    "a": (method, size, kind),
                    "b": ("oversample", size, kind),
                    "reference": ref,
                }
            )
    return out


def stats_rows(
    rows: Sequence[dict],
    keys: Sequence[tuple[str, str, int, str]],
    ensemble: bool = False,
    seed: int = 0,
) -> list[dict]:
    """One row per (table row, reference): the paired statistics (``stats.csv``)."""
    present = {(r["method"], int(r["size"])) for r in rows}
    out = []
    for c in comparisons(keys, present):
        s = paired(rows, c["a"], c["b"], ensemble=ensemble, seed=seed)
        if s["n"] == 0:
            continue
        out.append(
            {
                "models": "ensemble" if ensemble else "single",
                "row": c["row"],
                "reference": c["reference"],
                **s,
            }
        )
    return out


def _f(x: float, signed: bool = True) -> str:
    if isinstance(x, float) and math.isnan(x):
        return "n/a"
    if not signed and 0 < x < 0.001:
        return "<0.001"
    return f"{x:+.3f}" if signed else f"{x:.3f}"


def markdown_stats(stats: Sequence[dict], title: str) -> str:
    """A pipe table of paired statistics with one verdict per row."""
    lines = [
        title,
        "",
        "| Method | vs | pairs | ΔGMS | 95% CI | Wilcoxon p | ΔTPR | ΔTNR | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in stats:
        ci = f"[{_f(s['ci_low'])}, {_f(s['ci_high'])}]"
        lines.append(
            f"| {s['row']} | {s['reference']} | {s['n']} | {_f(s['d_gms'])} | {ci} | "
            f"{_f(s['p'], False)} | {_f(s['d_tpr'])} | {_f(s['d_tnr'])} | {s['verdict']} |"
        )
    return "\n".join(lines)


def verdict_lines(stats: Sequence[dict]) -> list[str]:
    """``mp-perlin (512) vs baseline: helps (ΔGMS +0.081, 95% CI [+0.03, +0.13], p 0.004)``."""
    return [
        f"{s['row']} vs {s['reference']}: {s['verdict']} (ΔGMS {_f(s['d_gms'])}, 95% CI "
        f"[{_f(s['ci_low'])}, {_f(s['ci_high'])}], Wilcoxon p {_f(s['p'], False)}, "
        f"{s['n']} pairs)"
        for s in stats
    ]


def read_stats(path) -> list[dict]:
    """The rows of a ``stats.csv`` with numbers parsed ([] when the file is missing)."""
    import csv
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["n"] = int(r["n"])
        for k in ("d_gms", "d_tpr", "d_tnr", "ci_low", "ci_high", "p"):
            r[k] = float(r[k]) if r.get(k) not in (None, "") else math.nan
    return rows
