"""The learning curve of ``jointaug headroom``: points, fit, predicted gains, verdict, CSV
and picture (numpy + matplotlib; no training here: :mod:`jointaug.experiments.headroom`
trains the subsets)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from jointaug.experiments.learning_curve import CurveFit, fit_curve

LITTLE = 0.02  # GMS: below what one retraining moves; "little to gain" under it
N_BOOT = 500
MODES = ("tuned", "default")  # result.json's test_tuned / test (the configured threshold)


# ---- the curve and what it predicts ----------------------------------------------------


@dataclass(frozen=True)
class Point:
    """One fold at one fraction: its training images and test GMS per mode (seed mean)."""

    fraction: float
    fold: int
    n_patients: int
    n_images: int
    scores: dict[str, float]
    n_seeds: int


def curve_points(results: Sequence[dict]) -> list[Point]:
    """The seeds of each (fraction, fold) averaged (results of :func:`train_all`)."""
    groups: dict[tuple[float, int], list[dict]] = {}
    for r in results:
        groups.setdefault((r["fraction"], r["fold"]), []).append(r)
    points = []
    for (fraction, fold), rs in sorted(groups.items()):
        scores = {
            "tuned": float(np.mean([r["test_tuned"]["gms"] for r in rs])),
            "default": float(np.mean([r["test"]["gms"] for r in rs])),
        }
        points.append(Point(fraction, fold, rs[0]["n_patients"], rs[0]["n_train"], scores, len(rs)))
    return points


@dataclass(frozen=True)
class Gain:
    n_extra: int
    estimate: float
    low: float
    high: float


@dataclass
class Prediction:
    """One threshold mode: the fitted curve and the gains at ``n_real`` + each extra size."""

    mode: str
    fit: CurveFit
    n_real: float
    gains: list[Gain] = field(default_factory=list)


def predict(
    points: Sequence[Point],
    n_real: float,
    extras: Sequence[int],
    rng: np.random.Generator,
    n_boot: int = N_BOOT,
) -> dict[str, Prediction]:
    """Per mode: the curve fitted to ``points`` (folds resampled together) and the gain
    perfect extra data would give at ``n_real`` real + each of ``extras`` images."""
    out = {}
    for mode in MODES:
        fit = fit_curve(
            [p.n_images for p in points],
            [p.scores[mode] for p in points],
            [p.fold for p in points],
            rng=rng,
            n_boot=n_boot,
        )
        gains = [Gain(int(n), *fit.gain(n_real, n)) for n in sorted(set(extras))]
        out[mode] = Prediction(mode, fit, n_real, gains)
    return out


def verdict(pred: Prediction, little: float = LITTLE) -> str:
    """One line on the largest extra size: little to gain, room to gain, or uncertain."""
    if not pred.gains:
        return "no augmentation sizes in the profile (experiment.sizes): nothing to predict"
    g = pred.gains[-1]
    at = f"at {g.n_extra:,} extra images"
    ci = f"95 % {g.low:+.3f} to {g.high:+.3f}"
    if g.high < little:
        return (
            f"little to gain: < {little:.2f} GMS even {at} (estimate {g.estimate:+.3f}, {ci}); "
            f"a generator, at best worth real images, is unlikely to pay for its GPU hours here"
        )
    if g.low >= little:
        return (
            f"room to gain: perfect extra data would add {g.estimate:+.3f} GMS {at} ({ci}); "
            f"augmentation is worth trying (a generator gains at most this)"
        )
    return (
        f"uncertain: {g.estimate:+.3f} GMS {at} ({ci}) straddles {little:.2f}; "
        f"more folds or seeds narrow it"
    )


CSV_COLUMNS = (
    "kind",
    "mode",
    "fraction",
    "fold",
    "n_patients",
    "n_images",
    "n_seeds",
    "gms",
    "n_extra",
    "gain",
    "ci_low",
    "ci_high",
    "a",
    "b",
    "c",
)


def headroom_csv(points: Sequence[Point], preds: dict[str, Prediction]) -> str:
    """``kind`` point (a fold at a fraction), curve (its parameters: s = a - b n^-c) or
    prediction (``gms`` = s(n_images + n_extra), ``gain`` with its 95 % interval)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, CSV_COLUMNS, lineterminator="\n", restval="")
    w.writeheader()
    for mode, pred in preds.items():
        for p in points:
            w.writerow(
                dict(
                    kind="point",
                    mode=mode,
                    fraction=p.fraction,
                    fold=p.fold,
                    n_patients=p.n_patients,
                    n_images=p.n_images,
                    n_seeds=p.n_seeds,
                    gms=f"{p.scores[mode]:.5f}",
                )
            )
        c = pred.fit.curve
        w.writerow(dict(kind="curve", mode=mode, a=f"{c.a:.6g}", b=f"{c.b:.6g}", c=f"{c.c:.6g}"))
        for g in pred.gains:
            w.writerow(
                dict(
                    kind="prediction",
                    mode=mode,
                    n_images=f"{pred.n_real:g}",
                    n_extra=g.n_extra,
                    gms=f"{float(c(pred.n_real + g.n_extra)):.5f}",
                    gain=f"{g.estimate:.5f}",
                    ci_low=f"{g.low:.5f}",
                    ci_high=f"{g.high:.5f}",
                )
            )
    return buf.getvalue()


# ---- the picture -----------------------------------------------------------------------


_FOLD_COLORS = ("C1", "C2", "C4", "C5", "C6", "C8", "C9", "C7")  # C0 curve, C3 gains
_LABEL = dict(
    textcoords="offset points",
    xytext=(0, -4),
    rotation=90,
    ha="center",
    va="top",
    fontsize=7,
    color="C3",
)


def _panel(ax, points: Sequence[Point], pred: Prediction, title: str) -> None:
    """One mode: folds' points, the curve (dashed beyond the data) with its 95 % band,
    the real training size and the predicted gains as error bars at n + extra."""
    n_max = max(p.n_images for p in points)
    right = pred.n_real + max([g.n_extra for g in pred.gains], default=0)
    grid = np.geomspace(min(p.n_images for p in points) * 0.9, max(right, n_max) * 1.05, 200)
    if pred.fit.boot:
        ys = np.array([c(grid) for c in pred.fit.boot])
        lo, hi = np.clip(np.quantile(ys, [0.025, 0.975], axis=0), 0.0, 1.0)  # GMS is in [0, 1]
        ax.fill_between(grid, lo, hi, color="C0", alpha=0.15, lw=0, label="95 % band (folds)")
    inside = grid <= n_max
    ax.plot(grid[inside], pred.fit.curve(grid[inside]), color="C0", lw=1.8, label="fitted curve")
    ax.plot(grid[~inside], pred.fit.curve(grid[~inside]), color="C0", lw=1.5, ls="--")
    for k, fold in enumerate(sorted({p.fold for p in points})):
        pts = sorted((p.n_images, p.scores[pred.mode]) for p in points if p.fold == fold)
        ax.plot(
            *zip(*pts, strict=True),
            "o-",
            ms=4,
            lw=0.7,
            color=_FOLD_COLORS[k % 8],
            label=f"fold {fold}",
        )
    base = float(pred.fit.curve(pred.n_real))
    ax.axvline(
        pred.n_real, color="0.4", ls=":", lw=1, label=f"real train images ({pred.n_real:.0f})"
    )
    ax.axhline(base, color="0.4", ls=":", lw=1)
    for i, g in enumerate(pred.gains):
        x = pred.n_real + g.n_extra
        yerr = [[max(g.estimate - g.low, 0)], [max(g.high - g.estimate, 0)]]
        label = "gain of perfect extra data (95 %)" if i == 0 else None
        ax.errorbar(
            x, base + g.estimate, yerr=yerr, fmt="D", color="C3", ms=5, capsize=3, label=label
        )
        ax.annotate(f"+{g.n_extra:,}: {g.estimate:+.3f}", (x, base + g.low), **_LABEL)
    ax.margins(y=0.08)
    ax.set_xscale("log")
    ax.set_xlabel("training images (log)")
    ax.set_ylabel("test GMS")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")


def plot_headroom(
    path: Path, points: Sequence[Point], preds: dict[str, Prediction], threshold: float
) -> Path:
    """``learning_curve.png``: one panel per threshold mode."""
    from jointaug.experiments.figures import _plt, _save

    plt = _plt()
    fig, axes = plt.subplots(1, len(preds), figsize=(5.2 * len(preds), 4.0), squeeze=False)
    titles = {"tuned": "threshold tuned on validation", "default": f"threshold {threshold:g}"}
    for ax, (mode, pred) in zip(axes[0], preds.items(), strict=True):
        _panel(ax, points, pred, titles[mode])
    n = f"{preds['tuned'].n_real:.0f}" if "tuned" in preds else ""
    fig.suptitle(
        f"Will more data help? Baseline learning curve; red: gain of perfect extra data "
        f"at {n} real + N images (95 %)",
        fontsize=10,
    )
    fig.tight_layout()
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=4,
        fontsize=8,
        frameon=False,
    )
    return _save(fig, path)
