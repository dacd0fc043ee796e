"""The diffusion loop's speed pieces keep its results: device-side losses, wall-time
checkpoints, appended logs, exact resume after Ctrl-C, non-finite losses caught."""

import csv
import math

import pytest
import torch
from test_generate_pipeline import OVERRIDES, _write_dataset

from jointaug.config import load_config
from jointaug.experiments.rundir import RunDir
from jointaug.generate import loop
from jointaug.generate import train as train_mod
from jointaug.generate.checkpoint import load_tensors
from jointaug.generate.loop import CheckpointClock, LogFile, LossMeter
from jointaug.generate.train import train_diffusion


def test_loss_meter_equals_per_step_python_floats():
    losses = torch.rand(37, generator=torch.Generator().manual_seed(0)) * 3
    meter = LossMeter(torch.device("cpu"))
    ema, total = math.nan, 0.0
    for i, v in enumerate(losses):
        meter.add(v)
        value = float(v.item())
        ema = value if not math.isfinite(ema) else 0.98 * ema + 0.02 * value
        total += value
        if i == 20:
            assert meter.read() == (total / 21, ema)
            meter.reset_interval()
            total = 0.0
    assert meter.read() == (total / 16, ema)  # bit for bit, not approximately
    meter.reset_interval()
    assert math.isnan(meter.read()[0])


def test_checkpoint_clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(loop.time, "monotonic", lambda: now[0])
    clock = CheckpointClock(minutes=10, every=0, end=50)
    assert not clock.due(7)
    now[0] += 599
    assert not clock.due(8)
    now[0] += 2
    assert clock.due(9)
    clock.reset()
    assert not clock.due(10) and clock.due(50)  # always at the end
    assert CheckpointClock(minutes=1e9, every=4, end=50).due(8)


def test_log_file_appends_and_keeps_only_given_rows(tmp_path):
    path = tmp_path / "log.csv"
    log = LogFile(path, ("step", "loss"), [{"step": 1, "loss": 0.5}, {"step": 2, "loss": 0.25}])
    log.append({"step": 3, "loss": 1 / 3})
    rows = list(csv.DictReader(open(path)))
    assert [r["step"] for r in rows] == ["1", "2", "3"] and rows[2]["loss"] == "0.333333"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    base = tmp_path_factory.mktemp("loop")
    return base, _write_dataset(base / "data")


def _run(data, name, *extra):
    base, root = data
    return RunDir.create(base / name, root, load_config("demo", [*OVERRIDES, *extra]))


def test_checkpoints_by_wall_time_and_log_appended(data, monkeypatch):
    saved, rewrites = [], []
    orig_save, orig_write = train_mod.ck.save_tensors, loop.write_text_atomic
    monkeypatch.setattr(train_mod.ck, "save_tensors", lambda p, *a, **k: (saved.append(p.name), orig_save(p, *a, **k)))
    monkeypatch.setattr(loop, "write_text_atomic", lambda p, *a: (rewrites.append(p.name), orig_write(p, *a)))
    run = _run(data, "walltime", "diffusion.checkpoint_every=0", "diffusion.checkpoint_minutes=1000")
    train_diffusion(run, 0, progress=False)
    # 6 steps, 6 log rows: one checkpoint (at the end), log.csv written once then appended
    assert saved == ["checkpoint.safetensors", "model.safetensors", "ema.safetensors"]
    assert rewrites == ["log.csv"]
    rows = list(csv.DictReader(open(run.diffusion_dir(0) / "log.csv")))
    assert [r["step"] for r in rows] == [str(i) for i in range(1, 7)]
    saved.clear()
    every = _run(data, "every-boundary", "diffusion.checkpoint_every=0", "diffusion.checkpoint_minutes=0")
    train_diffusion(every, 0, progress=False)
    assert saved.count("checkpoint.safetensors") == 6
    a, _ = load_tensors(run.diffusion_dir(0) / "ema.safetensors")
    b, _ = load_tensors(every.diffusion_dir(0) / "ema.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)  # checkpointing changes nothing


def test_ctrl_c_checkpoints_and_resume_is_exact(data, monkeypatch):
    ref = _run(data, "ref")
    train_diffusion(ref, 0, progress=False)
    calls = []
    orig = train_mod.draw_batch

    def interrupted(*a, **k):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return orig(*a, **k)

    run = _run(data, "ctrl-c", "diffusion.checkpoint_every=0", "diffusion.checkpoint_minutes=1000")
    monkeypatch.setattr(train_mod, "draw_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_diffusion(run, 0, progress=False)
    _, meta = load_tensors(run.diffusion_dir(0) / "checkpoint.safetensors")
    assert meta["step"] == 4
    monkeypatch.setattr(train_mod, "draw_batch", orig)
    train_diffusion(run, 0, progress=False)
    a, _ = load_tensors(ref.diffusion_dir(0) / "ema.safetensors")
    b, _ = load_tensors(run.diffusion_dir(0) / "ema.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows = list(csv.DictReader(open(run.diffusion_dir(0) / "log.csv")))
    assert [r["step"] for r in rows] == [str(i) for i in range(1, 7)]


def test_non_finite_loss_stops_before_a_checkpoint(data, monkeypatch):
    orig = train_mod.diffusion_loss
    monkeypatch.setattr(train_mod, "diffusion_loss", lambda *a: orig(*a) * math.nan)
    run = _run(data, "nan")
    with pytest.raises(FloatingPointError, match="lower diffusion.lr"):
        train_diffusion(run, 0, progress=False)
    assert not (run.diffusion_dir(0) / "checkpoint.safetensors").exists()
