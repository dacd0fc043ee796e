"""The effect-against-size figure reads stats.csv rows: only sized methods against the
baseline, on the asked metric and threshold, each curve starting at the baseline (0, 0)."""

import numpy as np
from PIL import Image

from jointaug.experiments.figures import effect_figure, effect_points


def _row(method, metric="gms", threshold="tuned", reference="baseline", models="single", d=0.1):
    return {
        "models": models,
        "method": method,
        "reference": reference,
        "metric": metric,
        "threshold": threshold,
        "estimate": d,
        "ci_low": d - 0.05,
        "ci_high": d + 0.05,
    }


ROWS = [
    _row("mp (512)", d=0.10),
    _row("mp (128)", d=0.02),
    _row("oracle (2048)", d=0.30),
    _row("mp (512)", metric="auprc", threshold="none", d=0.04),
    _row("mp (512)", reference="oversample (512)", d=0.9),  # a control comparison: not drawn
    _row("mp (512)", models="ensemble", d=0.8),  # the seed ensemble: its own table
    _row("mp (512)", threshold="default", d=0.7),  # threshold 0.5: not this figure
    _row("tuned_threshold", d=0.6),  # no set size
]


def test_effect_points_keep_only_sized_methods_against_the_baseline():
    gms = effect_points(ROWS, "gms", "tuned")
    assert list(gms) == ["mp", "oracle"]
    expect = {
        "mp": [(0, 0.0, 0.0, 0.0), (128, 0.02, -0.03, 0.07), (512, 0.10, 0.05, 0.15)],
        "oracle": [(0, 0.0, 0.0, 0.0), (2048, 0.30, 0.25, 0.35)],
    }
    for method, points in expect.items():
        assert [p[0] for p in gms[method]] == [p[0] for p in points]
        np.testing.assert_allclose(np.array(gms[method]), np.array(points), atol=1e-12)
    auprc = effect_points(ROWS, "auprc", "none")
    assert list(auprc) == ["mp"] and auprc["mp"][1][0] == 512
    assert auprc["mp"][1][1] == 0.04


def test_effect_figure_draws_each_method_and_nothing_without_sized_rows(tmp_path):
    assert effect_figure([_row("tuned_threshold")], tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()
    out = effect_figure(ROWS, tmp_path / "effect.png")
    with Image.open(out) as im:
        rgb = np.asarray(im.convert("RGB")).astype(int)
    for colour in ((0x1F, 0x77, 0xB4), (0xFF, 0x7F, 0x0E)):  # C0 = mp, C1 = oracle
        near = (np.abs(rgb - np.array(colour)).max(axis=2) <= 30).sum()
        assert near > 50, colour
    assert rgb.shape[1] > 1.5 * rgb.shape[0]  # two panels side by side
