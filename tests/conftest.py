"""Shared test fixtures: small contract-format datasets made on the fly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from jointaug.dataset.format import DatasetMeta
from jointaug.dataset.writer import DatasetWriter


def write_tiny_dataset(
    root: Path,
    n_patients: int = 6,
    size: int = 32,
    labels: tuple[str, ...] = ("A_x", "A_y", "B_x"),
    groups: dict | None = None,
    seed: int = 0,
    views: tuple[str, ...] = ("palmar", "dorsal"),
) -> Path:
    """A small valid dataset: one square region per label, hot where the label is 1."""
    rng = np.random.default_rng(seed)
    groups = groups or {"A": [x for x in labels if x.startswith("A")], "B": [x for x in labels if not x.startswith("A")]}
    meta = DatasetMeta(name="tiny", labels=list(labels), groups=groups)
    cell = size // (len(labels) + 1)
    with DatasetWriter(root, meta) as w:
        for p in range(n_patients):
            vec = (rng.random(len(labels)) < 0.4).astype(np.float32)
            regions = np.zeros((size, size), np.uint8)
            tissue = np.zeros((size, size), np.uint8)
            tissue[2:-2, 2:-2] = 1
            lam = np.full((size, size), 2.0)
            for j in range(len(labels)):
                sl = (slice(cell * j + 1, cell * j + cell), slice(size // 3, size // 3 + cell - 1))
                regions[sl] = j + 1
                if vec[j]:
                    tissue[sl] = 3
                    lam[sl] = 30.0
            for view in views:
                img = rng.poisson(lam).astype(np.float32)
                w.add(f"p{p}_{view}", f"p{p}", view, img, labels=vec, tissue=tissue, regions=regions)
    return root


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Every test on one torch thread: tiny networks run fastest so, and deterministically,
    and two threads crawl when the 2-core machine is busy."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    return write_tiny_dataset(tmp_path / "tiny")
