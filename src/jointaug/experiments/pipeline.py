"""The paper's whole experiment in one run folder: plan, then every stage in order.

Stages, each cached by its outputs (rerunning skips what is done, an interrupted
stage resumes):

1. natural source (only for ``11k`` sets): photos -> two-hand masks, ``RUN/natural_source``
2. per fold: the diffusion model (``fold_K/diffusion``), then the augmentation sets
   the methods need, each grown to the largest size any method takes
3. classifiers: every method x main size x seed, then the Fig. 6 curve sizes with
   the first seed only (the paper: "intermediate data points are run only once"), for
   the strategies the figure plots (``experiment.curve_methods``)
4. results: metrics.csv, table1.md, table2.md, figures and report.html, written once

The stages are the tasks of ``experiments/graph.py``, run in order here (``local``) or
on a Ray cluster (``ray``). Every output records the settings it was made with; when
the current config asks for other settings the run stops before any work and lists
every stale output and the changed keys; ``RunOptions(retrain=True)`` (``--retrain``)
moves them to ``RUN/stale/<timestamp>/`` and makes them afresh. Nothing finished is
deleted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from jointaug.experiments.classification import describe_plan
from jointaug.experiments.estimate import Rates
from jointaug.experiments.plan import Plan, calibrate, describe
from jointaug.experiments.rundir import RunDir
from jointaug.runtime import apply_runtime

Echo = Callable[[str], None]


def preflight(
    run: RunDir,
    plan: Plan,
    *,
    retrain: bool = False,
    natural: str | Path | None = None,
    echo: Echo = print,
) -> None:
    """Before any work: every user set must be usable, and every stale output is listed
    (StaleOutputError) unless ``retrain``, which moves them all to ``RUN/stale/<time>/``."""
    from jointaug.experiments.outputs import stale_outputs
    from jointaug.experiments.stages import user_set_problem
    from jointaug.outputs import handle_stale

    problems = [
        pr
        for f in plan.folds
        for s in plan.user_sets
        if (pr := user_set_problem(run, f, s, plan.sets[s]))
    ]
    for kind in plan._kinds():
        if kind.factory:
            try:
                kind.load_factory()
            except ValueError as exc:
                problems.append(str(exc))
    if problems:
        raise FileNotFoundError(
            "augmentation sets the methods need are not usable:\n  " + "\n  ".join(problems)
        )
    main, curve = plan.jobs()
    stale = stale_outputs(run, plan.folds, plan.sets, [*main, *curve], natural=natural)
    handle_stale(
        stale,
        run.path,
        retrain=retrain,
        echo=echo,
        hint="rerun the same command with --retrain",
        note=" (delete it when you no longer need them)",
    )


@dataclass(frozen=True)
class RunOptions:
    """How :func:`run_experiment` runs a plan (``jointaug run``'s flags)."""

    photos: str | Path | None = None  # an 11k Hands folder (default: the built-in stand-in)
    progress: bool = True
    estimate: bool = True  # calibrate and print the time estimate (local executor)
    executor: str = "local"  # local (in this process, in order) or ray
    retrain: bool = False  # move stale outputs aside instead of stopping
    shards: int = 1  # tasks per diffusion augmentation set
    gpus_per_classifier: float = 0.25  # Ray: the GPU share of one classifier training
    ray_address: str | None = None
    ray_init: dict | None = None
    ray_retries: int = 2


def build_tasks(
    run: RunDir, plan: Plan, options: RunOptions | None = None, rates: Rates | None = None
) -> list:
    """The task graph of ``plan`` (with time estimates when ``rates`` are given)."""
    from jointaug.experiments.graph import build_graph, estimate_tasks
    from jointaug.experiments.kinds import GraphOptions

    opt = options or RunOptions()
    graph = GraphOptions(
        shards=opt.shards,
        gpus_per_classifier=opt.gpus_per_classifier,
        photos=str(Path(opt.photos).resolve()) if opt.photos else None,
    )
    return estimate_tasks(run, build_graph(run, plan, graph), rates)


def run_experiment(
    run: RunDir, plan: Plan, options: RunOptions | None = None, *, echo: Echo = print
) -> dict:
    """Run every task of ``plan`` in ``run`` (holding the run folder's lock); return a
    summary with the results paths. ``options.executor``: ``local`` (in this process, in
    order) or ``ray`` (``experiments/ray_executor.py``)."""
    from jointaug.experiments.graph import stage_totals
    from jointaug.experiments.lock import run_lock

    opt = options or RunOptions()
    if opt.executor not in ("local", "ray"):
        raise ValueError(f"unknown executor {opt.executor!r} (local or ray)")
    t0 = time.perf_counter()
    with run_lock(run.path), _scheduler(opt):
        preflight(run, plan, retrain=opt.retrain, echo=echo)
        last = _execute(run, plan, opt, echo)
    task_wall_s = last.get("task_wall_s", {})
    wall = time.perf_counter() - t0
    stage_times = {**stage_totals(task_wall_s), "total": wall}
    _record_times(run, stage_times)
    return {
        "tables": last.get("tables", ""),
        "report": Path(last["report"]),
        "results": run.results_dir,
        "wall_s": wall,
        "task_wall_s": task_wall_s,
        "stage_times": stage_times,
    }


@contextmanager
def _scheduler(opt: RunOptions):
    """Ray: started (or joined) for the whole call, so that ``device: auto`` in the settings
    keys the driver checks (preflight, done tasks) means where the cluster runs its GPU
    tasks, not what the driver's own torch sees (``runtime.assume_device_type``)."""
    if opt.executor != "ray":
        yield
        return
    from jointaug.experiments.ray_executor import cluster_session
    from jointaug.runtime import assume_device_type

    with cluster_session(opt.ray_address, opt.ray_init) as dt, assume_device_type(dt):
        yield


def _execute(run: RunDir, plan: Plan, opt: RunOptions, echo: Echo) -> dict:
    """Describe the plan (and where to point TensorBoard), then run its tasks with the
    chosen executor (lock held)."""
    from jointaug.curves import tensorboard_hint

    local = opt.executor == "local"
    if local:  # the Ray driver sets up nothing: its tasks do, on their devices
        apply_runtime(run.config)
    # the Ray driver calibrates nothing: no torch.cuda call in the driver before tasks start
    rates = calibrate(run, plan) if opt.estimate and local else None
    echo(describe(run, plan, rates))
    tasks = build_tasks(run, plan, opt)
    main, curve = plan.jobs()
    echo(describe_plan(run, [*main, *curve]))
    echo(tensorboard_hint(run.path))
    if local:
        from jointaug.experiments.graph import run_local

        return run_local(run, tasks, progress=opt.progress, echo=echo)
    from jointaug.experiments.ray_executor import run_ray

    return run_ray(
        run,
        tasks,
        echo=echo,
        address=opt.ray_address,
        init_kwargs=opt.ray_init,
        retries=opt.ray_retries,
    )


def _record_times(run: RunDir, times: dict[str, float]) -> None:
    """Append this call's stage totals (tasks computed by this call; skipped ones count 0)
    to ``RUN/results/stage_times.json`` (a list, one entry per call)."""
    import json

    from jointaug.files import write_text_atomic

    path = run.stage_times_path
    old = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []
    old.append(
        {
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            **{k: round(v, 1) for k, v in times.items()},
        }
    )
    write_text_atomic(path, json.dumps(old, indent=1) + "\n")
