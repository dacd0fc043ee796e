"""The paper's grid as an explicit task graph: built from the table of task kinds
(``experiments/kinds.py``), estimated, described, and run.

:func:`run_task` executes one task from the run folder path alone, so any process that
sees the run folder (a Ray worker on another node) can run it. Every task is idempotent:
the stage functions skip finished work and resume interrupted work, which is what makes
an executor's retries and a rerun after a crash safe. The results are written once, by
``report``. The local executor (:func:`run_local`) runs the tasks in order in this
process; the Ray executor (``experiments/ray_executor.py``) schedules them on a Ray
cluster.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from jointaug.experiments.rundir import RunDir

if TYPE_CHECKING:
    from jointaug.experiments.estimate import Rates

from jointaug.experiments.kinds import KINDS, Building, GraphOptions, Task

Echo = Callable[[str], None]


def build_graph(run: RunDir, plan, options: GraphOptions | None = None) -> list[Task]:
    """The tasks of ``plan`` in an order the local executor runs them: each kind's
    ``start`` tasks, then per fold its ``fold`` tasks, then the ``end`` tasks."""
    g = Building(run, plan, options or GraphOptions())
    for kind in KINDS.values():
        if kind.build is not None and kind.scope == "start":
            kind.build(g, None)
    for fold in plan.folds:
        for kind in KINDS.values():
            if kind.build is not None and kind.scope == "fold":
                kind.build(g, fold)
    for kind in KINDS.values():
        if kind.build is not None and kind.scope == "end":
            kind.build(g, None)
    return g.tasks


# ---- estimates -------------------------------------------------------------------------


def estimate_tasks(run: RunDir, tasks: Sequence[Task], rates: Rates | None) -> list[Task]:
    """Tasks with ``est_s`` from the per-unit ``rates`` of ``experiments/estimate.py``
    (classifiers: at ``classify.max_samples``, the most a training can take)."""
    if not rates:
        return list(tasks)
    cfg = run.config
    out = []
    for t in tasks:
        est = KINDS[t.kind].estimate
        out.append(t.with_estimate(est(cfg, t, rates) if est is not None else None))
    return out


def _fmt_s(s: float | None) -> str:
    if s is None:
        return "?"
    return f"{s / 3600:.1f} h" if s > 5400 else f"{s / 60:.1f} min" if s > 90 else f"{s:.0f} s"


def describe_graph(run: RunDir, tasks: Sequence[Task], done: set[str] | None = None) -> str:
    """Every task: id, dependencies, resources, estimate (and [done])."""
    done = done or set()
    lines = [f"task graph: {len(tasks)} tasks ({len(done)} done)"]
    for t in tasks:
        deps = ", ".join(t.deps) if len(t.deps) <= 3 else f"{len(t.deps)} tasks"
        res = f"{t.num_cpus:g} CPU" + (f", {t.num_gpus:g} GPU" if t.num_gpus else "")
        mark = "  [done]" if t.id in done else ""
        lines.append(f"  {t.id:<44} {res:<16} ~{_fmt_s(t.est_s):<8} <- {deps or '-'}{mark}")
    return "\n".join(lines)


# ---- running one task -------------------------------------------------------------------


def task_done(run: RunDir, task: Task) -> bool:
    """Whether ``task``'s output is finished with the current settings (reads files only)."""
    kind = KINDS.get(task.kind)
    return kind is not None and kind.done(run, task)


def run_task(
    run_path: str | Path | RunDir, task: Task, *, progress: bool = True, cache=None
) -> dict:
    """Execute one task in the run folder ``run_path``; returns a small JSON-able summary.

    Idempotent: a finished task returns at once (``{"skipped": True}``)."""
    from jointaug.runtime import apply_runtime

    run = task_run(run_path if isinstance(run_path, RunDir) else RunDir(Path(run_path)), task)
    apply_runtime(run.config)  # threads, device set-up: the same in every executor
    t0 = time.perf_counter()
    if task_done(run, task):
        return {"id": task.id, "skipped": True, "wall_s": 0.0}
    kind = KINDS.get(task.kind)
    if kind is None:
        raise ValueError(f"unknown task kind {task.kind!r}")
    out: dict = {"id": task.id, "skipped": False, **kind.run(run, task, progress, cache)}
    out["wall_s"] = time.perf_counter() - t0
    return out


def task_run(run: RunDir, task: Task) -> RunDir:
    """The run as ``task`` sees it: a task that asks for no GPU (natural source, merges,
    the report) runs on the CPU when this process sees no CUDA device (a Ray worker
    without ``num_gpus`` gets ``CUDA_VISIBLE_DEVICES=''``), even under ``device: cuda``;
    every other task keeps the configured device (and fails clearly without one)."""
    import torch

    cfg = run.config
    if task.num_gpus == 0 and cfg.device.startswith("cuda") and not torch.cuda.is_available():
        return run.with_config(cfg.model_copy(update={"device": "cpu"}))
    return run


def stage_line(task: Task) -> str | None:
    """The line printed before ``task`` runs (None: none)."""
    return KINDS[task.kind].stage_line(task)


def stage_totals(task_wall_s: dict[str, float]) -> dict[str, float]:
    """Task wall times (ids ``kind/...``) summed per stage (``diffusion``, ``sets``,
    ``classifiers``, ...): work done, which on several workers exceeds the wall time."""
    out: dict[str, float] = {}
    for tid, s in task_wall_s.items():
        kind = KINDS.get(tid.split("/")[0])
        stage = kind.stage if kind is not None else tid.split("/")[0]
        out[stage] = out.get(stage, 0.0) + float(s)
    return out


def run_local(
    run: RunDir, tasks: Sequence[Task], *, progress: bool = True, echo: Echo = print
) -> dict:
    """Run ``tasks`` in order in this process (the default executor); returns report's summary."""
    from jointaug.classify.data import ImageCache

    counts = {k: sum(t.kind == k for t in tasks) for k in KINDS}
    seen = dict.fromkeys(KINDS, 0)
    cache, cache_fold = ImageCache(), None
    last: dict = {}
    walls: dict[str, float] = {}
    for task in tasks:
        kind = KINDS[task.kind]
        seen[kind.name] += 1
        if kind.header is not None and seen[kind.name] == 1:
            echo(kind.header)
        if (line := kind.stage_line(task)) is not None:
            echo(line)
        if kind.fold_cache and cache_fold != task.params["fold"]:
            cache.clear()
            cache_fold = task.params["fold"]
        summary = run_task(run, task, progress=progress, cache=cache)
        if kind.result_line is not None and not summary["skipped"]:
            echo(kind.result_line(task, summary, seen[kind.name], counts[kind.name]))
        walls[task.id] = summary.get("wall_s", 0.0)
        last = summary
    return {**last, "task_wall_s": walls}
