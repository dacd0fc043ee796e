"""Which joints does a Perlin rule vary? Per joint group, on a dataset's own masks.

For each rule (``perlin.*`` overrides on a profile) every region of every case with a
tissue and a region map is composed as inflamed (level 2) with the Perlin variation, and
per joint group (wrist, MCP, PIP/IP, DIP: the label name's prefix after the side) it
prints the share of regions varied (not left whole), the mean share of the region kept,
and the mean kept area in classifier pixels (the mask's area scaled to the profile's
``classify.image_size``; per hand crops count twice). Nothing is trained.

    python benchmarks/bench_perlin_rule.py --dataset DEV_PHANTOM --profile cpu \\
        --rule paper= --rule half=perlin.min_fraction=0.5 --rule most=perlin.min_fraction=0.7
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import numpy as np


def group_of(label: str) -> str:
    """``R_MCP2`` -> ``MCP``; ``L_Wrist`` -> ``Wrist``."""
    name = label.split("_", 1)[-1]
    return name.rstrip("0123456789") or name


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--rule", action="append", default=[], help="NAME=override;override")
    ap.add_argument("--cases", type=int, default=40, help="cases with masks to use")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from jointaug.config import load_config
    from jointaug.dataset.format import read_dataset
    from jointaug.masks.compose import compose_condition

    ds = read_dataset(args.dataset)
    cases = [c for c in ds.cases if c.tissue and c.regions][: args.cases]
    labels = ds.labels
    for rule in args.rule or ["profile="]:
        name, _, spec = rule.partition("=")
        cfg = load_config(args.profile, [o for o in spec.split(";") if o])
        px = (cfg.classify.image_size / 256.0) ** 2 * (2 if cfg.classify.per_hand else 1)
        rng = np.random.default_rng(args.seed)
        varied, kept, area_px = defaultdict(list), defaultdict(list), defaultdict(list)
        t0 = time.perf_counter()
        for c in cases:
            tissue, regions = ds.tissue(c), ds.regions(c)
            scale = 256.0 / tissue.shape[0]
            vec = np.full(len(labels), 2, np.int8)
            out = compose_condition(tissue, regions, vec, rng=rng, perlin=cfg.perlin)
            for i, lab in enumerate(labels):
                whole = np.count_nonzero((regions == i + 1) & (tissue > 0))
                if whole == 0:
                    continue
                got = np.count_nonzero((out.condition == 3) & (regions == i + 1))
                g = group_of(lab)
                varied[g].append(got < whole)
                kept[g].append(got / whole)
                area_px[g].append(got * scale * scale * px)
        ms = 1000 * (time.perf_counter() - t0) / max(1, len(cases))
        print(f"rule {name} ({spec or 'profile as is'}): {ms:.1f} ms per 30-label condition")
        for g in sorted(varied):
            print(
                f"  {g:<6} varied {np.mean(varied[g]):5.0%}  kept {np.mean(kept[g]):5.0%} of the"
                f" region  = {np.mean(area_px[g]):6.1f} classifier px"
                f" (min {np.min(area_px[g]):.1f})"
            )


if __name__ == "__main__":
    main()
