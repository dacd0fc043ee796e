"""The ``shuffled`` control set: the ``mp-perlin`` images with their labels permuted.

Case ``i`` is image ``i`` of the fold's ``mp-perlin`` set with the label vector of
``mp-perlin`` case ``perm[i]``, ``perm`` a seeded permutation of the set's ``N`` cases
(``SeedSequence([diffusion.seed, fold, crc32("shuffled"), N])``). The set holds the same
images and the same multiset of label vectors as ``mp-perlin``'s first ``N``, with the
link between them broken: what more images at ``mp-perlin``'s label prevalence give
without label information. Its condition (tissue) and region maps are left out: they
would contradict the permuted labels.

``N`` is recorded (``permuted_over``): a set is made once at the largest size the plan
needs, a smaller request takes its first cases (a random draw of its label multiset); a
larger one cannot append without changing the permutation, so it is refused as stale
(``--retrain`` moves the old set aside). It also records ``mp-perlin``'s settings, so a
remade ``mp-perlin`` makes it stale too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jointaug.config import Config
from jointaug.dataset.format import Dataset, DatasetMeta
from jointaug.keys import case_seed
from jointaug.sets.sources import SetCasePlan, set_cases
from jointaug.sets.writer import SETTINGS_FILE, SetCase, SetSpec, check_size, set_meta, write_set

NAME = "shuffled"
IMAGES = "mp-perlin"  # the set whose images (and label multiset) are used
EXTRA_COLUMNS = ["image_case", "label_case"]


def label_permutation(seed: int, fold: int, size: int) -> np.ndarray:
    """The permutation of ``size`` cases: case ``i`` takes the labels of case ``perm[i]``."""
    return np.random.default_rng(case_seed(seed, fold, NAME, size)).permutation(size)


def _recorded_size(out: Path) -> int:
    try:
        return int(json.loads((out / SETTINGS_FILE).read_text(encoding="utf-8"))["permuted_over"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _meta(src: Dataset, dataset: Dataset, fold: int, settings: dict) -> DatasetMeta:
    return set_meta(
        NAME,
        fold,
        list(src.labels),
        src.meta.groups,
        list(src.meta.classification_views),
        f"shuffled control of fold {fold}: the first {settings['permuted_over']} "
        f"{IMAGES} images with their label vectors permuted across images (seeded)",
        dataset.meta.modality,
        settings,
    )


def make_shuffled_set(
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
    """Write (or resume) the shuffled set of ``n`` images at ``out``; return ``out``.

    ``sets[IMAGES]``: the fold's finished ``mp-perlin`` set (at least ``n`` cases).
    ``train_patients``: unused (the images are ``mp-perlin``'s).
    """
    check_size(n, "shuffled set")
    out = Path(out)
    size = max(int(n), _recorded_size(out))
    src, cases = set_cases(sets[IMAGES], IMAGES, size, "shuffled set")
    recorded = {
        k: v for k, v in src.meta.extra.get("augmentation", {}).items() if k != "batch_size"
    }
    settings = {
        "fold": fold,
        "name": NAME,
        "kind": "shuffled",
        "seed": config.diffusion.seed,
        "permuted_over": size,
        "images": recorded,
    }
    perm = label_permutation(config.diffusion.seed, fold, size)

    def make_batch(plans: Sequence[SetCasePlan]) -> list[SetCase]:
        return [
            SetCase(
                patient_id=p.case.patient_id,
                view=p.case.view,
                image=src.image(p.case),
                labels=cases[perm[p.index]].labels,
                tissue=None,
                regions=None,
                extra={"image_case": p.case.case_id, "label_case": cases[perm[p.index]].case_id},
            )
            for p in plans
        ]

    spec = SetSpec(
        name=NAME,
        settings=settings,
        meta=_meta(src, dataset, fold, settings),
        extra_columns=EXTRA_COLUMNS,
        planner=lambda i: SetCasePlan(i, cases[i]),
        what="shuffled set",
        desc=f"shuffled set fold {fold}",
    )
    return write_set(out, n, spec, make_batch, progress=progress)
