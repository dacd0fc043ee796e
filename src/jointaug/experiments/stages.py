"""The stages of a run folder: RunDir -> the explicit inputs of each stage function.

The stage functions below ``experiments/`` (``diffusion.train.train_diffusion``,
``sets.diffusion.make_augmentation_set``, set generators of other kinds,
``experiments.classification.train_classifier``) take a dataset, cases, a config
section and an output folder; this module reads those out of a run folder, so the
CLI verbs, the task graph and the tests share one place that knows the run layout.
It also computes, without running anything, the settings each output *should*
record under the current config (:func:`stale_outputs`), so a command can stop before
any work and list what a changed setting would replace.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from jointaug.config import Config
from jointaug.dataset.format import is_complete, read_dataset
from jointaug.dataset.validate import validate_dataset
from jointaug.experiments.rundir import RunDir
from jointaug.outputs import StaleOutput, read_done
from jointaug.sets.registry import SetKind, diffusion_set_name, set_kind
from jointaug.sets.sources import Source, mp_source, natural_source


def natural_dir(run: RunDir, given: str | Path | None = None) -> Path:
    return Path(given) if given else run.path / "natural_source"


def train_fold_diffusion(run: RunDir, fold: int, progress: bool = True, config: Config | None = None,
                         stop_after: int | None = None) -> Path:  # fmt: skip
    """Train fold ``fold``'s diffusion model of ``run`` (``jointaug train-diffusion``)."""
    from jointaug.diffusion.train import TrainOptions, train_diffusion

    config = config or run.config
    return train_diffusion(run.diffusion_dir(fold), run.dataset, run.splits.fold(fold).train, fold,
                           config.diffusion, TrainOptions(config.device, progress, stop_after))  # fmt: skip


def set_source(run: RunDir, fold: int, source: str, natural: str | Path | None = None) -> Source:
    if source == "mp":
        return mp_source(run.dataset, run.splits.fold(fold).train)
    if source == "natural":
        return natural_source(natural_dir(run, natural), run.dataset.labels)
    raise ValueError(f"unknown augmentation source {source!r} (mp or natural)")


def make_fold_set(run: RunDir, fold: int, source: str, perlin: bool, n: int,
                  natural_dir: str | Path | None = None, progress: bool = True,
                  config: Config | None = None, shard: tuple[int, int] | None = None,
                  batch_size: int | None = None) -> Path:  # fmt: skip
    """A diffusion augmentation set of fold ``fold`` (``jointaug augment``)."""
    from jointaug.sets.diffusion import DiffusionSet, make_augmentation_set

    name = diffusion_set_name(source, perlin)
    config = config or run.config
    if n < 1:
        raise ValueError(f"augmentation set size must be >= 1, got {n}")
    which = DiffusionSet(name, fold, set_source(run, fold, source, natural_dir), perlin, run.diffusion_dir(fold))
    return make_augmentation_set(run.augment_dir(fold, name), n, which, dataset=run.dataset, config=config,
                                 progress=progress, shard=shard, batch_size=batch_size)  # fmt: skip


def merge_fold_set(run: RunDir, fold: int, name: str, n: int, ranges: Sequence[tuple[int, int]],
                   natural: str | Path | None = None) -> Path:  # fmt: skip
    from jointaug.sets.diffusion import merge_shards

    kind = _registered(name)
    return merge_shards(run.augment_dir(fold, name), n, ranges, dataset=run.dataset,
                        source=set_source(run, fold, kind.source, natural), fold=fold, name=name)  # fmt: skip


def _registered(name: str) -> SetKind:
    kind = set_kind(name)
    if kind is None:
        raise ValueError(f"augmentation set {name!r} is not a registered kind")
    return kind


def user_set_problem(run: RunDir, fold: int, name: str, n: int) -> str | None:
    """Why a user's own set ``fold_K/augment/NAME`` cannot be used (None: it can)."""
    folder = run.augment_dir(fold, name)
    if not folder.is_dir():
        return (f"{folder} is missing: {name!r} is not a set jointaug makes, so put your own set "
                f"there (a contract-format dataset with at least {n} cases; see docs) or use one of "
                f"the generated sets")  # fmt: skip
    if not is_complete(folder):
        return f"{folder}: not a complete dataset folder (no dataset.json / cases.csv)"
    report = validate_dataset(folder)
    if not report.ok:
        return f"{folder}: does not validate: " + "; ".join(report.errors[:3])
    have = len(read_dataset(folder).cases)
    if have < n:
        return f"{folder}: has {have} cases, the methods need {n}"
    return None


def make_named_set(run: RunDir, fold: int, name: str, n: int, *, config: Config | None = None,
                   natural: str | Path | None = None, progress: bool = True,
                   shard: tuple[int, int] | None = None, batch_size: int | None = None) -> Path:  # fmt: skip
    """Make (or check) augmentation set ``name`` of fold ``fold``: dispatch on its registry
    entry's generator kind; a user's own set is used if present and valid."""
    config = config or run.config
    kind = set_kind(name)
    if kind is None:
        problem = user_set_problem(run, fold, name, n)
        if problem:
            raise FileNotFoundError(problem)
        return run.augment_dir(fold, name)
    if kind.generator == "diffusion":
        return make_fold_set(run, fold, kind.source, kind.perlin, n, natural, progress, config, shard, batch_size)
    make = kind.load_factory()
    return make(run.augment_dir(fold, name), n, dataset=run.dataset,
                train_patients=run.splits.fold(fold).train, fold=fold, config=config,
                progress=progress, **dict(kind.options))  # fmt: skip


# ---- what the current config expects (no work done) --------------------------------------


def expected_model(run: RunDir, fold: int, config: Config) -> tuple[str, dict]:
    """(key, model record for sets) fold ``fold``'s model will have under ``config``."""
    from jointaug.diffusion.model import network_config
    from jointaug.diffusion.train import diffusion_record
    from jointaug.diffusion.trainset import fold_train_cases

    cfg = network_config(config.diffusion)
    cases = fold_train_cases(run.dataset, run.splits.fold(fold).train)
    key, _ = diffusion_record(cfg, [c.case_id for c in cases])
    done = read_done(run.diffusion_dir(fold)) or {}
    step = cfg.train_steps
    if done.get("key") == key and int(done.get("step", 0)) >= cfg.train_steps:
        step = int(done["step"])
    return key, {"step": step, "train_cases": len(cases), "key": key}


def expected_set_settings(run: RunDir, fold: int, name: str, config: Config,
                          natural: str | Path | None = None) -> dict | None:  # fmt: skip
    """The augmentation.json set ``name`` of ``fold`` will have (None: not a diffusion set)."""
    from jointaug.sets.diffusion import set_settings

    kind = set_kind(name)
    if kind is None or kind.generator != "diffusion":
        return None
    root = run.dataset.root if kind.source == "mp" else natural_dir(run, natural)
    return set_settings(name=name, fold=fold, source_kind=kind.source, perlin=kind.perlin,
                        source_root=root, model=expected_model(run, fold, config)[1], config=config)  # fmt: skip


def stale_outputs(run: RunDir, folds: Sequence[int], sets: dict[str, int], jobs: Sequence,
                  config: Config | None = None, natural: str | Path | None = None) -> list[StaleOutput]:  # fmt: skip
    """Every finished (or partly written) output the current config would replace:
    diffusion models, augmentation sets, classifiers (also those whose sets would be
    remade). Reads done markers and settings files only."""
    from jointaug.diffusion.train import stale_model
    from jointaug.diffusion.trainset import fold_train_cases
    from jointaug.experiments.classification import recorded_sets, stale_job
    from jointaug.sets.diffusion import stale_set

    config = config or run.config
    out: list[StaleOutput] = []
    wanted: dict[tuple[int, str], dict | None] = {}
    needs_model = any((k := set_kind(s)) is not None and k.needs_diffusion for s in sets)
    for fold in folds:
        if needs_model:
            cases = fold_train_cases(run.dataset, run.splits.fold(fold).train)
            st = stale_model(run.diffusion_dir(fold), config.diffusion, [c.case_id for c in cases])
            if st is not None:
                out.append(st)
        for name in sets:
            settings = expected_set_settings(run, fold, name, config, natural)
            wanted[(fold, name)] = settings
            if settings is not None and (st := stale_set(run.augment_dir(fold, name), settings)):
                out.append(st)
    for job in jobs:
        if not job.method.trains:
            continue
        sets_now = recorded_sets(run, job)
        for name in sets_now:
            if wanted.get((job.fold, name)) is not None:
                sets_now[name] = wanted[(job.fold, name)]
        st = stale_job(run, job, sets_now)
        if st is not None:
            out.append(st)
    return out


def stale_fold_set(run: RunDir, fold: int, name: str, config: Config,
                   natural: str | Path | None = None) -> StaleOutput | None:  # fmt: skip
    """Set ``name`` of ``fold`` if it was made with other settings than ``config`` and the
    fold's model as it is on disk now."""
    from jointaug.sets.diffusion import model_record, set_settings, stale_set

    kind = set_kind(name)
    if kind is None or kind.generator != "diffusion":
        return None
    root = run.dataset.root if kind.source == "mp" else natural_dir(run, natural)
    settings = set_settings(name=name, fold=fold, source_kind=kind.source, perlin=kind.perlin,
                            source_root=root, model=model_record(run.diffusion_dir(fold)), config=config)  # fmt: skip
    return stale_set(run.augment_dir(fold, name), settings)


def confirm_retrain(run: RunDir, stale: Sequence[StaleOutput], retrain: bool, echo=print) -> None:
    """Stop with the list of ``stale`` outputs, or with ``retrain`` move them aside."""
    from jointaug.files import move_aside
    from jointaug.outputs import StaleOutputError

    stale = [s for s in stale if s is not None]
    if not stale:
        return
    if not retrain:
        raise StaleOutputError(stale)
    dest = move_aside([s.path for s in stale], run.path)
    echo(f"moved {len(stale)} stale output(s) to {dest}")
