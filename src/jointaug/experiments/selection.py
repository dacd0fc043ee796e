"""Choosing on validation: a choice among settings reads validation predictions only.

A tuning sweep is a set of run folders (one per setting, e.g. ``--set perlin.min_fraction=...``)
on a *development* dataset. :func:`validation_rows` summarises each run's finished trainings
on their **validation** parts -- the predictions the early stopping and the threshold tuning
already see -- and never opens a test prediction; :func:`choose` names the best candidate by
one pre-declared metric. The chosen setting is then frozen into the profile and confirmed on
fresh data (``benchmarks/bench_augmentation.py --confirm``).

Figures per (run, method, size), every fold's and seed's validation predictions stacked:

- ``val_auprc``: macro AUPRC over the labels with a positive (threshold-free; the default
  choice metric: a prevalence shift cannot pass for a gain);
- ``val_gms``: GMS at each model's configured threshold;
- ``val_gms_tuned``: GMS at the one threshold tuned on these same predictions (optimistic,
  equally so for every candidate).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from jointaug.classify.metrics import binarize, pool_summary, pooled_metrics, tune_threshold
from jointaug.experiments.rundir import RunDir
from jointaug.outputs import DONE

METRICS = ("val_auprc", "val_gms", "val_gms_tuned")


@dataclass
class Validated:
    """One finished training's validation predictions (nothing of its test part)."""

    fold: int
    method: str
    size: int
    seed: int
    threshold: float
    val_probs: np.ndarray
    val_labels: np.ndarray


def validated_trainings(run: RunDir) -> list[Validated]:
    """Every finished training of ``run`` (``done`` marker), validation files only."""
    out = []
    for d in run.classify_dirs():
        if not (d / DONE).is_file():
            continue
        r = json.loads((d / "result.json").read_text(encoding="utf-8"))
        probs = np.load(d / "val_probs.npy", allow_pickle=False)
        labels = np.load(d / "val_labels.npy", allow_pickle=False)
        key = (int(r["fold"]), str(r["method"]), int(r["size"]), int(r["seed"]))
        out.append(Validated(*key, float(r["threshold"]), probs, labels))
    return out


def validation_rows(run: RunDir, methods: Sequence[str] | None = None) -> list[dict]:
    """One row per (method, size) of ``run``'s finished trainings (validation parts only)."""
    groups: dict[tuple[str, int], list] = {}
    for t in validated_trainings(run):
        if methods is None or t.method in methods:
            groups.setdefault((t.method, t.size), []).append(t)
    rows = []
    for (method, size), ts in sorted(groups.items()):
        y = np.concatenate([t.val_labels for t in ts])
        p = np.concatenate([t.val_probs for t in ts])
        at = np.concatenate([np.full(len(t.val_probs), t.threshold, np.float32) for t in ts])
        rows.append(
            {
                "run": str(run.path),
                "method": method,
                "size": size,
                "trainings": len(ts),
                "folds": len({t.fold for t in ts}),
                "seeds": len({t.seed for t in ts}),
                "val_auprc": pool_summary(y, p)["auprc"],
                "val_gms": pooled_metrics(y, binarize(p, at[:, None]))["gms"],
                "val_gms_tuned": pooled_metrics(y, binarize(p, tune_threshold(y, p)))["gms"],
            }
        )
    return rows


def choose(rows: Sequence[dict], metric: str = "val_auprc") -> dict:
    """The row with the highest ``metric`` (the first such row on a tie)."""
    if metric not in METRICS:
        raise ValueError(f"metric {metric!r} must be one of {', '.join(METRICS)}")
    if not rows:
        raise ValueError("nothing to choose from: no finished training in these runs")
    return max(rows, key=lambda r: (r[metric], -rows.index(r)))


def format_rows(rows: Sequence[dict], chosen: dict | None = None) -> str:
    """A plain table of ``rows``; the chosen row marked with ``*``."""
    lines = ["   run / method (size)                      trainings  val AUPRC  val GMS  GMS*"]
    for r in rows:
        mark = "*" if r is chosen else " "
        name = f"{r['run']} / {r['method']}" + (f" ({r['size']})" if r["size"] else "")
        lines.append(
            f" {mark} {name:<42} {r['trainings']:>9}  {r['val_auprc']:9.3f}  "
            f"{r['val_gms']:7.3f}  {r['val_gms_tuned']:.3f}"
        )
    return "\n".join(lines)
