"""Label Studio the other way: the labelling config, and pre-annotations from the segmenter.

:func:`labelling_config` is the project's XML: an ``<Image>`` and a ``<BrushLabels>``
with one ``<Label>`` per joint (the 15 names :mod:`jointaug.natural.labelstudio` reads).
:func:`export_tasks` runs a saved joint segmenter (what ``natural-source`` writes to
``OUT.work/segmenter.safetensors``) on unlabelled photos and writes a Label Studio
import file: one task per photo, its ``predictions`` holding one brush result per
predicted joint, the same result objects a labeller's annotation holds::

    [{"data": {"image": "/data/local-files/?d=Hands/Hand_0000002.jpg"},
      "predictions": [{"model_version": "jointaug-segmenter-3f2a...", "score": 0.81,
        "result": [{"id": "mcp2", "type": "brushlabels", "from_name": "joints",
                    "to_name": "image", "original_width": 1600, "original_height": 1200,
                    "image_rotation": 0, "score": 0.84,
                    "value": {"format": "rle", "rle": [...], "brushlabels": ["mcp2"]}}]}]}]

So the labeller only corrects, and the export after labelling reads back with
:func:`jointaug.natural.labelstudio.read_labelstudio_export`. Masks are at the photo's
own size (the segmenter's class scores are upsampled bilinearly before the argmax and
cut to the hand mask, as in the natural-source build). A result's ``score`` is the mean
probability of its joint over the crop pixels predicted as that joint; the prediction's
``score`` is the mean over its results.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

import numpy as np
from PIL import Image

from jointaug.dataset.format import HAND_JOINTS
from jointaug.files import write_text_atomic
from jointaug.natural.background import hand_mask
from jointaug.natural.hands11k import load_photo
from jointaug.natural.joints import TrainedSegmenter, predict_scores
from jointaug.natural.labelstudio import JOINT_INDEX, match_labels, read_labels
from jointaug.natural.rle import mask_to_brush
from jointaug.natural.segdata import CropBox, crop_input, uncrop_scores

FROM_NAME = "joints"  # the <BrushLabels> name (the stand-in's export uses it too)
TO_NAME = "image"  # the <Image> name
DATA_KEY = "image"  # the task's data field the <Image> shows ($image)
DEFAULT_URL_PREFIX = "/data/local-files/?d="
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")

#: Label colours in the editor: one hue per joint row, lighter towards the finger tips.
JOINT_COLOURS = {
    "wrist": "#7f7f7f",
    "mcp1": "#1f77b4",
    "mcp2": "#d62728",
    "mcp3": "#2ca02c",
    "mcp4": "#9467bd",
    "mcp5": "#ff7f0e",
    "ip1": "#6baed6",
    "pip2": "#fb6a4a",
    "pip3": "#74c476",
    "pip4": "#9e9ac8",
    "pip5": "#fd8d3c",
    "dip2": "#fcbba1",
    "dip3": "#c7e9c0",
    "dip4": "#dadaeb",
    "dip5": "#fdd0a2",
}


class ExportError(ValueError):
    """Bad input to the pre-annotation export (the message names the file)."""


def labelling_config(from_name: str = FROM_NAME, to_name: str = TO_NAME) -> str:
    """The Label Studio labelling config (XML) whose labels the importer reads."""
    lines = [
        "<View>",
        f'  <Image name={quoteattr(to_name)} value={quoteattr("$" + DATA_KEY)} zoom="true"/>',
        f"  <BrushLabels name={quoteattr(from_name)} toName={quoteattr(to_name)}>",
    ]
    for joint in HAND_JOINTS:
        lines.append(
            f"    <Label value={quoteattr(joint)} background={quoteattr(JOINT_COLOURS[joint])}/>"
        )
    lines += ["  </BrushLabels>", "</View>"]
    return "\n".join(lines) + "\n"


def brush_result(joint: str, mask: np.ndarray, score: float | None = None) -> dict:
    """One joint's (H, W) bool mask as a Label Studio brush result (annotation or prediction)."""
    h, w = mask.shape
    out = {
        "id": joint,
        "type": "brushlabels",
        "from_name": FROM_NAME,
        "to_name": TO_NAME,
        "original_width": int(w),
        "original_height": int(h),
        "image_rotation": 0,
        "value": {"format": "rle", "rle": mask_to_brush(mask), "brushlabels": [joint]},
    }
    if score is not None:
        out["score"] = round(float(score), 4)
    return out


def region_results(regions: np.ndarray, scores: dict[str, float] | None = None) -> list[dict]:
    """A (H, W) 0..15 joint map as brush results, one per non-empty joint (HAND_JOINTS order)."""
    scores = scores or {}
    return [
        brush_result(joint, regions == idx, scores.get(joint))
        for joint, idx in JOINT_INDEX.items()
        if (regions == idx).any()
    ]


def _scale_box(box: CropBox, fy: float, fx: float) -> CropBox:
    return CropBox(round(box.r0 * fy), round(box.c0 * fx), max(2, round(box.side * (fx + fy) / 2)))


def _resize_mask_smooth(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if mask.shape == tuple(shape):
        return mask
    im = Image.fromarray(mask.astype(np.float32)).resize(
        (shape[1], shape[0]), Image.Resampling.BILINEAR
    )
    return np.asarray(im) > 0.5


def predict_regions(
    seg: TrainedSegmenter, photo: str | os.PathLike, device: str = "cpu"
) -> tuple[np.ndarray, dict[str, float]]:
    """Joint regions of one photo at its own size, and each predicted joint's score.

    The photo is loaded and masked as the natural-source build does (downscaled to the
    segmenter's ``photo_max_side``); when it is no larger than that, the map is exactly
    the build's. Otherwise the crop box and hand mask are scaled up to the photo's size.

    Returns:
        ((H, W) uint8 0..15 at the photo's own size, {joint: mean probability}).
    """
    photo = Path(photo)
    try:
        with Image.open(photo) as im:
            full_w, full_h = im.size
    except OSError as exc:
        raise ExportError(f"{photo}: cannot read photo ({exc})") from None
    rgb = load_photo(photo, seg.settings["photo_max_side"])
    hand = hand_mask(rgb)
    x, box = crop_input(rgb, hand, int(seg.settings["segmenter_image_size"]))
    probs = predict_scores(seg.model, x[None], device)[0]
    h, w = hand.shape
    if (h, w) != (full_h, full_w):
        box = _scale_box(box, full_h / h, full_w / w)
        hand = _resize_mask_smooth(hand, (full_h, full_w))
    regions = np.where(hand, uncrop_scores(probs, box, (full_h, full_w)), 0).astype(np.uint8)
    winner = probs.argmax(0)
    scores = {
        joint: float(probs[idx][winner == idx].mean()) if (winner == idx).any() else 0.0
        for joint, idx in JOINT_INDEX.items()
        if (regions == idx).any()
    }
    return regions, scores


def list_photos(paths: list[Path]) -> list[Path]:
    """Photo files from files and folders (a folder's ``Hands/`` if it has one), sorted.

    Raises ExportError for a missing path, a file that is not a photo, a folder without
    photos, or two photos of one name (the importer matches labels by file name).
    """
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            folder = path / "Hands" if (path / "Hands").is_dir() else path
            files = sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
            if not files:
                raise ExportError(
                    f"{folder}: no photos ({', '.join(PHOTO_SUFFIXES)}) in this folder"
                )
            found += files
        elif path.is_file():
            if path.suffix.lower() not in PHOTO_SUFFIXES:
                raise ExportError(f"{path}: not a photo ({', '.join(PHOTO_SUFFIXES)})")
            found.append(path)
        else:
            raise ExportError(f"{path}: no such photo or folder")
    by_name: dict[str, Path] = {}
    for path in found:
        other = by_name.setdefault(path.name, path)
        if other != path and other.resolve() != path.resolve():
            raise ExportError(f"{path}: a second photo named {path.name} (also {other})")
    return sorted(by_name.values())


def image_url(photo: Path, root: Path, url_prefix: str) -> str:
    """``url_prefix`` + the photo's path under ``root`` (POSIX, percent-quoted)."""
    try:
        rel = photo.resolve().relative_to(root.resolve())
    except ValueError:
        raise ExportError(f"{photo}: not inside --root {root}") from None
    return url_prefix + quote(rel.as_posix(), safe="/")


@dataclass
class ExportOptions:
    """How tasks point at the photos and which photos are left out."""

    url_prefix: str = DEFAULT_URL_PREFIX  # data.image = url_prefix + path under root
    root: Path = Path(".")
    skip_labelled: Path | None = None  # a Label Studio export or regions/ folder
    device: str = "cpu"
    progress: bool = False


@dataclass
class ExportSummary:
    n_tasks: int
    n_skipped: int  # photos already labelled in ``skip_labelled``
    n_results: int  # brush results over all tasks


def photo_task(seg: TrainedSegmenter, photo: Path, opts: ExportOptions) -> dict:
    """One Label Studio import task: the photo and the segmenter's prediction."""
    regions, scores = predict_regions(seg, photo, opts.device)
    results = region_results(regions, scores)
    mean = float(np.mean(list(scores.values()))) if scores else 0.0
    return {
        "data": {DATA_KEY: image_url(photo, opts.root, opts.url_prefix)},
        "predictions": [{"model_version": seg.version, "score": round(mean, 4), "result": results}],
    }


def export_tasks(
    photos: list[Path], seg: TrainedSegmenter, out: str | os.PathLike, opts: ExportOptions
) -> ExportSummary:
    """Write the Label Studio import JSON for ``photos`` (files or folders) to ``out``."""
    files = list_photos(photos)
    skip: set[str] = set()
    if opts.skip_labelled is not None:
        skip = set(match_labels(read_labels(opts.skip_labelled), [p.name for p in files]))
    todo = [p for p in files if p.name not in skip]
    for photo in todo:
        image_url(photo, opts.root, opts.url_prefix)  # fail before the slow part
    bar = None
    if opts.progress:
        from jointaug.progress import progress_bar

        bar = progress_bar(len(todo), 0, "pre-annotate photos", "photo")
    tasks = []
    for photo in todo:
        tasks.append(photo_task(seg, photo, opts))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    write_text_atomic(out, json.dumps(tasks) + "\n")
    n_results = sum(len(t["predictions"][0]["result"]) for t in tasks)
    return ExportSummary(len(tasks), len(files) - len(todo), n_results)
