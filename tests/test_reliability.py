"""Failures a user causes outside the dataset folder: each stops with one clear message."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from jointaug.cli import app
from jointaug.config import ConfigError, load_config
from jointaug.experiments.rundir import RunDir
from jointaug.weights import WeightsError, load_tensors, save_tensors


def test_a_truncated_weights_file_is_named_not_a_traceback(tmp_path):
    path = tmp_path / "model.safetensors"
    save_tensors(path, {"w": torch.ones(100)})
    path.write_bytes(path.read_bytes()[:60])  # a copy cut short
    with pytest.raises(WeightsError, match=r"model.safetensors: not a readable safetensors file"):
        load_tensors(path)


def test_a_run_folder_is_never_reused_for_another_dataset(tmp_path):
    from helpers import write_tiny_dataset

    a = write_tiny_dataset(tmp_path / "a", n_patients=10)
    b = write_tiny_dataset(tmp_path / "b", n_patients=10, seed=1)
    cfg = load_config("demo", ["split.folds=5"])
    RunDir.create(tmp_path / "run", a, cfg)
    splits = (tmp_path / "run" / "splits.json").read_text()
    with pytest.raises(ConfigError, match=r"made for dataset .*/a, not .*/b; use another --out"):
        RunDir.create(tmp_path / "run", b, cfg)
    assert (tmp_path / "run" / "splits.json").read_text() == splits


def test_report_on_a_folder_that_is_not_a_run(tmp_path):
    res = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert res.exit_code == 2 and "not a run folder (no config.yaml)" in res.output
    assert "Traceback" not in res.output and list(tmp_path.iterdir()) == []  # nothing written


def test_ctrl_c_says_how_to_resume(tmp_path, monkeypatch):
    import jointaug.dataset.phantom as phantom

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(phantom, "write_phantom", interrupted)
    res = CliRunner().invoke(app, ["phantom", str(tmp_path / "ph"), "--patients", "2"])
    assert res.exit_code == 130 and "interrupted: rerun the same command to resume" in res.output


def test_a_run_folder_grown_by_calls_with_other_methods_keeps_them_all(tmp_path):
    """`run --methods a` then `run --methods b`: config.yaml lists a and b, so the tables
    keep the tuned rows and order of the first call."""
    from helpers import write_tiny_dataset

    from jointaug.config import load_config
    from jointaug.experiments.classification import config_with_methods
    from jointaug.experiments.rundir import RunDir

    data = write_tiny_dataset(tmp_path / "data")
    cfg = load_config("demo")
    RunDir.create(
        tmp_path / "run", data, config_with_methods(cfg, "baseline,oversample,tuned_threshold")
    )
    run = RunDir.create(tmp_path / "run", data, config_with_methods(cfg, "mp,focal"))
    exp = run.config.experiment
    assert exp.methods == ["baseline", "oversample", "mp"]
    assert exp.imbalance_baselines == ["tuned_threshold", "focal"]
