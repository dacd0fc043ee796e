"""A trained fold model: load it, and turn condition maps into count-rate images.

:func:`load_trained` reads ``RUN/fold_K/diffusion/{ema.safetensors, model.json}`` (the
EMA weights are the sampling weights). :func:`generate_rates` runs the sampler for a
batch of full-size condition maps and returns the Poisson rate per original pixel:
condition (H, W) -> coverage channels at the model size -> sample in [-1, 1] ->
inverse intensity map (mean counts) -> nearest-neighbour (the paper) or bilinear
(``diffusion.upsample``) upsampling to (H, W).
Poisson sampling of the rate (:func:`jointaug.diffusion.intensity.poisson_counts`) is
left to the caller, who owns the per-case numpy rng.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from jointaug.config import DiffusionConfig
from jointaug.diffusion.checkpoint import load_tensors
from jointaug.diffusion.guidance import GuidedEpsilon
from jointaug.diffusion.intensity import (
    IntensityMap,
    downsample_channels,
    upsample_linear,
    upsample_nearest,
)
from jointaug.diffusion.model import EpsilonView, build_unet
from jointaug.diffusion.sample import NoiseSchedule, sample
from jointaug.masks.compose import condition_channels
from jointaug.outputs import DONE

SAMPLER_FIELDS = ("sampler", "fast_steps", "sample_batch_size", "guidance_scale", "upsample")


@dataclass
class TrainedModel:
    """net: EMA denoiser returning epsilon (eval, on ``device``); cfg: the trained network/schedule settings
    with the sampler settings of the caller's config; intensity: counts mapping."""

    net: nn.Module
    cfg: DiffusionConfig
    intensity: IntensityMap
    device: torch.device
    info: dict


def load_trained(
    folder: str | Path, device: torch.device, sampler: DiffusionConfig | None = None
) -> TrainedModel:
    """Load a complete diffusion folder. ``sampler``: take sampler, fast_steps and
    sample_batch_size from this config (default: the ones it was trained with).

    Raises FileNotFoundError (with the command to run) when the folder is not complete.
    """
    folder = Path(folder)
    if not (folder / DONE).is_file():
        raise FileNotFoundError(
            f"{folder}: no trained diffusion model here (no 'done' marker); run "
            f"`jointaug train-diffusion --run RUN --fold K` first"
        )
    info = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    cfg = DiffusionConfig.model_validate(info["diffusion"])
    if sampler is not None:
        cfg = cfg.model_copy(update={k: getattr(sampler, k) for k in SAMPLER_FIELDS})
    net = build_unet(cfg)
    tensors, _ = load_tensors(folder / "ema.safetensors")
    try:
        net.load_state_dict(tensors)
    except RuntimeError as exc:
        raise ValueError(
            f"{folder / 'ema.safetensors'}: does not fit {folder / 'model.json'} ({exc})"
        ) from exc
    abar = NoiseSchedule.from_config(cfg).ddpm().alphas_cumprod
    eps: nn.Module = EpsilonView(net, abar, cfg.network_output)
    if cfg.guidance_scale != 1.0:
        eps = GuidedEpsilon(
            eps, cfg.guidance_scale
        )  # classifier-free guidance (diffusion/guidance.py)
    eps = eps.to(device).eval()
    return TrainedModel(eps, cfg, IntensityMap.from_json(info["intensity"]), device, info)


def model_channels(conditions: Sequence[np.ndarray], size: int) -> np.ndarray:
    """(N,) tissue-convention maps (H, W) -> (N, 3, size, size) coverage channels."""
    return np.stack([downsample_channels(condition_channels(c), size) for c in conditions])


def generate_rates(
    model: TrainedModel,
    conditions: Sequence[np.ndarray],
    seeds: Sequence[int],
    progress: Callable[[int, int], None] | None = None,
) -> list[np.ndarray]:
    """Sample one image per condition (one batch): (H, W) maps -> (H, W) float32 mean counts.

    Args:
        model: a loaded :class:`TrainedModel`.
        conditions: tissue-convention maps (0 bg, 1 normal, 2 low, 3 high), any sizes.
        seeds: one diffusion seed per condition.
        progress: callback (step, steps) of the sampler.
    """
    if len(conditions) != len(seeds):
        raise ValueError(f"{len(conditions)} conditions but {len(seeds)} seeds")
    if not conditions:
        return []
    chans = torch.from_numpy(model_channels(conditions, model.cfg.image_size)).to(model.device)
    y = sample(model.net, chans, list(seeds), model.cfg, progress, clip=model.intensity.model_range)
    y = y.cpu().numpy()[:, 0]
    rates = model.intensity.to_counts(y)
    up = upsample_linear if model.cfg.upsample == "bilinear" else upsample_nearest
    return [up(r, np.asarray(c).shape) for r, c in zip(rates, conditions, strict=True)]
