import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from jointaug.cli import app
from jointaug.dataset.show import CHART_IN, ROW_IN, montage_size
from jointaug.dataset.validate import validate_dataset


@pytest.mark.slow
def test_demo_first_stages_and_rerun_skips(tmp_path):
    out = tmp_path / "demo"
    args = [
        "demo",
        "--out",
        str(out),
        "--set",
        "phantom.patients=6",
        "--set",
        "phantom.size=64",
        "--set",
        "split.folds=3",
        "--stop-after",
        "splits",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert validate_dataset(out / "phantom").ok
    splits = json.loads((out / "run" / "splits.json").read_text())
    assert len(splits["folds"]) == 3
    with Image.open(out / "montage.png") as im:
        px = np.asarray(im.convert("L"), dtype=np.float32)
    assert px.shape[::-1] == montage_size(8)  # the demo shows 8 cases
    h, w = px.shape
    panels = px[: int(h * 3 * ROW_IN / (3 * ROW_IN + CHART_IN))]  # 3 rows of pictures per case
    for k in range(8):  # each case's column holds a drawn picture, not blank page
        assert (panels[:, k * w // 8 : (k + 1) * w // 8] < 250).mean() > 0.05, k
    assert (px[panels.shape[0] :] < 250).mean() > 0.03  # the prevalence chart below
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "exists, skipped" in again.output
