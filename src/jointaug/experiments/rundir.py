"""The run folder: where every stage reads and writes (nnU-Net-like, all plain files).

:class:`RunDir` owns every path of a run folder; nothing else in the package spells a
name of it (names a stage below ``experiments/`` also needs live in the lowest module
that owns them, e.g. ``outputs.DONE``, and are used from there)::

    RUN/config.yaml            the resolved config (its ``dataset`` is the dataset folder)
    RUN/splits.json            patient-level folds
    RUN/.lock                  the one-writer lock (experiments/lock.py)
    RUN/natural_source/        two-hand masks from hand photos (for the 11k sets)
    RUN/fold_K/diffusion/      model.safetensors, ema.safetensors, model.json, log.csv,
                               samples.png, done
    RUN/fold_K/augment/NAME/   an augmentation set, a dataset folder in the contract format,
                               with augmentation.json (its settings) and fidelity.json
    RUN/fold_K/classify/METHOD/seed_S/   model.safetensors, log.csv, *_probs.npy,
                               result.json, done
    RUN/judge/                 the strong label-fidelity judge (built-in phantom only)
    RUN/logs/TASK.log          each Ray task's output
    RUN/results/               oof.csv, metrics.csv, stats.csv, table1.md, table2.md,
                               per_joint.md, verdicts.txt, figures, report.html,
                               stage_times.json, profile.sha256
    RUN/stale/TIME/...         outputs moved aside by --retrain (same relative paths)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from jointaug.config import Config, ConfigError, read_config, save_config
from jointaug.dataset.format import Dataset, DatasetError, read_dataset
from jointaug.dataset.splits import Splits, make_splits, read_splits, write_splits
from jointaug.experiments.lock import LOCK
from jointaug.files import STALE


@dataclass
class RunDir:
    path: Path

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        dataset: str | os.PathLike,
        config: Config,
        splits_file: str | os.PathLike | None = None,
    ) -> RunDir:
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

    def with_config(self, config: Config) -> RunDir:
        """The same folder read with ``config`` instead of its config.yaml (nothing is
        written): e.g. one task's view of the run with another device."""
        other = RunDir(self.path)
        other.__dict__["config"] = config  # what the cached property would hold
        return other

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

    def augment_root(self, fold: int) -> Path:
        """The folder of fold ``fold``'s augmentation sets."""
        return self.fold_dir(fold) / "augment"

    def augment_dir(self, fold: int, name: str) -> Path:
        return self.augment_root(fold) / name

    def classify_dir(self, fold: int, method: str, seed: int) -> Path:
        return self.fold_dir(fold) / "classify" / method / f"seed_{seed}"

    def classify_dirs(self, method: str = "*", ordered: bool = True) -> list[Path]:
        """Every training folder of method folder ``method`` (a glob), over folds and seeds
        (sorted, or with ``ordered=False`` in the file system's order)."""
        found = self.path.glob(f"fold_*/classify/{method}/seed_*")
        return sorted(found) if ordered else list(found)

    def method_dirs(self) -> list[str]:
        """The method folder names with trainings in any fold."""
        return sorted({p.name for p in self.path.glob("fold_*/classify/*")})

    def natural_dir(self, given: str | os.PathLike | None = None) -> Path:
        """The natural source (``given``: a folder elsewhere, used instead)."""
        return Path(given) if given else self.path / "natural_source"

    @property
    def judge_dir(self) -> Path:
        return self.path / "judge"

    @property
    def headroom_dir(self) -> Path:
        """``jointaug headroom``: baselines on nested subsets, the learning curve."""
        return self.path / "headroom"

    @property
    def results_dir(self) -> Path:
        return self.path / "results"

    @property
    def profile_hash_path(self) -> Path:
        """The frozen-profile hash of the run's config (experiments/provenance.py)."""
        return self.results_dir / "profile.sha256"

    @property
    def stage_times_path(self) -> Path:
        return self.results_dir / "stage_times.json"

    @property
    def logs_dir(self) -> Path:
        return self.path / "logs"

    def log_path(self, task_id: str) -> Path:
        return self.logs_dir / (task_id.replace("/", "__") + ".log")

    @property
    def stale_dir(self) -> Path:
        """Where ``--retrain`` moves outputs aside (:func:`jointaug.files.move_aside`)."""
        return self.path / STALE

    @property
    def lock_path(self) -> Path:
        return self.path / LOCK


def _keep_methods(old: Config, new: Config) -> Config:
    """``new`` with the methods (and imbalance baselines) of ``old`` kept: a run folder
    grows by calls with different ``--methods``, and its config.yaml lists every method it
    holds (the tables order rows and show the tuned rows by them)."""
    exp = new.experiment
    union = {
        k: list(dict.fromkeys([*getattr(old.experiment, k), *getattr(exp, k)]))
        for k in ("methods", "imbalance_baselines")
    }
    return new.model_copy(update={"experiment": exp.model_copy(update=union)})
