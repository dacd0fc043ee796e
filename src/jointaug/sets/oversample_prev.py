"""The ``oversample-prev`` control set: real train images duplicated towards a prevalence.

``oversample`` duplicates the fold's real train images evenly, so the added images have
the train part's positive-label prevalence (~12 % on the phantom); a synthetic set has its
sampler's (``mp-perlin``: ~25-30 %). ``oversample-prev`` duplicates real images so that
the added images have the synthetic set's prevalence: a gain of ``mp-perlin`` over it is
not explained by seeing more positives.

Algorithm (documented and tested):

1. target ``t``: the mean label of ``mp-perlin``'s first ``N`` cases, i.e. the positive
   prevalence of the fold's ``mp-perlin`` set of that size (its labels are a pure
   function of its case plan, :func:`jointaug.sets.sources.planned_labels`, so they
   are read without making the set), or a stated ``target_prevalence``;
2. each real train image ``j`` (labelled, classification views, ``k_j`` known
   positives of ``L`` labels) gets the weight ``w_j ~ exp(beta * k_j)``: increasing in
   its number of positives for ``beta > 0`` (decreasing for ``beta < 0``), uniform for
   ``beta = 0`` (plain oversampling in expectation);
3. ``beta`` is solved by bisection so the weighted mean prevalence
   ``sum_j w_j k_j / (L sum_j w_j)`` equals ``t`` (it increases with ``beta``); a target
   beyond what the train images can reach is clipped to the nearest reachable value;
4. case ``i`` is image ``j`` drawn with probability ``w_j`` from
   ``SeedSequence([diffusion.seed, fold, crc32("oversample-prev"), i])``: a pure function
   of ``i`` and the weights; the mean prevalence of ``n`` cases is ``t`` up to sampling
   noise (standard error ``sd(k_j / L) / sqrt(n)`` under the weights).

The weights depend on ``t``, which depends on ``N``: ``N`` is recorded
(``target_over``), the set is made once at the largest size a plan needs, smaller
requests take its first cases, a larger one is refused as stale (``--retrain``).
Images are copies of the real ones (with their maps), so the classifier reads them as
any set; the training augmentation makes each duplicate a different view.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jointaug.config import Config
from jointaug.dataset.format import Case, Dataset, DatasetError
from jointaug.keys import case_seed
from jointaug.sets.sources import SetCasePlan, mp_source, planned_labels
from jointaug.sets.writer import SETTINGS_FILE, SetCase, SetSpec, check_size, set_meta, write_set

NAME = "oversample-prev"
TARGET_SET = "mp-perlin"  # whose prevalence is matched (unless a target is stated)
EXTRA_COLUMNS = ["source_case"]


def prevalence_weights(
    positives: np.ndarray, n_labels: int, target: float
) -> tuple[np.ndarray, float]:
    """Weights ``w_j ~ exp(beta * k_j)`` (sum 1) whose weighted mean prevalence
    ``sum w_j k_j / L`` is ``target`` (clipped to the reachable range); returns
    (weights, beta)."""
    k = np.asarray(positives, np.float64)
    frac = k / max(n_labels, 1)
    target = float(np.clip(target, frac.min(), frac.max()))

    def weights(beta: float) -> np.ndarray:
        z = beta * (k - k.max())
        w = np.exp(z)
        return w / w.sum()

    lo, hi = -60.0, 60.0
    for _ in range(200):  # the weighted mean increases with beta: bisection
        mid = 0.5 * (lo + hi)
        if float(weights(mid) @ frac) < target:
            lo = mid
        else:
            hi = mid
    beta = 0.5 * (lo + hi)
    return weights(beta), beta


def _train_cases(dataset: Dataset, train_patients: Sequence[str]) -> list[Case]:
    cases = [c for c in dataset.classification_cases(train_patients) if c.is_labelled]
    if not cases:
        raise DatasetError(f"{dataset.root}: the fold has no labelled train images to duplicate")
    return cases


def _recorded_size(out: Path) -> int:
    try:
        return int(json.loads((out / SETTINGS_FILE).read_text(encoding="utf-8"))["target_over"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def target_prevalence(
    dataset: Dataset, train_patients: Sequence[str], fold: int, config: Config, size: int
) -> float:
    """The positive prevalence of the fold's ``mp-perlin`` set's first ``size`` cases."""
    src = mp_source(dataset, tuple(train_patients))
    labels = planned_labels(size, src, config.diffusion.seed, fold, TARGET_SET, config.sampler)
    return float(labels.mean())


def make_oversample_prev_set(
    out: str | Path,
    n: int,
    *,
    dataset: Dataset,
    train_patients: Sequence[str],
    fold: int,
    config: Config,
    progress: bool = True,
    target: float | None = None,
) -> Path:
    """Write (resume) the oversample-prev set of ``n`` duplicates at ``out``; return ``out``.

    ``target``: a stated positive prevalence (default: ``mp-perlin``'s, module text).
    """
    check_size(n, "oversample-prev set")
    out = Path(out)
    size = max(int(n), _recorded_size(out))
    cases = _train_cases(dataset, train_patients)
    labels = dataset.label_matrix(cases)
    positives = np.nansum(labels > 0, axis=1)
    n_labels = labels.shape[1]
    goal = (
        target_prevalence(dataset, train_patients, fold, config, size) if target is None else target
    )
    weights, beta = prevalence_weights(positives, n_labels, goal)
    settings = {
        "fold": fold,
        "name": NAME,
        "kind": "oversample-prev",
        "source_dataset": str(dataset.root.resolve()),
        "seed": config.diffusion.seed,
        "train_cases": [c.case_id for c in cases],
        "target_from": "stated" if target is not None else f"{TARGET_SET} plan (first {size})",
        "target_over": size,
        "target_prevalence": round(float(goal), 6),
        "expected_prevalence": round(float(weights @ positives) / n_labels, 6),
        "train_prevalence": round(float(positives.mean()) / n_labels, 6),
        "beta": round(beta, 6),
    }
    if target is None:
        settings["inflammation_sampler"] = config.sampler.model_dump()
    meta = set_meta(
        NAME,
        fold,
        list(dataset.labels),
        dataset.meta.groups,
        list(dataset.meta.classification_views),
        f"oversample-prev control of fold {fold}: real train images duplicated with "
        f"weights exp({beta:.3f} x positives) so the mean prevalence is {goal:.3f}",
        dataset.meta.modality,
        settings,
    )

    def plan(i: int) -> SetCasePlan:
        rng = np.random.default_rng(case_seed(config.diffusion.seed, fold, NAME, i))
        return SetCasePlan(i, cases[int(rng.choice(len(cases), p=weights))])

    spec = SetSpec(NAME, settings, meta, EXTRA_COLUMNS, plan, what="oversample-prev set")
    return write_set(out, n, spec, _copies(dataset), progress=progress)


def _copies(dataset: Dataset):
    """The batch maker: each planned real case, copied (image, labels, maps)."""

    def make_batch(plans: Sequence[SetCasePlan]) -> list[SetCase]:
        return [
            SetCase(
                patient_id=p.case.patient_id,
                view=p.case.view,
                image=dataset.image(p.case),
                labels=p.case.labels,
                tissue=dataset.tissue(p.case),
                regions=dataset.regions(p.case),
                extra={"source_case": p.case.case_id},
            )
            for p in plans
        ]

    return make_batch
