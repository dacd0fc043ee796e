"""The ``oracle-plan`` set: the built-in phantom's own renderer on its own case plan.

For synthetic case ``i`` the plan is the diffusion sets' (:func:`jointaug.sets.
sources.plan_case` with the ``mp`` source, plan name ``oracle``): a train case of the
fold and a sampled inflammation vector. Instead of a diffusion model, the phantom renders
that vector on that patient's own anatomy (its hands, placement and counts level at
that visit) with fresh uptake blobs of the phantom's own shapes, a fresh soft-tissue
texture and Poisson noise -- the same imaging model that made the real images. Labels
are the sampled vector (inflamed = low or high), exactly as the rendered uptake says.

It bounds what any generator could give for sampled conditions of the phantom's own
kind. ``oracle`` (``sets/oracle.py``) is the bound for the ``mp-perlin`` conditions
themselves. This set was called ``oracle`` before; its plan name (the seeds of its
cases) is unchanged, its case ids are ``oracle-plan_<i>``.

Only the built-in phantom can be rendered (:func:`jointaug.sets.phantom_render.
phantom_params`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jointaug.config import Config
from jointaug.dataset.format import Dataset
from jointaug.sets.phantom_render import PatientCache, phantom_params, render_vector
from jointaug.sets.sources import CasePlanner, PlannedCase, mp_source
from jointaug.sets.writer import SetCase, SetSpec, check_size, set_meta, write_set

NAME = "oracle-plan"
PLAN_NAME = "oracle"  # the seeds of its cases: those of the set once called ``oracle``
EXTRA_COLUMNS = ["source_case", "render_seed"]


def _settings(dataset: Dataset, fold: int, config: Config, info: dict) -> dict:
    return {
        "fold": fold,
        "name": NAME,
        "kind": "oracle-plan",
        "plan_name": PLAN_NAME,
        "source": "mp",
        "perlin": False,
        "source_dataset": str(dataset.root.resolve()),
        "seed": config.diffusion.seed,
        "phantom": {k: info[k] for k in ("version", "patients", "size", "seed")},
        "inflammation_sampler": config.sampler.model_dump(),
    }


def _renderer(info: dict):
    """The oracle-plan kind's batch maker: each planned vector rendered by the phantom on the
    source case's patient at that visit (patient geometry cached)."""
    patient = PatientCache(info)

    def make_batch(plans: Sequence[PlannedCase]) -> list[SetCase]:
        out = []
        for p in plans:
            params, view = patient(p.source_case.case_id)
            rng = np.random.default_rng(p.diffusion_seed)
            mean, tissue = render_vector(params, view, p.composed.vector, rng)
            out.append(
                SetCase(
                    patient_id=p.source_case.patient_id,
                    view=view,
                    image=p.poisson_rng.poisson(mean).astype(np.int32),
                    labels=p.composed.labels,
                    tissue=tissue,
                    regions=p.regions,
                    extra={
                        "source_case": p.source_case.case_id,
                        "render_seed": str(p.diffusion_seed),
                    },
                )
            )
        return out

    return make_batch


def make_oracle_plan_set(
    out: str | Path,
    n: int,
    *,
    dataset: Dataset,
    train_patients: Sequence[str],
    fold: int,
    config: Config,
    progress: bool = True,
) -> Path:
    """Write (resume, grow) the oracle-plan set of ``n`` images at ``out``; return ``out``.

    Case ``i`` is a pure function of (``diffusion.seed``, fold, PLAN_NAME, i), so a set grown
    from 256 to 512 images holds the same first 256. A set made with other settings is
    never extended or removed (StaleOutputError; ``--retrain`` moves it aside).
    """
    check_size(n, "oracle-plan set")
    info = phantom_params(dataset)
    src = mp_source(dataset, tuple(train_patients))
    settings = _settings(dataset, fold, config, info)
    meta = set_meta(
        NAME,
        fold,
        list(dataset.labels),
        dataset.meta.groups,
        list(dict.fromkeys(c.view for c in src.cases)),
        f"oracle-plan set of fold {fold}: sampled inflammation vectors rendered by the "
        "built-in phantom's own imaging model on the fold's train patients' anatomy",
        dataset.meta.modality,
        settings,
    )
    spec = SetSpec(
        name=NAME,
        settings=settings,
        meta=meta,
        extra_columns=EXTRA_COLUMNS,
        planner=CasePlanner(src, config.diffusion.seed, fold, PLAN_NAME, config.sampler, None),
        what="oracle-plan set",
        desc=f"oracle-plan set fold {fold}",
    )
    return write_set(Path(out), n, spec, _renderer(info), progress=progress)
