"""The built-in phantom's imaging model as a set generator (the ``oracle`` kinds; numpy).

A synthetic case names a real phantom case (``p007_palmar``, ``p012_v2_dorsal``); the
phantom's draws for that patient are replayed (:func:`visit_params`: geometry and
counts level at that visit, no image) and a new image is rendered on that anatomy:

- :func:`render_vector`: uptake blobs drawn by the phantom for a sampled vector
  (``oracle-plan``: the phantom's own blob shapes);
- :func:`render_condition`: uptake that follows a given condition map (0 bg, 1 normal,
  2 low, 3 high) pixel for pixel (``oracle``: the conditions of the ``mp-perlin`` set,
  Perlin-varied regions included) -- what a perfect generator of that map would draw.

Both add a fresh soft-tissue texture and the camera (:func:`jointaug.dataset.phantom.
camera_mean`); the caller draws the Poisson counts. Only a dataset written by ``jointaug
phantom`` can be rendered (:func:`phantom_params` refuses others).
"""

from __future__ import annotations

import re

import numpy as np
from scipy import ndimage

from jointaug.dataset.format import HAND_LABELS, Dataset, DatasetError
from jointaug.dataset.phantom import (
    VERSION,
    PatientParams,
    camera_mean,
    follow_up_params,
    layouts_for,
    patient_params,
    render_view,
    soft_tissue_activity,
)
from jointaug.dataset.phantom_anatomy import N_JOINTS
from jointaug.dataset.phantom_disease import (
    HIGH_UPTAKE,
    LOW_UPTAKE,
    render_blobs,
    sample_blobs,
    sample_disease,
    sample_state,
)

_CASE = re.compile(r"^p(\d{3,})(?:_v(\d+))?_(palmar|dorsal)$")
EDGE_SIGMA_PX = 1.5  # at 256: the soft edge of condition-shaped uptake (~ a blob's ring width)


class OracleError(DatasetError):
    """The oracle cannot render this dataset (not the built-in phantom)."""


def phantom_params(dataset: Dataset) -> dict:
    """The phantom block of ``dataset.json`` (seed, size, patients); refuses other datasets."""
    info = dataset.meta.extra.get("phantom")
    if not isinstance(info, dict) or not {"seed", "size", "patients", "version"} <= set(info):
        raise OracleError(
            f"{dataset.root}: the oracle sets render the built-in phantom's own imaging model and "
            "work only on a dataset written by `jointaug phantom` (its dataset.json records "
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


def case_visit(case_id: str) -> tuple[int, int, str]:
    """(patient index, visit, view) of a phantom classification case id."""
    m = _CASE.match(case_id)
    if not m:
        raise OracleError(f"case {case_id!r} is not a phantom classification case id")
    return int(m.group(1)) - 1, int(m.group(2) or 1), m.group(3)


class PatientCache:
    """:func:`visit_params` of the phantom in ``info`` by case id (cached per visit)."""

    def __init__(self, info: dict) -> None:
        self.seed, self.size = int(info["seed"]), int(info["size"])
        self._params: dict[tuple[int, int], PatientParams] = {}

    def __call__(self, case_id: str) -> tuple[PatientParams, str]:
        index, visit, view = case_visit(case_id)
        if (index, visit) not in self._params:
            self._params[(index, visit)] = visit_params(self.seed, index, self.size, visit)
        return self._params[(index, visit)], view


def render_vector(
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


def condition_uptake(
    condition: np.ndarray, regions: np.ndarray, rng: np.random.Generator, edge_px: float
) -> tuple[np.ndarray, np.ndarray]:
    """Uptake (H, W) float32 that fills each inflamed joint's painted pixels and the
    (30,) bool of joints inflamed.

    Joint ``j`` (region ``j + 1``) is inflamed where ``condition >= 2`` in its region; its
    uptake is the painted mask blurred by ``edge_px`` (a soft edge, about half the peak
    on the outline as in the phantom's blobs), scaled to peak 1 inside, times an
    amplitude drawn from the phantom's low or high range (high if any pixel is 3).
    """
    uptake = np.zeros(condition.shape, np.float32)
    inflamed = np.zeros(2 * N_JOINTS, bool)
    hot = condition >= 2
    for j in range(2 * N_JOINTS):
        mask = hot & (regions == j + 1)
        if not mask.any():
            continue
        inflamed[j] = True
        level = HIGH_UPTAKE if (condition[mask] == 3).any() else LOW_UPTAKE
        profile = ndimage.gaussian_filter(mask.astype(np.float32), edge_px)
        uptake += float(rng.uniform(*level)) * profile / max(float(profile[mask].max()), 1e-6)
    return uptake, inflamed


def render_condition(
    params: PatientParams,
    view: str,
    condition: np.ndarray,
    regions: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Noise-free mean counts (H, W) of the patient's hands with inflamed uptake exactly
    where ``condition`` (in ``view``'s geometry) paints it (:func:`condition_uptake`), the
    phantom's mild blobs in the other joints, a fresh texture and the camera."""
    if condition.shape != (params.size, params.size) or regions.shape != condition.shape:
        raise OracleError(
            f"condition {condition.shape} / regions {regions.shape} differ from the phantom's "
            f"{params.size}x{params.size} images"
        )
    flip = view == "dorsal"  # rendered in the palmar geometry, mirrored back
    cond = condition[:, ::-1] if flip else condition
    reg = regions[:, ::-1] if flip else regions
    lays = layouts_for(params, "palmar")
    _, activity = soft_tissue_activity(params, lays, rng)
    k = params.size / 256.0
    hot, inflamed = condition_uptake(cond, reg, rng, max(0.5, EDGE_SIGMA_PX * k))
    mild = [b for b in sample_blobs(rng, np.zeros(2 * N_JOINTS, np.int8)) if not inflamed[b.joint]]
    uptake, _ = render_blobs(lays, mild, cond.shape)
    mean = camera_mean(activity + uptake + hot, params)
    return mean[:, ::-1].copy() if flip else mean
