"""The controls: the oracle-plan set (phantom renderer on its own plan), oversample, real
share, growing budget. The controls read from mp-perlin: test_controls_sets.py."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from helpers import CLASSIFIER_FEW_STEPS, CLASSIFIER_TINY, overrides

from jointaug.classify.data import OVERSAMPLE, ImageSet, oversample_part
from jointaug.classify.epoch import effective_budget, epoch_order, epochs_per_eval
from jointaug.config import ClassifyConfig, load_config
from jointaug.dataset.format import read_dataset
from jointaug.dataset.phantom import write_phantom
from jointaug.dataset.splits import make_splits
from jointaug.experiments.methods import required_sets, resolve_method
from jointaug.sets.oracle_plan import make_oracle_plan_set as make_oracle_set
from jointaug.sets.phantom_render import OracleError


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    return write_phantom(
        tmp_path_factory.mktemp("ph") / "p", patients=6, size=64, seed=3, progress=False
    )


@pytest.fixture(scope="module")
def oracle(phantom, tmp_path_factory):
    fold = make_splits(phantom, 3, 0).fold(0)
    out = tmp_path_factory.mktemp("or") / "oracle"
    make_oracle_set(
        out,
        12,
        dataset=phantom,
        train_patients=fold.train,
        fold=0,
        config=load_config("demo"),
        progress=False,
    )
    return read_dataset(out), fold


def test_oracle_labels_match_the_rendered_inflammation(oracle):
    ds, fold = oracle
    assert len(ds.cases) == 12 and all(c.patient_id in fold.train for c in ds.cases)
    inflamed = 0
    for c in ds.cases:
        tissue, regions = ds.tissue(c), ds.regions(c)
        hot = np.array([(tissue[regions == j + 1] >= 2).any() for j in range(len(ds.labels))])
        np.testing.assert_array_equal(hot, c.labels > 0, err_msg=c.case_id)
        inflamed += int(c.labels.sum())
    assert inflamed > 12  # the sampler inflames joints: not a vacuous check


def test_oracle_renders_the_patients_own_anatomy_and_hot_joints(oracle, phantom):
    ds, _ = oracle
    c = ds.cases[0]
    real = phantom.case(c.extra["source_case"])
    a, b = phantom.tissue(real) > 0, ds.tissue(c) > 0
    assert (a & b).sum() / (a | b).sum() > 0.97  # same hands, same placement
    img, reg = ds.image(c).astype(float), ds.regions(c)
    on = [j for j in range(30) if c.labels[j] > 0]
    off = [j for j in range(30) if c.labels[j] == 0 and (reg == j + 1).any()]
    if on and off:
        peak_on = np.mean([img[reg == j + 1].max() for j in on])
        peak_off = np.mean([img[reg == j + 1].max() for j in off])
        assert peak_on > 1.3 * peak_off


def test_oracle_set_is_a_pure_function_of_its_index(oracle, phantom, tmp_path):
    ds, fold = oracle
    small = make_oracle_set(
        tmp_path / "o",
        4,
        dataset=phantom,
        train_patients=fold.train,
        fold=0,
        config=load_config("demo"),
        progress=False,
    )
    s = read_dataset(small)
    for a, b in zip(s.cases, ds.cases[:4], strict=False):
        assert a.case_id == b.case_id
        np.testing.assert_array_equal(s.image(a), ds.image(b))


def test_oracle_refuses_other_datasets(tiny_dataset, tmp_path):
    ds = read_dataset(tiny_dataset)
    with pytest.raises(OracleError, match="built-in phantom"):
        make_oracle_set(
            tmp_path / "o",
            2,
            dataset=ds,
            train_patients=ds.patients,
            fold=0,
            config=load_config("demo"),
            progress=False,
        )


def _imageset(n: int) -> ImageSet:
    return ImageSet(
        np.arange(n, dtype=np.float16).reshape(n, 1, 1, 1),
        np.zeros((n, 2), np.float32),
        [f"c{i}" for i in range(n)],
        ["train"] * n,
    )


def test_oversample_duplicates_each_real_image_evenly():
    train = _imageset(7)
    part = oversample_part(train, 16, fold=2)
    vals = part.images.ravel().astype(int)
    counts = np.bincount(vals, minlength=7)
    assert len(part) == 16 and counts.min() >= 2 and counts.max() <= 3
    assert set(part.sources) == {OVERSAMPLE}
    again = oversample_part(train, 16, fold=2)
    np.testing.assert_array_equal(again.images, part.images)
    assert not np.array_equal(oversample_part(train, 16, fold=3).images, part.images)


def test_oversample_and_oracle_are_methods():
    m = resolve_method("oversample")
    assert m.augmented and m.dir_name(512) == "oversample_512"
    assert required_sets([m, resolve_method("oracle-plan")], [512]) == {"oracle-plan": 512}


def test_real_share_batches_hold_the_share():
    gen = torch.Generator().manual_seed(0)
    real = torch.arange(10)  # 10 real of 200
    batches = epoch_order(200, 32, real, 0.25, gen)
    assert sum(len(b) for b in batches) == 200 and len(batches) == 7
    for b in batches:
        assert (b < 10).sum() >= int(np.ceil(0.25 * len(b)))
    other = torch.cat(batches)[torch.cat(batches) >= 10]
    assert len(set(other.tolist())) == len(other)  # the synthetic images each once
    plain = epoch_order(200, 32, real, 0.0, torch.Generator().manual_seed(0))
    assert sorted(torch.cat(plain).tolist()) == list(range(200))


def test_budget_grows_with_the_training_set():
    cfg = ClassifyConfig(
        max_samples=8000,
        patience_samples=4000,
        max_epochs=20,
        patience_epochs=10,
        eval_every_samples=1000,
    )
    small, big = effective_budget(cfg, 58), effective_budget(cfg, 570)
    assert (small.max_samples, small.patience_samples) == (8000, 4000)  # the floor
    assert (big.max_samples, big.patience_samples) == (11400, 5700)
    assert epochs_per_eval(cfg, 58) == 17 and epochs_per_eval(cfg, 570) == 2
    assert epochs_per_eval(cfg, 5000) == 1
    assert epochs_per_eval(ClassifyConfig(), 58) == 10  # the paper's cadence by default


@pytest.mark.slow
def test_pipeline_runs_the_controls_and_reports_verdicts(tmp_path):
    from jointaug.experiments.demo import demo_verdicts
    from jointaug.experiments.pipeline import RunOptions, run_experiment
    from jointaug.experiments.plan import make_plan
    from jointaug.experiments.rundir import RunDir

    write_phantom(tmp_path / "data", patients=6, size=64, seed=0, progress=False)
    cfg = load_config(
        "cpu",
        overrides(
            ["split.folds=3"],
            CLASSIFIER_TINY,
            CLASSIFIER_FEW_STEPS,
            ["classify.seeds=[0, 1]", "experiment.sizes=[6]"],
        ),
    )
    run = RunDir.create(tmp_path / "run", tmp_path / "data", cfg)
    plan = make_plan(run, ["baseline", "oversample", "oracle-plan", "tuned_threshold"])
    assert plan.sets == {"oracle-plan": 6} and not plan.needs_diffusion
    result = run_experiment(
        run, plan, RunOptions(progress=False, estimate=False), echo=lambda m: None
    )
    assert len(read_dataset(run.augment_dir(2, "oracle-plan")).cases) == 6
    assert not run.augment_dir(0, "oversample").exists()  # drawn from the train part
    import json

    r = json.loads((run.classify_dir(1, "oversample_6", 0) / "result.json").read_text())
    assert r["n_train"] == r["n_train_real"] + 6
    t1 = (run.results_dir / "table1.md").read_text()
    for row in (
        "| oversample (6) |",
        "| oracle-plan (6) + tuned |",
        "| oracle-plan (6) | oversample (6) | GMS@0.5 |",  # a synthetic set against its control
    ):
        assert row in t1, row
    lines = demo_verdicts(run)
    line = next(x for x in lines if x.startswith("oracle-plan (6): "))
    assert "vs baseline: GMS@0.5" in line and "vs oversample (6): GMS@0.5" in line
    verdicts = re.findall(r"Holm p [0-9.<]+: (\w+)", " ".join(lines))
    assert verdicts and set(verdicts) <= {"helps", "hurts", "inconclusive", "equivalent"}
    assert "Does it help? Paired statistics" in result["report"].read_text()
    times = json.loads((run.results_dir / "stage_times.json").read_text())
    assert times[-1]["total"] >= times[-1]["classifiers"] > 0
