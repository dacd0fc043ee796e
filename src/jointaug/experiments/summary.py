"""Pooled out-of-fold summaries of a run: the metric table under Table 1 / 2 and per joint.

Each seed's out-of-fold pool (every patient tested once) gives one value of each metric;
single-model rows average them over seeds, ensemble rows use the seed ensemble. GMS / TPR /
TNR at the row's thresholds (default, or tuned on each model's validation part); AUROC and
AUPRC macro over the joints that have the needed classes; Brier; ECE (10 equal-width bins).
"""

from __future__ import annotations

import math

import numpy as np

from jointaug.classify.metrics import per_joint_table
from jointaug.experiments.oof import OOFSet
from jointaug.experiments.pooled import summarize

SUMMARY = ("gms", "tpr", "tnr", "auroc", "auprc", "brier", "ece")
NAMES = {"gms": "GMS", "tpr": "TPR", "tnr": "TNR", "auroc": "AUROC", "auprc": "AUPRC"}
NAMES.update({"brier": "Brier", "ece": "ECE"})


def row_name(label: str, method: str, kind: str) -> str:
    """The method column of per-label / per-joint rows (``tuned_threshold`` for the
    baseline tuned, ``<method> + tuned`` for the others)."""
    if kind == "default":
        return method
    return "tuned_threshold" if method == "baseline" else f"{method} + tuned"


def _cell(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.3f}"


def summary_markdown(data: OOFSet, keys, ensemble: bool) -> str:
    """Pooled out-of-fold metrics of every table row ``keys`` = (label, method, size, kind)."""
    head = "seed ensemble's pool" if ensemble else "each seed's pool, averaged over seeds"
    lines = [
        f"Pooled out-of-fold metrics (all test folds together, {head}):",
        "",
        "| Method | " + " | ".join(NAMES[k] for k in SUMMARY) + " |",
        "|---|" + "---|" * len(SUMMARY),
    ]
    for label, method, size, kind in keys:
        if (method, size) not in data.methods:
            continue
        p = data.pooled((method, size), kind, ensemble)
        vals = summarize(p.oof, p.y, p.patient, SUMMARY)
        lines.append(f"| {label} | " + " | ".join(_cell(vals[k]) for k in SUMMARY) + " |")
    return "\n".join(lines)


def per_joint_rows(data: OOFSet, keys) -> list[dict]:
    """Per table row and joint, on the pooled out-of-fold predictions of the single models:
    positives, TPR, TNR at the row's thresholds and AUPRC (seed means)."""
    out = []
    for label, method, size, kind in keys:
        if (method, size) not in data.methods:
            continue
        p = data.pooled((method, size), kind, False)
        per_seed = [
            per_joint_table(p.y, p.oof.probs[s], p.oof.thresholds[s], data.labels)
            for s in range(p.oof.n_seeds)
        ]
        for j, joint in enumerate(data.labels):
            out.append(
                {
                    "method": row_name(label, method, kind),
                    "size": size,
                    "label": joint,
                    "positives": per_seed[0][j]["positives"],
                    **{
                        k: float(np.nanmean([s[j][k] for s in per_seed]))
                        if any(not math.isnan(s[j][k]) for s in per_seed)
                        else math.nan
                        for k in ("tpr", "tnr", "auprc")
                    },
                }
            )
    return out


def per_joint_markdown(data: OOFSet, keys) -> str:
    """A joint x method table: positives, then TPR / TNR / AUPRC per method."""
    rows = per_joint_rows(data, keys)
    methods = list(
        dict.fromkeys(r["method"] + (f" ({r['size']})" if r["size"] else "") for r in rows)
    )
    by = {(r["method"] + (f" ({r['size']})" if r["size"] else ""), r["label"]): r for r in rows}
    lines = [
        "Per joint, pooled out-of-fold predictions of the single models (seed means): "
        "test positives; TPR / TNR / AUPRC per method.",
        "",
        "| Joint | positives | " + " | ".join(methods) + " |",
        "|---|---|" + "---|" * len(methods),
    ]
    for joint in data.labels:
        cells = []
        for m in methods:
            r = by[(m, joint)]
            cells.append(
                "/".join(_cell(r[k]).replace("0.", ".", 1) for k in ("tpr", "tnr", "auprc"))
            )
        pos = by[(methods[0], joint)]["positives"] if methods else 0
        lines.append(f"| {joint} | {pos} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
