"""The forward (physics-sketch) control: imaging model fit and set writing (no torch)."""

import json

import numpy as np
import pytest

from jointaug.config import load_config
from jointaug.dataset.format import DatasetMeta, read_dataset
from jointaug.dataset.validate import validate_dataset
from jointaug.dataset.writer import DatasetWriter
from jointaug.sets.forward import make_forward_set
from jointaug.sets.forward_model import blur, fit_forward_model, render_rate
from jointaug.sets.sources import mp_source, plan_case

LABELS = ["R_a", "R_b", "L_a", "L_b"]
GROUPS = {"right": ["R_a", "R_b"], "left": ["L_a", "L_b"]}
SIZE = 48
RATES = (0.5, 6.0, 18.0, 40.0)


def _maps():
    tissue = np.zeros((SIZE, SIZE), np.uint8)
    tissue[8:40, 4:20] = 1
    tissue[8:40, 28:44] = 1
    regions = np.zeros_like(tissue)
    for k, (r, c) in enumerate([(12, 8), (26, 10), (12, 32), (26, 34)], start=1):
        regions[r : r + 6, c : c + 6] = k
    return tissue, regions


def _dataset(root, patients=6, sigma=1.5, seed=0):
    rng = np.random.default_rng(seed)
    base_t, regions = _maps()
    with DatasetWriter(root, DatasetMeta(name="fw", labels=LABELS, groups=GROUPS)) as w:
        for p in range(patients):
            vec = (rng.random(4) < 0.5).astype(np.float32)
            tissue = base_t.copy()
            for k in np.flatnonzero(vec):
                tissue[regions == k + 1] = 2 + (k % 2)
            dose = 0.8 + 0.4 * rng.random()
            rate = blur(np.choose(tissue, RATES) * dose, sigma)
            for view in ("palmar", "dorsal"):
                w.add(
                    f"p{p}_{view}",
                    f"p{p}",
                    view,
                    rng.poisson(rate),
                    labels=vec,
                    tissue=tissue,
                    regions=regions,
                )
    return read_dataset(root)


def test_fit_recovers_blur_and_rates():
    rng = np.random.default_rng(0)
    base_t, regions = _maps()
    imgs, tissues = [], []
    for i in range(8):
        t = base_t.copy()
        t[regions == 1 + i % 4] = 2 + i % 2
        imgs.append(rng.poisson(blur(np.choose(t, RATES) * 10, 2.0)))
        tissues.append(t)
    m = fit_forward_model(imgs, tissues, [f"c{i}" for i in range(8)], sigmas=[0, 1, 2, 3, 4])
    assert m.sigma_px == 2
    assert m.low_ratio == pytest.approx(18 / 6, rel=0.1)
    assert m.high_ratio == pytest.approx(40 / 6, rel=0.1)
    bg, normal = m.per_image["c0"]
    assert normal == pytest.approx(60, rel=0.05)
    r = render_rate(tissues[0], m.rates_for("c0"), m.sigma_px)
    assert r.min() >= 0 and r.mean() == pytest.approx(imgs[0].mean(), rel=0.05)
    assert m.rates_for("unknown")[1] == pytest.approx(60, rel=0.05)


def test_fit_rejects_bad_input():
    with pytest.raises(ValueError):
        fit_forward_model([], [], [])
    with pytest.raises(ValueError, match="shape"):
        fit_forward_model([np.zeros((4, 4))], [np.zeros((5, 5), np.uint8)], ["a"])
    with pytest.raises(ValueError):
        render_rate(np.full((3, 3), 4), np.ones(4), 1.0)


def test_forward_set_is_valid_paired_with_mp_and_grows(tmp_path):
    ds = _dataset(tmp_path / "data")
    train = ("p0", "p1", "p2", "p3")
    config = load_config("demo", ["perlin.max_tries=50"])
    out = tmp_path / "forward-perlin"
    make_forward_set(
        out, 5, dataset=ds, train_patients=train, fold=0, config=config, progress=False, perlin=True
    )
    assert validate_dataset(out).ok
    first = read_dataset(out)
    assert len(first.cases) == 5
    settings = json.loads((out / "augmentation.json").read_text())
    assert settings["kind"] == "forward" and settings["forward_model"]["sigma_px"] == pytest.approx(
        1.5
    )  # the true blur (grid 8 px at 256 = 1.5 px at 48)
    # case i has the labels and the condition of mp-perlin case i (a paired control)
    src = mp_source(ds, train)
    for i, case in enumerate(first.cases):
        p = plan_case(i, src, config.diffusion.seed, 0, "mp-perlin", config.sampler, config.perlin)
        np.testing.assert_array_equal(first.label_matrix([case])[0], p.composed.labels)
        np.testing.assert_array_equal(first.tissue(case), p.composed.condition)
        assert case.patient_id in train
    # hot joints are hot: high regions brighter than normal tissue
    imgs = [first.image(c).astype(float) for c in first.cases]
    tis = [first.tissue(c) for c in first.cases]
    high = np.mean([im[t == 3].mean() for im, t in zip(imgs, tis, strict=True) if (t == 3).any()])
    normal = np.mean([im[t == 1].mean() for im, t in zip(imgs, tis, strict=True)])
    assert high > 3 * normal
    # grows by appending: the first cases are unchanged
    make_forward_set(
        out, 8, dataset=ds, train_patients=train, fold=0, config=config, progress=False, perlin=True
    )
    grown = read_dataset(out)
    assert len(grown.cases) == 8
    for a, b in zip(first.cases, grown.cases[:5], strict=True):
        np.testing.assert_array_equal(first.image(a), grown.image(b))
    # other settings are not mixed into an existing set
    with pytest.raises(ValueError, match="other settings"):
        make_forward_set(
            out, 9, dataset=ds, train_patients=train, fold=0, config=config, progress=False
        )
