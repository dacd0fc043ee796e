"""Local vs Ray executor on one CPU grid: wall-time ratio and Ray's per-task overhead.

The same grid (phantom data, 2 folds, baseline + mp-perlin, 3 seeds, small networks
on one thread per task) runs twice from scratch: ``--executor local`` (one process,
in order) and ``--executor ray`` on a local Ray instance with ``--workers`` CPUs. Both
must give byte-identical tables. Printed: both wall times, their ratio, and Ray's
overhead per task, measured two ways:

- round trip: the mean time of a trivial Ray task submitted and waited for one at a
  time (scheduling + transfer, warm workers);
- grid slack: (workers x Ray wall - sum of the tasks' own wall times) / tasks, i.e. the
  worker time per task not spent inside the task (start-up, imports, scheduling, and
  idle time where the graph's dependencies leave a worker nothing to do).

Run it when the machine is otherwise idle (it is a timing):

    OMP_NUM_THREADS=1 python benchmarks/bench_executor.py --out /tmp/bench_executor

``--scale small`` runs a grid of about a minute to check the script.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import time
from pathlib import Path

SCALES = {
    # (patients, classify.max_samples, classify.patience, diffusion.train_steps, set size)
    "full": (16, 6000, 6000, 300, 64),
    "small": (8, 200, 200, 20, 16),
}


def overrides(scale: str) -> list[str]:
    _, max_samples, patience, steps, _ = SCALES[scale]
    return [
        "device=cpu",
        "threads=1",
        "split.folds=4",
        "classify.image_size=64",
        "classify.block_config=[2, 2]",
        "classify.growth_rate=8",
        "classify.init_features=16",
        "classify.batch_size=16",
        f"classify.max_samples={max_samples}",
        f"classify.patience_samples={patience}",
        "classify.eval_every_epochs=2",
        "classify.seeds=[0, 1, 2]",
        "diffusion.image_size=32",
        "diffusion.channels=[16, 32]",
        "diffusion.attention_levels=[false, true]",
        "diffusion.num_res_blocks=1",
        "diffusion.num_head_channels=16",
        "diffusion.batch_size=8",
        f"diffusion.train_steps={steps}",
        f"diffusion.sample_every={steps}",
        f"diffusion.checkpoint_every={steps}",
        "diffusion.sampler=ddim",
        "diffusion.fast_steps=10",
        "diffusion.sample_batch_size=16",
        "experiment.methods=[baseline, mp-perlin]",
        "experiment.mixtures=[]",
        "experiment.imbalance_baselines=[]",
        "experiment.curve_sizes=[]",
    ]


def one_run(executor: str, data: Path, out: Path, scale: str, workers: int) -> dict:
    from jointaug.config import load_config
    from jointaug.experiments.pipeline import RunOptions, run_experiment
    from jointaug.experiments.plan import make_plan
    from jointaug.experiments.rundir import RunDir

    shutil.rmtree(out, ignore_errors=True)
    cfg = load_config("paper", overrides(scale))
    run = RunDir.create(out, data, cfg)
    plan = make_plan(run, folds=[0, 1], sizes=[SCALES[scale][4]])
    t0 = time.perf_counter()
    opts = RunOptions(
        progress=False,
        estimate=False,
        executor=executor,
        ray_init={"num_cpus": workers} if executor == "ray" else None,
    )
    res = run_experiment(run, plan, opts, echo=lambda m: None)
    wall = time.perf_counter() - t0
    tables = {
        k: (run.results_dir / k).read_bytes() for k in ("table1.md", "table2.md", "metrics.csv")
    }
    return {"wall_s": wall, "tasks": res["task_wall_s"], "tables": tables}


def round_trip_s(workers: int, n: int = 50) -> float:
    import ray

    ray.init(
        num_cpus=workers,
        include_dashboard=False,
        object_store_memory=200 * 1024**2,
        log_to_driver=False,
    )
    try:
        f = ray.remote(lambda x: x)
        ray.get([f.remote(i) for i in range(2 * workers)])  # warm the workers
        t0 = time.perf_counter()
        for i in range(n):
            ray.get(f.remote(i))
        return (time.perf_counter() - t0) / n
    finally:
        ray.shutdown()


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_executor"))
    ap.add_argument("--scale", choices=sorted(SCALES), default="full")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    from jointaug.dataset.phantom import write_phantom

    data = args.out / "data"
    if not (data / "dataset.json").is_file():
        write_phantom(data, patients=SCALES[args.scale][0], size=64, seed=0, progress=False)
    local = one_run("local", data, args.out / "local", args.scale, args.workers)
    ray_ = one_run("ray", data, args.out / "ray", args.scale, args.workers)
    rt = round_trip_s(args.workers)
    n = len(ray_["tasks"])
    busy = sum(ray_["tasks"].values())
    slack = (args.workers * ray_["wall_s"] - busy) / n
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    summary = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.node()} {platform.processor()}",
        "commit": commit,
        "scale": args.scale,
        "workers": args.workers,
        "tasks": n,
        "local_wall_s": round(local["wall_s"], 1),
        "ray_wall_s": round(ray_["wall_s"], 1),
        "ratio": round(local["wall_s"] / ray_["wall_s"], 2),
        "tables_identical": local["tables"] == ray_["tables"],
        "task_sum_s_local": round(sum(local["tasks"].values()), 1),
        "task_sum_s_ray": round(busy, 1),
        "ray_round_trip_ms": round(rt * 1000, 2),
        "ray_slack_per_task_s": round(slack, 2),
    }
    print(json.dumps(summary, indent=1))
    print(
        f"local {local['wall_s']:.0f} s, ray ({args.workers} workers) {ray_['wall_s']:.0f} s: "
        f"{summary['ratio']:.2f}x (goal >= 1.6x); tables identical: {summary['tables_identical']}; "
        f"Ray overhead: {rt * 1000:.1f} ms per trivial task round trip, {slack:.1f} s of worker "
        f"time per grid task outside the task ({n} tasks)"
    )


if __name__ == "__main__":
    main()
