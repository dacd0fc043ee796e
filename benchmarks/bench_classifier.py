"""Classifier training throughput: the full step vs the network alone (prints its figures).

For the demo config (64 x 64, small DenseNet) and the paper config (256 x 256,
DenseNet121) it measures, in images per second:

- ``pipeline``: what ``jointaug.classify.train.fit`` does per step - index the cached
  float16 images, the paper's augmentation (batched rotate/flip/crop warp), forward,
  masked BCE, backward, Adam step;
- ``pure``: the same network's forward + backward + Adam step on a pre-made batch;
- ``ratio`` = pipeline / pure (target >= 0.8: the data pipeline costs at most 20 %);
- ``ratio from parts`` = pure / (pure + data), with the data work (order, gather,
  float16 -> float32, augmentation) timed alone: steadier on a loaded machine.

Also printed: the one-off cost of preparing an image (PNG decode + normalise + resize,
done once per run) and, for comparison, MONAI's per-image RandRotate + RandFlip x 2 chain.
Pipeline, pure and data runs are interleaved and the median of the repeats is reported, so a
shared machine's load hits both alike. On CUDA the paper config is also timed with bf16
autocast and channels-last, and the card's name is printed.

    python benchmarks/bench_classifier.py [--paper-steps 2] [--demo-steps 30] [--threads N]
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from jointaug.classify.losses import masked_bce
from jointaug.classify.model import build_model
from jointaug.classify.train import _Step
from jointaug.classify.transforms import PaperAugment, crop_pad_px, prepare_image
from jointaug.config import load_config
from jointaug.dataset.io import read_image, write_counts_png
from jointaug.runtime import autocast_for


def make_step(cfg, n_labels: int, n_images: int, dev: torch.device) -> _Step:
    rng = np.random.default_rng(0)
    x = rng.random((n_images, 1, cfg.image_size, cfg.image_size)).astype(np.float16)
    y = (rng.random((n_images, n_labels)) < 0.11).astype(np.float32)
    model = build_model(cfg, n_labels, seed=0).to(dev)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return _Step(
        model,
        torch.optim.Adam(model.parameters(), lr=cfg.lr),
        masked_bce,
        PaperAugment(
            cfg.rotate_deg, cfg.flip_prob, cfg.crop_prob, crop_pad_px(cfg.crop_pad, cfg.image_size)
        ),
        torch.Generator().manual_seed(0),
        torch.from_numpy(x).to(dev),
        torch.from_numpy(y).to(dev),
        cfg,
        dev,
    )


def pure_step(step: _Step, x: torch.Tensor, y: torch.Tensor) -> None:
    with autocast_for(step.dev, step.cfg.amp):
        logits = step.model(x)
    loss = masked_bce(logits.float(), y)
    step.opt.zero_grad(set_to_none=True)
    loss.backward()
    step.opt.step()


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def measure(name: str, cfg, steps: int, repeats: int, dev: torch.device) -> dict:
    n_labels, b = 30, cfg.batch_size
    step = make_step(cfg, n_labels, max(4 * b, 64), dev)
    step.model.train()
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(b, 1, cfg.image_size, cfg.image_size, device=dev)
    if cfg.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = (torch.rand(b, n_labels, device=dev) < 0.11).float()
    n = step.x.shape[0]

    def run_pipeline():
        for _ in range(steps):
            step(torch.randperm(n, generator=gen)[:b].to(dev))

    def run_pure():
        for _ in range(steps):
            pure_step(step, x, y)

    def run_data():  # the pipeline's extra work alone: order, gather, float, augment
        for _ in range(steps):
            idx = torch.randperm(n, generator=gen)[:b].to(dev)
            step.augment(step.x[idx].float(), gen)

    fns = {"pipeline": run_pipeline, "pure": run_pure, "data": run_data}
    for fn in fns.values():  # warm-up
        fn()
    times = {k: [] for k in fns}
    for _ in range(repeats):  # interleaved, so load changes hit all three alike
        for key, fn in fns.items():
            sync(dev)
            t0 = time.perf_counter()
            fn()
            sync(dev)
            times[key].append(time.perf_counter() - t0)
    t = {k: statistics.median(v) for k, v in times.items()}
    out = {
        "name": name,
        "pipeline": steps * b / t["pipeline"],
        "pure": steps * b / t["pure"],
        "ratio": t["pure"] / t["pipeline"],
        "ratio_from_parts": t["pure"] / (t["pure"] + t["data"]),
        "data_ms_per_image": t["data"] / (steps * b) * 1e3,
    }
    print(
        f"{name}\n  pipeline {out['pipeline']:8.1f} img/s   pure {out['pure']:8.1f} img/s   "
        f"ratio {out['ratio']:.2f}   data pipeline alone {out['data_ms_per_image']:.3f} ms/img "
        f"-> ratio from parts {out['ratio_from_parts']:.2f}",
        flush=True,
    )
    return out


def prepare_cost(size: int, n: int = 40) -> float:
    """ms per image to decode a 256 x 256 16-bit PNG and prepare it (once per run)."""
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as d:
        paths = []
        for i in range(n):
            p = Path(d) / f"{i}.png"
            write_counts_png(p, rng.poisson(20, (256, 256)))
            paths.append(p)
        t0 = time.perf_counter()
        for p in paths:
            prepare_image(read_image(p), size)
        return (time.perf_counter() - t0) / n * 1e3


def monai_per_image_ms(size: int, n: int = 50) -> float:
    from monai.transforms import Compose, RandFlip, RandRotate

    t = Compose(
        [
            RandRotate(range_x=math.radians(30), prob=1.0, padding_mode="zeros"),
            RandFlip(prob=0.5, spatial_axis=0),
            RandFlip(prob=0.5, spatial_axis=1),
        ]
    )
    t.set_random_state(seed=0)
    x = torch.rand(1, size, size)
    t(x)
    t0 = time.perf_counter()
    for _ in range(n):
        t(x)
    return (time.perf_counter() - t0) / n * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--demo-steps", type=int, default=10, help="steps per timed repeat (demo)")
    ap.add_argument(
        "--paper-steps", type=int, default=1, help="steps per timed repeat (paper, CPU)"
    )
    ap.add_argument(
        "--repeats", type=int, default=7, help="timed repeats (median); 2 for paper on CPU"
    )
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--skip-paper", action="store_true")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    card = torch.cuda.get_device_name(0) if dev.type == "cuda" else "CPU"
    print(f"device {card}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    demo = load_config("demo").classify
    paper = load_config("paper").classify
    print(
        f"prepare one 256x256 PNG -> 64: {prepare_cost(64):.2f} ms, -> 256: {prepare_cost(256):.2f} ms "
        "(once per run)"
    )
    print(
        f"MONAI per-image RandRotate+RandFlip x2: {monai_per_image_ms(64):.2f} ms at 64, "
        f"{monai_per_image_ms(256):.2f} ms at 256 (not used; for comparison)"
    )
    measure("demo: 64x64 DenseNet[2,2,2,2] g16, batch 32", demo, args.demo_steps, args.repeats, dev)
    if args.skip_paper:
        return
    steps = args.paper_steps if dev.type == "cpu" else max(args.paper_steps, 20)
    measure(
        "paper: 256x256 DenseNet121, batch 32",
        paper,
        steps,
        args.repeats if dev.type == "cuda" else 2,
        dev,
    )
    if dev.type == "cuda":
        fast = paper.model_copy(update={"amp": True, "channels_last": True})
        measure("paper: 256x256 DenseNet121, bf16 + channels-last", fast, steps, args.repeats, dev)


if __name__ == "__main__":
    main()
