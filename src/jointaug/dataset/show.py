"""Look at a dataset: a montage of cases with their label maps, and per-label prevalence.

:func:`montage` works for any folder in the contract format: cases without maps just
show no overlay, labels need not be the 30 hand labels. Drawing uses matplotlib's Agg
canvas directly (no pyplot global state) and the PNG is written atomically.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from jointaug.dataset.format import Case, Dataset
from jointaug.files import atomic_path

DPI = 150
COLUMN_IN, ROW_IN, CHART_IN, MIN_WIDTH_IN = 2.0, 2.25, 2.75, 8.0
# tissue map colours (RGBA): 1 normal, 2 low, 3 high inflammation
TISSUE_RGBA = {1: (0.25, 0.55, 1.0, 0.30), 2: (1.0, 0.65, 0.0, 0.80), 3: (0.9, 0.0, 0.0, 0.90)}
IMAGE_CMAP = "gray_r"  # nuclear-medicine style: counts dark on white


def montage_size(columns: int) -> tuple[int, int]:
    """(width, height) in pixels of a montage with ``columns`` cases."""
    width = max(COLUMN_IN * columns, MIN_WIDTH_IN)
    return int(round(width * DPI)), int(round((3 * ROW_IN + CHART_IN) * DPI))


def pick_cases(dataset: Dataset, n: int, rng: np.random.Generator) -> list[Case]:
    """Up to ``n`` cases: a two-view pair of one patient first, then a non-classification
    view (e.g. an oblique), then a random mix of the rest."""
    cases = list(dataset.cases)
    if n <= 0 or not cases:
        return []
    views = list(dict.fromkeys(dataset.meta.classification_views))
    chosen: list[Case] = []
    if len(views) >= 2:
        ids = {c.case_id: c for c in cases}
        pairs = []
        for c in cases:
            if c.view == views[0]:
                twin = ids.get(c.case_id.replace(views[0], views[1]))
                twin = twin or next(
                    (d for d in cases if d.patient_id == c.patient_id and d.view == views[1]), None
                )
                if twin is not None:
                    pairs.append((c, twin))
        if pairs:
            pos = np.array([np.nansum(a.labels) if a.labels.size else 0.0 for a, _ in pairs])
            weights = pos + 0.01 if pos.sum() == 0 else np.where(pos > 0, pos, 0.0)
            a, b = pairs[int(rng.choice(len(pairs), p=weights / weights.sum()))]
            chosen += [a, b]
    others = [c for c in cases if c.view not in views]
    if others and len(chosen) < n:
        same = [c for c in others if chosen and c.patient_id == chosen[0].patient_id]
        chosen.append(same[0] if same else others[int(rng.integers(len(others)))])
    rest = [c for c in cases if c not in chosen]
    order = rng.permutation(len(rest))
    chosen += [rest[i] for i in order[: max(n - len(chosen), 0)]]
    return chosen[:n]


def label_series(dataset: Dataset) -> tuple[list[str], dict[str, list[int | None]]]:
    """X-axis names and bar series: one series per group if the groups share their label
    names after a common prefix (``R_wrist`` / ``L_wrist`` -> ``wrist``), else one series.

    Series values are indices into ``dataset.labels`` (None where a group lacks a name).
    """
    labels = dataset.labels
    groups = {k: v for k, v in dataset.meta.groups.items() if v}
    if len(groups) >= 2:
        suffixes = {}
        for name, members in groups.items():
            prefix = os.path.commonprefix(members) if len(members) > 1 else ""
            suffixes[name] = [m[len(prefix) :] for m in members]
        first = next(iter(suffixes.values()))
        if all(set(s) == set(first) for s in suffixes.values()) and all(first):
            series = {
                name: [labels.index(groups[name][s.index(x)]) for x in first]
                for name, s in suffixes.items()
            }
            return first, series
    return list(labels), {"all": list(range(len(labels)))}


def prevalence(dataset: Dataset) -> tuple[np.ndarray, float, int]:
    """Positive rates over the labelled classification cases (all labelled cases if there
    is no classification case), ignoring unknown cells.

    Returns the per-label rates (L,) (NaN where nothing is known), the overall rate
    pooled over all known cells, and the number of cases.
    """
    cases = dataset.classification_cases() or [c for c in dataset.cases if c.is_labelled]
    if not cases:
        return np.full(len(dataset.labels), np.nan), float("nan"), 0
    mat = dataset.label_matrix(cases)
    known = np.isfinite(mat).sum(0)
    rate = np.where(known > 0, np.nansum(mat, 0) / np.maximum(known, 1), np.nan)
    return rate, float(np.nansum(mat) / max(known.sum(), 1)), len(cases)


def _scaled(img: np.ndarray) -> np.ndarray:
    top = float(np.percentile(img, 99.9)) if img.size else 1.0
    return np.clip(img / max(top, 1e-6), 0, 1)


def _tissue_rgba(tissue: np.ndarray) -> np.ndarray:
    rgba = np.zeros((*tissue.shape, 4), np.float32)
    for value, colour in TISSUE_RGBA.items():
        rgba[tissue == value] = colour
    return rgba


def _region_palette():
    from matplotlib import colormaps

    greys = {("tab20", 14), ("tab20", 15), *(("tab20c", i) for i in range(16, 20))}
    cols = [
        colormaps[name](i)
        for name in ("tab20", "tab20b", "tab20c")
        for i in range(20)
        if (name, i) not in greys
    ]
    return np.array(cols, np.float32)


def _region_rgba(regions: np.ndarray, palette: np.ndarray) -> np.ndarray:
    rgba = palette[(regions.astype(int) - 1) % len(palette)].copy()
    rgba[..., 3] = np.where(regions > 0, 0.6, 0.0)
    return rgba


def _centroids(regions: np.ndarray) -> dict[int, tuple[float, float]]:
    ids = regions.ravel().astype(int)
    yy, xx = np.indices(regions.shape)
    count = np.bincount(ids)
    sy, sx = np.bincount(ids, yy.ravel()), np.bincount(ids, xx.ravel())
    return {i: (sx[i] / count[i], sy[i] / count[i]) for i in np.nonzero(count)[0] if i > 0}


def _figure(dataset: Dataset, cols: int):
    """The Agg figure of a montage with ``cols`` case columns, titled with the dataset's
    name and counts; returns (figure, grid spec of 3 case rows and the chart row)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    width, height = montage_size(cols)
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(
        4,
        cols,
        height_ratios=[ROW_IN, ROW_IN, ROW_IN, CHART_IN],
        left=0.04,
        right=0.99,
        top=0.92,
        bottom=0.07,
        hspace=0.25,
        wspace=0.05,
    )
    fig.suptitle(
        f"{dataset.meta.name or dataset.root.name}: {len(dataset.cases)} cases, "
        f"{len(dataset.patients())} patients",
        fontsize=10,
    )
    return fig, grid


def _name_regions(ax, case: Case, regions: np.ndarray, labels: list[str]) -> None:
    """Write each label's name at its region's centroid, positive labels in bold red."""
    positive = case.labels == 1
    centres = _centroids(regions)
    size = float(np.clip(16 / np.sqrt(max(len(centres), 1)), 2.8, 6.0))
    for rid, (x, y) in centres.items():
        if rid <= len(labels):
            hot = bool(positive[rid - 1]) if positive.size else False
            ax.text(
                x,
                y,
                labels[rid - 1],
                fontsize=size,
                ha="center",
                va="center",
                color="red" if hot else "black",
                fontweight="bold" if hot else "normal",
            )


def _draw_case(axes: list, dataset: Dataset, case: Case, palette: np.ndarray, name: bool) -> bool:
    """One case's column: the image, the tissue overlay, the region overlay (its labels
    named if ``name``). Returns whether the labels were named."""
    img = _scaled(dataset.image(case))
    tissue, regions = dataset.tissue(case), dataset.regions(case)
    for ax in axes:
        ax.set_axis_off()
    npos = int(np.nansum(case.labels)) if case.is_labelled else None
    status = "unlabelled" if npos is None else f"{npos} positive"
    axes[0].set_title(f"{case.case_id}\n{case.view}, {status}", fontsize=7)
    axes[0].imshow(img, cmap=IMAGE_CMAP, vmin=0, vmax=1, interpolation="nearest")
    for ax in axes[1:]:
        ax.imshow(img, cmap=IMAGE_CMAP, vmin=0, vmax=0.6 / 0.35, interpolation="nearest")
    if tissue is not None:
        axes[1].imshow(_tissue_rgba(tissue), interpolation="nearest")
    else:
        axes[1].set_title("no tissue map", fontsize=6)
    if regions is None:
        axes[2].set_title("no region map", fontsize=6)
        return False
    axes[2].imshow(_region_rgba(regions, palette), interpolation="nearest")
    if name:
        _name_regions(axes[2], case, regions, dataset.labels)
    return name


def montage(dataset: Dataset, out: Path | str, n: int = 8, seed: int = 0) -> Path:
    """Draw ``n`` cases (image; tissue overlay; region overlay) and a prevalence chart.

    The labels are named on the first case that has a region map. Writes a PNG of
    :func:`montage_size` pixels to ``out`` (atomically) and returns its path.
    """
    out = Path(out)
    rng = np.random.default_rng(seed)
    picked = pick_cases(dataset, n, rng)
    fig, grid = _figure(dataset, max(len(picked), 1))
    palette = _region_palette()
    named = False
    for col, case in enumerate(picked):
        axes = [fig.add_subplot(grid[r, col]) for r in range(3)]
        named = _draw_case(axes, dataset, case, palette, not named) or named
    if not picked:
        ax = fig.add_subplot(grid[0:3, :])
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no cases", ha="center", va="center")
    _prevalence_chart(fig.add_subplot(grid[3, :]), dataset)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return out


def _prevalence_chart(ax, dataset: Dataset) -> None:
    rate, overall, n_cases = prevalence(dataset)
    names, series = label_series(dataset)
    x = np.arange(len(names))
    width = 0.8 / len(series)
    for k, (group, idx) in enumerate(series.items()):
        vals = [rate[i] if i is not None else np.nan for i in idx]
        ax.bar(x + (k - (len(series) - 1) / 2) * width, np.nan_to_num(vals), width, label=group)
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=45 if len(names) > 15 else 0, fontsize=7, ha="center")
    ax.set_ylabel("positive rate", fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_title(
        f"per-label prevalence over {n_cases} labelled classification cases "
        f"(overall {overall:.1%})",
        fontsize=8,
    )
    if len(series) > 1:
        ax.legend(fontsize=7, ncols=len(series))
    ax.set_xlim(-0.6, len(names) - 0.4)
