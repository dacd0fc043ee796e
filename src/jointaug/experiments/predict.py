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

The drawing helpers (:func:`to_image_grid`, :func:`map_peaks`, :func:`top_region`,
:func:`draw_explanations`) are numpy-in, numpy-out; this module imports no torch until
:func:`predict_images` runs the networks.
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
from jointaug.experiments.report import read_rows
from jointaug.experiments.rundir import RunDir
from jointaug.files import atomic_path, write_text_atomic
from jointaug.outputs import DONE

EXPLAIN_METHODS = ("gradcam", "occlusion", "none")
PEAK_LEVEL = 0.5  # the top region of a map: >= this fraction of its peak


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


def schematic_centres(
    labels: list[str], size: int = 256
) -> tuple[dict[str, tuple[float, float]], np.ndarray]:
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


def to_image_grid(maps: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Maps (L, S, S) on the classifier's input grid -> (L, H, W) on the image's grid.

    Undoes :func:`jointaug.classify.transforms.prepare_image`: bilinear resize to the
    padded square (M = max(H, W); pixel centres aligned, as the area resize was), then
    the centred zero-padding is cut away.
    """
    from skimage.transform import resize

    maps = np.asarray(maps, dtype=np.float32)
    h, w = shape
    m = max(h, w)
    if maps.shape[1:] != (m, m):
        maps = resize(
            maps,
            (maps.shape[0], m, m),
            order=1,
            mode="edge",
            anti_aliasing=False,
            preserve_range=True,
        )
    top, left = (m - h) // 2, (m - w) // 2
    return np.ascontiguousarray(maps[:, top : top + h, left : left + w], dtype=np.float32)


def map_peaks(maps: np.ndarray) -> np.ndarray:
    """(L, H, W) -> (L, 2) float: (x, y) = (column, row) of each map's maximum (the first
    in row-major order); NaN where the map is zero or less everywhere (no evidence)."""
    flat = np.asarray(maps).reshape(len(maps), -1)
    idx = flat.argmax(axis=1)
    rows, cols = np.unravel_index(idx, maps.shape[1:])
    out = np.stack([cols, rows], axis=1).astype(np.float64)
    out[~(flat.max(axis=1) > 0)] = np.nan
    return out


def top_region(cam: np.ndarray, level: float = PEAK_LEVEL) -> np.ndarray:
    """(H, W) bool: the 8-connected part of ``cam >= level * max`` holding the peak."""
    from scipy import ndimage

    top = float(cam.max())
    if not top > 0:
        return np.zeros(cam.shape, bool)
    parts, _ = ndimage.label(cam >= level * top, structure=np.ones((3, 3)))
    return parts == parts.flat[int(cam.argmax())]


def prob_colour(p: float, threshold: float = 0.5) -> np.ndarray:
    """(3,) uint8: orange (255, 160, 0) at the threshold to dark red (180, 0, 0) at p = 1."""
    t = float(np.clip((p - threshold) / max(1.0 - threshold, 1e-6), 0.0, 1.0))
    return np.rint(np.array([255, 160, 0]) * (1 - t) + np.array([180, 0, 0]) * t).astype(np.uint8)


def grey_scan(image: np.ndarray, zoom: int = 1) -> np.ndarray:
    """(H, W) counts -> (H*zoom, W*zoom, 3) uint8, inverted grey (white 0, black at the
    99.5th percentile), each pixel a zoom x zoom block."""
    img = np.nan_to_num(np.asarray(image, np.float64))
    vmax = max(float(np.percentile(img, 99.5)), 1.0)
    grey = np.rint(255 * (1 - np.clip(img / vmax, 0, 1))).astype(np.uint8)
    grey = np.kron(grey, np.ones((zoom, zoom), np.uint8))
    return np.repeat(grey[..., None], 3, axis=2)


def draw_explanations(
    image: np.ndarray,
    maps: np.ndarray,
    probs: np.ndarray,
    threshold: float,
    zoom: int = 1,
    level: float = PEAK_LEVEL,
) -> np.ndarray:
    """The scan in grey (:func:`grey_scan`) with, per joint with ``probs >= threshold`` and
    a non-zero map, the outline of its :func:`top_region` and a plus at its peak, both in
    :func:`prob_colour`. (H*zoom, W*zoom, 3) uint8; labels are for the caller to write."""
    rgb = grey_scan(image, zoom)
    arm, half = max(2, 2 * zoom), max(zoom // 3, 0)
    peaks = map_peaks(maps)
    order = np.argsort(probs)  # the most probable drawn last, on top
    for j in (j for j in order if probs[j] >= threshold and not np.isnan(peaks[j, 0])):
        colour = prob_colour(float(probs[j]), threshold)
        region = np.kron(top_region(maps[j], level), np.ones((zoom, zoom), bool))
        edge = region & ~_erode(region)
        rgb[edge] = colour
        x, y = (int(v) * zoom + zoom // 2 for v in peaks[j])
        h, w = rgb.shape[:2]
        rgb[max(y - half, 0) : y + half + 1, max(x - arm, 0) : min(x + arm + 1, w)] = colour
        rgb[max(y - arm, 0) : min(y + arm + 1, h), max(x - half, 0) : x + half + 1] = colour
    return rgb


def _erode(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    return ndimage.binary_erosion(mask, structure=np.ones((3, 3)), border_value=0)


def overlay(
    image: np.ndarray,
    probs: np.ndarray,
    labels: list[str],
    threshold: float,
    out: Path,
    title: str,
    cams: np.ndarray | None = None,
    note: str = "",
) -> Path:
    """Write the overlay PNG: the scan with the explanations (module docstring), and the
    schematic hands. ``cams``: (L, H, W) maps on the image's grid, or None (plain scan)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8.4, 4.5))
    zoom = max(1, int(np.ceil(400 / max(image.shape))))
    if cams is None:
        axes[0].imshow(grey_scan(image, zoom))
    else:
        axes[0].imshow(draw_explanations(image, cams, probs, threshold, zoom))
        _name_peaks(axes[0], cams, probs, labels, threshold, zoom)
        blank = [
            labels[j]
            for j, (x, _) in enumerate(map_peaks(cams))
            if probs[j] >= threshold and np.isnan(x)
        ]
        note += f"\ncalled, but zero map (not drawn): {', '.join(blank)}" if blank else ""
    axes[0].set_title(f"{title}\n{note}" if note else title, fontsize=7)
    schematic_panel(axes[1], probs, labels, threshold)
    for ax in axes:
        ax.axis("off")
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight", format="png")
    plt.close(fig)
    return out


def _name_peaks(
    ax, cams: np.ndarray, probs: np.ndarray, labels: list[str], threshold: float, zoom: int
) -> None:
    import matplotlib.patheffects as pe

    for j, (x, y) in enumerate(map_peaks(cams)):
        if probs[j] >= threshold and not np.isnan(x):
            ax.text(
                (x + 0.5) * zoom + 1.5 * zoom + 3,
                (y + 0.5) * zoom,
                f"{labels[j]} {probs[j]:.2f}",
                fontsize=6,
                va="center",
                color=prob_colour(float(probs[j]), threshold) / 255,
                path_effects=[pe.withStroke(linewidth=2, foreground="white")],
            )


def schematic_panel(ax, probs: np.ndarray, labels: list[str], threshold: float) -> None:
    """Both hands of the phantom's anatomy, each joint a dot filled by its probability,
    ringed when called inflamed."""
    import matplotlib.pyplot as plt

    centres, schematic = schematic_centres(labels)
    ax.imshow(schematic, cmap="Greys", vmin=0, vmax=5)
    for side in ("R", "L"):
        if f"{side}_wrist" in centres:
            r, c = centres[f"{side}_wrist"]
            ax.text(c, r + 22, f"{side} hand", ha="center", fontsize=8)
    cmap = plt.get_cmap("Reds")
    for j, name in enumerate(labels):
        if name not in centres:
            continue
        r, c = centres[name]
        p = float(probs[j])
        ax.scatter([c], [r], s=60, color=cmap(0.15 + 0.85 * p), edgecolors="none", zorder=3)
        if p >= threshold:
            ax.scatter(
                [c], [r], s=170, facecolors="none", edgecolors="red", linewidths=1.6, zorder=4
            )
    n_pos = int((probs >= threshold).sum())
    ax.set_title(
        f"{n_pos} joints called inflamed (ring: p >= {threshold:.2f}; fill: p)\n"
        "schematic hands, palmar view",
        fontsize=8,
    )


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
    # a file of the run's dataset is canonicalised by its view (lr_aware / per_hand models)
    views = dataset_views(run.dataset, paths)
    probs, labels = predict_files(files, paths, device=device, views=views)
    thr = method_threshold(run, method_dir)
    maps, info = _explain(files, paths, explain, cam_layer, device)
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
    files: list[Path], paths: list[Path], explain: str, layer: str | None, device: str
) -> tuple[np.ndarray | None, dict]:
    if explain == "none":
        return None, {}
    from jointaug.classify.explain import explain_files
    from jointaug.config import ConfigError

    try:
        return explain_files(files, paths, explain, layer, device)
    except ValueError as exc:  # an unknown --cam-layer
        raise ConfigError(str(exc)) from exc
