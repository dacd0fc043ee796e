"""A prepared GPU check of the paper profile: a few seconds of every stage, on the real code.

On a CUDA machine (about 2-4 minutes, under 8): at the ``paper`` profile's settings
(batch sizes, bf16 autocast, channels-last, fused Adam, auto sampling batch) it runs

1. diffusion training steps (the training loop's own ``train_step``: guidance and min-SNR
   options as configured, fused Adam, ``_foreach`` EMA),
2. DDPM sampling (the full 500-step ancestral sampler, stopped after its time budget:
   seconds per step x 500 = seconds per image batch),
3. DDIM sampling (``fast_steps``),
4. classifier training steps (DenseNet121 at 256 px, the training loop's own ``_Step``),
5. evaluation (classifier inference at twice the training batch),

then ``experiments.estimate.calibrate`` (what ``jointaug run --plan`` measures), and prints
per stage the throughput and the peak GPU memory, and the projected time of the whole
paper grid (5 folds, every Table 1/2 method, Fig. 6 curve sizes) on this card from the
plan's counts. Exits 1 if any stage fails (the others still run), else 0.

Without CUDA it says so and runs the same stages on a tiny CPU configuration for a
second each (a smoke test that the script runs), then exits 0 (1 if a stage fails).

    python benchmarks/gpu_check.py                  # everything, ~20 s per stage budget
    python benchmarks/gpu_check.py --seconds 10 --json gpu_check.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch

CPU_SMOKE = [
    "classify.image_size=32",
    "classify.block_config=[1, 1]",
    "classify.growth_rate=4",
    "classify.init_features=8",
    "classify.batch_size=4",
    "diffusion.image_size=16",
    "diffusion.channels=[8, 16]",
    "diffusion.attention_levels=[false, true]",
    "diffusion.num_res_blocks=1",
    "diffusion.num_head_channels=8",
    "diffusion.batch_size=2",
    "diffusion.timesteps=20",
    "diffusion.fast_steps=4",
    "diffusion.sample_batch_size=2",
]


class Budget(Exception):
    """Raised from a sampler's progress callback when its time is up."""


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _reset_peak(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)


def _peak_gib(dev: torch.device) -> float:
    return torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else float("nan")


def _timed_loop(fn, dev: torch.device, seconds: float, warmup: int = 3) -> tuple[int, float]:
    """Call fn() repeatedly for about ``seconds`` after ``warmup`` calls: (calls, seconds)."""
    for _ in range(warmup):
        fn()
    _sync(dev)
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        if n % 4 == 0 or dev.type != "cuda":
            _sync(dev)
            if time.perf_counter() - t0 >= seconds:
                break
    _sync(dev)
    return n, time.perf_counter() - t0


def diffusion_parts(cfg, dev):
    from jointaug.diffusion.model import EMA, EpsilonView, build_unet, network_config
    from jointaug.diffusion.sample import NoiseSchedule

    d = network_config(cfg.diffusion)
    net = build_unet(d, init_seed=0).to(dev)
    sched = NoiseSchedule.from_config(d).ddpm()
    return (
        d,
        net,
        EMA(net, d.ema_decay),
        sched,
        EpsilonView(net, sched.alphas_cumprod, d.network_output),
    )


def stage_diffusion_train(cfg, dev, seconds: float) -> dict:
    from jointaug.diffusion.loop import DiffusionStep, LossMeter, train_step

    d, net, ema, sched, eps = diffusion_parts(cfg, dev)
    opt = torch.optim.Adam(net.parameters(), lr=d.lr, fused=dev.type == "cuda")
    s = d.image_size
    ys = torch.rand(64, 1, s, s, device=dev) * 2 - 1
    cs = torch.rand(64, 3, s, s, device=dev)
    gen = torch.Generator(device=dev).manual_seed(0)
    meter = LossMeter(dev)
    parts = DiffusionStep(net, eps, ema, opt, sched, gen, ys, cs, d, meter)

    def step():
        train_step(parts, 0)

    n, secs = _timed_loop(step, dev, seconds)
    mean, _ = meter.read()
    if not np.isfinite(mean):
        raise FloatingPointError(f"diffusion loss {mean}")
    return {
        "unit": "step",
        "per_s": n / secs,
        "s_per_unit": secs / n,
        "batch": d.batch_size,
        "images_per_s": n * d.batch_size / secs,
        "loss": mean,
    }


def stage_sampling(cfg, dev, seconds: float, sampler: str) -> dict:
    from jointaug.diffusion.sample import NoiseSchedule, sample_batch_size, sample_ddpm, sample_fast

    d, net, ema, _, _ = diffusion_parts(cfg, dev)
    from jointaug.diffusion.model import EpsilonView

    eps = EpsilonView(
        ema.shadow, NoiseSchedule.from_config(d).ddpm().alphas_cumprod, d.network_output
    )
    b = sample_batch_size(d, eps, dev)
    s = d.image_size
    cond = torch.rand(b, 3, s, s, device=dev)
    schedule = NoiseSchedule.from_config(d)
    total = d.timesteps if sampler == "ddpm" else d.fast_steps
    # warm-up (cuDNN autotuning at this batch): a 2-step DDIM
    sample_fast(eps, cond, list(range(b)), schedule, 2, amp=d.amp)
    _sync(dev)
    done = [0]
    t0 = time.perf_counter()

    def progress(i: int, n: int) -> None:
        done[0] = i
        if i % 5 == 0:
            _sync(dev)
            if time.perf_counter() - t0 >= seconds:
                raise Budget

    try:
        if sampler == "ddpm":
            out = sample_ddpm(eps, cond, list(range(b)), schedule, progress, amp=d.amp)
        else:
            out = sample_fast(
                eps, cond, list(range(b)), schedule, d.fast_steps, progress, amp=d.amp
            )
        if not torch.isfinite(out).all():
            raise FloatingPointError("non-finite samples")
    except Budget:
        pass
    _sync(dev)
    secs = time.perf_counter() - t0
    per_image = secs / max(1, done[0]) * total / b
    return {
        "unit": "image",
        "per_s": 1 / per_image,
        "s_per_unit": per_image,
        "batch": b,
        "steps_run": done[0],
        "steps_per_image": total,
    }


def classifier_parts(cfg, dev, n_labels: int = 30, n_images: int = 256):
    from jointaug.classify.data import ImageSet
    from jointaug.classify.train import _make_step

    c = cfg.classify
    rng = np.random.default_rng(0)
    x = rng.random((n_images, 1, c.image_size, c.image_size), dtype=np.float32).astype(np.float16)
    y = (rng.random((n_images, n_labels)) < 0.3).astype(np.float32)
    train = ImageSet(x, y, [f"c{i}" for i in range(n_images)], ["train"] * n_images)
    return c, _make_step(train, c, [f"L{i}" for i in range(n_labels)], c.loss, 0, 1, dev), train


def stage_classifier_train(cfg, dev, seconds: float) -> dict:
    c, step, train = classifier_parts(cfg, dev)
    gen = torch.Generator().manual_seed(0)
    n = len(train)

    def one():
        step.model.train()
        step(torch.randperm(n, generator=gen)[: c.batch_size].to(dev))

    calls, secs = _timed_loop(one, dev, seconds)
    return {
        "unit": "sample",
        "per_s": calls * c.batch_size / secs,
        "s_per_unit": secs / (calls * c.batch_size),
        "batch": c.batch_size,
        "amp": c.amp,
        "channels_last": c.channels_last,
    }


def stage_evaluation(cfg, dev, seconds: float) -> dict:
    from jointaug.classify.train import predict_logits

    c, step, train = classifier_parts(cfg, dev)
    images = torch.from_numpy(train.images)
    b = 2 * c.batch_size

    def one():
        predict_logits(step.model, images, b, dev, c.amp, c.channels_last)

    calls, secs = _timed_loop(one, dev, seconds, warmup=1)
    return {
        "unit": "image",
        "per_s": calls * len(images) / secs,
        "s_per_unit": secs / (calls * len(images)),
        "batch": b,
    }


def paper_counts(cfg):
    """The whole paper grid's counts, from a plan over the built-in phantom (48 patients)."""
    from jointaug.dataset.phantom import write_phantom
    from jointaug.experiments.pipeline import make_plan, plan_counts
    from jointaug.experiments.rundir import RunDir

    with tempfile.TemporaryDirectory() as tmp:
        write_phantom(
            Path(tmp) / "data",
            patients=cfg.phantom.patients,
            size=cfg.phantom.size,
            seed=cfg.phantom.seed,
            progress=False,
        )
        run = RunDir.create(Path(tmp) / "run", Path(tmp) / "data", cfg)
        plan = make_plan(run)
        return plan_counts(run, plan), len(run.dataset.labels)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--seconds", type=float, default=20.0, help="time budget per stage on CUDA [20]"
    )
    ap.add_argument(
        "--json", type=Path, default=None, help="also write the figures to this JSON file"
    )
    args = ap.parse_args()

    from jointaug.config import load_config
    from jointaug.experiments.estimate import Rates, calibrate, estimate, format_estimates
    from jointaug.runtime import apply_runtime, runtime_record

    has_cuda = torch.cuda.is_available()
    if has_cuda:
        cfg = load_config("paper", ["device=cuda"])
        seconds = args.seconds
    else:
        print(
            "gpu_check: no CUDA device (torch sees none): running a tiny CPU smoke version "
            "of every stage instead; the figures below are NOT the paper profile's."
        )
        cfg = load_config("paper", ["device=cpu", "threads=1", *CPU_SMOKE])
        seconds = 1.0
    dev = apply_runtime(cfg)
    rec = runtime_record(dev)
    print(
        f"device: {rec['device']}  torch {rec['torch']}  CUDA {rec['cuda']}  threads {rec['threads']}"
        + (
            f"  native bf16 {torch.cuda.is_bf16_supported(including_emulation=False)}"
            if has_cuda
            else ""
        )
    )
    t_start = time.perf_counter()
    stages = {
        "diffusion training": lambda: stage_diffusion_train(cfg, dev, seconds),
        "DDPM sampling": lambda: stage_sampling(cfg, dev, seconds, "ddpm"),
        "DDIM sampling": lambda: stage_sampling(cfg, dev, seconds, "ddim"),
        "classifier training": lambda: stage_classifier_train(cfg, dev, seconds),
        "evaluation": lambda: stage_evaluation(cfg, dev, seconds),
    }
    results: dict[str, dict] = {}
    failed: list[str] = []
    for name, fn in stages.items():
        _reset_peak(dev)
        t0 = time.perf_counter()
        try:
            r = fn()
            r["peak_gib"] = _peak_gib(dev)
            r["wall_s"] = time.perf_counter() - t0
            results[name] = r
            print(
                f"  {name:<20} {r['per_s']:10.2f} {r['unit']}s/s  ({r['s_per_unit'] * 1e3:9.3f} ms per {r['unit']}, "
                f"batch {r['batch']}, peak {r['peak_gib']:.1f} GiB, {r['wall_s']:.0f} s)"
            )
        except Exception as exc:  # noqa: BLE001 - report every stage, fail at the end
            failed.append(name)
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
            print(f"  {name:<20} FAILED: {type(exc).__name__}: {exc}")
            traceback.print_exc()
        finally:
            if dev.type == "cuda":
                torch.cuda.empty_cache()
    try:
        counts, n_labels = paper_counts(load_config("paper", [f"device={dev.type}"]))
        measured = Rates(
            device=rec["device"],
            diffusion_step_s=results.get("diffusion training", {}).get("s_per_unit", 0.0),
            sample_s_per_image=results.get(f"{cfg.diffusion.sampler.upper()} sampling", {}).get(
                "s_per_unit", 0.0
            ),
            classifier_s_per_sample=results.get("classifier training", {}).get("s_per_unit", 0.0),
            eval_s_per_image=results.get("evaluation", {}).get("s_per_unit", 0.0),
            batches=tuple((k, v["batch"]) for k, v in results.items() if "batch" in v),
        )
        rows = estimate(measured, counts)
        print(
            (
                "projected paper grid on this card"
                if has_cuda
                else "projected (tiny CPU smoke, meaningless)"
            )
            + f" from the measured rates ({counts.trainings} classifier trainings):"
        )
        print(format_estimates(rows, measured))
        cal = calibrate(cfg, n_labels, dev)
        print("  jointaug run --plan's own calibration (experiments/estimate.calibrate):")
        print(format_estimates(estimate(cal, counts), cal))
        results["projection"] = {"rows": [r.__dict__ for r in rows], "calibrate": cal.to_json()}
    except Exception as exc:  # noqa: BLE001
        failed.append("projection")
        print(f"  projection FAILED: {type(exc).__name__}: {exc}")
        traceback.print_exc()
    total = time.perf_counter() - t_start
    print(
        f"gpu_check: {len(stages) - len([f for f in failed if f in stages])}/{len(stages)} stages ok "
        f"in {total:.0f} s" + (f"; FAILED: {', '.join(failed)}" if failed else "")
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"runtime": rec, "results": results, "failed": failed, "wall_s": total},
                indent=1,
                default=str,
            )
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
