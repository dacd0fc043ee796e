"""The ``oracle`` set: the built-in phantom's own renderer as a perfect generator.

For synthetic case ``i`` the plan is the diffusion sets' (:func:`jointaug.sets.
sources.plan_case` with the ``mp`` source, name ``oracle``): a train case of the fold
and a sampled inflammation vector. Instead of a diffusion model, the phantom renders
that vector on that patient's own anatomy (its hands, placement and counts level at
that visit) with fresh uptake blobs, a fresh soft-tissue texture and Poisson noise —
the same imaging model that made the real images. Labels are the sampled vector
(inflamed = low or high), exactly as the rendered uptake says.

It bounds what any generator could give for the same sampled conditions: a method
that gains less than ``oracle`` over the baseline leaves the gap to the generator; if
``oracle`` gains nothing, the classifier has no headroom to fill.

Only the built-in phantom can be rendered: a dataset whose ``dataset.json`` does not
record the phantom's parameters is refused with a clear message.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jointaug.config import Config
from jointaug.dataset.format import HAND_LABELS, Case, Dataset, DatasetError, DatasetMeta
from jointaug.dataset.phantom import (
    VERSION,
    PatientParams,
    follow_up_params,
    patient_params,
    render_view,
)
from jointaug.dataset.phantom_disease import sample_blobs, sample_disease, sample_state
from jointaug.sets.sources import CasePlanner, PlannedCase, mp_source
from jointaug.sets.writer import SetCase, SetSpec, check_size, write_set

NAME = "oracle"
EXTRA_COLUMNS = ["source_case", "render_seed"]
_CASE = re.compile(r"^p(\d{3,})(?:_v(\d+))?_(palmar|dorsal)$")


class OracleError(DatasetError):
    """The oracle cannot render this dataset (not the built-in phantom)."""


def phantom_params(dataset: Dataset) -> dict:
    """The phantom block of ``dataset.json`` (seed, size, patients); refuses other datasets."""
    info = dataset.meta.extra.get("phantom")
    if not isinstance(info, dict) or not {"seed", "size", "patients", "version"} <= set(info):
        raise OracleError(
            f"{dataset.root}: the oracle set renders the built-in phantom's own imaging model and "
            "works only on a dataset written by `jointaug phantom` (its dataset.json records "
            "'phantom' parameters); this dataset has none. Use a learned or the forward generator."
        )
    if int(info["version"]) != VERSION or list(dataset.labels) != list(HAND_LABELS):
        raise OracleError(
            f"{dataset.root}: phantom version {info['version']} / labels differ from this jointaug's "
            f"phantom v{VERSION}; rewrite the phantom to use the oracle"
        )
    return info


def visit_params(seed: int, index: int, size: int, visit: int) -> PatientParams:
    """Patient ``index``'s geometry and counts level at ``visit``, replaying the draws of
    :func:`jointaug.dataset.phantom.patient_truth` (no image rendered)."""
    ss_params = np.random.SeedSequence(seed, spawn_key=(index,)).spawn(3)[0]
    prng = np.random.default_rng(ss_params)
    params = patient_params(prng, size)
    disease = sample_disease(prng)
    state = None
    for v in range(1, visit + 1):
        if v > 1:
            params = follow_up_params(prng, params)
        state = sample_state(prng, disease, previous=state)
        sample_blobs(prng, state)
    return params


def case_visit(case: Case) -> tuple[int, int, str]:
    """(patient index, visit, view) of a phantom classification case id."""
    m = _CASE.match(case.case_id)
    if not m:
        raise OracleError(f"case {case.case_id!r} is not a phantom classification case id")
    return int(m.group(1)) - 1, int(m.group(2) or 1), m.group(3)


def render_case(
    params: PatientParams, view: str, vector: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free mean counts (H, W) and tissue map for a sampled vector (0/1/2 per label).

    Levels map to the phantom's states (1 low -> 2, 2 high -> 3); the dorsal view is the
    palmar activity mirrored, as in the phantom.
    """
    state = np.where(vector == 2, 3, np.where(vector == 1, 2, 0)).astype(np.int8)
    blobs = sample_blobs(rng, state)
    truth = render_view(params, blobs, "palmar", rng)
    if view == "dorsal":
        truth = truth.flipped()
    return truth.mean, truth.tissue


def _settings(dataset: Dataset, fold: int, config: Config, info: dict) -> dict:
    return {
        "fold": fold,
        "name": NAME,
        "kind": "oracle",
        "source": "mp",
        "perlin": False,
        "source_dataset": str(dataset.root.resolve()),
        "seed": config.diffusion.seed,
        "phantom": {k: info[k] for k in ("version", "patients", "size", "seed")},
        "inflammation_sampler": config.sampler.model_dump(),
    }


def _renderer(info: dict):
    """The oracle kind's batch maker: each planned vector rendered by the phantom on the
    source case's patient at that visit (patient geometry cached)."""
    seed, size = int(info["seed"]), int(info["size"])
    params_cache: dict[tuple[int, int], PatientParams] = {}

    def make_batch(plans: Sequence[PlannedCase]) -> list[SetCase]:
        out = []
        for p in plans:
            index, visit, view = case_visit(p.source_case)
            if (index, visit) not in params_cache:
                params_cache[(index, visit)] = visit_params(seed, index, size, visit)
            rng = np.random.default_rng(p.diffusion_seed)
            mean, tissue = render_case(params_cache[(index, visit)], view, p.composed.vector, rng)
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


def make_oracle_set(
    out: str | Path,
    n: int,
    *,
    dataset: Dataset,
    train_patients: Sequence[str],
    fold: int,
    config: Config,
    progress: bool = True,
) -> Path:
    """Write (resume, grow) the oracle set of ``n`` images at ``out``; return ``out``.

    Case ``i`` is a pure function of (``diffusion.seed``, fold, "oracle", i), so a set grown
    from 256 to 512 images holds the same first 256. A set made with other settings is
    never extended or removed (StaleOutputError; ``--retrain`` moves it aside).
    """
    check_size(n, "oracle set")
    info = phantom_params(dataset)
    src = mp_source(dataset, tuple(train_patients))
    settings = _settings(dataset, fold, config, info)
    meta = DatasetMeta(
        name=f"{NAME}-fold{fold}",
        labels=list(dataset.labels),
        groups={k: list(v) for k, v in dataset.meta.groups.items()},
        classification_views=list(dict.fromkeys(c.view for c in src.cases)),
        description=f"oracle set of fold {fold}: sampled inflammation vectors rendered by the "
        "built-in phantom's own imaging model on the fold's train patients' anatomy",
        modality=dataset.meta.modality,
        extra={"augmentation": settings},
    )
    spec = SetSpec(
        name=NAME,
        settings=settings,
        meta=meta,
        extra_columns=EXTRA_COLUMNS,
        planner=CasePlanner(src, config.diffusion.seed, fold, NAME, config.sampler, None),
        what="oracle set",
        desc=f"oracle set fold {fold}",
    )
    return write_set(Path(out), n, spec, _renderer(info), progress=progress)
