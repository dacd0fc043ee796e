"""Speed of the Perlin variation: batched bounding-box candidates vs one full map per try.

Builds a phantom-like 256x256 two-hand tissue map with 30 joint regions (15 per hand:
wrist, 5 MCP, thumb IP, 4 PIP, 4 DIP), inflames all 30 labels and reports:

- a full 30-label sample: median ms of ``compose_condition`` with Perlin variation
  (target < 50 ms) and of the straightforward loop over the same 30 regions
  (``vary_mask_reference``: same criteria, one full-image textbook Perlin map per try,
  as the paper describes it), and the speedup (target >= 20x);
- the same loop with our fast full-image maps (``perlin_2d``), to separate the gain of
  batching + bounding boxes from the gain of the faster noise formulation;
- per-label figures for a finger joint and a wrist;
- mean tries per label and the fallback rate.

Run: ``.venv/bin/python benchmarks/bench_perlin.py [--repeats 30] [--dataset DIR]``
(``--dataset``: use the tissue and region maps of the first case of a contract-format
folder that has both, e.g. ``jointaug phantom /tmp/ph --patients 2``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from jointaug.config import PerlinConfig
from jointaug.masks.compose import compose_condition
from jointaug.masks.perlin import perlin_2d, vary_mask

# the reference (textbook) implementations are test oracles and live beside the tests
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from reference_noise import vary_mask_reference  # noqa: E402


def _segment_distance(yy, xx, p, q):
    p, q = np.asarray(p, float), np.asarray(q, float)
    d = q - p
    t = np.clip(((yy - p[0]) * d[0] + (xx - p[1]) * d[1]) / max(float(d @ d), 1e-9), 0, 1)
    return np.hypot(yy - (p[0] + t * d[0]), xx - (p[1] + t * d[1]))


def toy_hands(size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(tissue, regions) uint8 maps of two open hands, 30 labels in HAND_LABELS order."""
    s = size / 256.0
    yy, xx = np.mgrid[:size, :size].astype(float)
    tissue = np.zeros((size, size), np.uint8)
    regions = np.zeros((size, size), np.uint8)
    for hand, (cx, sign) in enumerate(((72 * s, -1), (184 * s, 1))):
        base = hand * 15
        palm = ((yy - 150 * s) / (42 * s)) ** 2 + ((xx - cx) / (34 * s)) ** 2 <= 1
        forearm = (np.abs(xx - cx) <= 24 * s) & (yy >= 170 * s)
        tissue[palm | forearm] = 1
        wrist = ((yy - 200 * s) / (11 * s)) ** 2 + ((xx - cx) / (26 * s)) ** 2 <= 1
        regions[wrist & (tissue > 0)] = base + 1
        # thumb: from the palm's side, outwards; mcp1 and ip1
        t0 = (165 * s, cx + sign * 24 * s)
        t1 = (120 * s, cx + sign * 52 * s)
        tissue[_segment_distance(yy, xx, t0, t1) <= 7 * s] = 1
        for k, f in ((2, 0.35), (7, 0.75)):  # mcp1 (label 2), ip1 (label 7)
            c = (t0[0] + f * (t1[0] - t0[0]), t0[1] + f * (t1[1] - t0[1]))
            regions[np.hypot(yy - c[0], xx - c[1]) <= 6.5 * s] = base + k
        # fingers 2..5: mcp at the palm top, pip, dip upwards
        for j in range(4):
            x = cx + sign * (-21 + 14 * j) * s
            top = (10 + 8 * abs(j - 1.2)) * s
            tissue[(_segment_distance(yy, xx, (115 * s, x), (top, x)) <= 5.5 * s)] = 1
            for k, y in (
                (3 + j, 112 * s),
                (8 + j, 75 * s + top * 0.3),
                (12 + j, 40 * s + top * 0.6),
            ):
                regions[((yy - y) / (7 * s)) ** 2 + ((xx - x) / (6 * s)) ** 2 <= 1] = base + k
    return tissue, regions


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--dataset", default=None)
    args = ap.parse_args()
    cfg = PerlinConfig()
    if args.dataset:
        from jointaug.dataset.format import read_dataset

        ds = read_dataset(args.dataset)
        case = next(c for c in ds.cases if c.tissue and c.regions)
        tissue, regions = ds.tissue(case), ds.regions(case)
        source = f"{args.dataset} case {case.case_id}"
    else:
        tissue, regions = toy_hands(args.size)
        source = "built-in toy hands"
    vector = np.where(np.arange(30) % 2 == 0, 1, 2).astype(np.int8)  # all 30 inflamed
    areas = [int(((regions == i + 1) & (tissue > 0)).sum()) for i in range(30)]
    print(
        f"{source}: map {tissue.shape[0]}x{tissue.shape[1]}, 30 regions, areas px: "
        f"min {min(areas)} median {int(np.median(areas))} max {max(areas)}"
    )
    kw = dict(
        min_pixels=cfg.min_pixels,
        max_fraction=cfg.max_fraction,
        max_tries=cfg.max_tries,
        res=cfg.res,
        threshold_low=cfg.threshold_low,
        threshold_high=cfg.threshold_high,
    )
    masks = [(regions == i + 1) & (tissue > 0) for i in range(30)]

    rng = np.random.default_rng(0)
    stats = {"tries": [], "fell_back": []}

    def batched_sample():
        c = compose_condition(tissue, regions, vector, rng, cfg)
        stats["tries"].extend(c.tries.tolist())
        stats["fell_back"].extend(c.fell_back.tolist())

    compose_condition(tissue, regions, vector, rng, cfg)  # warm-up
    full_ms = _median_ms(batched_sample, args.repeats)

    ref_stats = {"tries": [], "fell_back": []}

    def reference_sample(noise=None):
        for m in masks:
            r = vary_mask_reference(m, rng, noise=noise, **kw)
            ref_stats["tries"].append(r.tries)
            ref_stats["fell_back"].append(r.fell_back)

    ref_repeats = max(3, args.repeats // 5)
    ref_ms = _median_ms(reference_sample, ref_repeats)
    loop_fast_ms = _median_ms(lambda: reference_sample(perlin_2d), ref_repeats)

    one = masks[2]  # a finger joint (R_mcp2)
    wrist = masks[0]
    per_label = []
    for name, m in (("finger joint", one), ("wrist", wrist)):
        fast = _median_ms(lambda m=m: vary_mask(m, rng, batch=cfg.batch, **kw), args.repeats * 10)
        slow = _median_ms(lambda m=m: vary_mask_reference(m, rng, **kw), args.repeats * 2)
        per_label.append(
            f"one {name} ({int(m.sum())} px): {fast:.2f} ms vs {slow:.2f} ms -> {slow / fast:.1f}x"
        )

    print(
        f"30-label sample, compose_condition + Perlin: median {full_ms:.1f} ms "
        f"(target < 50 ms) over {args.repeats} samples"
    )
    print(
        f"30-label sample, reference one-at-a-time:     median {ref_ms:.1f} ms "
        f"over {ref_repeats} samples -> speedup {ref_ms / full_ms:.1f}x (target >= 20x)"
    )
    print(
        f"30-label sample, one-at-a-time, fast maps:    median {loop_fast_ms:.1f} ms "
        f"-> speedup {loop_fast_ms / full_ms:.1f}x (batching + boxes alone)"
    )
    for line in per_label:
        print(line)
    print(
        f"batched:   mean tries per label {np.mean(stats['tries']):.2f}, "
        f"fallback rate {np.mean(stats['fell_back']):.4f}"
    )
    print(
        f"reference: mean tries per label {np.mean(ref_stats['tries']):.2f}, "
        f"fallback rate {np.mean(ref_stats['fell_back']):.4f}"
    )
    try:
        load = " ".join(open("/proc/loadavg").read().split()[:3])
        print(f"load average during run: {load} (machine shared; figures are noisy)")
    except OSError:
        pass


if __name__ == "__main__":
    main()
