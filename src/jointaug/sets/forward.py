"""The ``forward`` control set: the same sampled conditions as ``mp`` / ``mp-perlin``,
rendered by a non-learned imaging model (:mod:`jointaug.sets.forward_model`)
fitted on the fold's train part instead of the diffusion model.

:func:`make_forward_set` has the set-generator signature shared by every set kind
(``make_<kind>_set(out, n, *, dataset, train_patients, fold, config, progress)``) and
writes one contract-format folder through the set writer (:mod:`jointaug.sets.writer`):
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

from jointaug.config import Config
from jointaug.dataset.format import Dataset, DatasetError
from jointaug.diffusion.intensity import poisson_counts
from jointaug.diffusion.trainset import fold_train_cases
from jointaug.keys import perlin_settings
from jointaug.sets.forward_model import ForwardModel, fit_forward_model, render_rate
from jointaug.sets.sources import CasePlanner, PlannedCase, mp_source
from jointaug.sets.writer import SetCase, SetSpec, check_size, set_meta, write_set

EXTRA_COLUMNS = ["source_case", "perlin_tries", "perlin_fallbacks", "generator"]
NAMES = {False: "forward", True: "forward-perlin"}
PLAN_NAMES = {False: "mp", True: "mp-perlin"}  # the diffusion sets whose conditions are reused


def fit_for_fold(dataset: Dataset, train_patients: Sequence[str]) -> ForwardModel:
    """The imaging model fitted on the fold's train cases that have a tissue map (any view)."""
    cases = fold_train_cases(dataset, train_patients)
    if not cases:
        raise DatasetError(
            f"{dataset.root}: the fold's train patients have no case with a tissue map"
        )
    images = [dataset.image(c) for c in cases]
    tissues = [dataset.tissue(c) for c in cases]
    return fit_forward_model(images, tissues, [c.case_id for c in cases])


def _settings(
    dataset: Dataset, fold: int, config: Config, model: ForwardModel, perlin: bool
) -> dict:
    return {
        "kind": "forward",
        "fold": fold,
        "name": NAMES[perlin],
        "plan_name": PLAN_NAMES[perlin],
        "source": "mp",
        "perlin": perlin,
        "source_dataset": str(dataset.root.resolve()),
        "seed": config.diffusion.seed,
        "train_cases": sorted(model.per_image),
        "forward_model": {
            "sigma_px": model.sigma_px,
            "low_ratio": model.low_ratio,
            "high_ratio": model.high_ratio,
        },
        "inflammation_sampler": config.sampler.model_dump(),
        "perlin_config": perlin_settings(config.perlin if perlin else None),
    }


def _render(model: ForwardModel):
    """The forward kind's batch maker: each condition rendered by the fitted model."""

    def make_batch(plans: Sequence[PlannedCase]) -> list[SetCase]:
        out = []
        for p in plans:
            rate = render_rate(
                p.composed.condition, model.rates_for(p.source_case.case_id), model.sigma_px
            )
            out.append(
                SetCase(
                    patient_id=p.source_case.patient_id,
                    view=p.source_case.view,
                    image=poisson_counts(rate, p.poisson_rng),
                    labels=p.composed.labels,
                    tissue=p.composed.condition,
                    regions=p.regions,
                    extra={
                        "source_case": p.source_case.case_id,
                        "perlin_tries": str(p.composed.total_tries),
                        "perlin_fallbacks": str(p.composed.n_fell_back),
                        "generator": "forward",
                    },
                )
            )
        return out

    return make_batch


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
    check_size(n, "forward set")
    perlin = bool(perlin)
    name = NAMES[perlin]
    src = mp_source(dataset, tuple(train_patients))
    model = fit_for_fold(dataset, train_patients)
    settings = _settings(dataset, fold, config, model, perlin)
    meta = set_meta(
        name,
        fold,
        list(dataset.labels),
        dataset.meta.groups,
        list(dict.fromkeys(c.view for c in src.cases)),
        f"{name} control set of fold {fold}: sampled inflammation conditions rendered by "
        f"a fitted imaging model (blur sigma {model.sigma_px:.2f} px, per-class rates, Poisson noise)",
        dataset.meta.modality,
        settings,
    )
    planner = CasePlanner(
        src,
        config.diffusion.seed,
        fold,
        PLAN_NAMES[perlin],
        config.sampler,
        config.perlin if perlin else None,
    )
    spec = SetSpec(
        name=name,
        settings=settings,
        meta=meta,
        extra_columns=EXTRA_COLUMNS,
        planner=planner,
        what="forward set",
        desc=f"{name} fold {fold}",
    )
    return write_set(Path(out), n, spec, _render(model), progress=progress)
