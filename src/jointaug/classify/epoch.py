"""One epoch of classifier training data: the order of the images and their augmentation.

:func:`epoch_order` cuts an epoch into batches of indices (``real_share``: a share of
real train images in every batch); :func:`plan_epoch` draws a whole epoch's indices and
augmentation parameters on the host, in the order the per-step draws had, and copies
them to the training device once (:func:`to_device`: pinned, non-blocking on CUDA), so
the training loop (``classify/train.py``) makes no host-to-device copy per step.
:func:`effective_budget` and :func:`epochs_per_eval` say how long a training runs and how
often it is evaluated, in samples and epochs.
"""

from __future__ import annotations

import math
from dataclasses import fields

import torch

from jointaug.classify.transforms import AugmentParams
from jointaug.config import ClassifyConfig


def to_device(t: torch.Tensor, dev: torch.device) -> torch.Tensor:
    """``t`` on ``dev``: from pinned memory without blocking the host on CUDA."""
    if dev.type != "cuda":
        return t
    return t.pin_memory().to(dev, non_blocking=True)


def plan_epoch(step) -> list[tuple[torch.Tensor, AugmentParams]]:
    """One epoch's batches: (indices, augmentation parameters) per batch, on the device.

    Drawn on the host from the data generator in the order the per-step draws had (the
    epoch's order, then each batch's parameters: one row per image, two per image per
    hand), so CPU results are unchanged; then the epoch is copied to the device ONCE (5
    pinned, non-blocking copies) and cut into batches there: no host-to-device copy or
    synchronisation per step."""
    cfg, n, aug = step.cfg, step.x.shape[0], step.augment
    batches = epoch_order(n, cfg.batch_size, step.real, cfg.real_share, step.gen)
    drawn = [aug.sample(aug.draws(len(b), step.layout), step.gen) for b in batches]
    idx = to_device(torch.cat(batches), step.dev)
    whole = AugmentParams(
        *(to_device(torch.cat([getattr(p, f) for p in drawn]), step.dev) for f in _PARAM_FIELDS)
    )
    out, lo, plo = [], 0, 0
    for b, p in zip(batches, drawn, strict=True):
        hi, phi = lo + len(b), plo + len(p.angle_rad)
        params = AugmentParams(*(getattr(whole, f)[plo:phi] for f in _PARAM_FIELDS))
        out.append((idx[lo:hi], params))
        lo, plo = hi, phi
    return out


_PARAM_FIELDS = tuple(f.name for f in fields(AugmentParams))


def epoch_order(
    n: int, batch_size: int, real: torch.Tensor | None, real_share: float, gen: torch.Generator
) -> list[torch.Tensor]:
    """One epoch's batches of indices into the mix (ceil(n / batch) batches, n samples).

    Plain: a random permutation cut into batches. With ``real_share`` > 0 and ``real``
    (indices of the real train images) every batch holds at least ``ceil(share x batch)``
    real images, drawn from a cycled permutation of them; the rest from a cycled
    permutation of the other images.
    """
    if real_share <= 0 or real is None or len(real) in (0, n):
        perm = torch.randperm(n, generator=gen)
        return [perm[i : i + batch_size] for i in range(0, n, batch_size)]
    mask = torch.zeros(n, dtype=torch.bool)
    mask[real] = True
    other = torch.nonzero(~mask).flatten()
    sizes = [min(batch_size, n - i) for i in range(0, n, batch_size)]
    k_real = [min(s, math.ceil(real_share * s)) for s in sizes]

    def stream(pool: torch.Tensor, count: int) -> torch.Tensor:
        reps = math.ceil(count / len(pool)) if count else 0
        perms = [pool[torch.randperm(len(pool), generator=gen)] for _ in range(reps)]
        return torch.cat(perms)[:count] if perms else pool[:0]

    r = stream(real, sum(k_real))
    o = stream(other, n - sum(k_real))
    out, ir, io_ = [], 0, 0
    for s, k in zip(sizes, k_real, strict=True):
        out.append(torch.cat([r[ir : ir + k], o[io_ : io_ + s - k]]))
        ir, io_ = ir + k, io_ + s - k
    return out


def effective_budget(cfg: ClassifyConfig, n_train: int) -> ClassifyConfig:
    """``cfg`` with max/patience samples grown to ``max_epochs`` / ``patience_epochs`` x N."""
    upd = {}
    if cfg.max_epochs > 0:
        upd["max_samples"] = max(cfg.max_samples, math.ceil(cfg.max_epochs * n_train))
    if cfg.patience_epochs > 0:
        upd["patience_samples"] = max(
            cfg.patience_samples, math.ceil(cfg.patience_epochs * n_train)
        )
    return cfg.model_copy(update=upd) if upd else cfg


def epochs_per_eval(cfg: ClassifyConfig, n_train: int) -> int:
    """Epochs between evaluations: ``eval_every_epochs``, or ~``eval_every_samples`` / N."""
    if cfg.eval_every_samples > 0:
        return max(1, round(cfg.eval_every_samples / max(n_train, 1)))
    return cfg.eval_every_epochs
