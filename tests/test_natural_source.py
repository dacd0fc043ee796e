"""End to end: stand-in photos -> filters -> masks -> labels -> U-Net -> scenes -> dataset folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import jointaug.natural.source as source
from jointaug.cli import app
from jointaug.config import NaturalConfig
from jointaug.dataset.format import HAND_LABELS, read_dataset
from jointaug.dataset.validate import validate_dataset
from jointaug.natural.hands11k import HandsDataError
from jointaug.natural.source import NEVER_INFLAME, build_natural_source

CFG = NaturalConfig(
    max_images=4,
    n_labelled=6,
    stand_in_photos=12,
    segmenter_image_size=32,
    segmenter_channels=[8, 16],
    segmenter_epochs=3,
    segmenter_batch_size=4,
    photo_max_side=200,
)
TINY = [
    f"natural.{k}={v}"
    for k, v in (
        ("max_images", 3),
        ("n_labelled", 5),
        ("stand_in_photos", 10),
        ("segmenter_image_size", 32),
        ("segmenter_channels", "[8,16]"),
        ("segmenter_epochs", 2),
        ("photo_max_side", 200),
    )
]

pytestmark = pytest.mark.slow  # builds a natural source, segmenter included (3-5 s a build)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("nat")
    ds = build_natural_source(root / "out", None, 64, CFG, seed=0, progress=False)
    return root, ds


def test_folder_follows_the_contract(built):
    root, ds = built
    again = read_dataset(root / "out")
    assert len(again.cases) == len(ds.cases) == CFG.max_images
    assert again.meta.labels == list(HAND_LABELS)
    assert again.meta.extra["never_inflame"] == NEVER_INFLAME
    assert again.meta.classification_views == []
    report = validate_dataset(root / "out")
    assert report.ok and not report.warnings, [str(e) for e in report.errors + report.warnings]
    for case in again.cases:
        assert case.view == "natural" and not case.is_labelled
        assert case.patient_id.isdigit() and len(case.patient_id) == 7  # 11k ids keep zeros
        assert case.extra["source_image"].startswith("Hand_")
        assert case.extra["mirrored"] in ("L", "R") and case.extra["aspect"]
        img, tissue, regions = again.image(case), again.tissue(case), again.regions(case)
        assert img.shape == tissue.shape == regions.shape == (64, 64)
        assert set(np.unique(tissue)) == {0, 1}
        assert np.all(tissue[regions > 0] == 1)
        assert (regions[:, :32] > 0).any() and (regions[:, 32:] > 0).any()
        assert regions[:, :32].max() <= 15 and regions[:, 32:][regions[:, 32:] > 0].min() >= 16


def test_work_folder_holds_selection_weights_and_dice(built):
    root, _ = built
    work = root / "out.work"
    assert (work / "standin" / "HandInfo.csv").is_file()
    assert (work / "standin" / "labelstudio.json").is_file()
    assert (work / "segmenter.safetensors").is_file()
    dice = (work / "segmenter_dice.csv").read_text().splitlines()
    assert dice[0].startswith("joint,val_dice") and len(dice) == 17
    sel = (work / "selection.csv").read_text().splitlines()
    assert sel[0] == "imageName,kept,reason,n_fingers"
    assert sum(line.split(",")[1] == "1" for line in sel[1:]) == CFG.max_images


def test_complete_folder_is_not_rebuilt(built):
    root, _ = built
    files = sorted((root / "out").rglob("*.png"))
    stamps = [p.stat().st_mtime_ns for p in files]
    ds = build_natural_source(root / "out", None, 64, CFG, seed=0, progress=False)
    assert len(ds.cases) == CFG.max_images
    assert [p.stat().st_mtime_ns for p in files] == stamps


def test_interrupted_build_resumes_and_reuses_segmenter(built, tmp_path, monkeypatch):
    root, _ = built
    work = tmp_path / "work"
    work.mkdir()
    # reuse the first build's stand-in folder and weights: same data, same settings
    for name in ("segmenter.safetensors",):
        (work / name).write_bytes((root / "out.work" / name).read_bytes())
    weights_stamp = (work / "segmenter.safetensors").stat().st_mtime_ns
    real = source.make_scene
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(source, "make_scene", flaky)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        build_natural_source(out, None, 64, CFG, seed=0, progress=False, work_dir=work)
    assert not (out / "dataset.json").exists()
    first = sorted((out / "images").glob("*.png"))
    assert len(first) == 2
    stamps = [p.stat().st_mtime_ns for p in first]
    monkeypatch.setattr(source, "make_scene", real)
    ds = build_natural_source(out, None, 64, CFG, seed=0, progress=False, work_dir=work)
    assert len(ds.cases) == CFG.max_images
    assert [p.stat().st_mtime_ns for p in first] == stamps
    assert (work / "segmenter.safetensors").stat().st_mtime_ns == weights_stamp
    # same seed, same scenes as the first build
    a, b = read_dataset(root / "out"), read_dataset(out)
    ca, cb = a.cases[-1], b.case(a.cases[-1].case_id)
    assert np.array_equal(a.regions(ca), b.regions(cb))


def test_real_folder_without_labels_is_a_clear_error(built, tmp_path):
    root, _ = built
    photos = tmp_path / "photos"
    photos.mkdir()
    stand = root / "out.work" / "standin"
    (photos / "HandInfo.csv").write_bytes((stand / "HandInfo.csv").read_bytes())
    (photos / "Hands").symlink_to(stand / "Hands")
    with pytest.raises(HandsDataError, match="no joint labels"):
        build_natural_source(tmp_path / "o", photos, 64, CFG, seed=0, progress=False)
    # with the labels (and an exclude list) it works on a user folder too
    (photos / "labelstudio.json").write_bytes((stand / "labelstudio.json").read_bytes())
    sel = (root / "out.work" / "selection.csv").read_text().splitlines()[1:]
    dropped = next(line.split(",")[0] for line in sel if line.split(",")[1] == "1")
    (photos / "exclude.txt").write_text(dropped + "\n")
    ds = build_natural_source(tmp_path / "o", photos, 64, CFG, seed=0, progress=False)
    assert dropped not in {c.extra["source_image"] for c in ds.cases}
    assert json.loads((tmp_path / "o" / "dataset.json").read_text())["source"] == "11k Hands"


def test_cli_natural_source(tmp_path):
    out = tmp_path / "cli"
    res = CliRunner().invoke(
        app, ["natural-source", str(out), "--size", "48", *sum((["--set", s] for s in TINY), [])]
    )
    assert res.exit_code == 0, res.output
    assert len(read_dataset(out).cases) == 3
    res = CliRunner().invoke(
        app, ["natural-source", str(tmp_path / "x"), "--photos", str(tmp_path)]
    )
    assert res.exit_code == 2 and "HandInfo.csv" in res.output
