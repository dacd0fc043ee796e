"""Training curves: TensorBoard events with the expected tags and steps (none twice after
a resume), progress.png with its panels, and no effect on the trained weights."""

from __future__ import annotations

import builtins
import struct

import numpy as np
import pytest
import torch
from helpers import LABELS, TWO_HAND_OVERRIDES, signal_imageset, tiny_config, write_two_hand_dataset

from jointaug import curves
from jointaug.classify import train as classify_train
from jointaug.classify.train import FitOptions, fit
from jointaug.config import load_config
from jointaug.curves import EVENTS, PANEL_PX, PROGRESS, Curves, CurveSpec, Panel, panels_of
from jointaug.diffusion import loop as loop_mod
from jointaug.diffusion.checkpoint import load_tensors
from jointaug.experiments.rundir import RunDir
from jointaug.experiments.stages import train_fold_diffusion

SPEC = CurveSpec(
    x="step",
    xlabel="step",
    tags=(("loss", "loss/train"), ("lr", "lr")),
    panels=(Panel("loss", ("loss",), log_y=True), Panel("learning rate", ("lr",))),
)


def _row(step: int) -> dict:
    return {"step": step, "loss": 1.0 / step, "lr": 1e-3, "wall_s": 0.5 * step}


def png_size(path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def scalars(folder) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value), ...]} as TensorBoard reads the event files of ``folder``."""
    ea = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    acc = ea.EventAccumulator(str(folder), size_guidance={ea.SCALARS: 0})
    acc.Reload()
    return {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}


def test_events_and_progress_png(tmp_path):
    pytest.importorskip("tensorboard")
    c = Curves(tmp_path, SPEC)
    for s in (1, 2, 3):
        c.add(_row(s))
    c.close()
    got = scalars(tmp_path / EVENTS)
    assert sorted(got) == ["loss/train", "lr"]
    assert [s for s, _ in got["loss/train"]] == [1, 2, 3]
    assert got["loss/train"][2][1] == pytest.approx(1 / 3)
    # loss, learning rate and speed panels, PANEL_PX each
    assert [p.title for p in panels_of(SPEC, c.rows)][:2] == ["loss", "learning rate"]
    assert png_size(tmp_path / PROGRESS) == (PANEL_PX[0], 3 * PANEL_PX[1])


def test_progress_png_changes_as_the_log_grows(tmp_path):
    c = Curves(tmp_path, SPEC)
    c.add(_row(1))
    c.add(_row(2))
    first = c.draw().read_bytes()
    c.add(_row(3))
    assert c.draw().read_bytes() != first
    c.close()
    # without wall_s no speed panel: one panel less
    curves.draw_progress([{"step": 1, "loss": 1.0, "lr": 0.1}], SPEC, tmp_path / "two.png")
    assert png_size(tmp_path / "two.png") == (PANEL_PX[0], 2 * PANEL_PX[1])


def test_resume_rewrites_the_events_from_the_kept_rows(tmp_path):
    """A killed call logged steps 1-5, its checkpoint knows 1-3; the next call keeps 1-3
    and trains 4-6 again: every step once, with the new call's values."""
    pytest.importorskip("tensorboard")
    c = Curves(tmp_path, SPEC)
    for s in range(1, 6):
        c.add({**_row(s), "loss": 100.0 + s})
    c.writer.flush()  # the killed call's events are on disk, never closed
    kept = [{**_row(s), "loss": 100.0 + s} for s in (1, 2, 3)]
    c2 = Curves(tmp_path, SPEC, kept)
    for s in (4, 5, 6):
        c2.add(_row(s))
    c2.close()
    got = scalars(tmp_path / EVENTS)["loss/train"]
    assert [s for s, _ in got] == [1, 2, 3, 4, 5, 6]
    assert [v for _, v in got] == pytest.approx([101, 102, 103, 1 / 4, 1 / 5, 1 / 6])


def test_without_tensorboard_one_note_and_still_a_picture(tmp_path, monkeypatch, capsys):
    real_import = builtins.__import__

    def no_tensorboard(name, *a, **k):
        if name.startswith(("torch.utils.tensorboard", "tensorboard")):
            raise ImportError(name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    monkeypatch.setattr(curves, "_noted", False)
    for name in ("a", "b"):
        c = Curves(tmp_path / name, SPEC)
        c.add(_row(1))
        c.close()
        assert c.writer is None and not (tmp_path / name / EVENTS).exists()
        assert png_size(tmp_path / name / PROGRESS)[0] == PANEL_PX[0]
    assert capsys.readouterr().err.count("tensorboard is not installed") == 1


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return signal_imageset(rng, 64), signal_imageset(rng, 32)


class Kill(Exception):
    pass


class EarlyClock(classify_train.CheckpointClock):
    """Checkpoints at the evaluations up to 128 samples and at the end only."""

    def due(self, step: int) -> bool:
        return step <= 128 or step >= self.end


@pytest.mark.slow
def test_classifier_curves_resume_and_identical_weights(tmp_path, data, monkeypatch):
    """A classifier training's events: its tags at steps = samples, each once after a kill
    (logged to 256, checkpoint at 128) and resume; progress.png with 4 panels; the same
    weights and log as a training without the event writer."""
    pytest.importorskip("tensorboard")
    train, val = data
    cfg = tiny_config(max_samples=320, patience_samples=10_000)
    monkeypatch.setattr(classify_train, "CheckpointClock", EarlyClock)
    out = tmp_path / "curves"
    with pytest.raises(Kill):
        fit(out, train, val, cfg, 3, LABELS, FitOptions(progress=False, on_step=_kill_after(280)))
    assert [s for s, _ in scalars(out / EVENTS)["val/gms"]] == [64, 128, 192, 256]
    resumed = fit(out, train, val, cfg, 3, LABELS, FitOptions(progress=False))
    got = scalars(out / EVENTS)
    assert set(got) == {tag for _, tag in classify_train.CURVES.tags}
    assert [s for s, _ in got["val/gms"]] == [64, 128, 192, 256, 320]
    assert [v for _, v in got["lr"]] == pytest.approx([cfg.lr] * 5)
    assert png_size(out / PROGRESS) == (PANEL_PX[0], 4 * PANEL_PX[1])

    monkeypatch.setattr(curves, "summary_writer", lambda folder: None)
    bare = fit(tmp_path / "bare", train, val, cfg, 3, LABELS, FitOptions(progress=False))
    assert not (tmp_path / "bare" / EVENTS).exists()
    assert [v for _, v in got["loss/train"]] == pytest.approx([r["train_loss"] for r in bare.log])
    for k, v in bare.best_state.items():
        assert torch.equal(v, resumed.best_state[k]), k


def _kill_after(samples: int):
    def on_step(s: int) -> None:
        if s >= samples:
            raise Kill

    return on_step


@pytest.fixture(scope="module")
def two_hands(tmp_path_factory):
    base = tmp_path_factory.mktemp("curves")
    return base, write_two_hand_dataset(base / "data")


@pytest.mark.slow
def test_diffusion_curves_resume_and_identical_weights(two_hands, monkeypatch):
    """A diffusion training killed in step 6 (rows 1-5 logged, checkpoint at 4), resumed:
    each step once in its events; the same EMA weights as a training without events."""
    pytest.importorskip("tensorboard")
    base, root = two_hands
    run = RunDir.create(base / "events", root, load_config("demo", TWO_HAND_OVERRIDES))
    orig, calls = loop_mod.draw_batch, []

    def killed(*a, **k):
        calls.append(1)
        if len(calls) == 6:
            raise Kill
        return orig(*a, **k)

    monkeypatch.setattr(loop_mod, "draw_batch", killed)
    with pytest.raises(Kill):
        train_fold_diffusion(run, 0, progress=False)
    folder = run.diffusion_dir(0)
    assert [s for s, _ in scalars(folder / EVENTS)["loss/train"]] == [1, 2, 3, 4, 5]
    monkeypatch.setattr(loop_mod, "draw_batch", orig)
    train_fold_diffusion(run, 0, progress=False)
    got = scalars(folder / EVENTS)
    assert set(got) == {"loss/train", "loss/train_ema", "lr"}
    assert all([s for s, _ in v] == [1, 2, 3, 4, 5, 6] for v in got.values())
    assert png_size(folder / PROGRESS) == (PANEL_PX[0], 3 * PANEL_PX[1])

    monkeypatch.setattr(curves, "summary_writer", lambda folder: None)
    bare = RunDir.create(base / "bare", root, load_config("demo", TWO_HAND_OVERRIDES))
    train_fold_diffusion(bare, 0, progress=False)
    assert not (bare.diffusion_dir(0) / EVENTS).exists()
    a, _ = load_tensors(folder / "ema.safetensors")
    b, _ = load_tensors(bare.diffusion_dir(0) / "ema.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
