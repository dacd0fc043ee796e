"""Kaiming-uniform initialisation: the one home for the three networks that use it.

The paper: every network is "randomly initialised using Kaiming uniform". MONAI builds
its networks with its own init (``kaiming_normal_`` for DenseNet, PyTorch defaults for
the UNets), so the classifier (``classify/model.py``), the denoiser
(``diffusion/model.py``) and the joint segmenter (``natural/joints.py``) re-initialise
with :func:`kaiming_uniform_`:

- every convolution (1-3D, plain and transposed) and linear layer: weight
  ``U(-b, b)`` with ``b = sqrt(2) * sqrt(3 / fan_in) = sqrt(6 / fan_in)`` (fan-in mode,
  ReLU gain), bias 0;
- ``keep_zero=True`` leaves layers whose weight is all zero as they are (MONAI's
  deliberate ``zero_module`` layers in the diffusion UNet: each residual block starts as
  the identity);
- ``reset_norm=True`` sets batch-norm layers to weight 1, bias 0.

Draws come from ``generator`` (a seeded ``torch.Generator``; None: torch's global one),
layer by layer in ``model.modules()`` order, so a seed fixes the weights.
"""

from __future__ import annotations

import torch
from torch import nn

KAIMING_LAYERS = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.Linear,
)


def seeded_generator(seed: int | None) -> torch.Generator | None:
    """A private ``torch.Generator`` seeded with ``seed`` (None -> None: the global RNG)."""
    return None if seed is None else torch.Generator().manual_seed(int(seed))


def kaiming_uniform_(
    model: nn.Module,
    generator: torch.Generator | None = None,
    *,
    keep_zero: bool = False,
    reset_norm: bool = False,
) -> int:
    """Re-initialise ``model`` in place (module docstring); return the layers re-drawn."""
    count = 0
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, KAIMING_LAYERS):
                if keep_zero and not torch.any(m.weight != 0):
                    continue  # zero-initialised on purpose: keep
                nn.init.kaiming_uniform_(
                    m.weight, mode="fan_in", nonlinearity="relu", generator=generator
                )
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
                count += 1
            elif reset_norm and isinstance(m, nn.modules.batchnorm._BatchNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
    return count
