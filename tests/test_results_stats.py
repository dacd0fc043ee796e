"""Results of a run from constructed out-of-fold predictions with known answers (no torch).

A fake run folder: a real dataset and splits, and per fold, method and seed the files a
training leaves (val/test probabilities, labels, case ids, result.json, done), drawn from
a model where the right verdict is known.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import write_signal_dataset
from typer.testing import CliRunner

from jointaug.classify.metrics import tune_threshold
from jointaug.cli import app
from jointaug.config import load_config
from jointaug.experiments.oof import collect_run, merge, oof_csv, read_oof_csv
from jointaug.experiments.provenance import profile_hash, read_profile_hash
from jointaug.experiments.rundir import RunDir
from jointaug.experiments.stats import StatsOptions, read_stats, stats_table
from jointaug.experiments.tables import recompute, write_results
from jointaug.experiments.verdicts import headline, verdict_lines

FAST = StatsOptions(n_boot_gms=400, n_boot_auprc=200)
# method dir -> (method, size, slope of the logit in the label, noise sd, tie to "mp")
METHODS = {
    "baseline": ("baseline", 0, 1.0),
    "mp_16": ("mp", 16, 3.0),  # a strong, known effect
    "mp-perlin_16": ("mp-perlin", 16, None),  # mp's predictions + tiny noise: equivalent
    "shuffled_16": ("shuffled", 16, 1.0),  # the baseline's distribution: a null
    "oversample_16": ("oversample", 16, 1.0),
}


def _probs(rng, y, slope, patient_effect, seed_shift, scale=1.0):
    z = slope * 2 * (np.nan_to_num(y) - 0.5) + patient_effect + seed_shift
    z = z + rng.normal(0, 1.0, y.shape)
    return (scale / (1 + np.exp(-z))).astype(np.float32)


def _write_training(d, fold, method, size, seed, val, test, test_ids):
    d.mkdir(parents=True)
    for part, (p, y, ids) in (("val", val), ("test", (*test, test_ids))):
        np.save(d / f"{part}_probs.npy", p)
        np.save(d / f"{part}_labels.npy", y)
        (d / f"{part}_case_ids.json").write_text(json.dumps(ids))
    r = {"fold": fold, "method": method, "size": size, "seed": seed, "threshold": 0.5}
    (d / "result.json").write_text(json.dumps(r))
    (d / "done").write_text("x")


def build_run(root, dataset, val_scale=1.0, seeds=(0, 1, 2)):
    """A fake finished run: 5 folds x METHODS x seeds. ``val_scale`` < 1 shrinks the
    validation probabilities only (so a validation-tuned threshold differs from a test one)."""
    cfg = load_config("demo", ["experiment.imbalance_baselines=[tuned_threshold]"])
    run = RunDir.create(root, dataset, cfg)
    rng = np.random.default_rng(0)
    ds = run.dataset
    for fold in run.splits.folds:
        parts = {}
        for part in ("val", "test"):
            cases = ds.classification_cases(getattr(fold, part))
            y = np.stack([c.labels for c in cases]).astype(np.float64)
            pat = {p: rng.normal(0, 0.7, y.shape[1]) for p in sorted({c.patient_id for c in cases})}
            eff = np.stack([pat[c.patient_id] for c in cases])
            parts[part] = (y, eff, [c.case_id for c in cases])
        for seed in seeds:
            shift = rng.normal(0, 0.2)
            mp = {}
            for dir_name, (method, size, slope) in METHODS.items():
                out = {}
                for part, (y, eff, ids) in parts.items():
                    if slope is None:
                        p = np.clip(mp[part] + rng.normal(0, 0.02, y.shape), 0, 1)
                    else:
                        scale = val_scale if part == "val" else 1.0
                        p = _probs(rng, y, slope, eff, shift, scale)
                    out[part] = (p.astype(np.float32), y.astype(np.float32), ids)
                if method == "mp":
                    mp = {k: v[0] for k, v in out.items()}
                d = run.classify_dir(fold.fold, dir_name, seed)
                _write_training(
                    d, fold.fold, method, size, seed, out["val"], out["test"][:2], out["test"][2]
                )
    return run


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_signal_dataset(tmp_path_factory.mktemp("ds") / "signal", n_patients=40, size=16)


@pytest.fixture(scope="module")
def fake_run(tmp_path_factory, dataset):
    run = build_run(tmp_path_factory.mktemp("run") / "r", dataset)
    return run, collect_run(run)


def _row(rows, method, reference, metric="gms", threshold="default"):
    (r,) = [
        x
        for x in rows
        if (x["method"], x["reference"], x["metric"], x["threshold"])
        == (method, reference, metric, threshold)
    ]
    return r


def test_known_effect_helps_null_does_not_equivalence_within_margin(fake_run):
    _, data = fake_run
    rows = stats_table(data, "single", FAST)
    for metric, thr in (("gms", "default"), ("gms", "tuned"), ("auprc", "none")):
        r = _row(rows, "mp (16)", "baseline", metric, thr)
        assert r["verdict"] == "helps" and r["ci_low"] > 0 and r["p_holm"] < 0.05, r
        assert _row(rows, "mp (16)", "shuffled (16)", metric, thr)["verdict"] == "helps"
    for ref in ("baseline",):
        assert _row(rows, "shuffled (16)", ref)["verdict"] != "helps"
        assert _row(rows, "oversample (16)", ref, "auprc", "none")["verdict"] != "helps"
    eq = _row(rows, "mp-perlin (16)", "mp (16)")
    assert eq["verdict"] == "equivalent" and eq["ci90_low"] > -0.03 and eq["ci90_high"] < 0.03
    assert eq["role"] == "pair" and eq["resampled"] == "patients x seeds per fold"
    tight = stats_table(data, "single", StatsOptions(400, 200, margin_gms=1e-4))
    assert _row(tight, "mp-perlin (16)", "mp (16)")["verdict"] == "inconclusive"
    # one Holm family per table: p_holm >= p everywhere, and m = number of rows
    assert all(r["p_holm"] >= r["p"] for r in rows)
    ens = stats_table(data, "ensemble", FAST)
    assert {r["n_seeds"] for r in ens} == {1} and _row(ens, "mp (16)", "baseline")["n_boot"] > 0
    assert "conditional" in ens[0]["resampled"]


def test_headline_against_controls(fake_run):
    _, data = fake_run
    rows = stats_table(data, "single", FAST)
    mp = [r for r in rows if r["method"] == "mp (16)"]
    assert headline(mp, rows).startswith("the generator helps")
    line = next(x for x in verdict_lines(rows) if x.startswith("mp (16):"))
    assert "vs baseline:" in line and "vs shuffled (16):" in line and "GMS@tuned" in line
    # a gain the controls also give is theirs: pretend the controls helped too
    fake = [dict(r) for r in rows]
    for r in fake:
        if r["method"] == "mp (16)" and r["role"] == "control":
            r["verdict"] = "inconclusive"
        if r["method"] == "shuffled (16)" and r["reference"] == "baseline":
            r["verdict"] = "helps"
    mine = [r for r in fake if r["method"] == "mp (16)"]
    h = headline(mine, fake)
    assert h.startswith("not shown to beat its controls") and "shuffled (16) helps too" in h


def test_oof_csv_round_trip_gives_identical_stats(fake_run, tmp_path):
    run, data = fake_run
    (tmp_path / "oof.csv").write_text(oof_csv(data))
    back = read_oof_csv(tmp_path / "oof.csv")
    assert oof_csv(back) == oof_csv(data)
    a, b = stats_table(data, "single", FAST), stats_table(back, "single", FAST)
    assert a == b
    # and through the files: the run's results vs `recompute` on its CSV
    paths = write_results(run)
    again = recompute(paths["oof"], tmp_path / "again", FAST.__class__())
    assert paths["stats"].read_text() == again["stats"].read_text()
    assert paths["table1"].read_text() == again["table1"].read_text()
    cfg = load_config("demo", ["experiment.imbalance_baselines=[tuned_threshold]"])
    assert read_profile_hash(run) == profile_hash(cfg)  # the dataset path is not in it
    assert "| Joint | positives |" in paths["per_joint"].read_text()
    t1 = paths["table1"].read_text()
    assert "| Method | Accuracy | TPR | TNR | F1 | GMS |" in t1 and "AUPRC | Brier | ECE |" in t1


def test_tuned_thresholds_come_from_validation_only(tmp_path, dataset):
    """Validation probabilities are shrunk x0.4: a validation-tuned threshold is low; the
    test probabilities (not shrunk) would want one near 0.5."""
    run = build_run(tmp_path / "r", dataset, val_scale=0.4, seeds=(0,))
    data = collect_run(run)
    f = data.methods[("baseline", 0)].folds[0]
    d = run.classify_dir(0, "baseline", 0)
    val_t = tune_threshold(np.load(d / "val_labels.npy"), np.load(d / "val_probs.npy"))
    test_t = tune_threshold(np.load(d / "test_labels.npy"), np.load(d / "test_probs.npy"))
    assert f.thresholds["0"]["tuned"] == val_t and val_t < 0.4 < test_t
    pooled = data.pooled(("baseline", 0), "tuned", False)
    assert np.all(pooled.oof.thresholds[0, pooled.fold == 0] == val_t)


def test_stats_verb_on_a_run_folder_and_on_a_csv(fake_run, tmp_path):
    run, _ = fake_run
    runner = CliRunner()
    res = runner.invoke(app, ["stats", str(run.path), "--n-boot", "300", "--n-boot-auprc", "100"])
    assert res.exit_code == 0, res.output
    assert "mp (16): the generator helps" in res.output and "seed ensembles" in res.output
    assert "\n      vs baseline: " in res.output  # one indented line per reference
    rows = read_stats(run.results_dir / "stats.csv")
    out = tmp_path / "from_csv"
    res2 = runner.invoke(
        app,
        ["stats", str(run.results_dir / "oof.csv"), "--out", str(out)]
        + ["--n-boot", "300", "--n-boot-auprc", "100"],
    )
    assert res2.exit_code == 0, res2.output
    assert read_stats(out / "stats.csv") == rows
    assert res.output.split("wrote")[0] == res2.output.split("wrote")[0]
    bad = runner.invoke(app, ["stats", str(tmp_path / "nothing.csv")])
    assert bad.exit_code == 2 and "neither a run folder nor an oof.csv" in bad.output


def test_pooled_datasets_keep_their_own_clusters(fake_run):
    _, data = fake_run
    both = merge({"d1": data, "d2": data})
    p = both.pooled(("mp", 16), "default", False)
    one = data.pooled(("mp", 16), "default", False)
    assert len(set(p.patient)) == 2 * len(set(one.patient)) and len(p.folds) == 2 * len(one.folds)
    assert p.patient[0].startswith("d1:")
