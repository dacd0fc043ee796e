"""Does augmentation help? GMS of the baseline, the imbalance baselines, MP-Perlin and
11k-Perlin over 5 folds of the built-in phantom, at a scale a 2-core CPU runs in under
an hour. Prints the plan, the wall time and Table 1 (nothing is asserted).

    python benchmarks/bench_augmentation.py [--out runs/bench_aug] [--set key=value ...]

It is the demo profile with more of everything that matters for the question: larger
augmentation sets, two seeds per fold, and longer diffusion training. Rerunning resumes.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from jointaug.config import load_config
from jointaug.dataset.format import is_complete
from jointaug.dataset.phantom import write_phantom
from jointaug.experiments.pipeline import make_plan, run_experiment
from jointaug.experiments.rundir import RunDir

OVERRIDES = [
    "experiment.methods=[baseline, mp-perlin, 11k-perlin]",
    "experiment.imbalance_baselines=[bce_pos_weight, focal, tuned_threshold]",
    "experiment.mixtures=[]",
    "experiment.sizes=[512]",
    "classify.seeds=[0, 1]",
    "diffusion.train_steps=800",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/bench_aug"))
    ap.add_argument("--set", action="append", default=[], help="extra config overrides")
    args = ap.parse_args()
    cfg = load_config("demo", OVERRIDES + args.set)
    data = args.out / "phantom"
    if not is_complete(data):
        write_phantom(data, cfg.phantom.patients, cfg.phantom.size, cfg.phantom.seed, progress=False)
    run = RunDir.create(args.out / "run", data, cfg)
    plan = make_plan(run)
    t0 = time.perf_counter()
    result = run_experiment(run, plan, progress=False,
                            echo=lambda m: print(m, flush=True) if not m.startswith("[") else None)  # fmt: skip
    print(f"\nwall time {time.perf_counter() - t0:.0f} s (this call; finished stages are skipped)")
    print(result["tables"])
    print(f"report: {result['report']}")


if __name__ == "__main__":
    main()
