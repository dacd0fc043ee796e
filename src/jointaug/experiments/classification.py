"""The paper's classification protocol over folds x methods x sizes x seeds in a run folder.

Per training (``RUN/fold_K/classify/<method dir>/seed_S/``):

==================  ===========================================================
``model.safetensors``  best weights (validation GMS), architecture + labels in metadata
``log.csv``            one row per evaluation: samples, epoch, losses, val metrics
``checkpoint.safetensors``  resumable state while training (removed when done)
``val_probs.npy``, ``val_labels.npy``, ``val_case_ids.json``      validation part
``test_probs.npy``, ``test_labels.npy``, ``test_case_ids.json``   test part
``result.json``        test metrics at the fixed and the tuned threshold, val GMS, ...
``done``               written last: a folder with it is never recomputed (unless force)
==================  ===========================================================

Where earlier stages plug in: a training only needs the augmentation sets its method
names to exist as ``RUN/fold_K/augment/<set>`` with at least
:func:`jointaug.experiments.methods.required_sets` images (:func:`check_sets` says what
is missing). The task graph (``experiments/graph.py``) runs the diffusion and
augmentation stages before the trainings, and the trainings in the order of
:func:`plan_jobs`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from jointaug.classify.data import (
    ImageCache,
    MixError,
    fold_part,
    input_layout,
    set_prefix,
    training_mix,
)
from jointaug.classify.epoch import effective_budget
from jointaug.classify.metrics import binarize, pooled_metrics, tune_threshold
from jointaug.classify.model import build_model
from jointaug.classify.predict import predict_probs
from jointaug.classify.train import CHECKPOINT, FitOptions, fit
from jointaug.config import ClassifyConfig, Config
from jointaug.dataset.format import Dataset
from jointaug.dataset.splits import Fold
from jointaug.experiments.jobs import Job, classifier_output
from jointaug.experiments.methods import (
    IMBALANCE_BASELINES,
    parse_methods,
    required_sets,
    resolve_method,
)
from jointaug.experiments.outputs import job_done, job_output
from jointaug.experiments.rundir import RunDir
from jointaug.files import atomic_path, move_aside, write_text_atomic
from jointaug.keys import job_seed
from jointaug.outputs import (
    SET_SETTINGS,
    StaleOutputError,
    Status,
    check,
    handle_stale,
    write_done,
)
from jointaug.runtime import resolve_device, runtime_record


def check_sets(run: RunDir, jobs: Sequence[Job], include_done: bool = False) -> None:
    """Raise MixError listing every augmentation set that is missing or too small
    for the jobs still to train (all jobs with ``include_done``)."""
    problems = []
    todo = [j for j in jobs if include_done or not job_done(run, j)]
    for fold in sorted({j.fold for j in todo}):
        methods = {j.method.name: j.method for j in todo if j.fold == fold}
        sizes = sorted({j.size for j in todo if j.fold == fold})
        for name, n in required_sets(methods.values(), sizes).items():
            try:
                set_prefix(run.augment_dir(fold, name), n, run.dataset.labels)
            except (MixError, ValueError) as exc:
                problems.append(str(exc))
    if problems:
        raise MixError("augmentation sets not ready:\n  " + "\n  ".join(problems))


def _save_npy(path: Path, arr: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, arr, allow_pickle=False)


def train_classifier(
    out: Path,
    *,
    dataset: Dataset,
    split: Fold,
    job: Job,
    sets: dict[str, Path],
    config: Config,
    progress: bool = True,
    cache: ImageCache | None = None,
    on_step: Callable[[int], None] | None = None,
) -> dict:
    """Train (or resume, or read) one classifier in ``out``: a plain function of its inputs.

    Args:
        out: the training folder (``RUN/fold_K/classify/<method dir>/seed_S`` in a run).
        dataset, split: the dataset and the fold's patient parts.
        job: fold, method, size, seed; sets: set name -> set folder for the method's mix.
        config: ``classify`` settings and ``device``.

    Returns the ``result.json`` content. A finished folder with the same settings is
    read, not recomputed; one with other settings raises StaleOutputError (nothing is
    deleted: the caller moves it aside to retrain).
    """
    out = Path(out)
    cfg = config.classify
    dev = resolve_device(config.device)
    declared = _declared(out, cfg, job, split, sets, dev.type)
    state = check(declared)
    if state.status is Status.CURRENT:
        return json.loads((out / "result.json").read_text(encoding="utf-8"))
    if state.stale is not None:
        raise StaleOutputError([state.stale])
    train, val, test = _parts(dataset, split, job, sets, cfg, cache or ImageCache())
    loss = job.method.loss or cfg.loss
    if job.method.budget:  # the budget of the augmented runs of this size, real images only
        cfg = effective_budget(cfg, len(train) + job.size)
    t0 = time.perf_counter()
    res = fit(
        out,
        train,
        val,
        cfg,
        job_seed(job.seed, job.fold),
        dataset.labels,
        FitOptions(loss=loss, device=dev, progress=progress, desc=job.label(), on_step=on_step),
    )
    val_p, test_p = _save_predictions(out, res.best_state, val, test, cfg, len(dataset.labels), dev)
    tuned = tune_threshold(val.labels, val_p)
    result = _result(job, loss, (train, val, test), res, dev, t0) | {
        "threshold": cfg.threshold,
        "threshold_tuned": tuned,
        "test": pooled_metrics(test.labels, binarize(test_p, cfg.threshold)),
        "test_tuned": pooled_metrics(test.labels, binarize(test_p, tuned)),
    }
    write_text_atomic(out / "result.json", json.dumps(result, indent=1) + "\n")
    write_done(out, declared.key, declared.settings, finished=time.strftime("%Y-%m-%dT%H:%M:%S"))
    (out / CHECKPOINT).unlink(missing_ok=True)
    return result


def _declared(
    out: Path, cfg: ClassifyConfig, job: Job, split: Fold, sets: dict[str, Path], device_type: str
):
    """The declared output of ``job`` (trained on ``device_type``) against the settings of
    the sets it reads now."""
    set_settings = {}
    for name, folder in sets.items():
        f = Path(folder) / SET_SETTINGS
        set_settings[name] = json.loads(f.read_text(encoding="utf-8")) if f.is_file() else None
    return classifier_output(out, cfg, job, split, set_settings, device_type)


def _result(job: Job, loss: str, parts: tuple, res, dev, t0: float) -> dict:
    """The first part of ``result.json``: the job, its data and how the training went."""
    train, val, test = parts
    return {
        "fold": job.fold,
        "method": job.method.name,
        "size": job.size,
        "seed": job.seed,
        "loss": loss,
        "n_train": len(train),
        "n_train_real": train.sources.count("train"),
        "n_val": len(val),
        "n_test": len(test),
        "best_val_gms": res.best_val_gms,
        "best_samples": res.best_samples,
        "samples": res.samples,
        "epochs": res.epochs,
        "stop_reason": res.stop_reason,
        "wall_s": res.wall_s,
        "wall_s_this_call": time.perf_counter() - t0,
        **runtime_record(dev),
    }


def _parts(dataset: Dataset, split: Fold, job: Job, sets: dict[str, Path], cfg, cache):
    """(train mix, val, test) ImageSets of a training."""
    workers = max(1, cfg.num_workers)
    layout = input_layout(dataset, cfg)  # None unless classify.lr_aware / per_hand
    mix, size = job.method.mix, cfg.image_size
    train = training_mix(dataset, split, mix, job.size, dict(sets), size, cache, workers, layout)
    val = fold_part(dataset, split, "val", size, cache, workers, layout)
    test = fold_part(dataset, split, "test", size, cache, workers, layout)
    return train, val, test


def _save_predictions(
    out: Path, best_state: dict, val, test, cfg: ClassifyConfig, n_labels: int, dev
) -> tuple[np.ndarray, np.ndarray]:
    """The best weights' probabilities on the validation and test parts, saved with their
    labels and case ids; returns (val probs, test probs)."""
    model = build_model(cfg, n_labels, seed=None)
    model.load_state_dict(best_state)
    kw = dict(
        batch_size=2 * cfg.batch_size, device=dev, amp=cfg.amp, channels_last=cfg.channels_last
    )
    val_p, test_p = predict_probs(model, val.images, **kw), predict_probs(model, test.images, **kw)
    for part, probs, data in (("val", val_p, val), ("test", test_p, test)):
        _save_npy(out / f"{part}_probs.npy", probs)
        _save_npy(out / f"{part}_labels.npy", data.labels)
        write_text_atomic(out / f"{part}_case_ids.json", json.dumps(data.case_ids) + "\n")
    return val_p, test_p


def train_job(
    run: RunDir,
    job: Job,
    *,
    force: bool = False,
    progress: bool = True,
    cache: ImageCache | None = None,
    on_step: Callable[[int], None] | None = None,
) -> dict:
    """:func:`train_classifier` for ``job`` in ``run``. ``force``: retrain a finished job
    (its old folder is moved to ``RUN/stale/``, not deleted)."""
    out = job.dir(run)
    if force and out.exists():
        move_aside([out], run.path)
    sets = {name: run.augment_dir(job.fold, name) for name, _ in job.method.mix}
    return train_classifier(
        out,
        dataset=run.dataset,
        split=run.splits.fold(job.fold),
        job=job,
        sets=sets,
        config=run.config,
        progress=progress,
        cache=cache,
        on_step=on_step,
    )


def describe_plan(run: RunDir, jobs: Sequence[Job]) -> str:
    """A few lines: folds x methods x seeds, images per training, what is done already."""
    folds = sorted({j.fold for j in jobs})
    methods = list(dict.fromkeys(j.method.dir_name(j.size) for j in jobs))
    seeds = sorted({j.seed for j in jobs})
    done = sum(job_done(run, j) for j in jobs)
    cfg, ds = run.config.classify, run.dataset
    n_train = [len(ds.classification_cases(run.splits.fold(f).train)) for f in folds]
    lines = [
        f"plan: {len(folds)} folds x {len(methods)} methods x {len(seeds)} seeds = "
        f"{len(jobs)} trainings ({done} done already)",
        f"  methods: {', '.join(methods)}",
        f"  images per training: {min(n_train)}-{max(n_train)} real train images "
        f"+ the method's augmentation images, at {cfg.image_size}x{cfg.image_size}",
        f"  each: up to {cfg.max_samples:,} samples, early stop after {cfg.patience_samples:,} "
        f"without a better validation GMS"
        + (
            f" (both at least {cfg.max_epochs:g} / {cfg.patience_epochs:g} epochs of the mix)"
            if cfg.max_epochs or cfg.patience_epochs
            else ""
        )
        + (
            f", evaluated every ~{cfg.eval_every_samples:,} samples"
            if cfg.eval_every_samples
            else f", evaluated every {cfg.eval_every_epochs} epochs"
        ),
    ]
    return "\n".join(lines)


def config_with_methods(config: Config, methods: Sequence[str] | str) -> Config:
    """The config with ``experiment.methods`` / ``experiment.imbalance_baselines`` set from a
    method list (``jointaug run --methods``), so the run's config.yaml records them."""
    names = [m.name for m in parse_methods(methods)]
    exp = config.experiment.model_copy(
        update={
            "methods": [n for n in names if n not in IMBALANCE_BASELINES],
            "imbalance_baselines": [n for n in names if n in IMBALANCE_BASELINES],
        }
    )
    return config.model_copy(update={"experiment": exp})


def configured_methods(config: Config) -> list[str]:
    """The methods a run trains when none are named: experiment.methods + imbalance baselines."""
    return list(config.experiment.methods) + list(config.experiment.imbalance_baselines)


def train_single(
    run: RunDir,
    fold: int,
    method: str,
    seed: int,
    size: int | None = None,
    *,
    force: bool = False,
    retrain: bool = False,
    progress: bool = True,
) -> dict:
    """Train one fold/method/seed (``jointaug train-classifier``); size defaults to the
    first of ``experiment.sizes`` for augmented methods. Returns its result.json.
    ``retrain``: a training finished with other settings is moved aside and retrained."""
    m = resolve_method(method)
    if not m.trains:
        raise ValueError(f"method {method!r} trains nothing (it reuses {m.base!r}'s models)")
    run.splits.fold(fold)
    if size is None:
        size = run.config.experiment.sizes[0] if m.sized else 0
    job = Job(fold, m, int(size) if m.sized else 0, seed)
    stale = check(job_output(run, job)).stale
    if not (retrain or force):
        handle_stale([stale], run.path, retrain=False)  # stale: StaleOutputError, nothing moved
    check_sets(run, [job], include_done=force)
    return train_job(run, job, force=force or stale is not None, progress=progress)
