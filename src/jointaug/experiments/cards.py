"""Per-task costs on a card this machine does not have: FLOPs / a stated throughput, or a
calibration file measured on the card.

Three sources of :class:`~jointaug.experiments.estimate.Rates`, in order of trust:

1. a calibration JSON written by ``benchmarks/gpu_check.py --json FILE`` on the card
   (:func:`read_calibration`): measured per-step costs;
2. :func:`calibrate` of ``experiments/estimate.py`` on this machine's own device;
3. :func:`flop_rates`: each network's FLOPs (counted with
   ``torch.utils.flop_counter.FlopCounterMode`` on the meta device, 2 FLOPs per
   multiply-add) divided by the throughput :data:`CARDS` states for a named card.

The throughputs are assumptions, written down so they can be argued with (for the
paper profile's networks with bf16 autocast, TF32, cuDNN autotuning): the UNet's
training step is memory-bound by GroupNorm/SiLU at 64 channels (~15 % of an H100's
dense bf16 peak), sampling runs large batches without a backward pass, and DenseNet121
at batch 32 is bound by its concatenations, batch norms and kernel launches. The H200
has the H100's compute and 1.4x its memory bandwidth: memory-bound stages gain ~10 %.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from jointaug.config import Config
from jointaug.experiments.estimate import Rates


@dataclass(frozen=True)
class Card:
    name: str
    unet_train_flops: float  # FLOP/s reached by a diffusion training step
    unet_sample_flops: float  # FLOP/s reached by sampling (no backward, large batches)
    classifier_flops: float  # FLOP/s reached by a DenseNet training step at batch 32


CARDS = {
    "h100": Card("H100", 150e12, 250e12, 30e12),
    "h200": Card("H200", 165e12, 275e12, 33e12),
    "a100": Card("A100", 60e12, 100e12, 14e12),
}


def card(name: str) -> Card:
    try:
        return CARDS[name.lower()]
    except KeyError:
        raise ValueError(
            f"unknown card {name!r}; known: {', '.join(CARDS)} (or --calibration FILE)"
        ) from None


def _flops(build, shape: tuple[int, ...], backward: bool, **kw) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    net = build().to("meta")
    x = torch.empty(shape, device="meta")
    with FlopCounterMode(display=False) as fc:
        y = net(x, **kw)
        if backward:
            y.sum().backward()
    return float(fc.get_total_flops())


def network_flops(config: Config, n_labels: int) -> dict[str, float]:
    """FLOPs per image of the config's networks: ``unet_fwd``, ``unet_fwd_bwd``,
    ``classifier_fwd``, ``classifier_fwd_bwd`` (built on the CPU once, counted on meta)."""
    from jointaug.classify.model import build_model, input_width
    from jointaug.diffusion.model import build_unet, network_config

    d = network_config(config.diffusion)
    c = config.classify
    t = {"timesteps": torch.zeros(1, dtype=torch.long, device="meta")}
    unet = (lambda: build_unet(d, init_seed=None)), (1, 4, d.image_size, d.image_size)
    cls = (lambda: build_model(c, n_labels, seed=None)), (1, 1, c.image_size, input_width(c))
    return {
        "unet_fwd": _flops(*unet, backward=False, **t),
        "unet_fwd_bwd": _flops(*unet, backward=True, **t),
        "classifier_fwd": _flops(*cls, backward=False),
        "classifier_fwd_bwd": _flops(*cls, backward=True),
    }


def flop_rates(
    config: Config, n_labels: int, card_name: str, flops: dict[str, float] | None = None
) -> Rates:
    """:class:`Rates` for ``config`` on the named card from FLOPs / stated throughput."""
    from jointaug.diffusion.sample import sampler_steps

    k = card(card_name)
    f = flops or network_flops(config, n_labels)
    d = config.diffusion
    calls = sampler_steps(d) * (2 if d.guidance_scale != 1.0 else 1)  # guidance: 2 calls a step
    return Rates(
        device=f"{k.name} (FLOP model)",
        diffusion_step_s=f["unet_fwd_bwd"] * d.batch_size / k.unet_train_flops,
        sample_s_per_image=f["unet_fwd"] * calls / k.unet_sample_flops,
        classifier_s_per_sample=f["classifier_fwd_bwd"] / k.classifier_flops,
        eval_s_per_image=f["classifier_fwd"] / k.classifier_flops,
    )


def read_calibration(path: str | Path) -> tuple[Rates, dict]:
    """(Rates, extra) from a ``gpu_check.py --json`` file: its ``rates`` object, and
    everything else it measured (e.g. ``packing_gain``, ``card``)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        r = data["rates"]
        rates = Rates(
            device=str(r["device"]),
            diffusion_step_s=float(r.get("diffusion_step_s", 0)),
            sample_s_per_image=float(r.get("sample_s_per_image", 0)),
            classifier_s_per_sample=float(r.get("classifier_s_per_sample", 0)),
            eval_s_per_image=float(r.get("eval_s_per_image", 0)),
            batches=tuple((str(s), int(b)) for s, b in r.get("batches", ())),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(
            f"{path}: not a calibration file of benchmarks/gpu_check.py --json ({exc})"
        ) from exc
    return rates, {k: v for k, v in data.items() if k != "rates"}
