"""The words of the statistics: verdict lines and the markdown under each table.

Everything here reads ``stats.csv`` rows (:func:`jointaug.experiments.stats.stats_rows` or
:func:`jointaug.experiments.stats.read_stats`), so the lines printed by ``jointaug run``,
``demo``, ``report`` and ``stats`` are the same for the same file.

One line per method: a synthetic set's headline first, then every reference
(``baseline``, its controls strongest first -- by the control's own pooled GMS at tuned
thresholds --, the ``mp`` pair) with ΔGMS at 0.5, at tuned thresholds, and ΔAUPRC.

The headline of a synthetic set is judged against its controls, at tuned thresholds and on
AUPRC: "the generator helps" only when the set is above *each* control on both, each with
Holm p < 0.05; "below a control" when any of those comparisons says hurts; "equivalent to its
controls" when all are within the margin; else "not shown to beat its controls". A gain over
the baseline that a control also has is reported as the control's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

METRIC_NAMES = {("gms", "default"): "GMS@0.5", ("gms", "tuned"): "GMS@tuned"}
METRIC_NAMES[("auprc", "none")] = "AUPRC"
METRIC_NAMES[("gms", "tuned vs default")] = "GMS tuned vs 0.5"
HEADLINE = (("gms", "tuned"), ("auprc", "none"))


def _f(x: float, signed: bool = True) -> str:
    if isinstance(x, float) and math.isnan(x):
        return "n/a"
    if not signed and 0 < x < 0.001:
        return "<0.001"
    return f"{x:+.3f}" if signed else f"{x:.3f}"


def _name(r: dict) -> str:
    return METRIC_NAMES.get((r["metric"], r["threshold"]), f"{r['metric']}@{r['threshold']}")


def effect(r: dict) -> str:
    """``GMS@0.5 +0.041 [+0.012, +0.070] Holm p 0.004: helps`` (+ TOST where it matters)."""
    s = (
        f"{_name(r)} {_f(r['estimate'])} [{_f(r['ci_low'])}, {_f(r['ci_high'])}] "
        f"Holm p {_f(r['p_holm'], False)}: {r['verdict']}"
    )
    if r["verdict"] == "equivalent" or (r["verdict"] in ("helps", "hurts") and r["p_tost"] < 0.05):
        s += f" (within ±{r['margin']:g}, TOST p {_f(r['p_tost'], False)})"
    return s


def _references(rows: Sequence[dict]) -> list[str]:
    """This method's references: baseline, controls strongest first, then the rest."""
    strength = {
        r["reference"]: r["value_reference"]
        for r in rows
        if r["role"] == "control" and (r["metric"], r["threshold"]) == ("gms", "tuned")
    }
    refs = list(dict.fromkeys(r["reference"] for r in rows))
    order = {"threshold": 0, "baseline": 0, "control": 1, "pair": 2}
    role = {r["reference"]: r["role"] for r in rows}
    return sorted(
        refs, key=lambda x: (order.get(role[x], 3), -_num(strength.get(x, 0.0)), refs.index(x))
    )


def _num(x: float) -> float:
    return -math.inf if math.isnan(x) else x


def headline(rows: Sequence[dict], table: Sequence[dict]) -> str:
    """A synthetic set's verdict against its controls ('' when it has none in the run)."""
    ctrl = [r for r in rows if r["role"] == "control" and (r["metric"], r["threshold"]) in HEADLINE]
    if not ctrl:
        return ""
    v = [r["verdict"] for r in ctrl]
    what = ", ".join(f"{r['reference']} on {_name(r)}" for r in ctrl if r["verdict"] != "helps")
    if all(x == "helps" for x in v):
        return "the generator helps (above each control at tuned thresholds and on AUPRC)"
    if "hurts" in v:
        low = ", ".join(f"{r['reference']} on {_name(r)}" for r in ctrl if r["verdict"] == "hurts")
        out = f"below a control ({low})"
    elif all(x == "equivalent" for x in v):
        out = "equivalent to its controls"
    else:
        out = f"not shown to beat its controls (not above {what})"
    theirs = _controls_gain(rows, table)
    return out + (f"; {theirs}" if theirs else "")


def _controls_gain(rows: Sequence[dict], table: Sequence[dict]) -> str:
    """'its gain over baseline on X is also the controls' (c helps too)' where it is."""
    gains = []
    for r in rows:
        if r["role"] != "baseline" or r["verdict"] != "helps":
            continue
        also = [
            c["method"]
            for c in table
            if c["reference"] == "baseline"
            and c["verdict"] == "helps"
            and (c["metric"], c["threshold"]) == (r["metric"], r["threshold"])
            and c["method"] in {x["reference"] for x in rows if x["role"] == "control"}
        ]
        gains.append(
            f"its gain over baseline on {_name(r)} is "
            + (f"also the controls' ({', '.join(also)} helps too)" if also else "not beyond them")
        )
    return "; ".join(gains)


def verdict_lines(rows: Sequence[dict]) -> list[str]:
    """One entry per method of one table's ``stats.csv`` rows (pass one ``models`` value):
    ``method: headline``, then one indented line per reference (newline-separated)."""
    lines = []
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        parts = []
        for ref in _references(mine):
            rs = [r for r in mine if r["reference"] == ref]
            parts.append(f"    vs {ref}: " + ", ".join(effect(r) for r in rs))
        head = headline(mine, rows)
        lines.append("\n".join([f"{method}: {head}" if head else f"{method}:", *parts]))
    return lines


def stats_title(table: str, opt) -> str:
    """The paragraph above a table's statistics (``opt``: :class:`StatsOptions`)."""
    if table == "ensemble":
        what = (
            "seed ensembles (one model per fold): patients resampled, the interval is "
            "conditional on the trained models (their training noise is not in it)"
        )
    else:
        what = (
            "single models: patients resampled and each fold's seed redrawn, so training "
            "noise is in the interval"
        )
    return (
        f"Paired differences on pooled out-of-fold predictions ({what}); "
        f"{opt.n_boot_gms} resamples for GMS, {opt.n_boot_auprc} for AUPRC (at least 50 per "
        "comparison of the table, so that Holm can reach 0.05; n_boot in stats.csv); "
        "percentile 95% CI; "
        "Holm over this table; helps / hurts: Holm p < 0.05 and the CI excludes 0; "
        f"equivalent: 90% CI within ±{opt.margin_gms:g} GMS / ±{opt.margin_auprc:g} AUPRC "
        "(TOST); else inconclusive."
    )


def markdown_stats(rows: Sequence[dict], title: str) -> str:
    """A pipe table of one table's comparisons with one verdict per row."""
    lines = [
        title,
        "",
        "| Method | vs | metric | Δ | 95% CI | p | Holm p | TOST p | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ci = f"[{_f(r['ci_low'])}, {_f(r['ci_high'])}]"
        lines.append(
            f"| {r['method']} | {r['reference']} | {_name(r)} | {_f(r['estimate'])} | {ci} | "
            f"{_f(r['p'], False)} | {_f(r['p_holm'], False)} | {_f(r['p_tost'], False)} | "
            f"{r['verdict']} |"
        )
    return "\n".join(lines)


BLOCK_HEADER = {
    "single": (
        "does it help? single models, pooled out-of-fold predictions, patients x seeds-per-fold "
        "bootstrap, Holm over the table (helps: Holm p < 0.05 and 95% CI > 0; equivalent: 90% "
        "CI within the margin; else inconclusive):"
    ),
    "ensemble": ("seed ensembles (patients resampled only: conditional on the trained models):"),
}


def verdict_block(rows: Sequence[dict], tables: Sequence[str] = ("single",)) -> str:
    """The printed verdicts: a header and one indented line per method, per table."""
    out = []
    for t in tables:
        lines = verdict_lines([r for r in rows if r["models"] == t])
        if lines:
            out.append(BLOCK_HEADER[t])
            out += ["  " + line.replace("\n", "\n  ") for line in lines]
    return "\n".join(out)
