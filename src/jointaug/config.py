"""Typed configuration and the profiles.

``paper`` holds every number the paper gives; ``paper-best`` adds the measured generator
and classifier improvements; ``cpu`` is a grid where more data can help on 2 CPU cores;
``demo`` runs the same pipeline at a size a 2-core CPU finishes in minutes. A profile is a YAML file in
``jointaug/profiles``; any value can be overridden with dotted ``key=value`` strings
(``classify.lr=3e-4``), parsed as YAML scalars. The resolved config is saved with
every run as ``config.yaml``.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from jointaug.files import write_text_atomic

PROFILES = ("demo", "paper", "paper-best", "cpu")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PhantomConfig(_Section):
    patients: int = 48
    size: int = 256
    seed: int = 0


class SplitConfig(_Section):
    folds: int = 5
    seed: int = 0


class ClassifyConfig(_Section):
    """The classifier (paper: MONAI DenseNet121, growth rate 32, Adam 1e-4, batch 32)."""

    image_size: int = 256
    growth_rate: int = 32
    block_config: list[int] = Field(default_factory=lambda: [6, 12, 24, 16])
    init_features: int = 64
    bn_size: int = 4
    dropout: float = 0.0
    lr: float = 1e-4
    batch_size: int = 32
    eval_every_epochs: int = 10
    patience_samples: int = 500_000
    max_samples: int = 5_000_000
    # A budget that grows with the training set (0 = off): the effective limits are
    # max(max_samples, max_epochs x N) and max(patience_samples, patience_epochs x N).
    max_epochs: float = 0.0
    patience_epochs: float = 0.0
    # Evaluate every ~eval_every_samples training samples (whole epochs, at least one)
    # instead of every eval_every_epochs epochs: the same selection cadence for every
    # training-set size (0 = off, the paper's every-10-epochs).
    eval_every_samples: int = 0
    lr_schedule: Literal["constant", "cosine"] = "constant"  # cosine: over the max budget
    # At least this share of real train images in every batch (0 = plain shuffling of the mix).
    real_share: float = 0.0
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    rotate_deg: float = 30.0
    flip_prob: float = 0.5
    crop_prob: float = 0.5
    crop_pad: int = 32  # pixels at 256x256; scaled with image_size
    # Left/right (classify/transforms.py; dataset.json mirrored_views / mirror_pairs): mirrored
    # views flipped to the canonical layout at load, horizontal flips permute the labels
    lr_aware: bool = False
    # Each image as its two hand halves (image_size x image_size each, the right one mirrored),
    # one network for the per-hand labels, reassembled per image (implies the canonical layout)
    per_hand: bool = False
    loss: Literal["bce", "bce_pos_weight", "focal"] = "bce"
    focal_gamma: float = 2.0
    threshold: float = 0.5
    num_workers: int = 0
    amp: bool = False  # bf16 autocast on CUDA (no-op on the CPU)
    channels_last: bool = False
    checkpoint_minutes: float = 10.0  # checkpoint at an evaluation >= this long after the last
    compile: bool = False  # torch.compile the network (speed only)


class DiffusionConfig(_Section):
    """The Palette-style conditional DDPM (paper: 500 steps at 128x128)."""

    image_size: int = 128
    timesteps: int = 500
    beta_start: float = 1e-4
    beta_end: float = 0.02
    channels: list[int] = Field(default_factory=lambda: [64, 128, 256, 512])
    attention_levels: list[bool] = Field(default_factory=lambda: [False, False, False, True])
    num_res_blocks: int = 2
    num_head_channels: int = 32
    dropout: float = 0.2
    lr: float = 5e-5
    batch_size: int = 16
    train_steps: int = 200_000
    ema_decay: float = 0.9999
    sample_every: int = 5_000
    checkpoint_minutes: float = 10.0  # checkpoint every this much wall time (and at the end)
    checkpoint_every: int = 0  # also every N steps (0: wall time only)
    sampler: Literal["ddpm", "ddim"] = "ddpm"
    fast_steps: int = 50
    sample_batch_size: int | Literal["auto"] = 64  # auto: sized to the GPU's memory (64 on CPU)
    amp: bool = True  # bf16 autocast of the network on CUDA (loss in fp32; no-op on the CPU)
    compile: bool = False  # torch.compile the network for training (speed only)
    seed: int = 0  # weights init, training batches/noise, augmentation sets
    flip_prob: float = 0.5  # left-right flip of image + condition while training
    intensity: Literal["sqrt", "linear"] = "sqrt"  # counts <-> [-1, 1] (diffusion/intensity.py)
    network_output: Literal["epsilon", "v"] = "epsilon"  # loss is L2 on epsilon either way
    norm_num_groups: int = (
        0  # GroupNorm groups; 0: auto, >= 16 channels per group (diffusion/model.py)
    )
    # options beyond the paper (diffusion/guidance.py); the defaults are the paper's method
    cond_dropout: float = 0.0  # classifier-free guidance: P(condition -> zeros) in training
    guidance_scale: float = 1.0  # at sampling: eps_u + w (eps_c - eps_u); 1 = plain conditional
    min_snr_gamma: float = 0.0  # min-SNR-gamma loss weighting; 0 = off (uniform)
    lr_schedule: Literal["constant", "cosine"] = "constant"
    warmup_steps: int = 0
    upsample: Literal["nearest", "bilinear"] = (
        "nearest"  # model size -> dataset size (paper: nearest)
    )
    # train to a criterion (diffusion/criterion.py): stop when the label fidelity on the
    # fold's validation conditions has not improved by min_delta for patience checks
    stop_on_fidelity: bool = False
    fidelity_every: int = 2_000  # steps between checks
    fidelity_patience: int = 3  # checks without improvement before stopping
    fidelity_min_delta: float = 0.01
    fidelity_cases: int = 16  # validation conditions sampled per check (fast sampler)


class SamplerConfig(_Section):
    """Hierarchical inflammation sampler (paper: 0.9, 0.75, 0.5, low/high 0.5)."""

    p_any: float = 0.9
    p_group: float = 0.75
    p_label: float = 0.5
    p_high: float = 0.5


class PerlinConfig(_Section):
    """Perlin variation of joint masks (paper: >= 25 px, <= 90 %, 5,000 tries)."""

    min_pixels: int = 25  # at 256x256; scaled with image area
    max_fraction: float = 0.9
    # beyond the paper: a region too small for min_pixels (max_fraction x its area <
    # min_pixels) is varied too, keeping >= min_fraction of its area (0: left whole)
    min_fraction: float = Field(0.0, ge=0.0, le=1.0)
    max_tries: int = 5000
    batch: int = 64
    res: list[int] = Field(default_factory=lambda: [2, 4, 8])
    threshold_low: float = 0.2
    threshold_high: float = 0.8


class NaturalConfig(_Section):
    """Natural hand photos (paper: 11k Hands, 500 kept, 50 labelled)."""

    source: str = ""  # empty: the built-in stand-in generator
    max_images: int = 500
    n_labelled: int = 50
    stand_in_photos: int = 600
    segmenter_image_size: int = 128
    segmenter_channels: list[int] = Field(default_factory=lambda: [16, 32, 64, 128])
    segmenter_epochs: int = 200
    segmenter_lr: float = 1e-3
    segmenter_batch_size: int = 8
    # where the joint labels and the user's keep/drop lists are; empty: look in the
    # photos folder for labelstudio.json or regions/, include.txt, exclude.txt
    labels: str = ""
    include_list: str = ""
    exclude_list: str = ""
    min_fingers: int = 4  # openness: separated finger protrusions (natural/openness.py)
    photo_max_side: int = 400  # photos are downscaled to this long side (px) on load
    segmenter_val_fraction: float = 0.2
    # scene hand length (wrist to finger tips) as a fraction of the image, like the phantom
    hand_length: list[float] = Field(default_factory=lambda: [0.52, 0.62])


class ExperimentConfig(_Section):
    """The paper's grid (Table 1, Table 2, Fig. 6)."""

    methods: list[str] = Field(
        default_factory=lambda: ["baseline", "11k", "11k-perlin", "mp", "mp-perlin"]
    )
    sizes: list[int] = Field(default_factory=lambda: [8192])
    curve_sizes: list[int] = Field(default_factory=lambda: [512, 1024, 2048, 4096])
    # the strategies Fig. 6 plots at the curve sizes (one seed); other methods train at `sizes` only
    curve_methods: list[str] = Field(
        default_factory=lambda: ["11k", "11k-perlin", "mp", "mp-perlin"]
    )
    mixtures: list[int] = Field(default_factory=lambda: [20, 40, 60, 80])
    imbalance_baselines: list[str] = Field(default_factory=list)


class Config(_Section):
    profile: str = "paper"
    dataset: str = ""  # the dataset folder (set when a run folder is made)
    device: str = "auto"  # auto | cpu | cuda
    threads: int = 0  # torch CPU threads; 0 = torch's default. 1 is fastest for small nets
    deterministic: bool = (
        False  # torch deterministic algorithms, no cuDNN autotuning (slower on CUDA)
    )
    phantom: PhantomConfig = Field(default_factory=PhantomConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    classify: ClassifyConfig = Field(default_factory=ClassifyConfig)
    diffusion: DiffusionConfig = Field(default_factory=DiffusionConfig)
    sampler: SamplerConfig = Field(default_factory=SamplerConfig)
    perlin: PerlinConfig = Field(default_factory=PerlinConfig)
    natural: NaturalConfig = Field(default_factory=NaturalConfig)
    experiment: ExperimentConfig = Field(default_factory=ExperimentConfig)


class ConfigError(ValueError):
    pass


def _set_dotted(tree: dict, key: str, value) -> None:
    parts = key.split(".")
    node = tree
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {key!r}: {p!r} is not a section")
    node[parts[-1]] = value


def parse_overrides(overrides: list[str] | None) -> dict:
    """``["classify.lr=3e-4", "split.folds=3"]`` -> nested dict (values parsed as YAML)."""
    tree: dict = {}
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: value is not valid YAML ({exc})") from exc
        _set_dotted(tree, key.strip(), value)
    return tree


def merge_trees(base: dict, over: dict) -> dict:
    """``over`` merged into ``base`` section by section (nested dicts merged, values replaced)."""
    out = dict(base)
    for k, v in over.items():
        out[k] = (
            merge_trees(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        )
    return out


def profile_dict(name: str) -> dict:
    if name not in PROFILES:
        raise ConfigError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")
    text = resources.files("jointaug").joinpath("profiles", f"{name}.yaml").read_text()
    return yaml.safe_load(text) or {}


def load_config(
    profile: str = "demo",
    overrides: list[str] | None = None,
    path: str | os.PathLike | None = None,
) -> Config:
    """Resolve a config: the profile, then a YAML file (if given), then overrides."""
    tree = profile_dict(profile)
    if path is not None:
        try:
            file_tree = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: cannot read config ({exc})") from exc
        if not isinstance(file_tree, dict):
            raise ConfigError(f"{path}: config must be a mapping")
        tree = merge_trees(tree, file_tree)
    tree = merge_trees(tree, parse_overrides(overrides))
    tree.setdefault("profile", profile)
    try:
        return Config.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(f"invalid config: {exc}") from exc


def save_config(config: Config, path: str | os.PathLike) -> None:
    write_text_atomic(path, yaml.safe_dump(config.model_dump(), sort_keys=False))


def read_config(path: str | os.PathLike) -> Config:
    """Read a saved resolved config (``RUN/config.yaml``)."""
    try:
        tree = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        return Config.model_validate(tree)
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(f"{path}: cannot read config ({exc})") from exc
