"""The built-in phantom: a synthetic [99mTc]maraciclalide-like hand scintigraphy dataset.

:func:`write_phantom` writes, in the dataset contract format, per patient the views
``palmar``, ``dorsal`` (the palmar activity mirrored left-right, independent Poisson
noise, as from the two heads of a dual-head camera), ``oblique_left`` and
``oblique_right`` (hands turned on their side: fingers overlap; tissue map but no region
map and no labels). One patient has a second visit (an extra palmar/dorsal pair), so 48
patients give 98 classification images, as in the paper.

The imaging model, per view (pixel sizes quoted at 256 x 256 and scaled with ``size``):

- activity = soft-tissue thickness (hand geometry, :mod:`phantom_anatomy`) x a smooth
  log-normal texture + synovial uptake blobs (mild in every joint, hot in inflamed ones;
  :mod:`phantom_disease`); bone and background carry no activity;
- collimator blur: Gaussian, ``BLUR_FWHM_PX`` = 4 px FWHM; scatter: 4 % of the activity
  blurred with sigma 12 px; a flat background of 0.05 counts/px;
- counts: Poisson, mean ``counts_per_unit`` x activity with counts_per_unit log-uniform
  in 9..20 counts/px (the middle of a finger) at 256 x 256, times (256/size)^2 so the
  total per image stays ~1e5-6e5 counts; inflamed joints peak at tens to ~200 counts.

Labels are anatomical: ``R_*`` stays ``R_*`` in every view. In the palmar view the right
hand is on the image's left; in the dorsal view it is on the right.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy import ndimage

from jointaug.dataset.format import (
    HAND_JOINTS,
    HAND_LABELS,
    Dataset,
    DatasetError,
    DatasetMeta,
    is_complete,
    read_dataset,
)
from jointaug.dataset.phantom_anatomy import (
    N_JOINTS,
    HandLayout,
    HandParams,
    fit_hand,
    hand_layout,
    region_map,
    soft_tissue,
)
from jointaug.dataset.phantom_disease import (
    JOINT_PREVALENCE,
    Blob,
    disease_model,
    render_blobs,
    sample_blobs,
    sample_disease,
    sample_state,
)
from jointaug.dataset.writer import DatasetWriter
from jointaug.files import write_text_atomic

VERSION = 1
CLASSIFICATION_VIEWS = ("palmar", "dorsal")
VIEWS = ("palmar", "dorsal", "oblique_left", "oblique_right")
BLUR_FWHM_PX = 4.0  # at 256
SCATTER_FRACTION, SCATTER_SIGMA_PX = 0.04, 12.0  # at 256
BACKGROUND_COUNTS = 0.05  # counts/px at 256
COUNTS_PER_UNIT = (9.0, 20.0)  # counts/px in the middle of a finger at 256 (log-uniform)
TEXTURE_SD = (0.12, 0.3)  # log-sd of the soft-tissue texture
TISSUE_THRESHOLD = 0.05  # thickness above which a pixel is "tissue" in the tissue map


@dataclass(frozen=True)
class PatientParams:
    """Everything that varies between patients except the disease (pixels at ``size``)."""

    size: int
    right: HandParams
    left: HandParams
    counts_per_unit: float  # counts/px per unit of activity, at this size
    texture_sd: float
    squeeze: float  # oblique views: hand width factor
    shear: float  # oblique views: lean of the fingers (L per L)

    @property
    def hands(self) -> list[HandParams]:
        return [self.right, self.left]


def patient_params(rng: np.random.Generator, size: int = 256) -> PatientParams:
    """Draw one patient's hands and acquisition. Same draws for every ``size``."""
    f = float(size)
    length = rng.uniform(0.52, 0.62)  # wrist to middle fingertip, fraction of the image
    top = rng.uniform(0.04, 0.09)
    lo, hi = 0.26 * length + 0.01, 0.5 - 0.47 * length - 0.015  # keep hands apart, in view
    wrist_x = rng.uniform(lo, hi) if hi > lo else (lo + hi) / 2
    spread, thumb = rng.uniform(0.6, 1.5), rng.uniform(38.0, 55.0)
    width = rng.uniform(0.92, 1.08)
    hands = []
    for mirror in (1, -1):
        hl = length * (1 + 0.015 * rng.standard_normal())
        hands.append(
            HandParams(
                length_px=hl * f,
                wrist_x=(0.5 + mirror * (wrist_x + 0.01 * rng.standard_normal() - 0.5)) * f,
                wrist_y=(top + hl + 0.01 * rng.standard_normal()) * f,
                mirror=mirror,
                rotation_deg=float(np.clip(2.5 * rng.standard_normal(), -5, 5)),
                spread=float(spread * rng.uniform(0.9, 1.1)),
                thumb_deg=float(thumb + 3.0 * rng.standard_normal()),
                width=float(width),
                digit_scale=tuple(float(x) for x in 1 + 0.03 * rng.standard_normal(5)),
            )
        )
    hands = [fit_hand(h, size, 0.012 * f, side) for h, side in zip(hands, (-1, 1), strict=True)]
    level = np.exp(rng.uniform(*np.log(COUNTS_PER_UNIT))) * (256.0 / f) ** 2
    return PatientParams(
        size=size,
        right=hands[0],
        left=hands[1],
        counts_per_unit=float(level),
        texture_sd=float(rng.uniform(*TEXTURE_SD)),
        squeeze=float(rng.uniform(0.38, 0.5)),
        shear=float(rng.uniform(0.08, 0.18)),
    )


def follow_up_params(rng: np.random.Generator, p: PatientParams) -> PatientParams:
    """The same patient at a second visit: hands placed slightly differently."""
    f = float(p.size)

    def move(h: HandParams) -> HandParams:
        return replace(
            h,
            wrist_x=h.wrist_x + 0.01 * f * rng.standard_normal(),
            wrist_y=h.wrist_y + 0.01 * f * rng.standard_normal(),
            rotation_deg=h.rotation_deg + 1.5 * rng.standard_normal(),
            spread=h.spread * rng.uniform(0.9, 1.1),
        )

    m = 0.012 * f
    right, left = fit_hand(move(p.right), p.size, m, -1), fit_hand(move(p.left), p.size, m, 1)
    return replace(
        p, right=right, left=left, counts_per_unit=p.counts_per_unit * rng.uniform(0.8, 1.2)
    )


def layouts_for(p: PatientParams, view: str) -> list[HandLayout]:
    """Right- and left-hand layouts of a view's geometry (dorsal uses the palmar one)."""
    if view in ("palmar", "dorsal"):
        return [hand_layout(h) for h in p.hands]
    sign = 1.0 if view == "oblique_left" else -1.0
    return [hand_layout(h, squeeze=p.squeeze, shear=sign * p.shear * h.mirror) for h in p.hands]


def draw_hands(p: PatientParams, size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Palmar-view ``tissue_mask`` (H, W) bool and ``regions`` (H, W) uint8 (ids 1..30)."""
    size = size or p.size
    if size != p.size:
        p = scale_params(p, size)
    lays = layouts_for(p, "palmar")
    tissue = soft_tissue(lays, (size, size)) > TISSUE_THRESHOLD
    return tissue, region_map(lays, tissue, [1, 1 + N_JOINTS], margin_px=2.0 * size / 256)


def scale_params(p: PatientParams, size: int) -> PatientParams:
    f = size / p.size
    return replace(
        p,
        size=size,
        right=p.right.scaled(f),
        left=p.left.scaled(f),
        counts_per_unit=p.counts_per_unit / f**2,
    )


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], sigma_px: float) -> np.ndarray:
    """(H, W) float32 Gaussian random field, zero mean, unit standard deviation."""
    f = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma_px)
    return (f - f.mean()) / max(float(f.std()), 1e-6)


@dataclass
class ViewTruth:
    """Noise-free truth of one view: Poisson mean (counts), tissue map, region map."""

    mean: np.ndarray  # (H, W) float32 expected counts
    tissue: np.ndarray  # (H, W) uint8 0..3
    regions: np.ndarray | None  # (H, W) uint8 0..30, None for obliques

    def flipped(self) -> ViewTruth:
        regions = None if self.regions is None else self.regions[:, ::-1].copy()
        return ViewTruth(self.mean[:, ::-1].copy(), self.tissue[:, ::-1].copy(), regions)


def render_view(
    p: PatientParams, blobs: list[Blob], view: str, rng: np.random.Generator
) -> ViewTruth:
    """Render one view's noise-free truth; ``rng`` draws the soft-tissue texture.

    The same ``blobs`` (pixel-free) are drawn in every view of a visit.
    """
    shape = (p.size, p.size)
    lays = layouts_for(p, view)
    thick, tissue_activity = soft_tissue_activity(p, lays, rng)
    uptake, level = render_blobs(lays, blobs, shape)
    mean = camera_mean(tissue_activity + uptake, p)
    tissue_mask = thick > TISSUE_THRESHOLD
    tissue = np.maximum(tissue_mask.astype(np.uint8), level)
    regions = None
    if view in CLASSIFICATION_VIEWS:
        regions = region_map(lays, tissue_mask, [1, 1 + N_JOINTS], margin_px=2.0 * p.size / 256)
    return ViewTruth(mean, tissue, regions)


def soft_tissue_activity(
    p: PatientParams, lays: list[HandLayout], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(thickness, thickness x texture) (H, W) of a view's hands; ``rng`` draws the texture."""
    shape = (p.size, p.size)
    k = p.size / 256.0
    thick = soft_tissue(lays, shape)
    sd = p.texture_sd
    field = 0.8 * smooth_field(rng, shape, 6.0 * k) + 0.6 * smooth_field(rng, shape, 20.0 * k)
    return thick, thick * np.exp(sd * field - sd**2 / 2)


def camera_mean(activity: np.ndarray, p: PatientParams) -> np.ndarray:
    """The camera's noise-free mean counts (H, W) float32 of an activity map: collimator
    blur, scatter, counts level and flat background (module docstring)."""
    k = p.size / 256.0
    sigma = BLUR_FWHM_PX * k / (2 * np.sqrt(2 * np.log(2)))
    mean = ndimage.gaussian_filter(activity, sigma)
    mean += SCATTER_FRACTION * ndimage.gaussian_filter(activity, SCATTER_SIGMA_PX * k)
    mean = (mean * p.counts_per_unit + BACKGROUND_COUNTS / k**2).astype(np.float32)
    return np.clip(mean, 0, None)


@dataclass(frozen=True)
class PlannedCase:
    """One image the phantom will write."""

    case_id: str
    patient_id: str
    patient: int  # 0-based patient index
    visit: int  # 1, or 2 for the second visit
    view: str


def second_visit_patient(patients: int, seed: int) -> int:
    """Index of the patient with the extra palmar/dorsal pair."""
    return int(np.random.default_rng(seed).integers(patients))


def case_plan(patients: int, seed: int = 0) -> list[PlannedCase]:
    """Every case the phantom writes, in order, without drawing any image."""
    if patients < 1:
        raise ValueError(f"patients must be >= 1, got {patients}")
    extra = second_visit_patient(patients, seed)
    plan = []
    for i in range(patients):
        pid = f"p{i + 1:03d}"
        plan += [PlannedCase(f"{pid}_{v}", pid, i, 1, v) for v in VIEWS]
        if i == extra:
            plan += [PlannedCase(f"{pid}_v2_{v}", pid, i, 2, v) for v in CLASSIFICATION_VIEWS]
    return plan


@dataclass
class VisitTruth:
    visit: int
    state: np.ndarray  # (30,) 0 normal, 2 low, 3 high
    views: dict[str, ViewTruth]


def patient_truth(seed: int, index: int, size: int, visits: int = 1) -> list[VisitTruth]:
    """Noise-free truth of patient ``index`` (independent of how many patients exist).

    Streams: ``SeedSequence(seed, spawn_key=(index,))`` spawns one stream for geometry and
    disease (scalar draws only, so identical at every ``size``) and one for textures.
    """
    ss_params, ss_texture, _ = np.random.SeedSequence(seed, spawn_key=(index,)).spawn(3)
    prng, trng = np.random.default_rng(ss_params), np.random.default_rng(ss_texture)
    params = patient_params(prng, size)
    disease = sample_disease(prng)
    out, state = [], None
    for visit in range(1, visits + 1):
        if visit > 1:
            params = follow_up_params(prng, params)
        state = sample_state(prng, disease, previous=state)
        blobs = sample_blobs(prng, state)
        views = {}
        for view in VIEWS if visit == 1 else CLASSIFICATION_VIEWS:
            if view == "dorsal":
                views[view] = views["palmar"].flipped()
            else:
                views[view] = render_view(params, blobs, view, trng)
        out.append(VisitTruth(visit, state, views))
    return out


def noise_rng(seed: int, index: int) -> np.random.Generator:
    """The Poisson-noise stream of patient ``index``."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)).spawn(3)[2])


def phantom_description(patients: int, size: int, seed: int) -> str:
    rates = ", ".join(f"{j} {100 * r:.0f}%" for j, r in JOINT_PREVALENCE.items())
    return (
        f"Built-in synthetic [99mTc]maraciclalide-like hand scintigraphy phantom (jointaug "
        f"phantom v{VERSION}; {patients} patients, {size}x{size}, seed {seed}). Both hands in one "
        "image, fingers up; palmar view: right hand on the image's left; dorsal view: the "
        "mirror image of the same activity with independent Poisson noise; two oblique views "
        "(fingers overlapping; tissue maps only, unlabelled). Activity: soft-tissue thickness "
        "with smooth texture, synovial uptake (mild in normal joints, low or high in inflamed "
        f"ones), Gaussian collimator blur {BLUR_FWHM_PX:g} px FWHM at 256, scatter, Poisson "
        f"counts ({COUNTS_PER_UNIT[0]:g}-{COUNTS_PER_UNIT[1]:g} counts/px in a finger at 256, "
        "~1e5-6e5 per image). Tissue maps: 0 background, 1 normal, 2 low, 3 high inflammation "
        "(outline of each inflamed blob). Region maps: id i = the i-th label. Target per-joint "
        f"prevalence (both hands): {rates}; inflammation clusters in patients (latent severity)."
    )


def write_phantom(
    out: Path | str,
    patients: int = 48,
    size: int = 256,
    seed: int = 0,
    progress: bool = True,
    overwrite: bool = False,
) -> Dataset:
    """Write the phantom dataset to ``out``; resume a half-written folder.

    Returns the dataset. A complete folder written with the same parameters is returned
    as is; one with other parameters raises DatasetError unless ``overwrite``.
    """
    from tqdm.auto import tqdm

    out = Path(out)
    if patients < 1 or size < 32:
        raise ValueError(f"need patients >= 1 and size >= 32, got {patients} and {size}")
    wanted = {"version": VERSION, "patients": patients, "size": size, "seed": seed}
    if is_complete(out) and not overwrite:
        ds = read_dataset(out)
        got = ds.meta.extra.get("phantom", {})
        if {k: got.get(k) for k in wanted} == wanted:
            return declare_layout(ds)
        raise DatasetError(f"{out}: already holds a different dataset; choose another folder")
    marker = out / ".phantom-params.json"
    if marker.is_file() and not overwrite:
        if json.loads(marker.read_text()) != wanted:
            raise DatasetError(
                f"{out}: holds a half-written phantom with other parameters "
                f"({marker.read_text().strip()}); delete the folder or rerun with those"
            )
    meta = DatasetMeta.hands(f"phantom-{patients}", phantom_description(patients, size, seed))
    meta.extra.update(layout_keys())
    plan = case_plan(patients, seed)
    writer = DatasetWriter(out, meta, extra_columns=["visit", "total_counts"], overwrite=overwrite)
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(marker, json.dumps(wanted))
        done = writer.done_ids
        by_patient: dict[int, list[PlannedCase]] = {}
        for pc in plan:
            by_patient.setdefault(pc.patient, []).append(pc)
        for i, cases in tqdm(
            by_patient.items(), desc="phantom", unit="patient", disable=not progress
        ):
            if all(pc.case_id in done for pc in cases):
                continue
            truth = patient_truth(seed, i, size, visits=max(pc.visit for pc in cases))
            nrng = noise_rng(seed, i)
            for pc in cases:
                vt = truth[pc.visit - 1]
                view = vt.views[pc.view]
                counts = nrng.poisson(view.mean).astype(np.int32)  # always drawn: same stream
                if pc.case_id in done:
                    continue
                labels = (vt.state > 0).astype(np.float32) if view.regions is not None else None
                writer.add(
                    case_id=pc.case_id,
                    patient_id=pc.patient_id,
                    view=pc.view,
                    image=counts,
                    labels=labels,
                    tissue=view.tissue,
                    regions=view.regions,
                    extra={"visit": str(pc.visit), "total_counts": str(int(counts.sum()))},
                )
    except BaseException:
        writer.abort()
        raise
    writer.meta.extra["phantom"] = phantom_summary(writer.cases, wanted, patients, seed)
    ds = writer.close()
    marker.unlink(missing_ok=True)
    return ds


def layout_keys() -> dict:
    """The phantom's optional layout keys (docs/dataset_format.md): the dorsal view is the
    palmar view mirrored left-right; ``R_x`` (the image's left half in the palmar view)
    mirrors ``L_x``."""
    return {
        "mirrored_views": ["dorsal"],
        "mirror_pairs": [[f"R_{j}", f"L_{j}"] for j in HAND_JOINTS],
    }


def declare_layout(ds: Dataset) -> Dataset:
    """A phantom written before the layout keys existed, with them declared in its
    dataset.json (they state how it was always drawn; images and cases are untouched)."""
    keys = layout_keys()
    if all(k in ds.meta.extra for k in keys):
        return ds
    ds.meta.extra.update(keys)
    write_text_atomic(ds.root / "dataset.json", json.dumps(ds.meta.to_json(), indent=2) + "\n")
    return ds


def phantom_summary(cases, wanted: dict, patients: int, seed: int) -> dict:
    """The ``phantom`` block of dataset.json: parameters, target and measured prevalence."""
    lab = np.stack([c.labels for c in cases if c.view in CLASSIFICATION_VIEWS])
    totals = [int(c.extra.get("total_counts", 0) or 0) for c in cases]
    return {
        **wanted,
        "second_visit_patient": f"p{second_visit_patient(patients, seed) + 1:03d}",
        "target_prevalence": dict(JOINT_PREVALENCE),
        "measured_prevalence": {
            n: round(float(r), 4) for n, r in zip(HAND_LABELS, lab.mean(0), strict=True)
        },
        "positive_rate": round(float(lab.mean()), 4),
        "classification_images": int(lab.shape[0]),
        "blur_fwhm_px_at_256": BLUR_FWHM_PX,
        "counts_per_unit_at_256": list(COUNTS_PER_UNIT),
        "total_counts_median": int(np.median(totals)) if totals else 0,
        "joints": list(HAND_JOINTS),
        "disease_model": disease_model(),
    }
