"""``jointaug headroom``: nested subsets, the tiny end-to-end verb, resuming, bad input."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from helpers import CLASSIFIER_LEARNS, overrides, write_signal_dataset
from typer.testing import CliRunner

from jointaug.cli import app
from jointaug.config import load_config
from jointaug.experiments.headroom import (
    nested_subsets,
    parse_fractions,
    plan_trainings,
    run_headroom,
    training_dir,
)
from jointaug.experiments.headroom_curve import Point, predict, verdict
from jointaug.experiments.learning_curve import Curve
from jointaug.experiments.rundir import RunDir
from jointaug.outputs import StaleOutputError

TINY = overrides(
    CLASSIFIER_LEARNS,
    [
        "classify.batch_size=16",
        "classify.eval_every_epochs=1",
        "classify.patience_samples=32",
        "classify.max_samples=48",
        "classify.lr=0.01",
        "classify.seeds=[0]",
        "experiment.sizes=[64]",
        "experiment.curve_sizes=[16]",
        "device=cpu",
    ],
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_signal_dataset(tmp_path_factory.mktemp("ds") / "signal", n_patients=20, size=64)


def test_subsets_are_nested_seeded_and_patient_level(tmp_path, dataset):
    run = RunDir.create(tmp_path / "run", dataset, load_config("demo", TINY + ["split.folds=4"]))
    fractions = [0.25, 0.5, 0.75, 1.0]
    plan = plan_trainings(run, fractions)
    assert plan == plan_trainings(run, fractions)  # seeded: the same subsets every call
    for k, fold in enumerate(run.splits.folds):
        mine = {t.fraction: t.split for t in plan if t.split.fold == k}
        assert sorted(mine) == fractions and mine[1.0].train == fold.train
        for f in fractions:
            s = mine[f]
            assert s.val == fold.val and s.test == fold.test  # untouched
            assert set(s.train) <= set(fold.train) and len(s.train) == int(
                np.ceil(f * len(fold.train))
            )
            cases = run.dataset.classification_cases(s.train)
            assert {c.patient_id for c in cases} == set(s.train)  # whole patients
        for small, big in zip(fractions, fractions[1:], strict=False):
            assert set(mine[small].train) < set(mine[big].train)  # nested
    order = nested_subsets(list("abcdefgh"), [0.25, 1.0], np.random.default_rng(0))
    other = nested_subsets(list("abcdefgh"), [0.25, 1.0], np.random.default_rng(1))
    assert order[0.25] != other[0.25] and order[1.0] == other[1.0] == tuple("abcdefgh")


def test_bad_fractions_are_refused():
    assert parse_fractions(None) == [0.25, 0.5, 0.75, 1.0]
    assert parse_fractions("1, 0.5,0.5") == [0.5, 1.0]
    for text, msg in (("0,0.5", r"not in \(0, 1\]"), ("0.5,1.5", "not in"), ("1", "two"),
                      ("half,1", "comma-separated numbers")):  # fmt: skip
        with pytest.raises(ValueError, match=msg):
            parse_fractions(text)


def test_cli_errors_clearly_on_bad_fractions(tmp_path, dataset):
    out = tmp_path / "run"
    res = CliRunner().invoke(
        app, ["headroom", str(dataset), "--out", str(out), "--fractions", "0.5,2"]
    )
    assert res.exit_code == 2 and "error" in res.output and "(0, 1]" in res.output
    assert "Traceback" not in res.output and not out.exists()  # stopped before any writing


def points_of(curve, sizes, folds, noise, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(folds):
        shift = rng.normal(0, noise)
        for n in sizes:
            s = float(curve(n)) + shift + rng.normal(0, noise / 2)
            out.append(Point(n / sizes[-1], k, n // 2, n, {"tuned": s, "default": s}, 1))
    return out


def test_verdicts_of_a_rising_and_a_flat_curve():
    rising = points_of(Curve(0.9, 1.5, 0.5), [15, 30, 45, 60], 5, 0.01)
    pred = predict(rising, 60, [512, 2048], np.random.default_rng(0), n_boot=200)["tuned"]
    assert verdict(pred).startswith("room to gain") and pred.gains[1].estimate > 0.05
    flat = points_of(Curve(0.6, 0.0, 1.0), [15, 30, 45, 60], 5, 0.002, seed=3)
    pred = predict(flat, 60, [512], np.random.default_rng(0), n_boot=200)["tuned"]
    assert verdict(pred).startswith("little to gain: < 0.02 GMS even at 512 extra")


@pytest.mark.slow
def test_tiny_run_writes_csv_and_picture_and_resumes(tmp_path, dataset):
    out = tmp_path / "run"
    sets = [a for s in TINY for a in ("--set", s)]
    args = ["headroom", str(dataset), "--out", str(out), "--fractions", "0.5,1"]
    args += ["--folds", "0,1", "--no-progress", *sets]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "4 baseline trainings" in res.output and "0 done already" in res.output
    assert "gain perfect extra data" in res.output and "verdict: " in res.output
    assert "      64  +" in res.output or "      64  -" in res.output  # the profile's sizes
    root = out / "headroom"
    rows = list(csv.DictReader((root / "headroom.csv").open()))
    pts = [r for r in rows if r["kind"] == "point" and r["mode"] == "tuned"]
    assert len(pts) == 4 and {r["fraction"] for r in pts} == {"0.5", "1.0"}
    preds = [r for r in rows if r["kind"] == "prediction"]
    assert sorted({int(r["n_extra"]) for r in preds}) == [16, 64] and len(preds) == 4
    assert (root / "learning_curve.png").stat().st_size > 10_000
    assert (root / "f50" / "fold_1" / "seed_0" / "done").is_file()
    model = training_dir(RunDir(out), 0.5, 0, 0) / "model.safetensors"
    stamp = model.stat().st_mtime_ns
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "4 done already" in again.output
    assert model.stat().st_mtime_ns == stamp  # skipped, not retrained
    # a changed classifier setting stops before any work, naming what changed
    run = RunDir.create(out, dataset, load_config("demo", TINY + ["classify.lr=0.02"]))
    with pytest.raises(StaleOutputError, match="classify.lr"):
        run_headroom(run, [0.5, 1.0], [0, 1], progress=False, echo=lambda m: None)
    assert model.stat().st_mtime_ns == stamp
