"""Generator options: classifier-free guidance, min-SNR weights, LR schedule, bilinear upsampling."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import DIFFUSION_TINY, overrides

from jointaug.diffusion.guidance import (
    GuidedEpsilon,
    drop_condition,
    lr_at,
    min_snr_weights,
    weighted_mse,
)
from jointaug.diffusion.intensity import upsample_linear, upsample_nearest
from jointaug.diffusion.sample import NoiseSchedule


def test_drop_condition_off_draws_nothing_and_on_zeroes_whole_samples():
    cond = torch.ones(400, 3, 4, 4)
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    assert drop_condition(cond, 0.0, g) is cond
    assert torch.equal(g.get_state(), state)  # the training stream is unchanged when off
    out = drop_condition(cond, 0.25, g)
    per = out.flatten(1)
    assert torch.all((per == 0).all(1) | (per == 1).all(1))  # a sample keeps or drops all of it
    assert 0.15 < float((per == 0).all(1).float().mean()) < 0.35
    with pytest.raises(ValueError):
        drop_condition(cond, 1.0, g)


def test_min_snr_weights():
    abar = NoiseSchedule(500).ddpm().alphas_cumprod
    t = torch.arange(500)
    w = min_snr_weights(abar, t, 5.0)
    snr = abar / (1 - abar)
    assert torch.all(w <= 1 + 1e-6)
    assert torch.allclose(w[snr <= 5], torch.ones(int((snr <= 5).sum())))  # noisy steps: weight 1
    assert w[0] < 0.01  # the almost clean step is down-weighted
    assert torch.equal(min_snr_weights(abar, t, 0.0), torch.ones(500))


def test_weighted_mse_equals_mse_for_unit_weights():
    a, b = torch.randn(4, 1, 5, 5), torch.randn(4, 1, 5, 5)
    assert torch.allclose(weighted_mse(a, b, torch.ones(4)), F.mse_loss(a, b))
    w = torch.tensor([1.0, 0.0, 0.0, 0.0])
    assert torch.allclose(weighted_mse(a, b, w), F.mse_loss(a[:1], b[:1]) / 4)


def test_lr_schedule():
    assert lr_at(0, 1.0, "constant", 100) == 1.0
    assert lr_at(0, 1.0, "cosine", 100, warmup_steps=10) == pytest.approx(0.1)
    assert lr_at(10, 1.0, "cosine", 100, warmup_steps=10) == pytest.approx(1.0)
    assert lr_at(55, 1.0, "cosine", 100, warmup_steps=10) == pytest.approx(0.5)
    assert lr_at(100, 1.0, "cosine", 100, warmup_steps=10) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError):
        lr_at(0, 1.0, "step", 10)


class _Toy(torch.nn.Module):
    """eps = x + 2 * sum(condition channels): linear in the condition."""

    def forward(self, inputs, t):
        return inputs[:, :1] + 2 * inputs[:, 1:].sum(1, keepdim=True) + 0 * t[:, None, None, None]


def test_guided_epsilon_formula():
    x = torch.randn(3, 4, 6, 6)
    t = torch.tensor([1, 2, 3])
    toy = _Toy()
    assert torch.equal(GuidedEpsilon(toy, 1.0)(x, t), toy(x, t))
    g = GuidedEpsilon(toy, 3.0)(x, t)
    eps_u = x[:, :1]
    eps_c = toy(x, t)
    assert torch.allclose(g, eps_u + 3.0 * (eps_c - eps_u))


def test_upsample_linear():
    flat = np.full((8, 8), 5.0)
    np.testing.assert_allclose(upsample_linear(flat, (64, 64)), 5.0, rtol=1e-6)
    rng = np.random.default_rng(0)
    img = rng.gamma(2.0, 3.0, (16, 16))
    up = upsample_linear(img, (128, 128))
    assert up.shape == (128, 128) and up.min() >= 0
    assert up.mean() == pytest.approx(img.mean(), rel=0.03)
    # smoother than nearest: smaller neighbour differences
    near = upsample_nearest(img, (128, 128))
    assert np.abs(np.diff(up, axis=1)).max() < np.abs(np.diff(near, axis=1)).max()
    # a ramp stays a ramp inside
    ramp = np.tile(np.arange(4.0), (4, 1))
    out = upsample_linear(ramp, (4, 8))
    assert np.all(np.diff(out[0]) >= 0)


TINY = overrides(
    ["split.folds=3"],
    DIFFUSION_TINY,
    [
        "diffusion.batch_size=4",
        "diffusion.train_steps=4",
        "diffusion.sample_every=100",
        "diffusion.sampler=ddim",
        "diffusion.fast_steps=2",
        "diffusion.sample_batch_size=2",
        "diffusion.network_output=v",
        "device=cpu",
    ],
)
OPTIONS = [
    "diffusion.cond_dropout=0.5",
    "diffusion.min_snr_gamma=5",
    "diffusion.lr_schedule=cosine",
    "diffusion.warmup_steps=2",
]


def test_options_train_guide_and_upsample(tmp_path):
    from helpers import write_tiny_dataset

    from jointaug.config import load_config
    from jointaug.diffusion.checkpoint import load_tensors
    from jointaug.diffusion.record import diffusion_record
    from jointaug.diffusion.trained import generate_rates, load_trained
    from jointaug.experiments.rundir import RunDir
    from jointaug.experiments.stages import train_fold_diffusion as train_diffusion

    data = write_tiny_dataset(tmp_path / "data", n_patients=6, size=32)
    plain = RunDir.create(tmp_path / "plain", data, load_config("demo", TINY))
    opts = RunDir.create(tmp_path / "opts", data, load_config("demo", TINY + OPTIONS))
    a = load_tensors(train_diffusion(plain, 0, progress=False) / "model.safetensors")[0]
    folder = train_diffusion(opts, 0, progress=False)
    b = load_tensors(folder / "model.safetensors")[0]
    assert any(not torch.equal(a[k], b[k]) for k in a)  # the options change training
    lrs = [float(r.split(",")[3]) for r in (folder / "log.csv").read_text().splitlines()[1:]]
    assert lrs[-1] < lrs[1]  # cosine decay logged
    cfg = opts.config.diffusion

    def settings_key(c, cases):
        return diffusion_record(c, cases)[0]

    assert settings_key(cfg, ["x"]) != settings_key(
        cfg.model_copy(update={"cond_dropout": 0.0}), ["x"]
    )
    # sampling options do not retrain
    assert settings_key(cfg, ["x"]) == settings_key(
        cfg.model_copy(update={"guidance_scale": 3.0}), ["x"]
    )
    sampler = cfg.model_copy(update={"guidance_scale": 2.0, "upsample": "bilinear"})
    model = load_trained(folder, torch.device("cpu"), sampler)
    assert isinstance(model.net, GuidedEpsilon) and model.net.scale == 2.0
    cond = np.zeros((32, 32), np.uint8)
    cond[4:28, 4:28] = 1
    cond[8:12, 8:12] = 3
    r_guided = generate_rates(model, [cond], [7])[0]
    r_plain = generate_rates(load_trained(folder, torch.device("cpu"), cfg), [cond], [7])[0]
    assert r_guided.shape == (32, 32) and r_guided.min() >= 0
    assert not np.allclose(r_guided, r_plain)
    # nearest (16 -> 32) repeats every column twice; bilinear does not
    assert np.array_equal(r_plain[:, 0::2], r_plain[:, 1::2])
    assert not np.allclose(r_guided[:, 0::2], r_guided[:, 1::2])


def test_a_set_written_before_the_sampling_keys_is_kept(tmp_path):
    import json

    from jointaug.sets.diffusion import stale_set
    from jointaug.sets.writer import SETTINGS_FILE

    out = tmp_path / "mp"
    new = {
        "fold": 0,
        "sampler": "ddim",
        "batch_size": 64,
        "guidance_scale": 1.0,
        "upsample": "nearest",
    }
    out.mkdir()
    (out / SETTINGS_FILE).write_text(
        json.dumps({k: v for k, v in new.items() if k not in ("guidance_scale", "upsample")})
    )
    (out / "keep.txt").write_text("finished images")
    assert stale_set(out, new) is None  # same settings (the defaults it was made with): kept
    stale = stale_set(out, {**new, "guidance_scale": 2.0})
    assert stale is not None and any("guidance_scale" in c for c in stale.changes)
    assert (out / "keep.txt").is_file()  # stale is only reported; nothing is deleted
