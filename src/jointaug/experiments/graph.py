"""The paper's grid as an explicit task graph.

::

    natural                      natural source (only for sets on natural hands)
    diffusion/K                  fold K's diffusion model
    set/K/NAME[/LO-HI]           augmentation set NAME of fold K (or one shard of it)
    merge/K/NAME                 the shards of a sharded set merged into one folder
    classify/K/METHOD_N/seed_S   one classifier training
    report                       metrics.csv, table1.md, table2.md, figures, report.html

Each task has explicit parameters (JSON-able), the ids it depends on, a resource
request (CPUs, GPUs) and an estimate of its time. :func:`run_task` executes one task
from the run folder path alone, so any process that sees the run folder (a Ray worker
on another node) can run it. Every task is idempotent: the stage functions skip
finished work and resume interrupted work, which is what makes an executor's retries
and a rerun after a crash safe. The results are written once, by ``report``.

The local executor (:func:`run_local`) runs the tasks in order in this process; the
Ray executor (``experiments/ray_executor.py``) schedules them on a Ray cluster.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from jointaug.experiments.rundir import RunDir

if TYPE_CHECKING:
    from jointaug.experiments.estimate import Rates

Echo = Callable[[str], None]


@dataclass(frozen=True)
class Task:
    id: str
    kind: str  # natural | diffusion | set | merge | classify | report
    params: dict = field(default_factory=dict, compare=False, hash=False)
    deps: tuple[str, ...] = ()
    num_cpus: float = 1.0
    num_gpus: float = 0.0  # what the Ray executor asks for when the cluster has GPUs
    est_s: float | None = None

    def with_estimate(self, est_s: float | None) -> Task:
        return Task(self.id, self.kind, self.params, self.deps, self.num_cpus, self.num_gpus, est_s)


@dataclass(frozen=True)
class GraphOptions:
    shards: int = 1  # shards per augmentation set (diffusion sets)
    gpus_per_classifier: float = 0.25
    gpus_per_set: float = 1.0
    photos: str | None = None
    natural_dir: str | None = None


def _job_params(job) -> dict:
    return {"fold": job.fold, "method": job.method.name, "size": job.size, "seed": job.seed}


def shard_batch(set_dir: Path, configured: int | str) -> int:
    """The sampling batch all shards of a set use."""
    from jointaug.diffusion.sample import CPU_SAMPLE_BATCH
    from jointaug.sets.diffusion import recorded_batch

    return recorded_batch(set_dir) or (CPU_SAMPLE_BATCH if configured == "auto" else int(configured))


def build_graph(run: RunDir, plan, options: GraphOptions | None = None) -> list[Task]:
    """The tasks of ``plan`` in an order the local executor runs them (today's order)."""
    from jointaug.sets.diffusion import shard_ranges
    from jointaug.sets.registry import set_kind

    opt = options or GraphOptions()
    cfg = run.config
    tasks: list[Task] = []
    nat = ("natural",) if plan.needs_natural else ()
    if plan.needs_natural:
        tasks.append(Task("natural", "natural", {"photos": opt.photos, "natural_dir": opt.natural_dir}))
    set_done: dict[tuple[int, str], str] = {}
    for fold in plan.folds:
        if plan.needs_diffusion:
            tasks.append(Task(f"diffusion/{fold}", "diffusion", {"fold": fold}, num_gpus=1.0))
        for name, n in plan.sets.items():
            kind = set_kind(name)
            if kind is None:
                continue  # a user's own set: checked before the run, nothing to make
            deps = (*(nat if kind.needs_natural else ()),
                    *((f"diffusion/{fold}",) if kind.needs_diffusion else ()))  # fmt: skip
            base = {"fold": fold, "name": name, "n": n, "natural_dir": opt.natural_dir}
            gpus = opt.gpus_per_set if kind.needs_diffusion else 0.0
            if kind.needs_diffusion and opt.shards > 1:
                # the shards of one set must agree on its batch: the one it was started
                # with, else the configured one (a fixed default instead of ``auto``)
                b = shard_batch(run.augment_dir(fold, name), cfg.diffusion.sample_batch_size)
                ranges = shard_ranges(n, opt.shards, b)
                ids = []
                for lo, hi in ranges:
                    tid = f"set/{fold}/{name}/{lo}-{hi}"
                    params = {**base, "shard": [lo, hi], "batch_size": b}
                    tasks.append(Task(tid, "set", params, deps, num_gpus=gpus))
                    ids.append(tid)
                merge = f"merge/{fold}/{name}"
                tasks.append(Task(merge, "merge", {**base, "ranges": [list(r) for r in ranges]}, tuple(ids)))
                set_done[(fold, name)] = merge
            else:
                tid = f"set/{fold}/{name}"
                tasks.append(Task(tid, "set", base, deps, num_gpus=gpus))
                set_done[(fold, name)] = tid
    main, curve = plan.jobs()
    for job in [*main, *curve]:
        deps = tuple(set_done[(job.fold, s)] for s, _ in job.method.mix if (job.fold, s) in set_done)
        tid = f"classify/{job.fold}/{job.method.dir_name(job.size)}/seed_{job.seed}"
        tasks.append(Task(tid, "classify", _job_params(job), deps, num_gpus=opt.gpus_per_classifier))
    show_tuned = True if any(not m.trains for m in plan.methods) else None
    tasks.append(Task("report", "report", {"show_tuned": show_tuned}, tuple(t.id for t in tasks), num_cpus=1.0))
    return tasks


# ---- estimates -------------------------------------------------------------------------


def estimate_tasks(run: RunDir, tasks: Sequence[Task], rates: Rates | None) -> list[Task]:
    """Tasks with ``est_s`` from the per-unit ``rates`` of ``experiments/estimate.py``
    (classifiers: at ``classify.max_samples``, the most a training can take)."""
    if not rates:
        return list(tasks)
    cfg = run.config
    out = []
    for t in tasks:
        est = None
        if t.kind == "diffusion" and rates.diffusion_step_s:
            est = cfg.diffusion.train_steps * rates.diffusion_step_s
        elif t.kind == "set" and rates.sample_s_per_image:
            lo, hi = t.params.get("shard") or (0, t.params["n"])
            est = (hi - lo) * rates.sample_s_per_image
        elif t.kind == "classify" and rates.classifier_s_per_sample:
            est = cfg.classify.max_samples * rates.classifier_s_per_sample
        out.append(t.with_estimate(est))
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


def _job(params: dict):
    from jointaug.experiments.classification import Job
    from jointaug.experiments.methods import resolve_method

    return Job(int(params["fold"]), resolve_method(params["method"]), int(params["size"]), int(params["seed"]))


def task_done(run: RunDir, task: Task) -> bool:
    """Whether ``task``'s output is finished with the current settings (reads files only)."""
    from jointaug.dataset.format import is_complete, read_dataset

    p = task.params
    if task.kind == "natural":
        from jointaug.experiments.stages import natural_dir

        return is_complete(natural_dir(run, p.get("natural_dir")))
    if task.kind == "diffusion":
        from jointaug.diffusion.train import is_trained
        from jointaug.experiments.stages import expected_model

        key, _ = expected_model(run, p["fold"], run.config)
        return is_trained(run.diffusion_dir(p["fold"]), run.config.diffusion.train_steps, key)
    if task.kind in ("set", "merge"):
        out = run.augment_dir(p["fold"], p["name"])
        if is_complete(out) and len(read_dataset(out).cases) >= p["n"]:
            return True
        if task.kind == "set" and p.get("shard"):
            from jointaug.sets.diffusion import shard_dir

            return is_complete(shard_dir(out, p["shard"][0], min(p["shard"][1], p["n"])))
        return False
    if task.kind == "classify":
        from jointaug.experiments.classification import is_done, job_key

        job = _job(p)
        return is_done(job.dir(run), job_key(run, job))
    return False


def run_task(run_path: str | Path | RunDir, task: Task, *, progress: bool = True, cache=None) -> dict:
    """Execute one task in the run folder ``run_path``; returns a small JSON-able summary.

    Idempotent: a finished task returns at once (``{"skipped": True}``)."""
    from jointaug.runtime import apply_runtime, resolve_device

    run = run_path if isinstance(run_path, RunDir) else RunDir(Path(run_path))
    cfg = run.config
    apply_runtime(cfg)  # threads, device set-up: the same in every executor
    p = task.params
    t0 = time.perf_counter()
    if task.kind != "report" and task_done(run, task):
        return {"id": task.id, "skipped": True, "wall_s": 0.0}
    out: dict = {"id": task.id, "skipped": False}
    if task.kind == "natural":
        from jointaug.experiments.stages import natural_dir
        from jointaug.natural.source import build_natural_source

        photos = p.get("photos") or cfg.natural.source or None
        size = int(run.dataset.image(run.dataset.cases[0]).shape[0])
        build_natural_source(natural_dir(run, p.get("natural_dir")), Path(photos) if photos else None,
                             size, cfg.natural, seed=cfg.phantom.seed, progress=progress,
                             device=resolve_device(cfg.device))  # fmt: skip
    elif task.kind == "diffusion":
        from jointaug.experiments.stages import train_fold_diffusion

        train_fold_diffusion(run, p["fold"], progress=progress)
    elif task.kind == "set":
        from jointaug.experiments.stages import make_named_set

        shard = tuple(p["shard"]) if p.get("shard") else None
        make_named_set(run, p["fold"], p["name"], p["n"], natural=p.get("natural_dir"), progress=progress,
                       shard=shard, batch_size=p.get("batch_size"))  # fmt: skip
    elif task.kind == "merge":
        from jointaug.experiments.stages import merge_fold_set

        merge_fold_set(run, p["fold"], p["name"], p["n"], [tuple(r) for r in p["ranges"]], p.get("natural_dir"))
    elif task.kind == "classify":
        from jointaug.experiments.classification import train_job

        r = train_job(run, _job(p), progress=progress, cache=cache)
        out["result"] = {k: r[k] for k in ("best_val_gms", "samples", "stop_reason", "wall_s")}
        out["result"]["test_gms"] = r["test"]["gms"]
    elif task.kind == "report":
        from jointaug.experiments.report import write_report
        from jointaug.experiments.tables import write_results

        paths = write_results(run, show_tuned=p.get("show_tuned"))
        out["tables"] = "\n".join(paths[k].read_text(encoding="utf-8") for k in ("table1", "table2"))
        out["report"] = str(write_report(run))
    else:
        raise ValueError(f"unknown task kind {task.kind!r}")
    out["wall_s"] = time.perf_counter() - t0
    return out


def classify_line(task: Task, summary: dict, i: int, n: int) -> str:
    """The one line a finished classifier training prints (as the sequential loop did)."""
    job, r = _job(task.params), summary["result"]
    return (f"[{i}/{n}] {job.label()}: val GMS {r['best_val_gms']:.3f}, test GMS {r['test_gms']:.3f} "
            f"({r['samples']:,} samples, {r['stop_reason']}, {r['wall_s']:.0f} s)")  # fmt: skip


def stage_line(task: Task, n_sets: dict[str, int] | None = None) -> str | None:
    p = task.params
    if task.kind == "natural":
        return "stage: natural source"
    if task.kind == "diffusion":
        return f"stage: diffusion model, fold {p['fold']}"
    if task.kind == "set":
        shard = f" shard {p['shard'][0]}-{p['shard'][1]}" if p.get("shard") else ""
        return f"stage: augmentation set {p['name']} ({p['n']} images){shard}, fold {p['fold']}"
    if task.kind == "merge":
        return f"stage: merge the shards of {p['name']}, fold {p['fold']}"
    if task.kind == "report":
        return "stage: report"
    return None


def run_local(run: RunDir, tasks: Sequence[Task], *, progress: bool = True, echo: Echo = print) -> dict:
    """Run ``tasks`` in order in this process (the default executor); returns report's summary."""
    from jointaug.classify.data import ImageCache

    n_cls = sum(t.kind == "classify" for t in tasks)
    i_cls = 0
    cache, cache_fold = ImageCache(), None
    last: dict = {}
    walls: dict[str, float] = {}
    for task in tasks:
        if task.kind == "classify":
            i_cls += 1
            if i_cls == 1:
                echo("stage: classifiers")
            if cache_fold != task.params["fold"]:
                cache.clear()
                cache_fold = task.params["fold"]
        elif (line := stage_line(task)) is not None:
            echo(line)
        summary = run_task(run, task, progress=progress, cache=cache)
        if task.kind == "classify" and not summary["skipped"]:
            echo(classify_line(task, summary, i_cls, n_cls))
        walls[task.id] = summary.get("wall_s", 0.0)
        last = summary
    return {**last, "task_wall_s": walls}
