"""The speed switches (compile, bf16 autocast, channels-last, fused Adam, auto sampling
batch): on the CPU where the API allows it, else marked to run on CUDA."""

import numpy as np
import pytest
import torch
from helpers import LABELS, signal_imageset, tiny_config, write_two_hand_dataset
from helpers import TWO_HAND_OVERRIDES as OVERRIDES

from jointaug import runtime
from jointaug.classify.train import FitOptions, fit
from jointaug.config import load_config
from jointaug.diffusion.checkpoint import load_tensors
from jointaug.diffusion.model import build_unet, network_config
from jointaug.diffusion.sample import sample_batch_size
from jointaug.experiments.rundir import RunDir
from jointaug.experiments.stages import train_fold_diffusion as train_diffusion
from jointaug.runtime import autocast_for

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def test_autocast_is_a_no_op_on_the_cpu():
    with autocast_for(torch.device("cpu"), True):
        y = torch.nn.Linear(4, 4)(torch.ones(2, 4))
    assert y.dtype == torch.float32


def test_auto_sample_batch_on_the_cpu_and_fixed_numbers():
    cfg = load_config("demo", ["diffusion.sample_batch_size=auto"]).diffusion
    assert sample_batch_size(cfg, torch.nn.Identity(), torch.device("cpu")) == 64
    assert (
        sample_batch_size(
            cfg.model_copy(update={"sample_batch_size": 5}), None, torch.device("cpu")
        )
        == 5
    )


@pytest.mark.slow
def test_compiled_diffusion_training_gives_the_same_weights(tmp_path, monkeypatch):
    """diffusion.compile on the CPU with dynamo's eager backend (the graph capture; the
    inductor compiler takes minutes on a CPU): same EMA weights as uncompiled."""
    monkeypatch.setattr(runtime, "COMPILE_BACKEND", "eager")
    data = write_two_hand_dataset(tmp_path / "data")
    ov = [*OVERRIDES, "diffusion.train_steps=2", "diffusion.dropout=0"]
    plain = RunDir.create(tmp_path / "plain", data, load_config("demo", ov))
    compiled = RunDir.create(
        tmp_path / "compiled", data, load_config("demo", [*ov, "diffusion.compile=true"])
    )
    a, _ = load_tensors(train_diffusion(plain, 0, progress=False) / "ema.safetensors")
    b, _ = load_tensors(train_diffusion(compiled, 0, progress=False) / "ema.safetensors")
    torch._dynamo.reset()
    assert a.keys() == b.keys()  # saved from the plain module, no "_orig_mod." prefixes
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)


@cuda
def test_diffusion_step_bf16_fused_adam_on_cuda(tmp_path):
    data = write_two_hand_dataset(tmp_path / "data")
    run = RunDir.create(
        tmp_path / "run",
        data,
        load_config("demo", [*OVERRIDES, "device=cuda", "diffusion.amp=true"]),
    )
    folder = train_diffusion(run, 0, progress=False)
    ema, _ = load_tensors(folder / "ema.safetensors")
    assert all(torch.isfinite(v).all() for v in ema.values() if v.is_floating_point())


@cuda
def test_auto_sample_batch_fits_the_card():
    cfg = network_config(load_config("paper", ["diffusion.sample_batch_size=auto"]).diffusion)
    net = build_unet(cfg).cuda().eval()
    from jointaug.diffusion.model import EpsilonView
    from jointaug.diffusion.sample import NoiseSchedule

    eps = EpsilonView(net, NoiseSchedule.from_config(cfg).ddpm().alphas_cumprod)
    b = sample_batch_size(cfg, eps, torch.device("cuda"))
    assert 1 <= b <= 1024 and b & (b - 1) == 0


@cuda
def test_classifier_bf16_channels_last_on_cuda(tmp_path):
    rng = np.random.default_rng(0)
    train, val = signal_imageset(rng, 64), signal_imageset(rng, 32)
    cfg = tiny_config(amp=True, channels_last=True, max_samples=128)
    res = fit(tmp_path, train, val, cfg, 0, LABELS, FitOptions(progress=False, device="cuda"))
    assert res.samples == 128 and all(v.device.type == "cpu" for v in res.best_state.values())
