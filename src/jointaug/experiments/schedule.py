"""A schedule, not a sum: the task graph simulated on N cards.

:func:`simulate` places tasks the way the Ray executor does: every task whose
dependencies are finished is *ready*; ready tasks are started in graph order (the order
the executor submits them) on the first card with room for their GPU request, and a
later task may start before an earlier one that does not fit (greedy list scheduling
with backfilling). CPU-only tasks (natural source, merges, the report) share a pool of
``cpus`` slots. Each task takes its estimated time (``est_s``), except fractional-GPU
tasks (classifiers at ``gpus_per_classifier`` < 1): ``k = floor(1 / g)`` of them share a
card, and together they run ``packing_gain`` times as fast as one alone, so each takes
``est_s * k / packing_gain`` -- counted as if the card were always full (conservative
when it is not). ``packing_gain`` is measured by ``benchmarks/gpu_check.py`` (concurrent
trainings) or assumed (1.8 for 4 DenseNet121 trainings without CUDA MPS).

Returns the makespan, each card's busy share and the critical path (the chain of
dependencies that ends last). Pure Python; no torch, no run folder.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


class TaskLike(Protocol):
    id: str
    deps: tuple[str, ...]
    num_cpus: float
    num_gpus: float
    est_s: float | None


@dataclass(frozen=True)
class Placement:
    id: str
    start_s: float
    end_s: float
    card: int | None  # None: on the CPU pool


@dataclass
class Schedule:
    makespan_s: float
    gpus: int
    placements: dict[str, Placement] = field(default_factory=dict)
    busy_share: list[float] = field(default_factory=list)  # per card: occupied GPU-time / makespan
    critical_path: list[str] = field(default_factory=list)

    def summary(self, card: str = "GPU") -> str:
        h = self.makespan_s / 3600
        idle = ", ".join(f"card {i}: {1 - b:.0%}" for i, b in enumerate(self.busy_share))
        path = self.critical_path
        shown = " -> ".join(path if len(path) <= 6 else [*path[:3], f"... ({len(path) - 5} more)", *path[-2:]])
        return "\n".join([
            f"makespan: {h:.1f} h on {self.gpus} x {card}",
            f"critical path ({len(path)} tasks): {shown}",
            f"idle share per card: {idle}" if idle else "idle share per card: (no cards)",
        ])


def _duration(task: TaskLike, packing_gain: float) -> float:
    est = float(task.est_s or 0.0)
    g = float(task.num_gpus)
    if 0 < g < 1:
        k = max(1, math.floor(1 / g + 1e-9))
        return est * k / max(packing_gain, 1e-9)
    return est


def simulate(tasks: Sequence[TaskLike], gpus: int, *, cpus: int | None = None,
             packing_gain: float = 1.8) -> Schedule:  # fmt: skip
    """Simulate ``tasks`` (in graph order; ``deps`` name earlier tasks) on ``gpus`` cards
    and ``cpus`` CPU slots (default 8 per card, at least 1). A GPU request above 1 card
    or any request on zero cards is an error (the run could never place it)."""
    cpus = max(1, 8 * gpus) if cpus is None else cpus
    order = {t.id: i for i, t in enumerate(tasks)}
    by_id = {t.id: t for t in tasks}
    for t in tasks:
        if t.num_gpus > 1 or (t.num_gpus > 0 and gpus < 1):
            raise ValueError(f"task {t.id} asks for {t.num_gpus:g} GPU(s); {gpus} card(s) of 1 each")
        missing = [d for d in t.deps if d not in by_id]
        if missing:
            raise ValueError(f"task {t.id} depends on unknown task(s) {missing}")
    free = [1.0] * gpus
    free_cpu = float(cpus)
    waiting = {t.id: len(set(t.deps)) for t in tasks}
    children: dict[str, list[str]] = {t.id: [] for t in tasks}
    for t in tasks:
        for d in set(t.deps):
            children[d].append(t.id)
    ready = [t.id for t in tasks if waiting[t.id] == 0]
    running: list[tuple[float, int, str]] = []  # (end, order, id)
    placed: dict[str, Placement] = {}
    busy = [0.0] * gpus
    now = 0.0
    while ready or running:
        started = []
        for tid in sorted(ready, key=order.__getitem__):
            t = by_id[tid]
            if t.num_gpus > 0:
                card = next((i for i in range(gpus) if free[i] >= t.num_gpus - 1e-9), None)
                if card is None:
                    continue
                free[card] -= t.num_gpus
            else:
                if free_cpu < t.num_cpus - 1e-9 and running:
                    continue
                card = None
                free_cpu -= t.num_cpus
            dur = _duration(t, packing_gain)
            placed[tid] = Placement(tid, now, now + dur, card)
            if card is not None:
                busy[card] += t.num_gpus * dur
            heapq.heappush(running, (now + dur, order[tid], tid))
            started.append(tid)
        ready = [r for r in ready if r not in set(started)]
        if not running:
            raise ValueError(f"tasks {ready[:3]} can never start (resources)")
        end, _, tid = heapq.heappop(running)
        finished = [tid]
        while running and running[0][0] <= end + 1e-12:
            finished.append(heapq.heappop(running)[2])
        now = end
        for f in finished:
            p = placed[f]
            if p.card is not None:
                free[p.card] += by_id[f].num_gpus
            else:
                free_cpu += by_id[f].num_cpus
            for c in children[f]:
                waiting[c] -= 1
                if waiting[c] == 0:
                    ready.append(c)
    makespan = max((p.end_s for p in placed.values()), default=0.0)
    share = [min(1.0, b / makespan) if makespan > 0 else 0.0 for b in busy]
    return Schedule(makespan, gpus, placed, share, _critical_path(by_id, placed))


def _critical_path(by_id: dict[str, TaskLike], placed: dict[str, Placement]) -> list[str]:
    """From the task that ends last, back through the dependency that ended last."""
    if not placed:
        return []
    tid = max(placed, key=lambda i: (placed[i].end_s, i))
    path = [tid]
    while by_id[tid].deps:
        tid = max(by_id[tid].deps, key=lambda d: placed[d].end_s)
        path.append(tid)
    return path[::-1]
