"""Results of a run folder: ``RUN/results/{oof.csv, metrics.csv, stats.csv, table1.md, ...}``.

Everything is recomputed from the run's out-of-fold predictions
(:mod:`jointaug.experiments.oof`: the finished trainings' probability files, or a committed
``oof.csv``), so the tables always agree with what is on disk and with each other:

- ``oof.csv``: every test prediction of every model (and seed ensemble) with its patient,
  fold and thresholds (the input of everything below);
- ``metrics.csv``: one row per fold, method, size, seed (``ensemble`` for the mean of
  the seeds' probabilities) and threshold kind (``default`` = ``classify.threshold``;
  ``tuned`` = the threshold maximising pooled GMS on the model's validation part), with the
  five pooled metrics;
- ``table1.md`` (the paper's Table 1): per fold the single models' metrics are averaged
  over seeds, then mean ± std (ddof 1) over folds; below it the pooled out-of-fold metrics
  (GMS, TPR, TNR, AUROC, AUPRC, Brier, ECE; each seed's pool of all folds, averaged) and the
  paired statistics (:mod:`jointaug.experiments.stats`);
- ``table2.md`` (the paper's Table 2): the same for the seed ensembles;
- ``per_label.csv``: per table row, fold and label: test positives, TPR and TNR
  (seed-averaged), so per-joint means and spreads over folds can be drawn;
- ``per_joint.csv`` / ``per_joint.md``: per row and joint on the pooled out-of-fold
  predictions: positives, TPR, TNR, AUPRC (seed-averaged);
- ``stats.csv`` (one row per comparison) and ``verdicts.txt`` (one line per method).

Rows: each trained method at the default threshold; ``tuned_threshold`` (the baseline's
models with the tuned threshold) and ``<method> + tuned`` (every method's own models with
the threshold tuned on its own validation predictions) when the run's config lists
``tuned_threshold`` in ``experiment.imbalance_baselines`` (or ``show_tuned=True``).
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from jointaug.classify.metrics import METRICS, mean_std, per_label_metrics, pooled_metrics
from jointaug.experiments.oof import ENSEMBLE, OOFSet, collect_run, row_label, write_oof
from jointaug.experiments.rundir import RunDir
from jointaug.experiments.stats import StatsOptions, stats_rows
from jointaug.experiments.summary import (
    per_joint_markdown,
    per_joint_rows,
    row_name,
    summary_markdown,
)
from jointaug.experiments.verdicts import markdown_stats, stats_title, verdict_lines
from jointaug.files import write_text_atomic

FIRST = ("baseline", "bce_pos_weight", "focal", "tuned_threshold", "oversample", "oracle")
HEADER_NAMES = {"accuracy": "Accuracy", "tpr": "TPR", "tnr": "TNR", "f1": "F1", "gms": "GMS"}


def metric_rows(data: OOFSet) -> list[dict]:
    """The rows of ``metrics.csv``: per (method, size), fold, seed (and ``ensemble``) and
    threshold kind, the pooled metrics of that fold's test part."""
    rows = []
    for (method, size), m in sorted(data.methods.items()):
        for fold, f in sorted(m.folds.items()):
            for seed in [*f.seeds, ENSEMBLE]:
                for kind in ("default", "tuned"):
                    th = f.thresholds[seed][kind]
                    pm = pooled_metrics(f.y, f.probs[seed] >= th)
                    rows.append(
                        {
                            "fold": fold,
                            "method": method,
                            "size": size,
                            "seed": seed,
                            "threshold": kind,
                            "threshold_value": th,
                            "n_images": len(f.y),
                            **{k: pm[k] for k in METRICS},
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
        keys.append((row_label(method, size), method, size, "default"))
        if method == "baseline" and show_tuned:
            keys.append(("tuned_threshold", "baseline", 0, "tuned"))
    if show_tuned:  # the trick is orthogonal to augmentation: a tuned row for every method
        for method, size in found:
            if method != "baseline":
                keys.append((f"{row_label(method, size)} + tuned", method, size, "tuned"))
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


def _counts_note(data: OOFSet) -> str:
    folds = {k for m in data.methods.values() for k in m.folds}
    seeds = {s for m in data.methods.values() for f in m.folds.values() for s in f.seeds}
    n = len(seeds)
    return f"{len(folds)} folds, {n} seed{'s' if n != 1 else ''} per fold"


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def per_label_rows(data: OOFSet, keys: list[tuple[str, str, int, str]]) -> list[dict]:
    """One row per table row, fold and label: test positives, TPR and TNR (seed-averaged)."""
    out = []
    for label, method, size, kind in keys:
        m = data.methods.get((method, size))
        for fold, f in sorted(m.folds.items()) if m else ():
            seeds = [
                per_label_metrics(f.y, f.probs[s] >= f.thresholds[s][kind], data.labels)
                for s in f.seeds
            ]
            for j, name in enumerate(data.labels):
                out.append(
                    {
                        "method": row_name(label, method, kind),
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


def _table(n: int, data: OOFSet, rows, keys, ensemble: bool, opt, stats) -> str:
    """The text of ``table1.md`` (single models) or ``table2.md`` (seed ensembles)."""
    note = _counts_note(data)
    thr = sorted({r["threshold_value"] for r in rows if r["threshold"] == "default"})
    thr_s = "/".join(f"{t:g}" for t in thr)
    what = (
        "single models, mean ± std over folds ({note}; per fold the seeds' metrics are averaged)"
        if not ensemble
        else "seed ensembles (mean of the seeds' probabilities), mean ± std over folds ({note})"
    ).format(note=note)
    table = "ensemble" if ensemble else "single"
    return (
        f"Table {n}: {what}; threshold {thr_s} (tuned_threshold, + tuned: tuned on each "
        "model's validation GMS).\n\n"
        + markdown_table(rows, keys, ensemble)
        + "\n\n"
        + summary_markdown(data, keys, ensemble)
        + "\n\n"
        + markdown_stats([s for s in stats if s["models"] == table], stats_title(table, opt))
        + "\n"
    )


def write_tables(
    data: OOFSet,
    out: Path,
    order: list[str] | None = None,
    show_tuned: bool = True,
    opt: StatsOptions | None = None,
) -> dict[str, Path]:
    """Write every table, statistic and verdict of ``data`` into folder ``out`` (all but
    ``oof.csv``); ``order``: the methods' display order. Returns the files by name."""
    opt = opt or StatsOptions()
    rows = metric_rows(data)
    keys = table_keys(rows, list(order or []), show_tuned)
    stats = stats_rows(data, opt)
    plain = [k for k in keys if not k[0].endswith(" + tuned")]
    texts = {
        "metrics.csv": _csv(rows),
        "per_label.csv": _csv(per_label_rows(data, plain)),
        "per_joint.csv": _csv(per_joint_rows(data, plain)),
        "per_joint.md": per_joint_markdown(data, plain),
        "stats.csv": _csv(stats),
        "verdicts.txt": "\n".join(verdict_lines([s for s in stats if s["models"] == "single"]))
        + "\n",
        "table1.md": _table(1, data, rows, keys, False, opt, stats),
        "table2.md": _table(2, data, rows, keys, True, opt, stats),
    }
    out = Path(out)
    paths = {}
    for name, text in texts.items():
        write_text_atomic(out / name, text)
        paths[name.split(".")[0]] = out / name
    return paths


def write_results(run: RunDir, show_tuned: bool | None = None) -> dict[str, Path]:
    """(Re)write ``RUN/results`` from the finished trainings; returns the files by name."""
    data = collect_run(run)
    exp = run.config.experiment
    if show_tuned is None:
        show_tuned = "tuned_threshold" in exp.imbalance_baselines
    res = run.results_dir
    paths = {"oof": write_oof(data, res / "oof.csv")}
    order = list(exp.methods) + list(exp.imbalance_baselines)
    paths.update(write_tables(data, res, order, show_tuned))
    from jointaug.experiments.provenance import record_profile

    paths["profile"] = record_profile(run)
    return paths


def recompute(source: Path, out: Path | None = None, opt: StatsOptions | None = None) -> dict:
    """Every table, statistic and verdict from a run folder or an ``oof.csv`` (``jointaug
    stats``), written to ``out`` (default: the run's ``results/``, or next to the CSV)."""
    source = Path(source)
    if source.is_dir():
        from jointaug.experiments.lock import run_lock

        run = RunDir(source)
        exp = run.config.experiment
        with run_lock(run.path):
            data = collect_run(run)
            out = Path(out) if out else run.results_dir
            paths = {"oof": write_oof(data, out / "oof.csv")}
            order = list(exp.methods) + list(exp.imbalance_baselines)
            show = "tuned_threshold" in exp.imbalance_baselines
            paths.update(write_tables(data, out, order, show, opt))
        return paths
    from jointaug.experiments.oof import read_oof_csv

    if not source.is_file():
        raise FileNotFoundError(f"{source}: neither a run folder nor an oof.csv")
    data = read_oof_csv(source)
    return write_tables(data, Path(out) if out else source.parent, None, True, opt)
