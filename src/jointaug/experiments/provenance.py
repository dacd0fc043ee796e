"""The frozen profile: a hash of a run's resolved config, so a confirmation run can show it
ran the very settings of the development run.

``profile_hash`` = sha256 of the resolved config as YAML (``yaml.safe_dump`` of
``Config.model_dump()``, keys in the model's order) with the ``dataset`` path emptied: the
same profile on another dataset folder (a fresh phantom) has the same hash.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

from jointaug.config import Config


def profile_hash(config: Config) -> str:
    """sha256 (hex) of the resolved config YAML without the dataset path."""
    tree = config.model_dump()
    tree["dataset"] = ""
    text = yaml.safe_dump(tree, sort_keys=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def record_profile(run) -> Path:
    """Write ``RUN/results/profile.sha256`` (the hash and a line saying what it is)."""
    from jointaug.files import write_text_atomic

    path = run.profile_hash_path
    write_text_atomic(
        path,
        f"{profile_hash(run.config)}\n"
        "sha256 of the resolved config.yaml without the dataset path (frozen profile)\n",
    )
    return path


def read_profile_hash(run) -> str:
    """The recorded hash ('' when none is recorded)."""
    path = Path(run.profile_hash_path)
    return path.read_text(encoding="utf-8").split("\n", 1)[0].strip() if path.is_file() else ""
