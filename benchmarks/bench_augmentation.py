"""Does augmentation help? The ``cpu`` profile's grid on the built-in phantom, 5 folds x 3 seeds:
baseline, the imbalance baselines, the controls (oversample, oracle, forward) and MP,
MP-Perlin, 11k-Perlin with 512-image sets. Prints the plan, each stage's wall time, Table 1
and Table 2 with their paired statistics (patient cluster bootstrap on pooled out-of-fold
predictions, experiments/stats.py), the verdict lines and every set's fidelity record when
there is one (nothing is asserted).

    python benchmarks/bench_augmentation.py [--out runs/bench_aug] [--methods a,b,...]
        [--dataset DIR] [--run DIR] [--set key=value ...] [--no-fidelity]
        [--executor ray [--shards N]] [--results-name NAME]
    python benchmarks/bench_augmentation.py --confirm [--datasets 3] [--results-name NAME]

``--results-name NAME`` copies the run's ``results/{oof,stats,metrics}.csv`` (and
``verdicts.txt``, ``profile.sha256``) into ``docs/results/NAME/``, so every figure in the
docs can point to a committed file (``jointaug stats docs/results/NAME/oof.csv`` recomputes
every table and verdict from it).

``--confirm`` runs the profile unchanged (no ``--set``, no ``--methods``) on fresh phantom
datasets whose seeds come from :data:`CONFIRM_SEEDS` (never used for development; the
development phantom is the profile's ``phantom.seed``), one run folder each under
``OUT/confirm/``, and reports each dataset and the pooled result. Pooled: the OOF predictions
of all datasets together, each dataset its own set of clusters (patient ids prefixed by the
dataset; folds renumbered so each dataset's fold keeps its own seed redraw), patients of all
datasets resampled together (:func:`jointaug.experiments.oof.merge`). Each run records the
resolved profile's hash (``results/profile.sha256``; printed as ``frozen profile: <hash>``):
the same hash on every dataset is the evidence that the settings were frozen.

``--executor ray`` runs the grid's task graph on a local Ray (one task per core) or on
``--address``; the tables are the same as with the default local executor.

Rerunning resumes (finished trainings and sets are reused), so the grid can be run in
stages: first ``--methods baseline,bce_pos_weight,focal,tuned_threshold,oversample,oracle``
(no diffusion model), then the whole list.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from jointaug.config import load_config
from jointaug.dataset.format import is_complete
from jointaug.dataset.phantom import write_phantom
from jointaug.experiments.classification import config_with_methods, configured_methods
from jointaug.experiments.pipeline import RunOptions, run_experiment
from jointaug.experiments.plan import make_plan
from jointaug.experiments.provenance import profile_hash, read_profile_hash
from jointaug.experiments.rundir import RunDir
from jointaug.experiments.stats import read_stats
from jointaug.experiments.verdicts import verdict_block

CONFIRM_SEEDS = (2001, 2002, 2003, 2004, 2005)  # phantom seeds for confirmation only (1001 was
# seen once, by a demo-profile smoke test of --confirm: retired so no result was ever looked at)
DOCS_RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"
COPIED = ("oof.csv", "stats.csv", "metrics.csv", "verdicts.txt", "profile.sha256")


def _args() -> argparse.Namespace:
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
    ap.add_argument(
        "--results-name", default=None, help="copy the results CSVs to docs/results/NAME/"
    )
    ap.add_argument(
        "--confirm", action="store_true", help="the profile unchanged on fresh phantoms"
    )
    ap.add_argument("--datasets", type=int, default=3, help="--confirm: how many fresh phantoms")
    args = ap.parse_args()
    if args.confirm and (args.set or args.methods or args.dataset or args.run):
        ap.error("--confirm runs the profile unchanged: no --set, --methods, --dataset or --run")
    if not 1 <= args.datasets <= len(CONFIRM_SEEDS):
        ap.error(f"--datasets: 1 to {len(CONFIRM_SEEDS)}")
    return args


def run_one(args, cfg, data: Path, run_dir: Path, phantom_seed: int | None = None) -> RunDir:
    """The grid of ``cfg`` on dataset ``data`` in ``run_dir`` (a phantom written there first
    if missing, with ``phantom_seed`` or the profile's); prints tables and verdicts."""
    if not is_complete(data):
        ph = cfg.phantom
        seed = ph.seed if phantom_seed is None else phantom_seed
        write_phantom(data, ph.patients, ph.size, seed, progress=False)
    run = RunDir.create(run_dir, data, cfg)
    plan = make_plan(run, ",".join(configured_methods(cfg)))
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
    print(verdict_block(read_stats(run.results_dir / "stats.csv")))
    print(f"frozen profile: {read_profile_hash(run)}")
    print(f"report: {result['report']}")
    return run


def fidelity(run: RunDir) -> None:
    try:
        from jointaug.fidelity.measure import run_fidelity
    except ImportError:  # the fidelity module is not in this checkout
        return
    tf = time.perf_counter()
    run_fidelity(run, echo=lambda m: print(m, flush=True))
    from jointaug.experiments.report import write_report

    write_report(run)  # with the fidelity section
    print(f"fidelity records: {time.perf_counter() - tf:.0f} s")
    fid = run.results_dir / "fidelity.md"
    if fid.is_file():
        print("\nfidelity of every set:\n" + fid.read_text(encoding="utf-8"))


def copy_results(folder: Path, name: str) -> Path:
    """Copy a results folder's CSVs (and verdicts, profile hash) to docs/results/NAME/."""
    dest = DOCS_RESULTS / name
    dest.mkdir(parents=True, exist_ok=True)
    for f in COPIED:
        if (folder / f).is_file():
            shutil.copy2(folder / f, dest / f)
    print(f"results copied to {dest}")
    return dest


def confirm(args, cfg) -> None:
    """The frozen profile on ``args.datasets`` fresh phantoms, each and pooled."""
    from jointaug.experiments.oof import collect_run, merge, write_oof
    from jointaug.experiments.tables import write_tables

    seeds = CONFIRM_SEEDS[: args.datasets]
    if cfg.phantom.seed in seeds:
        raise SystemExit(f"the profile's phantom seed {cfg.phantom.seed} is a confirmation seed")
    root = args.out / "confirm"
    runs = {}
    for seed in seeds:
        print(f"\n=== confirmation dataset: phantom seed {seed} ===")
        runs[f"phantom{seed}"] = run_one(
            args, cfg, root / f"phantom_{seed}", root / f"run_{seed}", phantom_seed=seed
        )  # the config itself unchanged (same frozen-profile hash): only the data differ
        if args.results_name:  # each dataset's evidence as soon as it is complete
            copy_results(runs[f"phantom{seed}"].results_dir, f"{args.results_name}/phantom{seed}")
    hashes = {name: read_profile_hash(r) for name, r in runs.items()}
    print("frozen profile:", ", ".join(f"{n} {h}" for n, h in hashes.items()))
    if len(set(hashes.values())) != 1:
        print(
            "warning: the runs' resolved configs differ (a run folder reused with other settings?)"
        )
    pooled = root / "pooled"
    data = merge({name: collect_run(r) for name, r in runs.items()})
    write_oof(data, pooled / "oof.csv")
    paths = write_tables(data, pooled, list(cfg.experiment.methods), True)
    (pooled / "profile.sha256").write_text(next(iter(hashes.values())) + "\n")
    print(f"\n=== pooled over {len(runs)} datasets (each its own clusters) ===")
    print(verdict_block(read_stats(paths["stats"]), ("single", "ensemble")))
    if args.results_name:
        copy_results(pooled, f"{args.results_name}/pooled")


def main() -> None:
    args = _args()
    cfg = load_config(args.profile, [] if args.confirm else args.set)
    if args.confirm:
        print(f"frozen profile {args.profile}: {profile_hash(cfg)} (before the dataset is set)")
        confirm(args, cfg)
        return
    cfg = config_with_methods(cfg, args.methods or ",".join(configured_methods(cfg)))
    run = run_one(args, cfg, args.dataset or args.out / "phantom", args.run or args.out / "run")
    if not args.no_fidelity:
        fidelity(run)
    if args.results_name:
        copy_results(run.results_dir, args.results_name)


if __name__ == "__main__":
    main()
