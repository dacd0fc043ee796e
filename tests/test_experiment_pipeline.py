"""The whole grid, paper profile with every size overridden tiny: every stage, resume, report, predict."""

import csv
import os

import numpy as np
import pytest
from typer.testing import CliRunner

from jointaug.cli import app
from jointaug.config import load_config
from jointaug.dataset.format import read_dataset
from jointaug.dataset.phantom import write_phantom
from jointaug.dataset.validate import validate_dataset
from jointaug.experiments.pipeline import make_plan, run_experiment
from jointaug.experiments.rundir import RunDir

TINY = [
    "device=cpu", "split.folds=3",
    "classify.image_size=32", "classify.block_config=[1, 1]", "classify.growth_rate=4",
    "classify.init_features=8", "classify.batch_size=8", "classify.max_samples=48",
    "classify.patience_samples=24", "classify.eval_every_epochs=1", "classify.seeds=[0, 1]",
    "diffusion.image_size=16", "diffusion.channels=[8, 16]", "diffusion.attention_levels=[false, true]",
    "diffusion.num_res_blocks=1", "diffusion.num_head_channels=8", "diffusion.batch_size=4",
    "diffusion.train_steps=3", "diffusion.sample_every=3", "diffusion.checkpoint_every=2",
    "diffusion.sampler=ddim", "diffusion.fast_steps=2", "diffusion.sample_batch_size=8",
    "natural.max_images=4", "natural.n_labelled=4", "natural.stand_in_photos=8",
    "natural.segmenter_image_size=32", "natural.segmenter_channels=[4, 8]", "natural.segmenter_epochs=2",
    "experiment.methods=[baseline, mp-perlin, 11k-perlin]", "experiment.mixtures=[50]",
    "experiment.sizes=[8]", "experiment.curve_sizes=[4]", "experiment.imbalance_baselines=[tuned_threshold]",
]  # fmt: skip


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("grid")
    write_phantom(root / "data", patients=6, size=64, seed=0, progress=False)
    cfg = load_config("paper", TINY)
    run = RunDir.create(root / "run", root / "data", cfg)
    plan = make_plan(run)
    log: list[str] = []
    result = run_experiment(run, plan, progress=False, echo=log.append)
    yield run, plan, result, log


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_plan_covers_the_papers_grid(tiny_run):
    run, plan, _, log = tiny_run
    assert [m.name for m in plan.methods] == ["baseline", "mp-perlin", "11k-perlin", "mp50-11kp50",
                                              "tuned_threshold"]  # fmt: skip
    assert plan.sets == {"mp-perlin": 8, "11k-perlin": 8}
    assert plan.curve_sizes == [4] and plan.needs_natural and plan.needs_diffusion
    assert "estimate on this machine" in log[0] and "diffusion: 3 models" in log[0]


def test_every_stage_ran_and_outputs_validate(tiny_run):
    run, plan, result, _ = tiny_run
    assert validate_dataset(run.path / "natural_source").ok
    for fold in range(3):
        assert (run.diffusion_dir(fold) / "samples.png").is_file()
        for name, n in plan.sets.items():
            ds = read_dataset(run.augment_dir(fold, name))
            assert len(ds.cases) == n and validate_dataset(ds.root).ok
    rows = _rows(run.results_dir / "metrics.csv")
    got = {(r["method"], int(r["size"]), r["seed"]) for r in rows}
    for method in ("mp-perlin", "11k-perlin", "mp50-11kp50"):
        assert {(method, 8, "0"), (method, 8, "1"), (method, 8, "ensemble")} <= got
        assert (method, 4, "1") not in got  # curve sizes: one seed, as the paper
    # the Fig. 6 curve sizes: only experiment.curve_methods (the strategies the figure plots)
    assert ("mp-perlin", 4, "0") in got and ("11k-perlin", 4, "0") in got
    assert not any(m == "mp50-11kp50" and size == 4 for m, size, _ in got)
    assert ("baseline", 0, "ensemble") in got
    for r in rows:
        assert 0.0 <= float(r["accuracy"]) <= 1.0
    t1 = (run.results_dir / "table1.md").read_text()
    assert "| Method | Accuracy | TPR | TNR | F1 | GMS |" in t1 and "mp-perlin (8)" in t1
    html = result["report"].read_text()
    assert html.count("data:image/png;base64,") >= 3 and "<table>" in html and "http" not in html
    assert (run.results_dir / "fig6.png").stat().st_size > 5000


def test_rerun_computes_nothing_and_a_lost_model_is_retrained_alone(tiny_run):
    run, plan, _, _ = tiny_run
    model = run.diffusion_dir(0) / "model.safetensors"
    files = sorted(run.path.glob("fold_*/**/*.safetensors")) + sorted(run.path.glob("fold_*/augment/*/cases.csv"))
    before = {f: os.stat(f).st_mtime_ns for f in files}
    victim = run.classify_dir(1, "mp-perlin_8", 1)
    (victim / "done").unlink()
    (victim / "model.safetensors").unlink()
    log: list[str] = []
    run_experiment(run, make_plan(run), progress=False, echo=log.append, estimate=False)
    after = {f: os.stat(f).st_mtime_ns for f in files if f.exists()}
    changed = [f for f in files if f.exists() and before[f] != after[f] and victim not in f.parents]
    assert changed == [] and model.exists()
    assert (victim / "done").is_file()
    trained = [m for m in log if m.startswith("[")]
    assert len(trained) == 1 and "fold 1 · mp-perlin N=8 · seed 1" in trained[0]


def test_interrupted_run_resumes_where_it_stopped(tiny_run, monkeypatch, tmp_path):
    run0, _, _, _ = tiny_run
    cfg = run0.config
    run = RunDir.create(tmp_path / "run", cfg.dataset, cfg.model_copy(update={"dataset": ""}))
    calls = []
    from jointaug.experiments import stages

    orig = stages.make_fold_set

    def flaky(run_, fold, *a, **k):
        calls.append(fold)
        if fold == 1:
            raise KeyboardInterrupt
        return orig(run_, fold, *a, **k)

    monkeypatch.setattr(stages, "make_fold_set", flaky)
    plan = make_plan(run, ["baseline", "mp-perlin"], sizes=[4], curve_sizes=[])
    with pytest.raises(KeyboardInterrupt):
        run_experiment(run, plan, progress=False, echo=lambda m: None, estimate=False)
    assert calls == [0, 1]  # fold 0's set was made, then the run was killed in fold 1
    stamp = os.stat(run.diffusion_dir(0) / "model.safetensors").st_mtime_ns
    set0 = os.stat(run.augment_dir(0, "mp-perlin") / "cases.csv").st_mtime_ns
    monkeypatch.setattr(stages, "make_fold_set", orig)
    run_experiment(run, plan, progress=False, echo=lambda m: None, estimate=False)
    assert os.stat(run.diffusion_dir(0) / "model.safetensors").st_mtime_ns == stamp
    assert os.stat(run.augment_dir(0, "mp-perlin") / "cases.csv").st_mtime_ns == set0
    assert (run.results_dir / "table1.md").is_file()


def test_predict_cli_writes_probabilities_and_overlays(tiny_run, tmp_path):
    run, _, _, _ = tiny_run
    ds = run.dataset
    img = ds.root / ds.classification_cases()[0].image
    res = CliRunner().invoke(app, ["predict", str(run.path), str(img), "--out", str(tmp_path / "p")])
    assert res.exit_code == 0, res.output
    rows = _rows(tmp_path / "p" / "predictions.csv")
    assert len(rows) == 1
    probs = np.array([float(rows[0][f"p_{lab}"]) for lab in ds.labels])
    assert ((probs >= 0) & (probs <= 1)).all()
    assert (tmp_path / "p" / f"{img.stem}_overlay.png").stat().st_size > 5000
    bad = CliRunner().invoke(app, ["predict", str(run.path), str(tmp_path / "nope.png")])
    assert bad.exit_code == 2 and "no such image file" in bad.output


def test_changed_setting_stops_until_confirmed_and_keeps_the_old_model(tiny_run, tmp_path):
    import shutil

    from jointaug.experiments.classification import run_classification
    from jointaug.outputs import StaleOutputError

    run0, _, _, _ = tiny_run
    shutil.copytree(run0.path, tmp_path / "run")
    cfg = run0.config.model_copy(deep=True)
    old_lr = cfg.classify.lr
    cfg.classify.lr = old_lr * 3
    run = RunDir.create(tmp_path / "run", cfg.dataset, cfg)
    model = run.classify_dir(0, "baseline", 0) / "model.safetensors"
    before = model.read_bytes()
    log: list[str] = []
    with pytest.raises(StaleOutputError) as err:
        run_classification(run, ["baseline"], folds=[0], seeds=[0], progress=False, echo=log.append)
    assert f"classify.lr: {old_lr} -> {old_lr * 3}" in str(err.value) and "--retrain" in str(err.value)
    assert model.read_bytes() == before and not log  # stopped before any work
    run_classification(run, ["baseline"], folds=[0], seeds=[0], retrain=True, progress=False, echo=log.append)
    assert sum(m.startswith("[") for m in log) == 1  # the stale baseline was retrained
    kept = list(run.path.glob("stale/*/fold_0/classify/baseline/seed_0/model.safetensors"))
    assert len(kept) == 1 and kept[0].read_bytes() == before  # moved aside, not deleted
    log.clear()
    run_classification(run, ["baseline"], folds=[0], seeds=[0], progress=False, echo=log.append)
    assert not any(m.startswith("[") for m in log)  # and is now up to date


def test_changed_diffusion_setting_lists_everything_it_would_replace(tiny_run, tmp_path):
    import shutil

    from jointaug.experiments.stages import train_fold_diffusion
    from jointaug.outputs import StaleOutputError

    run0, _, _, _ = tiny_run
    shutil.copytree(run0.path, tmp_path / "run")
    cfg = run0.config.model_copy(deep=True)
    run = RunDir(tmp_path / "run")
    before = (run.diffusion_dir(0) / "done").read_text()
    train_fold_diffusion(run, 0, progress=False)  # same settings: nothing to do
    assert (run.diffusion_dir(0) / "done").read_text() == before
    cfg.diffusion.lr = cfg.diffusion.lr * 2
    run = RunDir.create(tmp_path / "run", cfg.dataset, cfg)
    model = (run.diffusion_dir(0) / "ema.safetensors").read_bytes()
    with pytest.raises(StaleOutputError, match=r"diffusion\.lr: "):
        train_fold_diffusion(run, 0, progress=False)
    plan = make_plan(run, ["baseline", "mp-perlin"], sizes=[8], curve_sizes=[], folds=[0])
    with pytest.raises(StaleOutputError) as err:
        run_experiment(run, plan, progress=False, echo=lambda m: None, estimate=False)
    msg = str(err.value)
    # the model, the set made with it and the classifiers trained on that set; not the baseline
    assert "diffusion model" in msg and "augmentation set" in msg and "model_key" in msg
    assert "mp-perlin_8/seed_0" in msg and "baseline/seed_0" not in msg
    assert (run.diffusion_dir(0) / "ema.safetensors").read_bytes() == model
    assert (run.augment_dir(0, "mp-perlin") / "dataset.json").is_file()
    # --plan (a reader) lists the same without writing
    res = CliRunner().invoke(app, ["run", "--dataset", cfg.dataset, "--out", str(run.path), "--profile", "paper",
                                   "--methods", "baseline,mp-perlin", "--sizes", "8", "--curve-sizes", "",
                                   "--folds", "0", "--plan", *[a for o in TINY for a in ("--set", o)],
                                   "--set", f"diffusion.lr={cfg.diffusion.lr}"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "would be replaced" in res.output and "task graph" in res.output
    assert "diffusion/0" in res.output and "classify/0/mp-perlin_8/seed_1" in res.output
