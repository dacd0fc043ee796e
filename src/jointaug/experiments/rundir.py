"""The run folder: where every stage reads and writes (nnU-Net-like, all plain files).

::

    RUN/config.yaml            the resolved config (its ``dataset`` is the dataset folder)
    RUN/splits.json            patient-level folds
    RUN/fold_K/diffusion/      model.safetensors, ema.safetensors, log.csv, samples.png
    RUN/fold_K/augment/NAME/   an augmentation set, a dataset folder in the contract format
    RUN/fold_K/classify/METHOD/seed_S/   model.safetensors, log.csv, test_probs.npy
    RUN/results/               metrics.csv, table1.md, table2.md, fig6.png, report.html
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from jointaug.config import Config, ConfigError, read_config, save_config
from jointaug.dataset.format import Dataset, DatasetError, read_dataset
from jointaug.dataset.splits import Splits, make_splits, read_splits, write_splits


@dataclass
class RunDir:
    path: Path

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    @classmethod
    def create(cls, path: str | os.PathLike, dataset: str | os.PathLike, config: Config,
               splits_file: str | os.PathLike | None = None) -> RunDir:
        """Make (or reopen) a run folder: save the config, write or check splits.json."""
        run = cls(Path(path))
        run.path.mkdir(parents=True, exist_ok=True)
        config = config.model_copy(update={"dataset": str(Path(dataset).resolve())})
        if run.config_path.is_file():
            old = read_config(run.config_path)
            if old.dataset and old.dataset != config.dataset:
                raise ConfigError(
                    f"{run.config_path}: this run was made for dataset {old.dataset}, "
                    f"not {config.dataset}; use another --out"
                )
            config = _keep_methods(old, config)
        save_config(config, run.config_path)
        ds = read_dataset(config.dataset)
        if splits_file is not None:
            write_splits(read_splits(splits_file, ds), run.splits_path)
        elif run.splits_path.is_file():
            read_splits(run.splits_path, ds)
        else:
            write_splits(make_splits(ds, config.split.folds, config.split.seed), run.splits_path)
        return run

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def splits_path(self) -> Path:
        return self.path / "splits.json"

    @cached_property
    def config(self) -> Config:
        if not self.config_path.is_file():
            raise ConfigError(f"{self.path}: not a run folder (no config.yaml)")
        return read_config(self.config_path)

    @cached_property
    def dataset(self) -> Dataset:
        if not self.config.dataset:
            raise DatasetError(f"{self.config_path}: names no dataset")
        return read_dataset(self.config.dataset)

    @cached_property
    def splits(self) -> Splits:
        return read_splits(self.splits_path, self.dataset)

    def fold_dir(self, fold: int) -> Path:
        return self.path / f"fold_{fold}"

    def diffusion_dir(self, fold: int) -> Path:
        return self.fold_dir(fold) / "diffusion"

    def augment_dir(self, fold: int, name: str) -> Path:
        return self.fold_dir(fold) / "augment" / name

    def classify_dir(self, fold: int, method: str, seed: int) -> Path:
        return self.fold_dir(fold) / "classify" / method / f"seed_{seed}"

    @property
    def results_dir(self) -> Path:
        return self.path / "results"


def _keep_methods(old: Config, new: Config) -> Config:
    """``new`` with the methods (and imbalance baselines) of ``old`` kept: a run folder
    grows by calls with different ``--methods``, and its config.yaml lists every method it
    holds (the tables order rows and show the tuned rows by them)."""
    exp = new.experiment
    union = {k: list(dict.fromkeys([*getattr(old.experiment, k), *getattr(exp, k)]))
             for k in ("methods", "imbalance_baselines")}  # fmt: skip
    return new.model_copy(update={"experiment": exp.model_copy(update=union)})
