"""``jointaug run --plan --gpus N [--card NAME | --calibration FILE]``: the grid's
task graph with per-task costs, scheduled on N cards (``experiments/schedule.py``).

Per-task costs: diffusion training ``train_steps x diffusion_step_s``; a set (or shard)
``images x sample_s_per_image``; a classifier training ``samples x
classifier_s_per_sample`` plus its evaluations. A classifier's samples are not known
before it runs (early stopping), so the schedule is computed twice: every training
stopping at its *floor* -- its first evaluation plus the patience, rounded up to the
evaluation period (the earliest the protocol allows) -- and every training running to
its cap (``max_samples``, grown with the training set in profiles that say so). The
truth lies between; the paper's early stopping decides where.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from jointaug.classify.epoch import effective_budget, epochs_per_eval
from jointaug.config import ClassifyConfig
from jointaug.experiments.estimate import Rates, training_samples_range
from jointaug.experiments.kinds import Task
from jointaug.experiments.rundir import RunDir
from jointaug.experiments.schedule import Schedule, simulate


def classifier_bounds(c: ClassifyConfig, n_train: int) -> tuple[int, int, int]:
    """(floor, cap, samples between evaluations) of one training on ``n_train`` images."""
    c = effective_budget(c, n_train)
    per_eval = max(1, epochs_per_eval(c, n_train) * n_train)
    floor, cap = training_samples_range(c.max_samples, c.patience_samples, per_eval)
    return floor, cap, per_eval


def _n_train(run: RunDir, params: dict) -> tuple[int, int]:
    """(train images incl. the augmentation, validation images) of a classify task."""
    fold = run.splits.fold(int(params["fold"]))
    n = len(run.dataset.classification_cases(fold.train))
    size = int(params["size"])
    return n + size, len(run.dataset.classification_cases(fold.val))


def classifier_seconds(run: RunDir, params: dict, rates: Rates, bound: str) -> float:
    """Seconds of one classify task at its ``floor`` or ``cap`` (evaluations included)."""
    n_train, n_val = _n_train(run, params)
    floor, cap, per_eval = classifier_bounds(run.config.classify, n_train)
    samples = floor if bound == "floor" else cap
    evals = math.ceil(samples / per_eval) * n_val
    return samples * rates.classifier_s_per_sample + evals * rates.eval_s_per_image


def with_bound(run: RunDir, tasks: Sequence[Task], rates: Rates, bound: str) -> list[Task]:
    """``tasks`` (already estimated) with classify tasks estimated at ``bound``."""
    out = []
    for t in tasks:
        if t.kind == "classify" and rates.classifier_s_per_sample:
            t = t.with_estimate(classifier_seconds(run, t.params, rates, bound))
        out.append(t)
    return out


@dataclass
class Makespans:
    floor: Schedule
    cap: Schedule
    card: str
    packing_gain: float
    source: str  # where the per-task costs came from

    def describe(self) -> str:
        f, c = self.floor, self.cap
        lines = [
            f"schedule on {f.gpus} x {self.card} (costs: {self.source}; classifiers share a "
            f"card at {self.packing_gain:g}x the throughput of one)",
            f.summary(self.card),
            f"  (every training stopping at its earliest; if every training ran to its cap: "
            f"{c.makespan_s / 3600:.1f} h)",
        ]
        return "\n".join(lines)


def plan_makespan(
    run: RunDir,
    tasks: Sequence[Task],
    rates: Rates,
    gpus: int,
    *,
    card: str,
    source: str,
    packing_gain: float = 1.8,
) -> Makespans:
    """Both schedules of ``tasks`` (estimated with ``rates``) on ``gpus`` cards."""
    floor = simulate(with_bound(run, tasks, rates, "floor"), gpus, packing_gain=packing_gain)
    cap = simulate(with_bound(run, tasks, rates, "cap"), gpus, packing_gain=packing_gain)
    return Makespans(floor, cap, card, packing_gain, source)
