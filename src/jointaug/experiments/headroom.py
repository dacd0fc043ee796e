"""Will more data help me? The baseline's learning curve, before the GPU hours.

For each fold the training patients are put in a seeded random order; the baseline is
trained on the first 25/50/75/100 % of them (nested: the 25 % subset lies inside the
50 % one; the validation and test parts are the fold's own, untouched), with the
profile's classifier settings and seeds. Each training's test GMS (at the threshold tuned
on its own validation part, and at the configured 0.5) against its number of training
images is fitted by :func:`jointaug.experiments.learning_curve.fit_curve` (folds resampled
together for the interval), and the gain that *perfect* extra data of the same kind would
give at the profile's augmentation sizes is read off the curve: an upper bound for any
generator, since a synthetic image is at best worth a real one.

Run folder (beside the grid's ``fold_K/``; nothing of the grid is read or written)::

    RUN/headroom/fPCT/fold_K/seed_S/   one baseline training (train_classifier's files,
                                       ``done`` with its settings: the subset included)
    RUN/headroom/headroom.csv          the points (fraction, fold, images, GMS) and the
                                       predicted gains with their 95 % intervals
    RUN/headroom/learning_curve.png    points per fold, the curve and its bootstrap band
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jointaug.classify.data import ImageCache
from jointaug.dataset.splits import Fold
from jointaug.experiments.classification import train_classifier
from jointaug.experiments.headroom_curve import (
    MODES,
    Point,
    Prediction,
    curve_points,
    headroom_csv,
    plot_headroom,
    predict,
    verdict,
)
from jointaug.experiments.jobs import Job, classifier_output
from jointaug.experiments.methods import resolve_method
from jointaug.experiments.rundir import RunDir
from jointaug.files import write_text_atomic
from jointaug.keys import derived_seed
from jointaug.outputs import DONE, check, handle_stale

Echo = Callable[[str], None]
FRACTIONS = (0.25, 0.5, 0.75, 1.0)
HEADROOM = "headroom"


def check_fractions(fractions: Sequence[float]) -> list[float]:
    """Sorted distinct fractions of the training patients, each in (0, 1]; at least two."""
    fr = sorted({float(f) for f in fractions})
    bad = [f for f in fr if not (0.0 < f <= 1.0) or not math.isfinite(f)]
    if bad:
        raise ValueError(f"--fractions: {bad} not in (0, 1]; give e.g. 0.25,0.5,0.75,1.0")
    if len(fr) < 2:
        raise ValueError(
            "--fractions: a learning curve needs at least two fractions, e.g. 0.25,0.5,0.75,1.0"
        )
    return fr


def parse_fractions(text: str | None) -> list[float]:
    """``"0.25,0.5,1"`` -> [0.25, 0.5, 1.0] (None: the default four), checked."""
    if text is None:
        return list(FRACTIONS)
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(
            f"--fractions {text!r}: give comma-separated numbers in (0, 1], e.g. 0.25,0.5,1.0"
        ) from None
    return check_fractions(values)


def nested_subsets(
    patients: Sequence[str], fractions: Sequence[float], rng: np.random.Generator
) -> dict[float, tuple[str, ...]]:
    """fraction -> the first ``ceil(fraction * n)`` (at least 1) of ``patients`` in one
    seeded random order: each subset lies inside every larger one."""
    order = [patients[i] for i in rng.permutation(len(patients))]
    return {
        f: tuple(sorted(order[: max(1, math.ceil(f * len(order) - 1e-9))]))
        for f in check_fractions(fractions)
    }


def fraction_name(fraction: float) -> str:
    """0.25 -> ``f25``, 1.0 -> ``f100``, 0.125 -> ``f12.5``."""
    return f"f{round(fraction * 100, 6):g}"


def headroom_dir(run: RunDir) -> Path:
    return run.headroom_dir


def training_dir(run: RunDir, fraction: float, fold: int, seed: int) -> Path:
    return headroom_dir(run) / fraction_name(fraction) / f"fold_{fold}" / f"seed_{seed}"


@dataclass(frozen=True)
class Training:
    """One baseline training on a subset of a fold's training patients."""

    fraction: float
    split: Fold  # the fold with its train part cut to the subset
    seed: int

    @property
    def job(self) -> Job:
        return Job(self.split.fold, resolve_method("baseline"), 0, self.seed)


def plan_trainings(
    run: RunDir, fractions: Sequence[float], folds: Sequence[int] | None = None
) -> list[Training]:
    """Fraction-major: every fold and seed at the smallest fraction first (a quick curve)."""
    fractions = check_fractions(fractions)
    folds = range(len(run.splits.folds)) if folds is None else folds
    subsets = {}
    for k in folds:
        fold = run.splits.fold(int(k))
        rng = np.random.default_rng(derived_seed(run.config.split.seed, fold.fold, HEADROOM))
        subsets[fold] = nested_subsets(fold.train, fractions, rng)
    return [
        Training(f, Fold(fold.fold, sub[f], fold.val, fold.test), seed)
        for f in fractions
        for fold, sub in subsets.items()
        for seed in run.config.classify.seeds
    ]


def train_all(
    run: RunDir,
    trainings: Sequence[Training],
    *,
    retrain: bool = False,
    progress: bool = True,
    echo: Echo = print,
) -> list[dict]:
    """Train (or read) every training; result.json of each with ``fraction`` and
    ``n_patients`` added. Stale trainings stop the call before any work (``retrain``:
    moved to RUN/stale/ and trained afresh)."""
    cfg = run.config
    outs = [training_dir(run, t.fraction, t.split.fold, t.seed) for t in trainings]
    declared = [
        classifier_output(o, cfg.classify, t.job, t.split, {})
        for o, t in zip(outs, trainings, strict=True)
    ]
    handle_stale([check(d).stale for d in declared], run.path, retrain=retrain, echo=echo)
    cache, results = ImageCache(), []
    for i, (t, out) in enumerate(zip(trainings, outs, strict=True), start=1):
        done = (out / DONE).is_file()
        r = train_classifier(
            out,
            dataset=run.dataset,
            split=t.split,
            job=t.job,
            sets={},
            config=cfg,
            progress=progress,
            cache=cache,
        )
        results.append(r | {"fraction": t.fraction, "n_patients": len(t.split.train)})
        echo(
            f"[{i}/{len(trainings)}] {fraction_name(t.fraction)} fold {t.split.fold} seed "
            f"{t.seed}: {r['n_train']} images ({len(t.split.train)} patients), test GMS "
            f"{r['test_tuned']['gms']:.3f} tuned, {r['test']['gms']:.3f} at {r['threshold']:g}"
            + (" (done already)" if done else "")
        )
    return results


# ---- the whole verb --------------------------------------------------------------------


@dataclass
class HeadroomResult:
    points: list[Point]
    predictions: dict[str, Prediction]
    threshold: float
    trained: int  # trainings run by this call (the rest were done already)
    csv: Path
    png: Path


def run_headroom(
    run: RunDir,
    fractions: Sequence[float] = FRACTIONS,
    folds: Sequence[int] | None = None,
    *,
    extras: Sequence[int] | None = None,
    retrain: bool = False,
    progress: bool = True,
    echo: Echo = print,
) -> HeadroomResult:
    """Train the nested subsets, fit the curve, write ``headroom.csv`` and the picture.
    ``extras``: the extra sizes to predict at [experiment.sizes + experiment.curve_sizes]."""
    cfg = run.config
    trainings = plan_trainings(run, fractions, folds)
    before = sum(
        (training_dir(run, t.fraction, t.split.fold, t.seed) / DONE).is_file() for t in trainings
    )
    echo(
        f"headroom: {len(trainings)} baseline trainings ({len(set(t.fraction for t in trainings))} "
        f"fractions x {len({t.split.fold for t in trainings})} folds x {len(cfg.classify.seeds)} "
        f"seeds), {before} done already"
    )
    results = train_all(run, trainings, retrain=retrain, progress=progress, echo=echo)
    points = curve_points(results)
    kept = {t.split.fold for t in trainings}
    n_real = float(
        np.mean([len(run.dataset.classification_cases(run.splits.fold(k).train)) for k in kept])
    )
    if extras is None:
        extras = [*cfg.experiment.sizes, *cfg.experiment.curve_sizes]
    rng = np.random.default_rng(derived_seed(cfg.split.seed, HEADROOM, "bootstrap"))
    preds = predict(points, n_real, [n for n in extras if n > 0], rng)
    root = headroom_dir(run)
    csv_path = root / "headroom.csv"
    write_text_atomic(csv_path, headroom_csv(points, preds))
    thr = float(results[0]["threshold"])
    png = plot_headroom(root / "learning_curve.png", points, preds, thr)
    return HeadroomResult(points, preds, thr, len(trainings) - before, csv_path, png)


def describe(res: HeadroomResult) -> str:
    """The verb's report: points per fraction, the gains per size, the verdict."""
    thr = f"@{res.threshold:g}"
    lines = ["fraction  patients  images   GMS tuned  GMS " + thr + "   (mean over folds)"]
    for f in sorted({p.fraction for p in res.points}):
        ps = [p for p in res.points if p.fraction == f]
        mean = {m: np.mean([p.scores[m] for p in ps]) for m in MODES}
        lines.append(
            f"{f * 100:7.4g} %  {np.mean([p.n_patients for p in ps]):8.1f}  "
            f"{np.mean([p.n_images for p in ps]):6.1f}   {mean['tuned']:9.3f}  {mean['default']:8.3f}"
        )
    tuned, default = res.predictions["tuned"], res.predictions["default"]
    c = tuned.fit.curve
    lines.append(f"curve (tuned): GMS(n) = {c.a:.3f} - {c.b:.3f} n^-{c.c:.2f}")
    lines.append(
        f"gain perfect extra data of the same kind would give at {tuned.n_real:.0f} real images "
        f"(estimate, 95 % interval over folds):"
    )
    lines.append(f"{'extra':>8}  {'tuned':<28}{thr}")
    for gt, gd in zip(tuned.gains, default.gains, strict=True):
        cell = [f"{g.estimate:+.3f} ({g.low:+.3f} to {g.high:+.3f})" for g in (gt, gd)]
        lines.append(f"{gt.n_extra:>8,}  {cell[0]:<28}{cell[1]}")
    lines.append("verdict: " + verdict(tuned))
    if len({p.fold for p in res.points}) < 3:
        lines.append("note: an interval from fewer than 3 folds is crude; use every fold")
    if len({p.fraction for p in res.points}) < 3:
        lines.append("note: two fractions fix no curvature; the extrapolation is a guess")
    lines.append(f"wrote {res.csv} and {res.png}")
    return "\n".join(lines)
