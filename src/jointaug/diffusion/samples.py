"""``samples.png`` of a diffusion training: for a few fixed training cases, the condition,
the real image and the model's sample for that condition (one per patient, inflamed first)."""

from __future__ import annotations

from pathlib import Path

import torch

from jointaug.config import DiffusionConfig
from jointaug.diffusion.grid import samples_grid, write_png_rgb
from jointaug.diffusion.intensity import IntensityMap
from jointaug.diffusion.sample import sample
from jointaug.diffusion.trainset import TrainArrays

GRID_CASES = 4


def grid_indices(arrays: TrainArrays, k: int = GRID_CASES) -> list[int]:
    """Up to k fixed cases for the sample grid: one per patient, inflamed cases first."""
    inflamed = arrays.channels[:, 1:].reshape(len(arrays), -1).max(1) > 0
    order = sorted(range(len(arrays)), key=lambda i: (not inflamed[i], arrays.case_ids[i]))
    chosen: list[int] = []
    for only_new_patients in (True, False):
        for i in order:
            seen = {arrays.patient_ids[j] for j in chosen}
            if (
                len(chosen) < k
                and i not in chosen
                and (arrays.patient_ids[i] not in seen or not only_new_patients)
            ):
                chosen.append(i)
    return chosen


def write_samples(
    path: Path,
    net: torch.nn.Module,
    arrays: TrainArrays,
    idx: list[int],
    intensity: IntensityMap,
    cfg: DiffusionConfig,
    device: torch.device,
    title: str,
) -> None:
    """samples.png: for the fixed cases ``idx``, condition | real | generated (seeds 0..k-1)."""
    cond = torch.from_numpy(arrays.channels[idx]).to(device)
    y = (
        sample(net, cond, list(range(len(idx))), cfg, clip=intensity.model_range)
        .cpu()
        .numpy()[:, 0]
    )
    grid = samples_grid(
        arrays.channels[idx],
        arrays.counts[idx],
        intensity.to_counts(y),
        intensity.scale,
        title=title,
        names=[arrays.case_ids[i] for i in idx],
    )
    write_png_rgb(path, grid)
