"""Training: it learns, stops early in samples, resumes exactly after a kill."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from helpers import LABELS, signal_imageset, tiny_config

from jointaug.classify.checkpoint import CheckpointError, load_tensors
from jointaug.classify.data import ImageSet
from jointaug.classify.losses import masked_bce
from jointaug.classify.model import build_model
from jointaug.classify.predict import predict_probs
from jointaug.classify.train import CHECKPOINT, MODEL, FitOptions, _Step, fit
from jointaug.classify.transforms import PaperAugment


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return signal_imageset(rng, 64), signal_imageset(rng, 32)


def test_learns_the_signal(tmp_path, data):
    train, val = data
    cfg = tiny_config(flip_prob=0.0, lr=1e-2, max_samples=640, patience_samples=640)
    res = fit(tmp_path, train, val, cfg, 0, LABELS, FitOptions(progress=False))
    assert res.best_val_gms > 0.85  # chance level is ~0.5
    model = build_model(cfg, 4, seed=None)
    model.load_state_dict(load_tensors(tmp_path / MODEL)[0])
    probs = predict_probs(model, val.images)
    pred = probs >= 0.5
    tpr = (pred & (val.labels == 1)).sum() / (val.labels == 1).sum()
    tnr = (~pred & (val.labels == 0)).sum() / (val.labels == 0).sum()
    assert np.sqrt(tpr * tnr) == pytest.approx(res.best_val_gms, abs=1e-6)  # best model kept
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [int(r["samples"]) for r in rows] == list(range(64, 641, 64))
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])


def test_early_stopping_counts_samples(tmp_path, data):
    train, val = data
    # all validation labels unknown: GMS undefined, so only the first evaluation is "best"
    val = ImageSet(val.images, np.full_like(val.labels, np.nan), val.case_ids, val.sources)
    cfg = tiny_config(eval_every_epochs=2, patience_samples=300, max_samples=10_000)
    res = fit(tmp_path, train, val, cfg, 0, LABELS, FitOptions(progress=False))
    # evaluations every 2 epochs = 128 samples; best at 128; stop at the first eval >= 128 + 300
    assert res.best_samples == 128
    assert res.samples == 512 and res.stop_reason == "patience" and res.epochs == 8
    capped = fit(
        tmp_path / "cap",
        train,
        val,
        cfg.model_copy(update={"max_samples": 150}),
        0,
        LABELS,
        FitOptions(progress=False),
    )
    # stops at the first batch reaching the cap, mid-epoch (epochs are 64 images, batches 16)
    assert capped.samples == 160 and capped.stop_reason == "max_samples"


class Kill(Exception):
    pass


def test_resume_after_kill_equals_uninterrupted(tmp_path, data):
    train, val = data
    cfg = tiny_config(max_samples=448, patience_samples=10_000, checkpoint_minutes=0)
    full = fit(tmp_path / "full", train, val, cfg, 3, LABELS, FitOptions(progress=False))

    def kill_at(n):
        def hook(samples):
            if samples >= n:
                raise Kill

        return hook

    out = tmp_path / "killed"
    with pytest.raises(Kill):  # killed mid-epoch, after 3 evaluations
        fit(out, train, val, cfg, 3, LABELS, FitOptions(progress=False, on_step=kill_at(224)))
    assert (out / CHECKPOINT).is_file() and not (out / MODEL).is_file()
    with pytest.raises(Kill):  # killed again, before the next evaluation
        fit(out, train, val, cfg, 3, LABELS, FitOptions(progress=False, on_step=kill_at(240)))
    resumed = fit(out, train, val, cfg, 3, LABELS, FitOptions(progress=False))
    assert resumed.samples == full.samples and resumed.best_samples == full.best_samples
    assert resumed.best_val_gms == full.best_val_gms
    assert [r["train_loss"] for r in resumed.log] == [r["train_loss"] for r in full.log]
    for k, v in full.best_state.items():
        assert torch.equal(v, resumed.best_state[k]), k
    # a finished checkpoint returns at once, same result
    again = fit(out, train, val, cfg, 3, LABELS, FitOptions(progress=False, on_step=kill_at(0)))
    assert again.samples == full.samples


def test_checkpoint_of_another_config_is_refused(tmp_path, data):
    train, val = data
    cfg = tiny_config(max_samples=64)
    fit(tmp_path, train, val, cfg, 0, LABELS, FitOptions(progress=False))
    with pytest.raises(CheckpointError, match="another config"):
        fit(
            tmp_path,
            train,
            val,
            cfg.model_copy(update={"lr": 0.5}),
            0,
            LABELS,
            FitOptions(progress=False),
        )


def test_global_rng_untouched_and_seeds_differ(tmp_path, data):
    train, val = data
    cfg = tiny_config(max_samples=64)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    a = fit(tmp_path / "a", train, val, cfg, 0, LABELS, FitOptions(progress=False))
    assert torch.equal(torch.get_rng_state(), state)
    b = fit(tmp_path / "b", train, val, cfg, 1, LABELS, FitOptions(progress=False))
    assert a.log[0]["train_loss"] != b.log[0]["train_loss"]


def test_batches_pair_augmented_images_with_their_own_labels(data):
    """Flips and crops move pixels, never labels: each image keeps its label row."""
    train, _ = data
    cfg = tiny_config()
    seen = {}

    def spy(logits, targets):
        seen["targets"] = targets.clone()
        return masked_bce(logits, targets)

    model = build_model(cfg, 4, seed=0)
    step = _Step(
        model,
        torch.optim.Adam(model.parameters(), lr=0.0),
        spy,
        PaperAugment(rotate_deg=0, flip_prob=1.0, crop_prob=0.0, pad_px=0),
        torch.Generator().manual_seed(0),
        torch.from_numpy(train.images),
        torch.from_numpy(train.labels),
        cfg,
        torch.device("cpu"),
    )
    idx = torch.tensor([5, 2, 9])
    step(idx)
    assert torch.equal(seen["targets"], torch.from_numpy(train.labels[[5, 2, 9]]))


def test_checkpoint_by_wall_time_log_appended_and_resume_exact(tmp_path, data, monkeypatch):
    """Default checkpoint_minutes: no checkpoint at the evaluations of a short training
    (a kill before the first one restarts, exactly), one at the end; log.csv is appended
    row by row, never rewritten during a call."""
    from jointaug import training

    train, val = data
    cfg = tiny_config(max_samples=320, patience_samples=10_000)
    assert cfg.checkpoint_minutes == 10
    full = fit(tmp_path / "full", train, val, cfg, 3, LABELS, FitOptions(progress=False))
    writes = []
    orig = training.write_text_atomic
    monkeypatch.setattr(
        training, "write_text_atomic", lambda p, *a: (writes.append(p.name), orig(p, *a))
    )
    out = tmp_path / "killed"
    with pytest.raises(Kill):
        fit(
            out,
            train,
            val,
            cfg,
            3,
            LABELS,
            FitOptions(
                progress=False, on_step=lambda s: (_ for _ in ()).throw(Kill) if s >= 200 else None
            ),
        )
    assert not (out / CHECKPOINT).exists() and len(list(csv.DictReader(open(out / "log.csv")))) == 3
    resumed = fit(out, train, val, cfg, 3, LABELS, FitOptions(progress=False))
    assert writes == ["log.csv", "log.csv"]  # once per call, at its start
    assert (out / CHECKPOINT).is_file()  # the finished state
    assert [r["train_loss"] for r in resumed.log] == [r["train_loss"] for r in full.log]
    rows = list(csv.DictReader(open(out / "log.csv")))
    assert [int(r["samples"]) for r in rows] == [r["samples"] for r in full.log]
    for k, v in full.best_state.items():
        assert torch.equal(v, resumed.best_state[k]), k


def test_ctrl_c_stops_at_the_next_evaluation_with_a_checkpoint(tmp_path, data):
    """A real SIGINT mid-period: training goes on to the next evaluation, checkpoints
    (despite the 10-minute clock), raises KeyboardInterrupt; resuming is exact."""
    import os
    import signal

    train, val = data
    cfg = tiny_config(max_samples=320, patience_samples=10_000)
    full = fit(tmp_path / "full", train, val, cfg, 3, LABELS, FitOptions(progress=False))
    sent = []

    def ctrl_c(samples):
        if samples >= 150 and not sent:
            sent.append(samples)
            os.kill(os.getpid(), signal.SIGINT)

    out = tmp_path / "int"
    with pytest.raises(KeyboardInterrupt):
        fit(out, train, val, cfg, 3, LABELS, FitOptions(progress=False, on_step=ctrl_c))
    _, meta = load_tensors(out / CHECKPOINT)
    import json

    assert json.loads(meta["state"])["samples"] == 192  # the evaluation after sample 150
    resumed = fit(out, train, val, cfg, 3, LABELS, FitOptions(progress=False))
    assert [r["train_loss"] for r in resumed.log] == [r["train_loss"] for r in full.log]
    for k, v in full.best_state.items():
        assert torch.equal(v, resumed.best_state[k]), k
