"""The per-joint picture reads per_label.csv rows: one row per method and set size (sizes
never averaged together), the baseline first, fold means, the positives counted once."""

import math

import numpy as np
from PIL import Image

from jointaug.experiments.figures import per_joint_figure, per_joint_grid


def _rows():
    rows = []
    for method, size, tpr in [
        ("mp", 2048, 0.9),
        ("mp", 128, 0.1),
        ("baseline", 0, 0.5),
        ("tuned_threshold", 0, 0.6),
    ]:
        for fold in (0, 1):
            # fold 1's TPR differs, so the mean over folds is checked
            rows.append(
                {
                    "method": method,
                    "size": str(size),
                    "fold": str(fold),
                    "label": "R_wrist",
                    "positives": "3",
                    "tpr": str(tpr + 0.1 * fold),
                    "tnr": "0.8",
                }
            )
            rows.append(
                {
                    "method": method,
                    "size": str(size),
                    "fold": str(fold),
                    "label": "R_dip5",
                    "positives": "0",
                    "tpr": "nan",
                    "tnr": "1.0",
                }
            )
    return rows


def test_rows_are_method_and_size_with_the_baseline_first():
    names, labels, grid, pos = per_joint_grid(_rows())
    assert names == ["baseline", "tuned_threshold", "mp (128)", "mp (2048)"]
    assert labels == ["R_wrist", "R_dip5"]
    tpr = dict(zip(names, grid["tpr"][:, 0], strict=True))
    assert math.isclose(tpr["mp (128)"], 0.15) and math.isclose(tpr["mp (2048)"], 0.95)
    assert math.isclose(tpr["baseline"], 0.55)
    assert np.isnan(grid["tpr"][:, 1]).all()  # no positives: TPR undefined, drawn grey
    assert np.allclose(grid["tnr"][:, 1], 1.0)
    # 3 positives in each of the 2 folds, counted once (not once per method)
    assert pos == [6, 0]


def test_a_row_without_a_size_is_the_bare_method():
    rows = [dict(r, size="") for r in _rows() if r["method"] == "baseline"]
    names, _, _, pos = per_joint_grid(rows)
    assert names == ["baseline"] and pos == [6, 0]


def test_methods_filter_and_empty_input():
    names, *_ = per_joint_grid(_rows(), methods=["baseline", "mp"])
    assert names == ["baseline", "mp (128)", "mp (2048)"]
    assert per_joint_figure([], "/nonexistent/never_written.png") is None


def test_figure_is_written(tmp_path):
    out = per_joint_figure(_rows(), tmp_path / "per_joint.png")
    with Image.open(out) as im:
        assert im.width > 300 and im.height > 200
