"""The classifier network: MONAI DenseNet, one input channel, one logit per label.

The paper uses MONAI's DenseNet121 (``block_config`` (6, 12, 24, 16), growth rate 32,
64 initial features) with every layer "randomly initialised using Kaiming uniform
initialisation". MONAI initialises convolutions with ``kaiming_normal_``, so
:func:`build_model` re-initialises every convolution and linear weight with
``kaiming_uniform_`` (fan-in, ReLU gain: bound = sqrt(6 / fan_in)), their biases with 0,
and batch-norm layers with weight 1, bias 0 (:func:`jointaug.init.kaiming_uniform_`).
Nothing is downloaded (no pretrained weights exist for this task). The network outputs
logits (B, n_labels).

Per hand (``classify.per_hand``): :class:`HandsNet` takes an image (B, 1, S, 2S), cuts it
into its two halves (the right one mirrored, :func:`jointaug.classify.transforms.
split_hands`), runs ONE DenseNet with ``n_labels / 2`` outputs on the 2B crops and puts
the crop logits back into the image's label order (:func:`assemble_hands`), so it outputs
(B, n_labels) like the whole-image network and every metric stays per image and label.
"""

from __future__ import annotations

import json

import torch
from monai.networks.nets import DenseNet

from jointaug.classify.transforms import InputLayout, split_hands
from jointaug.config import ClassifyConfig
from jointaug.init import kaiming_uniform_, seeded_generator

ARCH_KEYS = ("image_size", "growth_rate", "block_config", "init_features", "bn_size", "dropout")


def arch_of(cfg: ClassifyConfig) -> dict:
    """The config fields that define the network (stored with the weights; ``per_hand``
    only when on, so a whole-image network's metadata is as before)."""
    out = {k: getattr(cfg, k) for k in ARCH_KEYS}
    if cfg.per_hand:
        out["per_hand"] = True
    return out


def input_width(arch: ClassifyConfig | dict) -> int:
    """The network's input width: ``image_size``, or twice it per hand (height: image_size)."""
    a = arch_of(arch) if isinstance(arch, ClassifyConfig) else arch
    return int(a["image_size"]) * (2 if a.get("per_hand") else 1)


def assemble_hands(logits: torch.Tensor, slots: torch.Tensor, n_labels: int) -> torch.Tensor:
    """Crop logits (2B, P) (crop 2i: image i's left half, 2i+1: its right half) -> image
    logits (B, n_labels): label ``slots[h, k]`` of image i is output k of its crop h."""
    b = logits.shape[0] // 2
    pairs = logits.reshape(b, 2, -1)
    out = logits.new_empty(b, n_labels)
    out[:, slots[0]] = pairs[:, 0]
    out[:, slots[1]] = pairs[:, 1]
    return out


class HandsNet(torch.nn.Module):
    """One network for both hands: (B, 1, S, 2S) -> (B, n_labels) logits (module docstring).

    ``slots`` (2, n_labels / 2): the label indices of the left half's and the right half's
    outputs; a buffer, so the weights file carries it.
    """

    def __init__(self, net: torch.nn.Module, n_labels: int):
        super().__init__()
        if n_labels % 2:
            raise ValueError(f"per hand needs an even number of labels, got {n_labels}")
        self.net = net
        self.n_labels = n_labels
        self.register_buffer("slots", torch.arange(n_labels).reshape(2, n_labels // 2))

    def set_slots(self, slots) -> HandsNet:
        self.slots.copy_(torch.as_tensor(slots, dtype=torch.long).reshape(self.slots.shape))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return assemble_hands(self.net(split_hands(x)), self.slots, self.n_labels)


def build_model(
    arch: ClassifyConfig | dict,
    n_labels: int,
    seed: int | None = 0,
    layout: InputLayout | None = None,
) -> DenseNet | HandsNet:
    """A MONAI DenseNet (2D, 1 channel in, ``n_labels`` logits out), Kaiming-uniform weights;
    a :class:`HandsNet` around one with ``n_labels / 2`` outputs when ``per_hand``.

    ``seed`` seeds a private ``torch.Generator`` for the initialisation (None: leave the
    weights to the caller, e.g. before loading a checkpoint). The global torch RNG is left
    as it was. ``layout``: the data's input layout (per hand: its hand slots; otherwise
    unused; a loaded state dict brings its own).
    """
    a = arch_of(arch) if isinstance(arch, ClassifyConfig) else dict(arch)
    per_hand = bool(a.get("per_hand", False))
    if layout is not None and layout.per_hand != per_hand:
        raise ValueError(
            f"per_hand is {per_hand} but the data are laid out per_hand={not per_hand}"
        )
    with torch.random.fork_rng(devices=[]):  # MONAI's own init draws from the global RNG
        model = DenseNet(
            spatial_dims=2,
            in_channels=1,
            out_channels=n_labels // 2 if per_hand else n_labels,
            init_features=int(a["init_features"]),
            growth_rate=int(a["growth_rate"]),
            block_config=tuple(int(b) for b in a["block_config"]),
            bn_size=int(a["bn_size"]),
            dropout_prob=float(a["dropout"]),
        )
    if seed is not None:
        kaiming_uniform_(model, seeded_generator(seed), reset_norm=True)
    if not per_hand:
        return model
    hands = HandsNet(model, n_labels)
    return hands.set_slots(layout.hand_slots) if layout is not None else hands


def model_metadata(
    cfg: ClassifyConfig, labels: list[str], layout: InputLayout | None = None
) -> dict[str, str]:
    """safetensors metadata that lets :func:`jointaug.classify.predict.load_classifier`
    rebuild the network: its architecture and label names (JSON strings), and the input
    layout (``layout``, when there is one)."""
    out = {"arch": json.dumps(arch_of(cfg)), "labels": json.dumps(list(labels))}
    if layout is not None:
        out["layout"] = json.dumps(layout.to_json())
    return out
