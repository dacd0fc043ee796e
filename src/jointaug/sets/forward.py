"""The ``forward`` control set: the same sampled conditions as ``mp`` / ``mp-perlin``,
rendered by a non-learned imaging model (:mod:`jointaug.sets.forward_model`)
fitted on the fold's train part instead of the diffusion model.

:func:`make_forward_set` has the set-generator signature shared by every set kind
(``make_<kind>_set(out, n, *, dataset, train_patients, fold, config, progress)``) and
writes one contract-format folder like :func:`jointaug.sets.diffusion.make_augmentation_set`:
case ``i`` is planned by :func:`jointaug.sets.sources.plan_case` from
(diffusion.seed, fold, PLAN_NAME, i) with the plan name of the matching diffusion set
(``mp`` / ``mp-perlin``) -- so ``forward`` case i has exactly the source case,
inflammation vector, (Perlin) condition and labels of ``mp`` case i (a paired control);
it grows by appending and resumes,
and ``augmentation.json`` records the fitted model. Works on any dataset in the contract
whose train cases have tissue and region maps. No torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tqdm.auto import tqdm

from jointaug.config import Config
from jointaug.dataset.format import Dataset, DatasetError, DatasetMeta, is_complete, read_dataset
from jointaug.dataset.writer import DatasetWriter
from jointaug.diffusion.intensity import poisson_counts
from jointaug.diffusion.trainset import fold_train_cases
from jointaug.outputs import record_set_settings
from jointaug.sets.forward_model import ForwardModel, fit_forward_model, render_rate
from jointaug.sets.sources import mp_source, plan_case

SETTINGS_FILE = "augmentation.json"
EXTRA_COLUMNS = ["source_case", "perlin_tries", "perlin_fallbacks", "generator"]
CASES_PER_SUBDIR = 1000
NAMES = {False: "forward", True: "forward-perlin"}
PLAN_NAMES = {False: "mp", True: "mp-perlin"}  # the diffusion sets whose conditions are reused


def fit_for_fold(dataset: Dataset, train_patients: Sequence[str]) -> ForwardModel:
    """The imaging model fitted on the fold's train cases that have a tissue map (any view)."""
    cases = fold_train_cases(dataset, train_patients)
    if not cases:
        raise DatasetError(f"{dataset.root}: the fold's train patients have no case with a tissue map")
    images = [dataset.image(c) for c in cases]
    tissues = [dataset.tissue(c) for c in cases]
    return fit_forward_model(images, tissues, [c.case_id for c in cases])


def _prepare(out: Path, settings: dict) -> None:
    """A set with other settings is never extended or removed (StaleOutputError); record them."""
    record_set_settings(out, settings, "forward set", SETTINGS_FILE)


def make_forward_set(
    out: str | Path,
    n: int,
    *,
    dataset: Dataset,
    train_patients: Sequence[str],
    fold: int,
    config: Config,
    progress: bool = True,
    perlin: bool = False,
) -> Path:
    """Write (or resume, or grow) the ``forward`` (``perlin=True``: ``forward-perlin``)
    set of ``n`` images in ``out``; return ``out``.

    Args:
        out: the set folder (``RUN/fold_K/augment/forward``).
        n: images wanted (>= 1); a complete larger set is returned unchanged.
        dataset, train_patients, fold: the run dataset and the fold's train patients.
        config: ``diffusion.seed`` (case plans), ``sampler``, ``perlin``.
        perlin: vary the inflamed regions with Perlin noise (the mp-perlin conditions).
    """
    if n < 1:
        raise ValueError(f"set size must be >= 1, got {n}")
    out = Path(out)
    name = NAMES[bool(perlin)]
    src = mp_source(dataset, tuple(train_patients))
    model = fit_for_fold(dataset, train_patients)
    seed = config.diffusion.seed
    settings = {
        "kind": "forward", "fold": fold, "name": name, "plan_name": PLAN_NAMES[bool(perlin)],
        "source": "mp", "perlin": bool(perlin),
        "source_dataset": str(dataset.root.resolve()), "seed": seed,
        "train_cases": sorted(model.per_image),
        "forward_model": {"sigma_px": model.sigma_px, "low_ratio": model.low_ratio,
                          "high_ratio": model.high_ratio},
        "inflammation_sampler": config.sampler.model_dump(),
        "perlin_config": config.perlin.model_dump() if perlin else None,
    }  # fmt: skip
    _prepare(out, settings)
    if is_complete(out) and len(read_dataset(out).cases) >= n:
        return out
    meta = DatasetMeta(
        name=f"{name}-fold{fold}", labels=list(dataset.labels),
        groups={k: list(v) for k, v in dataset.meta.groups.items()},
        classification_views=list(dict.fromkeys(c.view for c in src.cases)),
        description=f"{name} control set of fold {fold}: sampled inflammation conditions rendered by "
        f"a fitted imaging model (blur sigma {model.sigma_px:.2f} px, per-class rates, Poisson noise)",
        modality=dataset.meta.modality, extra={"augmentation": settings},
    )  # fmt: skip
    writer = DatasetWriter(out, meta, EXTRA_COLUMNS, append=True)
    done = writer.done_ids
    perlin_cfg = config.perlin if perlin else None
    bar = tqdm(total=n, disable=not progress, desc=f"{name} fold {fold}", unit="img", dynamic_ncols=True)
    try:
        for i in range(n):
            cid = f"{name}_{i:06d}"
            if cid in done:
                bar.update(1)
                continue
            p = plan_case(i, src, seed, fold, PLAN_NAMES[bool(perlin)], config.sampler, perlin_cfg)
            rate = render_rate(p.composed.condition, model.rates_for(p.source_case.case_id), model.sigma_px)
            counts = poisson_counts(rate, p.poisson_rng)
            writer.add(
                case_id=cid, patient_id=p.source_case.patient_id, view=p.source_case.view, image=counts,
                labels=p.composed.labels, tissue=p.composed.condition, regions=p.regions,
                extra={"source_case": p.source_case.case_id, "perlin_tries": str(p.composed.total_tries),
                       "perlin_fallbacks": str(p.composed.n_fell_back), "generator": "forward"},
                subdir=f"{i // CASES_PER_SUBDIR:03d}",
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
