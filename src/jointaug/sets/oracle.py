"""The ``oracle`` set: the built-in phantom renders EXACTLY the ``mp-perlin`` set's conditions.

Case ``i`` reads case ``i`` of the fold's ``mp-perlin`` set (its folder: the condition
map stored as its tissue map, its region map, label vector, view and source case) and
renders that condition with the phantom's own imaging model on the source case's patient
at that visit (:func:`jointaug.sets.phantom_render.render_condition`): uptake exactly
where the condition paints low / high (Perlin-varied regions included), the phantom's
mild uptake elsewhere, a fresh texture and Poisson noise. Labels, condition (tissue
map), regions, view and patient are ``mp-perlin``'s, case by case.

So ``oracle`` is what a perfect generator of the ``mp-perlin`` conditions would give:
``mp-perlin`` gaining less than ``oracle`` over the baseline leaves the gap to the
generator, and ``oracle`` gaining nothing means those conditions carry no headroom.
The set depends on ``mp-perlin`` (the plan makes it first, at least as large); it
records the settings that fix the conditions (seed, sampler, Perlin rule, source), not
the diffusion model's, which only changes the ``mp-perlin`` images. Built-in phantom
only (``oracle-plan``, ``sets/oracle_plan.py``, renders the phantom's own plan instead).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jointaug.config import Config
from jointaug.dataset.format import Dataset
from jointaug.keys import case_seed
from jointaug.sets.phantom_render import PatientCache, phantom_params, render_condition
from jointaug.sets.sources import SetCasePlan, set_cases
from jointaug.sets.writer import SetCase, SetSpec, check_size, set_meta, write_set

NAME = "oracle"
CONDITIONS = "mp-perlin"  # the set whose conditions are rendered
EXTRA_COLUMNS = ["source_case", "condition_case"]
# the settings of the mp-perlin set that fix its conditions (not its images)
CONDITION_KEYS = ("name", "fold", "seed", "source", "source_dataset", "perlin")
CONDITION_KEYS += ("inflammation_sampler", "perlin_config")


def _settings(dataset: Dataset, fold: int, config: Config, info: dict, cond: Dataset) -> dict:
    recorded = cond.meta.extra.get("augmentation", {})
    return {
        "fold": fold,
        "name": NAME,
        "kind": "oracle",
        "source_dataset": str(dataset.root.resolve()),
        "seed": config.diffusion.seed,
        "phantom": {k: info[k] for k in ("version", "patients", "size", "seed")},
        "conditions": {k: recorded.get(k) for k in CONDITION_KEYS},
    }


def _renderer(info: dict, cond: Dataset, seed: int, fold: int):
    """The oracle kind's batch maker: each mp-perlin case's condition rendered by the
    phantom on its source case's patient at that visit."""
    patient = PatientCache(info)

    def make_batch(plans: Sequence[SetCasePlan]) -> list[SetCase]:
        out = []
        for p in plans:
            c = p.case
            params, view = patient(c.extra["source_case"])
            condition, regions = cond.tissue(c), cond.regions(c)
            render_ss, poisson_ss = case_seed(seed, fold, NAME, p.index).spawn(2)
            mean = render_condition(
                params, view, condition, regions, np.random.default_rng(render_ss)
            )
            counts = np.random.default_rng(poisson_ss).poisson(mean).astype(np.int32)
            out.append(
                SetCase(
                    patient_id=c.patient_id,
                    view=c.view,
                    image=counts,
                    labels=c.labels,
                    tissue=condition,
                    regions=regions,
                    extra={"source_case": c.extra["source_case"], "condition_case": c.case_id},
                )
            )
        return out

    return make_batch


def make_oracle_set(
    out: str | Path,
    n: int,
    *,
    dataset: Dataset,
    train_patients: Sequence[str],
    fold: int,
    config: Config,
    sets: dict[str, Path],
    progress: bool = True,
) -> Path:
    """Write (resume, grow) the oracle set of ``n`` images at ``out``; return ``out``.

    ``sets[CONDITIONS]``: the fold's finished ``mp-perlin`` set with at least ``n`` cases.
    Case ``i`` is a pure function of mp-perlin case ``i`` and (``diffusion.seed``, fold,
    "oracle", i), so the set grows by appending. ``train_patients``: unused (the
    conditions name their train cases).
    """
    check_size(n, "oracle set")
    info = phantom_params(dataset)
    cond, cases = set_cases(sets[CONDITIONS], CONDITIONS, n, "oracle set")
    settings = _settings(dataset, fold, config, info, cond)
    meta = set_meta(
        NAME,
        fold,
        list(cond.labels),
        dataset.meta.groups,
        list(cond.meta.classification_views),
        f"oracle set of fold {fold}: the {CONDITIONS} set's conditions, case by case, "
        "rendered by the built-in phantom's own imaging model on the source patients' anatomy",
        dataset.meta.modality,
        settings,
    )
    spec = SetSpec(
        name=NAME,
        settings=settings,
        meta=meta,
        extra_columns=EXTRA_COLUMNS,
        planner=lambda i: SetCasePlan(i, cases[i]),
        what="oracle set",
        desc=f"oracle set fold {fold}",
    )
    make_batch = _renderer(info, cond, config.diffusion.seed, fold)
    return write_set(Path(out), n, spec, make_batch, progress=progress)
