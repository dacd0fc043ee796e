"""The joint segmenter: a MONAI U-Net trained with a Dice loss on labelled photos.

Inputs are square hand crops (:mod:`jointaug.natural.segdata`), (N, 3, S, S) float
in [0, 1]; targets are (N, S, S) int64 with 0 = not a joint and 1..15 = HAND_JOINTS.
The network is ``monai.networks.nets.UNet(spatial_dims=2, in_channels=3,
out_channels=16, channels=cfg.segmenter_channels, strides=2...)`` re-initialised
Kaiming-uniform, trained with ``DiceCELoss(softmax=True, to_onehot_y=True,
batch=True)`` (Dice plus cross-entropy, which keeps the 15 tiny joint classes
from collapsing early) and Adam. Shuffling, flips and initialisation draw from
one ``torch.Generator``, so a seed gives the same weights on the same machine.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from monai.losses import DiceCELoss
from monai.networks.nets import UNet
from safetensors.torch import load_file

from jointaug.config import NaturalConfig
from jointaug.dataset.format import HAND_JOINTS
from jointaug.files import write_text_atomic
from jointaug.init import kaiming_uniform_
from jointaug.weights import save_tensors

N_CLASSES = len(HAND_JOINTS) + 1


def build_unet(channels: list[int], in_channels: int = 3, out_channels: int = N_CLASSES) -> UNet:
    """The segmenter network (logits out); callers initialise it with
    :func:`jointaug.init.kaiming_uniform_`."""
    return UNet(
        spatial_dims=2,
        in_channels=in_channels,
        out_channels=out_channels,
        channels=tuple(channels),
        strides=(2,) * (len(channels) - 1),
        num_res_units=1,
    )


def dice_per_class(pred: np.ndarray, target: np.ndarray, n_classes: int = N_CLASSES) -> np.ndarray:
    """Dice of each class pooled over all images; NaN where a class is absent in both.

    Args:
        pred, target: integer label arrays of the same shape.

    Returns:
        (n_classes,) float64.
    """
    out = np.full(n_classes, np.nan)
    for k in range(n_classes):
        p, t = pred == k, target == k
        denom = p.sum() + t.sum()
        if denom:
            out[k] = 2.0 * np.logical_and(p, t).sum() / denom
    return out


@dataclass
class TrainResult:
    model: UNet
    losses: list[float]  # mean training loss per epoch
    val_dice: np.ndarray  # (16,) per class on the validation images (NaN: none)
    n_train: int
    n_val: int
    extra: dict = field(default_factory=dict)


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/validation split of n labelled photos (at least one of each when n >= 2)."""
    order = np.random.default_rng([seed, 5]).permutation(n)
    n_val = 0 if n < 2 else min(n - 1, max(1, int(round(val_fraction * n))))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


@torch.no_grad()
def predict_scores(
    model: UNet, x: np.ndarray, device: str = "cpu", batch_size: int = 16
) -> np.ndarray:
    """(N, 3, S, S) float -> (N, 16, S, S) float32 softmax probabilities."""
    model.eval().to(device)
    out = []
    for i in range(0, len(x), batch_size):
        xb = torch.from_numpy(np.ascontiguousarray(x[i : i + batch_size], dtype=np.float32))
        out.append(torch.softmax(model(xb.to(device)), 1).cpu().numpy())
    model.cpu()
    return np.concatenate(out) if out else np.zeros((0, N_CLASSES, *x.shape[2:]), np.float32)


def predict(model: UNet, x: np.ndarray, device: str = "cpu", batch_size: int = 16) -> np.ndarray:
    """(N, 3, S, S) float -> (N, S, S) uint8 argmax labels."""
    return predict_scores(model, x, device, batch_size).argmax(1).astype(np.uint8)


def _train_epoch(
    model: UNet,
    data: tuple[torch.Tensor, torch.Tensor],
    opt: torch.optim.Optimizer,
    loss_fn: DiceCELoss,
    gen: torch.Generator,
    batch_size: int,
    device: str,
) -> float:
    """One pass over ``data`` = (crops, targets) in a random order, each crop mirrored
    with probability 1/2; returns the mean training loss."""
    xt, yt = data
    model.train()
    perm = torch.randperm(len(xt), generator=gen)
    total, count = 0.0, 0
    for i in range(0, len(xt), batch_size):
        idx = perm[i : i + batch_size]
        xb, yb = xt[idx], yt[idx]
        flip = torch.rand(len(idx), generator=gen) < 0.5  # a mirrored hand is still a hand
        xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb).to(device)
        yb = torch.where(flip[:, None, None, None], yb.flip(-1), yb).to(device)
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        total += float(loss.detach()) * len(idx)
        count += len(idx)
    return total / max(count, 1)


def train_segmenter(
    x: np.ndarray,
    y: np.ndarray,
    cfg: NaturalConfig,
    seed: int,
    device: str = "cpu",
    progress: bool = False,
    epochs: int | None = None,
) -> TrainResult:
    """Train the U-Net on labelled crops, holding ``cfg.segmenter_val_fraction`` out.

    Args:
        x: (N, 3, S, S) float32 in [0, 1]. y: (N, S, S) int64 in 0..15.
        epochs: overrides ``cfg.segmenter_epochs``.
    """
    if len(x) == 0:
        raise ValueError("no labelled photos to train the joint segmenter on")
    gen = torch.Generator().manual_seed(int(seed))
    model = build_unet(cfg.segmenter_channels, in_channels=x.shape[1])
    kaiming_uniform_(model, gen)
    model.to(device)
    tr, va = split_indices(len(x), cfg.segmenter_val_fraction, seed)
    xt = torch.from_numpy(np.ascontiguousarray(x[tr])).float()
    yt = torch.from_numpy(np.ascontiguousarray(y[tr])).long()[:, None]
    loss_fn = DiceCELoss(softmax=True, to_onehot_y=True, batch=True)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.segmenter_lr)
    n_epochs = cfg.segmenter_epochs if epochs is None else epochs
    bs = max(1, min(cfg.segmenter_batch_size, len(tr)))
    losses: list[float] = []
    bar = None
    if progress:
        from jointaug.progress import progress_bar

        bar = progress_bar(n_epochs, 0, "train joint segmenter", "epoch")
    for _ in range(n_epochs):
        losses.append(_train_epoch(model, (xt, yt), opt, loss_fn, gen, bs, device))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    if bar is not None:
        bar.close()
    val = np.full(N_CLASSES, np.nan)
    if len(va):
        val = dice_per_class(predict(model, x[va], device), y[va])
    model.cpu()
    return TrainResult(model, losses, val, len(tr), len(va))


def data_key(x: np.ndarray, y: np.ndarray, cfg: NaturalConfig, seed: int) -> str:
    """Hash of the training data and the segmenter settings (the weight cache key)."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(x, dtype=np.float32).tobytes())
    h.update(np.ascontiguousarray(y, dtype=np.int64).tobytes())
    settings = {k: v for k, v in cfg.model_dump().items() if k.startswith("segmenter_")}
    h.update(json.dumps({"settings": settings, "seed": seed}, sort_keys=True).encode())
    return h.hexdigest()


#: The settings a saved segmenter needs to be applied again (stored in its metadata).
APPLY_SETTINGS = ("segmenter_channels", "segmenter_image_size", "photo_max_side")


def apply_settings(cfg: NaturalConfig) -> dict:
    """The settings of ``cfg`` that a trained segmenter is tied to (:data:`APPLY_SETTINGS`)."""
    return {k: getattr(cfg, k) for k in APPLY_SETTINGS}


def save_segmenter(
    path: str | os.PathLike, result: TrainResult, key: str, settings: dict | None = None
) -> None:
    """Weights as safetensors with the cache key, losses and validation Dice in its metadata.

    ``settings`` (:func:`apply_settings`) is stored too, so that
    :func:`load_trained_segmenter` can apply the weights without the config they were
    trained with.
    """
    meta = {
        "key": key,
        "losses": json.dumps(result.losses),
        "val_dice": json.dumps([None if np.isnan(v) else float(v) for v in result.val_dice]),
        "n_train": str(result.n_train),
        "n_val": str(result.n_val),
    }
    if settings is not None:
        meta["settings"] = json.dumps(settings, sort_keys=True)
    save_tensors(path, result.model.state_dict(), meta)


def load_segmenter(path: str | os.PathLike, cfg: NaturalConfig, key: str) -> TrainResult | None:
    """The cached segmenter if ``path`` holds one trained on the same data and settings."""
    path = Path(path)
    if not path.is_file():
        return None
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("key") != key:
        return None
    model = build_unet(cfg.segmenter_channels)
    model.load_state_dict(load_file(str(path)))
    dice = np.array([np.nan if v is None else v for v in json.loads(meta["val_dice"])], float)
    return TrainResult(
        model, json.loads(meta["losses"]), dice, int(meta["n_train"]), int(meta["n_val"])
    )


class SegmenterFileError(ValueError):
    """A segmenter weight file that cannot be loaded."""


@dataclass
class TrainedSegmenter:
    """A saved segmenter ready to apply: the network, its settings and a version tag."""

    model: UNet
    settings: dict  # APPLY_SETTINGS -> value
    version: str  # "jointaug-segmenter-<first 12 hex digits of the cache key>"
    path: Path


def load_trained_segmenter(path: str | os.PathLike, cfg: NaturalConfig) -> TrainedSegmenter:
    """Load the segmenter a natural-source build saved (``OUT.work/segmenter.safetensors``).

    Unlike :func:`load_segmenter` (the build's cache) it does not check which data the
    weights were trained on. The channels, crop size and photo size come from the file's
    metadata; files saved before that metadata existed take them from ``cfg`` (the
    profile the build ran with). Errors name the file.
    """
    from jointaug.weights import WeightsError, load_tensors

    path = Path(path)
    if not path.is_file():
        raise SegmenterFileError(
            f"{path}: segmenter weights missing (natural-source writes "
            "OUT.work/segmenter.safetensors)"
        )
    try:
        tensors, meta = load_tensors(path)
    except WeightsError as exc:
        raise SegmenterFileError(str(exc)) from None
    settings = apply_settings(cfg)
    try:
        settings.update(json.loads(meta.get("settings", "{}")))
    except json.JSONDecodeError:
        raise SegmenterFileError(f"{path}: unreadable 'settings' metadata") from None
    model = build_unet(list(settings["segmenter_channels"]))
    try:
        model.load_state_dict(tensors)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise SegmenterFileError(
            f"{path}: not a joint segmenter with channels {settings['segmenter_channels']} "
            f"({first[0] if first else exc}); pass the --profile/--set the build used"
        ) from None
    version = "jointaug-segmenter-" + (meta.get("key") or "unknown")[:12]
    return TrainedSegmenter(model.eval(), settings, version, path)


def dice_table(result: TrainResult) -> list[tuple[str, float]]:
    """(joint, validation Dice) for the 15 joints (background left out)."""
    return [(j, float(result.val_dice[i + 1])) for i, j in enumerate(HAND_JOINTS)]


def write_dice_csv(path: str | os.PathLike, result: TrainResult) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["joint", "val_dice", "n_train", "n_val"])
    for joint, d in dice_table(result):
        w.writerow([joint, "" if np.isnan(d) else f"{d:.4f}", result.n_train, result.n_val])
    vals = [d for _, d in dice_table(result) if not np.isnan(d)]
    w.writerow(["mean", f"{np.mean(vals):.4f}" if vals else "", result.n_train, result.n_val])
    write_text_atomic(path, buf.getvalue())
