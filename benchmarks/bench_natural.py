"""Speed of the natural-photo path on this machine; prints its figures.

    python benchmarks/bench_natural.py [--threads N] [--profile demo]

Stages timed: stand-in photo generation, the background heuristic and the
openness check per photo (400 x 300), Label Studio brush RLE decoding, the U-Net
segmenter's training at the profile's settings (and the validation Dice it
reaches), prediction and scene layout per photo, and the whole
``build_natural_source`` at the profile's numbers.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from jointaug.config import load_config
from jointaug.natural.background import hand_mask
from jointaug.natural.hands11k import load_photo, photo_path, read_hand_info
from jointaug.natural.joints import predict_scores, train_segmenter
from jointaug.natural.labelstudio import match_labels, read_labels
from jointaug.natural.layout import make_scene
from jointaug.natural.openness import count_fingers
from jointaug.natural.rle import brush_to_mask, mask_to_brush
from jointaug.natural.source import build_natural_source, labelled_crops
from jointaug.natural.standin_folder import write_standin


def timed(fn, *args, repeat: int = 1, **kwargs):
    t = time.perf_counter()
    for _ in range(repeat):
        out = fn(*args, **kwargs)
    return out, (time.perf_counter() - t) / repeat


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    ap.add_argument("--profile", default="demo")
    ap.add_argument("--set", action="append", default=[], help="config override, repeatable")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(args.profile, args.set).natural
    print(f"torch threads: {torch.get_num_threads()}  profile: {args.profile}  natural: {cfg}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        n = 30
        _, t = timed(write_standin, tmp / "s", n, min(cfg.n_labelled, 12), 0)
        print(f"stand-in photos (400x300 JPEG): {t / n * 1000:.0f} ms/photo")
        recs = read_hand_info(tmp / "s")
        photos = [load_photo(photo_path(tmp / "s", r.image_name)) for r in recs]
        masks, t = timed(lambda: [hand_mask(p) for p in photos])
        print(f"hand_mask (400x300): {t / n * 1000:.1f} ms/photo")
        _, t = timed(lambda: [count_fingers(m) for m in masks])
        print(f"openness check (400x300): {t / n * 1000:.1f} ms/photo")
        rle = mask_to_brush(masks[0])
        _, t = timed(brush_to_mask, rle, 400, 300, repeat=20)
        print(f"brush RLE decode (400x300 RGBA): {t * 1000:.1f} ms")

        labels = match_labels(
            read_labels(tmp / "s" / "labelstudio.json"), [r.image_name for r in recs]
        )
        names = sorted(labels)
        x, y = labelled_crops(tmp / "s", labels, names, cfg)
        res, t = timed(train_segmenter, x, y, cfg, 0)
        steps = cfg.segmenter_epochs * -(-res.n_train // cfg.segmenter_batch_size)
        print(
            f"segmenter training: {len(names)} labelled ({res.n_train} train) at "
            f"{cfg.segmenter_image_size}px, {cfg.segmenter_epochs} epochs = {steps} steps: "
            f"{t:.1f} s ({t / max(steps, 1) * 1000:.0f} ms/step); "
            f"val Dice mean {np.nanmean(res.val_dice[1:]):.3f} (on {res.n_val} photos)"
        )
        xs = np.repeat(x, max(1, 64 // len(x)), 0)[:64]
        _, t = timed(predict_scores, res.model, xs)
        print(f"segmenter prediction: {t / len(xs) * 1000:.1f} ms/photo")
        rng = np.random.default_rng(0)
        _, t = timed(
            lambda: [
                make_scene(p, m, None, 256, rng, r.aspect)
                for p, m, r in zip(photos[:10], masks[:10], recs[:10], strict=True)
            ]
        )
        print(f"two-hand scene at 256: {t / 10 * 1000:.0f} ms/photo")

        ds, t = timed(build_natural_source, tmp / "out", None, 256, cfg, 0, progress=False)
        print(
            f"build_natural_source ({args.profile}: {cfg.stand_in_photos} stand-in photos, "
            f"{len(ds.cases)} cases at 256): {t:.1f} s"
        )
        _, t = timed(build_natural_source, tmp / "out", None, 256, cfg, 0, progress=False)
        print(f"  again on the complete folder: {t * 1000:.0f} ms")


if __name__ == "__main__":
    main()
