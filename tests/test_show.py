"""The montage: size, content, and any dataset in the contract format."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from jointaug.dataset.format import DatasetMeta, read_dataset
from jointaug.dataset.phantom import write_phantom
from jointaug.dataset.show import label_series, montage, montage_size, pick_cases, prevalence
from jointaug.dataset.writer import DatasetWriter


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    out = tmp_path_factory.mktemp("show") / "phantom"
    return write_phantom(out, patients=4, size=96, seed=1, progress=False)


@pytest.fixture()
def tiny(tmp_path):
    """A non-hand dataset: 3 labels, 3 cases, one without maps, one unknown label cell."""
    meta = DatasetMeta(
        name="tiny",
        labels=["knee", "hip", "ankle"],
        groups={"all": ["knee", "hip", "ankle"]},
        classification_views=["front"],
    )
    rng = np.random.default_rng(0)
    with DatasetWriter(tmp_path / "tiny", meta) as w:
        for i in range(2):
            img = rng.poisson(20, (40, 50))
            regions = np.zeros((40, 50), np.uint8)
            regions[5:15, 5:15], regions[20:30, 30:45], regions[30:38, 5:12] = 1, 2, 3
            tissue = (regions > 0).astype(np.uint8) + (regions == 2)
            w.add(
                f"c{i}",
                f"pt{i}",
                "front",
                img,
                labels=[1, 1, np.nan if i else 0],
                tissue=tissue,
                regions=regions,
            )
        w.add("c2", "pt0", "side", rng.poisson(5, (30, 30)))
    return read_dataset(tmp_path / "tiny")


def _png(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("L"), dtype=np.float32)


def test_phantom_montage_has_expected_size_and_content(phantom, tmp_path):
    out = montage(phantom, tmp_path / "m.png", n=6, seed=0)
    px = _png(out)
    assert px.shape[::-1] == montage_size(6)
    assert px.std() > 10
    assert not list(tmp_path.glob(".m.png*"))  # the temp file was renamed away


def test_pick_cases_shows_a_pair_and_an_oblique(phantom):
    picked = pick_cases(phantom, 6, np.random.default_rng(0))
    assert len(picked) == len({c.case_id for c in picked}) == 6
    assert picked[0].patient_id == picked[1].patient_id
    assert {picked[0].view, picked[1].view} == {"palmar", "dorsal"}
    assert picked[0].case_id.replace("palmar", "dorsal") == picked[1].case_id
    assert any(c.view.startswith("oblique") for c in picked)


def test_montage_of_a_non_hand_dataset(tiny, tmp_path):
    out = montage(tiny, tmp_path / "tiny.png", n=8, seed=2)
    px = _png(out)
    assert px.shape[::-1] == montage_size(3)  # only 3 cases exist
    assert px.std() > 10


def test_label_series_groups_hands_and_falls_back(phantom, tiny):
    names, series = label_series(phantom)
    assert names[0] == "wrist" and names[-1] == "dip5" and len(names) == 15
    assert list(series) == ["right", "left"]
    assert [phantom.labels[i] for i in series["left"]][:2] == ["L_wrist", "L_mcp1"]
    names, series = label_series(tiny)
    assert names == ["knee", "hip", "ankle"] and list(series) == ["all"]


def test_prevalence_ignores_unknown_cells(tiny):
    rate, overall, n = prevalence(tiny)
    assert n == 2
    np.testing.assert_allclose(rate, [1.0, 1.0, 0.0])
    assert overall == pytest.approx(4 / 5)


def test_cli_show(phantom, tmp_path):
    from jointaug.cli import app

    res = CliRunner().invoke(
        app, ["show", str(phantom.root), "--out", str(tmp_path / "c.png"), "--n", "3"]
    )
    assert res.exit_code == 0, res.output
    assert _png(tmp_path / "c.png").shape[::-1] == montage_size(3)
    res = CliRunner().invoke(app, ["show", str(tmp_path / "nowhere")])
    assert res.exit_code == 2 and "dataset.json" in res.output
