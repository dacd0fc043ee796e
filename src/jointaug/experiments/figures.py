"""Figures of a run: the paper's Fig. 6, the effect against set size with patient-level
intervals, per-joint rates, real-vs-synthetic grids.

All functions read plain rows (dicts from ``results/metrics.csv``, ``results/stats.csv`` and
``results/per_label.csv``) or dataset folders and write PNGs atomically.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jointaug.classify.metrics import mean_std
from jointaug.dataset.format import Dataset
from jointaug.experiments.oof import method_size, row_label
from jointaug.files import atomic_path

FIG6_METRICS = ("accuracy", "tpr", "tnr", "f1", "gms")
METRIC_TITLES = {"accuracy": "Accuracy", "tpr": "TPR", "tnr": "TNR", "f1": "F1", "gms": "GMS"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out: Path, dpi: int = 110) -> Path:
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    _plt().close(fig)
    return out


def _f(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def curve_points(rows: Sequence[dict], metric: str) -> dict[str, list[tuple[int, float, float]]]:
    """Per method: (size, mean over folds, std over folds) of the seed-averaged metric.

    Uses single-model rows (not ensembles) at the default threshold. The baseline
    (size 0) is drawn at x = 0 for every method's curve, as in the paper's Fig. 6.
    """
    per = defaultdict(lambda: defaultdict(list))  # (method, size) -> fold -> values over seeds
    for r in rows:
        if r.get("seed") == "ensemble" or r.get("threshold", "0.5") not in ("0.5", "default"):
            continue
        per[(r["method"], int(_f(r.get("size", 0)) or 0))][r["fold"]].append(_f(r[metric]))
    points: dict[str, list[tuple[int, float, float]]] = defaultdict(list)
    for (method, size), folds in per.items():
        fold_means = [_nanmean(v) for v in folds.values()]
        m, s = mean_std(fold_means)
        points[method].append((size, m, s))
    base = points.pop("baseline", None)
    for method in list(points):
        if base:
            points[method].extend(p for p in base if p[0] == 0)
        points[method].sort()
    if base:
        points["baseline"] = sorted(base)
    return dict(points)


def fig6(rows: Sequence[dict], out: str | Path, metrics: Sequence[str] = FIG6_METRICS) -> Path:
    """Metrics against augmentation size per method (the paper's Fig. 6), mean ± std over folds.

    Sizes are placed evenly (they usually double: 512, 1024, ... 8192); 0 is the baseline.
    """
    plt = _plt()
    all_pts = {metric: curve_points(rows, metric) for metric in metrics}
    sizes = sorted({q[0] for pts in all_pts.values() for p in pts.values() for q in p} | {0})
    pos = {size: i for i, size in enumerate(sizes)}
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.3 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        pts = all_pts[metric]
        for method, p in sorted(pts.items()):
            if method == "baseline":
                continue
            x = np.array([pos[q[0]] for q in p], float)
            y = np.array([q[1] for q in p])
            s = np.array([q[2] for q in p])
            line = ax.plot(x, y, marker="o", ms=3, label=method)[0]
            ax.fill_between(x, y - s, y + s, color=line.get_color(), alpha=0.12)
        if "baseline" in pts:
            b = pts["baseline"][0]
            ax.axhline(b[1], color="k", ls="--", lw=1, label="baseline")
        ax.set_xticks(range(len(sizes)), [str(v) for v in sizes], rotation=45, fontsize=7)
        ax.set_xlim(-0.3, max(len(sizes) - 1, 1) + 0.3)
        ax.set_title(METRIC_TITLES.get(metric, metric))
        ax.set_xlabel("augmented images")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.suptitle("Test metrics vs augmentation size (mean ± std over folds)", y=1.02)
    fig.tight_layout()
    if handles:
        fig.legend(
            handles,
            labels,
            loc="upper center",
            ncol=min(len(labels), 6),
            frameon=False,
            bbox_to_anchor=(0.5, -0.02),
        )
    return _save(fig, out)


EFFECT_PANELS = (
    ("gms", "tuned", "ΔGMS at tuned thresholds"),
    ("auprc", "none", "ΔAUPRC (threshold-free)"),
)


def effect_points(
    rows: Sequence[dict], metric: str, threshold: str, models: str = "single"
) -> dict[str, list[tuple[int, float, float, float]]]:
    """Per method: (size, estimate, ci_low, ci_high) of its difference to the baseline.

    ``rows``: ``stats.csv`` rows (:func:`jointaug.experiments.stats.read_stats`); only the
    comparisons of a sized method (``"mp (512)"``) against ``baseline`` on ``metric`` at
    ``threshold`` are used, and each method gets the point (0, 0, 0, 0): the baseline itself.
    """
    points: dict[str, list[tuple[int, float, float, float]]] = defaultdict(list)
    for r in rows:
        method, size = method_size(str(r["method"]))
        if not size or r["reference"] != "baseline" or r["models"] != models:
            continue
        if r["metric"] != metric or r["threshold"] != threshold:
            continue
        est, lo, hi = (_f(r[k]) for k in ("estimate", "ci_low", "ci_high"))
        points[method].append((size, est, lo, hi))
    return {k: sorted([(0, 0.0, 0.0, 0.0), *v]) for k, v in sorted(points.items())}


def effect_figure(rows: Sequence[dict], out: str | Path) -> Path | None:
    """The effect of each augmentation against its set size (Fig. 6 read as a reviewer would):
    the difference to the baseline at tuned thresholds and in AUPRC, with the patient-level
    95 % intervals of ``stats.csv`` as bars. None when no sized method was compared."""
    panels = [(effect_points(rows, m, t), title) for m, t, title in EFFECT_PANELS]
    if not any(pts for pts, _ in panels):
        return None
    plt = _plt()
    sizes = sorted({q[0] for pts, _ in panels for p in pts.values() for q in p})
    pos = {size: i for i, size in enumerate(sizes)}
    methods = sorted({m for pts, _ in panels for m in pts})
    colours = {m: f"C{i % 10}" for i, m in enumerate(methods)}
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for ax, (pts, title) in zip(axes[0], panels, strict=True):
        width = 0.6 / max(len(methods), 1)
        for i, method in enumerate(methods):
            p = pts.get(method, [])
            if not p:
                continue
            dodge = (i - (len(methods) - 1) / 2) * width  # side by side; 0 (the baseline) shared
            x = np.array([pos[q[0]] + (dodge if q[0] else 0.0) for q in p])
            y, lo, hi = (np.array([q[k] for q in p]) for k in (1, 2, 3))
            err = [y - lo, hi - y]
            kw = {"marker": "o", "ms": 3, "capsize": 2, "color": colours[method]}
            ax.errorbar(x, y, yerr=err, label=method, **kw)
        ax.axhline(0, color="k", ls="--", lw=1)
        ax.set_xticks(range(len(sizes)), [str(v) for v in sizes], fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("augmented images per fold (0 = baseline)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("difference to the baseline")
    fig.suptitle("Effect against set size (bars: 95 % patient bootstrap intervals)", y=1.01)
    fig.tight_layout()
    handles, labels = axes[0][0].get_legend_handles_labels()
    ncol = min(len(labels), 5)
    where = {"loc": "upper center", "bbox_to_anchor": (0.5, -0.01), "frameon": False}
    fig.legend(handles, labels, ncol=ncol, fontsize=8, **where)
    return _save(fig, out)


def _size(value) -> int:
    size = _f(value)
    return 0 if math.isnan(size) else int(size)


def per_joint_grid(
    rows: Sequence[dict], methods: Sequence[str] | None = None
) -> tuple[list[str], list[str], dict[str, np.ndarray], list[int]]:
    """The per-joint picture's numbers from rows of ``per_label.csv``.

    Returns (row names, labels, {"tpr"/"tnr": array rows x labels, mean over folds},
    positives per label summed over the folds). A row is a method at one set size
    (``"mp (512)"``; sizes are never averaged together); the baseline comes first, then
    ``tuned_threshold``, then the rest in order. ``methods`` (bare names) keeps only those.
    """
    cells: dict[str, dict[str, dict[str, list[float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    labels: list[str] = []
    order: dict[str, tuple] = {}
    positives: dict[str, dict[tuple, float]] = defaultdict(dict)
    for r in rows:
        if methods is not None and r["method"] not in methods:
            continue
        name = row_label(r["method"], _size(r.get("size")))
        if r["label"] not in labels:
            labels.append(r["label"])
        rank = {"baseline": 0, "tuned_threshold": 1}.get(r["method"], 2)
        order[name] = (rank, r["method"], _size(r.get("size")))
        for metric in ("tpr", "tnr"):
            cells[name][metric][r["label"]].append(_f(r[metric]))
        positives[name][(r.get("fold"), r["label"])] = _f(r.get("positives"))
    names = sorted(cells, key=order.__getitem__)
    grid = {
        m: np.array([[_nanmean(cells[n][m][lab]) for lab in labels] for n in names])
        for m in ("tpr", "tnr")
    }
    # every row tests the same patients: count the positives once, from the first row
    first = positives[names[0]] if names else {}
    pos = [
        int(sum(v for (_, label), v in first.items() if label == lab and not math.isnan(v)))
        for lab in labels
    ]
    return names, labels, grid, pos


def per_joint_figure(
    rows: Sequence[dict], out: str | Path, methods: Sequence[str] | None = None
) -> Path | None:
    """Per-joint TPR and TNR as two heatmaps: one row per method and set size, one column
    per joint (its test positives in the axis label), each cell the mean over folds in %,
    grey where the joint has no positives (TPR undefined)."""
    names, labels, grid, pos = per_joint_grid(rows, methods)
    if not names:
        return None
    plt = _plt()
    cmap = plt.colormaps["viridis"].with_extremes(bad="0.85")
    width = max(8.0, 0.36 * len(labels) + 2.5)
    height = 0.3 * len(names) + 1.2
    fig, axes = plt.subplots(2, 1, figsize=(width, 2 * height + 1.0), sharex=True)
    titles = {"tpr": "TPR (sensitivity)", "tnr": "TNR (specificity)"}
    for ax, metric in zip(axes, ("tpr", "tnr"), strict=True):
        values = np.ma.masked_invalid(grid[metric])
        im = ax.imshow(values, cmap=cmap, vmin=0, vmax=1, aspect="auto")
        for (i, j), v in np.ndenumerate(grid[metric]):
            if not math.isnan(v):
                ax.text(
                    j,
                    i,
                    f"{100 * v:.0f}",
                    ha="center",
                    va="center",
                    fontsize=5.5,
                    color="white" if v < 0.55 else "black",
                )
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.set_title(titles[metric], fontsize=9, loc="left")
        fig.colorbar(im, ax=ax, fraction=0.025, pad=0.01)
    ticks = [f"{lab} ({n})" for lab, n in zip(labels, pos, strict=True)]
    axes[1].set_xticks(range(len(labels)), ticks, rotation=90, fontsize=7)
    fig.suptitle(
        "Per-joint test rates, % (mean over folds; in brackets the joint's test positives;"
        " grey: no positives)",
        fontsize=9,
    )
    fig.tight_layout()
    return _save(fig, out)


def real_vs_synthetic(
    real: Dataset, synthetic: dict[str, Dataset], out: str | Path, n: int = 6, seed: int = 0
) -> Path:
    """A grid: one row of real images, then one row per synthetic source (images + condition)."""
    plt = _plt()
    rng = np.random.default_rng(seed)
    rows = [("real", real, [c for c in real.cases if c.view in real.meta.classification_views])]
    rows += [(name, ds, list(ds.cases)) for name, ds in synthetic.items()]
    fig, axes = plt.subplots(len(rows), n, figsize=(1.8 * n, 1.9 * len(rows)), squeeze=False)
    for r, (name, ds, cases) in enumerate(rows):
        pick = rng.choice(len(cases), size=min(n, len(cases)), replace=False) if cases else []
        for k in range(n):
            ax = axes[r][k]
            ax.axis("off")
            if k >= len(pick):
                continue
            case = cases[int(pick[k])]
            img = ds.image(case)
            ax.imshow(img, cmap="gray_r", vmin=0, vmax=max(np.percentile(img, 99.5), 1))
            tissue = ds.tissue(case)
            if tissue is not None:
                ax.contour(tissue >= 2, levels=[0.5], colors="orange", linewidths=0.5)
                ax.contour(tissue == 3, levels=[0.5], colors="red", linewidths=0.5)
            pos = int(np.nansum(case.labels))
            ax.set_title(f"{name}\n{pos} inflamed", fontsize=7)
    fig.suptitle("Real vs synthetic (contours: low = orange, high = red)", fontsize=9)
    return _save(fig, out)
