"""Write a stand-in 11k Hands folder with a Label Studio export of a labelled subset.

Layout written (the 11k layout plus the labels a user would export)::

    DIR/HandInfo.csv            the 11k columns; accessories=1 where a ring/watch is drawn
    DIR/Hands/Hand_*.jpg        photos (default 400 x 300, 4:3 like the 1600 x 1200 originals)
    DIR/labelstudio.json        Label Studio JSON export of the labelled subset: keypoints for
                                a third, brush RLE masks for a third, polygons for a third
    DIR/standin_truth.json      ground truth: pose and joint positions of every photo
    DIR/standin.json            the parameters (the folder is complete when it exists)

Photos of one subject share a skin tone and hand size. Closed hands (fingers
together or a fist) and accessories are mixed in for the filters to reject; the
labelled subset is drawn from open, accessory-free photos.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from jointaug.dataset.format import HAND_JOINTS
from jointaug.files import write_bytes_atomic, write_text_atomic
from jointaug.natural.hands11k import ASPECTS, HAND_INFO, HandRecord, hand_info_text, photo_path
from jointaug.natural.labelstudio import PhotoLabels
from jointaug.natural.openness import palm_radius
from jointaug.natural.regions import JOINT_RADIUS_FRACTION, regions_from_labels
from jointaug.natural.rle import mask_to_brush
from jointaug.natural.standin import (
    POLISH_COLOURS,
    SKIN_NAMES,
    SKIN_TONES,
    THUMB_LEFT_ASPECTS,
    hand_geometry,
    hand_sdf,
    mirror_geometry,
    render_photo,
)

LABELS_FILE = "labelstudio.json"
TRUTH_FILE = "standin_truth.json"
MARKER = "standin.json"
LABEL_KINDS = ("keypoint", "brush", "polygon")


@dataclass
class StandInPhoto:
    record: HandRecord
    pose: str
    joints: np.ndarray  # (15, 2) x, y in pixels, HAND_JOINTS order
    hand: np.ndarray  # (H, W) bool true silhouette


@dataclass(frozen=True)
class PhotoStyle:
    """How a stand-in photo looks besides its aspect: skin tone index, hand scale, pose
    (open, together, fist), accessory ("", ring, watch), nail polish."""

    skin: int = 0
    scale: float = 1.0
    pose: str = "open"
    accessory: str = ""
    polish: bool = False


def make_photo(
    record_id: str,
    image_name: str,
    aspect: str,
    rng: np.random.Generator,
    size: tuple[int, int] = (400, 300),
    style: PhotoStyle = PhotoStyle(),
) -> tuple[np.ndarray, StandInPhoto]:
    """Render one photo; returns ((H, W, 3) uint8, its truth). ``size`` = (width, height)."""
    skin, scale, pose, accessory, polish = (
        style.skin,
        style.scale,
        style.pose,
        style.accessory,
        style.polish,
    )
    w, h = size
    geom = hand_geometry(w, h, rng, pose=pose, scale=scale)
    face = aspect.split()[0]
    colour = POLISH_COLOURS[int(rng.integers(len(POLISH_COLOURS)))] if polish else None
    img = render_photo(geom, (h, w), rng, SKIN_TONES[skin], face, accessory, colour)
    if aspect not in THUMB_LEFT_ASPECTS:
        img = img[:, ::-1].copy()
        geom = mirror_geometry(geom, w)
    hand = hand_sdf(geom, (h, w)) < 0
    rec = HandRecord(
        id=record_id,
        age=str(int(rng.integers(18, 70))),
        gender=("male", "female")[skin % 2],
        skin_color=SKIN_NAMES[skin],
        accessories=int(bool(accessory)),
        nail_polish=int(polish),
        aspect=aspect,
        image_name=image_name,
        irregularities=0,
    )
    joints = np.array([geom.joints[j] for j in HAND_JOINTS], dtype=np.float64)
    return img, StandInPhoto(rec, pose, joints, hand)


def _jpeg(img: np.ndarray, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _result(kind: str, w: int, h: int, value: dict, k: int) -> dict:
    return {
        "id": f"r{k}",
        "type": kind,
        "from_name": "joints",
        "to_name": "image",
        "original_width": w,
        "original_height": h,
        "image_rotation": 0,
        "value": value,
    }


def _keypoint_results(photo: StandInPhoto, pct: np.ndarray, size: tuple[int, int]) -> list:
    """One keypoint per joint, at ``pct`` (percent of width/height)."""
    w, h = size
    results = []
    for k, (j, (x, y)) in enumerate(zip(HAND_JOINTS, pct, strict=True)):
        value = {"x": round(float(x), 4), "y": round(float(y), 4), "width": 0.6}
        results.append(_result("keypointlabels", w, h, {**value, "keypointlabels": [j]}, k))
    return results


def _brush_results(photo: StandInPhoto, pct: np.ndarray, size: tuple[int, int]) -> list:
    """One brush RLE mask per joint whose region (from the keypoints at ``pct``, clipped
    to the true silhouette) is not empty."""
    w, h = size
    kp = PhotoLabels(
        photo.record.image_name,
        keypoints={j: (x / 100.0, y / 100.0) for j, (x, y) in zip(HAND_JOINTS, pct, strict=True)},
    )
    regions = regions_from_labels(kp, (h, w), hand=photo.hand)
    results = []
    for k, j in enumerate(HAND_JOINTS):
        m = regions == k + 1
        if m.any():
            value = {"format": "rle", "rle": mask_to_brush(m), "brushlabels": [j]}
            results.append(_result("brushlabels", w, h, value, k))
    return results


def _polygon_results(photo: StandInPhoto, pct: np.ndarray, size: tuple[int, int]) -> list:
    """One octagon per joint, its radius the joint's share of the palm radius."""
    w, h = size
    r_palm = palm_radius(photo.hand)
    t = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    results = []
    for k, (j, (x, y)) in enumerate(zip(HAND_JOINTS, photo.joints, strict=True)):
        r = JOINT_RADIUS_FRACTION[j] * r_palm
        pts = np.stack([(x + r * np.cos(t)) / w * 100, (y + r * np.sin(t)) / h * 100], 1)
        value = {"points": np.round(pts, 4).tolist(), "polygonlabels": [j], "closed": True}
        results.append(_result("polygonlabels", w, h, value, k))
    return results


_RESULTS_OF_KIND = {
    "keypoint": _keypoint_results,
    "brush": _brush_results,
    "polygon": _polygon_results,
}


def labelstudio_task(
    photo: StandInPhoto, kind: str, size: tuple[int, int], task_id: int, prefix: str
) -> dict:
    """A Label Studio export task labelling ``photo``'s 15 joints with one label kind."""
    w, h = size
    pct = photo.joints / np.array([w, h]) * 100.0
    if kind not in _RESULTS_OF_KIND:
        raise ValueError(f"unknown label kind {kind!r}")
    results = _RESULTS_OF_KIND[kind](photo, pct, size)
    return {
        "id": task_id,
        "data": {"image": f"/data/upload/1/{prefix}-{photo.record.image_name}"},
        "annotations": [
            {"id": task_id, "was_cancelled": False, "ground_truth": False, "result": results}
        ],
        "predictions": [],
    }


def _is_written(marker: Path, params: dict) -> bool:
    """True when ``marker`` records ``params``; a marker recording others (or unreadable)
    is deleted."""
    if not marker.is_file():
        return False
    try:
        if json.loads(marker.read_text())["params"] == params:
            return True
    except (json.JSONDecodeError, KeyError):
        pass
    marker.unlink()
    return False


class _Subjects:
    """Hands out subjects: each gets 4-6 photos, one skin tone and one hand scale."""

    def __init__(self) -> None:
        self.subject, self.left, self.skin, self.scale = 0, 0, 0, 1.0

    def next_photo(self, rng: np.random.Generator) -> None:
        """Count one more photo, starting a new subject when the current one has none left."""
        if self.left == 0:
            self.subject += 1
            self.left = int(rng.integers(4, 7))
            self.skin = int(rng.integers(len(SKIN_TONES)))
            self.scale = float(rng.uniform(0.88, 1.05))
        self.left -= 1


def _draw_look(
    rng: np.random.Generator, subject: _Subjects, p_accessory: float, p_closed: float
) -> tuple[str, PhotoStyle]:
    """A random aspect, accessory, pose and nail polish for a photo of ``subject``."""
    aspect = ASPECTS[int(rng.integers(4))]
    accessory = ("ring", "watch")[int(rng.integers(2))] if rng.random() < p_accessory else ""
    pose = ("together", "fist")[int(rng.integers(2))] if rng.random() < p_closed else "open"
    polish = aspect.startswith("dorsal") and rng.random() < 0.15
    return aspect, PhotoStyle(subject.skin, subject.scale, pose, accessory, polish)


def _truth(photo: StandInPhoto, size: tuple[int, int]) -> dict:
    """A photo's ground truth: pose and joints as fractions of width/height."""
    return {
        "pose": photo.pose,
        "joints": {
            j: [float(x) / size[0], float(y) / size[1]]
            for j, (x, y) in zip(HAND_JOINTS, photo.joints, strict=True)
        },
    }


def write_standin(
    folder: str | os.PathLike,
    n_photos: int,
    n_labelled: int,
    seed: int,
    size: tuple[int, int] = (400, 300),
    p_accessory: float = 0.15,
    p_closed: float = 0.2,
    progress: bool = False,
) -> Path:
    """Write (or reuse) a stand-in 11k folder; returns it.

    Args:
        folder: output folder; reused as is when its ``standin.json`` matches the arguments.
        n_photos: number of photos; subjects get 4-6 photos each.
        n_labelled: photos in the Label Studio export (open, accessory-free ones).
        size: photo (width, height) in pixels.
    """
    folder = Path(folder)
    params = {
        "n_photos": n_photos,
        "n_labelled": n_labelled,
        "seed": seed,
        "size": list(size),
        "p_accessory": p_accessory,
        "p_closed": p_closed,
        "version": 1,
    }
    marker = folder / MARKER
    if _is_written(marker, params):
        return folder
    rng = np.random.default_rng([seed, 11_000])
    records, truth, candidates = [], {}, []
    subjects = _Subjects()
    it = range(n_photos)
    if progress:
        from jointaug.progress import progress_iter

        it = progress_iter(it, "stand-in photos", "photo")
    for i in it:
        subjects.next_photo(rng)
        aspect, style = _draw_look(rng, subjects, p_accessory, p_closed)
        name = f"Hand_{i + 1:07d}.jpg"
        img, photo = make_photo(f"{subjects.subject:07d}", name, aspect, rng, size, style)
        write_bytes_atomic(photo_path(folder, name), _jpeg(img))
        records.append(photo.record)
        truth[name] = _truth(photo, size)
        if style.pose == "open" and not style.accessory:
            candidates.append(photo)
    picked = [candidates[i] for i in sorted(rng.permutation(len(candidates))[:n_labelled])]
    tasks = [
        labelstudio_task(p, LABEL_KINDS[k % 3], size, k + 1, f"{int(rng.integers(1 << 32)):08x}")
        for k, p in enumerate(picked)
    ]
    write_text_atomic(folder / HAND_INFO, hand_info_text(records))
    write_text_atomic(folder / LABELS_FILE, json.dumps(tasks))
    write_text_atomic(folder / TRUTH_FILE, json.dumps(truth, indent=1))
    write_text_atomic(marker, json.dumps({"params": params}, indent=2) + "\n")
    return folder
