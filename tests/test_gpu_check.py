"""benchmarks/gpu_check.py's CPU smoke path: every stage and check runs, the calibration
JSON is what ``jointaug.experiments.cards.read_calibration`` reads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from jointaug.experiments.cards import read_calibration

pytestmark = pytest.mark.slow  # ~30-60 s: spawns packing workers

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def test_cpu_smoke_writes_a_calibration_file(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA machine runs the full check, not the smoke")
    out = tmp_path / "cal.json"
    res = subprocess.run(
        [sys.executable, str(SCRIPT), "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "10/10 stages ok" in res.stdout
    rates, extra = read_calibration(out)
    assert rates.classifier_s_per_sample > 0 and rates.diffusion_step_s > 0
    assert rates.sample_s_per_image > 0 and rates.eval_s_per_image > 0
    assert extra["packing_gain"] > 0 and extra["failed"] == []
    data = json.loads(out.read_text())
    checks = data["results"]
    assert checks["sync points"]["sync_warnings"]["step"] == 0
    assert checks["checkpoint resume"]["resumed_log_samples"] == [64, 128]
    assert set(checks["packing"]["gain"]) == {"1", "2"}
