"""The conditions grid (library function and the ``jointaug conditions`` verb)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from jointaug.cli import app
from jointaug.dataset.io import write_counts_png, write_label_png
from jointaug.files import write_text_atomic
from jointaug.masks.grid import CAPTION, GAP, HEADER, PALETTE, conditions_grid

LABELS = ["R_a", "R_b", "L_a", "L_b"]
SIZE = 48


def _maps(shift: int):
    tissue = np.zeros((SIZE, SIZE), np.uint8)
    tissue[4:44, 2 + shift : 22 + shift] = 1
    tissue[4:44, 26:46] = 1
    regions = np.zeros((SIZE, SIZE), np.uint8)
    regions[8:18, 4 + shift : 16 + shift] = 1
    regions[26:38, 4 + shift : 16 + shift] = 2
    regions[8:18, 28:40] = 3
    regions[26:38, 28:40] = 4
    return tissue, regions


@pytest.fixture
def tiny(tmp_path):
    """A contract-format folder: 2 cases with both maps, 1 image-only case."""
    root = tmp_path / "ds"
    rows = ["case_id,patient_id,view,image,tissue,regions," + ",".join(LABELS)]
    rng = np.random.default_rng(0)
    for k in range(3):
        cid = f"c{k}"
        write_counts_png(root / f"images/{cid}.png", rng.poisson(20, (SIZE, SIZE)))
        tissue_rel = regions_rel = ""
        if k < 2:
            tissue, regions = _maps(k * 2)
            tissue_rel, regions_rel = f"masks/tissue/{cid}.png", f"masks/regions/{cid}.png"
            write_label_png(root / tissue_rel, tissue)
            write_label_png(root / regions_rel, regions)
        rows.append(f"{cid},p{k},palmar,images/{cid}.png,{tissue_rel},{regions_rel},0,1,0,")
    write_text_atomic(root / "cases.csv", "\n".join(rows) + "\n")
    meta = {"name": "tiny", "labels": LABELS, "groups": {"right": LABELS[:2], "left": LABELS[2:]}}
    write_text_atomic(root / "dataset.json", json.dumps(meta))
    return root


def test_grid_layout_and_content(tiny, tmp_path):
    out = conditions_grid(tiny, tmp_path / "g.png", n=5, perlin=True, seed=0, panel_px=64)
    im = np.asarray(Image.open(out).convert("RGB"))
    cols, row_h = 5, 64 + CAPTION + GAP
    assert im.shape == (HEADER + 5 * row_h, cols * 64 + (cols + 1) * GAP, 3)
    palette = {tuple(c) for c in PALETTE}
    inflamed_rows = 0
    for r in range(5):
        y = HEADER + r * row_h
        x = GAP + 3 * (64 + GAP)  # the "condition" panel: only tissue-map colours
        panel = im[y : y + 64, x : x + 64].reshape(-1, 3)
        assert {tuple(p) for p in np.unique(panel, axis=0)} <= palette
        inflamed_rows += bool(
            np.any(np.all(panel == PALETTE[2], 1) | np.all(panel == PALETTE[3], 1))
        )
    assert inflamed_rows >= 2  # p_any = 0.9: almost every row shows inflammation
    again = np.asarray(
        Image.open(conditions_grid(tiny, tmp_path / "h.png", n=5, seed=0, panel_px=64)).convert(
            "RGB"
        )
    )
    assert np.array_equal(im, again)  # deterministic for a seed


def test_grid_without_perlin_is_narrower(tiny, tmp_path):
    out = conditions_grid(tiny, tmp_path / "g.png", n=2, perlin=False, panel_px=32)
    w, h = Image.open(out).size
    assert w == 4 * 32 + 5 * GAP and h == HEADER + 2 * (32 + CAPTION + GAP)


def test_grid_needs_source_cases(tiny, tmp_path):
    text = (tiny / "cases.csv").read_text().splitlines()
    kept = [text[0], text[3]]  # only the image-only case
    (tiny / "cases.csv").write_text("\n".join(kept) + "\n")
    with pytest.raises(ValueError, match="tissue map and a region map"):
        conditions_grid(tiny, tmp_path / "g.png")
    assert not (tmp_path / "g.png").exists()


def test_cli_conditions(tiny, tmp_path):
    out = tmp_path / "cli.png"
    result = CliRunner().invoke(
        app, ["conditions", str(tiny), "--n", "3", "--out", str(out), "--no-perlin", "--seed", "2"]
    )
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == (4 * 256 + 5 * GAP, HEADER + 3 * (256 + CAPTION + GAP))
    assert str(out) in result.output
    result = CliRunner().invoke(app, ["conditions", str(tmp_path / "missing"), "--out", str(out)])
    assert result.exit_code == 2 and "dataset.json" in result.output
