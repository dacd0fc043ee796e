"""The built-in phantom: structure, determinism, physics, labels, prevalence, resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage
from typer.testing import CliRunner

from jointaug.dataset import phantom as ph
from jointaug.dataset.format import HAND_JOINTS, HAND_LABELS, DatasetError, read_dataset
from jointaug.dataset.phantom_disease import (
    JOINT_PREVALENCE,
    Disease,
    sample_label_vectors,
    sample_state,
)

SMALL = {"patients": 6, "size": 128, "seed": 3}


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("phantom") / "small"
    ph.write_phantom(out, progress=False, **SMALL)
    return out


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.png"))}


# --- structure -------------------------------------------------------------------------


def test_plan_of_48_patients_has_98_classification_images():
    plan = ph.case_plan(48, seed=0)
    ids = [c.case_id for c in plan]
    assert len(ids) == len(set(ids)) == 48 * 4 + 2
    cls = [c for c in plan if c.view in ("palmar", "dorsal")]
    assert len(cls) == 98
    second = [c for c in plan if c.visit == 2]
    assert [c.view for c in second] == ["palmar", "dorsal"]
    pid = second[0].patient_id
    assert {c.case_id for c in second} == {f"{pid}_v2_palmar", f"{pid}_v2_dorsal"}
    assert len({c.patient_id for c in plan}) == 48
    obliques = {c.view for c in plan} - {"palmar", "dorsal"}
    assert obliques == {"oblique_left", "oblique_right"}


def test_written_structure(small):
    ds = read_dataset(small)
    assert ds.labels == list(HAND_LABELS)
    assert set(ds.meta.groups) == {"right", "left"}
    assert len(ds.patients()) == SMALL["patients"]
    assert len(ds.cases) == SMALL["patients"] * 4 + 2
    assert len(ds.classification_cases()) == SMALL["patients"] * 2 + 2
    info = ds.meta.extra["phantom"]
    assert info["seed"] == SMALL["seed"] and info["size"] == SMALL["size"]
    assert set(info["target_prevalence"]) == set(HAND_JOINTS)
    measured = ds.label_matrix(ds.classification_cases()).mean()
    assert info["positive_rate"] == pytest.approx(measured, abs=1e-4)
    assert "maraciclalide" in ds.meta.description
    assert not (small / ".phantom-params.json").exists()


def test_obliques_have_tissue_but_no_regions_or_labels(small):
    ds = read_dataset(small)
    obliques = [c for c in ds.cases if c.view.startswith("oblique")]
    assert len(obliques) == 2 * SMALL["patients"]
    for c in obliques:
        assert c.regions == "" and c.tissue != ""
        assert np.all(np.isnan(c.labels))
        assert ds.tissue(c).max() >= 1


def test_counts_and_map_values(small):
    ds = read_dataset(small)
    for c in ds.cases:
        img = ds.image(c)
        assert img.shape == (SMALL["size"],) * 2
        assert img.min() >= 0 and np.array_equal(img, np.round(img))
        assert img.sum() > 1e4
        tissue = ds.tissue(c)
        assert set(np.unique(tissue)) <= {0, 1, 2, 3}
        if c.regions:
            regions = ds.regions(c)
            assert set(np.unique(regions)) <= set(range(31))


def test_positive_labels_have_their_region_and_inflamed_tissue(small):
    ds = read_dataset(small)
    for c in ds.classification_cases():
        tissue, regions = ds.tissue(c), ds.regions(c)
        hot = tissue >= 2
        positive = np.nonzero(c.labels == 1)[0]
        for j in positive:
            region = regions == j + 1
            assert region.any(), (c.case_id, HAND_LABELS[j])
            assert (region & hot).any(), (c.case_id, HAND_LABELS[j])
        if hot.any():  # the clinician's inflamed tissue lies in positive joints' regions
            inside = np.isin(regions, positive + 1) & hot
            assert inside.sum() >= 0.9 * hot.sum(), c.case_id
        if positive.size == 0:
            assert not hot.any(), c.case_id


def test_region_map_at_256_has_every_joint_and_a_large_wrist():
    p = ph.patient_params(np.random.default_rng(11), 256)
    tissue, regions = ph.draw_hands(p)
    areas = np.bincount(regions.ravel(), minlength=31)
    assert np.all(areas[1:] > 0)
    for wrist in (1, 16):  # R_wrist, L_wrist
        fingers = areas[wrist + 1 : wrist + 15]
        assert areas[wrist] > 2 * fingers.max()
    near_hand = ndimage.binary_dilation(tissue, iterations=3)
    assert np.all(near_hand[regions > 0])  # regions sit on the hand
    assert 0.05 < (regions[tissue] > 0).mean() < 0.6
    # right hand in the palmar view is on the image's left
    cols = np.nonzero(regions == HAND_LABELS.index("R_wrist") + 1)[1]
    assert cols.mean() < 128


# --- physics ---------------------------------------------------------------------------


def test_dorsal_is_the_mirror_of_palmar_with_independent_noise(small):
    truth = ph.patient_truth(SMALL["seed"], 1, 128)[0].views
    pal, dor = truth["palmar"], truth["dorsal"]
    np.testing.assert_array_equal(dor.mean, pal.mean[:, ::-1])
    np.testing.assert_array_equal(dor.tissue, pal.tissue[:, ::-1])
    np.testing.assert_array_equal(dor.regions, pal.regions[:, ::-1])
    ds = read_dataset(small)
    a = ds.image(ds.case("p002_palmar"))
    b = ds.image(ds.case("p002_dorsal"))[:, ::-1]
    np.testing.assert_array_equal(
        ds.tissue(ds.case("p002_dorsal")), ds.tissue(ds.case("p002_palmar"))[:, ::-1]
    )
    assert not np.array_equal(a, b)
    # independent Poisson draws of the same mean: var(a - b) ~ 2 * mean
    mask = pal.mean > 5
    ratio = np.var((a - b)[mask]) / (2 * pal.mean[mask].mean())
    assert 0.8 < ratio < 1.25
    np.testing.assert_allclose(a[mask].mean(), pal.mean[mask].mean(), rtol=0.05)


def test_count_level_and_blur_at_256():
    views = ph.patient_truth(0, 2, 256)[0].views
    for v in views.values():
        assert 5e4 < v.mean.sum() < 2e6
        assert 5 < v.mean.max() < 400
        assert v.mean.min() > 0  # background + scatter: never an exact zero mean
    # blurred: neighbouring pixels of the mean are strongly correlated
    m = views["palmar"].mean
    assert np.corrcoef(m[:, 1:].ravel(), m[:, :-1].ravel())[0, 1] > 0.95


def test_inflamed_joints_are_hotter_than_normal_ones():
    hot, cold = [], []
    for i in range(12):
        vt = ph.patient_truth(5, i, 128)[0]
        v = vt.views["palmar"]
        for j in range(30):
            region = v.regions == j + 1
            if not region.any() or j % 15 == 0:  # finger joints only
                continue
            contrast = v.mean[region].max() / np.median(v.mean[v.tissue == 1])
            if vt.state[j] == 3:
                hot.append(contrast)
            elif vt.state[j] == 0:
                cold.append(contrast)
    assert len(hot) > 3 and len(cold) > 50
    assert np.median(hot) > 2 * np.median(cold)
    assert np.median(cold) > 1.0  # normal joints are not colder than soft tissue


def test_oblique_views_are_narrower_than_palmar():
    views = ph.patient_truth(0, 0, 128)[0].views
    width = {k: (v.tissue > 0).any(0).sum() for k, v in views.items()}
    assert width["oblique_left"] < 0.8 * width["palmar"]
    assert width["oblique_right"] < 0.8 * width["palmar"]


# --- determinism -----------------------------------------------------------------------


def test_same_seed_same_files_other_seed_differs(tmp_path, small):
    again = tmp_path / "again"
    ph.write_phantom(again, progress=False, **SMALL)
    assert _files(again) == _files(small)
    assert (again / "cases.csv").read_text() == (small / "cases.csv").read_text()
    other = tmp_path / "other"
    ph.write_phantom(other, patients=2, size=128, seed=SMALL["seed"] + 1, progress=False)
    a, b = read_dataset(small), read_dataset(other)
    assert not np.array_equal(a.image(a.case("p001_palmar")), b.image(b.case("p001_palmar")))


def test_patient_does_not_depend_on_how_many_patients(tmp_path):
    few, more = tmp_path / "few", tmp_path / "more"
    ph.write_phantom(few, patients=2, size=64, seed=7, progress=False)
    ph.write_phantom(more, patients=4, size=64, seed=7, progress=False)
    a, b = read_dataset(few), read_dataset(more)
    for c in a.cases:
        if "_v2_" not in c.case_id:
            np.testing.assert_array_equal(a.image(c), b.image(b.case(c.case_id)))
            np.testing.assert_array_equal(c.labels, b.case(c.case_id).labels)


def test_patient_params_scale_with_size():
    p1 = ph.patient_params(np.random.default_rng(4), 128)
    p2 = ph.patient_params(np.random.default_rng(4), 256)
    assert p2.right.length_px == pytest.approx(2 * p1.right.length_px)
    assert p2.left.wrist_x == pytest.approx(2 * p1.left.wrist_x)
    assert p2.counts_per_unit == pytest.approx(p1.counts_per_unit / 4)
    assert p2.right.spread == p1.right.spread


# --- prevalence model ------------------------------------------------------------------


def test_prevalence_model_ordering_rate_and_calibration():
    labels = sample_label_vectors(np.random.default_rng(0), 20000)
    per_joint = labels.reshape(-1, 2, 15).mean(axis=(0, 1))
    rate = dict(zip(HAND_JOINTS, per_joint, strict=True))
    for common in ("wrist", "mcp2", "mcp3"):
        for rare in ("dip2", "dip3", "dip4", "dip5"):
            assert rate[common] > 3 * rate[rare]
    assert rate["wrist"] == max(rate.values())
    assert 0.10 < labels.mean() < 0.20
    for joint, target in JOINT_PREVALENCE.items():
        assert rate[joint] == pytest.approx(target, abs=0.015), joint


def test_inflammation_clusters_in_patients():
    labels = sample_label_vectors(np.random.default_rng(1), 5000)
    right, left = labels[:, :15].sum(1), labels[:, 15:].sum(1)
    assert np.corrcoef(right, left)[0, 1] > 0.3  # both hands of a patient go together
    per_patient = labels.sum(1)
    p = labels.mean()
    assert per_patient.var() > 3 * 30 * p * (1 - p)  # far more spread than independent joints
    assert 0.05 < (per_patient == 0).mean() < 0.5  # some patients without inflammation


def test_follow_up_keeps_most_joint_states():
    rng = np.random.default_rng(2)
    d = Disease(severity=1.0, hand_effect=np.zeros(2), remission=False)
    first = np.stack([sample_state(rng, d) for _ in range(400)])
    second = np.stack([sample_state(rng, d, previous=f) for f in first])
    fresh = np.stack([sample_state(rng, d) for _ in range(400)])
    assert (first == second).mean() > (first == fresh).mean() + 0.1
    assert set(np.unique(first)) <= {0, 2, 3}


# --- writing, resume, CLI --------------------------------------------------------------


def test_resume_after_interruption_gives_the_same_dataset(tmp_path, monkeypatch, small):
    out = tmp_path / "resumed"
    real = ph.DatasetWriter

    class Interrupted(real):
        def add(self, *args, **kwargs):
            if len(self.cases) >= 9:
                raise KeyboardInterrupt
            return super().add(*args, **kwargs)

    monkeypatch.setattr(ph, "DatasetWriter", Interrupted)
    with pytest.raises(KeyboardInterrupt):
        ph.write_phantom(out, progress=False, **SMALL)
    assert not (out / "dataset.json").exists()
    monkeypatch.setattr(ph, "DatasetWriter", real)
    with pytest.raises(DatasetError, match="other parameters"):
        ph.write_phantom(out, progress=False, patients=6, size=128, seed=99)
    ph.write_phantom(out, progress=False, **SMALL)
    assert (out / "cases.csv").read_text() == (small / "cases.csv").read_text()
    assert _files(out) == _files(small)


def test_complete_folder_is_reused_or_refused(small):
    ds = ph.write_phantom(small, progress=False, **SMALL)  # same parameters: returned as is
    assert len(ds.cases) == SMALL["patients"] * 4 + 2
    with pytest.raises(DatasetError, match="different dataset"):
        ph.write_phantom(small, progress=False, patients=5, size=128, seed=3)


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="patients"):
        ph.write_phantom(tmp_path / "x", patients=0, progress=False)


def test_cli_phantom_prints_a_summary(tmp_path):
    from jointaug.cli import app

    out = tmp_path / "cli"
    res = CliRunner().invoke(
        app, ["phantom", str(out), "--patients", "2", "--size", "64", "--seed", "1"]
    )
    assert res.exit_code == 0, res.output
    assert "10 cases, 2 patients, 6 classification images" in res.output
    assert read_dataset(out).meta.extra["phantom"]["seed"] == 1
    res = CliRunner().invoke(app, ["phantom", str(out), "--patients", "3", "--size", "64"])
    assert res.exit_code == 2 and "different dataset" in res.output
