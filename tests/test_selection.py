"""Choosing on validation: the table reads validation predictions only and picks the best."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jointaug.experiments.rundir import RunDir
from jointaug.experiments.selection import choose, format_rows, validation_rows
from jointaug.outputs import DONE


def fake_training(run: RunDir, fold: int, method: str, size: int, seed: int, quality: float):
    """A finished training folder whose validation probabilities separate the classes by
    ``quality`` (0: noise, 1: perfect); no test files at all."""
    d = run.path / f"fold_{fold}" / "classify" / f"{method}_{size}" / f"seed_{seed}"
    d.mkdir(parents=True)
    rng = np.random.default_rng((fold, seed, int(quality * 100)))
    y = (rng.random((40, 6)) < 0.2).astype(np.float32)
    p = np.clip(quality * y + (1 - quality) * rng.random(y.shape), 0, 1).astype(np.float32)
    np.save(d / "val_probs.npy", p)
    np.save(d / "val_labels.npy", y)
    r = {"fold": fold, "method": method, "size": size, "seed": seed, "threshold": 0.5}
    (d / "result.json").write_text(json.dumps(r))
    (d / DONE).write_text("{}")


def test_validation_rows_never_need_test_files_and_choose_the_better(tmp_path):
    good, bad = RunDir(tmp_path / "good"), RunDir(tmp_path / "bad")
    for fold in range(3):
        for seed in range(2):
            fake_training(good, fold, "mp-perlin", 512, seed, 0.6)
            fake_training(bad, fold, "mp-perlin", 512, seed, 0.1)
    rows = validation_rows(bad) + validation_rows(good)
    assert [r["trainings"] for r in rows] == [6, 6]
    assert rows[1]["val_auprc"] > rows[0]["val_auprc"] + 0.2
    best = choose(rows)
    assert best["run"] == str(good.path)
    assert "*" in format_rows(rows, best).splitlines()[2]
    assert choose(rows, "val_gms_tuned")["run"] == str(good.path)


def test_choose_rejects_unknown_metric_and_empty(tmp_path):
    with pytest.raises(ValueError, match="metric"):
        choose([{"val_auprc": 0.5}], "test_gms")
    with pytest.raises(ValueError, match="nothing to choose"):
        choose(validation_rows(RunDir(tmp_path)))


def test_cli_choose_prints_the_table_and_the_choice(tmp_path):
    from typer.testing import CliRunner

    from jointaug.cli import app

    for name, q in (("a", 0.1), ("b", 0.7)):
        run = RunDir(tmp_path / name)
        for fold in range(2):
            fake_training(run, fold, "mp-perlin", 512, 0, q)
    res = CliRunner().invoke(app, ["choose", str(tmp_path / "a"), str(tmp_path / "b")])
    assert res.exit_code == 0, res.output
    assert f"chosen on validation (val_auprc): {tmp_path / 'b'} / mp-perlin (512)" in res.output
    bad = CliRunner().invoke(app, ["choose", str(tmp_path / "a"), "--metric", "test_gms"])
    assert bad.exit_code != 0 and "metric" in bad.output
