"""Probabilities from trained classifiers, and seed ensembles.

A seed ensemble (the paper's Table 2) averages the per-label probabilities of the
seeds' models: p_ens = mean_s p_s, then thresholds as a single model would.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np
import torch

from jointaug.classify.checkpoint import CheckpointError, load_tensors
from jointaug.classify.model import build_model
from jointaug.classify.train import predict_logits
from jointaug.classify.transforms import prepare_image
from jointaug.dataset.io import read_image
from jointaug.runtime import resolve_device


def load_classifier(
    path: str | os.PathLike, device: str = "cpu"
) -> tuple[torch.nn.Module, list[str], dict]:
    """``model.safetensors`` -> (network in eval mode, label names, architecture dict)."""
    tensors, meta = load_tensors(path)
    try:
        arch, labels = json.loads(meta["arch"]), json.loads(meta["labels"])
        model = build_model(arch, len(labels), seed=None)
        model.load_state_dict(tensors)
    except (KeyError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a jointaug classifier ({exc})") from exc
    return model.to(resolve_device(device)).eval(), labels, arch


def predict_probs(
    model: torch.nn.Module,
    images: np.ndarray | torch.Tensor,
    batch_size: int = 64,
    device: str = "cpu",
    amp: bool = False,
    channels_last: bool = False,
) -> np.ndarray:
    """Sigmoid probabilities (N, L) float32 for prepared images (N, 1, S, S)."""
    x = torch.as_tensor(images)
    dev = resolve_device(device)
    model = model.to(dev)
    logits = predict_logits(model, x, batch_size, dev, amp, channels_last)
    return torch.sigmoid(logits).numpy().astype(np.float32)


def ensemble_probs(probs: Sequence[np.ndarray]) -> np.ndarray:
    """Mean of the members' probabilities (each (N, L), same shape)."""
    if not probs:
        raise ValueError("an ensemble needs at least one member")
    shapes = {np.shape(p) for p in probs}
    if len(shapes) != 1:
        raise ValueError(f"ensemble members disagree in shape: {sorted(shapes)}")
    return np.mean(np.stack(probs), axis=0).astype(np.float32)


def predict_files(
    model_paths: Sequence[str | os.PathLike],
    image_paths: Sequence[str | os.PathLike],
    device: str = "cpu",
) -> tuple[np.ndarray, list[str]]:
    """Ensemble probabilities (N, L) for image files (any contract image type), and labels.

    Every member must share the label names and image size.
    """
    members, labels, size = [], None, None
    for p in model_paths:
        model, labs, arch = load_classifier(p, device)
        if labels is not None and (labs != labels or arch["image_size"] != size):
            raise CheckpointError(f"{p}: labels or image size differ from the other models")
        labels, size = labs, int(arch["image_size"])
        members.append(model)
    if not members:
        raise ValueError("no model files given")
    x = np.stack([prepare_image(read_image(p), size) for p in image_paths])[:, None]
    return ensemble_probs([predict_probs(m, x, device=device) for m in members]), list(labels)
