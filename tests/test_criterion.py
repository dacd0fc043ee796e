"""Training the generator to a criterion: the plateau rule, the judge, the loop's stop."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from helpers import TWO_HAND_OVERRIDES as OVERRIDES
from helpers import write_two_hand_dataset

from jointaug.config import load_config
from jointaug.diffusion.criterion import (
    Plateau,
    contrast_ratios,
    fidelity_score,
    first_stop,
)
from jointaug.keys import diffusion_settings


def test_plateau_stops_patience_checks_after_the_best():
    hist = [[100, 0.2], [200, 0.5], [300, 0.7], [400, 0.705], [500, 0.69], [600, 0.71]]
    # min_delta 0.01: 0.705 and 0.71 are no gain over 0.7 -> 3 checks after step 300
    assert first_stop(hist, patience=3, min_delta=0.01) == 600
    assert first_stop(hist, patience=3, min_delta=0.0) is None  # 0.71 at 600 is new best
    assert first_stop(hist, patience=1, min_delta=0.01) == 400
    assert first_stop([[1, math.nan], [2, math.nan]], patience=2) == 2  # never finite: stops
    p = Plateau(2, 0.01)
    for step, score in hist[:4]:
        p.update(step, score)
    q = Plateau.from_json(json.loads(json.dumps(p.to_json())), 2, 0.01)  # checkpoint round trip
    assert q.update(500, 0.69) and q.best_step == 300


def test_judge_is_one_when_contrast_matches_real():
    ch = np.zeros((2, 3, 4, 4), np.float32)
    ch[:, 0] = 1
    ch[:, 2, :2, :2] = 1
    ch[:, 1, 2:, 2:] = 1
    real = np.ones((2, 4, 4))
    real[:, :2, :2], real[:, 2:, 2:] = 3.0, 2.0
    r = contrast_ratios(real, ch)
    assert r == {"high": 3.0, "low": 2.0}
    assert fidelity_score(r, r) == 1.0
    flat = contrast_ratios(np.ones((2, 4, 4)), ch)  # ignores its condition
    assert fidelity_score(flat, r) == pytest.approx(1 - (math.log(3) + math.log(2)) / 2)


def test_criterion_settings_leave_existing_keys_alone():
    cfg = load_config("demo").diffusion
    assert "stop_on_fidelity" not in diffusion_settings(cfg)
    on = diffusion_settings(cfg.model_copy(update={"stop_on_fidelity": True}))
    assert on["stop_on_fidelity"] and on["fidelity_every"] == cfg.fidelity_every
    assert load_config("paper-best").diffusion.stop_on_fidelity
    assert not load_config("paper").diffusion.stop_on_fidelity


@pytest.mark.slow  # trains a diffusion model
def test_training_stops_on_the_criterion_and_counts_as_trained(tmp_path, monkeypatch):
    from jointaug.diffusion import criterion
    from jointaug.experiments.outputs import expected_model, model_output
    from jointaug.experiments.rundir import RunDir
    from jointaug.experiments.stages import train_fold_diffusion
    from jointaug.outputs import check, read_done

    scores = iter([0.1, 0.5, 0.5, 0.5, 0.5, 0.5])  # a fake fidelity: plateau after step 4
    monkeypatch.setattr(criterion.FidelityProbe, "score", lambda self, eps, clip: next(scores))
    data = write_two_hand_dataset(tmp_path / "data")
    over = [
        *OVERRIDES,
        "diffusion.train_steps=20",
        "diffusion.stop_on_fidelity=true",
        "diffusion.fidelity_every=2",
        "diffusion.fidelity_patience=2",
    ]
    run = RunDir.create(tmp_path / "run", data, load_config("demo", over))
    train_fold_diffusion(run, 0, progress=False)
    d = run.diffusion_dir(0)
    done = read_done(d)
    assert done["step"] == 8 and done["stop_reason"] == "fidelity"  # best at 4, +2 checks
    info = json.loads((d / "model.json").read_text())
    assert info["fidelity"]["best_step"] == 4 and len(info["fidelity"]["history"]) == 4
    assert done["settings"]["fidelity_cases"]  # the held-out validation cases it stopped on
    assert check(model_output(run, 0)).current  # finished below train_steps: by its criterion
    assert expected_model(run, 0, run.config)["step"] == 8  # what its sets will record
