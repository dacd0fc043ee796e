"""Probabilities from trained classifiers, and seed ensembles.

A seed ensemble (the paper's Table 2) averages the per-label probabilities of the
seeds' models: p_ens = mean_s p_s, then thresholds as a single model would.

A model trained with ``classify.lr_aware`` or ``per_hand`` records its input layout in
its metadata (:class:`jointaug.classify.transforms.InputLayout`): an image of a view the
training dataset declared mirrored (e.g. ``dorsal``) must be flipped to the canonical
layout first, so :func:`predict_files` takes each file's view. A file whose view is not
given (None) is taken to be in the canonical layout (e.g. ``palmar``): flip a mirrored
view yourself, or pass its view.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from jointaug.classify.checkpoint import CheckpointError, load_tensors
from jointaug.classify.model import build_model
from jointaug.classify.train import predict_logits
from jointaug.classify.transforms import InputLayout, prepare_input
from jointaug.dataset.io import read_image
from jointaug.runtime import resolve_device


def load_classifier(
    path: str | os.PathLike, device: str = "cpu"
) -> tuple[torch.nn.Module, list[str], dict]:
    """``model.safetensors`` -> (network in eval mode, label names, architecture dict).

    The architecture dict carries the input layout under ``"layout"`` when the model
    has one (``InputLayout.to_json``)."""
    tensors, meta = load_tensors(path)
    try:
        arch, labels = json.loads(meta["arch"]), json.loads(meta["labels"])
        model = build_model(arch, len(labels), seed=None)
        model.load_state_dict(tensors)
        if "layout" in meta:
            arch = {**arch, "layout": json.loads(meta["layout"])}
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


def dataset_views(dataset, image_paths: Sequence[str | os.PathLike]) -> list[str | None]:
    """Each file's view where it is an image of ``dataset`` (a parsed dataset folder), else
    None (then taken to be in the canonical layout)."""
    by_path = {}
    for c in dataset.cases:
        try:
            by_path[dataset.path(c.image)] = c.view
        except ValueError:
            continue
    return [by_path.get(Path(os.path.realpath(p))) for p in image_paths]


def predict_files(
    model_paths: Sequence[str | os.PathLike],
    image_paths: Sequence[str | os.PathLike],
    device: str = "cpu",
    views: Sequence[str | None] | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Ensemble probabilities (N, L) for image files (any contract image type), and labels.

    Every member must share the label names, image size and input layout. ``views``: each
    file's view where known (module docstring); None: all in the canonical layout.
    """
    members, labels, size, layout = [], None, None, None
    for p in model_paths:
        model, labs, arch = load_classifier(p, device)
        lay = arch.get("layout")
        if labels is not None and (labs != labels or arch["image_size"] != size or lay != layout):
            raise CheckpointError(
                f"{p}: labels, image size or input layout differ from the other models"
            )
        labels, size, layout = labs, int(arch["image_size"]), lay
        members.append(model)
    if not members:
        raise ValueError("no model files given")
    views = list(views) if views is not None else [None] * len(image_paths)
    lay = InputLayout.from_json(layout) if layout is not None else None
    x = np.stack(
        [
            prepare_input(read_image(p), size, lay, v)
            for p, v in zip(image_paths, views, strict=True)
        ]
    )[:, None]
    return ensemble_probs([predict_probs(m, x, device=device) for m in members]), list(labels)
