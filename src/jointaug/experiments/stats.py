"""Does a method help? Every comparison of a run, on pooled out-of-fold predictions.

The statistics are those of :mod:`jointaug.experiments.evidence`: a paired cluster bootstrap
over patients of the difference of a pooled metric, with each fold's seed redrawn per
resample (training noise in the interval), Holm over one table, TOST for equivalence.
Inputs are the run's out-of-fold predictions (:class:`jointaug.experiments.oof.OOFSet`, from
the run folder or from ``results/oof.csv``), so the numbers are the same from either.

Comparisons (:func:`comparison_specs`), each for three metrics -- ΔGMS at the configured
threshold (``default``, 0.5), ΔGMS at thresholds tuned on each model's own validation
predictions (``tuned``; the reference tuned too: the baseline tuned is ``tuned_threshold``)
and ΔAUPRC (macro over the joints, threshold-free):

- every method against ``baseline`` (role ``baseline``); ``tuned_threshold`` is the
  baseline's models at tuned vs default thresholds (GMS only; role ``threshold``);
- every synthetic set (an augmented method that is not a control) against each control of
  the same size present in the run: ``oversample``, ``oversample-prev``, ``shuffled``,
  ``baseline-budget`` (role ``control``), since a synthetic set only helps if it beats what the same number of
  non-generated images gives;
- ``mp-perlin`` against ``mp`` of the same size (role ``pair``).

Two tables, each one Holm family over all its comparisons and metrics: ``single`` (single
models: the seeds' pools averaged, patients x seeds-per-fold bootstrap) and ``ensemble``
(the seed ensemble, one model per fold: only patients are resampled, so its interval is
conditional on the trained models and leaves their training noise out).

Verdicts (:func:`jointaug.experiments.evidence.verdict`): ``helps`` only with Holm-adjusted
p < 0.05 and the 95 % interval above 0; ``hurts`` symmetric; ``equivalent`` only when the
90 % interval lies within ±``margin`` (TOST at 5 %, not Holm-adjusted; 0.03 GMS and 0.03
AUPRC: below what one retraining moves, ~0.05); else ``inconclusive``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from jointaug.experiments.evidence import CompareOptions, Comparison, compare, finalize
from jointaug.experiments.oof import OOFSet, row_label
from jointaug.experiments.pooled import summarize

BASELINE = ("baseline", 0)
CONTROLS = ("oversample", "oversample-prev", "shuffled", "baseline-budget")
PAIRS = {"mp-perlin": "mp"}  # Perlin-varied masks against the plain sampled masks
TABLES = ("single", "ensemble")
STAT_METRICS = (("gms", "default"), ("gms", "tuned"), ("auprc", "none"))


@dataclass(frozen=True)
class StatsOptions:
    """Resamples, margins and the seed of the statistics (one rng per table).

    ~0.02 s per GMS comparison and ~0.6 s per AUPRC comparison of 3 seeds at these counts on
    one free core (48 patients, 30 joints); AUPRC needs a full ranking per resample, hence
    fewer resamples (its p floor is 2 / 1001).
    """

    n_boot_gms: int = 2000
    n_boot_auprc: int = 1000
    margin_gms: float = 0.03
    margin_auprc: float = 0.03
    seed: int = 0

    def compare_options(self, metric: str, n_tests: int = 1, **labels) -> CompareOptions:
        """Options of one comparison in a Holm family of ``n_tests``: at least
        :func:`min_boot` resamples, so that Holm can reach 0.05 at all."""
        gms = metric != "auprc"
        return CompareOptions(
            metric=metric,
            n_boot=max(self.n_boot_gms if gms else self.n_boot_auprc, min_boot(n_tests)),
            margin=self.margin_gms if gms else self.margin_auprc,
            **labels,
        )


def min_boot(n_tests: int, alpha: float = 0.05) -> int:
    """Resamples needed for Holm over ``n_tests`` to reach ``alpha``: a bootstrap p is at
    least 2 / (B + 1), so the smallest Holm-adjusted p is at least 2 n / (B + 1); this
    asks for 2 n / (B + 1) <= 0.8 alpha (50 resamples per test at alpha 0.05)."""
    return math.ceil(2 * n_tests / (0.8 * alpha)) - 1


@dataclass(frozen=True)
class Spec:
    """One comparison: row ``a`` in threshold mode ``mode_a`` against ``b`` in ``mode_b``."""

    a: tuple[str, int]
    b: tuple[str, int]
    metric: str
    mode_a: str
    mode_b: str
    role: str
    row: str = ""
    reference: str = ""


def is_synthetic(key: tuple[str, int]) -> bool:
    """An augmented method (size > 0) that is not a control."""
    return key[1] > 0 and key[0] not in CONTROLS


def comparison_specs(keys: Sequence[tuple[str, int]]) -> list[Spec]:
    """Every comparison of the module docstring among the (method, size) ``keys`` present."""
    present = set(keys)
    if BASELINE not in present:
        return []
    out = [Spec(BASELINE, BASELINE, "gms", "tuned", "default", "threshold", "tuned_threshold")]
    for key in sorted(present - {BASELINE}):
        refs = [(BASELINE, "baseline")]
        if is_synthetic(key):
            refs += [((c, key[1]), "control") for c in CONTROLS if (c, key[1]) in present]
        pair = (PAIRS.get(key[0], ""), key[1])
        if pair in present:
            refs.append((pair, "pair"))
        for ref, role in refs:
            for metric, mode in STAT_METRICS:
                out.append(Spec(key, ref, metric, mode, mode, role))
    return out


def _same_images(pa, pb, what: str) -> None:
    if not (
        np.array_equal(pa.patient, pb.patient)
        and np.array_equal(pa.fold, pb.fold)
        and np.array_equal(pa.y, pb.y, equal_nan=True)
    ):
        raise ValueError(f"{what}: the two methods were not tested on the same images")


def run_spec(
    data: OOFSet,
    spec: Spec,
    table: str,
    rng: np.random.Generator,
    opt: StatsOptions,
    n_tests: int = 1,
) -> tuple[Comparison, dict]:
    """One comparison on the folds both rows have: (Comparison, extra columns)."""
    ens = table == "ensemble"
    folds = sorted(set(data.methods[spec.a].folds) & set(data.methods[spec.b].folds))
    mode = {"none": "default"}
    pa = data.pooled(spec.a, mode.get(spec.mode_a, spec.mode_a), ens, folds)
    pb = data.pooled(spec.b, mode.get(spec.mode_b, spec.mode_b), ens, folds)
    row, ref = spec.row or row_label(*spec.a), spec.reference or row_label(*spec.b)
    _same_images(pa, pb, f"{row} vs {ref}")
    threshold = spec.mode_a if spec.mode_a == spec.mode_b else f"{spec.mode_a} vs {spec.mode_b}"
    o = opt.compare_options(
        spec.metric, n_tests, method=row, reference=ref, threshold_mode=threshold
    )
    c = compare(pa.oof, pb.oof, pa.y, pa.patient, rng, o, fold=pa.fold)
    va = summarize(pa.oof, pa.y, pa.patient, [spec.metric])[spec.metric]
    vb = summarize(pb.oof, pb.y, pb.patient, [spec.metric])[spec.metric]
    seeds = min(pa.oof.n_seeds, pb.oof.n_seeds)
    resampled = (
        "patients; conditional on the trained models"
        if seeds == 1
        else "patients x seeds per fold"
        if spec.metric == "gms" and pa.oof.n_seeds == pb.oof.n_seeds
        else "patients x seed pools"
    )
    extra = {
        "role": spec.role,
        "value_method": va,
        "value_reference": vb,
        "n_images": len(pa.y),
        "n_folds": len(folds),
        "resampled": resampled,
    }
    return c, extra


COLUMNS = (
    "models",
    "method",
    "reference",
    "role",
    "metric",
    "threshold",
    "value_method",
    "value_reference",
    "estimate",
    "ci_low",
    "ci_high",
    "ci90_low",
    "ci90_high",
    "p",
    "p_holm",
    "p_tost",
    "margin",
    "verdict",
    "n_patients",
    "n_images",
    "n_folds",
    "n_seeds",
    "n_boot",
    "resampled",
)


def stats_table(data: OOFSet, table: str, opt: StatsOptions | None = None) -> list[dict]:
    """The rows of one table (``single`` or ``ensemble``): every comparison, Holm over all of
    them, a verdict each. Deterministic: one ``default_rng((seed, table index))``."""
    opt = opt or StatsOptions()
    rng = np.random.default_rng((opt.seed, TABLES.index(table)))
    specs = comparison_specs(list(data.methods))
    done = [run_spec(data, s, table, rng, opt, len(specs)) for s in specs]
    final = finalize([c for c, _ in done])
    rows = []
    for c, (_, extra) in zip(final, done, strict=True):
        r = {"models": table, "threshold": c.threshold_mode, **extra}
        r.update({k: getattr(c, k) for k in COLUMNS if hasattr(c, k) and k != "models"})
        rows.append({k: r[k] for k in COLUMNS})
    return rows


def stats_rows(data: OOFSet, opt: StatsOptions | None = None) -> list[dict]:
    """Both tables' rows (``stats.csv``): single models first, then seed ensembles."""
    return [r for t in TABLES for r in stats_table(data, t, opt)]


def read_stats(path) -> list[dict]:
    """The rows of a ``stats.csv`` with numbers parsed ([] when the file is missing)."""
    import csv
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    ints = ("n_patients", "n_images", "n_folds", "n_seeds", "n_boot")
    floats = ("value_method", "value_reference", "estimate", "ci_low", "ci_high")
    floats += ("ci90_low", "ci90_high", "p", "p_holm", "p_tost", "margin")
    for r in rows:
        for k in ints:
            r[k] = int(r[k])
        for k in floats:
            r[k] = float(r[k]) if r.get(k) not in (None, "") else math.nan
    return rows


def verdict_lines(rows: Sequence[dict]) -> list[str]:
    """One line per method (:func:`jointaug.experiments.verdicts.verdict_lines`)."""
    from jointaug.experiments.verdicts import verdict_lines as lines

    return lines(rows)
