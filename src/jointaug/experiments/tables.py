"""Results of a run folder: ``RUN/results/{metrics.csv, per_label.csv, table1.md, table2.md}``.

Everything is recomputed from the finished trainings' probability files
(``fold_K/classify/<method dir>/seed_S/{val,test}_{probs,labels}.npy`` + ``result.json``),
so the tables always agree with what is on disk:

- ``metrics.csv``: one row per fold, method, size, seed (``ensemble`` for the mean of
  the seeds' probabilities) and threshold kind (``default`` = ``classify.threshold``;
  ``tuned`` = the threshold maximising pooled GMS on the validation part), with the
  five pooled metrics;
- ``table1.md`` (the paper's Table 1): per fold the single models' metrics are averaged
  over seeds, then mean ± std (ddof 1) over folds;
- ``table2.md`` (the paper's Table 2): the seed ensembles, mean ± std over folds;
- ``per_label.csv``: per table row, fold and label: test positives, TPR and TNR
  (seed-averaged), so per-joint means and spreads over folds can be drawn.

Rows: each trained method at the default threshold; ``tuned_threshold`` (the baseline's
models with the tuned threshold) and ``<method> + tuned`` (every method's own models with
the threshold tuned on its own validation predictions) when the run's config lists
``tuned_threshold`` in ``experiment.imbalance_baselines`` (or ``show_tuned=True``).

- ``stats.csv`` and a section under each table: every row paired against the baseline
  (tuned rows against ``tuned_threshold``; synthetic sets also against ``oversample``),
  :mod:`jointaug.experiments.stats`.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jointaug.classify.metrics import (
    METRICS,
    binarize,
    mean_std,
    per_label_metrics,
    pooled_metrics,
    tune_threshold,
)
from jointaug.classify.predict import ensemble_probs
from jointaug.experiments.rundir import RunDir
from jointaug.experiments.stats import markdown_stats, stats_rows
from jointaug.files import write_text_atomic
from jointaug.outputs import DONE

STATS_TITLE = (
    "Paired differences ({what}, paired over {pairs}): mean Δ against the reference, "
    "95% bootstrap CI of ΔGMS, Wilcoxon signed-rank p; verdict helps / hurts when the "
    "CI excludes 0."
)
FIRST = ("baseline", "bce_pos_weight", "focal", "tuned_threshold", "oversample", "oracle")
HEADER_NAMES = {"accuracy": "Accuracy", "tpr": "TPR", "tnr": "TNR", "f1": "F1", "gms": "GMS"}


@dataclass
class Trained:
    """One finished training's outputs."""

    fold: int
    method: str
    size: int
    seed: int
    threshold: float
    val_probs: np.ndarray
    val_labels: np.ndarray
    test_probs: np.ndarray
    test_labels: np.ndarray
    test_ids: list[str]


def _load(path: Path) -> np.ndarray:
    return np.load(path, allow_pickle=False)


def finished_trainings(run: RunDir) -> list[Trained]:
    """Every ``classify/*/seed_*`` folder with a ``done`` marker."""
    out = []
    for d in run.classify_dirs():
        if not (d / DONE).is_file():
            continue
        r = json.loads((d / "result.json").read_text(encoding="utf-8"))
        out.append(
            Trained(
                int(r["fold"]),
                str(r["method"]),
                int(r["size"]),
                int(r["seed"]),
                float(r["threshold"]),
                _load(d / "val_probs.npy"),
                _load(d / "val_labels.npy"),
                _load(d / "test_probs.npy"),
                _load(d / "test_labels.npy"),
                json.loads((d / "test_case_ids.json").read_text(encoding="utf-8")),
            )
        )
    return out


def _scores(
    t_val: tuple[np.ndarray, np.ndarray],
    t_test: tuple[np.ndarray, np.ndarray],
    threshold: float,
    kind: str,
) -> tuple[float, np.ndarray]:
    """(threshold used, binary test predictions) for threshold kind default | tuned."""
    th = threshold if kind == "default" else tune_threshold(t_val[1], t_val[0])
    return th, binarize(t_test[0], th)


def metric_rows(trained: list[Trained]) -> list[dict]:
    """The rows of ``metrics.csv`` (single models and per-fold seed ensembles)."""
    rows = []
    groups: dict[tuple[int, str, int], list[Trained]] = defaultdict(list)
    for t in trained:
        groups[(t.fold, t.method, t.size)].append(t)
    for (fold, method, size), members in sorted(groups.items()):
        members.sort(key=lambda t: t.seed)
        ids = members[0].test_ids
        if any(m.test_ids != ids for m in members):
            raise ValueError(f"fold {fold} {method}: seeds were tested on different images")
        ens_val = (ensemble_probs([m.val_probs for m in members]), members[0].val_labels)
        ens_test = (ensemble_probs([m.test_probs for m in members]), members[0].test_labels)
        entries = [
            (str(m.seed), (m.val_probs, m.val_labels), (m.test_probs, m.test_labels))
            for m in members
        ] + [("ensemble", ens_val, ens_test)]
        for seed, v, t in entries:
            for kind in ("default", "tuned"):
                th, pred = _scores(v, t, members[0].threshold, kind)
                m = pooled_metrics(t[1], pred)
                rows.append(
                    {
                        "fold": fold,
                        "method": method,
                        "size": size,
                        "seed": seed,
                        "threshold": kind,
                        "threshold_value": th,
                        "n_images": len(t[1]),
                        **{k: m[k] for k in METRICS},
                    }
                )
    return rows


def table_keys(
    rows: list[dict], order: list[str], show_tuned: bool
) -> list[tuple[str, str, int, str]]:
    """(row label, method, size, threshold kind) in display order."""
    found = sorted(
        {(r["method"], r["size"]) for r in rows},
        key=lambda ms: (
            FIRST.index(ms[0]) if ms[0] in FIRST else len(FIRST),
            order.index(ms[0]) if ms[0] in order else len(order),
            ms[0],
            ms[1],
        ),
    )
    keys = []
    for method, size in found:
        label = f"{method} ({size})" if size else method
        keys.append((label, method, size, "default"))
        if method == "baseline" and show_tuned:
            keys.append(("tuned_threshold", "baseline", 0, "tuned"))
    if show_tuned:  # the trick is orthogonal to augmentation: a tuned row for every method
        for method, size in found:
            if method != "baseline":
                label = f"{method} ({size})" if size else method
                keys.append((f"{label} + tuned", method, size, "tuned"))
    return keys


def fold_values(
    rows: list[dict], method: str, size: int, kind: str, ensemble: bool
) -> dict[str, list[float]]:
    """metric -> one value per fold (seed mean for single models, or the ensemble's)."""
    per_fold: dict[int, list[dict]] = defaultdict(list)
    for r in rows:
        if (r["method"], r["size"], r["threshold"]) == (method, size, kind) and (
            (r["seed"] == "ensemble") == ensemble
        ):
            per_fold[r["fold"]].append(r)
    return {
        k: [float(np.nanmean([r[k] for r in rs])) for _, rs in sorted(per_fold.items())]
        for k in METRICS
    }


def fmt(mean: float, std: float) -> str:
    return "n/a" if math.isnan(mean) else f"{mean:.2f}±{std:.2f}"


def markdown_table(rows: list[dict], keys: list[tuple[str, str, int, str]], ensemble: bool) -> str:
    lines = [
        "| Method | " + " | ".join(HEADER_NAMES[k] for k in METRICS) + " |",
        "|---|" + "---|" * len(METRICS),
    ]
    for label, method, size, kind in keys:
        vals = fold_values(rows, method, size, kind, ensemble)
        lines.append(f"| {label} | " + " | ".join(fmt(*mean_std(vals[k])) for k in METRICS) + " |")
    return "\n".join(lines)


def _counts_note(trained: list[Trained]) -> str:
    folds = len({t.fold for t in trained})
    seeds = len({t.seed for t in trained})
    return f"{folds} folds, {seeds} seed{'s' if seeds != 1 else ''} per fold"


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def per_label_rows(
    trained: list[Trained], keys: list[tuple[str, str, int, str]], labels: list[str]
) -> list[dict]:
    """One row per table row, fold and label: test positives, TPR and TNR (seed-averaged)."""
    out = []
    for _, method, size, kind in keys:
        folds: dict[int, list[list[dict]]] = defaultdict(list)  # fold -> seeds -> label rows
        for t in trained:
            if (t.method, t.size) == (method, size):
                _, pred = _scores(
                    (t.val_probs, t.val_labels), (t.test_probs, t.test_labels), t.threshold, kind
                )
                folds[t.fold].append(per_label_metrics(t.test_labels, pred, labels))
        for fold, seeds in sorted(folds.items()):
            for j, name in enumerate(labels):
                name_ = (
                    method
                    if kind == "default"
                    else ("tuned_threshold" if method == "baseline" else f"{method} + tuned")
                )
                out.append(
                    {
                        "method": name_,
                        "size": size,
                        "fold": fold,
                        "label": name,
                        "positives": seeds[0][j]["tp"] + seeds[0][j]["fn"],
                        "tpr": _nanmean([s[j]["tpr"] for s in seeds]),
                        "tnr": _nanmean([s[j]["tnr"] for s in seeds]),
                    }
                )
    return out


def _csv(rows: list[dict]) -> str:
    if not rows:
        return ""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


def write_results(run: RunDir, show_tuned: bool | None = None) -> dict[str, Path]:
    """(Re)write ``RUN/results`` from the finished trainings; returns the files by name."""
    trained = finished_trainings(run)
    if not trained:
        raise ValueError(
            f"{run.path}: no finished classifier trainings (fold_*/classify/*/seed_*/done)"
        )
    exp = run.config.experiment
    if show_tuned is None:
        show_tuned = "tuned_threshold" in exp.imbalance_baselines
    rows = metric_rows(trained)
    keys = table_keys(rows, list(exp.methods) + list(exp.imbalance_baselines), show_tuned)
    thr = trained[0].threshold
    note = _counts_note(trained)
    t1 = (
        f"Table 1: single models, mean ± std over folds ({note}; per fold the seeds' metrics "
        f"are averaged); threshold {thr:g} (tuned_threshold: tuned on validation GMS).\n\n"
        + markdown_table(rows, keys, ensemble=False)
        + "\n"
    )
    t2 = (
        f"Table 2: seed ensembles (mean of the seeds' probabilities), mean ± std over folds "
        f"({note}); threshold {thr:g}.\n\n" + markdown_table(rows, keys, ensemble=True) + "\n"
    )
    st1, st2 = stats_rows(rows, keys, ensemble=False), stats_rows(rows, keys, ensemble=True)
    t1 += (
        "\n"
        + markdown_stats(st1, STATS_TITLE.format(what="single models", pairs="folds x seeds"))
        + "\n"
    )
    t2 += (
        "\n" + markdown_stats(st2, STATS_TITLE.format(what="seed ensembles", pairs="folds")) + "\n"
    )
    res = run.results_dir
    paths = {
        "metrics": res / "metrics.csv",
        "per_label": res / "per_label.csv",
        "table1": res / "table1.md",
        "table2": res / "table2.md",
        "stats": res / "stats.csv",
    }
    write_text_atomic(paths["stats"], _csv(st1 + st2))
    write_text_atomic(paths["metrics"], _csv(rows))
    write_text_atomic(
        paths["per_label"],
        _csv(
            per_label_rows(
                trained, [k for k in keys if not k[0].endswith(" + tuned")], run.dataset.labels
            )
        ),
    )
    write_text_atomic(paths["table1"], t1)
    write_text_atomic(paths["table2"], t2)
    return paths
