"""Sampling the conditional DDPM: the paper's full ancestral loop and a fast DDIM sampler.

Both samplers take per-case seeds, not one generator per batch: case ``i``'s starting
noise x_T (and, for DDPM, its noise at every step) comes from its own
``torch.Generator(seed_i)`` ON THE SAMPLING DEVICE, so a case's noise does not depend on
which other cases share its batch or how large the batch is (tested), and no noise
crosses the host-device bus. CPU and CUDA generators are different streams, so a set
made on a GPU differs from one made on the CPU (as it would by float rounding anyway).
Images are bit-identical for the same seeds, batch and device; across batch sizes only
float rounding of the batched network differs (oneDNN / cuDNN pick kernels by batch
size), which is why an augmentation set records its batch size and keeps it when it
grows. On CUDA the network runs under bf16 autocast when ``diffusion.amp``; epsilon and
all scheduler arithmetic are float32. ``diffusion.sample_batch_size: auto`` sizes the
batch to the card's free memory (:func:`sample_batch_size`).

- :func:`sample_ddpm`: ancestral sampling over all T steps (Ho et al. 2020, eq. 6-7,
  "fixed small" variance, x0 clipped to the data range ``clip``) -- MONAI's ``DDPMScheduler.step``
  arithmetic, written out here (:func:`ancestral_step`) only so the per-step noise can
  be supplied per case; a test checks it equals MONAI's step for the same noise.
- :func:`sample_fast`: DDIM with eta = 0 (Song et al. 2021), MONAI's ``DDIMScheduler``
  with the trained betas, ``n`` steps with "trailing" spacing: timesteps
  T-1, T-1-k, ..., with k = T // n (``steps_offset = T - 1 - (n - 1) * k``). MONAI's
  own ``set_timesteps`` spacing (linspace(T-1, 0, n)) is not a multiple of the step it
  assumes in ``step()`` (T // n) unless n divides T - 1; the trailing offset makes both
  agree. The final x0 prediction is returned.

``model`` is anything called as ``model(inputs (B, 4, H, W), t (B,)) -> eps (B, 1, H, W)``
with inputs = [x_t, condition] (see ``model.EpsilonView``). (MONAI's ``DDPMScheduler`` must never be
  used with fewer steps than T: its ``step`` always goes t -> t-1.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from monai.networks.schedulers import DDIMScheduler, DDPMScheduler
from torch import nn

from jointaug.config import DiffusionConfig
from jointaug.runtime import autocast_for


@dataclass(frozen=True)
class NoiseSchedule:
    """The trained forward process: T steps, linear betas from beta_start to beta_end."""

    timesteps: int = 500
    beta_start: float = 1e-4
    beta_end: float = 0.02

    @classmethod
    def from_config(cls, cfg: DiffusionConfig) -> NoiseSchedule:
        return cls(cfg.timesteps, cfg.beta_start, cfg.beta_end)

    def ddpm(self, clip: tuple[float, float] = (-1.0, 1.0)) -> DDPMScheduler:
        """MONAI DDPM with these betas; x0 predictions clipped to ``clip``."""
        return DDPMScheduler(
            num_train_timesteps=self.timesteps,
            schedule="linear_beta",
            beta_start=self.beta_start,
            beta_end=self.beta_end,
            clip_sample=True,
            clip_sample_min=clip[0],
            clip_sample_max=clip[1],
        )

    def ddim(self, steps: int, clip: tuple[float, float] = (-1.0, 1.0)) -> DDIMScheduler:
        """MONAI DDIM with these betas and ``steps`` trailing-spaced timesteps."""
        T = self.timesteps
        if not 1 <= steps <= T:
            raise ValueError(f"fast sampler steps must be in 1..{T}, got {steps}")
        offset = T - 1 - (steps - 1) * (T // steps)
        sched = DDIMScheduler(
            num_train_timesteps=T,
            schedule="linear_beta",
            beta_start=self.beta_start,
            beta_end=self.beta_end,
            clip_sample=True,
            clip_sample_min=clip[0],
            clip_sample_max=clip[1],
            set_alpha_to_one=True,
            steps_offset=offset,
        )
        sched.set_timesteps(steps)
        return sched


def case_generators(
    seeds: Sequence[int], device: torch.device | str = "cpu"
) -> list[torch.Generator]:
    """One generator per case, on ``device``."""
    return [
        torch.Generator(device=device).manual_seed(int(s) & 0xFFFF_FFFF_FFFF_FFFF) for s in seeds
    ]


def _noise(
    gens: list[torch.Generator], shape: tuple[int, ...], device: torch.device
) -> torch.Tensor:
    """(B, *shape) standard normal noise, case i from gens[i] (drawn on ``device``)."""
    return torch.stack([torch.randn(shape, generator=g, device=device) for g in gens])


def _eps(
    model: nn.Module, x: torch.Tensor, condition: torch.Tensor, t: int, amp: bool = False
) -> torch.Tensor:
    ts = torch.full((x.shape[0],), int(t), device=x.device, dtype=torch.long)
    with autocast_for(x.device, amp):
        out = model(torch.cat([x, condition], dim=1), ts)
    return out.float()


def ancestral_step(
    sched: DDPMScheduler, eps: torch.Tensor, t: int, x: torch.Tensor, noise: torch.Tensor | None
) -> torch.Tensor:
    """One DDPM reverse step x_t -> x_{t-1} with given noise (ignored at t = 0).

    Same arithmetic as ``DDPMScheduler.step`` (epsilon prediction, clipped x0,
    "fixed_small" posterior variance beta_t (1 - abar_{t-1}) / (1 - abar_t)).
    """
    abar_t = sched.alphas_cumprod[t].item()
    abar_prev = sched.alphas_cumprod[t - 1].item() if t > 0 else 1.0
    beta_t = sched.betas[t].item()
    alpha_t = sched.alphas[t].item()
    lo, hi = sched.clip_sample_values
    x0 = ((x - (1 - abar_t) ** 0.5 * eps) / abar_t**0.5).clamp(lo, hi)
    mean = (abar_prev**0.5 * beta_t / (1 - abar_t)) * x0 + (
        alpha_t**0.5 * (1 - abar_prev) / (1 - abar_t)
    ) * x
    if t == 0 or noise is None:
        return mean
    var = max((1 - abar_prev) / (1 - abar_t) * beta_t, 1e-20)
    return mean + var**0.5 * noise


@torch.no_grad()
def sample_ddpm(
    model: nn.Module,
    condition: torch.Tensor,
    seeds: Sequence[int],
    schedule: NoiseSchedule,
    progress: Callable[[int, int], None] | None = None,
    clip: tuple[float, float] = (-1.0, 1.0),
    amp: bool = False,
) -> torch.Tensor:
    """Full ancestral sampling over all T steps.

    Args:
        model: the denoiser (eval mode is set here), on the device of ``condition``.
        condition: (B, 3, H, W) float condition channels.
        seeds: B per-case seeds (x_T and the noise of every step).
        schedule: the trained noise schedule.
        progress: optional callback ``(steps_done, steps_total)``.
        clip: the data range; x0 predictions are clipped to it (see ``IntensityMap.model_range``).
        amp: bf16 autocast of the network on CUDA (no-op on the CPU).

    Returns:
        (B, 1, H, W) float32 images in ``clip`` (the last step's mean).
    """
    model.eval()
    b, _, h, w = condition.shape
    if len(seeds) != b:
        raise ValueError(f"got {len(seeds)} seeds for a batch of {b} conditions")
    sched = schedule.ddpm(clip)
    gens = case_generators(seeds, condition.device)
    x = _noise(gens, (1, h, w), condition.device)
    T = schedule.timesteps
    for i, t in enumerate(range(T - 1, -1, -1)):
        eps = _eps(model, x, condition, t, amp)
        noise = _noise(gens, (1, h, w), condition.device) if t > 0 else None
        x = ancestral_step(sched, eps, t, x, noise)
        if progress is not None:
            progress(i + 1, T)
    return x.clamp(*clip).float()


@torch.no_grad()
def sample_fast(
    model: nn.Module,
    condition: torch.Tensor,
    seeds: Sequence[int],
    schedule: NoiseSchedule,
    steps: int = 50,
    progress: Callable[[int, int], None] | None = None,
    clip: tuple[float, float] = (-1.0, 1.0),
    amp: bool = False,
) -> torch.Tensor:
    """DDIM (eta = 0) with ``steps`` network evaluations; deterministic given x_T.

    Same arguments and output as :func:`sample_ddpm`, plus ``steps``.
    """
    model.eval()
    b, _, h, w = condition.shape
    if len(seeds) != b:
        raise ValueError(f"got {len(seeds)} seeds for a batch of {b} conditions")
    sched = schedule.ddim(steps, clip)
    x = _noise(case_generators(seeds, condition.device), (1, h, w), condition.device)
    x0 = x
    for i, t in enumerate(sched.timesteps.tolist()):
        eps = _eps(model, x, condition, t, amp)
        x, x0 = sched.step(eps, t, x, eta=0.0)
        if progress is not None:
            progress(i + 1, steps)
    return x0.clamp(*clip).float()


def sample(
    model: nn.Module,
    condition: torch.Tensor,
    seeds: Sequence[int],
    cfg: DiffusionConfig,
    progress: Callable[[int, int], None] | None = None,
    clip: tuple[float, float] = (-1.0, 1.0),
) -> torch.Tensor:
    """The sampler ``cfg.sampler`` names: ``ddpm`` (all T steps) or ``ddim`` (``cfg.fast_steps``)."""
    schedule = NoiseSchedule.from_config(cfg)
    if cfg.sampler == "ddpm":
        return sample_ddpm(model, condition, seeds, schedule, progress, clip, cfg.amp)
    if cfg.sampler == "ddim":
        return sample_fast(
            model, condition, seeds, schedule, cfg.fast_steps, progress, clip, cfg.amp
        )
    raise ValueError(f"unknown diffusion.sampler {cfg.sampler!r} (ddpm or ddim)")


def sampler_steps(cfg: DiffusionConfig) -> int:
    """Network evaluations per image of the configured sampler."""
    return cfg.timesteps if cfg.sampler == "ddpm" else cfg.fast_steps


CPU_SAMPLE_BATCH = 64


@torch.no_grad()
def sample_batch_size(
    cfg: DiffusionConfig,
    model: nn.Module,
    device: torch.device,
    memory_fraction: float = 0.6,
    cap: int = 1024,
) -> int:
    """The sampling batch: ``cfg.sample_batch_size`` when a number; for ``auto``, 64 on the
    CPU, and on CUDA the largest power of two whose activations fit ``memory_fraction`` of
    the card's free memory (measured: peak memory of one network call at batch 8),
    at most ``cap``."""
    if cfg.sample_batch_size != "auto":
        return int(cfg.sample_batch_size)
    if device.type != "cuda":
        return CPU_SAMPLE_BATCH
    probe, s = 8, cfg.image_size
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    x = torch.zeros(probe, 1, s, s, device=device)
    _eps(model, x, torch.zeros(probe, 3, s, s, device=device), 0, cfg.amp)
    torch.cuda.synchronize(device)
    per_image = max(1, (torch.cuda.max_memory_allocated(device) - base) // probe)
    free, _ = torch.cuda.mem_get_info(device)
    fit = int(free * memory_fraction // per_image)
    return max(1, min(cap, 2 ** max(0, fit.bit_length() - 1)))
