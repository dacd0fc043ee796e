"""The diffusion model's training data for one fold: arrays at the model's size.

Cases: the run dataset's cases of the fold's TRAIN patients only (never validation or
test), every view that has a tissue map (obliques included: the paper trains the
generator on "both the obliques, palmar, and dorsal views"). Images are downsampled
to ``image_size`` by area averaging (mean counts), tissue maps become three coverage
fractions (see :mod:`jointaug.diffusion.intensity`). numpy only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from jointaug.dataset.format import Case, Dataset, DatasetError
from jointaug.diffusion.intensity import downsample_channels, downsample_counts
from jointaug.masks.compose import condition_channels


@dataclass
class TrainArrays:
    """counts: (N, size, size) float32 mean counts; channels: (N, 3, size, size) float32
    coverage of (normal, low, high); case_ids, patient_ids, views: one per case."""

    counts: np.ndarray
    channels: np.ndarray
    case_ids: list[str]
    patient_ids: list[str]
    views: list[str]

    def __len__(self) -> int:
        return len(self.case_ids)


def fold_train_cases(dataset: Dataset, train_patients: Iterable[str]) -> list[Case]:
    """Cases of ``train_patients`` that have a tissue map (any view), in dataset order."""
    keep = set(train_patients)
    return [c for c in dataset.cases if c.patient_id in keep and c.tissue]


def load_train_arrays(
    dataset: Dataset,
    cases: list[Case],
    size: int,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> TrainArrays:
    """Read, check and downsample ``cases`` to ``size``.

    Raises DatasetError naming the case when an image and its tissue map differ in
    shape, counts are negative or not finite, or no case is given.
    """
    if not cases:
        raise DatasetError(
            f"{dataset.root}: the fold's train patients have no case with a tissue map; "
            "the diffusion model needs clinician tissue maps (masks/tissue) to learn from"
        )
    counts, chans = [], []
    it: Iterable[Case] = progress(cases) if progress is not None else cases
    for case in it:
        image = dataset.image(case)
        tissue = dataset.tissue(case)
        assert tissue is not None  # fold_train_cases keeps cases with a tissue map
        if tissue.shape != image.shape:
            raise DatasetError(
                f"case {case.case_id!r}: tissue map {case.tissue} has shape {tissue.shape}, "
                f"image {case.image} has {image.shape}"
            )
        if not np.all(np.isfinite(image)) or image.min() < 0:
            raise DatasetError(
                f"case {case.case_id!r}: image {case.image} has negative or non-finite counts"
            )
        if tissue.max() > 3:
            raise DatasetError(
                f"case {case.case_id!r}: tissue map {case.tissue} has value {int(tissue.max())} "
                "(allowed 0 background, 1 normal, 2 low, 3 high)"
            )
        counts.append(downsample_counts(image, size))
        chans.append(downsample_channels(condition_channels(tissue), size))
    return TrainArrays(
        counts=np.stack(counts).astype(np.float32),
        channels=np.stack(chans).astype(np.float32),
        case_ids=[c.case_id for c in cases],
        patient_ids=[c.patient_id for c in cases],
        views=[c.view for c in cases],
    )
