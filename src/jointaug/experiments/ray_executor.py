"""Run the task graph on a Ray cluster (``jointaug run --executor ray``).

The driver (the ``jointaug run`` process, which holds the run folder's lock) submits
each task when its dependencies have finished, as a Ray task with a resource request:
1 GPU per diffusion model and per augmentation-set shard, ``--gpus-per-classifier``
per classifier training, CPUs only for the natural source and merges (on a cluster
without GPUs every task asks for one CPU). Ray sets ``CUDA_VISIBLE_DEVICES`` for each
task; a task that asks for no GPU sees none. The driver itself never touches CUDA.

Each task runs :func:`jointaug.experiments.graph.run_task` from the run folder path,
with its output in ``RUN/logs/<task>.log``; a failure is reported with the task's own
error and log, the tasks that need it are not started, and the others run on. Tasks
are idempotent, so Ray's retries after a worker died are safe, and rerunning the
command (from any machine that sees the run folder) finishes what is left. The report
is written once, by the driver, when every task has finished.
"""

from __future__ import annotations

import contextlib
import os
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from jointaug.experiments.graph import run_task, task_done
from jointaug.experiments.kinds import KINDS, Task
from jointaug.experiments.rundir import RunDir

Echo = Callable[[str], None]
# tests: a file path; while that file names a task id, the worker running that task
# removes the file and dies at once (a worker killed mid-task, once)
FAULT_ENV = "JOINTAUG_TEST_FAULT"
OBJECT_STORE_BYTES = 200 * 1024**2  # /dev/shm is small in many containers


class GraphFailed(RuntimeError):
    """Some tasks failed; the message holds each one's error and log path."""


def execute(run_path: str, task: Task, cache=None) -> dict:
    """What a Ray worker runs: one task, its output to its log; errors returned, not raised.
    ``cache``: a classifier worker's image cache (kept across its trainings)."""
    log = RunDir(Path(run_path)).log_path(task.id)
    log.parent.mkdir(parents=True, exist_ok=True)
    fault = Path(os.environ[FAULT_ENV]) if os.environ.get(FAULT_ENV) else None
    with (
        open(log, "a", encoding="utf-8") as f,
        contextlib.redirect_stdout(f),
        contextlib.redirect_stderr(f),
    ):
        print(
            f"--- {task.id} on {os.uname().nodename} pid {os.getpid()} at {time.strftime('%H:%M:%S')}",
            flush=True,
        )
        if fault is not None and fault.is_file() and fault.read_text().strip() == task.id:
            fault.unlink()
            f.flush()
            os._exit(1)  # a worker killed mid-task
        try:
            return run_task(run_path, task, progress=True, cache=cache)
        except BaseException as exc:  # noqa: BLE001 - reported to the driver with the log
            traceback.print_exc(file=f)
            return {"id": task.id, "error": f"{type(exc).__name__}: {exc}", "log": str(log)}


class ClassifierWorker:
    """A long-lived Ray actor that trains classifiers one after another (one actor per GPU
    share, ``--gpus-per-classifier``), keeping its prepared images (``ImageCache``, cleared
    when the fold changes, as the local executor does) and its process (torch, MONAI,
    the CUDA context, cuDNN autotuning) across trainings. A Ray task per training would
    pay all of that again for each of the ~215 trainings. The same ``run_task`` runs
    either way, so the results are the local executor's."""

    def __init__(self) -> None:
        from jointaug.classify.data import ImageCache

        self.cache, self.fold = ImageCache(), None

    def run(self, run_path: str, task: Task) -> dict:
        fold = task.params.get("fold")
        if fold != self.fold:
            self.cache.clear()
            self.fold = fold
        return execute(run_path, task, cache=self.cache)


class _Pool:
    """The driver's classifier workers: an actor is started when a training is ready and
    none is free, up to as many as the cluster holds at once (``resources``: GPUs / the
    GPU share, or CPUs / the CPUs of one training); a ready training waits in the driver
    for the next free worker; workers are stopped as soon as no training is ready, so
    idle workers never hold GPU shares a diffusion model or a set shard is waiting for
    (no deadlock between the kinds)."""

    def __init__(self, ray, retries: int, resources: dict | None = None):
        self.ray, self.retries = ray, retries
        self.resources = resources or {}
        self.cls = ray.remote(ClassifierWorker)
        self.idle: list = []
        self.busy: dict = {}  # object ref -> actor

    def capacity(self, opts: dict) -> int:
        """How many workers of this request the cluster runs at once (at least 1)."""
        key, need = ("GPU", opts["num_gpus"]) if opts["num_gpus"] else ("CPU", opts["num_cpus"])
        have = float(self.resources.get(key, 0))
        return max(1, int(have / need + 1e-9)) if need else max(1, int(have))

    def submit(self, opts: dict, run_path: str, task: Task):
        """The training's object ref, or None when every worker the cluster holds is busy."""
        if self.idle:
            actor = self.idle.pop()
        elif len(self.busy) >= self.capacity(opts):
            return None
        else:
            actor = self.cls.options(
                num_cpus=opts["num_cpus"],
                num_gpus=opts["num_gpus"],
                max_restarts=self.retries,
                max_task_retries=self.retries,
            ).remote()
        ref = actor.run.remote(run_path, task)
        self.busy[ref] = actor
        return ref

    def release(self, ref, ok: bool) -> None:
        actor = self.busy.pop(ref, None)
        if actor is None:
            return
        if ok:
            self.idle.append(actor)
        else:
            self.ray.kill(actor)  # died more often than retries: never reused

    def stop_idle(self) -> None:
        for actor in self.idle:
            self.ray.kill(actor)
        self.idle.clear()


@contextlib.contextmanager
def cluster_session(address: str | None = None, init_kwargs: dict | None = None):
    """Ray, started (or joined) for a whole ``jointaug run``; yields the device type its
    GPU tasks run on (``cuda`` when the cluster has GPUs), which is what ``device: auto``
    means in the settings keys the driver checks (it never asks its own torch)."""
    ray, started = _init_ray(address, init_kwargs)
    try:
        yield "cuda" if ray.cluster_resources().get("GPU", 0) > 0 else "cpu"
    finally:
        if started:
            ray.shutdown()


def _init_ray(address: str | None, init_kwargs: dict | None):
    import ray

    if ray.is_initialized():
        return ray, False
    kw: dict = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:  # an existing cluster: "auto" (the one started on this node) or HOST:PORT
        kw["address"] = address
    else:  # a new instance of our own, never another user's cluster found on a shared node
        kw["address"] = "local"
        kw["object_store_memory"] = OBJECT_STORE_BYTES
    kw.update(init_kwargs or {})
    ray.init(**kw)
    return ray, True


def run_ray(
    run: RunDir,
    tasks: Sequence[Task],
    *,
    echo: Echo = print,
    address: str | None = None,
    init_kwargs: dict | None = None,
    retries: int = 2,
    heartbeat_s: float = 60.0,
) -> dict:
    """Run ``tasks`` on Ray (a new local instance, or the cluster at ``address``)."""
    from jointaug.runtime import assume_device_type

    with cluster_session(address, init_kwargs) as device_type, assume_device_type(device_type):
        return _schedule(ray_module(), run, tasks, echo, retries, heartbeat_s)


def ray_module():
    import ray

    return ray


class _Schedule:
    """The driver's bookkeeping: submit tasks whose dependencies finished, collect results."""

    def __init__(self, ray, run: RunDir, tasks: Sequence[Task], echo: Echo, retries: int):
        self.ray, self.run, self.echo, self.retries = ray, run, echo, retries
        self.gpus = ray.cluster_resources().get("GPU", 0) > 0
        self.remote = ray.remote(execute)
        self.pool = _Pool(ray, retries, ray.cluster_resources())
        self.not_done: set[str] = set()  # ready tasks found not finished (checked once)
        self.todo = {t.id: t for t in tasks if not KINDS[t.kind].final}
        self.total = len(self.todo)
        self.counts = {k: sum(t.kind == k for t in self.todo.values()) for k in KINDS}
        self.seen = dict.fromkeys(KINDS, 0)
        self.finished: set[str] = set()
        self.failed: dict[str, str] = {}
        self.blocked_ids: set[str] = set()
        self.running: dict = {}
        self.walls: dict[str, float] = {}

    def blocked(self, t: Task) -> bool:
        return any(d in self.failed or d in self.blocked_ids for d in t.deps)

    def submit_ready(self) -> None:
        for tid, t in list(self.todo.items()):
            if self.blocked(t):
                self.blocked_ids.add(tid)
                del self.todo[tid]
            elif all(d in self.finished for d in t.deps):
                if tid not in self.not_done and task_done(self.run, t):
                    del self.todo[tid]
                    self.finished.add(tid)
                    continue
                self.not_done.add(tid)
                opts = {
                    "num_cpus": t.num_cpus,
                    "num_gpus": t.num_gpus if self.gpus else 0,
                    "max_retries": self.retries,
                    "retry_exceptions": False,
                    "name": tid,
                }
                # an absolute path: workers on other nodes see the run folder at the same place
                path = str(self.run.path.resolve())
                if KINDS[t.kind].fold_cache:  # classifiers: long-lived workers
                    ref = self.pool.submit(opts, path, t)
                    if ref is None:
                        continue  # every worker busy: stays ready for the next free one
                else:
                    ref = self.remote.options(**opts).remote(path, t)
                del self.todo[tid]
                self.running[ref] = t
        self.pool.stop_idle()  # nothing ready for them: free their GPU shares

    def collect(self, ref) -> None:
        t = self.running.pop(ref)
        try:
            out = self.ray.get(ref)
            self.pool.release(ref, ok=True)
        except Exception as exc:  # noqa: BLE001 - e.g. the worker died more often than retries
            self.pool.release(ref, ok=False)
            out = {
                "id": t.id,
                "error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}",
                "log": str(self.run.log_path(t.id)),
            }
        if "error" in out:
            self.failed[t.id] = f"{out['error']}\n    log: {out['log']}"
            self.echo(f"ray: FAILED {t.id}: {out['error']} (log: {out['log']})")
            return
        self.finished.add(t.id)
        self.walls[t.id] = out.get("wall_s", 0.0)
        kind = KINDS[t.kind]
        if kind.result_line is not None:
            self.seen[kind.name] += 1
            if not out.get("skipped"):
                self.echo(
                    "ray: " + kind.result_line(t, out, self.seen[kind.name], self.counts[kind.name])
                )
        self.echo(
            f"ray: done {len(self.finished)}/{self.total}, running or queued {len(self.running)}, "
            f"waiting {len(self.todo)}: {t.id} ({out.get('wall_s', 0):.0f} s)"
        )

    def heartbeat(self) -> None:
        names = ", ".join(t.id for t in list(self.running.values())[:4])
        self.echo(
            f"ray: done {len(self.finished)}/{self.total}, running or queued {len(self.running)} "
            f"({names}), waiting {len(self.todo)}"
        )

    def raise_failures(self) -> None:
        if not (self.failed or self.blocked_ids):
            return
        lines = [f"  {tid}: {msg}" for tid, msg in self.failed.items()]
        if self.blocked_ids:
            lines.append(
                f"  not started because a task they need failed: {len(self.blocked_ids)} task(s)"
            )
        raise GraphFailed(
            f"{len(self.failed)} task(s) failed; fix the cause and rerun the same command "
            f"(finished tasks are kept):\n" + "\n".join(lines)
        )


def _schedule(
    ray, run: RunDir, tasks: Sequence[Task], echo: Echo, retries: int, heartbeat_s: float
) -> dict:
    s = _Schedule(ray, run, tasks, echo, retries)
    res = ray.cluster_resources()
    echo(
        f"ray: {s.total} tasks on {res.get('CPU', 0):g} CPUs"
        + (f", {res['GPU']:g} GPUs" if s.gpus else ", no GPU")
    )
    last_beat = time.monotonic()
    while s.todo or s.running:
        before = (len(s.todo), len(s.running))
        s.submit_ready()
        if not s.running:
            if s.todo and (len(s.todo), len(s.running)) != before:
                continue  # tasks whose deps were just found finished: submit them
            if s.todo:
                raise GraphFailed(
                    f"tasks wait on tasks that are not in the graph: {', '.join(s.todo)}"
                )
            break
        ready, _ = ray.wait(list(s.running), num_returns=1, timeout=heartbeat_s)
        for ref in ready:
            s.collect(ref)
        if not ready or time.monotonic() - last_beat >= heartbeat_s:
            s.heartbeat()
            last_beat = time.monotonic()
    s.pool.stop_idle()
    s.raise_failures()
    final = [t for t in tasks if KINDS[t.kind].final]
    walls = s.walls
    for t in final:  # the report: once, by the driver, when every task has finished
        if (line := KINDS[t.kind].stage_line(t)) is not None:
            echo(line)
    last = run_task(run, final[0]) if final else {}
    if final:
        walls[final[0].id] = last.get("wall_s", 0.0)
    return {**last, "task_wall_s": walls}
