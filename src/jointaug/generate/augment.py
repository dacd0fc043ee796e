"""Augmentation sets (``jointaug augment``): N labelled synthetic images per fold.

``make_augmentation_set`` writes ``RUN/fold_K/augment/<name>`` (``mp``, ``mp-perlin``,
``11k``, ``11k-perlin``) as a contract-format dataset: per case a 16-bit count image, the
condition as its tissue map (0 bg, 1 normal, 2 low, 3 high), the source's region map,
the sampled label vector (binary) and provenance columns ``source_case, sample_seed,
perlin_tries, perlin_fallbacks, sampler, steps``.

Determinism and growth: case ``i`` is fixed by (diffusion.seed, fold, name, i) (see
:func:`jointaug.generate.sources.plan_case`), and cases are generated in batches aligned
to multiples of the set's batch size B (``diffusion.sample_batch_size``, or sized to the
GPU when ``auto``; recorded in ``augmentation.json`` and kept when the set grows; a batch
is always [k*B, (k+1)*B) cut at n), so a set that was interrupted, resumed, or grown
from 256 to 8192 holds the same images as one written in one go (bit-identical on the same device; the diffusion noise
is per case, so only float rounding could differ on another device). Sets grow by
appending and never shrink: asking for fewer cases than a complete set has returns it
unchanged (take its first n). The folder looks complete (``dataset.json``) only after
the last case; ``augmentation.json`` records the settings, and a set is never extended
with other settings (another model, sampler or source).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tqdm.auto import tqdm

from jointaug.config import Config
from jointaug.dataset.format import DatasetError, DatasetMeta, is_complete, read_dataset
from jointaug.dataset.io import write_text_atomic
from jointaug.dataset.writer import DatasetWriter
from jointaug.experiments.rundir import RunDir
from jointaug.generate.intensity import poisson_counts
from jointaug.generate.sample import sample_batch_size, sampler_steps
from jointaug.generate.sources import Source, augment_name, mp_source, natural_source, plan_case
from jointaug.generate.trained import generate_rates, load_trained
from jointaug.runtime import resolve_device

EXTRA_COLUMNS = ["source_case", "sample_seed", "perlin_tries", "perlin_fallbacks", "sampler", "steps"]
SETTINGS_FILE = "augmentation.json"
# settings keys added after sets were first written, with the value such sets were made with
LATER_KEYS = {"guidance_scale": 1.0, "upsample": "nearest"}
CASES_PER_SUBDIR = 1000


def case_id(name: str, index: int) -> str:
    return f"{name}_{index:06d}"


def _check_settings(out: Path, settings: dict) -> None:
    """Record the set's settings; a set made with other settings (another model, sampler,
    source or inflammation settings) is stale and is removed, to be made afresh."""
    path = out / SETTINGS_FILE
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        old = {**LATER_KEYS, **old}  # a set written before a key existed used its default
        if any(old.get(k) != settings[k] for k in settings if k != "batch_size"):
            shutil.rmtree(out)
    elif out.exists() and any(out.iterdir()):
        raise ValueError(f"{out}: exists but is not an augmentation set (no {SETTINGS_FILE}); move it away")
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(settings, indent=2) + "\n")


def _recorded_batch(out: Path) -> int | None:
    try:
        return int(json.loads((out / SETTINGS_FILE).read_text(encoding="utf-8"))["batch_size"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _model_key(folder: Path) -> str | None:
    try:
        return json.loads((folder / "done").read_text(encoding="utf-8")).get("key")
    except (OSError, ValueError, AttributeError):
        return None


def _source(run: RunDir, fold: int, source: str, natural_dir: str | Path | None) -> Source:
    if source == "mp":
        return mp_source(run.dataset, run.splits.fold(fold).train)
    if source == "natural":
        return natural_source(Path(natural_dir) if natural_dir else run.path / "natural_source", run.dataset.labels)
    raise ValueError(f"unknown augmentation source {source!r} (mp or natural)")


def make_augmentation_set(
    run: RunDir,
    fold: int,
    source: str,
    perlin: bool,
    n: int,
    natural_dir: str | Path | None = None,
    progress: bool = True,
    config: Config | None = None,
) -> Path:
    """Write (or resume, or grow) an augmentation set of ``n`` synthetic images; return its folder.

    Args:
        run: the run folder; fold ``fold``'s diffusion model must be trained.
        source: ``mp`` (the fold's train cases) or ``natural`` (a natural source folder).
        perlin: vary the inflamed joint regions with Perlin noise (config ``perlin``).
        n: number of images wanted (>= 1).
        natural_dir: the natural source folder (default ``RUN/natural_source``).
        config: settings (default ``run.config``): diffusion sampler, sampler, perlin.
    """
    if n < 1:
        raise ValueError(f"augmentation set size must be >= 1, got {n}")
    config = config or run.config
    name = augment_name(source, perlin)
    out = run.augment_dir(fold, name)
    model = load_trained(run.diffusion_dir(fold), resolve_device(config.device), config.diffusion)
    src = _source(run, fold, source, natural_dir)
    cfg = model.cfg
    steps = sampler_steps(cfg)
    # a set keeps the batch it was started with (contents differ across batch sizes only
    # by float rounding, but a set should not mix); else the configured / auto-sized one
    b = _recorded_batch(out) or sample_batch_size(cfg, model.net, model.device)
    settings = {
        "fold": fold, "name": name, "source": source, "perlin": bool(perlin),
        "source_dataset": str(src.dataset.root.resolve()), "seed": cfg.seed,
        "model_step": model.info.get("step"), "model_train_cases": len(model.info.get("train_cases", [])),
        "model_key": _model_key(run.diffusion_dir(fold)),
        "sampler": cfg.sampler, "steps": steps, "batch_size": b,
        "guidance_scale": cfg.guidance_scale, "upsample": cfg.upsample,
        "inflammation_sampler": config.sampler.model_dump(),
        "perlin_config": config.perlin.model_dump() if perlin else None,
    }  # fmt: skip
    _check_settings(out, settings)
    if is_complete(out) and len(read_dataset(out).cases) >= n:
        return out
    views = [v for v in dict.fromkeys(c.view for c in src.cases)]
    meta = DatasetMeta(
        name=f"{name}-fold{fold}",
        labels=list(run.dataset.labels),
        groups={k: list(v) for k, v in run.dataset.meta.groups.items()},
        classification_views=views,
        description=f"{name} augmentation set of fold {fold}: diffusion-generated images "
        f"({cfg.sampler}, {steps} steps) for sampled inflammation vectors on {source} conditions",
        modality=run.dataset.meta.modality,
        extra={"augmentation": settings},
    )
    writer = DatasetWriter(out, meta, EXTRA_COLUMNS, append=True)
    done = writer.done_ids
    perlin_cfg = config.perlin if perlin else None
    bar = tqdm(total=n, initial=sum(case_id(name, i) in done for i in range(n)), disable=not progress,
               desc=f"augment {name} fold {fold}", unit="img", dynamic_ncols=True)  # fmt: skip
    try:
        for start in range(0, n, b):
            idx = range(start, min(start + b, n))
            if all(case_id(name, i) in done for i in idx):
                continue
            plans = [plan_case(i, src, cfg.seed, fold, name, config.sampler, perlin_cfg) for i in idx]
            rates = generate_rates(model, [p.composed.condition for p in plans], [p.diffusion_seed for p in plans])
            for p, rate in zip(plans, rates, strict=True):
                cid = case_id(name, p.index)
                counts = poisson_counts(rate, p.poisson_rng)  # drawn even when done: keeps rngs aligned
                if cid in done:
                    continue
                src_case = p.source_case
                pid = src_case.patient_id if source == "mp" else f"natural-{src_case.patient_id}"
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
    if len(ds.cases) < n:  # pragma: no cover - defensive
        raise DatasetError(f"{out}: wrote {len(ds.cases)} of {n} cases")
    return out
