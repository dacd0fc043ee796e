"""The protocol over folds x methods x seeds: outputs, skipping, ensembles, tables, CLI."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest
from helpers import CLASSIFIER_LEARNS, overrides, write_signal_dataset, write_signal_set
from typer.testing import CliRunner

from jointaug.classify.data import MixError
from jointaug.classify.metrics import binarize, pooled_metrics, tune_threshold
from jointaug.cli import app
from jointaug.config import load_config
from jointaug.experiments.classification import train_single
from jointaug.experiments.graph import build_graph, run_local
from jointaug.experiments.plan import make_plan
from jointaug.experiments.rundir import RunDir
from jointaug.experiments.tables import write_results

TINY = overrides(
    CLASSIFIER_LEARNS,
    [
        "classify.batch_size=16",
        "classify.eval_every_epochs=1",
        "classify.patience_samples=48",
        "classify.max_samples=72",
        "classify.lr=0.01",
        "classify.seeds=[0,1]",
        "experiment.sizes=[16]",
        "device=cpu",
    ],
)


def classify(run, methods, folds):
    """The trainings of ``methods`` and the results, through the graph's local executor
    (the sets are made by hand here); returns (trainings, lines printed, report summary)."""
    plan = make_plan(run, methods, folds=folds, curve_sizes=[])
    tasks = [t for t in build_graph(run, plan) if t.kind in ("classify", "report")]
    log: list[str] = []
    summary = run_local(run, tasks, progress=False, echo=log.append)
    return sum(t.kind == "classify" for t in tasks), log, summary


def trained(log):
    return sum(m.startswith("[") for m in log)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_signal_dataset(
        tmp_path_factory.mktemp("ds") / "signal", n_patients=20, size=64, unknown_fraction=0.1
    )


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, dataset):
    """Two folds of baseline + tuned_threshold + mp-perlin at 16 images, 2 seeds."""
    cfg = load_config("demo", TINY + ["experiment.imbalance_baselines=[tuned_threshold]"])
    run = RunDir.create(tmp_path_factory.mktemp("run") / "r", dataset, cfg)
    for fold in (0, 1):
        write_signal_set(run.augment_dir(fold, "mp-perlin"), 20, size=64, seed=10 + fold)
    return run, classify(run, ["baseline", "tuned_threshold", "mp-perlin"], folds=[0, 1])


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_every_training_writes_its_outputs(finished_run):
    run, (jobs, log, _) = finished_run
    assert jobs == 8 and trained(log) == 8
    d = run.classify_dir(1, "mp-perlin_16", 0)
    r = json.loads((d / "result.json").read_text())
    assert (r["fold"], r["method"], r["size"], r["seed"]) == (1, "mp-perlin", 16, 0)
    assert r["n_train"] == r["n_train_real"] + 16
    assert (d / "done").is_file() and not (d / "checkpoint.safetensors").exists()
    probs = np.load(d / "test_probs.npy")
    labels = np.load(d / "test_labels.npy")
    ids = json.loads((d / "test_case_ids.json").read_text())
    assert probs.shape == labels.shape == (len(ids), 4) and probs.dtype == np.float32
    test_patients = set(run.splits.fold(1).test)
    assert {i.split("_")[0] for i in ids} == test_patients
    assert r["test"] == pooled_metrics(labels, binarize(probs, 0.5))
    val_p, val_y = np.load(d / "val_probs.npy"), np.load(d / "val_labels.npy")
    assert r["threshold_tuned"] == tune_threshold(val_y, val_p)
    assert r["test_tuned"] == pooled_metrics(labels, binarize(probs, r["threshold_tuned"]))
    log = read_csv(d / "log.csv")
    assert int(log[-1]["samples"]) == r["samples"] and len(log) >= 2


@pytest.mark.slow
def test_metrics_csv_has_seeds_ensembles_and_threshold_kinds(finished_run):
    run, _ = finished_run
    rows = read_csv(run.results_dir / "metrics.csv")
    # 2 folds x 2 trained methods x (2 seeds + ensemble) x 2 threshold kinds
    assert len(rows) == 24
    ens = [
        r
        for r in rows
        if r["seed"] == "ensemble"
        and r["threshold"] == "default"
        and r["method"] == "baseline"
        and r["fold"] == "0"
    ]
    assert len(ens) == 1
    dirs = [run.classify_dir(0, "baseline", s) for s in (0, 1)]
    mean = (np.load(dirs[0] / "test_probs.npy") + np.load(dirs[1] / "test_probs.npy")) / 2
    expect = pooled_metrics(np.load(dirs[0] / "test_labels.npy"), binarize(mean, 0.5))
    for k in ("accuracy", "tpr", "tnr", "f1", "gms"):
        assert float(ens[0][k]) == pytest.approx(expect[k], rel=1e-5, nan_ok=True)


@pytest.mark.slow
def test_tables_show_methods_and_the_tuned_threshold_row(finished_run):
    run, (_, _, summary) = finished_run
    full = (run.results_dir / "table1.md").read_text()
    t1, _, rest = full.partition("Pooled out-of-fold metrics")
    assert "| Method | Accuracy | TPR | TNR | F1 | GMS |" in t1
    names = [line.split("|")[1].strip() for line in t1.splitlines() if line.startswith("| ")][1:]
    assert names == ["baseline", "tuned_threshold", "mp-perlin (16)", "mp-perlin (16) + tuned"]
    assert "| Method | GMS | TPR | TNR | AUROC | AUPRC | Brier | ECE |" in rest
    # every method paired against the baseline, with a verdict
    stats = read_csv(run.results_dir / "stats.csv")
    single = [r for r in stats if r["models"] == "single"]
    assert [(r["method"], r["reference"], r["metric"], r["threshold"]) for r in single] == [
        ("tuned_threshold", "baseline", "gms", "tuned vs default"),
        ("mp-perlin (16)", "baseline", "gms", "default"),
        ("mp-perlin (16)", "baseline", "gms", "tuned"),
        ("mp-perlin (16)", "baseline", "auprc", "none"),
    ]
    verdicts = ("helps", "hurts", "equivalent", "inconclusive")
    assert all(r["verdict"] in verdicts and r["n_patients"] != "0" for r in stats)
    assert {r["models"] for r in stats} == {"single", "ensemble"} and len(stats) == 8
    cell = re.compile(r"^(\d\.\d\d±\d\.\d\d|n/a)$")
    for line in [x for x in t1.splitlines()[4:] if x.startswith("|")]:
        cells = [c.strip() for c in line.strip("|").split("|")[1:]]
        assert len(cells) == 5 and all(cell.match(c) for c in cells), line
    assert "Table 2" in summary["tables"] and "2 folds, 2 seeds per fold" in t1
    per_label = read_csv(run.results_dir / "per_label.csv")
    assert {r["method"] for r in per_label} == {"baseline", "tuned_threshold", "mp-perlin"}
    assert len(per_label) == 3 * 2 * 4  # rows x folds x labels


@pytest.mark.slow
def test_finished_trainings_are_skipped(finished_run):
    run, _ = finished_run
    model = run.classify_dir(0, "baseline", 1) / "model.safetensors"
    stamp = model.stat().st_mtime_ns
    jobs, log, _ = classify(run, ["baseline", "mp-perlin"], folds=[0, 1])
    assert jobs == 8 and trained(log) == 0
    assert model.stat().st_mtime_ns == stamp
    # unless forced (one training, through the train-classifier library call)
    r = train_single(run, 0, "baseline", 1, force=True, progress=False)
    assert model.stat().st_mtime_ns != stamp and r["seed"] == 1


def test_tables_from_a_hand_made_results_folder(tmp_path, dataset):
    """Known probabilities -> known table cells (mean ± std over folds of seed means)."""
    run = RunDir.create(tmp_path / "run", dataset, load_config("demo", TINY))
    acc_neg = []
    for fold in (0, 1):
        cases = run.dataset.classification_cases(run.splits.fold(fold).test)
        ids = [c.case_id for c in cases]
        y = np.stack([c.labels for c in cases]).astype(np.float32)
        perfect = np.where(y == 1, 0.9, 0.1).astype(np.float32)
        all_neg = np.full_like(y, 0.2)  # predicts nothing: TPR 0, TNR 1
        known = np.isfinite(y)
        acc_neg.append(float(np.mean(y[known] == 0)))
        for seed, p in enumerate((perfect, perfect) if fold == 0 else (perfect, all_neg)):
            d = run.classify_dir(fold, "baseline", seed)
            d.mkdir(parents=True)
            for part in ("val", "test"):
                np.save(d / f"{part}_probs.npy", p)
                np.save(d / f"{part}_labels.npy", y)
                (d / f"{part}_case_ids.json").write_text(json.dumps(ids))
            (d / "result.json").write_text(
                json.dumps(
                    {"fold": fold, "method": "baseline", "size": 0, "seed": seed, "threshold": 0.5}
                )
            )
            (d / "done").write_text("x")
    paths = write_results(run, show_tuned=False)
    t1 = paths["table1"].read_text()
    # fold 0: TPR 1, fold 1: mean(1, 0) = 0.5 -> 0.75 ± 0.35; TNR 1 everywhere
    # GMS and F1 of fold 1 = mean(1, 0) = 0.5; accuracy of fold 1 = mean(1, negatives share)
    acc = [1.0, (1 + acc_neg[1]) / 2]
    cell = f"{np.mean(acc):.2f}±{np.std(acc, ddof=1):.2f}"
    assert f"| baseline | {cell} | 0.75±0.35 | 1.00±0.00 | 0.75±0.35 | 0.75±0.35 |" in t1
    t2 = paths["table2"].read_text()
    # ensemble of fold 1: mean probs (0.55 on positives) -> perfect
    assert "| baseline | 1.00±0.00 | 1.00±0.00 | 1.00±0.00 | 1.00±0.00 | 1.00±0.00 |" in t2
    oof = (run.results_dir / "oof.csv").read_text().splitlines()
    assert oof[0].startswith("method,size,seed,fold,case_id,patient_id,threshold_default")


def test_missing_augmentation_set_stops_before_training(tmp_path, dataset):
    run = RunDir.create(tmp_path / "run", dataset, load_config("demo", TINY))
    with pytest.raises(MixError, match=r"fold_0/augment/11k-perlin is missing.*jointaug augment"):
        train_single(run, 0, "11k-perlin", 0, progress=False)
    assert not (run.path / "fold_0" / "classify").exists()


def test_cli_run_evaluate_and_errors(tmp_path, dataset):
    runner = CliRunner()
    out = tmp_path / "cli_run"
    sets = [a for s in TINY + ["classify.seeds=[0]"] for a in ("--set", s)]
    res = runner.invoke(
        app,
        [
            "run",
            "--dataset",
            str(dataset),
            "--profile",
            "demo",
            "--methods",
            "baseline,tuned_threshold",
            "--out",
            str(out),
            "--folds",
            "0",
            "--no-progress",
            *sets,
        ],
    )
    assert res.exit_code == 0, res.output
    assert "plan: 1 folds x 1 methods x 1 seeds = 1 trainings" in res.output
    assert "| tuned_threshold |" in res.output
    cfg = RunDir(out).config
    assert cfg.experiment.methods == ["baseline"]
    assert cfg.experiment.imbalance_baselines == ["tuned_threshold"]
    res = runner.invoke(app, ["evaluate", str(out)])
    assert res.exit_code == 0 and "| baseline |" in res.output
    res = runner.invoke(
        app, ["train-classifier", "--run", str(out), "--fold", "0", "--no-progress"]
    )
    assert res.exit_code == 0 and "test GMS" in res.output
    res = runner.invoke(
        app, ["run", "--dataset", str(dataset), "--methods", "resnet", "--out", str(out), *sets]
    )
    assert res.exit_code == 2 and "unknown method 'resnet'" in res.output
