"""The diffusion loop's speed pieces keep its results: device-side losses, wall-time
checkpoints, appended logs, exact resume after Ctrl-C, non-finite losses caught."""

import csv
import json
import math
import os
import shutil
import signal

import numpy as np
import pytest
import torch
from helpers import TWO_HAND_OVERRIDES as OVERRIDES
from helpers import write_two_hand_dataset

from jointaug import training
from jointaug.config import load_config
from jointaug.diffusion import loop as loop_mod
from jointaug.diffusion import train as train_mod
from jointaug.diffusion.checkpoint import load_tensors
from jointaug.diffusion.loop import LossMeter
from jointaug.experiments.rundir import RunDir
from jointaug.experiments.stages import train_fold_diffusion as train_diffusion
from jointaug.training import CheckpointClock, LogFile


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
    monkeypatch.setattr(training.time, "monotonic", lambda: now[0])
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
    return base, write_two_hand_dataset(base / "data")


def _run(data, name, *extra):
    base, root = data
    return RunDir.create(base / name, root, load_config("demo", [*OVERRIDES, *extra]))


def test_checkpoints_by_wall_time_and_log_appended(data, monkeypatch):
    saved, rewrites = [], []
    orig_save, orig_write = train_mod.ck.save_tensors, training.write_text_atomic
    monkeypatch.setattr(
        train_mod.ck,
        "save_tensors",
        lambda p, *a, **k: (saved.append(p.name), orig_save(p, *a, **k)),
    )
    monkeypatch.setattr(
        training, "write_text_atomic", lambda p, *a: (rewrites.append(p.name), orig_write(p, *a))
    )
    run = _run(
        data, "walltime", "diffusion.checkpoint_every=0", "diffusion.checkpoint_minutes=1000"
    )
    train_diffusion(run, 0, progress=False)
    # 6 steps, 6 log rows: one checkpoint (at the end), log.csv written once then appended
    assert saved == ["checkpoint.safetensors", "model.safetensors", "ema.safetensors"]
    assert rewrites == ["log.csv"]
    rows = list(csv.DictReader(open(run.diffusion_dir(0) / "log.csv")))
    assert [r["step"] for r in rows] == [str(i) for i in range(1, 7)]
    saved.clear()
    every = _run(
        data, "every-boundary", "diffusion.checkpoint_every=0", "diffusion.checkpoint_minutes=0"
    )
    train_diffusion(every, 0, progress=False)
    assert saved.count("checkpoint.safetensors") == 6
    a, _ = load_tensors(run.diffusion_dir(0) / "ema.safetensors")
    b, _ = load_tensors(every.diffusion_dir(0) / "ema.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)  # checkpointing changes nothing


def test_ctrl_c_checkpoints_and_resume_is_exact(data, monkeypatch):
    """Ctrl-C (a real SIGINT) in the middle of step 5: the step is finished, checkpointed,
    then KeyboardInterrupt; the resumed model equals the uninterrupted one."""
    ref = _run(data, "ref")
    train_diffusion(ref, 0, progress=False)
    calls = []
    orig = loop_mod.draw_batch

    def interrupted(*a, **k):
        calls.append(1)
        if len(calls) == 5:
            os.kill(os.getpid(), signal.SIGINT)
        return orig(*a, **k)

    run = _run(data, "ctrl-c", "diffusion.checkpoint_every=0", "diffusion.checkpoint_minutes=1000")
    monkeypatch.setattr(loop_mod, "draw_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_diffusion(run, 0, progress=False)
    _, meta = load_tensors(run.diffusion_dir(0) / "checkpoint.safetensors")
    assert meta["step"] == 5
    monkeypatch.setattr(loop_mod, "draw_batch", orig)
    train_diffusion(run, 0, progress=False)
    a, _ = load_tensors(ref.diffusion_dir(0) / "ema.safetensors")
    b, _ = load_tensors(run.diffusion_dir(0) / "ema.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows = list(csv.DictReader(open(run.diffusion_dir(0) / "log.csv")))
    assert [r["step"] for r in rows] == [str(i) for i in range(1, 7)]


def test_non_finite_loss_stops_before_a_checkpoint(data, monkeypatch):
    orig = loop_mod.diffusion_loss
    monkeypatch.setattr(loop_mod, "diffusion_loss", lambda *a: orig(*a) * math.nan)
    run = _run(data, "nan")
    with pytest.raises(FloatingPointError, match="lower diffusion.lr"):
        train_diffusion(run, 0, progress=False)
    assert not (run.diffusion_dir(0) / "checkpoint.safetensors").exists()


def test_set_contents_do_not_depend_on_the_sampling_batch_size(data):
    """Sets made with sampling batches of 1, 3 and auto (64 on the CPU) are bit-identical:
    cases, labels, conditions, regions, seeds and images. (Per-case noise makes this hold
    whenever the network's rounding does not depend on the batch, as here on the CPU; a
    larger network on another backend may round differently per batch size, which is why
    a set records its batch size and keeps it when it grows.)"""
    from jointaug.dataset.format import read_dataset
    from jointaug.experiments.stages import make_fold_set as make_augmentation_set

    ref = _run(data, "set-ref")
    train_diffusion(ref, 0, progress=False)
    sets = {}
    for b in (1, 3, "auto"):
        run = _run(data, f"set-b{b}", f"diffusion.sample_batch_size={b}")
        shutil.copytree(ref.diffusion_dir(0), run.diffusion_dir(0))
        out = make_augmentation_set(run, 0, "mp", True, 7, progress=False)
        sets[b] = read_dataset(out)
        assert json.loads((out / "augmentation.json").read_text())["batch_size"] == (
            64 if b == "auto" else b
        )
    a = sets[1]
    for b in (3, "auto"):
        other = sets[b]
        assert [c.case_id for c in other.cases] == [c.case_id for c in a.cases]
        for ca, cb in zip(a.cases, other.cases, strict=True):
            assert cb.extra == ca.extra and np.array_equal(cb.labels, ca.labels)
            assert np.array_equal(other.tissue(cb), a.tissue(ca)) and np.array_equal(
                other.regions(cb), a.regions(ca)
            )
            assert np.array_equal(other.image(cb), a.image(ca))


def test_sampler_noise_is_per_case_on_the_device():
    """A batch-invariant denoiser: every case's image is bit-identical whatever its batch."""
    from jointaug.diffusion.sample import NoiseSchedule, sample_ddpm, sample_fast

    class Elementwise(torch.nn.Module):
        def forward(self, inputs, t):
            return 0.3 * inputs[:, :1] + 0.1 * inputs[:, 1:2]

    cond = torch.rand(5, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    seeds = [7, 8, 9, 10, 11]
    short = NoiseSchedule(20, 1e-3, 0.2)
    for fn in (
        lambda c, s: sample_ddpm(Elementwise(), c, s, short),
        lambda c, s: sample_fast(Elementwise(), c, s, short, 4),
    ):
        whole = fn(cond, seeds)
        parts = torch.cat([fn(cond[i : i + 2], seeds[i : i + 2]) for i in range(0, 5, 2)])
        assert torch.equal(whole, parts)
        assert not torch.equal(whole[0], whole[1])
