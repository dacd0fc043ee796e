"""Headroom: does the classifier use more data? baseline vs oracle (vs oversample) per lever.

Each lever is a named list of ``classify.*`` overrides on a base profile. Per lever a run
folder ``OUT/<lever>`` trains ``baseline`` and ``oracle-plan`` (the phantom's own renderer
on the fold's train patients, N images: what this benchmark called the oracle before
``oracle`` came to render ``mp-perlin``'s conditions, which needs a diffusion model) on a
few folds and seeds; the oracle sets are made once (``OUT/_sets``) and linked into every
lever's run. Prints, per lever, mean test
GMS at threshold 0.5 and tuned, the paired oracle - baseline difference, and seconds
per training.

    python benchmarks/bench_headroom.py --dataset /work/bench/phantom --out /work/bench/headroom \
        --folds 0,1 --seeds 0 --lever demo= --lever grow=classify.max_epochs=25

``--predict``: also train the baseline on nested 25-100 % subsets of each fold's training
patients in the same run folder (``jointaug headroom``, ``RUN/headroom/``) and print, per
lever, the gain the learning curve predicts for perfect extra data of N images beside the
oracle's measured gain (both at the tuned threshold and at 0.5): does the curve, fitted
before any generator is trained, tell what the oracle later measures?
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

ORACLE = "oracle-plan"  # the phantom's renderer on its own plan: no diffusion model needed


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--profile", default="demo")
    ap.add_argument("--folds", default="0,1")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--n", type=int, default=512, help="oracle images per fold")
    ap.add_argument("--methods", default=f"baseline,{ORACLE}")
    ap.add_argument(
        "--predict", action="store_true", help="learning-curve prediction beside the oracle"
    )
    ap.add_argument("--fractions", default="0.25,0.5,0.75,1.0", help="with --predict")
    ap.add_argument(
        "--lever", action="append", default=[], help="NAME=override;override;... (classify.* keys)"
    )
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    from jointaug.config import load_config
    from jointaug.experiments.pipeline import RunOptions, run_experiment
    from jointaug.experiments.plan import make_plan
    from jointaug.experiments.rundir import RunDir
    from jointaug.sets.oracle_plan import make_oracle_plan_set

    out = Path(args.out)
    folds = [int(f) for f in args.folds.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    for lever in args.lever or ["base="]:
        name, _, spec = lever.partition("=")
        overrides = [o for o in spec.split(";") if o]
        cfg = load_config(args.profile, overrides + [f"classify.seeds={seeds}"])
        run = RunDir.create(out / name, args.dataset, cfg)
        sets = out / "_sets"
        for f in folds:
            src = sets / f"fold_{f}" / ORACLE
            make_oracle_plan_set(
                src,
                args.n,
                dataset=run.dataset,
                train_patients=run.splits.fold(f).train,
                fold=f,
                config=cfg,
                progress=False,
            )
            link = run.augment_dir(f, ORACLE)
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(src.resolve(), target_is_directory=True)
        t0 = time.perf_counter()
        plan = make_plan(run, args.methods, sizes=[args.n], folds=folds, curve_sizes=[])
        run_experiment(
            run,
            plan,
            RunOptions(progress=False, estimate=False),
            echo=lambda m, name=name: print(f"  [{name}] {m}", flush=True),
        )
        wall = time.perf_counter() - t0
        res = {}
        for p in sorted(run.path.glob("fold_*/classify/*/seed_*/result.json")):
            r = json.loads(p.read_text())
            res.setdefault(r["method"], []).append(r)
        b = {(r["fold"], r["seed"]): r for r in res.get("baseline", [])}
        line = [f"{name:<14}"]
        for m, rs in res.items():
            g = np.mean([r["test"]["gms"] for r in rs])
            gt = np.mean([r["test_tuned"]["gms"] for r in rs])
            ws = np.mean([r["wall_s"] for r in rs])
            sm = np.mean([r["samples"] for r in rs])
            line.append(f"{m} {g:.3f} (tuned {gt:.3f}, {ws:.0f} s, {sm:,.0f} samples)")
            if m != "baseline" and b:
                d = [
                    r["test"]["gms"] - b[(r["fold"], r["seed"])]["test"]["gms"]
                    for r in rs
                    if (r["fold"], r["seed"]) in b
                ]
                line.append(f"d={np.mean(d):+.3f}")
        if args.predict:
            line.append(_predicted(run, folds, args.fractions, args.n, res))
        line.append(f"wall {wall:.0f} s")
        print(" | ".join(line), flush=True)
        rows.append(line)
    print("\n".join(" | ".join(r) for r in rows))


def _paired(res: dict, key: str) -> float:
    """Mean over (fold, seed) of oracle - baseline test GMS (``key``: test or test_tuned)."""
    b = {(r["fold"], r["seed"]): r[key]["gms"] for r in res.get("baseline", [])}
    d = [r[key]["gms"] - b[(r["fold"], r["seed"])] for r in res.get(ORACLE, [])
         if (r["fold"], r["seed"]) in b]  # fmt: skip
    return float(np.mean(d)) if d else float("nan")


def _predicted(run, folds: list[int], fractions: str, n: int, res: dict) -> str:
    """The learning curve's predicted gain at +n images beside the oracle's measured one."""
    from jointaug.experiments.headroom import parse_fractions, run_headroom

    h = run_headroom(
        run, parse_fractions(fractions), folds, extras=[n], progress=False, echo=lambda m: None
    )
    cells = []
    for mode, key in (("tuned", "test_tuned"), ("default", "test")):
        g = h.predictions[mode].gains[0]
        cells.append(
            f"{'tuned' if mode == 'tuned' else '@0.5'}: predicted {g.estimate:+.3f} "
            f"({g.low:+.3f} to {g.high:+.3f}), oracle {_paired(res, key):+.3f}"
        )
    return "headroom at +" + f"{n}: " + "; ".join(cells)


if __name__ == "__main__":
    main()
