"""The natural source: 11k-style hand photos -> two-hand scenes in the dataset contract.

:func:`build_natural_source` runs the whole path: read ``HandInfo.csv`` ->
filter (accessories, aspect, openness, the user's include/exclude lists, cap) ->
hand masks (the paper's heuristic) -> joint labels of the labelled subset (Label
Studio export or PNG region maps) -> U-Net joint segmenter (trained once, cached
in the work folder) -> joint regions of every kept photo -> two-hand scene ->
a dataset folder (``view = "natural"``, tissue 0/1, 30-label region maps, unknown
labels). ``dataset.json`` carries ``"never_inflame": ["R_wrist", "L_wrist"]``: most
photos show no reliable wrist, so the augmenter must never inflame it.

Work folder (default ``OUT.work`` beside the output)::

    standin/                 the stand-in 11k folder (photos=None only)
    selection.csv            every photo looked at: kept or why not, finger count
    segmenter.safetensors    U-Net weights (reused while data and settings match)
    segmenter_dice.csv       validation Dice per joint
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from jointaug.config import NaturalConfig
from jointaug.dataset.format import HAND_JOINTS, Dataset, DatasetMeta, is_complete, read_dataset
from jointaug.dataset.writer import DatasetWriter
from jointaug.files import write_text_atomic
from jointaug.natural.background import hand_mask
from jointaug.natural.hands11k import (
    HandRecord,
    HandsDataError,
    decisions_csv_text,
    load_photo,
    photo_path,
    read_hand_info,
    read_name_list,
    select_photos,
)
from jointaug.natural.labelstudio import PhotoLabels, match_labels, read_labels
from jointaug.natural.layout import Layout, make_scene
from jointaug.natural.regions import regions_from_labels
from jointaug.natural.segdata import crop_input, crop_labels, uncrop_scores
from jointaug.natural.standin_folder import LABELS_FILE, write_standin
from jointaug.runtime import resolve_device

VIEW = "natural"
NEVER_INFLAME = ["R_wrist", "L_wrist"]
EXTRA_COLUMNS = ["source_image", "aspect", "mirrored", "regions_from"]
REGION_FOLDER = "regions"


def default_work_dir(out: Path) -> Path:
    return out.parent / f"{out.name}.work"


def _optional_list(photos: Path, configured: str, default: str) -> set[str]:
    if configured:
        return read_name_list(Path(configured))
    path = photos / default
    return read_name_list(path) if path.is_file() else set()


def find_labels(photos: Path, configured: str) -> Path:
    """The joint-label source: ``cfg.labels``, else ``labelstudio.json`` or ``regions/`` in the photos folder."""
    if configured:
        path = Path(configured)
        if not path.exists():
            raise HandsDataError(f"{path}: joint labels missing (natural.labels)")
        return path
    for cand in (photos / LABELS_FILE, photos / REGION_FOLDER):
        if cand.exists():
            return cand
    raise HandsDataError(
        f"{photos}: no joint labels. Export the labelled photos from Label Studio (JSON) to "
        f"{photos / LABELS_FILE}, put PNG region maps in {photos / REGION_FOLDER}/, or set natural.labels"
    )


def photo_and_mask(photos: Path, name: str, max_side: int) -> tuple[np.ndarray, np.ndarray]:
    rgb = load_photo(photo_path(photos, name), max_side)
    return rgb, hand_mask(rgb)


def labelled_crops(
    photos: Path, labels: dict[str, PhotoLabels], names: list[str], cfg: NaturalConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Segmenter training data: ((N, 3, S, S) float32, (N, S, S) int64)."""
    xs, ys = [], []
    for name in names:
        rgb, mask = photo_and_mask(photos, name, cfg.photo_max_side)
        regions = regions_from_labels(labels[name], mask.shape, mask)
        x, box = crop_input(rgb, mask, cfg.segmenter_image_size)
        xs.append(x)
        ys.append(crop_labels(regions, box, cfg.segmenter_image_size))
    return np.stack(xs), np.stack(ys)


def get_segmenter(x, y, cfg: NaturalConfig, seed: int, work_dir: Path, device: str, progress: bool):
    """Load the cached segmenter for this data, or train and cache it; writes the Dice CSV."""
    from jointaug.natural.joints import (
        apply_settings,
        data_key,
        load_segmenter,
        save_segmenter,
        train_segmenter,
        write_dice_csv,
    )

    key = data_key(x, y, cfg, seed)
    weights = work_dir / "segmenter.safetensors"
    result = load_segmenter(weights, cfg, key)
    if result is None:
        result = train_segmenter(x, y, cfg, seed, device=device, progress=progress)
        save_segmenter(weights, result, key, apply_settings(cfg))
    write_dice_csv(work_dir / "segmenter_dice.csv", result)
    if progress:
        print_dice(result)
    return result


def print_dice(result) -> None:
    from rich.console import Console
    from rich.table import Table

    from jointaug.natural.joints import dice_table

    table = Table(
        title="joint segmenter", caption=f"validation Dice, {result.n_val} photos held out"
    )
    table.add_column("joint")
    table.add_column("val Dice", justify="right")
    rows = dice_table(result)
    for joint, d in rows:
        table.add_row(joint, "-" if np.isnan(d) else f"{d:.3f}")
    vals = [d for _, d in rows if not np.isnan(d)]
    table.add_row("mean", f"{np.mean(vals):.3f}" if vals else "-")
    Console(stderr=True).print(table)


def _case_id(name: str) -> str:
    return "nat_" + Path(name).stem


def build_natural_source(
    out: Path,
    photos: Path | None,
    size: int,
    cfg: NaturalConfig,
    seed: int,
    progress: bool = True,
    work_dir: Path | None = None,
    device: torch.device | str = "cpu",
) -> Dataset:
    """Build (or finish, or just read) the natural source dataset folder.

    Args:
        out: output dataset folder; returned as is when already complete.
        photos: an 11k Hands folder (``HandInfo.csv``, ``Hands/``) with joint labels
            (``labelstudio.json`` or ``regions/``, or ``cfg.labels``); None = the
            built-in stand-in, written to ``work_dir/standin`` first.
        size: scene side in pixels (the scintigraphy dataset's size).
        cfg: the ``natural`` config section.
        seed: drives photo choice, segmenter training and scene jitter.
        work_dir: scratch folder (default ``OUT.work``); holds the segmenter cache.
        device: torch device for the segmenter (a name such as ``auto`` is resolved
            here, by :func:`jointaug.runtime.resolve_device`).

    Returns:
        The dataset (one case per kept photo).
    """
    out = Path(out)
    if is_complete(out):
        return read_dataset(out)
    device = resolve_device(device)
    work_dir = Path(work_dir) if work_dir is not None else default_work_dir(out)
    work_dir.mkdir(parents=True, exist_ok=True)
    standin = photos is None
    if standin:
        photos = write_standin(
            work_dir / "standin", cfg.stand_in_photos, cfg.n_labelled, seed, progress=progress
        )
    photos = Path(photos)
    records = read_hand_info(photos)
    by_name = {r.image_name: r for r in records}
    kept = _select(photos, records, cfg, seed, work_dir, progress)
    labels = match_labels(read_labels(find_labels(photos, cfg.labels)), list(by_name))
    labelled = sorted(labels)[: cfg.n_labelled]
    if not labelled:
        raise HandsDataError(f"{photos}: the joint labels name none of the photos in HandInfo.csv")
    x, y = labelled_crops(photos, labels, labelled, cfg)
    seg = get_segmenter(x, y, cfg, seed, work_dir, device, progress)
    writer = DatasetWriter(out, _meta(photos, standin, seg), extra_columns=EXTRA_COLUMNS)
    try:
        todo = [r for r in kept if _case_id(r.image_name) not in writer.done_ids]
        _write_cases(
            writer, todo, _Scenes(photos, labels, seg.model, device, size, cfg, seed), progress
        )
    except BaseException:
        writer.abort()
        raise
    return writer.close()


def _select(
    photos: Path,
    records: list[HandRecord],
    cfg: NaturalConfig,
    seed: int,
    work_dir: Path,
    progress: bool,
) -> list[HandRecord]:
    """The photos kept by the filters (and include/exclude lists); decisions to selection.csv."""
    include = _optional_list(photos, cfg.include_list, "include.txt")
    exclude = _optional_list(photos, cfg.exclude_list, "exclude.txt")
    kept, decisions = select_photos(
        photos,
        records,
        cfg.max_images,
        cfg.min_fingers,
        np.random.default_rng([seed, 1]),
        include,
        exclude,
        cfg.photo_max_side,
        progress,
    )
    write_text_atomic(work_dir / "selection.csv", decisions_csv_text(decisions))
    if not kept:
        raise HandsDataError(
            f"{photos}: no photo passed the filters (see {work_dir / 'selection.csv'}); "
            "list names in include.txt to keep them anyway"
        )
    return kept


def _meta(photos: Path, standin: bool, seg) -> DatasetMeta:
    meta = DatasetMeta.hands(
        name=f"natural-{'standin' if standin else photos.name}",
        description=(
            f"Two-hand scenes from single-hand photos ({'built-in stand-in' if standin else photos}); "
            "image = photo luminance, tissue 1 = hand, regions from joint labels or the U-Net "
            "segmenter; labels unknown. Wrists are never to be inflamed."
        ),
    )
    meta.classification_views = []  # these scenes only feed the augmenter, never the classifier
    meta.extra.update(
        never_inflame=list(NEVER_INFLAME),
        source="stand-in" if standin else "11k Hands",
        views=[VIEW],
        segmenter={
            "val_dice_mean": _nanmean(seg.val_dice[1:]),
            "n_train": seg.n_train,
            "n_val": seg.n_val,
            "joints": list(HAND_JOINTS),
        },
    )
    return meta


def _nanmean(v: np.ndarray) -> float | None:
    v = v[~np.isnan(v)]
    return float(v.mean()) if v.size else None


@dataclass
class _Scenes:
    """What writing the scenes needs: the photos, their joint labels, the segmenter for
    the unlabelled ones, the scene size, the config and the seed."""

    photos: Path
    labels: dict[str, PhotoLabels]
    model: object  # the joint segmenter
    device: torch.device
    size: int
    cfg: NaturalConfig
    seed: int


def _write_cases(writer: DatasetWriter, todo: list[HandRecord], w: _Scenes, progress: bool) -> None:
    from jointaug.natural.joints import predict_scores

    photos, labels, cfg, seed = w.photos, w.labels, w.cfg, w.seed
    bar = None
    if progress:
        from jointaug.progress import progress_bar

        bar = progress_bar(len(todo), 0, "natural scenes", "case")
    chunk = 32
    for start in range(0, len(todo), chunk):
        batch = todo[start : start + chunk]
        loaded = [photo_and_mask(photos, r.image_name, cfg.photo_max_side) for r in batch]
        need = [i for i, r in enumerate(batch) if r.image_name not in labels]
        crops = [crop_input(loaded[i][0], loaded[i][1], cfg.segmenter_image_size) for i in need]
        preds = predict_scores(w.model, np.stack([c[0] for c in crops]), w.device) if crops else []
        predicted = {i: (p, c[1]) for i, p, c in zip(need, preds, crops, strict=True)}
        for i, rec in enumerate(batch):
            rgb, mask = loaded[i]
            if i in predicted:
                p, box = predicted[i]
                regions = np.where(mask, uncrop_scores(p, box, mask.shape), 0).astype(np.uint8)
                source = "segmenter"
            else:
                regions = regions_from_labels(labels[rec.image_name], mask.shape, mask)
                source = "labels"
            rng = np.random.default_rng([seed, 2, zlib.crc32(rec.image_name.encode())])
            scene = make_scene(
                rgb,
                mask,
                regions,
                w.size,
                rng,
                aspect=rec.aspect,
                layout=Layout(hand_length=tuple(cfg.hand_length)),
            )
            writer.add(
                case_id=_case_id(rec.image_name),
                patient_id=rec.id,
                view=VIEW,
                image=scene.image,
                tissue=scene.tissue,
                regions=scene.regions,
                extra={
                    "source_image": rec.image_name,
                    "aspect": rec.aspect,
                    "mirrored": scene.mirrored,
                    "regions_from": source,
                },
            )
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
