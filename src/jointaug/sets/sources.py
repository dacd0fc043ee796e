"""Condition sources for augmentation and the per-case plan (numpy only).

A source is any contract-format dataset whose cases have both a tissue map (the hand:
``tissue > 0``) and a region map (one region per label):

- ``mp``: the run dataset's cases of the fold's TRAIN patients with both maps, in the
  dataset's classification views (synthetic images are classifier training images;
  the paper augments "the train dataset").
- ``natural``: every case with both maps of a natural-image source folder (hand photos
  turned into hand masks and joint regions); labels in its ``dataset.json`` key
  ``never_inflame`` (the paper: the wrists) are never inflamed.

:func:`plan_case` decides everything about synthetic case ``i`` from
``SeedSequence([seed, fold, crc32(name), i])`` alone: the source case, the inflammation
vector, the (Perlin-varied) condition, the diffusion seed and the Poisson rng. So a set
can be resumed or grown and case ``i`` is always the same case.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from jointaug.config import PerlinConfig, SamplerConfig
from jointaug.dataset.format import Case, Dataset, DatasetError, is_complete, read_dataset
from jointaug.keys import case_seed
from jointaug.masks.compose import Composed, compose_condition
from jointaug.masks.sampler import exclusion_mask, groups_from_meta, sample_with_config


@dataclass
class Source:
    """Condition source: ``cases`` of ``dataset`` with both maps; ``exclude`` (L,) bool."""

    kind: str
    dataset: Dataset
    cases: list[Case]
    exclude: np.ndarray
    _maps: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    def maps(self, case: Case) -> tuple[np.ndarray, np.ndarray]:
        """(tissue, regions) uint8 maps of a source case (cached); checked for shape."""
        if case.case_id not in self._maps:
            tissue = self.dataset.tissue(case)
            regions = self.dataset.regions(case)
            assert tissue is not None and regions is not None
            if tissue.shape != regions.shape:
                raise DatasetError(
                    f"{self.dataset.root}: case {case.case_id!r}: tissue map {tissue.shape} and "
                    f"region map {regions.shape} differ in shape"
                )
            if regions.max() > len(self.dataset.labels):
                raise DatasetError(
                    f"{self.dataset.root}: case {case.case_id!r}: region map {case.regions} has "
                    f"value {int(regions.max())} but there are {len(self.dataset.labels)} labels"
                )
            self._maps[case.case_id] = (tissue, regions)
        return self._maps[case.case_id]


def mp_source(dataset: Dataset, train_patients: tuple[str, ...]) -> Source:
    """The fold's train cases with tissue and region maps, classification views only."""
    keep, views = set(train_patients), set(dataset.meta.classification_views)
    cases = [
        c
        for c in dataset.cases
        if c.patient_id in keep and c.tissue and c.regions and c.view in views
    ]
    if not cases:
        raise DatasetError(
            f"{dataset.root}: no train case of this fold has both a tissue map and a region map in "
            f"the classification views {sorted(views)}; the mp source needs them"
        )
    return Source("mp", dataset, cases, np.zeros(len(dataset.labels), dtype=bool))


def natural_source(folder: str | Path, labels: list[str]) -> Source:
    """All cases with both maps of a natural source folder; its labels must be ``labels``."""
    folder = Path(folder)
    if not is_complete(folder):
        raise FileNotFoundError(
            f"{folder}: no complete natural source dataset here; make it first "
            "(jointaug natural ...) or pass --natural DIR"
        )
    ds = read_dataset(folder)
    if list(ds.labels) != list(labels):
        raise DatasetError(
            f"{folder}: its labels differ from the run dataset's; they must be the same list"
        )
    cases = [c for c in ds.cases if c.tissue and c.regions]
    if not cases:
        raise DatasetError(f"{folder}: no case has both a tissue (hand) map and a region map")
    never = ds.meta.extra.get("never_inflame", [])
    if not isinstance(never, list):
        raise DatasetError(
            f"{folder / 'dataset.json'}: 'never_inflame' must be a list of label names"
        )
    try:
        exclude = exclusion_mask(ds.labels, [str(x) for x in never])
    except ValueError as exc:
        raise DatasetError(f"{folder / 'dataset.json'}: never_inflame: {exc}") from exc
    return Source("natural", ds, cases, exclude)


@dataclass
class PlannedCase:
    """Everything random about synthetic case ``index`` except the diffusion network."""

    index: int
    source_case: Case
    composed: Composed
    regions: np.ndarray
    diffusion_seed: int
    poisson_rng: np.random.Generator


def _case_and_vector(
    rng: np.random.Generator, source: Source, sampler: SamplerConfig
) -> tuple[Case, np.ndarray]:
    """The first draws of a case plan: its source case, then its inflammation vector."""
    case = source.cases[int(rng.integers(len(source.cases)))]
    groups = groups_from_meta(source.dataset.meta)
    vector = sample_with_config(
        groups, len(source.dataset.labels), rng, sampler, exclude=source.exclude
    )
    return case, vector


def planned_labels(
    n: int, source: Source, seed: int, fold: int, name: str, sampler: SamplerConfig
) -> np.ndarray:
    """(n, L) float32 labels of cases ``[0, n)`` of set ``name`` as :func:`plan_case` plans
    them (``vector > 0``), without composing a condition: the labels of a set's first
    ``n`` cases, whether or not the set has been made."""
    out = np.zeros((n, len(source.dataset.labels)), np.float32)
    for i in range(n):
        rng = np.random.default_rng(case_seed(seed, fold, name, i).spawn(3)[0])
        out[i] = _case_and_vector(rng, source, sampler)[1] > 0
    return out


def plan_case(
    index: int,
    source: Source,
    seed: int,
    fold: int,
    name: str,
    sampler: SamplerConfig,
    perlin: PerlinConfig | None,
) -> PlannedCase:
    """Plan synthetic case ``index``: source case, vector, condition, seeds (deterministic)."""
    cond_ss, poisson_ss, diffusion_ss = case_seed(seed, fold, name, index).spawn(3)
    rng = np.random.default_rng(cond_ss)
    case, vector = _case_and_vector(rng, source, sampler)
    tissue, regions = source.maps(case)
    composed = compose_condition(tissue, regions, vector, rng, perlin)
    diffusion_seed = int(diffusion_ss.generate_state(1, np.uint64)[0] >> np.uint64(1))
    return PlannedCase(
        index, case, composed, regions, diffusion_seed, np.random.default_rng(poisson_ss)
    )


@dataclass(frozen=True)
class CasePlanner:
    """:func:`plan_case` with everything but the index fixed: the plan of a set's case ``i``."""

    source: Source
    seed: int
    fold: int
    name: str  # the plan name (``forward`` reuses the ``mp`` / ``mp-perlin`` plans)
    sampler: SamplerConfig
    perlin: PerlinConfig | None = None

    def __call__(self, index: int) -> PlannedCase:
        return plan_case(
            index, self.source, self.seed, self.fold, self.name, self.sampler, self.perlin
        )


@dataclass(frozen=True)
class SetCasePlan:
    """The plan of a case of a set made from another set: case ``index`` of that set."""

    index: int
    case: Case


def set_cases(folder: str | Path, name: str, n: int, what: str) -> tuple[Dataset, list[Case]]:
    """Cases ``name_000000`` .. of the finished set ``folder`` (the first ``n``, by index)
    that set ``what`` is made from; a missing, unfinished or too small set: an error that
    says to make it first."""
    folder = Path(folder)
    if not is_complete(folder):
        raise DatasetError(
            f"{folder}: the {what} is made from the {name!r} set, which is missing or unfinished; "
            f"make it first (jointaug run plans it before the {what})"
        )
    ds = read_dataset(folder)
    by_id = {c.case_id: c for c in ds.cases}
    ids = [f"{name}_{i:06d}" for i in range(n)]
    missing = [c for c in ids if c not in by_id]
    if missing:
        raise DatasetError(
            f"{folder}: the {what} needs the first {n} cases of {name!r}; it has "
            f"{len(ds.cases)} (missing e.g. {missing[0]}); grow {name!r} first"
        )
    return ds, [by_id[c] for c in ids]
