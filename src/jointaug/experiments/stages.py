"""The stages of a run folder: RunDir -> the explicit inputs of each stage function.

The stage functions below ``experiments/`` (``diffusion.train.train_diffusion``,
``sets.diffusion.make_augmentation_set`` and ``merge_shards``, the set generators of
other kinds, ``experiments.classification.train_classifier``) take a dataset, cases, a
config section and an output folder; this module reads those out of a run folder, so
the CLI verbs, the task graph and the tests share one place that feeds them. What each
output should record, and whether it is current, is ``experiments/outputs.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from jointaug.config import Config
from jointaug.dataset.format import is_complete, read_dataset
from jointaug.dataset.validate import validate_dataset
from jointaug.experiments.rundir import RunDir
from jointaug.sets.registry import SetKind, diffusion_set_name, set_kind
from jointaug.sets.sources import Source, mp_source, natural_source


def train_fold_diffusion(
    run: RunDir,
    fold: int,
    progress: bool = True,
    config: Config | None = None,
    stop_after: int | None = None,
) -> Path:
    """Train fold ``fold``'s diffusion model of ``run`` (``jointaug train-diffusion``)."""
    from jointaug.diffusion.train import TrainOptions, train_diffusion

    config = config or run.config
    return train_diffusion(
        run.diffusion_dir(fold),
        run.dataset,
        run.splits.fold(fold).train,
        fold,
        config.diffusion,
        TrainOptions(config.device, progress, stop_after),
        val_patients=run.splits.fold(fold).val,  # stop_on_fidelity's held-out conditions
    )


def set_source(run: RunDir, fold: int, source: str, natural: str | Path | None = None) -> Source:
    if source == "mp":
        return mp_source(run.dataset, run.splits.fold(fold).train)
    if source == "natural":
        return natural_source(run.natural_dir(natural), run.dataset.labels)
    raise ValueError(f"unknown augmentation source {source!r} (mp or natural)")


def make_fold_set(
    run: RunDir,
    fold: int,
    source: str,
    perlin: bool,
    n: int,
    natural_dir: str | Path | None = None,
    progress: bool = True,
    config: Config | None = None,
    shard: tuple[int, int] | None = None,
) -> Path:
    """A diffusion augmentation set of fold ``fold`` (``jointaug augment``)."""
    return make_named_set(
        run,
        fold,
        diffusion_set_name(source, perlin),
        n,
        config=config,
        natural=natural_dir,
        progress=progress,
        shard=shard,
    )


def _make_diffusion_set(
    run: RunDir,
    fold: int,
    kind: SetKind,
    n: int,
    config: Config,
    natural: str | Path | None,
    shard: tuple[int, int] | None,
    **kw,
) -> Path:
    from jointaug.sets.diffusion import DiffusionSet, make_augmentation_set

    if n < 1:
        raise ValueError(f"augmentation set size must be >= 1, got {n}")
    which = DiffusionSet(
        kind.name,
        fold,
        set_source(run, fold, kind.source, natural),
        kind.perlin,
        run.diffusion_dir(fold),
    )
    return make_augmentation_set(
        run.augment_dir(fold, kind.name),
        n,
        which,
        dataset=run.dataset,
        config=config,
        shard=shard,
        **kw,
    )


def merge_fold_set(
    run: RunDir,
    fold: int,
    name: str,
    n: int,
    ranges: Sequence[tuple[int, int]],
    natural: str | Path | None = None,
) -> Path:
    from jointaug.sets.diffusion import merge_shards

    kind = _registered(name)
    return merge_shards(
        run.augment_dir(fold, name),
        n,
        ranges,
        dataset=run.dataset,
        source=set_source(run, fold, kind.source, natural),
        fold=fold,
        name=name,
    )


def _registered(name: str) -> SetKind:
    kind = set_kind(name)
    if kind is None:
        raise ValueError(f"augmentation set {name!r} is not a registered kind")
    return kind


def user_set_problem(run: RunDir, fold: int, name: str, n: int) -> str | None:
    """Why a user's own set ``fold_K/augment/NAME`` cannot be used (None: it can)."""
    folder = run.augment_dir(fold, name)
    if not folder.is_dir():
        return (
            f"{folder} is missing: {name!r} is not a set jointaug makes, so put your own set "
            f"there (a contract-format dataset with at least {n} cases; see docs) or use one of "
            f"the generated sets"
        )
    if not is_complete(folder):
        return f"{folder}: not a complete dataset folder (no dataset.json / cases.csv)"
    report = validate_dataset(folder)
    if not report.ok:
        return f"{folder}: does not validate: " + "; ".join(report.errors[:3])
    have = len(read_dataset(folder).cases)
    if have < n:
        return f"{folder}: has {have} cases, the methods need {n}"
    return None


def make_named_set(
    run: RunDir,
    fold: int,
    name: str,
    n: int,
    *,
    config: Config | None = None,
    natural: str | Path | None = None,
    progress: bool = True,
    shard: tuple[int, int] | None = None,
    batch_size: int | None = None,
) -> Path:
    """Make (or check) augmentation set ``name`` of fold ``fold``: dispatch on its registry
    entry's generator kind (a kind that reads other sets gets their folders as ``sets``);
    a user's own set is used if present and valid."""
    config = config or run.config
    kind = set_kind(name)
    if kind is None:
        problem = user_set_problem(run, fold, name, n)
        if problem:
            raise FileNotFoundError(problem)
        return run.augment_dir(fold, name)
    if kind.generator == "diffusion":
        return _make_diffusion_set(
            run, fold, kind, n, config, natural, shard, progress=progress, batch_size=batch_size
        )
    problem = kind.available(run.dataset)
    if problem:
        raise ValueError(f"augmentation set {name!r} {problem}")
    make = kind.load_factory()
    reads = (
        {"sets": {d: run.augment_dir(fold, d) for d in kind.depends_on}} if kind.depends_on else {}
    )
    return make(
        run.augment_dir(fold, name),
        n,
        dataset=run.dataset,
        train_patients=run.splits.fold(fold).train,
        fold=fold,
        config=config,
        progress=progress,
        **reads,
        **dict(kind.options),
    )
