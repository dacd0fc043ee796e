"""The whole grid, paper profile with every size overridden tiny: every stage, resume, report, predict."""

import csv
import importlib.util
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import PIPELINE_TINY as TINY
from helpers import write_dicom
from PIL import Image
from typer.testing import CliRunner

from jointaug.classify.metrics import binarize, pooled_metrics
from jointaug.classify.predict import predict_files
from jointaug.cli import app
from jointaug.config import load_config
from jointaug.dataset.format import read_dataset
from jointaug.dataset.phantom import write_phantom
from jointaug.dataset.validate import validate_dataset
from jointaug.experiments.pipeline import RunOptions, run_experiment
from jointaug.experiments.plan import make_plan
from jointaug.experiments.predict import best_method, method_threshold, model_files
from jointaug.experiments.rundir import RunDir

pytestmark = pytest.mark.slow  # every test shares a ~10 s tiny grid run (tiny_run)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("grid")
    write_phantom(root / "data", patients=6, size=64, seed=0, progress=False)
    cfg = load_config("paper", TINY)
    run = RunDir.create(root / "run", root / "data", cfg)
    plan = make_plan(run)
    log: list[str] = []
    result = run_experiment(run, plan, RunOptions(progress=False), echo=log.append)
    yield run, plan, result, log


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _rgb(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _pixels_near(rgb: np.ndarray, colour: str, tol: int = 30) -> int:
    target = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(rgb.astype(int) - target).max(axis=2) <= tol).sum())


def test_plan_covers_the_papers_grid(tiny_run):
    run, plan, _, log = tiny_run
    assert [m.name for m in plan.methods] == [
        "baseline",
        "mp-perlin",
        "11k-perlin",
        "mp50-11kp50",
        "tuned_threshold",
    ]
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
    # a single model's row holds the metrics of its own stored test probabilities
    one = [
        r
        for r in rows
        if (r["method"], r["fold"], r["seed"], r["threshold"]) == ("baseline", "0", "0", "default")
    ]
    assert len(one) == 1
    d = run.classify_dir(0, "baseline", 0)
    expect = pooled_metrics(
        np.load(d / "test_labels.npy"), binarize(np.load(d / "test_probs.npy"), 0.5)
    )
    for k in ("accuracy", "tpr", "tnr", "gms"):
        assert float(one[0][k]) == pytest.approx(expect[k], abs=1e-4, nan_ok=True), k
    t1 = (run.results_dir / "table1.md").read_text()
    assert "| Method | Accuracy | TPR | TNR | F1 | GMS |" in t1 and "mp-perlin (8)" in t1
    html = result["report"].read_text()
    assert html.count("data:image/png;base64,") >= 3 and "<table>" in html and "http" not in html
    assert "Effect against set size" in html and (run.results_dir / "effect.png").is_file()
    assert "Per-joint TPR and TNR" in html and (run.results_dir / "per_joint.png").is_file()
    fig = _rgb(run.results_dir / "fig6.png")
    assert fig.shape[1] > 3 * fig.shape[0]  # five metric panels side by side
    for colour in ("#1f77b4", "#ff7f0e", "#2ca02c"):  # the three augmented methods' curves
        assert _pixels_near(fig, colour) > 30, colour


def test_rerun_computes_nothing_and_a_lost_model_is_retrained_alone(tiny_run):
    run, plan, _, _ = tiny_run
    model = run.diffusion_dir(0) / "model.safetensors"
    files = sorted(run.path.glob("fold_*/**/*.safetensors")) + sorted(
        run.path.glob("fold_*/augment/*/cases.csv")
    )
    before = {f: os.stat(f).st_mtime_ns for f in files}
    victim = run.classify_dir(1, "mp-perlin_8", 1)
    (victim / "done").unlink()
    (victim / "model.safetensors").unlink()
    log: list[str] = []
    run_experiment(run, make_plan(run), RunOptions(progress=False, estimate=False), echo=log.append)
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

    orig = stages.make_named_set

    def flaky(run_, fold, *a, **k):
        calls.append(fold)
        if fold == 1:
            raise KeyboardInterrupt
        return orig(run_, fold, *a, **k)

    monkeypatch.setattr(stages, "make_named_set", flaky)
    plan = make_plan(run, ["baseline", "mp-perlin"], sizes=[4], curve_sizes=[])
    with pytest.raises(KeyboardInterrupt):
        run_experiment(run, plan, RunOptions(progress=False, estimate=False), echo=lambda m: None)
    assert calls == [0, 1]  # fold 0's set was made, then the run was killed in fold 1
    stamp = os.stat(run.diffusion_dir(0) / "model.safetensors").st_mtime_ns
    set0 = os.stat(run.augment_dir(0, "mp-perlin") / "cases.csv").st_mtime_ns
    monkeypatch.setattr(stages, "make_named_set", orig)
    run_experiment(run, plan, RunOptions(progress=False, estimate=False), echo=lambda m: None)
    assert os.stat(run.diffusion_dir(0) / "model.safetensors").st_mtime_ns == stamp
    assert os.stat(run.augment_dir(0, "mp-perlin") / "cases.csv").st_mtime_ns == set0
    assert (run.results_dir / "table1.md").is_file()


def test_predict_cli_writes_probabilities_and_overlays(tiny_run, tmp_path):
    run, _, _, _ = tiny_run
    ds = run.dataset
    img = ds.root / ds.classification_cases()[0].image
    res = CliRunner().invoke(
        app, ["predict", str(run.path), str(img), "--out", str(tmp_path / "p")]
    )
    assert res.exit_code == 0, res.output
    rows = _rows(tmp_path / "p" / "predictions.csv")
    assert len(rows) == 1
    probs = np.array([float(rows[0][f"p_{lab}"]) for lab in ds.labels])
    method = best_method(run)
    expect, labels = predict_files(model_files(run, method), [img])
    assert labels == ds.labels and np.allclose(probs, expect[0], atol=6e-5)  # 4 decimals
    thr = method_threshold(run, method)
    assert [int(rows[0][lab]) for lab in ds.labels] == [int(p >= thr) for p in expect[0]]
    over = _rgb(tmp_path / "p" / f"{img.stem}_overlay.png")
    left, right = over[:, : over.shape[1] // 2], over[:, over.shape[1] // 2 :]
    grey = (np.ptp(left, axis=2) < 8) & (left.mean(axis=2) < 200)
    assert grey.sum() > 500  # the image itself, in grey, on the left
    reds = right[..., 0].astype(int) - right[..., 1] > 60
    assert reds.sum() > 10 * len(ds.labels)  # every joint's dot on the schematic
    bad = CliRunner().invoke(app, ["predict", str(run.path), str(tmp_path / "nope.png")])
    assert bad.exit_code == 2 and "no such image file" in bad.output
    assert rows[0]["warnings"] == "" and "warning" not in res.output  # like the training data
    np.save(tmp_path / "strip.npy", np.ones((10, 40)))
    strip = CliRunner().invoke(app, ["predict", str(run.path), str(tmp_path / "strip.npy")])
    assert strip.exit_code == 2 and "too small or not roughly square" in strip.output


def test_predict_warns_when_an_image_differs_from_the_training_data(tiny_run, tmp_path):

    run, _, _, _ = tiny_run
    ds = run.dataset
    counts = ds.image(ds.classification_cases()[0])  # 64x64 16-bit counts, modality NM
    shown = np.clip(np.kron(counts, np.ones((2, 2))) * 8, 0, 255).astype(np.uint8)
    Image.fromarray(shown).save(tmp_path / "screenshot.png")  # 8-bit, 128x128, clipped
    write_dicom(tmp_path / "ct.dcm", counts, modality="CT")
    res = CliRunner().invoke(
        app,
        [
            "predict",
            str(run.path),
            str(tmp_path / "screenshot.png"),
            str(tmp_path / "ct.dcm"),
            "--out",
            str(tmp_path / "p"),
        ],
    )
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.split())
    assert "screenshot.png: size 128x128 px differs from the training images (64x64 px)" in out
    assert "screenshot.png: 8-bit pixels, the training images were 16-bit" in out
    assert "ct.dcm: DICOM Modality 'CT', the training data are 'NM'" in out
    rows = {Path(r["image"]).name: r for r in _rows(tmp_path / "p" / "predictions.csv")}
    assert rows["screenshot.png"]["warnings"].count(" | ") >= 2  # size, bit depth, clipping
    assert rows["ct.dcm"]["warnings"] == "DICOM Modality 'CT', the training data are 'NM'"
    moved = tmp_path / "moved_run"  # a run whose dataset folder is gone
    shutil.copytree(run.path, moved)
    cfg = (
        (moved / "config.yaml").read_text().replace(str(run.config.dataset), str(tmp_path / "gone"))
    )
    (moved / "config.yaml").write_text(cfg)
    res = CliRunner().invoke(
        app, ["predict", str(moved), str(tmp_path / "ct.dcm"), "--out", str(tmp_path / "q")]
    )
    assert res.exit_code == 0, res.output
    assert "cannot compare the images with the training data" in " ".join(res.output.split())


def test_changed_setting_stops_until_confirmed_and_keeps_the_old_model(tiny_run, tmp_path):
    import shutil

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
    plan = make_plan(run, ["baseline"], folds=[0], curve_sizes=[])
    plan.seeds = [0]
    opts = RunOptions(progress=False, estimate=False)
    with pytest.raises(StaleOutputError) as err:
        run_experiment(run, plan, opts, echo=log.append)
    assert f"classify.lr: {old_lr} -> {old_lr * 3}" in str(err.value) and "--retrain" in str(
        err.value
    )
    assert model.read_bytes() == before and not log  # stopped before any work
    run_experiment(
        run, plan, RunOptions(progress=False, estimate=False, retrain=True), echo=log.append
    )
    assert sum(m.startswith("[") for m in log) == 1  # the stale baseline was retrained
    kept = list(run.path.glob("stale/*/fold_0/classify/baseline/seed_0/model.safetensors"))
    assert len(kept) == 1 and kept[0].read_bytes() == before  # moved aside, not deleted
    log.clear()
    run_experiment(run, plan, opts, echo=log.append)
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
        run_experiment(run, plan, RunOptions(progress=False, estimate=False), echo=lambda m: None)
    msg = str(err.value)
    # the model, the set made with it and the classifiers trained on that set; not the baseline
    assert "diffusion model" in msg and "augmentation set" in msg and "model_key" in msg
    assert "mp-perlin_8/seed_0" in msg and "baseline/seed_0" not in msg
    assert (run.diffusion_dir(0) / "ema.safetensors").read_bytes() == model
    assert (run.augment_dir(0, "mp-perlin") / "dataset.json").is_file()
    # --plan (a reader) lists the same without writing
    res = CliRunner().invoke(
        app,
        [
            "run",
            "--dataset",
            cfg.dataset,
            "--out",
            str(run.path),
            "--profile",
            "paper",
            "--methods",
            "baseline,mp-perlin",
            "--sizes",
            "8",
            "--curve-sizes",
            "",
            "--folds",
            "0",
            "--plan",
            *[a for o in TINY for a in ("--set", o)],
            "--set",
            f"diffusion.lr={cfg.diffusion.lr}",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "would be replaced" in res.output and "task graph" in res.output
    assert "diffusion/0" in res.output and "classify/0/mp-perlin_8/seed_1" in res.output


@pytest.mark.slow
def test_kill_9_at_three_moments_then_rerun_gives_the_same_tables(tiny_run, tmp_path):
    """SIGKILL (no cleanup at all) mid diffusion training, mid set writing and mid classifier
    training; the rerun finishes the grid with tables identical to the uninterrupted run."""
    import signal
    import subprocess
    import sys
    import time

    run0, _, _, _ = tiny_run
    out = tmp_path / "killed"
    sets = [x for s in TINY for x in ("--set", s)]
    cmd = [
        sys.executable,
        "-c",
        "from jointaug.cli import main; main()",
        "run",
        "--dataset",
        str(run0.config.dataset),
        "--out",
        str(out),
        "--profile",
        "paper",
        "--no-progress",
        *sets,
        "--set",
        "threads=1",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    moments = [
        "fold_*/diffusion/checkpoint.safetensors",
        "fold_*/augment/*/.cases.partial.csv",
        "fold_*/classify/*/seed_*/checkpoint.safetensors",
    ]
    killed = []
    for pattern in moments:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline and not list(out.glob(pattern)):
            time.sleep(0.02)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed.append(pattern)
        proc.wait()
    assert len(killed) >= 2, killed  # the grid did not simply finish before the kills
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    for table in ("table1.md", "table2.md"):
        assert (out / "results" / table).read_text() == (run0.results_dir / table).read_text(), (
            table
        )


def test_training_curves_beside_every_model_and_in_the_report(tiny_run):
    """progress.png (and TensorBoard events when installed) beside every trained model;
    report.html embeds or links each; the run prints where to point TensorBoard."""
    from jointaug.curves import EVENTS, PROGRESS

    run, _, result, log = tiny_run
    assert any(f"tensorboard --logdir {run.path}" in line for line in log)
    trainings = [run.diffusion_dir(f) for f in range(3)] + run.classify_dirs()
    page = result["report"].read_text(encoding="utf-8")
    assert "<h2>Training curves</h2>" in page
    for folder in trainings:
        assert (folder / PROGRESS).is_file(), folder
        assert Path(os.path.relpath(folder / PROGRESS, run.results_dir)).as_posix() in page
        if importlib.util.find_spec("tensorboard") is not None:
            assert list((folder / EVENTS).glob("events.out.tfevents.*")), folder
