"""The conditional denoiser: MONAI's DiffusionModelUNet, Palette-style, plus its EMA.

Input (B, 4, H, W): the noisy image first, then the three condition channels (normal,
low, high) -- the order of MONAI's ``DiffusionInferer(mode="concat")``. Output
(B, 1, H, W): the predicted noise epsilon. Timesteps: (B,) long in [0, T).

Choices, checked against the libraries:

- Dropout. MONAI 1.6's ``DiffusionModelUNet`` has no dropout argument for its residual
  blocks (``dropout_cattn`` only acts on cross-attention, unused here). Palette (and the
  guided-diffusion UNet it adapts) applies dropout in every residual block between the
  second norm/SiLU and the second conv. MONAI's ``DiffusionUNetResnetBlock.forward``
  runs ``norm2 -> SiLU -> conv2``, so :func:`build_unet` attaches a forward pre-hook
  to each ``conv2`` that applies ``F.dropout(p, training)`` to its input: the same
  place as Palette, and the state-dict keys stay MONAI's. ``dropout=0`` adds no hooks.
- Initialisation. The paper: "randomly initialised using Kaiming uniform". Every
  ``nn.Conv*`` and ``nn.Linear`` weight gets ``kaiming_uniform_(a=0, mode="fan_in")``
  and zero bias, EXCEPT the layers MONAI zero-initialises on purpose (``zero_module``:
  each residual block's ``conv2``, attention ``proj_out``, the output conv). Those stay
  zero, so every residual block starts as the identity and the first epsilon prediction
  is 0 (loss ~1): the guided-diffusion/ADM recipe for stable early training. (Palette's
  own ``init_weights`` re-initialises them too; on a small CPU budget keeping them zero
  trains faster and more stably.) Group-norm layers keep weight 1, bias 0.
- Output head (:class:`EpsilonView`, config ``diffusion.network_output``). The loss is
  always the paper's L2 on epsilon and the samplers always receive epsilon. With
  ``epsilon`` the network's output is epsilon (Palette). With ``v`` the network outputs
  v = sqrt(abar) eps - sqrt(1 - abar) x0 (Salimans & Ho 2022) and epsilon is read off as
  ``sqrt(abar_t) * v + sqrt(1 - abar_t) * x_t``: the same loss, but an untrained (zero)
  output already gives the right epsilon at the noisiest steps (eps ~ x_t) and x0 ~ 0
  (the centred data mean) instead of noise amplified 1 / sqrt(abar_T) ~ 12-fold. Measured
  on the phantom at CPU-demo budgets (a few hundred steps), an epsilon head had not yet
  learnt eps ~ x_t at t > 400 and its samples were noise; the v head fixes that.
- GroupNorm groups (:func:`norm_groups`): automatic, >= 16 channels per group, not
  MONAI's 32 groups (instance norm on small nets makes total counts ignore the hand's area).
- EMA (:class:`EMA`): shadow copies of all parameters and buffers, updated after each
  optimiser step with decay ``min(decay, (1 + n) / (10 + n))`` (n = updates so far;
  the usual warm-up so that short runs do not sample from a nearly random init), in one
  multi-tensor ``torch._foreach_lerp_`` (same values as a loop of ``lerp_``, tested).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from monai.networks.nets import DiffusionModelUNet
from torch import nn

from jointaug.config import DiffusionConfig
from jointaug.init import kaiming_uniform_, seeded_generator

IN_CHANNELS = 4  # noisy image + (normal, low, high)
OUT_CHANNELS = 1


def norm_groups(channels: list[int], requested: int = 0) -> int:
    """GroupNorm groups for every level (MONAI takes one value for all levels).

    ``requested`` > 0 is used as is (it must divide every channel count). 0 (auto): the
    largest g <= 32 dividing every channel count with at least 16 channels per group at
    the first level (demo [16, 32, 32] -> 1 group; paper [64, ...] -> 4 groups).

    Why not MONAI's default (32 groups: one channel per group on 32 channels, i.e.
    instance norm): instance norm gives every channel zero spatial mean just before the
    output conv, so the network can hardly set an image's overall brightness and draws
    roughly constant total counts whatever the hand's area. Measured on the phantom
    (demo net, 500 steps, generated / real mean counts, palmar | obliques): 16 groups
    (1 channel each) 0.80 | 1.30; 8 groups 0.85 | 1.14; 4 groups 0.90 | 1.10; 1 group
    0.90 | 1.03 (per hand pixel the real counts do not depend on the view).
    """
    if requested:
        if any(c % requested for c in channels):
            raise ValueError(
                f"diffusion.norm_num_groups {requested} must divide every channel count {channels}"
            )
        return requested
    for g in (32, 16, 8, 4, 2, 1):
        if all(c % g == 0 for c in channels) and channels[0] // g >= 16:
            return g
    return 1


def network_config(cfg: DiffusionConfig) -> DiffusionConfig:
    """``cfg`` with the automatic settings resolved (what a saved model records)."""
    return cfg.model_copy(
        update={"norm_num_groups": norm_groups(list(cfg.channels), cfg.norm_num_groups)}
    )


NETWORK_FIELDS = (
    "image_size",
    "channels",
    "attention_levels",
    "num_res_blocks",
    "num_head_channels",
    "norm_num_groups",
    "network_output",
    "timesteps",
    "beta_start",
    "beta_end",
)


def build_unet(cfg: DiffusionConfig, init_seed: int | None = None) -> nn.Module:
    """The denoiser for ``cfg`` with dropout hooks and Kaiming-uniform init.

    Args:
        cfg: channels, attention_levels, num_res_blocks, num_head_channels, dropout.
        init_seed: seed of a private ``torch.Generator`` for the initial weights (None:
            torch's default generator).

    Raises ValueError when ``channels`` and ``attention_levels`` differ in length or the
    image size is not divisible by 2 ** (levels - 1).
    """
    channels = list(cfg.channels)
    if len(cfg.attention_levels) != len(channels):
        raise ValueError(
            f"diffusion.attention_levels has {len(cfg.attention_levels)} entries but "
            f"diffusion.channels has {len(channels)}; give one per level"
        )
    if cfg.image_size % (2 ** (len(channels) - 1)):
        raise ValueError(
            f"diffusion.image_size {cfg.image_size} must be divisible by 2^(levels-1) = "
            f"{2 ** (len(channels) - 1)}"
        )
    if not 0.0 <= cfg.dropout < 1.0:
        raise ValueError(f"diffusion.dropout must be in [0, 1), got {cfg.dropout}")
    net = DiffusionModelUNet(
        spatial_dims=2,
        in_channels=IN_CHANNELS,
        out_channels=OUT_CHANNELS,
        channels=channels,
        attention_levels=list(cfg.attention_levels),
        num_res_blocks=cfg.num_res_blocks,
        num_head_channels=cfg.num_head_channels,
        norm_num_groups=norm_groups(channels, cfg.norm_num_groups),
    )
    kaiming_uniform_(net, seeded_generator(init_seed), keep_zero=True)
    if cfg.dropout > 0:
        add_resblock_dropout(net, cfg.dropout)
    return net


def add_resblock_dropout(net: nn.Module, p: float) -> int:
    """Dropout(p) on the input of every residual block's ``conv2`` (Palette's position).

    Returns the number of blocks hooked. Active only in ``net.train()`` mode.
    """
    from monai.networks.nets.diffusion_model_unet import DiffusionUNetResnetBlock

    def hook(module: nn.Module, args: tuple) -> tuple:
        return (F.dropout(args[0], p=p, training=module.training), *args[1:])

    count = 0
    for m in net.modules():
        if isinstance(m, DiffusionUNetResnetBlock):
            m.conv2.register_forward_pre_hook(hook)
            count += 1
    return count


class EpsilonView(nn.Module):
    """Epsilon prediction from the UNet, whatever its head predicts (not saved: wraps ``net``).

    forward(inputs (B, 4, H, W) = [x_t, condition], t (B,)) -> eps (B, 1, H, W).
    ``output``: "epsilon" (the UNet's output as is) or "v" (eps = sqrt(abar_t) v +
    sqrt(1 - abar_t) x_t). ``alphas_cumprod``: (T,) of the noise schedule.
    """

    def __init__(self, net: nn.Module, alphas_cumprod: torch.Tensor, output: str = "epsilon"):
        super().__init__()
        if output not in ("epsilon", "v"):
            raise ValueError(f"diffusion.network_output must be 'epsilon' or 'v', got {output!r}")
        self.net = net
        self.output = output
        self.register_buffer("abar", alphas_cumprod.detach().float().clone(), persistent=False)

    def forward(self, inputs: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        # float32 out: under bf16 autocast (CUDA) only the network runs in bf16; the
        # v -> epsilon arithmetic and everything after it stay in float32
        out = self.net(inputs, t).float()
        if self.output == "epsilon":
            return out
        ab = self.abar.to(out.device)[t].reshape(-1, 1, 1, 1)
        return ab.sqrt() * out + (1.0 - ab).sqrt() * inputs[:, :1].float()


class EMA:
    """Exponential moving average of a model's parameters and buffers.

    ``shadow`` is a frozen deep copy of the model (use it for sampling). After each
    optimiser step call :meth:`update`: ``shadow = d * shadow + (1 - d) * param`` with
    ``d = min(decay, (1 + n) / (10 + n))``; buffers are copied.
    """

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.updates = 0
        self.shadow = copy.deepcopy(model).eval()
        for p in self.shadow.parameters():
            p.requires_grad_(False)
        self._params = list(self.shadow.parameters())
        self._buffers = list(self.shadow.buffers())

    def current_decay(self) -> float:
        n = self.updates
        return min(self.decay, (1.0 + n) / (10.0 + n))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One update: a single multi-tensor ``_foreach_lerp_`` over all parameters (one
        kernel launch per group of tensors on CUDA instead of one per parameter)."""
        d = self.current_decay()
        params = [p.detach() for p in model.parameters()]
        if len(params) != len(self._params):
            raise ValueError(f"EMA: model has {len(params)} parameters, shadow {len(self._params)}")
        torch._foreach_lerp_(self._params, params, 1.0 - d)
        buffers = list(model.buffers())
        if buffers:
            torch._foreach_copy_(self._buffers, buffers)
        self.updates += 1
