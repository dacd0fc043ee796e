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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from jointaug.config import Config
from jointaug.dataset.format import Dataset, DatasetMeta
from jointaug.diffusion.intensity import poisson_counts
from jointaug.diffusion.sample import sample_batch_size, sampler_steps
from jointaug.diffusion.trained import TrainedModel, generate_rates, load_trained
from jointaug.keys import perlin_settings
from jointaug.outputs import StaleOutput, read_done
from jointaug.runtime import resolve_device
from jointaug.sets import writer
from jointaug.sets.sources import CasePlanner, PlannedCase, Source
from jointaug.sets.writer import SetCase, SetSpec, recorded_batch, set_meta, shard_ranges

EXTRA_COLUMNS = [
    "source_case",
    "sample_seed",
    "perlin_tries",
    "perlin_fallbacks",
    "sampler",
    "steps",
]
# settings keys added after sets were first written, with the value such sets were made with
LATER_KEYS = {"guidance_scale": 1.0, "upsample": "nearest"}
NOT_COMPARED = frozenset(
    {"batch_size"}
)  # batches are aligned, so the batch size does not change a case


AUTO_CAP = 1024  # sample_batch_size's cap
_AUTO = "auto<="


def auto_batch(cap: int) -> str:
    """The batch parameter of the shards of a set with ``sample_batch_size: auto``: the
    auto batch of the card the first shard runs on, at most ``cap``, recorded in
    ``augmentation.json`` before any case is written and used by every shard."""
    return f"{_AUTO}{int(cap)}"


def auto_batch_cap(batch_size: int | str | None) -> int | None:
    """``cap`` of :func:`auto_batch`; None for a number (or None)."""
    if isinstance(batch_size, str) and batch_size.startswith(_AUTO):
        return int(batch_size[len(_AUTO) :])
    return None


def shard_alignment(n: int, shards: int, cap: int = AUTO_CAP) -> int:
    """The power of two the shards of a set of ``n`` with an auto batch are aligned to:
    the largest one <= ``cap`` that still gives ``shards`` shards. Auto batches are
    powers of two, so the batch ``min(auto, alignment)`` divides every shard start."""
    per = max(1, -(-n // max(1, shards)))
    g = min(cap, 1 << (per.bit_length() - 1))
    while g > 1 and len(shard_ranges(n, shards, g)) < min(shards, n):
        g //= 2
    return g


@dataclass(frozen=True)
class DiffusionSet:
    """Which diffusion set: its coordinates (they seed every case) and its inputs."""

    name: str  # mp, mp-perlin, 11k, 11k-perlin (``sets/registry.py``)
    fold: int
    source: Source  # mp_source of the fold's train patients, or natural_source
    perlin: bool  # vary the inflamed joint regions with Perlin noise (``config.perlin``)
    model_dir: Path  # the fold's trained diffusion model folder


def model_record(model_dir: Path) -> dict:
    """What a set records of its diffusion model: steps, number of train cases, key."""
    done = read_done(model_dir) or {}
    try:
        info = json.loads((Path(model_dir) / "model.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        info = {}
    return {
        "step": info.get("step", done.get("step")),
        "train_cases": len(info.get("train_cases", [])),
        "key": done.get("key"),
    }


def set_settings(
    *,
    name: str,
    fold: int,
    source_kind: str,
    perlin: bool,
    source_root: Path,
    model: dict,
    config: Config,
    batch_size: int | str | None = None,
) -> dict:
    """The settings an augmentation set records (``augmentation.json``) and is compared by
    (all but ``batch_size``: batches are aligned, a case does not depend on it)."""
    cfg = config.diffusion
    return {
        "fold": fold,
        "name": name,
        "source": source_kind,
        "perlin": bool(perlin),
        "source_dataset": str(Path(source_root).resolve()),
        "seed": cfg.seed,
        "model_step": model.get("step"),
        "model_train_cases": model.get("train_cases"),
        "model_key": model.get("key"),
        "sampler": cfg.sampler,
        "steps": sampler_steps(cfg),
        "batch_size": cfg.sample_batch_size if batch_size is None else batch_size,
        "guidance_scale": cfg.guidance_scale,
        "upsample": cfg.upsample,
        "inflammation_sampler": config.sampler.model_dump(),
        "perlin_config": perlin_settings(config.perlin if perlin else None),
    }


def stale_set(out: Path, settings: dict) -> StaleOutput | None:
    """The set in ``out`` (finished or partly written) if made with other settings."""
    return writer.stale_set(out, settings, "augmentation set", LATER_KEYS, NOT_COMPARED)


def _set_meta(
    name: str, fold: int, dataset: Dataset, source: Source, settings: dict
) -> DatasetMeta:
    views = list(dict.fromkeys(c.view for c in source.cases))
    return set_meta(
        name,
        fold,
        list(dataset.labels),
        dataset.meta.groups,
        views,
        f"{name} augmentation set of fold {fold}: diffusion-generated images "
        f"({settings['sampler']}, {settings['steps']} steps) for sampled inflammation vectors "
        f"on {source.kind} conditions",
        dataset.meta.modality,
        settings,
    )


def _sampler(model: TrainedModel, source: Source, steps: int):
    """The diffusion kind's batch maker: the model's rates for the batch's conditions, then
    Poisson counts per case (drawn for every case of the batch: the rngs are per case)."""
    cfg = model.cfg

    def make_batch(plans: Sequence[PlannedCase]) -> list[SetCase]:
        rates = generate_rates(
            model, [p.composed.condition for p in plans], [p.diffusion_seed for p in plans]
        )
        out = []
        for p, rate in zip(plans, rates, strict=True):
            src = p.source_case
            out.append(
                SetCase(
                    patient_id=src.patient_id
                    if source.kind == "mp"
                    else f"natural-{src.patient_id}",
                    view=src.view,
                    image=poisson_counts(rate, p.poisson_rng),
                    labels=p.composed.labels,
                    tissue=p.composed.condition,
                    regions=p.regions,
                    extra={
                        "source_case": src.case_id,
                        "sample_seed": str(p.diffusion_seed),
                        "perlin_tries": str(p.composed.total_tries),
                        "perlin_fallbacks": str(p.composed.n_fell_back),
                        "sampler": cfg.sampler,
                        "steps": str(steps),
                    },
                )
            )
        return out

    return make_batch


def _set_batch(out: Path, batch_size: int | str | None, model: TrainedModel) -> int:
    """The set's recorded batch, else the given one, else the configured / auto one
    (at most the cap of :func:`auto_batch`)."""
    cap = auto_batch_cap(batch_size)
    b = recorded_batch(out) or (batch_size if cap is None else None)
    if not b:
        b = sample_batch_size(model.cfg, model.net, model.device)
    return int(b if cap is None else min(b, cap))


def _settings(
    out: Path, which: DiffusionSet, config: Config, model: TrainedModel, batch_size
) -> dict:
    """The set's settings at its batch (:func:`_set_batch`); the shards of a set with an
    auto batch record theirs first (the first to start decides: ``claim_settings``)."""

    def at(batch: int) -> dict:
        return set_settings(
            name=which.name,
            fold=which.fold,
            source_kind=which.source.kind,
            perlin=which.perlin,
            source_root=which.source.dataset.root,
            model=model_record(which.model_dir),
            config=config,
            batch_size=batch,
        )

    b = _set_batch(out, batch_size, model)
    if auto_batch_cap(batch_size) is not None and recorded_batch(out) is None:
        b = int(writer.claim_settings(out, at(b)).get("batch_size") or b)
    return at(b)


def make_augmentation_set(
    out: Path,
    n: int,
    which: DiffusionSet,
    *,
    dataset: Dataset,
    config: Config,
    progress: bool = True,
    shard: tuple[int, int] | None = None,
    batch_size: int | str | None = None,
) -> Path:
    """Write (or resume, or grow) an augmentation set of ``n`` synthetic images; return its folder.

    Args:
        out: the set folder (``RUN/fold_K/augment/<name>`` in a run).
        which: the set's name, fold, condition source, Perlin switch and model folder.
        dataset: the run dataset (labels, groups, modality of the set).
        config: diffusion sampler, inflammation sampler, perlin settings; device.
        shard: write only cases ``[start, stop)`` into a shard folder (module docstring).
        batch_size: the sampling batch of a new set (the shards of one set must agree;
            default ``diffusion.sample_batch_size``, sized to the GPU when ``auto``); a set
            keeps the batch it was started with. ``auto_batch(cap)`` (shards of a set
            with an auto batch): the auto batch at most ``cap`` (the power of two the
            shards are aligned to), recorded by the first shard to start and used by all.
    """
    writer.check_size(n)
    out = Path(out)
    model = load_trained(which.model_dir, resolve_device(config.device), config.diffusion)
    cfg = model.cfg
    # a set keeps the batch it was started with (contents differ across batch sizes only
    # by float rounding, but a set should not mix); else the given / configured / auto one
    settings = _settings(out, which, config, model, batch_size)
    b = int(settings["batch_size"])
    spec = SetSpec(
        name=which.name,
        settings=settings,
        extra_columns=EXTRA_COLUMNS,
        batch_size=b,
        meta=_set_meta(which.name, which.fold, dataset, which.source, settings),
        planner=CasePlanner(
            which.source,
            cfg.seed,
            which.fold,
            which.name,
            config.sampler,
            config.perlin if which.perlin else None,
        ),
        later_keys=LATER_KEYS,
        not_compared=NOT_COMPARED,
        desc=f"augment {which.name} fold {which.fold}",
    )
    make_batch = _sampler(model, which.source, settings["steps"])
    return writer.write_set(out, n, spec, make_batch, progress=progress, shard=shard)


def merge_shards(
    out: Path,
    n: int,
    ranges: Sequence[tuple[int, int]],
    *,
    dataset: Dataset,
    source: Source,
    fold: int,
    name: str,
) -> Path:
    """Move the finished shards' files into the set ``out``, then write its cases.csv and
    dataset.json (the completeness marker) last; remove the shard folders."""
    return writer.merge_shards(
        out,
        n,
        ranges,
        name=name,
        extra_columns=EXTRA_COLUMNS,
        meta_of=lambda settings: _set_meta(name, fold, dataset, source, settings),
    )
