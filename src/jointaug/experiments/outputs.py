"""Every output the grid writes in a run folder, declared once.

Each function below returns the :class:`jointaug.outputs.Output` of one output under the
current config: its folder (from :class:`RunDir`), the settings key or settings it
should record, the file that records them and when it is finished.
:func:`jointaug.outputs.check` says whether it is current, missing or stale, and
:func:`jointaug.outputs.handle_stale` does what the user asked with stale ones. Nothing
here runs a stage: :func:`stale_outputs` lists, before any work, everything a changed
setting would replace.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from jointaug.config import Config
from jointaug.dataset.format import is_complete, read_dataset
from jointaug.experiments.jobs import Job, classifier_output
from jointaug.experiments.rundir import RunDir
from jointaug.outputs import DONE, SET_SETTINGS, Output, StaleOutput, check, find_stale, read_done
from jointaug.runtime import key_device_type
from jointaug.sets.registry import set_kind


def natural_output(run: RunDir, given: str | Path | None = None) -> Output:
    """The natural source (two-hand masks): finished when it is a complete dataset folder."""
    return Output("natural source", run.natural_dir(given), finished=is_complete)


def _trained(folder: Path, train_steps: int) -> bool:
    from jointaug.diffusion.record import is_trained

    return is_trained(folder, train_steps)


def model_output(run: RunDir, fold: int, config: Config | None = None) -> Output:
    """Fold ``fold``'s diffusion model: its ``done`` marker records the key of its training
    settings and cases; finished at ``diffusion.train_steps`` steps."""
    from jointaug.diffusion.model import network_config
    from jointaug.diffusion.record import diffusion_record
    from jointaug.diffusion.trainset import fold_train_cases

    config = config or run.config
    cfg = network_config(config.diffusion)
    split = run.splits.fold(fold)
    cases = fold_train_cases(run.dataset, split.train)
    val = fold_train_cases(run.dataset, split.val) if cfg.stop_on_fidelity else []
    key, record = diffusion_record(
        cfg, [c.case_id for c in cases], key_device_type(config.device), [c.case_id for c in val]
    )
    return Output(
        "diffusion model",
        run.diffusion_dir(fold),
        key,
        record,
        DONE,
        finished=partial(_trained, train_steps=cfg.train_steps),
    )


def expected_model(run: RunDir, fold: int, config: Config) -> dict:
    """The model record (for sets) fold ``fold``'s model will have under ``config``."""
    out = model_output(run, fold, config)
    done = read_done(out.path) or {}
    step = config.diffusion.train_steps
    if done.get("key") == out.key and (
        int(done.get("step", 0)) >= step or done.get("stop_reason") == "fidelity"
    ):
        step = int(done["step"])  # trained on, or stopped by its criterion
    return {"step": step, "train_cases": len(out.settings["train_cases"]), "key": out.key}


def _has_cases(folder: Path, n: int) -> bool:
    return is_complete(folder) and len(read_dataset(folder).cases) >= n


def set_output(
    run: RunDir,
    fold: int,
    name: str,
    n: int = 0,
    *,
    config: Config | None = None,
    natural: str | Path | None = None,
    model: dict | None = None,
) -> Output:
    """Augmentation set ``name`` of fold ``fold``: finished with at least ``n`` cases. A
    diffusion set records its settings in ``augmentation.json`` (``model``: the record of
    the model it is made from, default the one the current config will have); other kinds
    (oracle, forward, a user's own set) are only counted."""
    folder = run.augment_dir(fold, name)
    kind = set_kind(name)
    if kind is None or kind.generator != "diffusion":
        return Output(
            "augmentation set", folder, record=SET_SETTINGS, finished=partial(_has_cases, n=n)
        )
    from jointaug.sets.diffusion import LATER_KEYS, NOT_COMPARED, set_settings

    config = config or run.config
    root = run.dataset.root if kind.source == "mp" else run.natural_dir(natural)
    settings = set_settings(
        name=name,
        fold=fold,
        source_kind=kind.source,
        perlin=kind.perlin,
        source_root=root,
        model=expected_model(run, fold, config) if model is None else model,
        config=config,
    )
    return Output(
        "augmentation set",
        folder,
        settings=settings,
        record=SET_SETTINGS,
        finished=partial(_has_cases, n=n),
        ignore=frozenset(NOT_COMPARED),
        defaults=LATER_KEYS,
    )


def set_from_model_on_disk(
    run: RunDir,
    fold: int,
    name: str,
    config: Config | None = None,
    natural: str | Path | None = None,
) -> Output:
    """Set ``name`` of ``fold`` as ``jointaug augment`` makes it now: from the fold's
    model as it is on disk (not the one the config would train)."""
    from jointaug.sets.diffusion import model_record

    return set_output(
        run, fold, name, config=config, natural=natural, model=model_record(run.diffusion_dir(fold))
    )


def recorded_sets(run: RunDir, job: Job) -> dict[str, dict | None]:
    """The augmentation.json of every set the job reads (None where there is none yet)."""
    sets = {}
    for name, _ in job.method.mix:
        settings = run.augment_dir(job.fold, name) / SET_SETTINGS
        sets[name] = (
            json.loads(settings.read_text(encoding="utf-8")) if settings.is_file() else None
        )
    return sets


def job_output(run: RunDir, job: Job, sets: dict[str, dict | None] | None = None) -> Output:
    """The training of ``job``; ``sets``: the settings of the sets it reads (default the
    ones on disk now)."""
    sets = recorded_sets(run, job) if sets is None else sets
    return classifier_output(
        job.dir(run),
        run.config.classify,
        job,
        run.splits.fold(job.fold),
        sets,
        key_device_type(run.config.device),
    )


def job_done(run: RunDir, job: Job) -> bool:
    return check(job_output(run, job)).current


def stale_outputs(
    run: RunDir,
    folds: Sequence[int],
    sets: dict[str, int],
    jobs: Sequence[Job],
    config: Config | None = None,
    natural: str | Path | None = None,
) -> list[StaleOutput]:
    """Every finished (or partly written) output the current config would replace:
    diffusion models, augmentation sets, classifiers (also those whose sets would be
    remade). Reads done markers and settings files only."""
    config = config or run.config
    outs: list[Output] = []
    wanted: dict[tuple[int, str], dict | None] = {}
    needs_model = any((k := set_kind(s)) is not None and k.needs_diffusion for s in sets)
    for fold in folds:
        if needs_model:
            outs.append(model_output(run, fold, config))
        for name in sets:
            out = set_output(run, fold, name, config=config, natural=natural)
            wanted[(fold, name)] = out.settings
            if out.settings is not None:
                outs.append(out)
    for job in jobs:
        if not job.method.trains:
            continue
        sets_now = recorded_sets(run, job)
        for name in sets_now:
            if wanted.get((job.fold, name)) is not None:
                sets_now[name] = wanted[(job.fold, name)]
        outs.append(job_output(run, job, sets_now))
    return find_stale(outs)
