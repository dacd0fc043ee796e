"""CPU cost per training sample of the classifier's input options (one thread).

The demo network (``cpu`` profile: growth 16, blocks [2, 2, 2, 2], batch 32), one full
training step as ``fit`` runs it (gather, augmentation, forward, masked BCE, backward,
Adam), for: the whole image at 64 px (today), ``lr_aware`` at 64 px (label-aware flips),
``per_hand`` at 64 px per hand (input 64 x 128, two 64 x 64 crops per image), and the
whole image at 96 and 128 px. Prints ms per training image (a per-hand image is two crops)
as the median over rounds; the configurations are interleaved so machine load hits all.

    python benchmarks/bench_lr_hands.py [--steps 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from jointaug.classify.losses import masked_bce
from jointaug.classify.model import build_model, input_width
from jointaug.classify.train import _Step
from jointaug.classify.transforms import InputLayout, PaperAugment, crop_pad_px
from jointaug.config import load_config
from jointaug.dataset.format import HAND_LABELS, DatasetMeta
from jointaug.dataset.mirror import lr_permutation, mirror_pairs

PAIRS = mirror_pairs(DatasetMeta.hands("bench"))
PERM = tuple(int(i) for i in lr_permutation(HAND_LABELS, PAIRS))
SLOTS = (tuple(range(15)), tuple(range(15, 30)))
CASES = {
    "whole 64 (today)": ({"image_size": 64}, None),
    "lr_aware 64": ({"image_size": 64, "lr_aware": True}, InputLayout(("dorsal",), PERM)),
    "per_hand 64/hand": (
        {"image_size": 64, "per_hand": True},
        InputLayout(("dorsal",), None, SLOTS),
    ),
    "whole 96": ({"image_size": 96}, None),
    "whole 128": ({"image_size": 128}, None),
}


def make_step(update: dict, layout: InputLayout | None, n_images: int = 256) -> _Step:
    cfg = load_config("cpu").classify.model_copy(update=update)
    rng = np.random.default_rng(0)
    shape = (n_images, 1, cfg.image_size, input_width(cfg))
    model = build_model(cfg, 30, seed=0, layout=layout)
    return _Step(
        model=model,
        opt=torch.optim.Adam(model.parameters(), lr=cfg.lr),
        loss_fn=masked_bce,
        augment=PaperAugment(
            cfg.rotate_deg, cfg.flip_prob, cfg.crop_prob, crop_pad_px(cfg.crop_pad, cfg.image_size)
        ),
        gen=torch.Generator().manual_seed(0),
        x=torch.from_numpy(rng.random(shape).astype(np.float16)),
        y=torch.from_numpy((rng.random((n_images, 30)) < 0.11).astype(np.float32)),
        cfg=cfg,
        dev=torch.device("cpu"),
        layout=layout,
    )


def time_steps(step: _Step, steps: int) -> float:
    """Seconds per training image over ``steps`` batches (after one warm-up step)."""
    b = step.cfg.batch_size
    step.model.train()
    step(torch.arange(b))
    t0 = time.perf_counter()
    for i in range(steps):
        step(torch.arange(i * b, (i + 1) * b) % step.x.shape[0])
    return (time.perf_counter() - t0) / (steps * b)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(1)
    steps = {name: make_step(*case) for name, case in CASES.items()}
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(a.rounds):
        for name, step in steps.items():
            times[name].append(time_steps(step, a.steps))
    base = statistics.median(times["whole 64 (today)"])
    print(f"{'configuration':<20} {'ms / image':>10} {'x today':>8}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:<20} {1e3 * med:>10.2f} {med / base:>8.2f}")


if __name__ == "__main__":
    main()
