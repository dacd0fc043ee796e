"""The kinds of task of the grid: one :class:`TaskKind` entry of :data:`KINDS` per kind.

::

    natural                      natural source (only for sets on natural hands)
    diffusion/K                  fold K's diffusion model
    set/K/NAME[/LO-HI]           augmentation set NAME of fold K (or one shard of it)
    merge/K/NAME                 the shards of a sharded set merged into one folder
    classify/K/METHOD_N/seed_S   one classifier training
    report                       metrics.csv, table1.md, table2.md, figures, report.html

An entry says how the kind adds its tasks to the graph (:class:`Task`: explicit JSON-able
parameters, the ids it depends on, a resource request), whether a task's output is
current (``experiments/outputs.py`` declares it, :func:`jointaug.outputs.check` decides),
how it runs, its time estimate and the lines it prints. ``experiments/graph.py`` and
both executors iterate this table: a new kind is one entry plus its functions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jointaug.dataset.format import is_complete
from jointaug.experiments.rundir import RunDir
from jointaug.outputs import Status, check

if TYPE_CHECKING:
    from jointaug.config import Config
    from jointaug.experiments.estimate import Rates


@dataclass(frozen=True)
class Task:
    id: str
    kind: str  # a key of KINDS: natural | diffusion | set | merge | classify | report
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


def shard_batch(set_dir: Path, configured: int | str, n: int, shards: int) -> tuple[int, int | str]:
    """(alignment, batch parameter) of the shards of a set of ``n``: the batch it was
    started with, else the configured one; for ``auto`` the card's auto batch at most
    the power of two the shards are aligned to (``sets.diffusion.auto_batch``: the first
    shard to start records it in ``augmentation.json``, all use it). The driver decides
    nothing about the card (it may have none)."""
    from jointaug.sets.diffusion import auto_batch, shard_alignment
    from jointaug.sets.writer import recorded_batch

    b = recorded_batch(set_dir) or (None if configured == "auto" else int(configured))
    if b is not None:
        return b, b
    g = shard_alignment(n, shards)
    return g, auto_batch(g)


# ---- the kinds of task ------------------------------------------------------------------


@dataclass
class Building:
    """The graph while :func:`build_graph` adds tasks to it."""

    run: RunDir
    plan: Any
    opt: GraphOptions
    tasks: list[Task] = field(default_factory=list)
    set_task: dict[tuple[int, str], str] = field(
        default_factory=dict
    )  # the task that finishes a set

    def add(self, task: Task) -> None:
        self.tasks.append(task)


@dataclass(frozen=True)
class TaskKind:
    """Everything the graph and its executors know of one kind of task.

    ``build(graph, fold)`` adds its tasks (ids, params, dependencies, resources): once
    before the folds (``scope="start"``), once per fold (``"fold"``) or once after them
    (``"end"``), in the order of :data:`KINDS`. ``done(run, task)``: its output is
    current (reads files only). ``run(run, task, progress, cache)``: does the work and
    returns what it adds to the task's summary. ``estimate(config, task, rates)``:
    seconds, or None. ``stage_line(task)``: the line printed before it runs; ``header``:
    a line printed once before the first task of the kind; ``result_line(task, summary,
    i, n)``: the line printed after each one computed. ``stage``: the stage its wall
    time counts to (``results/stage_times.json``). ``final``: run once, last, by the
    driver. ``fold_cache``: its tasks share an image cache within a fold."""

    name: str
    stage: str
    done: Callable[[RunDir, Task], bool]
    run: Callable[[RunDir, Task, bool, Any], dict]
    build: Callable[[Building, int | None], None] | None = None
    scope: str = "start"
    estimate: Callable[[Config, Task, Rates], float | None] | None = None
    stage_line: Callable[[Task], str | None] = lambda task: None
    header: str | None = None
    result_line: Callable[[Task, dict, int, int], str] | None = None
    final: bool = False
    fold_cache: bool = False


# natural: the natural source (two-hand masks), for the sets on natural hands


def _build_natural(g: Building, fold: int | None) -> None:
    if g.plan.needs_natural:
        g.add(
            Task("natural", "natural", {"photos": g.opt.photos, "natural_dir": g.opt.natural_dir})
        )


def _natural_done(run: RunDir, task: Task) -> bool:
    from jointaug.experiments.outputs import natural_output

    return check(natural_output(run, task.params.get("natural_dir"))).current


def _run_natural(run: RunDir, task: Task, progress: bool, cache) -> dict:
    from jointaug.natural.source import build_natural_source
    from jointaug.runtime import resolve_device

    cfg, p = run.config, task.params
    photos = p.get("photos") or cfg.natural.source or None
    size = int(run.dataset.image(run.dataset.cases[0]).shape[0])
    build_natural_source(
        run.natural_dir(p.get("natural_dir")),
        Path(photos) if photos else None,
        size,
        cfg.natural,
        seed=cfg.phantom.seed,
        progress=progress,
        device=resolve_device(cfg.device),
    )
    return {}


# diffusion: one fold's diffusion model


def _build_diffusion(g: Building, fold: int | None) -> None:
    if g.plan.needs_diffusion:
        g.add(Task(f"diffusion/{fold}", "diffusion", {"fold": fold}, num_gpus=1.0))


def _diffusion_done(run: RunDir, task: Task) -> bool:
    from jointaug.experiments.outputs import model_output

    return check(model_output(run, task.params["fold"])).current


def _run_diffusion(run: RunDir, task: Task, progress: bool, cache) -> dict:
    from jointaug.experiments.stages import train_fold_diffusion

    train_fold_diffusion(run, task.params["fold"], progress=progress)
    return {}


def _estimate_diffusion(cfg: Config, task: Task, rates: Rates) -> float | None:
    return cfg.diffusion.train_steps * rates.diffusion_step_s if rates.diffusion_step_s else None


# set: an augmentation set of one fold (or one shard of it); merge: a sharded set's shards


def _build_sets(g: Building, fold: int | None) -> None:
    from jointaug.sets.registry import set_kind
    from jointaug.sets.writer import shard_ranges

    nat = ("natural",) if g.plan.needs_natural else ()
    for name, n in g.plan.sets.items():
        kind = set_kind(name)
        if kind is None:
            continue  # a user's own set: checked before the run, nothing to make
        deps = (
            *(nat if kind.needs_natural else ()),
            *((f"diffusion/{fold}",) if kind.needs_diffusion else ()),
            *(g.set_task[(fold, d)] for d in kind.depends_on),  # the sets it reads (made first)
        )
        base = {"fold": fold, "name": name, "n": n, "natural_dir": g.opt.natural_dir}
        gpus = g.opt.gpus_per_set if kind.needs_diffusion else 0.0
        if not (kind.needs_diffusion and g.opt.shards > 1):
            g.add(Task(f"set/{fold}/{name}", "set", base, deps, num_gpus=gpus))
            g.set_task[(fold, name)] = f"set/{fold}/{name}"
            continue
        # the shards of one set must agree on its batch: the one it was started
        # with, else the configured one, else (auto) the one the first shard records
        align, b = shard_batch(
            g.run.augment_dir(fold, name), g.run.config.diffusion.sample_batch_size, n, g.opt.shards
        )
        ranges = shard_ranges(n, g.opt.shards, align)
        ids = [f"set/{fold}/{name}/{lo}-{hi}" for lo, hi in ranges]
        for tid, (lo, hi) in zip(ids, ranges, strict=True):
            g.add(
                Task(tid, "set", {**base, "shard": [lo, hi], "batch_size": b}, deps, num_gpus=gpus)
            )
        merge = f"merge/{fold}/{name}"
        g.add(Task(merge, "merge", {**base, "ranges": [list(r) for r in ranges]}, tuple(ids)))
        g.set_task[(fold, name)] = merge


def _set_done(run: RunDir, task: Task) -> bool:
    from jointaug.experiments.outputs import set_output
    from jointaug.sets.writer import shard_dir

    p = task.params
    state = check(set_output(run, p["fold"], p["name"], p["n"], natural=p.get("natural_dir")))
    if state.current:
        return True
    if task.kind == "set" and p.get("shard") and state.status is not Status.STALE:
        lo, hi = p["shard"]
        return is_complete(shard_dir(run.augment_dir(p["fold"], p["name"]), lo, min(hi, p["n"])))
    return False


def _run_set(run: RunDir, task: Task, progress: bool, cache) -> dict:
    from jointaug.experiments.stages import make_named_set

    p = task.params
    shard = tuple(p["shard"]) if p.get("shard") else None
    make_named_set(
        run,
        p["fold"],
        p["name"],
        p["n"],
        natural=p.get("natural_dir"),
        progress=progress,
        shard=shard,
        batch_size=p.get("batch_size"),
    )
    return {}


def _estimate_set(cfg: Config, task: Task, rates: Rates) -> float | None:
    if not rates.sample_s_per_image:
        return None
    lo, hi = task.params.get("shard") or (0, task.params["n"])
    return (hi - lo) * rates.sample_s_per_image


def _set_line(task: Task) -> str:
    p = task.params
    shard = f" shard {p['shard'][0]}-{p['shard'][1]}" if p.get("shard") else ""
    return f"stage: augmentation set {p['name']} ({p['n']} images){shard}, fold {p['fold']}"


def _run_merge(run: RunDir, task: Task, progress: bool, cache) -> dict:
    from jointaug.experiments.stages import merge_fold_set

    p = task.params
    merge_fold_set(
        run, p["fold"], p["name"], p["n"], [tuple(r) for r in p["ranges"]], p.get("natural_dir")
    )
    return {}


# classify: one classifier training


def _job_params(job) -> dict:
    return {"fold": job.fold, "method": job.method.name, "size": job.size, "seed": job.seed}


def _job(params: dict):
    from jointaug.experiments.jobs import Job
    from jointaug.experiments.methods import resolve_method

    return Job(
        int(params["fold"]),
        resolve_method(params["method"]),
        int(params["size"]),
        int(params["seed"]),
    )


def _build_classify(g: Building, fold: int | None) -> None:
    main, curve = g.plan.jobs()
    for job in [*main, *curve]:
        deps = tuple(
            g.set_task[(job.fold, s)] for s, _ in job.method.mix if (job.fold, s) in g.set_task
        )
        tid = f"classify/{job.fold}/{job.method.dir_name(job.size)}/seed_{job.seed}"
        g.add(Task(tid, "classify", _job_params(job), deps, num_gpus=g.opt.gpus_per_classifier))


def _classify_done(run: RunDir, task: Task) -> bool:
    from jointaug.experiments.outputs import job_done

    return job_done(run, _job(task.params))


def _run_classify(run: RunDir, task: Task, progress: bool, cache) -> dict:
    from jointaug.experiments.classification import train_job

    r = train_job(run, _job(task.params), progress=progress, cache=cache)
    result = {k: r[k] for k in ("best_val_gms", "samples", "stop_reason", "wall_s")}
    result["test_gms"] = r["test"]["gms"]
    return {"result": result}


def _estimate_classify(cfg: Config, task: Task, rates: Rates) -> float | None:
    return (
        cfg.classify.max_samples * rates.classifier_s_per_sample
        if rates.classifier_s_per_sample
        else None
    )


def classify_line(task: Task, summary: dict, i: int, n: int) -> str:
    """The one line a finished classifier training prints (as the sequential loop did)."""
    job, r = _job(task.params), summary["result"]
    return (
        f"[{i}/{n}] {job.label()}: val GMS {r['best_val_gms']:.3f}, test GMS {r['test_gms']:.3f} "
        f"({r['samples']:,} samples, {r['stop_reason']}, {r['wall_s']:.0f} s)"
    )


# report: metrics.csv, the tables, figures and report.html, written once at the end


def _build_report(g: Building, fold: int | None) -> None:
    show_tuned = True if any(not m.trains for m in g.plan.methods) else None
    g.add(
        Task(
            "report",
            "report",
            {"show_tuned": show_tuned},
            tuple(t.id for t in g.tasks),
            num_cpus=1.0,
        )
    )


def _run_report(run: RunDir, task: Task, progress: bool, cache) -> dict:
    from jointaug.experiments.report import write_report
    from jointaug.experiments.tables import write_results

    paths = write_results(run, show_tuned=task.params.get("show_tuned"))
    tables = "\n".join(paths[k].read_text(encoding="utf-8") for k in ("table1", "table2"))
    return {"tables": tables, "report": str(write_report(run))}


KINDS: dict[str, TaskKind] = {
    k.name: k
    for k in (
        TaskKind(
            "natural",
            "natural source",
            _natural_done,
            _run_natural,
            _build_natural,
            "start",
            stage_line=lambda t: "stage: natural source",
        ),
        TaskKind(
            "diffusion",
            "diffusion",
            _diffusion_done,
            _run_diffusion,
            _build_diffusion,
            "fold",
            _estimate_diffusion,
            lambda t: f"stage: diffusion model, fold {t.params['fold']}",
        ),
        TaskKind("set", "sets", _set_done, _run_set, _build_sets, "fold", _estimate_set, _set_line),
        TaskKind(
            "merge",
            "sets",
            _set_done,
            _run_merge,  # built with the shards of its set
            stage_line=lambda t: (
                f"stage: merge the shards of {t.params['name']}, fold {t.params['fold']}"
            ),
        ),
        TaskKind(
            "classify",
            "classifiers",
            _classify_done,
            _run_classify,
            _build_classify,
            "end",
            _estimate_classify,
            header="stage: classifiers",
            result_line=classify_line,
            fold_cache=True,
        ),
        TaskKind(
            "report",
            "report",
            lambda run, task: False,
            _run_report,
            _build_report,
            "end",
            stage_line=lambda t: "stage: report",
            final=True,
        ),
    )
}
