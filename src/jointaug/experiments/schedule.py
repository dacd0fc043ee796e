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
        shown = " -> ".join(
            path if len(path) <= 6 else [*path[:3], f"... ({len(path) - 5} more)", *path[-2:]]
        )
        return "\n".join(
            [
                f"makespan: {h:.1f} h on {self.gpus} x {card}",
                f"critical path ({len(path)} tasks): {shown}",
                f"idle share per card: {idle}" if idle else "idle share per card: (no cards)",
            ]
        )


def _duration(task: TaskLike, packing_gain: float) -> float:
    est = float(task.est_s or 0.0)
    g = float(task.num_gpus)
    if 0 < g < 1:
        k = max(1, math.floor(1 / g + 1e-9))
        return est * k / max(packing_gain, 1e-9)
    return est


@dataclass
class _State:
    """The simulation's resources and clock."""

    free: list[float]  # free GPU fraction per card
    free_cpu: float
    busy: list[float]  # occupied GPU-seconds per card
    now: float = 0.0
    placed: dict[str, Placement] = field(default_factory=dict)
    running: list[tuple[float, int, str]] = field(default_factory=list)  # heap of (end, order, id)


def _check(tasks: Sequence[TaskLike], gpus: int) -> None:
    ids = {t.id for t in tasks}
    for t in tasks:
        if t.num_gpus > 1 or (t.num_gpus > 0 and gpus < 1):
            raise ValueError(
                f"task {t.id} asks for {t.num_gpus:g} GPU(s); {gpus} card(s) of 1 each"
            )
        missing = [d for d in t.deps if d not in ids]
        if missing:
            raise ValueError(f"task {t.id} depends on unknown task(s) {missing}")


def _try_start(t: TaskLike, order: int, st: _State, packing_gain: float) -> bool:
    """Start ``t`` now if a card (or the CPU pool) has room; True if started."""
    if t.num_gpus > 0:
        card = next((i for i, f in enumerate(st.free) if f >= t.num_gpus - 1e-9), None)
        if card is None:
            return False
        st.free[card] -= t.num_gpus
    else:
        if st.free_cpu < t.num_cpus - 1e-9 and st.running:
            return False
        card = None
        st.free_cpu -= t.num_cpus
    dur = _duration(t, packing_gain)
    st.placed[t.id] = Placement(t.id, st.now, st.now + dur, card)
    if card is not None:
        st.busy[card] += t.num_gpus * dur
    heapq.heappush(st.running, (st.now + dur, order, t.id))
    return True


def _finish_next(st: _State, by_id: dict[str, TaskLike]) -> list[str]:
    """Advance the clock to the next end of a task; free its resources; the ids ended."""
    end, _, tid = heapq.heappop(st.running)
    finished = [tid]
    while st.running and st.running[0][0] <= end + 1e-12:
        finished.append(heapq.heappop(st.running)[2])
    st.now = end
    for f in finished:
        p = st.placed[f]
        if p.card is not None:
            st.free[p.card] += by_id[f].num_gpus
        else:
            st.free_cpu += by_id[f].num_cpus
    return finished


def simulate(
    tasks: Sequence[TaskLike], gpus: int, *, cpus: int | None = None, packing_gain: float = 1.8
) -> Schedule:
    """Simulate ``tasks`` (in graph order; ``deps`` name other tasks) on ``gpus`` cards
    and ``cpus`` CPU slots (default 8 per card, at least 1). A GPU request above 1 card
    or any request on zero cards is an error (the run could never place it)."""
    _check(tasks, gpus)
    cpus = max(1, 8 * gpus) if cpus is None else cpus
    order = {t.id: i for i, t in enumerate(tasks)}
    by_id = {t.id: t for t in tasks}
    waiting = {t.id: len(set(t.deps)) for t in tasks}
    children: dict[str, list[str]] = {t.id: [] for t in tasks}
    for t in tasks:
        for d in set(t.deps):
            children[d].append(t.id)
    st = _State(free=[1.0] * gpus, free_cpu=float(cpus), busy=[0.0] * gpus)
    ready = [t.id for t in tasks if waiting[t.id] == 0]
    while ready or st.running:
        ready = [
            r
            for r in sorted(ready, key=order.__getitem__)
            if not _try_start(by_id[r], order[r], st, packing_gain)
        ]
        if not st.running:
            raise ValueError(f"tasks {ready[:3]} can never start (resources)")
        for f in _finish_next(st, by_id):
            for c in children[f]:
                waiting[c] -= 1
                if waiting[c] == 0:
                    ready.append(c)
    makespan = max((p.end_s for p in st.placed.values()), default=0.0)
    share = [min(1.0, b / makespan) if makespan > 0 else 0.0 for b in st.busy]
    return Schedule(makespan, gpus, st.placed, share, _critical_path(by_id, st.placed))


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
