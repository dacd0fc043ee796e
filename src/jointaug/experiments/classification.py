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

Where earlier stages plug in: :func:`run_classification` only needs the augmentation
sets its methods name to exist as ``RUN/fold_K/augment/<set>`` with at least
:func:`jointaug.experiments.methods.required_sets` images; it checks that first and
says what is missing. The diffusion and augmentation stages run before it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jointaug.classify.data import ImageCache, MixError, fold_part, set_prefix, training_mix
from jointaug.classify.metrics import binarize, pooled_metrics, tune_threshold
from jointaug.classify.model import build_model
from jointaug.classify.predict import predict_probs
from jointaug.classify.train import CHECKPOINT, SPEED_ONLY, fit
from jointaug.config import Config
from jointaug.dataset.io import atomic_path, write_text_atomic
from jointaug.experiments.methods import (
    IMBALANCE_BASELINES,
    Method,
    parse_methods,
    required_sets,
    resolve_method,
)
from jointaug.experiments.rundir import RunDir
from jointaug.runtime import resolve_device, runtime_record

Echo = Callable[[str], None]


@dataclass(frozen=True)
class Job:
    """One training: a fold, a method at a size (0 = no augmentation), a seed."""

    fold: int
    method: Method
    size: int
    seed: int

    def dir(self, run: RunDir) -> Path:
        return run.classify_dir(self.fold, self.method.dir_name(self.size), self.seed)

    def label(self) -> str:
        size = f" N={self.size}" if self.method.augmented else ""
        return f"fold {self.fold} · {self.method.name}{size} · seed {self.seed}"


def job_key(run: RunDir, job: Job) -> str:
    """What a finished training depends on: classifier settings (not the seeds list or
    speed flags), loss, seed, the fold's patients, the mix, its size, and the settings
    of the augmentation sets it reads. A ``done`` folder with another key is stale."""
    cfg = run.config.classify.model_dump(exclude=SPEED_ONLY)
    fold = run.splits.fold(job.fold)
    sets = {}
    for name, _ in job.method.mix:
        settings = run.augment_dir(job.fold, name) / "augmentation.json"
        sets[name] = json.loads(settings.read_text(encoding="utf-8")) if settings.is_file() else None
    blob = json.dumps([cfg, job.method.loss or cfg["loss"], job.seed, [fold.train, fold.val, fold.test],
                       job.method.mix, job.size, sets], sort_keys=True, default=str)  # fmt: skip
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def is_done(path: Path, key: str | None = None) -> bool:
    """A finished training folder (and, given ``key``, one made with the same settings)."""
    marker = path / "done"
    if not marker.is_file():
        return False
    if key is None:
        return True
    try:
        return json.loads(marker.read_text(encoding="utf-8")).get("key") == key
    except (json.JSONDecodeError, AttributeError):
        return False


def plan_jobs(methods: Sequence[Method], folds: Sequence[int], sizes: Sequence[int],
              seeds: Sequence[int]) -> list[Job]:  # fmt: skip
    """Trainings for ``methods`` (a non-training method adds its base), fold-major order."""
    trained: list[Method] = []
    for m in methods:
        m = m if m.trains else resolve_method(m.base)
        if m.name not in {t.name for t in trained}:
            trained.append(m)
    return [Job(f, m, size, s) for f in folds for m in trained for size in m.sizes(sizes) for s in seeds]


def check_sets(run: RunDir, jobs: Sequence[Job], include_done: bool = False) -> None:
    """Raise MixError listing every augmentation set that is missing or too small
    for the jobs still to train (all jobs with ``include_done``)."""
    problems = []
    todo = [j for j in jobs if include_done or not is_done(j.dir(run), job_key(run, j))]
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


def job_seed(seed: int, fold: int) -> int:
    """The training seed of (seed, fold): different initialisations per fold and seed."""
    return int(np.random.SeedSequence([int(seed), int(fold)]).generate_state(1)[0])


def train_job(run: RunDir, job: Job, *, force: bool = False, progress: bool = True,
              cache: ImageCache | None = None,
              on_step: Callable[[int], None] | None = None) -> dict:  # fmt: skip
    """Train (or resume) one job, predict validation and test, write its folder.

    Returns the ``result.json`` content; a finished job is read, not recomputed, unless
    ``force`` (which deletes its folder first).
    """
    out = job.dir(run)
    key = job_key(run, job)
    if is_done(out) and not is_done(out, key):
        force = True  # finished with other settings: stale, train afresh
    if force and out.exists():
        shutil.rmtree(out)
    if is_done(out, key):
        return json.loads((out / "result.json").read_text(encoding="utf-8"))
    cfg, ds = run.config.classify, run.dataset
    fold = run.splits.fold(job.fold)
    cache = cache or ImageCache()
    workers = max(1, cfg.num_workers)
    sets = {name: run.augment_dir(job.fold, name) for name, _ in job.method.mix}
    train = training_mix(ds, fold, job.method.mix, job.size, sets, cfg.image_size, cache, workers)
    val = fold_part(ds, fold, "val", cfg.image_size, cache, workers)
    test = fold_part(ds, fold, "test", cfg.image_size, cache, workers)
    loss = job.method.loss or cfg.loss
    dev = resolve_device(run.config.device)
    t0 = time.perf_counter()
    res = fit(out, train, val, cfg, job_seed(job.seed, job.fold), ds.labels, loss=loss,
              device=dev, progress=progress, desc=job.label(), on_step=on_step)  # fmt: skip
    model = build_model(cfg, len(ds.labels), seed=None)
    model.load_state_dict(res.best_state)
    kw = dict(batch_size=2 * cfg.batch_size, device=dev, amp=cfg.amp,
              channels_last=cfg.channels_last)  # fmt: skip
    val_p, test_p = predict_probs(model, val.images, **kw), predict_probs(model, test.images, **kw)
    for part, probs, data in (("val", val_p, val), ("test", test_p, test)):
        _save_npy(out / f"{part}_probs.npy", probs)
        _save_npy(out / f"{part}_labels.npy", data.labels)
        write_text_atomic(out / f"{part}_case_ids.json", json.dumps(data.case_ids) + "\n")
    tuned = tune_threshold(val.labels, val_p)
    result = {
        "fold": job.fold, "method": job.method.name, "size": job.size, "seed": job.seed,
        "loss": loss, "n_train": len(train), "n_train_real": train.sources.count("train"),
        "n_val": len(val), "n_test": len(test),
        "best_val_gms": res.best_val_gms, "best_samples": res.best_samples,
        "samples": res.samples, "epochs": res.epochs, "stop_reason": res.stop_reason,
        "wall_s": res.wall_s, "wall_s_this_call": time.perf_counter() - t0,
        **runtime_record(dev),
        "threshold": cfg.threshold, "threshold_tuned": tuned,
        "test": pooled_metrics(test.labels, binarize(test_p, cfg.threshold)),
        "test_tuned": pooled_metrics(test.labels, binarize(test_p, tuned)),
    }  # fmt: skip
    write_text_atomic(out / "result.json", json.dumps(result, indent=1) + "\n")
    write_text_atomic(out / "done", json.dumps({"finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                                "key": key}) + "\n")  # fmt: skip
    (out / CHECKPOINT).unlink(missing_ok=True)
    return result


@dataclass
class ClassificationSummary:
    jobs: int
    trained: int  # jobs trained (or resumed) by this call
    skipped: int  # jobs already done
    wall_s: float
    tables: str  # table1 + table2 markdown
    results_dir: Path


def describe_plan(run: RunDir, jobs: Sequence[Job]) -> str:
    """A few lines: folds x methods x seeds, images per training, what is done already."""
    folds = sorted({j.fold for j in jobs})
    methods = list(dict.fromkeys(j.method.dir_name(j.size) for j in jobs))
    seeds = sorted({j.seed for j in jobs})
    done = sum(is_done(j.dir(run), job_key(run, j)) for j in jobs)
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
        + (f" (both at least {cfg.max_epochs:g} / {cfg.patience_epochs:g} epochs of the mix)"
           if cfg.max_epochs or cfg.patience_epochs else "")
        + (f", evaluated every ~{cfg.eval_every_samples:,} samples" if cfg.eval_every_samples
           else f", evaluated every {cfg.eval_every_epochs} epochs"),
    ]
    return "\n".join(lines)


def run_classification(run: RunDir, methods: Sequence[str] | str, *,
                       folds: Sequence[int] | None = None, sizes: Sequence[int] | None = None,
                       seeds: Sequence[int] | None = None, force: bool = False,
                       progress: bool = True, echo: Echo | None = None) -> ClassificationSummary:  # fmt: skip
    """Train and evaluate ``methods`` on every fold, then write ``RUN/results``.

    folds: default all; sizes: augmentation sizes (default ``experiment.sizes``); seeds:
    default ``classify.seeds``. Finished trainings are skipped (``force`` retrains them);
    an interrupted one resumes from its checkpoint.
    """
    from jointaug.experiments.tables import write_results

    echo = echo or _tqdm_echo
    cfg = run.config
    ms = parse_methods(methods)
    folds = list(range(len(run.splits.folds))) if folds is None else [int(f) for f in folds]
    for f in folds:
        run.splits.fold(f)  # raises for a fold that does not exist
    jobs = plan_jobs(ms, folds, cfg.experiment.sizes if sizes is None else sizes,
                     cfg.classify.seeds if seeds is None else seeds)  # fmt: skip
    if not jobs:
        raise ValueError("nothing to run: no methods, folds or seeds")
    check_sets(run, jobs, include_done=force)
    echo(describe_plan(run, jobs))
    t0, trained, skipped = time.perf_counter(), 0, 0
    cache, cache_fold = ImageCache(), None
    for i, job in enumerate(jobs, 1):
        if cache_fold != job.fold:
            cache.clear()
            cache_fold = job.fold
        if is_done(job.dir(run), job_key(run, job)) and not force:
            skipped += 1
            continue
        r = train_job(run, job, force=force, progress=progress, cache=cache)
        trained += 1
        echo(
            f"[{i}/{len(jobs)}] {job.label()}: val GMS {r['best_val_gms']:.3f}, "
            f"test GMS {r['test']['gms']:.3f} ({r['samples']:,} samples, {r['stop_reason']}, "
            f"{r['wall_s']:.0f} s)"
        )
    paths = write_results(run, show_tuned=True if any(not m.trains for m in ms) else None)
    tables = "\n".join(paths[k].read_text(encoding="utf-8") for k in ("table1", "table2"))
    return ClassificationSummary(len(jobs), trained, skipped, time.perf_counter() - t0, tables,
                                 run.results_dir)  # fmt: skip


def _tqdm_echo(msg: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(msg)


def config_with_methods(config: Config, methods: Sequence[str] | str) -> Config:
    """The config with ``experiment.methods`` / ``experiment.imbalance_baselines`` set from a
    method list (``jointaug run --methods``), so the run's config.yaml records them."""
    names = [m.name for m in parse_methods(methods)]
    exp = config.experiment.model_copy(update={
        "methods": [n for n in names if n not in IMBALANCE_BASELINES],
        "imbalance_baselines": [n for n in names if n in IMBALANCE_BASELINES],
    })  # fmt: skip
    return config.model_copy(update={"experiment": exp})


def configured_methods(config: Config) -> list[str]:
    """The methods a run trains when none are named: experiment.methods + imbalance baselines."""
    return list(config.experiment.methods) + list(config.experiment.imbalance_baselines)


def train_single(run: RunDir, fold: int, method: str, seed: int, size: int | None = None, *,
                 force: bool = False, progress: bool = True) -> dict:  # fmt: skip
    """Train one fold/method/seed (``jointaug train-classifier``); size defaults to the
    first of ``experiment.sizes`` for augmented methods. Returns its result.json."""
    m = resolve_method(method)
    if not m.trains:
        raise ValueError(f"method {method!r} trains nothing (it reuses {m.base!r}'s models)")
    run.splits.fold(fold)
    if size is None:
        size = run.config.experiment.sizes[0] if m.augmented else 0
    job = Job(fold, m, int(size) if m.augmented else 0, seed)
    check_sets(run, [job], include_done=force)
    return train_job(run, job, force=force, progress=progress)
