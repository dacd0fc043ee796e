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
``<label>`` decision columns, then ``warnings``) and per image:

- ``<stem>_overlay.png``: the user's own scan in grey (dark = counts) with, for every joint
  called inflamed, a marker at its class-activation map's peak, a contour around the
  map's top region (>= ``PEAK_LEVEL`` of its peak) and the joint's name, coloured by its
  probability (orange at the threshold, dark red at 1); beside it the schematic of both
  hands with every joint's probability (the joints' places as the phantom draws them);
- ``<stem>_cam.npy``: the maps, (L, H, W) float32 on the image's own pixel grid, label
  order as in the CSV, each in [0, 1] (members scaled to peak 1, then averaged;
  :mod:`jointaug.classify.explain`); read with ``np.load(..., allow_pickle=False)``;
- ``<stem>_cam.json``: how the maps were made (method, layer, members) and per joint
  its probability, decision and map peak ``x`` (column), ``y`` (row) in image pixels
  (null where the map is zero everywhere).

``explain="none"`` skips the maps (the overlay then shows the plain scan).

The drawing lives in :mod:`jointaug.experiments.overlay` (numpy-in, numpy-out helpers and
the matplotlib figure); this module imports no torch until :func:`predict_images` runs
the networks.
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
from jointaug.experiments.overlay import PEAK_LEVEL, map_peaks, overlay, to_image_grid
from jointaug.experiments.report import read_rows
from jointaug.experiments.rundir import RunDir
from jointaug.files import atomic_path, write_text_atomic
from jointaug.outputs import DONE

EXPLAIN_METHODS = ("gradcam", "occlusion", "none")


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
        raise FileNotFoundError(
            f"{run.results_dir / 'metrics.csv'}: no results yet; run `jointaug run` first"
        )
    return max(scores, key=lambda k: (np.mean(scores[k]), k))


def _dir_name(row: dict) -> str:
    from jointaug.experiments.methods import resolve_method  # imports torch

    m = resolve_method(row["method"])
    return m.dir_name(int(float(row.get("size") or 0)))


def model_files(run: RunDir, method_dir: str) -> list[Path]:
    """Every finished ``model.safetensors`` of a method folder, over folds and seeds."""
    files = [
        d / "model.safetensors"
        for d in run.classify_dirs(method_dir)
        if (d / "model.safetensors").is_file() and (d / DONE).is_file()
    ]
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


def ensemble_choice(run: RunDir, method: str | None = None) -> tuple[str, list[Path], float]:
    """What ``predict`` uses: (method folder, its finished model files, decision threshold).

    ``tuned_threshold`` is the baseline's models at the mean of their tuned thresholds.
    """
    method_dir = method or best_method(run)
    files = model_files(run, "baseline" if method_dir == "tuned_threshold" else method_dir)
    return method_dir, files, method_threshold(run, method_dir)


def training_facts(run: RunDir) -> DataFacts | str:
    """Facts of the run's training images, or why they cannot be had (dataset moved)."""
    try:
        ds = run.dataset
        cases = ds.classification_cases()
        pick = sorted({round(i * (len(cases) - 1) / 23) for i in range(24)}) if cases else []
        return data_facts([ds.path(cases[i].image) for i in pick], ds.meta.modality)
    except (DatasetError, ImageReadError, OSError) as exc:
        return f"cannot compare the images with the training data ({exc})"


def read_checked(
    p: Path, train: DataFacts | str, warn: Callable[[str], None]
) -> tuple[np.ndarray, list[str]]:
    """One user image, checked (file, counts, shape), and how it differs from the training data."""
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such image file")
    img = read_image(p)  # raises ImageReadError naming the file and the rule
    if not np.all(np.isfinite(img)) or img.min() < 0:
        raise ImageReadError(f"{p}: pixel values must be finite, non-negative counts")
    h, w = img.shape
    if min(h, w) < 16 or max(h, w) / min(h, w) > 2:
        raise ImageReadError(
            f"{p}: image of {h}x{w} px is too small or not roughly square "
            f"(the models were trained on square count images)"
        )
    notes = [] if isinstance(train, str) else compare(image_facts(p, img), train)
    for note in notes:
        warn(f"{p}: {note}")
    return img, notes


def write_maps(
    out: Path,
    image: Path,
    cams: np.ndarray,
    labels: list[str],
    probs: np.ndarray,
    threshold: float,
    info: dict,
) -> dict:
    """Write ``<stem>_cam.npy`` and ``<stem>_cam.json`` (module docstring); return the JSON."""
    peaks = map_peaks(cams)
    joints = [
        {
            "label": lab,
            "p": round(float(p), 4),
            "inflamed": bool(p >= threshold),
            "x": None if np.isnan(x) else int(x),
            "y": None if np.isnan(y) else int(y),
        }
        for lab, p, (x, y) in zip(labels, probs, peaks, strict=True)
    ]
    doc = {
        "image": str(image),
        **info,
        "shape": list(cams.shape[1:]),
        "threshold": threshold,
        "peak_level": PEAK_LEVEL,
        "joints": joints,
    }
    with atomic_path(out / f"{image.stem}_cam.npy") as tmp, open(tmp, "wb") as f:
        np.save(f, cams.astype(np.float32), allow_pickle=False)
    write_text_atomic(out / f"{image.stem}_cam.json", json.dumps(doc, indent=1) + "\n")
    return doc


def explain_note(info: dict) -> str:
    how = "Grad-CAM" if info["method"] == "gradcam" else "occlusion sensitivity"
    layer = f" at {info['layer']}" if info.get("layer") else ""
    return (
        f"{how}{layer}, mean of {info['members']} models; +: map peak, "
        f"outline: map >= {PEAK_LEVEL:.0%} of its peak"
    )


def predict_images(
    run: RunDir,
    images: list[str | Path],
    out: str | Path,
    method: str | None = None,
    device: str = "cpu",
    warn: Callable[[str], None] | None = None,
    explain: str = "gradcam",
    cam_layer: str | None = None,
) -> Path:
    """Predict every image with the method's ensemble; write CSV, maps and overlays; return the CSV.

    ``warn`` receives one line per way an image differs from the training data.
    ``explain``: ``gradcam``, ``occlusion`` or ``none``; ``cam_layer`` overrides the
    Grad-CAM target layer (:func:`jointaug.classify.explain.cam_layer`).
    """
    from jointaug.classify.predict import dataset_views, predict_files
    from jointaug.config import ConfigError

    if explain not in EXPLAIN_METHODS:
        raise ConfigError(f"explain {explain!r}: choose one of {', '.join(EXPLAIN_METHODS)}")
    warn = warn or (lambda message: None)
    out, paths = Path(out), [Path(p) for p in images]
    method_dir = method or best_method(run)
    files = model_files(run, "baseline" if method_dir == "tuned_threshold" else method_dir)
    train = training_facts(run)
    if isinstance(train, str):
        warn(train)
    arrays, notes = zip(*(read_checked(p, train, warn) for p in paths), strict=True)
    # a file of the run's dataset is canonicalised by its view (lr_aware / per_hand models);
    # with the dataset moved away, every file is taken as canonical (its warning is above)
    try:
        views = dataset_views(run.dataset, paths)
    except (DatasetError, OSError):
        views = None
    probs, labels = predict_files(files, paths, device=device, views=views)
    thr = method_threshold(run, method_dir)
    maps, info = _explain(files, paths, explain, cam_layer, device, views)
    out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["image", *(f"p_{lab}" for lab in labels), *labels, "warnings"])
    for i, (p, row, note) in enumerate(zip(paths, probs, notes, strict=True)):
        w.writerow(
            [str(p), *(f"{v:.4f}" for v in row), *(int(v >= thr) for v in row), " | ".join(note)]
        )
        cams = None if maps is None else to_image_grid(maps[i], arrays[i].shape)
        if cams is not None:
            write_maps(out, p, cams, labels, row, thr, info)
        overlay(
            arrays[i],
            row,
            labels,
            thr,
            out / f"{p.stem}_overlay.png",
            f"{p.name}: {method_dir}, {len(files)} models",
            cams,
            explain_note(info) if cams is not None else "",
        )
    csv_path = out / "predictions.csv"
    write_text_atomic(csv_path, buf.getvalue())
    return csv_path


def _explain(
    files: list[Path], paths: list[Path], explain: str, layer: str | None, device: str, views
) -> tuple[np.ndarray | None, dict]:
    if explain == "none":
        return None, {}
    from jointaug.classify.explain import explain_files
    from jointaug.config import ConfigError

    try:
        return explain_files(files, paths, explain, layer, device, views)
    except ValueError as exc:  # an unknown --cam-layer
        raise ConfigError(str(exc)) from exc
