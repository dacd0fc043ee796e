"""Pieces of the diffusion training loop that keep the GPU busy (``diffusion/train.py``).

- :func:`draw_batch`: indices, flips, timesteps and noise drawn from ONE generator that
  lives on the training device, from training arrays that live there too: no host
  round trip per step. (On the CPU this is exactly the old loop's sequence of draws.)
- :func:`diffusion_loss`: the network under bf16 autocast on CUDA (``diffusion.amp``),
  its epsilon cast to float32, the L2 loss and the noise schedule in float32.
- :func:`train_step`: one optimisation step of the loop above (draws, the guidance and
  min-SNR options, learning-rate schedule, loss, update, EMA) on a :class:`DiffusionStep`
  (network, EMA, optimiser, schedule, generator, data, config, loss meter);
  ``diffusion/train.py`` and the benchmarks (``bench_diffusion.py``, ``gpu_check.py``)
  all time this one function.
- :class:`LossMeter`: losses summed on the device in float64 and read once per log
  interval (one synchronisation per interval instead of one per step); the same sums
  and the same running ``ema_loss`` as the old per-step Python floats, bit for bit.
- checkpoints by wall time and ``log.csv`` appended: :mod:`jointaug.training`
  (shared with the classifier's loop).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from monai.networks.schedulers import DDPMScheduler

from jointaug.config import DiffusionConfig
from jointaug.diffusion.guidance import drop_condition, lr_at, min_snr_weights, weighted_mse
from jointaug.diffusion.model import EMA
from jointaug.runtime import autocast_for


def draw_batch(
    gen: torch.Generator,
    ys: torch.Tensor,
    cs: torch.Tensor,
    batch: int,
    flip_prob: float,
    timesteps: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x0, cond, t, noise) for one step; ``gen``, ``ys`` (N, 1, H, W), ``cs`` (N, 3, H, W)
    on the same device. Left-right flips apply to image and condition together."""
    dev = ys.device
    idx = torch.randint(ys.shape[0], (batch,), generator=gen, device=dev)
    flip = (torch.rand(batch, generator=gen, device=dev) < flip_prob)[:, None, None, None]
    y, c = ys[idx], cs[idx]
    x0 = torch.where(flip, y.flip(-1), y)
    cond = torch.where(flip, c.flip(-1), c)
    t = torch.randint(timesteps, (batch,), generator=gen, device=dev)
    noise = torch.randn(x0.shape, generator=gen, device=dev)
    return x0, cond, t, noise


def diffusion_loss(
    eps_net: torch.nn.Module,
    sched,
    x0: torch.Tensor,
    cond: torch.Tensor,
    t: torch.Tensor,
    noise: torch.Tensor,
    amp: bool,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """The paper's L2 loss on epsilon (float32 scalar); the network in bf16 on CUDA if ``amp``.
    ``weights`` (B,): per-sample loss weights (min-SNR, ``diffusion/guidance.py``); None: uniform."""
    xt = sched.add_noise(x0, noise, t)
    with autocast_for(x0.device, amp):
        eps = eps_net(torch.cat([xt, cond], dim=1), t)
    if weights is not None:
        return weighted_mse(eps, noise, weights)
    return F.mse_loss(eps.float(), noise)


@dataclass
class DiffusionStep:
    """What a diffusion training step works on (built once per training; ``train.py``,
    ``bench_diffusion.py`` and ``gpu_check.py`` build one each)."""

    net: torch.nn.Module  # the trained network (its parameters are ``opt``'s)
    eps_net: torch.nn.Module  # the network as an epsilon predictor (maybe compiled)
    ema: EMA
    opt: torch.optim.Optimizer
    sched: DDPMScheduler  # ``NoiseSchedule.ddpm()``
    gen: torch.Generator  # every draw of a step; on the training device
    ys: torch.Tensor  # (N, 1, H, W) training images in model range, on the device
    cs: torch.Tensor  # (N, 3, H, W) condition channels, on the device
    cfg: DiffusionConfig
    meter: LossMeter


def train_step(s: DiffusionStep, step: int) -> None:
    """One training step at 0-based ``step`` of ``s.cfg``: batch, condition dropout,
    min-SNR weights, learning rate, loss, update, EMA, loss to ``s.meter``.
    Draws only from ``s.gen`` (the dropout/guidance options draw nothing when off)."""
    cfg = s.cfg
    s.net.train()
    x0, cond, t, noise = draw_batch(s.gen, s.ys, s.cs, cfg.batch_size, cfg.flip_prob, cfg.timesteps)
    cond = drop_condition(cond, cfg.cond_dropout, s.gen)
    weights = (
        min_snr_weights(s.sched.alphas_cumprod, t, cfg.min_snr_gamma)
        if cfg.min_snr_gamma > 0
        else None
    )
    if cfg.lr_schedule != "constant" or cfg.warmup_steps:
        for g in s.opt.param_groups:
            g["lr"] = lr_at(step, cfg.lr, cfg.lr_schedule, cfg.train_steps, cfg.warmup_steps)
    loss = diffusion_loss(s.eps_net, s.sched, x0, cond, t, noise, cfg.amp, weights)
    s.opt.zero_grad(set_to_none=True)
    loss.backward()
    s.opt.step()
    s.ema.update(s.net)
    s.meter.add(loss)


class LossMeter:
    """Per-step losses kept on the device; :meth:`read` synchronises once."""

    def __init__(self, device: torch.device, ema_loss: float = math.nan):
        self.sum = torch.zeros((), dtype=torch.float64, device=device)
        self.n = 0
        self.ema = torch.tensor(float(ema_loss), dtype=torch.float64, device=device)

    def add(self, loss: torch.Tensor) -> None:
        v = loss.detach().double()
        self.sum += v
        self.n += 1
        self.ema = torch.where(torch.isfinite(self.ema), 0.98 * self.ema + 0.02 * v, v)

    def read(self) -> tuple[float, float]:
        """(mean loss of the interval (nan when empty), running ema_loss)."""
        total, ema = torch.stack([self.sum, self.ema]).tolist()
        return (total / self.n if self.n else math.nan), ema

    def reset_interval(self) -> None:
        self.sum.zero_()
        self.n = 0
