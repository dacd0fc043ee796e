"""Shared test fixtures: small contract-format datasets made on the fly, shrunk configs.

The builders and override lists themselves live in ``helpers.py`` (importable by any test
module); the fixtures here wrap them. ``pytest -m "not slow"`` skips the tests that train
or run a pipeline for more than a few seconds (see the ``slow`` marker in pyproject.toml).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import SHRINK, write_tiny_dataset

from jointaug.config import Config, load_config


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
    """:func:`helpers.write_tiny_dataset` with its defaults (6 patients, 32 px, 3 labels)."""
    return write_tiny_dataset(tmp_path / "tiny")


@pytest.fixture(scope="session")
def shrunk_config() -> Callable[..., Config]:
    """``shrunk_config(profile, *extra)``: the profile with :data:`helpers.SHRINK` applied,
    then any extra overrides (later wins)."""

    def make(profile: str = "demo", *extra: str) -> Config:
        return load_config(profile, [*SHRINK, *extra])

    return make
