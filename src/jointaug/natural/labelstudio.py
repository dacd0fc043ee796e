"""Joint labels of hand photos: Label Studio JSON exports and PNG region maps.

Label Studio's JSON export is a list of tasks::

    [{"id": 1, "data": {"image": "/data/upload/1/8f3c2a1b-Hand_0000002.jpg"},
      "annotations": [{"was_cancelled": false, "result": [
         {"type": "keypointlabels", "original_width": 1600, "original_height": 1200,
          "value": {"x": 41.2, "y": 63.0, "width": 0.5, "keypointlabels": ["mcp2"]}},
         {"type": "brushlabels", "original_width": 1600, "original_height": 1200,
          "value": {"format": "rle", "rle": [0, 9, ...], "brushlabels": ["wrist"]}},
         {"type": "polygonlabels", "original_width": 1600, "original_height": 1200,
          "value": {"points": [[40.1, 60.0], [44.0, 61.2], ...], "polygonlabels": ["pip3"]}}
      ]}]}]

Keypoint and polygon coordinates are percent of the image width and height; brush
masks are RLE (:mod:`jointaug.natural.rle`) at ``original_width x original_height``.
Label names are the 15 joints of one hand (``wrist, mcp1..mcp5, ip1, pip2..pip5,
dip2..dip5``), case-insensitive, optionally prefixed ``R_``/``L_``. The first
annotation of a task that was not cancelled is used.

A PNG region map (``regions/<photo stem>.png``, 8-bit) holds 0 = none and
``i`` = the i-th joint of that list (1 = wrist ... 15 = dip5).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import unquote

import numpy as np
from skimage.draw import polygon as draw_polygon

from jointaug.dataset.format import HAND_JOINTS
from jointaug.dataset.io import read_label_map
from jointaug.natural.rle import RleError, brush_to_mask

JOINT_INDEX = {name: i + 1 for i, name in enumerate(HAND_JOINTS)}


class LabelImportError(ValueError):
    """A label file could not be understood."""


@dataclass
class PhotoLabels:
    """Joint labels of one photo, independent of the resolution it is used at.

    ``keypoints``: joint -> (x, y) as fractions of width and height (0..1).
    ``masks``: joint -> (h, w) bool mask at the labelling resolution.
    """

    source: str
    keypoints: dict[str, tuple[float, float]] = field(default_factory=dict)
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    kinds: set[str] = field(default_factory=set)

    @property
    def joints(self) -> set[str]:
        return set(self.keypoints) | set(self.masks)

    def stems(self) -> list[str]:
        """Photo name stems this label set may belong to (an upload prefix is optional)."""
        stem = PurePosixPath(self.source).stem
        out = [stem]
        m = re.match(r"^[0-9a-fA-F]{8}-(.+)$", stem)
        if m:
            out.append(m.group(1))
        return out


def joint_name(label: str, where: str) -> str:
    """Normalise a label name to one of HAND_JOINTS; raise naming ``where`` otherwise."""
    name = label.strip().lower().replace(" ", "")
    name = re.sub(r"^(r|l|right|left)[_\-]", "", name)
    if name not in JOINT_INDEX:
        raise LabelImportError(f"{where}: label {label!r} is not one of {', '.join(HAND_JOINTS)}")
    return name


def _image_source(data: dict) -> str:
    for key in ("image", "img", "photo"):
        if isinstance(data.get(key), str):
            raw = unquote(data[key])
            raw = raw.split("?d=", 1)[-1]
            return PurePosixPath(raw.replace("\\", "/")).name
    raise LabelImportError("task has no data.image")


def _merge(masks: dict[str, np.ndarray], joint: str, mask: np.ndarray, where: str) -> None:
    if joint in masks:
        if masks[joint].shape != mask.shape:
            raise LabelImportError(f"{where}: {joint} masks of different sizes in one task")
        masks[joint] = masks[joint] | mask
    else:
        masks[joint] = mask


def _size(result: dict, where: str) -> tuple[int, int]:
    try:
        w, h = int(result["original_width"]), int(result["original_height"])
    except (KeyError, TypeError, ValueError):
        raise LabelImportError(f"{where}: needs original_width and original_height") from None
    if w <= 0 or h <= 0:
        raise LabelImportError(f"{where}: bad original size {w}x{h}")
    return w, h


def parse_task(task: dict, where: str) -> PhotoLabels | None:
    """One exported task as PhotoLabels (None when it has no usable annotation)."""
    if not isinstance(task, dict):
        raise LabelImportError(f"{where}: a task must be a JSON object")
    try:
        labels = PhotoLabels(source=_image_source(task.get("data") or {}))
    except LabelImportError as exc:
        raise LabelImportError(f"{where}: {exc}") from None
    where = f"{where} ({labels.source})"
    anns = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
    if not anns:
        return None
    for k, res in enumerate(anns[0].get("result") or []):
        w_res = f"{where} result {k}"
        kind = str(res.get("type", "")).lower()
        value = res.get("value") or res  # exports nest it; some converters flatten it
        if kind == "keypointlabels":
            for name in value.get("keypointlabels") or []:
                try:
                    x, y = float(value["x"]) / 100.0, float(value["y"]) / 100.0
                except (KeyError, TypeError, ValueError):
                    raise LabelImportError(f"{w_res}: keypoint needs numeric x and y") from None
                labels.keypoints[joint_name(name, w_res)] = (x, y)
                labels.kinds.add("keypoint")
        elif kind == "brushlabels":
            if value.get("format", "rle") != "rle" or "rle" not in value:
                raise LabelImportError(f"{w_res}: brush must have format 'rle' and an 'rle' list")
            w, h = _size(res, w_res)
            try:
                mask = brush_to_mask(value["rle"], w, h)
            except RleError as exc:
                raise LabelImportError(f"{w_res}: {exc}") from None
            for name in value.get("brushlabels") or []:
                _merge(labels.masks, joint_name(name, w_res), mask, w_res)
                labels.kinds.add("brush")
        elif kind == "polygonlabels":
            w, h = _size(res, w_res)
            pts = np.asarray(value.get("points") or [], dtype=np.float64)
            if pts.ndim != 2 or pts.shape[0] < 3 or pts.shape[1] != 2:
                raise LabelImportError(f"{w_res}: a polygon needs at least 3 [x, y] points")
            mask = polygon_mask(pts, w, h)
            for name in value.get("polygonlabels") or []:
                _merge(labels.masks, joint_name(name, w_res), mask, w_res)
                labels.kinds.add("polygon")
    return labels


def polygon_mask(points_percent: np.ndarray, width: int, height: int) -> np.ndarray:
    """Fill a polygon given in percent of width/height; (height, width) bool.

    A pixel (row r, column c) is inside when its centre ``(c + 0.5, r + 0.5)`` is.
    """
    pts = np.asarray(points_percent, dtype=np.float64)
    cols = pts[:, 0] / 100.0 * width - 0.5
    rows = pts[:, 1] / 100.0 * height - 0.5
    mask = np.zeros((height, width), dtype=bool)
    rr, cc = draw_polygon(rows, cols, shape=mask.shape)
    mask[rr, cc] = True
    return mask


def read_labelstudio_export(path: str | os.PathLike) -> list[PhotoLabels]:
    """Parse a Label Studio JSON export (list of tasks); tasks without annotations are skipped."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise LabelImportError(f"{path}: Label Studio export missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LabelImportError(f"{path}: not valid JSON ({exc})") from exc
    if isinstance(obj, dict):
        obj = [obj]
    if not isinstance(obj, list):
        raise LabelImportError(f"{path}: expected the JSON export (a list of tasks)")
    out = []
    for i, task in enumerate(obj):
        labels = parse_task(task, f"{path} task {i}")
        if labels is not None and labels.joints:
            out.append(labels)
    return out


def read_region_pngs(folder: str | os.PathLike) -> list[PhotoLabels]:
    """PNG region maps ``folder/<photo stem>.png`` (0 none, 1..15 the joints) as PhotoLabels."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LabelImportError(f"{folder}: region-map folder missing")
    out = []
    for png in sorted(folder.glob("*.png")):
        arr = read_label_map(png)
        if arr.max() > len(HAND_JOINTS):
            raise LabelImportError(
                f"{png}: value {int(arr.max())} outside 0..{len(HAND_JOINTS)} (one hand's joints)"
            )
        lab = PhotoLabels(source=png.name, kinds={"png"})
        for name, idx in JOINT_INDEX.items():
            m = arr == idx
            if m.any():
                lab.masks[name] = m
        out.append(lab)
    return out


def read_labels(path: str | os.PathLike) -> list[PhotoLabels]:
    """Labels from a Label Studio export (.json) or a folder of PNG region maps."""
    path = Path(path)
    if path.is_dir():
        return read_region_pngs(path)
    return read_labelstudio_export(path)


def match_labels(labels: list[PhotoLabels], image_names: list[str]) -> dict[str, PhotoLabels]:
    """Assign label sets to photo names by file stem (Label Studio upload prefixes allowed).

    Raises LabelImportError if two label sets claim one photo; label sets naming
    no known photo are ignored.
    """
    by_stem = {PurePosixPath(n).stem: n for n in image_names}
    out: dict[str, PhotoLabels] = {}
    for lab in labels:
        name = next((by_stem[s] for s in lab.stems() if s in by_stem), None)
        if name is None:
            continue
        if name in out:
            raise LabelImportError(
                f"two label sets for photo {name} ({out[name].source}, {lab.source})"
            )
        out[name] = lab
    return out
