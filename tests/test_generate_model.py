"""The denoiser (build, init, dropout), EMA, and both samplers."""

import math

import pytest
import torch
from monai.networks.schedulers import DDPMScheduler
from torch import nn

from jointaug.config import DiffusionConfig
from jointaug.diffusion.model import EMA, EpsilonView, build_unet, norm_groups
from jointaug.diffusion.sample import (
    NoiseSchedule,
    ancestral_step,
    sample,
    sample_ddpm,
    sample_fast,
)

TINY = DiffusionConfig(
    image_size=16,
    channels=[8, 16],
    attention_levels=[False, True],
    num_res_blocks=1,
    num_head_channels=8,
    dropout=0.0,
    timesteps=500,
)


def _convs(net):
    return [(n, m) for n, m in net.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)]


def test_build_shapes_and_init():
    net = build_unet(TINY, init_seed=0)
    out = net(torch.randn(3, 4, 16, 16), torch.tensor([0, 10, 499]))
    assert out.shape == (3, 1, 16, 16)
    zero, kaiming = 0, 0
    for name, m in _convs(net):
        w = m.weight.detach()
        if not torch.any(w != 0):
            zero += 1
            assert name.endswith("conv2.conv") or name.startswith("out.")
            continue
        kaiming += 1
        fan_in = w[0].numel()
        bound = math.sqrt(6.0 / fan_in)  # kaiming_uniform, a=0
        assert float(w.abs().max()) <= bound + 1e-6
        assert float(w.abs().max()) > 0.5 * bound  # uniform fills the range
        if m.bias is not None:
            assert not torch.any(m.bias != 0)
    assert zero >= 3 and kaiming > 10
    # the output conv is zero: the first prediction is exactly 0
    assert float(out.detach().abs().max()) == 0.0


def test_init_seed_is_deterministic():
    a = build_unet(TINY, init_seed=3).state_dict()
    b = build_unet(TINY, init_seed=3).state_dict()
    c = build_unet(TINY, init_seed=4).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_dropout_acts_in_train_mode_only():
    net = build_unet(TINY.model_copy(update={"dropout": 0.5}), init_seed=0)
    with torch.no_grad():  # give the zero-initialised convs weights so dropout shows
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x, t = torch.randn(2, 4, 16, 16), torch.tensor([5, 6])
    net.train()
    assert not torch.allclose(net(x, t), net(x, t))
    net.eval()
    assert torch.equal(net(x, t), net(x, t))
    # same keys as MONAI's own network
    assert set(net.state_dict()) == set(build_unet(TINY).state_dict())


def test_config_errors():
    with pytest.raises(ValueError, match="attention_levels"):
        build_unet(TINY.model_copy(update={"attention_levels": [False]}))
    with pytest.raises(ValueError, match="divisible"):
        build_unet(TINY.model_copy(update={"image_size": 15}))


def test_ema_update_formula():
    net = nn.Linear(3, 2)
    ema = EMA(net, decay=0.9)
    before = ema.shadow.weight.clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    d = ema.current_decay()
    assert d == pytest.approx(min(0.9, 1 / 10))  # warm-up at the first update
    ema.update(net)
    torch.testing.assert_close(ema.shadow.weight, d * before + (1 - d) * net.weight)
    for _ in range(100):
        ema.update(net)
    assert ema.current_decay() == pytest.approx(0.9)
    torch.testing.assert_close(ema.shadow.weight, net.weight, atol=1e-4, rtol=0)
    assert not ema.shadow.weight.requires_grad


# ---- samplers -------------------------------------------------------------------------

SCHED = NoiseSchedule(500, 1e-4, 0.02)


class Oracle(nn.Module):
    """The exact epsilon for a known x0: a perfect denoiser of a one-image data set."""

    def __init__(self, x0: torch.Tensor):
        super().__init__()
        self.x0 = x0
        self.abar = SCHED.ddpm().alphas_cumprod

    def forward(self, inp, t):
        x = inp[:, :1]
        ab = self.abar[t].reshape(-1, 1, 1, 1).to(x.dtype)
        return (x - ab.sqrt() * self.x0) / (1 - ab).sqrt()


def _x0(b=2, h=8):
    return torch.linspace(-0.9, 0.8, b * h * h).reshape(b, 1, h, h)


@pytest.mark.parametrize("steps", [1, 7, 25, 50])
def test_ddim_recovers_x0_with_a_perfect_model(steps):
    x0 = _x0()
    out = sample_fast(Oracle(x0), torch.zeros(2, 3, 8, 8), [1, 2], SCHED, steps)
    torch.testing.assert_close(out, x0, atol=1e-4, rtol=0)


def test_ddpm_recovers_x0_with_a_perfect_model():
    x0 = _x0()
    out = sample_ddpm(Oracle(x0), torch.zeros(2, 3, 8, 8), [1, 2], SCHED)
    torch.testing.assert_close(out, x0, atol=2e-3, rtol=0)


def test_ancestral_step_matches_monai_ddpm_step():
    sched: DDPMScheduler = SCHED.ddpm()
    x, eps = torch.randn(2, 1, 6, 6), torch.randn(2, 1, 6, 6)
    for t in (499, 250, 1, 0):
        g = torch.Generator().manual_seed(t)
        ref, _ = sched.step(eps, t, x, generator=g)
        noise = torch.randn(eps.shape, generator=torch.Generator().manual_seed(t))
        torch.testing.assert_close(
            ancestral_step(sched, eps, t, x, noise), ref, atol=1e-5, rtol=1e-5
        )


def test_ddim_timesteps_are_trailing_and_evenly_spaced():
    s = SCHED.ddim(25)
    assert s.timesteps.tolist() == list(range(499, 0, -20))
    s = SCHED.ddim(30)  # 500 / 30 does not divide: steps of 16 from 499
    ts = s.timesteps.tolist()
    assert (
        len(ts) == 30
        and ts[0] == 499
        and set(a - b for a, b in zip(ts, ts[1:], strict=False)) == {16}
    )
    assert SCHED.ddim(500).timesteps.tolist() == list(range(499, -1, -1))
    with pytest.raises(ValueError):
        SCHED.ddim(501)


def test_samplers_deterministic_per_case_and_in_range():
    torch.manual_seed(0)
    net = build_unet(TINY, init_seed=1)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.02 * torch.randn_like(p))
    cond = torch.rand(3, 3, 16, 16)
    fast = sample_fast(net, cond, [10, 11, 12], SCHED, 5)
    assert fast.shape == (3, 1, 16, 16) and fast.min() >= -1 and fast.max() <= 1
    torch.testing.assert_close(sample_fast(net, cond, [10, 11, 12], SCHED, 5), fast, atol=0, rtol=0)
    assert not torch.allclose(sample_fast(net, cond, [10, 11, 99], SCHED, 5)[2], fast[2])
    # a case's result does not depend on its batch mates
    alone = sample_fast(net, cond[1:2], [11], SCHED, 5)
    torch.testing.assert_close(alone[0], fast[1], atol=1e-5, rtol=0)
    # full DDPM on a shorter chain (T = 20) keeps the same guarantees, with custom clip
    short = NoiseSchedule(20, 1e-3, 0.2)
    a = sample_ddpm(net, cond, [1, 2, 3], short, clip=(-0.5, 1.5))
    b = sample_ddpm(net, cond[2:], [3], short, clip=(-0.5, 1.5))
    assert a.min() >= -0.5 and a.max() <= 1.5
    torch.testing.assert_close(a[2:], b, atol=1e-5, rtol=0)


def test_sample_dispatch_uses_configured_sampler():
    x0 = _x0()
    cond = torch.zeros(2, 3, 8, 8)
    cfg = TINY.model_copy(update={"sampler": "ddim", "fast_steps": 4})
    calls = []
    torch.testing.assert_close(
        sample(Oracle(x0), cond, [0, 1], cfg, progress=lambda i, n: calls.append(n)),
        x0,
        atol=1e-4,
        rtol=0,
    )
    assert calls == [4] * 4
    calls.clear()
    sample(
        Oracle(x0),
        cond,
        [0, 1],
        cfg.model_copy(update={"sampler": "ddpm"}),
        progress=lambda i, n: calls.append(n),
    )
    assert len(calls) == 500


def test_epsilon_view_v_head():
    abar = SCHED.ddpm().alphas_cumprod

    class Const(nn.Module):
        def __init__(self, value):
            super().__init__()
            self.value = value

        def forward(self, inp, t):
            return torch.full_like(inp[:, :1], self.value)

    x = torch.randn(2, 4, 5, 5)
    t = torch.tensor([0, 499])
    ab = abar[t].reshape(-1, 1, 1, 1)
    # a zero v-head gives eps = sqrt(1 - abar) x_t: the right answer when x0 = 0
    torch.testing.assert_close(EpsilonView(Const(0.0), abar, "v")(x, t), (1 - ab).sqrt() * x[:, :1])
    torch.testing.assert_close(
        EpsilonView(Const(2.0), abar, "v")(x, t), ab.sqrt() * 2.0 + (1 - ab).sqrt() * x[:, :1]
    )
    torch.testing.assert_close(
        EpsilonView(Const(2.0), abar, "epsilon")(x, t), torch.full((2, 1, 5, 5), 2.0)
    )
    with pytest.raises(ValueError):
        EpsilonView(Const(0.0), abar, "x0")
    # the wrapper saves nothing of its own
    assert set(EpsilonView(build_unet(TINY), abar, "v").state_dict()) == {
        f"net.{k}" for k in build_unet(TINY).state_dict()
    }


def test_norm_groups():
    assert norm_groups([16, 32, 32]) == 1  # demo: >= 16 channels per group
    assert norm_groups([64, 128, 256, 512]) == 4
    assert norm_groups([32, 64, 64]) == 2
    assert norm_groups([16, 32], requested=8) == 8
    with pytest.raises(ValueError, match="divide"):
        norm_groups([16, 24], requested=16)
