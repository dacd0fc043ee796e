"""The plan's time estimate: measured rates x counted work, per stage."""

import pytest
import torch
from helpers import CLASSIFIER_TINY, DIFFUSION_TINY

from jointaug.config import load_config
from jointaug.dataset.phantom import write_phantom
from jointaug.experiments.estimate import Counts, Rates, calibrate, estimate, format_estimates
from jointaug.experiments.plan import make_plan, plan_counts
from jointaug.experiments.rundir import RunDir

TINY = [*CLASSIFIER_TINY, *DIFFUSION_TINY]


def test_estimate_multiplies_rates_by_counts_per_stage():
    rates = Rates(
        "cpu",
        diffusion_step_s=0.5,
        sample_s_per_image=2.0,
        classifier_s_per_sample=0.01,
        eval_s_per_image=0.001,
        batches=(("diffusion", 2),),
    )
    counts = Counts(
        diffusion_steps=7200,
        images=3600,
        trainings=3,
        classifier_samples_min=360_000,
        classifier_samples_max=720_000,
        eval_images_max=36_000,
    )
    rows = {r.stage.split(" (")[0]: r for r in estimate(rates, counts)}
    assert rows["diffusion training"].hours == pytest.approx(1.0)
    assert rows["sampling"].hours == pytest.approx(2.0)
    assert rows["classifiers"].hours == pytest.approx(1.0) and rows[
        "classifiers"
    ].hours_max == pytest.approx(2.0)
    assert rows["evaluation"].hours == pytest.approx(0.01)
    assert rows["total"].hours == pytest.approx(4.01) and rows["total"].hours_max == pytest.approx(
        5.01
    )
    text = format_estimates(list(rows.values()), rates)
    assert "diffusion 2" in text and "total" in text
    assert [r.stage for r in estimate(rates, Counts())] == ["total"]


def test_calibrate_measures_every_stage_at_the_configured_precision():
    cfg = load_config("paper", TINY)
    rates = calibrate(cfg, 4, torch.device("cpu"), min_run_time=0.01)
    assert rates.device == "cpu"
    for v in (
        rates.diffusion_step_s,
        rates.sample_s_per_image,
        rates.classifier_s_per_sample,
        rates.eval_s_per_image,
    ):
        assert 0 < v < 60
    # small networks on the CPU: timed at the configured batches (sampling: auto -> 64 on CPU)
    assert dict(rates.batches) == {
        "diffusion": 16,
        "sampling": 64,
        "classifier": 32,
        "evaluation": 64,
    }
    ddim = calibrate(
        cfg.model_copy(
            update={
                "diffusion": cfg.diffusion.model_copy(update={"sampler": "ddim", "fast_steps": 5})
            }
        ),
        4,
        "cpu",
        stages=("sampling",),
    )
    assert ddim.sample_s_per_image < rates.sample_s_per_image  # 5 steps instead of 500
    assert ddim.diffusion_step_s == 0.0


def test_plan_counts_follow_the_plan(tmp_path):
    write_phantom(tmp_path / "data", patients=6, size=64, seed=0, progress=False)
    cfg = load_config(
        "paper",
        [
            *TINY,
            "split.folds=3",
            "classify.seeds=[0, 1]",
            "experiment.sizes=[8]",
            "experiment.curve_sizes=[4]",
            "diffusion.train_steps=10",
        ],
    )
    run = RunDir.create(tmp_path / "run", tmp_path / "data", cfg)
    plan = make_plan(run, ["baseline", "mp-perlin"])
    c = plan_counts(run, plan)
    main, curve = plan.jobs()
    assert c.trainings == len(main) + len(curve) == 3 * 2 * 2 + 3
    assert c.diffusion_steps == 3 * 10 and c.images == 3 * 8
    assert c.classifier_samples_max == c.trainings * cfg.classify.max_samples
    floor = c.trainings * min(cfg.classify.patience_samples, cfg.classify.max_samples)
    assert floor <= c.classifier_samples_min <= c.classifier_samples_max  # first eval + patience
    assert c.eval_images_max > c.trainings


def test_slow_cpu_stages_are_timed_at_a_small_batch_and_scaled(monkeypatch):
    from jointaug.experiments import estimate as est

    timed = []
    monkeypatch.setattr(est, "_seconds", lambda fn, dev, t: (timed.append(1), 10.0)[1])
    rates = calibrate(load_config("paper", TINY), 4, "cpu", stages=("classifier", "diffusion"))
    assert dict(rates.batches) == {"classifier": 2, "diffusion": 2} and len(timed) == 2
    assert rates.classifier_s_per_sample == pytest.approx(5.0)  # 10 s for 2 images
    assert rates.diffusion_step_s == pytest.approx(10.0 / 2 * 16)  # scaled to the batch of 16


def test_training_floor_is_first_evaluation_plus_patience_rounded_up():
    """A training stops no earlier than its first evaluation plus the patience rounded up
    to the evaluation period (as fit does: test_early_stopping_counts_samples)."""
    from jointaug.experiments.estimate import training_samples_range

    # fit's own case: evaluations every 128 samples, patience 300 -> stops at 512
    assert training_samples_range(10_000, 300, 128) == (512, 10_000)
    assert training_samples_range(10_000, 256, 128) == (384, 10_000)  # exact multiple
    assert training_samples_range(450, 300, 128) == (450, 450)  # capped by max_samples
    assert training_samples_range(100, 300, 128) == (100, 100)  # first evaluation at the cap
