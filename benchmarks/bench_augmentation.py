"""Does augmentation help? The ``cpu`` profile's grid on the built-in phantom, 5 folds x 3 seeds:
baseline, the imbalance baselines, the controls (oversample, oracle, forward) and MP,
MP-Perlin, 11k-Perlin with 512-image sets. Prints the plan, each stage's wall time, Table 1
and Table 2 with their paired statistics (every method against the baseline, tuned rows
against the tuned-threshold baseline, synthetic sets against oversample), the verdicts
and every set's fidelity record when there is one (nothing is asserted).

    python benchmarks/bench_augmentation.py [--out runs/bench_aug] [--methods a,b,...]
        [--dataset DIR] [--run DIR] [--set key=value ...] [--no-fidelity]
        [--executor ray [--shards N]]

``--executor ray`` runs the grid's task graph on a local Ray (one task per core: on this
2-core machine both cores work) or on ``--address``; the tables are the same as with the
default local executor (tests/test_ray_executor.py).

Rerunning resumes (finished trainings and sets are reused), so the grid can be run in
stages: first ``--methods baseline,bce_pos_weight,focal,tuned_threshold,oversample,oracle``
(no diffusion model), then the whole list.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from jointaug.config import load_config
from jointaug.dataset.format import is_complete
from jointaug.dataset.phantom import write_phantom
from jointaug.experiments.classification import config_with_methods, configured_methods
from jointaug.experiments.pipeline import RunOptions, make_plan, run_experiment
from jointaug.experiments.rundir import RunDir
from jointaug.experiments.stats import read_stats, verdict_lines


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", type=Path, default=Path("runs/bench_aug"))
    ap.add_argument(
        "--dataset", type=Path, default=None, help="dataset (default OUT/phantom, written)"
    )
    ap.add_argument("--run", type=Path, default=None, help="run folder (default OUT/run)")
    ap.add_argument("--profile", default="cpu")
    ap.add_argument(
        "--methods", default="", help="comma-separated methods (default: the profile's)"
    )
    ap.add_argument("--set", action="append", default=[], help="extra config overrides")
    ap.add_argument("--no-fidelity", action="store_true", help="skip the sets' fidelity records")
    ap.add_argument("--executor", default="local", choices=["local", "ray"])
    ap.add_argument("--address", default=None, help="Ray cluster address (default: a local Ray)")
    ap.add_argument("--shards", type=int, default=1, help="Ray: split each set into N tasks")
    ap.add_argument(
        "--retrain", action="store_true", help="replace outputs made with other settings"
    )
    args = ap.parse_args()
    cfg = load_config(args.profile, args.set)
    methods = args.methods or ",".join(configured_methods(cfg))
    cfg = config_with_methods(cfg, methods)
    data = args.dataset or args.out / "phantom"
    if not is_complete(data):
        write_phantom(
            data, cfg.phantom.patients, cfg.phantom.size, cfg.phantom.seed, progress=False
        )
    run = RunDir.create(args.run or args.out / "run", data, cfg)
    plan = make_plan(run, methods)
    t0 = time.perf_counter()
    opts = RunOptions(
        progress=False,
        executor=args.executor,
        shards=args.shards,
        ray_address=args.address,
        retrain=args.retrain,
    )
    result = run_experiment(run, plan, opts, echo=lambda m: print(m, flush=True))
    print(f"\nwall time {time.perf_counter() - t0:.0f} s (this call; finished stages are skipped)")
    print("stage wall times (s):", json.dumps(result.get("stage_times", {})))
    print(result["tables"])
    stats = [r for r in read_stats(run.results_dir / "stats.csv") if r["models"] == "single"]
    print("verdicts (single models, paired over folds x seeds):")
    for line in verdict_lines(stats):
        print("  " + line)
    if not args.no_fidelity:
        try:
            from jointaug.fidelity.measure import run_fidelity
        except ImportError:  # the fidelity module is not in this checkout
            run_fidelity = None
        if run_fidelity is not None:
            tf = time.perf_counter()
            run_fidelity(run, echo=lambda m: print(m, flush=True))
            from jointaug.experiments.report import write_report

            write_report(run)  # with the fidelity section
            print(f"fidelity records: {time.perf_counter() - tf:.0f} s")
    fid = run.results_dir / "fidelity.md"
    if fid.is_file():
        print("\nfidelity of every set:\n" + fid.read_text(encoding="utf-8"))
    print(f"report: {result['report']}")


if __name__ == "__main__":
    main()
