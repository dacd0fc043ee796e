"""Label Studio both ways: our brush RLE against Label Studio's own converter, the
labelling config, and segmenter pre-annotations read back by our importer."""

from __future__ import annotations

import importlib
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from jointaug.cli import app
from jointaug.config import NaturalConfig
from jointaug.dataset.format import HAND_JOINTS
from jointaug.init import kaiming_uniform_
from jointaug.natural.background import hand_mask
from jointaug.natural.hands11k import load_photo
from jointaug.natural.joints import (
    N_CLASSES,
    SegmenterFileError,
    TrainResult,
    build_unet,
    load_trained_segmenter,
    predict_scores,
    save_segmenter,
)
from jointaug.natural.labelstudio import (
    JOINT_INDEX,
    joint_name,
    match_labels,
    read_labelstudio_export,
)
from jointaug.natural.labelstudio_export import (
    DEFAULT_URL_PREFIX,
    FROM_NAME,
    TO_NAME,
    ExportError,
    ExportOptions,
    brush_result,
    export_tasks,
    labelling_config,
    list_photos,
    predict_regions,
)
from jointaug.natural.regions import regions_from_labels
from jointaug.natural.rle import brush_to_mask, decode_rle, encode_rle, mask_to_brush
from jointaug.natural.segdata import crop_input, uncrop_scores

SETTINGS = {"segmenter_channels": [8, 16], "segmenter_image_size": 32, "photo_max_side": 60}
SKIN = (205, 150, 120)


def ls_brush():
    """Label Studio's own brush module: the SDK's, else the standalone converter's (same code)."""
    try:
        return importlib.import_module("label_studio_sdk.converter.brush")
    except ImportError:
        return pytest.importorskip("label_studio_converter.brush")


def random_mask(rng: np.random.Generator, h: int, w: int, kind: str) -> np.ndarray:
    if kind == "noise":
        return rng.random((h, w)) < rng.uniform(0.05, 0.95)
    if kind == "blobs":  # a few rectangles: long runs, like a painted brush
        m = np.zeros((h, w), bool)
        for _ in range(int(rng.integers(1, 5))):
            r, c = int(rng.integers(0, h)), int(rng.integers(0, w))
            m[r : r + int(rng.integers(1, h)), c : c + int(rng.integers(1, w))] = True
        return m
    return np.full((h, w), kind == "full")


MASK_CASES = [(seed, kind) for seed in range(4) for kind in ("noise", "blobs")]
MASK_CASES += [(0, "empty"), (1, "full")]


@pytest.mark.parametrize(("seed", "kind"), MASK_CASES)
def test_our_brush_encoder_decodes_with_label_studio(seed, kind):
    brush = ls_brush()
    rng = np.random.default_rng(seed)
    h, w = (int(v) for v in rng.integers(1, 48, size=2))
    mask = random_mask(rng, h, w, kind)
    flat = np.asarray(brush.decode_rle(mask_to_brush(mask)))
    assert flat.size == h * w * 4
    assert np.array_equal(flat.reshape(h, w, 4)[..., 3] > 0, mask)


@pytest.mark.parametrize(("seed", "kind"), MASK_CASES)
def test_label_studio_brush_encoder_decodes_with_ours(seed, kind):
    brush = ls_brush()
    rng = np.random.default_rng(100 + seed)
    h, w = (int(v) for v in rng.integers(1, 48, size=2))
    mask = random_mask(rng, h, w, kind)
    rle = brush.mask2rle(mask.astype(np.uint8) * 255)
    assert np.array_equal(brush_to_mask(rle, w, h), mask)


def test_long_runs_and_arbitrary_bytes_both_ways():
    """Runs past 2**16 (Label Studio splits them) and every byte value, both codecs."""
    brush = ls_brush()
    rng = np.random.default_rng(7)
    runs = [(0, 70_000), (255, 3), (17, 1), (4, 65_536), (9, 300), (200, 131_073)]
    values = np.concatenate([np.full(n, v, np.uint8) for v, n in runs])
    values = np.concatenate([values, rng.integers(0, 256, 500).astype(np.uint8)])
    assert np.array_equal(np.asarray(brush.decode_rle(encode_rle(values))), values)
    assert np.array_equal(decode_rle(brush.encode_rle(values)), values)


def test_brush_result_has_label_studio_fields(tmp_path):
    """Our result object carries the fields of the SDK's own brush pre-annotation."""
    brush = ls_brush()
    mask = np.zeros((12, 20), bool)
    mask[3:9, 4:15] = True
    Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "m.png")
    theirs = brush.image2annotation(
        str(tmp_path / "m.png"), "mcp2", FROM_NAME, TO_NAME, model_version="v", score=0.5
    )["result"][0]
    ours = brush_result("mcp2", mask, 0.5)
    assert set(theirs) - {"origin"} <= set(ours)
    assert set(theirs["value"]) == set(ours["value"])
    assert ours["original_width"] == theirs["original_width"] == 20
    assert ours["original_height"] == theirs["original_height"] == 12
    their_mask = brush_to_mask(theirs["value"]["rle"], 20, 12)
    assert np.array_equal(their_mask, mask) and np.array_equal(
        brush_to_mask(ours["value"]["rle"], 20, 12), mask
    )


def test_labelling_config_names_what_the_importer_reads():
    root = ET.fromstring(labelling_config())
    image = root.find("Image")
    brushes = root.find("BrushLabels")
    assert image.get("name") == TO_NAME and image.get("value") == "$image"
    assert brushes.get("name") == FROM_NAME and brushes.get("toName") == TO_NAME
    values = [lab.get("value") for lab in brushes.findall("Label")]
    assert values == list(HAND_JOINTS)
    assert [joint_name(v, "config") for v in values] == list(HAND_JOINTS)
    assert len({lab.get("background") for lab in brushes.findall("Label")}) == len(HAND_JOINTS)


# --- pre-annotations ---------------------------------------------------------------


def write_photo(path: Path, h: int, w: int, shift: int = 0) -> None:
    """A white page with a skin-coloured hand: palm, four fingers, a thumb."""
    img = np.full((h, w, 3), 250, np.uint8)
    s = h / 90  # drawn on a 120 x 90 grid, scaled
    rects = [(40, 85, 40, 80), (50, 70, 25, 42)]
    rects += [(8 + 3 * k, 42, 42 + 10 * k, 48 + 10 * k) for k in range(4)]
    for r0, r1, c0, c1 in rects:
        img[int(r0 * s) : int(r1 * s), int((c0 + shift) * s) : int((c1 + shift) * s)] = SKIN
    Image.fromarray(img).save(path, quality=95)


def write_segmenter(path: Path, settings: dict | None = SETTINGS, seed: int = 0) -> None:
    """An untrained (random) segmenter: it predicts many joints, which is all a round trip needs."""
    model = build_unet([8, 16])
    kaiming_uniform_(model, torch.Generator().manual_seed(seed))
    result = TrainResult(model, [], np.full(N_CLASSES, np.nan), 0, 0)
    save_segmenter(path, result, "0123456789ab" * 5 + "cdef", settings)


@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    hands = tmp_path / "hands11k" / "Hands"
    hands.mkdir(parents=True)
    write_photo(hands / "Hand_0000001.jpg", 90, 120)  # larger than photo_max_side: upsampled
    write_photo(hands / "Hand_0000002.jpg", 45, 60, shift=5)  # as large: the build's map exactly
    write_photo(hands / "Hand_0000003.jpg", 135, 180, shift=-6)
    write_segmenter(tmp_path / "segmenter.safetensors")
    return tmp_path / "hands11k"


def test_predictions_round_trip_through_the_importer(photo_dir: Path, tmp_path: Path):
    seg = load_trained_segmenter(tmp_path / "segmenter.safetensors", NaturalConfig())
    assert seg.settings == SETTINGS and seg.version == "jointaug-segmenter-0123456789ab"
    out = tmp_path / "tasks.json"
    opts = ExportOptions(url_prefix="/data/local-files/?d=", root=tmp_path)
    summary = export_tasks([photo_dir], seg, out, opts)
    tasks = json.loads(out.read_text())
    assert summary.n_tasks == len(tasks) == 3 and summary.n_skipped == 0
    photos = list_photos([photo_dir])
    for task, photo in zip(tasks, photos, strict=True):
        assert task["data"]["image"] == f"/data/local-files/?d=hands11k/Hands/{photo.name}"
        (pred,) = task["predictions"]
        assert pred["model_version"] == seg.version and 0 < pred["score"] <= 1
        for res in pred["result"]:
            assert res["type"] == "brushlabels" and res["value"]["format"] == "rle"
            assert (res["from_name"], res["to_name"]) == (FROM_NAME, TO_NAME)
            with Image.open(photo) as im:
                assert (res["original_width"], res["original_height"]) == im.size
    # a labeller accepts every prediction unchanged: the export then holds them as annotations
    accepted = [
        {"data": t["data"], "annotations": [{"result": t["predictions"][0]["result"]}]}
        for t in tasks
    ]
    (tmp_path / "accepted.json").write_text(json.dumps(accepted))
    labels = match_labels(
        read_labelstudio_export(tmp_path / "accepted.json"), [p.name for p in photos]
    )
    assert sorted(labels) == [p.name for p in photos]
    n_joints = 0
    for photo in photos:
        regions, _ = predict_regions(seg, photo)
        lab = labels[photo.name]
        assert lab.kinds == {"brush"}
        assert set(lab.masks) == {j for j, i in JOINT_INDEX.items() if (regions == i).any()}
        for joint, mask in lab.masks.items():
            assert np.array_equal(mask, regions == JOINT_INDEX[joint]), (photo.name, joint)
        assert np.array_equal(regions_from_labels(lab, regions.shape), regions)
        n_joints += len(lab.masks)
    assert n_joints >= 6  # the round trip is not vacuous


def test_small_photo_gets_exactly_the_builds_regions(photo_dir: Path, tmp_path: Path):
    """A photo no larger than photo_max_side: the map equals natural-source's (source._write_cases)."""
    seg = load_trained_segmenter(tmp_path / "segmenter.safetensors", NaturalConfig())
    photo = photo_dir / "Hands" / "Hand_0000002.jpg"
    rgb = load_photo(photo, SETTINGS["photo_max_side"])
    mask = hand_mask(rgb)
    x, box = crop_input(rgb, mask, SETTINGS["segmenter_image_size"])
    p = predict_scores(seg.model, x[None])[0]
    build = np.where(mask, uncrop_scores(p, box, mask.shape), 0)
    regions, scores = predict_regions(seg, photo)
    assert np.array_equal(regions, build)
    assert set(scores) == {j for j, i in JOINT_INDEX.items() if (build == i).any()}


def test_skip_labelled_and_url_quoting(photo_dir: Path, tmp_path: Path):
    seg = load_trained_segmenter(tmp_path / "segmenter.safetensors", NaturalConfig())
    done = [
        {
            "data": {"image": "/data/upload/1/8f3c2a1b-Hand_0000002.jpg"},
            "annotations": [{"result": [brush_result("wrist", np.ones((45, 60), bool))]}],
        }
    ]
    (tmp_path / "done.json").write_text(json.dumps(done))
    spaced = tmp_path / "my photos"
    spaced.mkdir()
    write_photo(spaced / "Hand 9.jpg", 45, 60)
    opts = ExportOptions(
        url_prefix="http://host/files/", root=tmp_path, skip_labelled=tmp_path / "done.json"
    )
    files = [photo_dir, spaced / "Hand 9.jpg"]
    summary = export_tasks(files, seg, tmp_path / "t.json", opts)
    tasks = json.loads((tmp_path / "t.json").read_text())
    urls = [t["data"]["image"] for t in tasks]
    assert summary.n_skipped == 1 and not any("Hand_0000002" in u for u in urls)
    assert "http://host/files/my%20photos/Hand%209.jpg" in urls
    assert {lab.source for lab in read_labelstudio_export_as_annotations(tasks, tmp_path)} >= {
        "Hand 9.jpg"
    }


def read_labelstudio_export_as_annotations(tasks: list[dict], tmp_path: Path):
    accepted = [
        {"data": t["data"], "annotations": [{"result": t["predictions"][0]["result"]}]}
        for t in tasks
    ]
    (tmp_path / "acc.json").write_text(json.dumps(accepted))
    return read_labelstudio_export(tmp_path / "acc.json")


def test_bad_inputs_name_the_file(photo_dir: Path, tmp_path: Path):
    cfg = NaturalConfig()
    with pytest.raises(SegmenterFileError, match="nope.safetensors"):
        load_trained_segmenter(tmp_path / "nope.safetensors", cfg)
    (tmp_path / "junk.safetensors").write_bytes(b"not weights")
    with pytest.raises(SegmenterFileError, match="junk.safetensors"):
        load_trained_segmenter(tmp_path / "junk.safetensors", cfg)
    write_segmenter(tmp_path / "old.safetensors", settings=None)  # no settings: cfg's channels
    with pytest.raises(SegmenterFileError, match=r"old.safetensors.*channels \[16, 32, 64, 128\]"):
        load_trained_segmenter(tmp_path / "old.safetensors", cfg)
    old = load_trained_segmenter(
        tmp_path / "old.safetensors", NaturalConfig(segmenter_channels=[8, 16])
    )
    assert old.settings["segmenter_image_size"] == cfg.segmenter_image_size
    seg = load_trained_segmenter(tmp_path / "segmenter.safetensors", cfg)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExportError, match="empty: no photos"):
        export_tasks([tmp_path / "empty"], seg, tmp_path / "t.json", ExportOptions(root=tmp_path))
    with pytest.raises(ExportError, match="missing.jpg: no such"):
        export_tasks([tmp_path / "missing.jpg"], seg, tmp_path / "t.json", ExportOptions())
    with pytest.raises(ExportError, match="not inside --root"):
        export_tasks([photo_dir], seg, tmp_path / "t.json", ExportOptions(root=tmp_path / "empty"))
    (tmp_path / "b").mkdir()
    write_photo(tmp_path / "b" / "Hand_0000001.jpg", 45, 60)
    with pytest.raises(ExportError, match="second photo named Hand_0000001.jpg"):
        list_photos([photo_dir, tmp_path / "b"])
    (tmp_path / "b" / "broken.jpg").write_bytes(b"no jpeg")
    with pytest.raises(ExportError, match="broken.jpg: cannot read photo"):
        predict_regions(seg, tmp_path / "b" / "broken.jpg")
    assert not (tmp_path / "t.json").exists()


def test_cli_config_and_export(photo_dir: Path, tmp_path: Path, monkeypatch):
    runner = CliRunner()
    res = runner.invoke(app, ["labelstudio-config"])
    assert res.exit_code == 0 and ET.fromstring(res.stdout).find("BrushLabels") is not None
    res = runner.invoke(app, ["labelstudio-config", "--out", str(tmp_path / "cfg.xml")])
    assert res.exit_code == 0 and (tmp_path / "cfg.xml").read_text() == labelling_config()
    # the build's OUT folder stands for OUT.work/segmenter.safetensors
    (tmp_path / "nat").mkdir()
    (tmp_path / "nat.work").mkdir()
    (tmp_path / "segmenter.safetensors").rename(tmp_path / "nat.work" / "segmenter.safetensors")
    monkeypatch.chdir(tmp_path)
    args = ["labelstudio-export", str(photo_dir), "--segmenter", "nat", "--out", "tasks.json"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    tasks = json.loads((tmp_path / "tasks.json").read_text())
    assert tasks[0]["data"]["image"] == f"{DEFAULT_URL_PREFIX}hands11k/Hands/Hand_0000001.jpg"
    assert DEFAULT_URL_PREFIX == "/data/local-files/?d="  # the CLI's default spells it out
    res = runner.invoke(app, [*args[:3], "empty-place", "--out", "x.json"])
    assert res.exit_code == 2 and "empty-place" in res.output
