"""The controls that read the ``mp-perlin`` set or the fold's real images (issue 19):
``oracle`` (the phantom renders mp-perlin's conditions), ``shuffled`` (mp-perlin, labels
permuted), ``oversample-prev`` (real duplicates at mp-perlin's prevalence) and
``baseline-budget`` (real images, the augmented runs' budget), through ``jointaug run``
on a tiny phantom."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import SHRINK, overrides

from jointaug.config import load_config
from jointaug.dataset.format import read_dataset
from jointaug.dataset.phantom import write_phantom
from jointaug.dataset.splits import make_splits
from jointaug.experiments.methods import resolve_method
from jointaug.experiments.pipeline import RunOptions, run_experiment
from jointaug.experiments.plan import make_plan, with_dependencies
from jointaug.experiments.rundir import RunDir
from jointaug.sets.oversample_prev import (
    make_oversample_prev_set,
    prevalence_weights,
    target_prevalence,
)
from jointaug.sets.sources import mp_source, planned_labels

N = 6
CONTROLS = "baseline,baseline-budget,oversample-prev,shuffled,oracle,mp-perlin"


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    root = tmp_path_factory.mktemp("ctl") / "data"
    write_phantom(root, patients=6, size=64, seed=0, progress=False)
    return root


@pytest.fixture(scope="module")
def ran(phantom, tmp_path_factory):
    """One `jointaug run` of the controls on fold 0 (budget growing with the mix, no early stop)."""
    cfg = load_config(
        "cpu",
        overrides(
            SHRINK,
            [
                f"experiment.sizes=[{N}]",
                "experiment.curve_sizes=[]",
                "classify.patience_samples=1000",
                "classify.max_epochs=4",
            ],
        ),
    )
    run = RunDir.create(tmp_path_factory.mktemp("ctl") / "run", phantom, cfg)
    plan = make_plan(run, CONTROLS, folds=[0])
    run_experiment(run, plan, RunOptions(progress=False, estimate=False), echo=lambda m: None)
    return run, plan


def _set(run, name):
    return read_dataset(run.augment_dir(0, name))


@pytest.mark.slow
def test_the_plan_makes_mp_perlin_first_and_large_enough(ran):
    _, plan = ran
    names = list(plan.sets)
    assert plan.sets["mp-perlin"] >= N and names.index("mp-perlin") < names.index("oracle")
    assert names.index("mp-perlin") < names.index("shuffled")
    assert with_dependencies({"oracle": 9, "mp-perlin": 4}) == {"mp-perlin": 9, "oracle": 9}


@pytest.mark.slow
def test_oracle_renders_mp_perlins_conditions_case_by_case(ran, phantom):
    run, _ = ran
    mp, oracle = _set(run, "mp-perlin"), _set(run, "oracle")
    assert len(oracle.cases) == N
    real = read_dataset(phantom)
    for a, b in zip(oracle.cases, mp.cases, strict=False):
        assert a.extra["condition_case"] == b.case_id
        assert (a.patient_id, a.view, a.extra["source_case"]) == (
            b.patient_id,
            b.view,
            b.extra["source_case"],
        )
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_array_equal(oracle.tissue(a), mp.tissue(b))  # the same condition
        np.testing.assert_array_equal(oracle.regions(a), mp.regions(b))
        img, cond = oracle.image(a).astype(float), oracle.tissue(a)
        assert img[cond > 0].sum() > 0.9 * img.sum()  # the counts lie on the condition's hands
        if (cond >= 2).any():  # inflamed pixels are hot, as the condition paints them
            assert img[cond >= 2].mean() > 1.5 * img[cond == 1].mean()
        src = real.image(real.case(a.extra["source_case"])).astype(float)
        assert (
            0.5
            < img[cond == 1].mean()
            / src[real.tissue(real.case(b.extra["source_case"])) == 1].mean()
            < 2
        )


@pytest.mark.slow
def test_shuffled_holds_mp_perlins_images_with_a_permuted_label_multiset(ran):
    run, _ = ran
    mp, sh = _set(run, "mp-perlin"), _set(run, "shuffled")
    assert len(sh.cases) == N
    for a, b in zip(sh.cases, mp.cases, strict=False):
        np.testing.assert_array_equal(sh.image(a), mp.image(b))  # same images, same order
    rows = lambda ds: sorted(tuple(c.labels.tolist()) for c in ds.cases[:N])  # noqa: E731
    assert rows(sh) == rows(mp)
    moved = [c.extra["label_case"] != c.extra["image_case"] for c in sh.cases]
    assert any(moved)  # seeded, not the identity
    settings = json.loads((run.augment_dir(0, "shuffled") / "augmentation.json").read_text())
    assert settings["permuted_over"] == N and settings["images"]["name"] == "mp-perlin"


@pytest.mark.slow
def test_oversample_prev_duplicates_real_train_images_towards_mp_perlins_prevalence(ran):
    run, _ = ran
    ds, mp = _set(run, "oversample-prev"), _set(run, "mp-perlin")
    train = set(run.splits.fold(0).train)
    real = run.dataset
    for c in ds.cases:
        src = real.case(c.extra["source_case"])
        assert c.patient_id in train and src.patient_id == c.patient_id
        np.testing.assert_array_equal(ds.image(c), real.image(src))
        np.testing.assert_array_equal(c.labels, src.labels)
    settings = json.loads((run.augment_dir(0, "oversample-prev") / "augmentation.json").read_text())
    # the target is mp-perlin's prevalence, read from its plan: the labels of the set made
    assert settings["target_prevalence"] == pytest.approx(
        float(np.mean([c.labels for c in mp.cases[:N]])), abs=1e-6
    )


@pytest.mark.slow
def test_baseline_budget_trains_on_real_images_for_the_augmented_budget(ran):
    run, _ = ran
    res = {
        m: json.loads((run.classify_dir(0, d, 0) / "result.json").read_text())
        for m, d in (
            ("baseline", "baseline"),
            ("budget", f"baseline-budget_{N}"),
            ("mp", f"mp-perlin_{N}"),
        )
    }
    assert res["budget"]["n_train"] == res["budget"]["n_train_real"] == res["baseline"]["n_train"]
    assert res["mp"]["n_train"] == res["baseline"]["n_train"] + N
    # max_samples 32 = 4 epochs of the real images; the mix's budget is 4 x (real + N)
    assert res["baseline"]["samples"] < res["budget"]["samples"]
    assert res["budget"]["samples"] >= 4 * res["mp"]["n_train"] - 8  # to the batch


def test_baseline_budget_is_sized_but_adds_no_images():
    m = resolve_method("baseline-budget")
    assert m.sized and not m.augmented and m.mix == () and m.budget
    assert m.sizes([128, 512]) == [128, 512] and m.dir_name(512) == "baseline-budget_512"
    assert (
        m.budget_images(58, 512) == 570 and resolve_method("baseline").budget_images(58, 512) == 58
    )


def test_prevalence_weights_increase_with_positives_and_hit_the_target():
    k = np.array([0, 0, 0, 1, 2, 3, 6, 9])
    w, beta = prevalence_weights(k, 30, 0.15)
    assert beta > 0 and np.all(np.diff(w) >= 0) and w @ k / 30 == pytest.approx(0.15, abs=1e-6)
    w, beta = prevalence_weights(k, 30, 0.01)
    assert beta < 0 and w @ k / 30 == pytest.approx(0.01, abs=1e-6)
    w, _ = prevalence_weights(k, 30, 0.9)  # beyond reach: clipped to the most positive image
    assert w @ k / 30 == pytest.approx(9 / 30, abs=1e-3)


def test_oversample_prev_prevalence_is_within_tolerance_of_the_target(tmp_path):
    ds = write_phantom(tmp_path / "p", patients=24, size=32, seed=1, progress=False)
    fold = make_splits(ds, 3, 0).fold(0)
    cfg = load_config("demo")
    n = 400
    out = make_oversample_prev_set(
        tmp_path / "op",
        n,
        dataset=ds,
        train_patients=fold.train,
        fold=0,
        config=cfg,
        progress=False,
    )
    made = read_dataset(out)
    prevalence = float(np.mean([c.labels for c in made.cases]))
    target = target_prevalence(ds, fold.train, 0, cfg, n)
    real = float(np.nanmean(ds.label_matrix(ds.classification_cases(fold.train))))
    assert target > real + 0.05  # the synthetic set is richer in positives than the train part
    assert abs(prevalence - target) < 0.03, (prevalence, target)
    src = mp_source(ds, tuple(fold.train))
    labels = planned_labels(5, src, cfg.diffusion.seed, 0, "mp-perlin", cfg.sampler)
    from jointaug.sets.sources import plan_case

    for i in range(5):  # planned labels = the labels the full case plan gives
        plan = plan_case(i, src, cfg.diffusion.seed, 0, "mp-perlin", cfg.sampler, cfg.perlin)
        np.testing.assert_array_equal(labels[i], plan.composed.labels)
    again = make_oversample_prev_set(
        tmp_path / "op2",
        7,
        dataset=ds,
        train_patients=fold.train,
        fold=0,
        config=cfg,
        target=0.2,
        progress=False,
    )
    assert json.loads((again / "augmentation.json").read_text())["target_from"] == "stated"
