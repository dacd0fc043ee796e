"""Classifier data: the fold's parts and the training mix, as in-memory image arrays.

Every image is decoded, normalised and resized ONCE (:func:`jointaug.classify.transforms.
prepare_image`) into an :class:`ImageSet` of shape (N, 1, S, S); training then indexes
it in batches and augments on the device (``PaperAugment``), which keeps the data
pipeline well under 20 % of a training step (``benchmarks/bench_classifier.py``). A
per-image ``torch.utils.data.Dataset`` + ``DataLoader`` is not used for that reason.

The training mix of a method is the fold's train part (labelled cases of the
classification views) plus augmentation sets mixed by a spec such as
``mp-perlin:0.8+11k-perlin:0.2`` of ``N`` images (:func:`parse_mix`). The reserved
name ``oversample`` is not a folder: its share is drawn from the train part itself
(:func:`oversample_part`, the duplicate-real control). A set is a dataset
folder in the contract format (``RUN/fold_K/augment/<set>``); its n-th labelled case is
fixed once written and sets grow by appending, so a share of ``n`` images takes the set's
FIRST ``n`` labelled cases (in ``cases.csv`` order). Shares are rounded to whole images
with the largest-remainder rule, so they add up to exactly ``N``.

With ``classify.lr_aware`` or ``classify.per_hand`` every loader takes the dataset's
:class:`InputLayout` (:func:`input_layout`): images of mirrored views are flipped to the
canonical layout at load time, per hand they are prepared at ``S x 2S``. Augmentation-set
images are in the layout of the views they copy (a set case keeps its source case's view),
so the dataset's layout applies to them too.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jointaug.classify.transforms import InputLayout, prepare_input
from jointaug.config import ClassifyConfig
from jointaug.dataset.format import Case, Dataset, DatasetError, is_complete, read_dataset
from jointaug.dataset.io import read_image
from jointaug.dataset.mirror import lr_permutation, mirror_pairs, mirrored_views
from jointaug.dataset.splits import Fold

SET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
OVERSAMPLE = "oversample"  # a reserved "set": duplicates of the fold's own train images


class MixError(ValueError):
    """A mixing spec or an augmentation set that cannot supply the mix."""


def parse_mix(spec: str) -> list[tuple[str, float]]:
    """``"mp-perlin:0.8+11k-perlin:0.2"`` -> ``[("mp-perlin", 0.8), ("11k-perlin", 0.2)]``.

    Items are joined by ``+`` (the older ``,`` is read the same way: set names hold
    neither character).

    A single bare name means share 1 (``"mp"`` -> ``[("mp", 1.0)]``); an empty spec
    means no augmentation (``[]``). Shares must be in (0, 1] and add up to 1; set names
    are folder names (letters, digits, ``.``, ``_``, ``-``), each at most once.
    """
    spec = spec.strip()
    if not spec:
        return []
    items = [s.strip() for s in re.split(r"[+,]", spec)]
    out: list[tuple[str, float]] = []
    for item in items:
        if ":" not in item:
            if len(items) == 1 and SET_NAME.match(item):
                return [(item, 1.0)]
            raise MixError(f"mix {spec!r}: item {item!r} must look like name:share (e.g. mp:0.8)")
        name, raw = (s.strip() for s in item.split(":", 1))
        if not SET_NAME.match(name):
            raise MixError(
                f"mix {spec!r}: set name {name!r} must be a folder name "
                "(letters, digits, '.', '_', '-')"
            )
        try:
            share = float(raw)
        except ValueError:
            raise MixError(f"mix {spec!r}: share {raw!r} of {name!r} is not a number") from None
        if not (0 < share <= 1) or math.isnan(share):
            raise MixError(f"mix {spec!r}: share of {name!r} is {share}, must be in (0, 1]")
        if any(n == name for n, _ in out):
            raise MixError(f"mix {spec!r}: set {name!r} is named twice")
        out.append((name, share))
    total = sum(s for _, s in out)
    if abs(total - 1.0) > 1e-6:
        raise MixError(f"mix {spec!r}: shares add up to {total:g}, must add up to 1")
    return out


def allocate(mix: Sequence[tuple[str, float]], n_images: int) -> list[tuple[str, int]]:
    """Whole-image counts per set adding up to ``n_images`` (largest remainder)."""
    if n_images < 0:
        raise MixError(f"mix size {n_images} is negative")
    raw = [share * n_images for _, share in mix]
    counts = [math.floor(r) for r in raw]
    order = sorted(range(len(mix)), key=lambda i: (-(raw[i] - counts[i]), i))
    for i in order[: n_images - sum(counts)]:
        counts[i] += 1
    return [(name, c) for (name, _), c in zip(mix, counts, strict=True)]


@dataclass
class ImageSet:
    """Prepared images and their labels.

    images: (N, 1, S, S) float16, normalised (``prepare_image``);
    labels: (N, L) float32, 1 / 0 / NaN (unknown);
    case_ids: N ids; sources: N names of where each image came from ("train", a set name);
    layout: how the images were laid out (None: as read; per hand images are (N, 1, S, 2S)).
    """

    images: np.ndarray
    labels: np.ndarray
    case_ids: list[str]
    sources: list[str]
    layout: InputLayout | None = None

    def __len__(self) -> int:
        return len(self.case_ids)

    @staticmethod
    def concat(parts: Sequence[ImageSet]) -> ImageSet:
        return ImageSet(
            images=np.concatenate([p.images for p in parts]),
            labels=np.concatenate([p.labels for p in parts]),
            case_ids=[c for p in parts for c in p.case_ids],
            sources=[s for p in parts for s in p.sources],
            layout=parts[0].layout if parts else None,
        )


class ImageCache:
    """Prepared images by (file, size), shared by the runs of one process (seeds, methods)."""

    def __init__(self) -> None:
        self._store: dict[tuple, np.ndarray] = {}

    def get(
        self, path: Path, size: int, layout: InputLayout | None = None, view: str | None = None
    ) -> np.ndarray:
        key: tuple = (str(path), os.stat(path).st_mtime_ns, size)
        if layout is not None:
            key += (layout.mirrored(view), layout.per_hand)
        img = self._store.get(key)
        if img is None:
            img = prepare_input(read_image(path), size, layout, view).astype(np.float16)
            self._store[key] = img
        return img

    def clear(self) -> None:
        self._store.clear()


def load_images(
    dataset: Dataset,
    cases: Sequence[Case],
    size: int,
    source: str,
    cache: ImageCache | None = None,
    workers: int = 1,
    layout: InputLayout | None = None,
) -> ImageSet:
    """Read and prepare ``cases`` of ``dataset`` -> an ImageSet (labels in dataset order)."""
    cache = cache or ImageCache()

    def one(case: Case) -> np.ndarray:
        try:
            return cache.get(dataset.path(case.image), size, layout, case.view)
        except (OSError, ValueError) as exc:
            raise DatasetError(f"{dataset.root}: case {case.case_id!r}: {exc}") from exc

    if workers > 1 and len(cases) > 16:
        with ThreadPoolExecutor(workers) as pool:
            imgs = list(pool.map(one, cases))
    else:
        imgs = [one(c) for c in cases]
    width = 2 * size if layout is not None and layout.per_hand else size
    images = np.stack(imgs)[:, None] if imgs else np.zeros((0, 1, size, width), np.float16)
    ids = [c.case_id for c in cases]
    return ImageSet(images, dataset.label_matrix(cases), ids, [source] * len(cases), layout)


def input_layout(dataset: Dataset, cfg: ClassifyConfig) -> InputLayout | None:
    """The dataset's :class:`InputLayout` under ``cfg`` (None when ``lr_aware`` and
    ``per_hand`` are off: images as read). Raises DatasetError when the dataset declares no
    left/right pairs, or (per hand) when a label is in no pair."""
    if not (cfg.lr_aware or cfg.per_hand):
        return None
    labels = dataset.labels
    pairs = mirror_pairs(dataset.meta)
    perm = tuple(int(i) for i in lr_permutation(labels, pairs)) if cfg.lr_aware else None
    slots = None
    if cfg.per_hand:
        if 2 * len(pairs) != len(labels):
            raise DatasetError(
                f"{dataset.root}: classify.per_hand needs every label in one 'mirror_pairs' "
                f"pair ({len(labels)} labels, {len(pairs)} pairs)"
            )
        index = {lab: i for i, lab in enumerate(labels)}
        slots = (tuple(index[a] for a, _ in pairs), tuple(index[b] for _, b in pairs))
    layout = InputLayout(tuple(mirrored_views(dataset.meta)), perm, slots)
    if layout.per_hand:
        check_hand_sides(dataset, layout)
    return layout


def check_hand_sides(dataset: Dataset, layout: InputLayout) -> None:
    """Per hand: on the first classification case with a region map, each pair's first
    label must lie in the image's left half and its second in the right half (canonical
    layout); raises DatasetError naming the pairs that do not. No region map: no check."""
    case = next((c for c in dataset.classification_cases() if c.regions), None)
    if case is None or layout.hand_slots is None:
        return
    regions = dataset.regions(case)
    if layout.mirrored(case.view):
        regions = regions[:, ::-1]
    half = regions.shape[1] / 2
    wrong = []
    for a, b in zip(*layout.hand_slots, strict=True):
        for i, left in ((a, True), (b, False)):
            cols = np.nonzero(regions == i + 1)[1]
            if cols.size and (cols.mean() < half) != left:
                wrong.append(dataset.labels[i])
    if wrong:
        raise DatasetError(
            f"{dataset.root}: classify.per_hand: in case {case.case_id!r} (canonical layout) "
            f"{', '.join(wrong[:4])} lie in the other half of the image than 'mirror_pairs' "
            "says; write each pair as [label in the left half, label in the right half]"
        )


def fold_part(
    dataset: Dataset,
    fold: Fold,
    part: str,
    size: int,
    cache: ImageCache | None = None,
    workers: int = 1,
    layout: InputLayout | None = None,
) -> ImageSet:
    """The labelled classification cases of one part ("train", "val", "test") of a fold."""
    if part not in ("train", "val", "test"):
        raise ValueError(f"part {part!r} must be train, val or test")
    cases = dataset.classification_cases(getattr(fold, part))
    if not cases:
        raise DatasetError(f"{dataset.root}: fold {fold.fold} has no labelled {part} images")
    return load_images(dataset, cases, size, part, cache, workers, layout)


def set_prefix(root: Path, n: int, labels: Sequence[str]) -> tuple[Dataset, list[Case]]:
    """The first ``n`` labelled cases of the augmentation set at ``root``.

    Checks the set is complete, has enough labelled cases and the same label names as
    the dataset (any order).
    """
    if not is_complete(root):
        raise MixError(
            f"augmentation set {root} is missing or unfinished (no dataset.json); "
            "make it first (jointaug augment) or drop the method"
        )
    ds = read_dataset(root)
    if sorted(ds.labels) != sorted(labels):
        raise MixError(
            f"augmentation set {root}: labels {ds.labels[:4]}... differ from the dataset's "
            f"{list(labels)[:4]}... (a set must use the dataset's label names)"
        )
    cases = [c for c in ds.cases if c.is_labelled]
    if len(cases) < n:
        raise MixError(
            f"augmentation set {root} has {len(cases)} labelled images; the mix needs {n}"
        )
    return ds, cases[:n]


def oversample_part(train: ImageSet, n: int, fold: int) -> ImageSet:
    """``n`` duplicates of the real train images (the count-matched duplicate-real control).

    Whole passes over the train part in seeded random orders (each image duplicated
    ``n // N`` or ``n // N + 1`` times), cut at ``n``; a pure function of (fold, n, N).
    The training augmentation then makes each duplicate a different view.
    """
    if len(train) == 0:
        raise MixError("oversample: the train part is empty")
    rng = np.random.default_rng(np.random.SeedSequence([int(fold), int(n), len(train), 0x0F5A]))
    reps = -(-n // len(train))
    idx = np.concatenate([rng.permutation(len(train)) for _ in range(reps)])[:n]
    return ImageSet(
        train.images[idx],
        train.labels[idx],
        [f"{OVERSAMPLE}/{train.case_ids[i]}#{k}" for k, i in enumerate(idx)],
        [OVERSAMPLE] * n,
        train.layout,
    )


def training_mix(
    dataset: Dataset,
    fold: Fold,
    mix: Sequence[tuple[str, float]],
    n_images: int,
    set_root: dict[str, Path],
    size: int,
    cache: ImageCache | None = None,
    workers: int = 1,
    layout: InputLayout | None = None,
) -> ImageSet:
    """The fold's train part plus ``n_images`` from the augmentation sets of ``mix``.

    ``set_root`` maps each set name to its folder. Set labels are reordered to the
    dataset's label order; ``layout`` (the dataset's) applies to every part.
    """
    parts = [fold_part(dataset, fold, "train", size, cache, workers, layout)]
    for name, n in allocate(mix, n_images):
        if n == 0:
            continue
        if name == OVERSAMPLE:
            parts.append(oversample_part(parts[0], n, fold.fold))
            continue
        if name not in set_root:
            raise MixError(f"mix names set {name!r}, but no folder is given for it")
        ds, cases = set_prefix(Path(set_root[name]), n, dataset.labels)
        part = load_images(ds, cases, size, name, cache, workers, layout)
        order = [ds.labels.index(lab) for lab in dataset.labels]
        part.labels = part.labels[:, order]
        part.case_ids = [f"{name}/{c}" for c in part.case_ids]
        parts.append(part)
    return ImageSet.concat(parts)
