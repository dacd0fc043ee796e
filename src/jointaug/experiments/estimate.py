"""An honest time estimate: measured rates per stage x the plan's counts.

:func:`calibrate` times a few real steps of each network with ``torch.utils.benchmark``
(every measured call ends with a device synchronisation, so queued CUDA work is
counted), at the configured batch size, precision (``amp``) and memory format
(``channels_last``), on the run's device:

===========================  ==================================================
``diffusion_step_s``         one diffusion training step (batch ``diffusion.batch_size``)
``sample_s_per_image``       one synthetic image with the configured sampler and steps
                             (one network call at the sampling batch x sampler steps)
``classifier_s_per_sample``  one classifier training image (batch ``classify.batch_size``)
``eval_s_per_image``         one classifier inference (validation / test)
===========================  ==================================================

On a GPU the configured batches are used as they are. On the CPU a stage is first timed
at ``cpu_batch`` (2) items; if the configured batch would then take under ~4 s (a small
network, e.g. the demo profile's) it is timed at the configured batch, else the small
batch is scaled linearly (the paper's networks take minutes per batch on a CPU; a CPU's
throughput changes little with the batch, a GPU's a lot, which is why a GPU is never scaled).

:func:`estimate` turns :class:`Counts` (steps, images, samples per stage of a plan) into
one :class:`StageEstimate` per stage plus the total. The classifier stage is a range:
early stopping ends a training between its first evaluation plus ``patience_samples``
(rounded up to the evaluation period: :func:`training_samples_range`) and ``max_samples``.
The task graph (``experiments/pipeline.py``) computes the counts; this module knows
nothing about run folders.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from jointaug.config import Config
from jointaug.runtime import autocast_for, device_name, synchronize


@dataclass(frozen=True)
class Rates:
    """Seconds per unit on one device (see the module docstring)."""

    device: str
    diffusion_step_s: float = 0.0
    sample_s_per_image: float = 0.0
    classifier_s_per_sample: float = 0.0
    eval_s_per_image: float = 0.0
    batches: tuple[tuple[str, int], ...] = ()  # (stage, batch actually timed)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Counts:
    """Work of a plan, per stage."""

    diffusion_steps: int = 0  # summed over the diffusion models
    images: int = 0  # synthetic images to sample (all sets, all folds)
    trainings: int = 0  # classifier trainings
    classifier_samples_min: int = 0  # every training stopping as early as it can
    classifier_samples_max: int = 0  # every training running to max_samples
    eval_images_max: int = 0  # validation images evaluated (at max_samples) + test


def training_samples_range(
    max_samples: int, patience_samples: int, samples_per_eval: int
) -> tuple[int, int]:
    """(fewest, most) images one classifier training sees.

    Training evaluates every ``samples_per_eval`` images (whole epochs) and at
    ``max_samples``; the first evaluation is always the best so far, and training stops at
    the first evaluation at least ``patience_samples`` after the best. So the earliest
    stop is the first evaluation plus the patience rounded UP to the evaluation period
    (not the patience alone), capped at ``max_samples``."""
    per = max(1, int(samples_per_eval))
    first = min(max_samples, per)
    floor = first + -(-int(patience_samples) // per) * per
    return min(max_samples, floor), int(max_samples)


@dataclass(frozen=True)
class StageEstimate:
    stage: str
    units: int
    unit: str
    seconds_per_unit: float
    hours: float
    hours_max: float | None = None  # the upper end of a range (classifiers)


def _seconds(fn: Callable[[], None], device: torch.device, min_run_time: float) -> float:
    """Median seconds per call of ``fn`` (synchronised), after one warm-up call.

    CUDA: ``torch.utils.benchmark.Timer.blocked_autorange`` (many calls). CPU, where the
    paper's networks take seconds to minutes per call and work is synchronous: one timed
    call after the warm-up."""
    from torch.utils import benchmark

    def call() -> None:
        fn()
        synchronize(device)

    call()  # warm-up: cuDNN autotuning, allocator, lazy init
    if device.type != "cuda":
        t0 = time.perf_counter()
        call()
        return time.perf_counter() - t0
    timer = benchmark.Timer(
        stmt="call()", globals={"call": call}, num_threads=torch.get_num_threads()
    )
    return float(timer.blocked_autorange(min_run_time=min_run_time).median)


def _per_item(
    build: Callable[[int], Callable[[], None]],
    configured: int,
    device: torch.device,
    min_run_time: float,
    cpu_batch: int,
    quick_s: float = 0.25,
) -> tuple[float, int]:
    """(seconds per item, batch timed) for a stage whose call on a batch of b items is
    ``build(b)``. CUDA: the configured batch. CPU: ``cpu_batch`` first; when that call is
    quick (a small network) the configured batch is timed instead, else the small batch is
    scaled linearly."""
    b = configured if device.type == "cuda" else max(1, min(configured, cpu_batch))
    sec = _seconds(build(b), device, min_run_time)
    if b < configured and sec * configured / b < quick_s * 16:
        b = configured
        sec = _seconds(build(b), device, min_run_time)
    return sec / b, b


def calibrate(
    config: Config,
    n_labels: int,
    device: torch.device | str,
    *,
    stages: tuple[str, ...] = ("diffusion", "sampling", "classifier", "evaluation"),
    min_run_time: float = 0.5,
    cpu_batch: int = 2,
) -> Rates:
    """Measure :class:`Rates` for ``config`` on ``device`` (module docstring)."""
    from jointaug.runtime import resolve_device

    dev = resolve_device(device)
    out: dict[str, float] = {}
    batches: list[tuple[str, int]] = []
    timing = (dev, min_run_time, cpu_batch)
    if {"diffusion", "sampling"} & set(stages):
        _diffusion_rates(config, stages, timing, out, batches)
    if {"classifier", "evaluation"} & set(stages):
        _classifier_rates(config, n_labels, stages, timing, out, batches)
    return Rates(device=device_name(dev), batches=tuple(batches), **out)


def _diffusion_rates(
    config: Config, stages: tuple[str, ...], timing: tuple, out: dict, batches: list
) -> None:
    """Time one diffusion training step and one denoiser call (into ``out``, ``batches``)."""
    from jointaug.diffusion.model import EpsilonView, build_unet, network_config
    from jointaug.diffusion.sample import NoiseSchedule, sample_batch_size, sampler_steps

    dev = timing[0]
    d = network_config(config.diffusion)
    unet = build_unet(d, init_seed=0).to(dev)
    eps = EpsilonView(unet, NoiseSchedule.from_config(d).ddpm().alphas_cumprod, d.network_output)
    s = d.image_size
    if "diffusion" in stages:
        opt = torch.optim.Adam(unet.parameters(), lr=d.lr, fused=dev.type == "cuda")

        def diff_step(b: int) -> Callable[[], None]:
            xi, t = (
                torch.randn(b, 4, s, s, device=dev),
                torch.randint(d.timesteps, (b,), device=dev),
            )
            noise = torch.randn(b, 1, s, s, device=dev)

            def call() -> None:
                unet.train()
                with autocast_for(dev, d.amp):
                    e = eps(xi, t)
                loss = torch.nn.functional.mse_loss(e.float(), noise)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

            return call

        per, b = _per_item(diff_step, d.batch_size, *timing)
        out["diffusion_step_s"] = per * d.batch_size
        batches.append(("diffusion", b))
    if "sampling" in stages:
        unet.eval()

        def denoise(b: int) -> Callable[[], None]:
            xi, t = (
                torch.randn(b, 4, s, s, device=dev),
                torch.randint(d.timesteps, (b,), device=dev),
            )

            @torch.no_grad()
            def call() -> None:
                with autocast_for(dev, d.amp):
                    eps(xi, t).float()

            return call

        per, b = _per_item(denoise, sample_batch_size(d, eps, dev), *timing)
        out["sample_s_per_image"] = per * sampler_steps(d)
        batches.append(("sampling", b))


def _classifier_rates(
    config: Config, n_labels: int, stages: tuple[str, ...], timing: tuple, out: dict, batches: list
) -> None:
    """Time one classifier training image and one inference (into ``out``, ``batches``)."""
    from jointaug.classify.model import build_model, input_width

    dev = timing[0]
    c = config.classify
    net = build_model(c, n_labels, seed=0).to(dev)
    if c.channels_last:
        net = net.to(memory_format=torch.channels_last)
    fmt = torch.channels_last if c.channels_last else torch.contiguous_format
    if "classifier" in stages:
        opt = torch.optim.Adam(net.parameters(), lr=c.lr, fused=dev.type == "cuda")

        def cls_step(b: int) -> Callable[[], None]:
            x = torch.randn(b, 1, c.image_size, input_width(c), device=dev).contiguous(
                memory_format=fmt
            )
            y = (torch.rand(b, n_labels, device=dev) < 0.3).float()

            def call() -> None:
                net.train()
                with autocast_for(dev, c.amp):
                    logits = net(x)
                loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

            return call

        out["classifier_s_per_sample"], b = _per_item(cls_step, c.batch_size, *timing)
        batches.append(("classifier", b))
    if "evaluation" in stages:

        def evaluate(b: int) -> Callable[[], None]:
            x = torch.randn(b, 1, c.image_size, input_width(c), device=dev).contiguous(
                memory_format=fmt
            )

            @torch.no_grad()
            def call() -> None:
                net.eval()
                with autocast_for(dev, c.amp):
                    net(x).float()

            return call

        out["eval_s_per_image"], b = _per_item(evaluate, 2 * c.batch_size, *timing)
        batches.append(("evaluation", b))


def estimate(rates: Rates, counts: Counts) -> list[StageEstimate]:
    """Per-stage hours for ``counts`` at ``rates``, the total last."""
    h = 1 / 3600
    rows = []
    if counts.diffusion_steps:
        rows.append(
            StageEstimate(
                "diffusion training",
                counts.diffusion_steps,
                "steps",
                rates.diffusion_step_s,
                counts.diffusion_steps * rates.diffusion_step_s * h,
            )
        )
    if counts.images:
        rows.append(
            StageEstimate(
                "sampling",
                counts.images,
                "images",
                rates.sample_s_per_image,
                counts.images * rates.sample_s_per_image * h,
            )
        )
    if counts.trainings:
        r = rates.classifier_s_per_sample
        rows.append(
            StageEstimate(
                f"classifiers ({counts.trainings} trainings)",
                counts.classifier_samples_max,
                "samples",
                r,
                counts.classifier_samples_min * r * h,
                counts.classifier_samples_max * r * h,
            )
        )
        rows.append(
            StageEstimate(
                "evaluation",
                counts.eval_images_max,
                "images",
                rates.eval_s_per_image,
                counts.eval_images_max * rates.eval_s_per_image * h,
            )
        )
    low = sum(r.hours for r in rows)
    high = sum(r.hours if r.hours_max is None else r.hours_max for r in rows)
    rows.append(StageEstimate("total", 0, "", 0.0, low, high if high != low else None))
    return rows


def _fmt_h(hours: float) -> str:
    s = hours * 3600
    return f"{hours:.1f} h" if s > 5400 else f"{s / 60:.1f} min" if s > 90 else f"{s:.0f} s"


def format_estimates(rows: list[StageEstimate], rates: Rates) -> str:
    """The estimate as aligned text lines (for ``jointaug run --plan``)."""
    if rates.batches:
        head = (
            f"  estimate on this machine ({rates.device}; measured, synchronised; "
            f"batches timed: {', '.join(f'{k} {b}' for k, b in rates.batches)}):"
        )
    else:  # a named card's FLOP model (experiments/cards.py): nothing was timed
        head = f"  estimate for {rates.device} (nothing timed here):"
    lines = [head]
    for r in rows:
        when = (
            _fmt_h(r.hours) if r.hours_max is None else f"{_fmt_h(r.hours)} - {_fmt_h(r.hours_max)}"
        )
        if r.stage == "total":
            lines.append(f"    {'total':<30} {when}")
        else:
            lines.append(
                f"    {r.stage:<30} {r.units:>14,} {r.unit:<8} x {r.seconds_per_unit * 1e3:9.3f} ms = {when}"
            )
    return "\n".join(lines)
