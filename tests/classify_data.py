"""Tiny learnable data for the classifier tests (no phantom needed).

Each label owns a fixed square of the image; an inflamed label's square is bright
(Poisson mean ``hot``) on a dim tissue background (mean 3), with random dose scaling,
so a small network can learn the labels in a few seconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jointaug.classify.data import ImageSet
from jointaug.classify.transforms import prepare_image
from jointaug.config import ClassifyConfig
from jointaug.dataset.format import DatasetMeta
from jointaug.dataset.writer import DatasetWriter

LABELS = ["R_a", "R_b", "L_a", "L_b"]
GROUPS = {"right": ["R_a", "R_b"], "left": ["L_a", "L_b"]}


def signal_images(rng: np.random.Generator, n: int, size: int = 64, hot: float = 25.0,
                  labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(n, size, size) count images and their (n, 4) labels."""
    y = (rng.random((n, 4)) < 0.4).astype(np.float32) if labels is None else labels
    cell = size // 4
    out = np.zeros((n, size, size), np.float32)
    for i in range(n):
        lam = np.zeros((size, size))
        lam[size // 8 : -size // 8, size // 8 : -size // 8] = 3.0
        for j in range(4):
            r, c = (j // 2) * 2 * cell + cell // 2, (j % 2) * 2 * cell + cell // 2
            lam[r : r + cell, c : c + cell] = hot if y[i, j] else 4.0
        out[i] = rng.poisson(lam * rng.uniform(0.5, 2.0))
    return out, y


def signal_imageset(rng: np.random.Generator, n: int, image_size: int = 32) -> ImageSet:
    imgs, y = signal_images(rng, n)
    x = np.stack([prepare_image(im, image_size) for im in imgs])[:, None].astype(np.float16)
    return ImageSet(x, y, [f"c{i}" for i in range(n)], ["train"] * n)


def tiny_config(**over) -> ClassifyConfig:
    """A network and schedule that train in about a second on a CPU."""
    base = dict(image_size=32, growth_rate=8, block_config=[2, 2], init_features=16, lr=3e-3,
                batch_size=16, eval_every_epochs=1, patience_samples=400, max_samples=800,
                seeds=[0], crop_pad=32)  # fmt: skip
    base.update(over)
    return ClassifyConfig(**base)


def write_signal_dataset(root: Path, n_patients: int = 20, size: int = 64, seed: int = 0,
                         unknown_fraction: float = 0.0) -> Path:  # fmt: skip
    """A contract dataset: palmar + dorsal per patient (same labels), plus one oblique."""
    rng = np.random.default_rng(seed)
    meta = DatasetMeta(name="signal", labels=list(LABELS), groups=GROUPS)
    with DatasetWriter(root, meta) as w:
        for p in range(n_patients):
            imgs, y = signal_images(rng, 3, size, labels=np.repeat(
                (rng.random((1, 4)) < 0.4).astype(np.float32), 3, axis=0))  # fmt: skip
            vec = y[0].copy()
            vec[rng.random(4) < unknown_fraction] = np.nan
            for view, img in zip(("palmar", "dorsal"), imgs, strict=False):
                w.add(f"p{p:02d}_{view}", f"p{p:02d}", view, img, labels=vec)
            w.add(f"p{p:02d}_oblique", f"p{p:02d}", "oblique_left", imgs[2])
    return root


def write_signal_set(root: Path, n: int, size: int = 64, seed: int = 1) -> Path:
    """An augmentation set in the contract format (all labels known)."""
    rng = np.random.default_rng(seed)
    imgs, y = signal_images(rng, n, size)
    meta = DatasetMeta(name=root.name, labels=list(LABELS), groups=GROUPS)
    with DatasetWriter(root, meta) as w:
        for i in range(n):
            w.add(f"s{i:04d}", f"s{i:04d}", "palmar", imgs[i], labels=y[i])
    return root
