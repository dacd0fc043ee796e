"""The strong judge: trained with the run's input layout, its settings recorded, and a judge
trained with other settings moved aside (not reused, not deleted)."""

from __future__ import annotations

import json

from helpers import tiny_config

from jointaug.dataset.phantom import write_phantom
from jointaug.fidelity.judge import JUDGE_JSON, judge_record, load_judge, train_strong_judge


def test_judge_records_settings_uses_layout_and_is_retrained_when_they_change(tmp_path):
    ds = write_phantom(tmp_path / "ph", 4, 64, seed=3, progress=False)
    out = tmp_path / "run" / "judge"
    cfg = tiny_config(max_samples=64, patience_samples=32, lr_aware=True)
    path = train_strong_judge(out, ds, cfg, patients=5)
    rec = judge_record(path)
    assert rec["settings"]["lr_aware"] is True and rec["settings"]["patients"] == 5
    assert 0.0 < rec["threshold_tuned"] < 1.0 and {"gms", "auprc"} <= set(rec["val"])
    assert load_judge("strong", path).model is not None
    stamp = path.stat().st_mtime_ns
    assert train_strong_judge(out, ds, cfg, patients=5) == path  # same settings: reused
    assert path.stat().st_mtime_ns == stamp
    # other settings: the old judge goes to RUN/stale/, a new one is trained
    train_strong_judge(out, ds, tiny_config(max_samples=64, patience_samples=32), patients=5)
    assert judge_record(path)["settings"]["lr_aware"] is False
    moved = list((tmp_path / "run" / "stale").rglob(JUDGE_JSON))
    assert len(moved) == 1
    assert json.loads(moved[0].read_text())["settings"]["lr_aware"] is True


def test_judge_outputs_of_a_per_hand_judge_match_its_forward():
    import numpy as np
    import torch

    from jointaug.classify.model import build_model
    from jointaug.fidelity.judge import Judge, judge_outputs

    model = build_model(tiny_config(per_hand=True), 6, seed=0).eval()
    x = np.random.default_rng(0).random((5, 1, 32, 64), dtype=np.float32)
    probs, feats = judge_outputs(Judge("strong", model, None, 32), x, batch_size=2)
    with torch.no_grad():
        want = torch.sigmoid(model(torch.from_numpy(x))).numpy()
    assert probs.shape == (5, 6) and np.allclose(probs, want, atol=1e-6)
    assert feats.shape[0] == 5 and feats.shape[1] % 2 == 0  # both hands' features
