"""Multi-label losses that ignore unknown labels (NaN targets).

``bce`` is the paper's loss. The class-imbalance baselines: ``bce_pos_weight`` (each
label's positive term weighted by its negative/positive ratio in the training images,
clipped to ``POS_WEIGHT_CLIP``) and ``focal`` (MONAI ``FocalLoss`` on sigmoids, gamma
from the config). Every loss is the mean over the KNOWN (image, label) entries of the
batch; a batch with no known entry gives 0 (with a gradient path, so ``backward`` works).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from monai.losses import FocalLoss

LOSSES = ("bce", "bce_pos_weight", "focal")
POS_WEIGHT_CLIP = (0.1, 50.0)

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def pos_weight_from_labels(
    labels: np.ndarray, clip: tuple[float, float] = POS_WEIGHT_CLIP
) -> np.ndarray:
    """(N, L) labels (NaN unknown) -> (L,) negatives / positives per label, clipped.

    A label with no positive gets the upper clip; one with no negative the lower clip.
    """
    y = np.asarray(labels, dtype=np.float64)
    pos = np.nansum(y == 1, axis=0).astype(np.float64)
    neg = np.nansum(y == 0, axis=0).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(pos > 0, neg / np.maximum(pos, 1), clip[1])
    return np.clip(w, *clip).astype(np.float32)


def _masked(targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    known = torch.isfinite(targets)
    return (
        torch.where(known, targets, torch.zeros_like(targets)),
        known.to(targets.dtype),
        known.sum(),
    )


def masked_bce(
    logits: torch.Tensor, targets: torch.Tensor, pos_weight: torch.Tensor | None = None
) -> torch.Tensor:
    """BCE-with-logits averaged over known entries. logits, targets: (B, L); pos_weight (L,)."""
    t, w, n = _masked(targets)
    per = F.binary_cross_entropy_with_logits(logits, t, pos_weight=pos_weight, reduction="none")
    return (per * w).sum() / n.clamp(min=1)


def make_loss(
    kind: str,
    train_labels: np.ndarray | None = None,
    focal_gamma: float = 2.0,
    device: torch.device | str = "cpu",
) -> LossFn:
    """The loss ``kind`` (one of ``LOSSES``) as ``fn(logits, targets) -> scalar``.

    ``train_labels`` (N, L) is needed for ``bce_pos_weight``.
    """
    if kind == "bce":
        return masked_bce
    if kind == "bce_pos_weight":
        if train_labels is None:
            raise ValueError("loss bce_pos_weight needs the training labels")
        pw = torch.as_tensor(pos_weight_from_labels(train_labels), device=device)
        return lambda logits, targets: masked_bce(logits, targets, pw)
    if kind == "focal":
        focal = FocalLoss(gamma=focal_gamma, use_softmax=False, reduction="none")

        def focal_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            t, w, n = _masked(targets)
            return (focal(logits, t) * w).sum() / n.clamp(min=1)

        return focal_loss
    raise ValueError(f"unknown loss {kind!r}; choose one of {', '.join(LOSSES)}")
