"""The classifier network: MONAI DenseNet, one input channel, one logit per label.

The paper uses MONAI's DenseNet121 (``block_config`` (6, 12, 24, 16), growth rate 32,
64 initial features) with every layer "randomly initialised using Kaiming uniform
initialisation". MONAI initialises convolutions with ``kaiming_normal_``, so
:func:`build_model` re-initialises every convolution and linear weight with
``kaiming_uniform_`` (fan-in, ReLU gain: bound = sqrt(6 / fan_in)), their biases with 0,
and batch-norm layers with weight 1, bias 0 (:func:`jointaug.init.kaiming_uniform_`).
Nothing is downloaded (no pretrained weights exist for this task). The network outputs
logits (B, n_labels).
"""

from __future__ import annotations

import json

import torch
from monai.networks.nets import DenseNet

from jointaug.config import ClassifyConfig
from jointaug.init import kaiming_uniform_, seeded_generator

ARCH_KEYS = ("image_size", "growth_rate", "block_config", "init_features", "bn_size", "dropout")


def arch_of(cfg: ClassifyConfig) -> dict:
    """The config fields that define the network (stored with the weights)."""
    return {k: getattr(cfg, k) for k in ARCH_KEYS}


def build_model(arch: ClassifyConfig | dict, n_labels: int, seed: int | None = 0) -> DenseNet:
    """A MONAI DenseNet (2D, 1 channel in, ``n_labels`` logits out), Kaiming-uniform weights.

    ``seed`` seeds a private ``torch.Generator`` for the initialisation (None: leave the
    weights to the caller, e.g. before loading a checkpoint). The global torch RNG is left
    as it was.
    """
    a = arch_of(arch) if isinstance(arch, ClassifyConfig) else dict(arch)
    with torch.random.fork_rng(devices=[]):  # MONAI's own init draws from the global RNG
        model = DenseNet(
            spatial_dims=2,
            in_channels=1,
            out_channels=n_labels,
            init_features=int(a["init_features"]),
            growth_rate=int(a["growth_rate"]),
            block_config=tuple(int(b) for b in a["block_config"]),
            bn_size=int(a["bn_size"]),
            dropout_prob=float(a["dropout"]),
        )
    if seed is not None:
        kaiming_uniform_(model, seeded_generator(seed), reset_norm=True)
    return model


def model_metadata(cfg: ClassifyConfig, labels: list[str]) -> dict[str, str]:
    """safetensors metadata that lets :func:`jointaug.classify.predict.load_classifier`
    rebuild the network: its architecture and label names (JSON strings)."""
    return {"arch": json.dumps(arch_of(cfg)), "labels": json.dumps(list(labels))}
