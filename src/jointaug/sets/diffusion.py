"""Augmentation sets (``jointaug augment``): N labelled synthetic images per fold.

``make_augmentation_set`` writes a set folder (``RUN/fold_K/augment/<name>`` in a run:
``mp``, ``mp-perlin``, ``11k``, ``11k-perlin``; the names live in ``sets/registry.py``,
the run layout in ``experiments/stages.py``) as a contract-format dataset: per case a 16-bit count image, the
condition as its tissue map (0 bg, 1 normal, 2 low, 3 high), the source's region map,
the sampled label vector (binary) and provenance columns ``source_case, sample_seed,
perlin_tries, perlin_fallbacks, sampler, steps``.

Determinism and growth: case ``i`` is fixed by (diffusion.seed, fold, name, i) (see
:func:`jointaug.sets.sources.plan_case`), and cases are generated in batches aligned
to multiples of the set's batch size B (``diffusion.sample_batch_size``, or sized to the
GPU when ``auto``; recorded in ``augmentation.json`` and kept when the set grows; a batch
is always [k*B, (k+1)*B) cut at n), so a set that was interrupted, resumed, or grown
from 256 to 8192 holds the same images as one written in one go (bit-identical on the same device; the diffusion noise
is per case, so only float rounding could differ on another device). Sets grow by
appending and never shrink: asking for fewer cases than a complete set has returns it
unchanged (take its first n). The folder looks complete (``dataset.json``) only after
the last case; ``augmentation.json`` records the settings, and a set is never extended
with other settings (another model, sampler or source): it is reported stale
(:class:`jointaug.outputs.StaleOutputError`), never deleted.

Shards: ``shard=(start, stop)`` (``start`` a multiple of the set's batch size) writes
only cases ``[start, stop)`` into ``<set>/.shards/<start>-<stop>/``, so the shards of
one set can run in parallel (one process or machine each); :func:`merge_shards` then
moves their files into the set folder and writes ``cases.csv`` and ``dataset.json``.
Because a case depends only on its index and batches are aligned, the merged folder
is byte-identical to one written unsharded (tested).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from jointaug.config import Config
from jointaug.dataset.format import (
    Dataset,
    DatasetError,
    DatasetMeta,
    cases_csv_text,
    is_complete,
    read_dataset,
)
from jointaug.dataset.writer import DatasetWriter
from jointaug.diffusion.intensity import poisson_counts
from jointaug.diffusion.sample import sample_batch_size, sampler_steps
from jointaug.diffusion.trained import generate_rates, load_trained
from jointaug.files import write_text_atomic
from jointaug.keys import changed_settings
from jointaug.outputs import StaleOutput, StaleOutputError, read_done
from jointaug.progress import progress_bar
from jointaug.runtime import resolve_device
from jointaug.sets.sources import Source, plan_case

EXTRA_COLUMNS = ["source_case", "sample_seed", "perlin_tries", "perlin_fallbacks", "sampler", "steps"]
SETTINGS_FILE = "augmentation.json"
# settings keys added after sets were first written, with the value such sets were made with
LATER_KEYS = {"guidance_scale": 1.0, "upsample": "nearest"}
CASES_PER_SUBDIR = 1000
SHARDS = ".shards"
NOT_COMPARED = {"batch_size"}  # batches are aligned, so the batch size does not change a case


def case_id(name: str, index: int) -> str:
    return f"{name}_{index:06d}"


def model_record(model_dir: Path) -> dict:
    """What a set records of its diffusion model: steps, number of train cases, key."""
    done = read_done(model_dir) or {}
    try:
        info = json.loads((Path(model_dir) / "model.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        info = {}
    return {"step": info.get("step", done.get("step")), "train_cases": len(info.get("train_cases", [])),
            "key": done.get("key")}  # fmt: skip


def set_settings(*, name: str, fold: int, source_kind: str, perlin: bool, source_root: Path,
                 model: dict, config: Config, batch_size: int | str | None = None) -> dict:  # fmt: skip
    """The settings an augmentation set records (``augmentation.json``) and is compared by
    (all but ``batch_size``: batches are aligned, a case does not depend on it)."""
    cfg = config.diffusion
    return {
        "fold": fold, "name": name, "source": source_kind, "perlin": bool(perlin),
        "source_dataset": str(Path(source_root).resolve()), "seed": cfg.seed,
        "model_step": model.get("step"), "model_train_cases": model.get("train_cases"),
        "model_key": model.get("key"),
        "sampler": cfg.sampler, "steps": sampler_steps(cfg), "batch_size": cfg.sample_batch_size if batch_size is None else batch_size,
        "guidance_scale": cfg.guidance_scale, "upsample": cfg.upsample,
        "inflammation_sampler": config.sampler.model_dump(),
        "perlin_config": config.perlin.model_dump() if perlin else None,
    }  # fmt: skip


def stale_set(out: Path, settings: dict) -> StaleOutput | None:
    """The set in ``out`` (finished or partly written) if made with other settings."""
    path = Path(out) / SETTINGS_FILE
    if not path.is_file():
        return None
    old = json.loads(path.read_text(encoding="utf-8"))
    old = {**LATER_KEYS, **old}  # a set written before a key existed used its default
    changes = [c for c in changed_settings({k: v for k, v in old.items() if k not in NOT_COMPARED},
                                           {k: v for k, v in settings.items() if k not in NOT_COMPARED})]  # fmt: skip
    return StaleOutput(Path(out), "augmentation set", changes) if changes else None


def _record_settings(out: Path, settings: dict) -> None:
    """Write ``augmentation.json``; refuse (deleting nothing) a set made with other settings."""
    stale = stale_set(out, settings)
    if stale is not None:
        raise StaleOutputError([stale])
    if not (out / SETTINGS_FILE).is_file() and out.exists() and any(out.iterdir()):
        raise ValueError(f"{out}: exists but is not an augmentation set (no {SETTINGS_FILE}); move it away")
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / SETTINGS_FILE, json.dumps(settings, indent=2) + "\n")


def recorded_batch(out: Path) -> int | None:
    """The batch size a set was started with (None: no set there yet)."""
    try:
        return int(json.loads((Path(out) / SETTINGS_FILE).read_text(encoding="utf-8"))["batch_size"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _set_meta(name: str, fold: int, dataset: Dataset, source: Source, settings: dict) -> DatasetMeta:
    views = list(dict.fromkeys(c.view for c in source.cases))
    return DatasetMeta(
        name=f"{name}-fold{fold}",
        labels=list(dataset.labels),
        groups={k: list(v) for k, v in dataset.meta.groups.items()},
        classification_views=views,
        description=f"{name} augmentation set of fold {fold}: diffusion-generated images "
        f"({settings['sampler']}, {settings['steps']} steps) for sampled inflammation vectors "
        f"on {source.kind} conditions",
        modality=dataset.meta.modality,
        extra={"augmentation": settings},
    )


def shard_ranges(n: int, shards: int, batch_size: int) -> list[tuple[int, int]]:
    """Split cases [0, n) into at most ``shards`` ranges aligned to ``batch_size``."""
    batches = -(-n // batch_size)
    per = -(-batches // max(1, shards))
    return [(a * batch_size, min(n, (a + per) * batch_size)) for a in range(0, batches, per)]


def shard_dir(out: Path, start: int, stop: int) -> Path:
    return Path(out) / SHARDS / f"{start:06d}-{stop:06d}"


def make_augmentation_set(
    out: Path,
    n: int,
    *,
    dataset: Dataset,
    source: Source,
    model_dir: Path,
    fold: int,
    name: str,
    perlin: bool,
    config: Config,
    progress: bool = True,
    shard: tuple[int, int] | None = None,
    batch_size: int | None = None,
) -> Path:
    """Write (or resume, or grow) an augmentation set of ``n`` synthetic images; return its folder.

    Args:
        out: the set folder (``RUN/fold_K/augment/<name>`` in a run).
        dataset: the run dataset (labels, groups, modality of the set).
        source: the condition source (:func:`~jointaug.sets.sources.mp_source` of the
            fold's train patients, or :func:`~jointaug.sets.sources.natural_source`).
        model_dir: the fold's trained diffusion model folder.
        fold, name: the set's coordinates (they seed every case).
        perlin: vary the inflamed joint regions with Perlin noise (``config.perlin``).
        config: diffusion sampler, inflammation sampler, perlin settings; device.
        shard: write only cases ``[start, stop)`` into a shard folder (module docstring).
        batch_size: the sampling batch of a new set (the shards of one set must agree;
            default ``diffusion.sample_batch_size``, sized to the GPU when ``auto``); a set
            keeps the batch it was started with.
    """
    if n < 1:
        raise ValueError(f"augmentation set size must be >= 1, got {n}")
    out = Path(out)
    model = load_trained(model_dir, resolve_device(config.device), config.diffusion)
    cfg = model.cfg
    # a set keeps the batch it was started with (contents differ across batch sizes only
    # by float rounding, but a set should not mix); else the given / configured / auto one
    b = recorded_batch(out) or batch_size or sample_batch_size(cfg, model.net, model.device)
    settings = set_settings(name=name, fold=fold, source_kind=source.kind, perlin=perlin,
                            source_root=source.dataset.root, model=model_record(model_dir),
                            config=config, batch_size=b)  # fmt: skip
    _record_settings(out, settings)
    complete = read_dataset(out).cases if is_complete(out) else []
    if len(complete) >= n:
        return out
    lo, hi = 0, n
    target = out
    if shard is not None:
        lo, hi = int(shard[0]), min(int(shard[1]), n)
        if lo % b:
            raise ValueError(f"shard start {lo} is not a multiple of the set's batch size {b}")
        target = shard_dir(out, lo, hi)
        if is_complete(target):
            return target
    meta = _set_meta(name, fold, dataset, source, settings)
    writer = DatasetWriter(target, meta, EXTRA_COLUMNS, append=True)
    done = writer.done_ids | ({c.case_id for c in complete} if shard is not None else set())
    perlin_cfg = config.perlin if perlin else None
    steps = settings["steps"]
    bar = progress_bar(hi - lo, sum(case_id(name, i) in done for i in range(lo, hi)),
                       f"augment {name} fold {fold}", "img", enabled=progress)
    try:
        for start in range(lo, hi, b):
            idx = range(start, min(start + b, hi))
            if all(case_id(name, i) in done for i in idx):
                continue
            plans = [plan_case(i, source, cfg.seed, fold, name, config.sampler, perlin_cfg) for i in idx]
            rates = generate_rates(model, [p.composed.condition for p in plans], [p.diffusion_seed for p in plans])
            for p, rate in zip(plans, rates, strict=True):
                cid = case_id(name, p.index)
                counts = poisson_counts(rate, p.poisson_rng)  # drawn even when done: keeps rngs aligned
                if cid in done:
                    continue
                src_case = p.source_case
                pid = src_case.patient_id if source.kind == "mp" else f"natural-{src_case.patient_id}"
                writer.add(
                    case_id=cid, patient_id=pid, view=src_case.view, image=counts,
                    labels=p.composed.labels, tissue=p.composed.condition, regions=p.regions,
                    extra={
                        "source_case": src_case.case_id, "sample_seed": str(p.diffusion_seed),
                        "perlin_tries": str(p.composed.total_tries),
                        "perlin_fallbacks": str(p.composed.n_fell_back), "sampler": cfg.sampler,
                        "steps": str(steps),
                    },
                    subdir=f"{p.index // CASES_PER_SUBDIR:03d}",
                )  # fmt: skip
                bar.update(1)
    except BaseException:
        writer.abort()
        raise
    finally:
        bar.close()
    ds = writer.close()
    if shard is None and len(ds.cases) < n:  # pragma: no cover - defensive
        raise DatasetError(f"{out}: wrote {len(ds.cases)} of {n} cases")
    return target


def merge_shards(out: Path, n: int, ranges: Sequence[tuple[int, int]], *, dataset: Dataset,
                 source: Source, fold: int, name: str) -> Path:  # fmt: skip
    """Move the finished shards' files into the set ``out``, then write its cases.csv and
    dataset.json (the completeness marker) last; remove the shard folders."""
    out = Path(out)
    complete = read_dataset(out).cases if is_complete(out) else []
    if len(complete) >= n:
        _remove_shards(out, len(complete))
        return out
    settings = json.loads((out / SETTINGS_FILE).read_text(encoding="utf-8"))
    cases = {c.case_id: c for c in complete}
    for lo, hi in ranges:
        if all(case_id(name, i) in cases for i in range(lo, min(hi, n))):
            continue  # already in the set (merged before)
        part = shard_dir(out, lo, min(hi, n))
        if not is_complete(part):
            raise DatasetError(f"{part}: shard [{lo}, {hi}) of {out} is not finished; run its task first")
        for c in read_dataset(part).cases:
            if c.case_id in cases:
                continue
            for rel in (c.image, c.tissue, c.regions):
                if rel:
                    (out / rel).parent.mkdir(parents=True, exist_ok=True)
                    os.replace(part / rel, out / rel)
            cases[c.case_id] = c
    want = [case_id(name, i) for i in range(n)]
    missing = [c for c in want if c not in cases]
    if missing:
        raise DatasetError(f"{out}: shards do not cover {len(missing)} cases, e.g. {missing[0]}")
    ordered = [cases[c] for c in sorted(cases)]
    meta = _set_meta(name, fold, dataset, source, settings)
    write_text_atomic(out / "cases.csv", cases_csv_text(ordered, meta.labels, EXTRA_COLUMNS))
    write_text_atomic(out / "dataset.json", json.dumps(meta.to_json(), indent=2) + "\n")
    (out / DatasetWriter.JOURNAL).unlink(missing_ok=True)
    _remove_shards(out, n)  # the merged (now emptied) shards; a larger growth's shards stay
    return out


def _remove_shards(out: Path, covered: int) -> None:
    """Remove the shard folders ``[lo, hi)`` with ``hi <= covered`` (their cases are in the
    set); shards of cases beyond it (a larger growth, interrupted) are finished work: kept."""
    root = Path(out) / SHARDS
    for part in sorted(root.glob("*-*")) if root.is_dir() else []:
        try:
            hi = int(part.name.split("-")[1])
        except (IndexError, ValueError):
            continue
        if hi <= covered:
            shutil.rmtree(part, ignore_errors=True)
    if root.is_dir() and not any(root.iterdir()):
        root.rmdir()
