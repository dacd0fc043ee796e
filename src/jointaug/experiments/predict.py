"""``jointaug predict RUN IMAGE...``: per-joint probabilities from a trained run.

The ensemble is every finished model of one method (default: the method whose seed
ensemble has the best mean test GMS in ``results/metrics.csv``) across all seeds and
folds: p = mean over members. A joint is called inflamed when p >= the threshold:
0.5, or for ``tuned_threshold`` the mean of its folds' tuned thresholds.

Each image is compared with the run's training data (an even sample of its dataset's
images, :mod:`jointaug.dataset.facts`): a different size, bit depth, value range or
DICOM modality is a warning (printed, and kept in the ``warnings`` column), since the
model then sees something it never learnt from.

Writes ``predictions.csv`` (one row per image: the file, then ``p_<label>`` and
``<label>`` decision columns, then ``warnings``) and one ``<image stem>_overlay.png`` per image: the
image beside a schematic of both hands with each joint coloured by its probability
and a ring around the joints called inflamed (the new image has no region map, so
joints are marked on the schematic, not on the image).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from jointaug.dataset.facts import DataFacts, compare, data_facts, image_facts
from jointaug.dataset.format import DatasetError
from jointaug.dataset.io import ImageReadError, read_image
from jointaug.experiments.methods import resolve_method
from jointaug.experiments.report import read_rows
from jointaug.experiments.rundir import RunDir
from jointaug.files import atomic_path, write_text_atomic
from jointaug.outputs import DONE


def best_method(run: RunDir) -> str:
    """The method (with size) whose ensemble has the best mean test GMS at threshold 0.5."""
    rows = read_rows(run.results_dir / "metrics.csv")
    scores: dict[str, list[float]] = {}
    for r in rows:
        if r.get("seed") != "ensemble" or r.get("threshold") not in ("default", "0.5"):
            continue
        try:
            g = float(r["gms"])
        except (TypeError, ValueError):
            continue
        if not math.isnan(g):
            scores.setdefault(r["method_dir"] if "method_dir" in r else _dir_name(r), []).append(g)
    if not scores:
        raise FileNotFoundError(f"{run.results_dir / 'metrics.csv'}: no results yet; run `jointaug run` first")
    return max(scores, key=lambda k: (np.mean(scores[k]), k))


def _dir_name(row: dict) -> str:
    m = resolve_method(row["method"])
    return m.dir_name(int(float(row.get("size") or 0)))


def model_files(run: RunDir, method_dir: str) -> list[Path]:
    """Every finished ``model.safetensors`` of a method folder, over folds and seeds."""
    files = [d / "model.safetensors" for d in run.classify_dirs(method_dir)
             if (d / "model.safetensors").is_file() and (d / DONE).is_file()]  # fmt: skip
    if not files:
        known = run.method_dirs()
        raise FileNotFoundError(
            f"{run.path}: no finished models for method {method_dir!r} (trained: {', '.join(known) or 'none'})"
        )
    return files


def method_threshold(run: RunDir, method_dir: str) -> float:
    if method_dir != "tuned_threshold":
        return float(run.config.classify.threshold)
    ts = []
    for f in run.classify_dirs("baseline", ordered=False):
        if not (f / "result.json").is_file():
            continue
        r = json.loads((f / "result.json").read_text(encoding="utf-8"))
        t = r.get("threshold_tuned")
        if t is not None:
            ts.append(float(t))
    return float(np.mean(ts)) if ts else 0.5


def schematic_centres(labels: list[str], size: int = 256) -> tuple[dict[str, tuple[float, float]], np.ndarray]:
    """Joint centres (row, col) on a schematic two-hand layout (the phantom's anatomy),
    and that layout's region map. Labels outside the 30 hand labels get no centre."""
    from jointaug.dataset.format import HAND_LABELS
    from jointaug.dataset.phantom import draw_hands, patient_params

    hand, regions = draw_hands(patient_params(np.random.default_rng(0), size))

    out = {}
    for i, name in enumerate(HAND_LABELS, start=1):
        rr, cc = np.nonzero(regions == i)
        if name in labels and rr.size:
            out[name] = (float(rr.mean()), float(cc.mean()))
    return out, (hand > 0).astype(np.uint8) + (regions > 0)


def overlay(image: np.ndarray, probs: np.ndarray, labels: list[str], threshold: float, out: Path,
            title: str) -> Path:  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    centres, schematic = schematic_centres(labels)
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 4.3))
    axes[0].imshow(image, cmap="gray_r", vmin=0, vmax=max(float(np.percentile(image, 99.5)), 1.0))
    axes[0].set_title(title, fontsize=8)
    axes[1].imshow(schematic, cmap="Greys", vmin=0, vmax=5)
    for side in ("R", "L"):
        if f"{side}_wrist" in centres:
            r, c = centres[f"{side}_wrist"]
            axes[1].text(c, r + 22, f"{side} hand", ha="center", fontsize=8)
    cmap = plt.get_cmap("Reds")
    for j, name in enumerate(labels):
        if name not in centres:
            continue
        r, c = centres[name]
        p = float(probs[j])
        axes[1].scatter([c], [r], s=60, color=cmap(0.15 + 0.85 * p), edgecolors="none", zorder=3)
        if p >= threshold:
            axes[1].scatter([c], [r], s=170, facecolors="none", edgecolors="red", linewidths=1.6, zorder=4)
    n_pos = int((probs >= threshold).sum())
    axes[1].set_title(f"{n_pos} joints called inflamed (ring: p >= {threshold:.2f}; fill: p)\nschematic hands, palmar view", fontsize=8)
    for ax in axes:
        ax.axis("off")
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight", format="png")
    plt.close(fig)
    return out


def training_facts(run: RunDir) -> DataFacts | str:
    """Facts of the run's training images, or why they cannot be had (dataset moved)."""
    try:
        ds = run.dataset
        cases = ds.classification_cases()
        pick = sorted({round(i * (len(cases) - 1) / 23) for i in range(24)}) if cases else []
        return data_facts([ds.path(cases[i].image) for i in pick], ds.meta.modality)
    except (DatasetError, ImageReadError, OSError) as exc:
        return f"cannot compare the images with the training data ({exc})"


def predict_images(run: RunDir, images: list[str | Path], out: str | Path, method: str | None = None,
                   device: str = "cpu", warn: Callable[[str], None] | None = None) -> Path:  # fmt: skip
    """Predict every image with the method's ensemble; write CSV and overlays; return the CSV.

    ``warn`` receives one line per way an image differs from the training data.
    """
    warn = warn or (lambda message: None)
    from jointaug.classify.predict import predict_files

    out = Path(out)
    method_dir = method or best_method(run)
    files = model_files(run, "baseline" if method_dir == "tuned_threshold" else method_dir)
    paths = [Path(p) for p in images]
    arrays, notes = [], []
    train = training_facts(run)
    if isinstance(train, str):
        warn(train)
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no such image file")
        img = read_image(p)  # raises ImageReadError naming the file and the rule
        if not np.all(np.isfinite(img)) or img.min() < 0:
            raise ImageReadError(f"{p}: pixel values must be finite, non-negative counts")
        h, w = img.shape
        if min(h, w) < 16 or max(h, w) / min(h, w) > 2:
            raise ImageReadError(f"{p}: image of {h}x{w} px is too small or not roughly square "
                                 f"(the models were trained on square count images)")  # fmt: skip
        arrays.append(img)
        notes.append([] if isinstance(train, str) else compare(image_facts(p, img), train))
        for note in notes[-1]:
            warn(f"{p}: {note}")
    probs, labels = predict_files(files, paths, device=device)
    thr = method_threshold(run, method_dir)
    out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["image", *(f"p_{lab}" for lab in labels), *labels, "warnings"])
    for p, row, note in zip(paths, probs, notes, strict=True):
        w.writerow([str(p), *(f"{v:.4f}" for v in row), *(int(v >= thr) for v in row), " | ".join(note)])
        overlay(arrays[paths.index(p)], row, labels, thr, out / f"{p.stem}_overlay.png",
                f"{p.name}: {method_dir}, {len(files)} models")  # fmt: skip
    csv_path = out / "predictions.csv"
    write_text_atomic(csv_path, buf.getvalue())
    return csv_path
