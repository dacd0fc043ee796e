"""Training (checkpoints, resume, log) and augmentation sets on a tiny hand-made dataset."""

import csv
import json
import shutil

import numpy as np
import pytest
import torch
from helpers import (
    GROUPS,
    LABELS,
    TWO_HAND_SIZE,
    two_hand_maps,
    write_two_hand_dataset,
)
from helpers import (
    TWO_HAND_OVERRIDES as OVERRIDES,
)

from jointaug.config import load_config
from jointaug.dataset.format import DatasetMeta, is_complete, read_dataset
from jointaug.dataset.validate import validate_dataset
from jointaug.dataset.writer import DatasetWriter
from jointaug.diffusion.checkpoint import load_tensors
from jointaug.diffusion.intensity import downsample_counts
from jointaug.experiments.outputs import set_from_model_on_disk
from jointaug.experiments.rundir import RunDir
from jointaug.experiments.stages import make_fold_set as make_augmentation_set
from jointaug.experiments.stages import train_fold_diffusion as train_diffusion
from jointaug.outputs import StaleOutputError, check, handle_stale
from jointaug.sets.sources import mp_source, natural_source, plan_case

SIZE = TWO_HAND_SIZE


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    base = tmp_path_factory.mktemp("gen")
    data = write_two_hand_dataset(base / "data")
    run = RunDir.create(base / "run", data, load_config("demo", OVERRIDES))
    train_diffusion(run, 0, progress=False)
    return base, data, run


def _fresh_run(base, data, name):
    return RunDir.create(base / name, data, load_config("demo", OVERRIDES))


def test_training_writes_a_complete_folder(tiny):
    _, _, run = tiny
    d = run.diffusion_dir(0)
    for f in (
        "model.safetensors",
        "ema.safetensors",
        "model.json",
        "log.csv",
        "samples.png",
        "done",
    ):
        assert (d / f).is_file(), f
    rows = list(csv.DictReader(open(d / "log.csv")))
    assert [int(r["step"]) for r in rows] == list(range(1, 7))
    assert all(np.isfinite(float(r["loss"])) and float(r["loss"]) > 0 for r in rows)
    info = json.loads((d / "model.json").read_text())
    # only the fold's train patients, every view with a tissue map (obliques too)
    train = set(run.splits.fold(0).train)
    assert info["train_cases"] and all(c.split("_")[0] in train for c in info["train_cases"])
    assert any(c.endswith("oblique") for c in info["train_cases"])
    ds = run.dataset
    peak = max(downsample_counts(ds.image(ds.case(c)), 16).max() for c in info["train_cases"])
    assert info["intensity"]["scale"] == pytest.approx(float(peak), rel=1e-5)
    # EMA differs from the raw weights after training
    raw, _ = load_tensors(d / "model.safetensors")
    ema, _ = load_tensors(d / "ema.safetensors")
    assert any(not torch.equal(raw[k], ema[k]) for k in raw)


def test_training_is_idempotent(tiny):
    _, _, run = tiny
    d = run.diffusion_dir(0)
    stamp = (d / "ema.safetensors").stat().st_mtime_ns
    train_diffusion(run, 0, progress=False)
    assert (d / "ema.safetensors").stat().st_mtime_ns == stamp


def test_resume_gives_the_uninterrupted_result(tiny):
    base, data, run = tiny
    other = _fresh_run(base, data, "resumed")
    train_diffusion(other, 0, progress=False, stop_after=3)  # "killed" after step 3
    d = other.diffusion_dir(0)
    assert not (d / "done").exists() and (d / "checkpoint.safetensors").is_file()
    _, meta = load_tensors(d / "checkpoint.safetensors")
    assert meta["step"] == 3
    changed = load_config("demo", [*OVERRIDES, "diffusion.norm_num_groups=8"])
    with pytest.raises(ValueError, match="network"):  # same tensor shapes, other network
        train_diffusion(other, 0, progress=False, config=changed)
    train_diffusion(other, 0, progress=False)
    assert (d / "done").is_file()
    a, _ = load_tensors(run.diffusion_dir(0) / "ema.safetensors")
    b, _ = load_tensors(d / "ema.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["step"] for r in csv.DictReader(open(d / "log.csv"))] == [str(i) for i in range(1, 7)]


def test_augmentation_set_contents(tiny):
    _, _, run = tiny
    out = make_augmentation_set(run, 0, "mp", perlin=True, n=4, progress=False)
    assert out == run.augment_dir(0, "mp-perlin") and is_complete(out)
    report = validate_dataset(out)
    assert report.ok, report.errors
    ds = read_dataset(out)
    assert [c.case_id for c in ds.cases] == [f"mp-perlin_{i:06d}" for i in range(4)]
    cfg = run.config
    src = mp_source(run.dataset, run.splits.fold(0).train)
    train = set(run.splits.fold(0).train)
    for i, case in enumerate(ds.cases):
        plan = plan_case(i, src, cfg.diffusion.seed, 0, "mp-perlin", cfg.sampler, cfg.perlin)
        np.testing.assert_array_equal(case.labels, plan.composed.labels)  # labels = sampled vector
        np.testing.assert_array_equal(ds.tissue(case), plan.composed.condition)
        assert case.extra["source_case"] == plan.source_case.case_id
        assert case.patient_id in train and case.view in ("palmar", "dorsal")
        assert case.extra["sampler"] == "ddim" and case.extra["steps"] == "3"
        img = ds.image(case)
        assert img.shape == (SIZE, SIZE) and img.min() >= 0 and np.all(img == np.round(img))


def test_augmentation_set_grows_and_resumes(tiny, monkeypatch):
    base, data, run = tiny
    out = make_augmentation_set(run, 0, "mp", perlin=False, n=4, progress=False)
    first = {c.case_id: (out / c.image).read_bytes() for c in read_dataset(out).cases}
    # grow 4 -> 8 (batches of 3: the batch [3, 6) is regenerated, case 3 kept as written)
    make_augmentation_set(run, 0, "mp", perlin=False, n=8, progress=False)
    grown = read_dataset(out)
    assert len(grown.cases) == 8
    assert {c.case_id: (out / c.image).read_bytes() for c in grown.cases[:4]} == first
    # the same set written in one go, interrupted after two cases and resumed
    other = _fresh_run(base, data, "oneshot")
    shutil.copytree(run.diffusion_dir(0), other.diffusion_dir(0))
    real_add = DatasetWriter.add
    calls = {"n": 0}

    def flaky_add(self, *a, **k):
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt
        return real_add(self, *a, **k)

    monkeypatch.setattr(DatasetWriter, "add", flaky_add)
    with pytest.raises(KeyboardInterrupt):
        make_augmentation_set(other, 0, "mp", perlin=False, n=8, progress=False)
    half = other.augment_dir(0, "mp")
    assert not is_complete(half)
    monkeypatch.setattr(DatasetWriter, "add", real_add)
    make_augmentation_set(other, 0, "mp", perlin=False, n=8, progress=False)
    oneshot = read_dataset(half)
    assert [c.case_id for c in oneshot.cases] == [c.case_id for c in grown.cases]
    for a, b in zip(grown.cases, oneshot.cases, strict=True):
        assert (out / a.image).read_bytes() == (half / b.image).read_bytes(), a.case_id
        np.testing.assert_array_equal(a.labels, b.labels)
    # asking for fewer returns the set unchanged; other settings are refused, deleting nothing
    assert (
        len(read_dataset(make_augmentation_set(run, 0, "mp", False, n=2, progress=False)).cases)
        == 8
    )
    changed = load_config("demo", [*OVERRIDES, "diffusion.fast_steps=2"])
    with pytest.raises(StaleOutputError, match=r"steps: 3 -> 2") as err:
        make_augmentation_set(run, 0, "mp", perlin=False, n=3, progress=False, config=changed)
    assert "fast_steps" not in str(err.value) and "--retrain" in str(err.value)
    assert len(read_dataset(out).cases) == 8  # still there
    stale = check(set_from_model_on_disk(run, 0, "mp", changed)).stale
    handle_stale([stale], run.path, retrain=True, echo=lambda m: None)
    assert (
        len(read_dataset(next(run.path.glob("stale/*/fold_0/augment/mp"))).cases) == 8
    )  # moved aside
    remade = read_dataset(
        make_augmentation_set(run, 0, "mp", perlin=False, n=3, progress=False, config=changed)
    )
    assert len(remade.cases) == 3 and remade.meta.extra["augmentation"]["steps"] == 2


def test_natural_source_never_inflames_excluded_labels(tiny):
    base, _, run = tiny
    nat = base / "natural"
    meta = DatasetMeta(
        name="nat",
        labels=LABELS,
        groups=GROUPS,
        classification_views=["natural"],
        extra={"never_inflame": ["R_a", "L_a"]},
    )
    tissue, regions = two_hand_maps()
    with DatasetWriter(nat, meta) as w:
        for k in range(3):
            w.add(
                f"h{k}", f"h{k}", "natural", np.zeros((SIZE, SIZE)), tissue=tissue, regions=regions
            )
    src = natural_source(nat, LABELS)
    assert src.exclude.tolist() == [True, False, True, False]
    out = make_augmentation_set(
        run, 0, "natural", perlin=False, n=6, natural_dir=nat, progress=False
    )
    assert out.name == "11k"
    ds = read_dataset(out)
    assert validate_dataset(out).ok
    labels = ds.label_matrix(ds.cases)
    assert labels[:, [0, 2]].sum() == 0
    assert all(c.view == "natural" and c.patient_id.startswith("natural-") for c in ds.cases)


def test_untrained_fold_gives_a_clear_error(tiny):
    _, _, run = tiny
    with pytest.raises(FileNotFoundError, match="train-diffusion"):
        make_augmentation_set(run, 1, "mp", perlin=False, n=2, progress=False)


def test_cli_augment_and_errors(tiny):
    from typer.testing import CliRunner

    from jointaug.cli import app

    base, _, run = tiny
    copy = base / "cli_run"
    shutil.copytree(run.path, copy)
    shutil.rmtree(copy / "fold_0" / "augment", ignore_errors=True)
    r = CliRunner().invoke(
        app,
        ["augment", "--run", str(copy), "--fold", "0", "--source", "mp", "--no-perlin", "--n", "3"],
    )
    assert r.exit_code == 0, r.output
    assert len(read_dataset(copy / "fold_0" / "augment" / "mp").cases) == 3
    r = CliRunner().invoke(app, ["train-diffusion", "--run", str(copy), "--fold", "0"])
    assert r.exit_code == 0, r.output  # already trained: returns at once
    r = CliRunner().invoke(
        app, ["augment", "--run", str(copy), "--fold", "0", "--source", "photos"]
    )
    assert r.exit_code == 2 and "unknown augmentation source" in r.output
    r = CliRunner().invoke(
        app, ["train-diffusion", "--run", str(copy), "--fold", "0", "--set", "diffusion.nope=1"]
    )
    assert r.exit_code == 2 and "nope" in r.output
