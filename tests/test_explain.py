"""Explanations on the scan: class-activation maps per joint, their peaks, the overlay.

- the drawing helpers are numpy-only (no torch imported) and undo prepare_image's geometry;
- a hand-built network whose evidence for joint j is the image inside joint j's region
  of a phantom image: every joint's map peak must fall in that region (catches swapped
  labels, transposed axes, a wrong class per row);
- a tiny classifier trained on the 4-square signal data: the peaks of its true positives
  mostly fall in the right square (a weak check on a real, trained DenseNet);
- ``jointaug predict`` on a phantom run: maps, peaks and overlays written, deterministic.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from jointaug.classify.transforms import prepare_image
from jointaug.experiments.overlay import (
    draw_explanations,
    map_peaks,
    prob_colour,
    to_image_grid,
    top_region,
)


def _blob(shape, x, y, sigma=2.0):
    rr, cc = np.mgrid[: shape[0], : shape[1]]
    return np.exp(-((cc - x) ** 2 + (rr - y) ** 2) / (2 * sigma**2)).astype(np.float32)


def test_drawing_helpers_need_no_torch():
    code = (
        "import sys, numpy as np\n"
        "from jointaug.experiments.overlay import draw_explanations, to_image_grid\n"
        "m = to_image_grid(np.random.default_rng(0).random((2, 8, 8)), (12, 16))\n"
        "rgb = draw_explanations(np.ones((12, 16)), m, np.array([0.9, 0.1]), 0.5, zoom=2)\n"
        "assert rgb.shape == (24, 32, 3) and 'torch' not in sys.modules, sorted(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_to_image_grid_undoes_prepare_image():
    img = np.full((48, 64), 2.0, np.float32)  # not square: prepare_image pads rows
    img[9:12, 49:52] = 400.0  # a hot spot centred at x = 50, y = 10
    prepared = prepare_image(img, 32)
    back = to_image_grid(prepared[None], img.shape)
    assert back.shape == (1, 48, 64) and back.dtype == np.float32
    x, y = map_peaks(back)[0]
    assert abs(x - 50) <= 1 and abs(y - 10) <= 1


def test_peaks_regions_and_drawing():
    maps = np.stack(
        [
            _blob((20, 20), 5, 12) + 0.8 * _blob((20, 20), 16, 3),
            _blob((20, 20), 15, 4),
            np.zeros((20, 20), np.float32),
        ]
    )
    peaks = map_peaks(maps)
    assert peaks[0].tolist() == [5, 12] and peaks[1].tolist() == [15, 4]
    assert np.isnan(peaks[2]).all()  # no evidence anywhere: no peak
    region = top_region(maps[0])
    assert region[12, 5] and not region[3, 16]  # the second blob is not the peak's part
    image = np.random.default_rng(0).poisson(5, (20, 20)).astype(float)
    probs = np.array([0.9, 0.3, 0.95])  # joint 1 not called; joint 2 called without a map
    rgb = draw_explanations(image, maps, probs, 0.5, zoom=3)
    assert rgb.shape == (60, 60, 3)
    colour = prob_colour(0.9, 0.5)
    assert (rgb[12 * 3 + 1, 5 * 3 + 1] == colour).all()  # the plus at joint 0's peak
    coloured = np.ptp(rgb.astype(int), axis=2) > 0
    rr, cc = np.nonzero(coloured)
    assert coloured.sum() > 20 and np.hypot(rr / 3 - 12, cc / 3 - 5).max() < 6  # near joint 0 only
    assert (prob_colour(0.5, 0.5) == [255, 160, 0]).all() and (
        prob_colour(1.0, 0.5) == [180, 0, 0]
    ).all()


class RegionNet(torch.nn.Module):
    """Logit j = 40 * mean(image inside region j) - 2: joint j's evidence IS its region."""

    def __init__(self, masks: np.ndarray):
        super().__init__()
        self.register_buffer("masks", torch.as_tensor(masks, dtype=torch.float32)[None])
        self.scale = torch.nn.Parameter(torch.tensor(40.0))
        self.relu = torch.nn.ReLU()

    def forward(self, x):
        return self.scale * self.relu(x * self.masks).mean(dim=(2, 3)) - 2.0


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    from jointaug.dataset.phantom import write_phantom

    return write_phantom(
        tmp_path_factory.mktemp("ph") / "data", patients=6, size=64, seed=0, progress=False
    )


@pytest.mark.parametrize("method", ["gradcam", "occlusion"])
def test_known_network_peaks_fall_in_each_joints_region(phantom, method):
    from jointaug.classify.explain import EnsembleExplainer
    from jointaug.dataset.io import read_image

    case = phantom.classification_cases()[0]
    regions = read_image(phantom.path(case.regions)).astype(int)
    image = phantom.image(case)
    masks = np.stack([regions == j for j in range(1, 31)])
    ex = EnsembleExplainer([RegionNet(masks).eval()], method, layer="relu")
    maps = to_image_grid(ex(prepare_image(image, 64)), image.shape)
    assert maps.shape == (30, 64, 64) and np.isfinite(maps).all() and maps.max() <= 1
    hits = [regions[int(y), int(x)] == j + 1 for j, (x, y) in enumerate(map_peaks(maps))]
    assert all(hits) if method == "gradcam" else np.mean(hits) >= 0.8, hits


def test_trained_network_points_at_the_right_square(tmp_path):
    from helpers import LABELS, signal_images, signal_imageset, tiny_config

    from jointaug.classify.explain import EnsembleExplainer
    from jointaug.classify.model import build_model
    from jointaug.classify.train import MODEL, FitOptions, fit
    from jointaug.weights import load_tensors

    rng = np.random.default_rng(0)
    cfg = tiny_config(flip_prob=0.0, rotate_deg=0.0, lr=1e-2, max_samples=640, patience_samples=640)
    fit(
        tmp_path,
        signal_imageset(rng, 64),
        signal_imageset(rng, 32),
        cfg,
        0,
        LABELS,
        FitOptions(progress=False),
    )
    model = build_model(cfg, 4, seed=None)
    model.load_state_dict(load_tensors(tmp_path / MODEL)[0])
    ex = EnsembleExplainer([model.eval()], "gradcam")
    assert ex.layer == "class_layers.relu"  # MONAI's DenseNet example; 4 x 4 here
    imgs, y = signal_images(np.random.default_rng(5), 12)
    hits = []
    for img, lab in zip(imgs, y, strict=True):
        peaks = map_peaks(to_image_grid(ex(prepare_image(img, 32)), img.shape))
        for j in np.nonzero(lab)[0]:  # label j's square: rows/cols from signal_images
            r0, c0 = (j // 2) * 32 + 8, (j % 2) * 32 + 8
            x, y_ = peaks[j]
            hits.append(r0 - 4 <= y_ < r0 + 20 and c0 - 4 <= x < c0 + 20)
    assert len(hits) >= 10 and np.mean(hits) >= 0.6, hits


@pytest.fixture(scope="module")
def tiny_run(phantom, tmp_path_factory):
    """A run folder with one trained baseline classifier (32 px, tiny DenseNet)."""
    from jointaug.classify.data import load_images
    from jointaug.classify.train import FitOptions, fit
    from jointaug.config import load_config
    from jointaug.experiments.rundir import RunDir

    cfg = load_config(
        "paper",
        [
            "split.folds=3",
            "classify.image_size=32",
            "classify.block_config=[2, 2]",
            "classify.growth_rate=8",
            "classify.init_features=16",
            "classify.batch_size=16",
            "classify.max_samples=64",
            "classify.patience_samples=64",
            "classify.threshold=0.2",
        ],
    )
    run = RunDir.create(tmp_path_factory.mktemp("run") / "run", phantom.root, cfg)
    cases = phantom.classification_cases()
    data = load_images(phantom, cases, 32, "train")
    d = run.classify_dir(0, "baseline", 0)
    fit(d, data, data, cfg.classify, 0, list(phantom.labels), FitOptions(progress=False))
    (d / "done").write_text("")
    return run, [phantom.path(c.image) for c in cases[:2]]


def test_predict_writes_maps_peaks_and_overlays_on_the_scan(tiny_run, tmp_path):
    from jointaug.experiments.predict import predict_images

    run, images = tiny_run
    csv_path = predict_images(run, images, tmp_path / "a", method="baseline")
    header = csv_path.read_text().splitlines()[0].split(",")
    labels = list(run.dataset.labels)
    assert header == ["image", *(f"p_{x}" for x in labels), *labels, "warnings"]  # unchanged
    for img in images:
        cams = np.load(tmp_path / "a" / f"{img.stem}_cam.npy", allow_pickle=False)
        assert cams.shape == (30, 64, 64) and cams.dtype == np.float32
        assert np.isfinite(cams).all() and cams.min() >= 0 and cams.max() <= 1
        doc = json.loads((tmp_path / "a" / f"{img.stem}_cam.json").read_text())
        assert doc["method"] == "gradcam" and doc["layer"] == "class_layers.relu"
        assert [j["label"] for j in doc["joints"]] == labels and doc["shape"] == [64, 64]
        for j, joint in enumerate(doc["joints"]):
            if joint["x"] is not None:
                assert 0 <= joint["x"] < 64 and 0 <= joint["y"] < 64
                assert cams[j, joint["y"], joint["x"]] == pytest.approx(cams[j].max())
        called = [j for j in doc["joints"] if j["inflamed"] and j["x"] is not None]
        with Image.open(tmp_path / "a" / f"{img.stem}_overlay.png") as im:
            rgb = np.asarray(im.convert("RGB")).astype(int)
        left = rgb[:, : rgb.shape[1] // 2]
        orange_red = (left[..., 0] > 150) & (left[..., 2] < 60) & (left[..., 0] - left[..., 1] > 80)
        assert called and orange_red.sum() > 20 * len(called) ** 0.5  # markers on the scan
    again = predict_images(run, images[:1], tmp_path / "b", method="baseline")
    assert again.is_file()
    stem = images[0].stem
    assert np.array_equal(
        np.load(tmp_path / "a" / f"{stem}_cam.npy"), np.load(tmp_path / "b" / f"{stem}_cam.npy")
    )
    predict_images(run, images[:1], tmp_path / "c", method="baseline", explain="none")
    assert (tmp_path / "c" / f"{stem}_overlay.png").is_file()
    assert not (tmp_path / "c" / f"{stem}_cam.npy").exists()


def test_predict_cli_explain_options(tiny_run, tmp_path):
    from jointaug.cli import app

    run, images = tiny_run
    args = [
        "predict",
        str(run.path),
        str(images[0]),
        "--method",
        "baseline",
        "--out",
        str(tmp_path),
    ]
    bad = CliRunner().invoke(app, [*args, "--explain", "magic"])
    assert bad.exit_code == 2 and "gradcam, occlusion, none" in " ".join(bad.output.split())
    layer = CliRunner().invoke(app, [*args, "--cam-layer", "features.nope"])
    assert layer.exit_code == 2 and "features.transition1.relu" in " ".join(layer.output.split())
    ok = CliRunner().invoke(app, [*args, "--cam-layer", "features.transition1.relu"])
    assert ok.exit_code == 0, ok.output
    doc = json.loads((tmp_path / f"{Path(images[0]).stem}_cam.json").read_text())
    assert doc["layer"] == "features.transition1.relu" and "_cam.npy" in ok.output
