"""Generator options beyond the paper (all off in the ``paper`` profile).

- Classifier-free guidance for the concatenated condition (Ho & Salimans 2022; for an
  image condition as InstructPix2Pix does): in training the condition channels of a
  sample are replaced by zeros with probability ``diffusion.cond_dropout``
  (:func:`drop_condition`), so one network learns both eps(x_t, c) and eps(x_t, 0); at
  sampling :class:`GuidedEpsilon` returns ``eps_u + w (eps_c - eps_u)`` with
  ``w = diffusion.guidance_scale`` (w = 1: the plain conditional model, one network call;
  w > 1 pushes samples towards what distinguishes the condition, e.g. hot joints).
- Min-SNR-gamma loss weighting (Hang et al. 2023, ``diffusion.min_snr_gamma``): the
  per-sample epsilon-L2 loss is weighted by ``min(SNR_t, gamma) / SNR_t`` with
  ``SNR_t = abar_t / (1 - abar_t)``: the low-noise steps, whose epsilon target is easy
  and whose gradients dominate, are down-weighted. (For an epsilon loss this is the
  weight whatever the network's head predicts: x0-, v- and epsilon-losses differ by
  SNR-only factors.) gamma = 0: off (uniform weights, the paper).
- Learning-rate schedule (``diffusion.lr_schedule``, ``diffusion.warmup_steps``):
  ``constant`` (the paper) or ``cosine`` (linear warm-up, then cosine decay to 0 at
  ``train_steps``); :func:`lr_at` is a pure function of the step, so resuming is exact.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def drop_condition(cond: torch.Tensor, p: float, gen: torch.Generator) -> torch.Tensor:
    """Zero the condition of each sample with probability ``p`` (draws from ``gen``; none
    when p == 0, so the training stream is unchanged when guidance is off)."""
    if p <= 0:
        return cond
    if p >= 1:
        raise ValueError(f"diffusion.cond_dropout must be in [0, 1), got {p}")
    keep = (torch.rand(cond.shape[0], generator=gen, device=gen.device) >= p).to(
        cond.device, cond.dtype
    )
    return cond * keep[:, None, None, None]


def min_snr_weights(alphas_cumprod: torch.Tensor, t: torch.Tensor, gamma: float) -> torch.Tensor:
    """(B,) weights ``min(SNR_t, gamma) / SNR_t`` of the epsilon loss (all ones when gamma <= 0)."""
    ab = alphas_cumprod.to(t.device)[t].float()
    if gamma <= 0:
        return torch.ones_like(ab)
    snr = ab / (1.0 - ab)
    return torch.clamp(snr, max=gamma) / snr


def weighted_mse(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """mean_b w_b * mean_pixels (pred_b - target_b)^2 (equals ``F.mse_loss`` for w = 1)."""
    per = (pred.float() - target.float()).pow(2).flatten(1).mean(1)
    return (weights.to(per.device, per.dtype) * per).mean()


def lr_at(step: int, lr: float, schedule: str, train_steps: int, warmup_steps: int = 0) -> float:
    """The learning rate for optimiser step ``step`` (0-based)."""
    if schedule not in ("constant", "cosine"):
        raise ValueError(f"diffusion.lr_schedule must be 'constant' or 'cosine', got {schedule!r}")
    if warmup_steps > 0 and step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return lr
    span = max(1, train_steps - warmup_steps)
    frac = min(1.0, max(0.0, (step - warmup_steps) / span))
    return lr * 0.5 * (1.0 + math.cos(math.pi * frac))


class GuidedEpsilon(nn.Module):
    """Classifier-free guidance around an epsilon model ``model([x_t, c], t)``.

    forward(inputs (B, 1 + C, H, W), t (B,)) -> ``eps_u + scale (eps_c - eps_u)``, with
    eps_u the model's output for the same x_t and an all-zero condition. Both halves run
    as one batch of 2B.
    """

    def __init__(self, model: nn.Module, scale: float):
        super().__init__()
        self.model = model
        self.scale = float(scale)

    def forward(self, inputs: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.scale == 1.0:
            return self.model(inputs, t)
        uncond = torch.cat([inputs[:, :1], torch.zeros_like(inputs[:, 1:])], dim=1)
        out = self.model(torch.cat([inputs, uncond]), torch.cat([t, t]))
        eps_c, eps_u = out.chunk(2)
        return eps_u + self.scale * (eps_c - eps_u)
