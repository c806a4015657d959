"""The placement simulator core: free resources, a wait queue, departures.

Independent of gymnasium so heuristics, the environment and the command line
share one model of the cluster. Event-driven in simulated seconds:

* tasks arrive at their (load-scaled) arrival times and join a FIFO queue;
* the simulator presents the queued tasks one at a time (:attr:`current`) for a
  decision: :meth:`place` on a host where it fits, or :meth:`defer`;
* a queued task that fits no host right now is deferred automatically (asking a
  policy would be a wasted decision);
* when every queued task has been decided at the current time, the clock jumps
  to the next event: an arrival, a departure (at ``start + duration``), or a
  queued task running out of patience (``arrival + max_wait``), which rejects it.

GPUs follow openb's sharing model: each host has up to :data:`MAX_GPUS` GPUs of
1000 milli; a task takes ``gpu_milli`` from each of ``num_gpu`` GPUs. Absent GPUs
hold -1 so they never fit. Fit tests are numpy-vectorised over hosts, which
keeps a heuristic decision far below a millisecond.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import numpy as np

from .cluster import GPU_MILLI, MAX_GPUS, Cluster, Tasks


def gpu_allocation(gpu_free: np.ndarray, milli: float, count: int) -> np.ndarray:
    """The milli each GPU gives a task of ``count`` GPUs x ``milli`` each, per row of ``gpu_free``.

    Best fit inside a host: the ``count`` fullest GPUs that still hold ``milli``, lowest index first
    among equals, so whole GPUs stay whole for the tasks that need them. ``gpu_free`` is one host's
    GPUs or (hosts, GPUs); a row with fewer than ``count`` such GPUs gives only what they hold
    (callers check the fit first). Shared by :meth:`PlacementSim.place` and the policies that look
    one placement ahead, so that they see the GPUs the simulator will take.
    """
    if gpu_free.ndim == 1:  # one host, on every placement: the direct way is twice as fast
        alloc = np.zeros(len(gpu_free))
        if count > 0:
            candidates = np.flatnonzero(gpu_free >= milli)
            alloc[candidates[np.argsort(gpu_free[candidates], kind="stable")[:count]]] = milli
        return alloc
    alloc = np.zeros(gpu_free.shape)
    if count > 0:
        tightness = np.where(gpu_free >= milli, gpu_free, np.inf)
        chosen = np.argsort(tightness, axis=1, kind="stable")[:, :count]
        rows = np.arange(len(gpu_free))[:, None]
        alloc[rows, chosen] = np.where(np.isfinite(tightness[rows, chosen]), milli, 0.0)
    return alloc


@dataclass(frozen=True)
class TypicalTask:
    """The demand that fragmentation is measured against (the workload's median task)."""

    cpu: float
    mem: float
    gpu_milli: float

    @classmethod
    def of(cls, tasks: Tasks) -> TypicalTask:
        gpu = tasks.gpu_milli[tasks.num_gpu > 0]
        return cls(
            cpu=float(np.median(tasks.cpu)),
            mem=float(np.median(tasks.mem)),
            gpu_milli=float(np.median(gpu)) if len(gpu) else 0.0,
        )


@dataclass
class Outcomes:
    """Per-task results of an episode (index = task index in the workload)."""

    placed: np.ndarray  # bool
    rejected: np.ndarray  # bool: ran out of patience
    host: np.ndarray  # int, -1 if not placed
    wait: np.ndarray  # seconds from arrival to start (placed tasks)
    rtt_ms: np.ndarray  # RTT from origin to host (placed tasks)
    fragmentation: list[float] = field(default_factory=list)  # sampled at each placement
    decisions: int = 0  # policy decisions asked (placements + explicit defers)
    defers: int = 0


@dataclass(frozen=True)
class Releases:
    """Running tasks as parallel arrays (see :meth:`PlacementSim.releases`)."""

    end: np.ndarray  # seconds
    host: np.ndarray  # int
    cpu: np.ndarray
    mem: np.ndarray
    gpu: np.ndarray  # GPU milli in total (num_gpu * gpu_milli)


class PlacementSim:
    """One episode: a cluster, a workload, and the event loop between decisions."""

    def __init__(self, cluster: Cluster, tasks: Tasks, *, max_wait: float | None = None) -> None:
        if len(tasks) == 0:
            raise ValueError("an episode needs at least one task")
        self.cluster = cluster
        self.tasks = tasks
        self.max_wait = float(np.median(tasks.duration)) if max_wait is None else float(max_wait)
        if self.max_wait <= 0:
            raise ValueError(f"max_wait must be > 0, got {self.max_wait}")
        h = cluster.hosts
        self.n_hosts = len(h)
        self.cpu_free = h.cpu.astype(np.float64).copy()
        self.mem_free = h.mem.astype(np.float64).copy()
        self.gpu_free = np.where(np.arange(MAX_GPUS)[None, :] < h.gpus[:, None], float(GPU_MILLI), -1.0)
        self.host_rtt_ms = cluster.host_rtt_ms  # (n_regions, n_hosts)
        self.typical = TypicalTask.of(tasks)
        n = len(tasks)
        self.outcomes = Outcomes(
            placed=np.zeros(n, dtype=bool),
            rejected=np.zeros(n, dtype=bool),
            host=np.full(n, -1, dtype=np.int64),
            wait=np.zeros(n),
            rtt_ms=np.zeros(n),
        )
        self.clock = 0.0
        self.queue: list[int] = []
        self._cursor = 0  # queue[:_cursor] have been decided (deferred) at this clock
        self._next_arrival = 0
        self._running: list[tuple[float, int, int, np.ndarray]] = []  # (end, task, host, gpu alloc)
        self.current: int | None = None
        self._mask: np.ndarray | None = None
        #: sample fragmentation at each placement (rollout copies switch it off: nobody reads it there)
        self.track_fragmentation = True
        self._advance()

    def fork(self, future: Tasks | None = None) -> PlacementSim:
        """A copy of this episode's state for look-ahead, with the unknown future replaced by ``future``.

        The copy keeps the tasks that have arrived so far (queued, running and
        finished ones keep their indices, so hosts, queue and outcomes carry over)
        and drops every task that has not arrived yet: a planner must not see
        the real future. ``future`` (arrival times after :attr:`clock`) is
        appended instead, e.g. tasks sampled from the history by
        :mod:`novacron.placement.rollout`. Mutating the copy never touches this
        simulator. Fragmentation is not sampled in the copy.
        """
        known = self._next_arrival
        tasks = self.tasks.take(np.arange(known))
        if future is not None and len(future):
            if float(future.arrival[0]) < self.clock:
                raise ValueError("future tasks must arrive at or after the current clock")
            tasks = _concat_tasks(tasks, future)
        n = len(tasks)
        copy = object.__new__(PlacementSim)
        copy.cluster, copy.tasks, copy.max_wait = self.cluster, tasks, self.max_wait
        copy.n_hosts, copy.host_rtt_ms, copy.typical = self.n_hosts, self.host_rtt_ms, self.typical
        copy.cpu_free, copy.mem_free = self.cpu_free.copy(), self.mem_free.copy()
        copy.gpu_free = self.gpu_free.copy()
        out = self.outcomes
        extra = n - known
        copy.outcomes = Outcomes(
            placed=np.concatenate([out.placed[:known], np.zeros(extra, dtype=bool)]),
            rejected=np.concatenate([out.rejected[:known], np.zeros(extra, dtype=bool)]),
            host=np.concatenate([out.host[:known], np.full(extra, -1, dtype=np.int64)]),
            wait=np.concatenate([out.wait[:known], np.zeros(extra)]),
            rtt_ms=np.concatenate([out.rtt_ms[:known], np.zeros(extra)]),
            decisions=out.decisions,
            defers=out.defers,
        )
        copy.clock, copy.queue, copy._cursor = self.clock, list(self.queue), self._cursor
        copy._next_arrival = known
        copy._running = list(self._running)  # entries (and their alloc arrays) are never mutated
        copy.current, copy._mask = self.current, self._mask
        copy.track_fragmentation = False
        return copy

    # ----------------------------------------------------------------- queries

    @property
    def done(self) -> bool:
        return self.current is None

    @property
    def arrived(self) -> int:
        """How many tasks have arrived so far (tasks ``0 .. arrived - 1``): what a scheduler has seen."""
        return self._next_arrival

    def fits(self, task: int) -> np.ndarray:
        """Boolean per host: can ``task`` start there now?"""
        t = self.tasks
        ok = (self.cpu_free >= t.cpu[task]) & (self.mem_free >= t.mem[task])
        k = t.num_gpu[task]
        if k > 0:
            ok &= (self.gpu_free >= t.gpu_milli[task]).sum(axis=1) >= k
        return ok

    def mask(self) -> np.ndarray:
        """Feasible hosts for the current task (cached until the state changes)."""
        if self.current is None:
            return np.zeros(self.n_hosts, dtype=bool)
        if self._mask is None:
            self._mask = self.fits(self.current)
        return self._mask

    def fragmentation(self) -> float:
        """Share of free GPU (or CPU, on a GPU-less cluster) stranded where the typical task cannot go.

        A GPU's free share is stranded if the typical task's per-GPU demand does
        not fit in it or its host lacks the CPU/memory for the typical task
        (after Weng et al., ATC 2023). 0 means every free unit is usable.
        """
        typ = self.typical
        host_ok = (self.cpu_free >= typ.cpu) & (self.mem_free >= typ.mem)
        if typ.gpu_milli > 0 and (self.gpu_free > -1).any():
            free = np.clip(self.gpu_free, 0.0, None)
            total = free.sum()
            if total <= 0:
                return 0.0
            usable = free * ((self.gpu_free >= typ.gpu_milli) & host_ok[:, None])
            return float(1.0 - usable.sum() / total)
        total = self.cpu_free.sum()
        if total <= 0:
            return 0.0
        return float(1.0 - (self.cpu_free * host_ok).sum() / total)

    def releases(self) -> Releases:
        """The running tasks as arrays: end time, host, and the CPU, memory, GPU they give back."""
        run = self._running
        if not run:
            empty = np.zeros(0)
            return Releases(empty, np.zeros(0, dtype=np.int64), empty, empty, empty)
        t = self.tasks
        task = np.fromiter((r[1] for r in run), dtype=np.int64, count=len(run))
        return Releases(
            end=np.fromiter((r[0] for r in run), dtype=np.float64, count=len(run)),
            host=np.fromiter((r[2] for r in run), dtype=np.int64, count=len(run)),
            cpu=t.cpu[task],
            mem=t.mem[task],
            gpu=t.num_gpu[task] * t.gpu_milli[task],
        )

    # ----------------------------------------------------------------- actions

    def place(self, host: int) -> float:
        """Start the current task on ``host``; returns its RTT to origin (ms)."""
        task = self.current
        if task is None:
            raise RuntimeError("episode is over")
        if not 0 <= host < self.n_hosts or not self.mask()[host]:
            raise ValueError(f"task {task} does not fit on host {host}")
        t = self.tasks
        self.cpu_free[host] -= t.cpu[task]
        self.mem_free[host] -= t.mem[task]
        alloc = gpu_allocation(self.gpu_free[host], float(t.gpu_milli[task]), int(t.num_gpu[task]))
        self.gpu_free[host] -= alloc
        out = self.outcomes
        rtt = float(self.host_rtt_ms[t.origin[task], host])
        out.placed[task] = True
        out.host[task] = host
        out.wait[task] = self.clock - t.arrival[task]
        out.rtt_ms[task] = rtt
        out.decisions += 1
        heapq.heappush(self._running, (self.clock + float(t.duration[task]), task, host, alloc))
        self.queue.pop(self._cursor)
        if self.track_fragmentation:
            out.fragmentation.append(self.fragmentation())
        self._mask = None
        self._advance()
        return rtt

    def defer(self) -> None:
        """Leave the current task queued until the next event (it may run out of patience)."""
        if self.current is None:
            raise RuntimeError("episode is over")
        self.outcomes.decisions += 1
        self.outcomes.defers += 1
        self._cursor += 1
        self._mask = None
        self._advance()

    def reject(self) -> None:
        """Turn the current task away now (it leaves the queue and counts as rejected).

        For the score this is the same as deferring it until it runs out of
        patience, minus the repeated decisions; look-ahead uses it for tasks its
        base policy would never admit, which makes each simulated future cheaper.
        """
        task = self.current
        if task is None:
            raise RuntimeError("episode is over")
        self.outcomes.decisions += 1
        self.outcomes.rejected[task] = True
        self.queue.pop(self._cursor)
        self._mask = None
        self._advance()

    # ----------------------------------------------------------------- event loop

    def _advance(self) -> None:
        """Move to the next task that needs a decision, or end the episode."""
        t = self.tasks
        while True:
            while self._cursor < len(self.queue):
                task = self.queue[self._cursor]
                mask = self.fits(task)
                if mask.any():
                    self.current, self._mask = task, mask
                    return
                self._cursor += 1
            events = []
            if self._next_arrival < len(t):
                events.append(float(t.arrival[self._next_arrival]))
            if self._running:
                events.append(self._running[0][0])
            if self.queue:
                # the queue is in arrival order (appended as tasks arrive, filtered in order),
                # so its head is the first to run out of patience
                events.append(float(t.arrival[self.queue[0]]) + self.max_wait)
            if not events:
                self.current, self._mask = None, None
                return
            self.clock = max(self.clock, min(events))
            while self._running and self._running[0][0] <= self.clock:
                _end, task_index, host, alloc = heapq.heappop(self._running)
                self.cpu_free[host] += t.cpu[task_index]
                self.mem_free[host] += t.mem[task_index]
                self.gpu_free[host] += alloc
            while self._next_arrival < len(t) and t.arrival[self._next_arrival] <= self.clock:
                self.queue.append(self._next_arrival)
                self._next_arrival += 1
            keep = []
            for q in self.queue:
                if self.clock >= t.arrival[q] + self.max_wait:
                    self.outcomes.rejected[q] = True
                else:
                    keep.append(q)
            self.queue = keep
            self._cursor = 0


def _concat_tasks(a: Tasks, b: Tasks) -> Tasks:
    """``a`` followed by ``b`` (same fields, arrival order kept)."""
    return Tasks(
        names=a.names + b.names,
        cpu=np.concatenate([a.cpu, b.cpu]),
        mem=np.concatenate([a.mem, b.mem]),
        num_gpu=np.concatenate([a.num_gpu, b.num_gpu]),
        gpu_milli=np.concatenate([a.gpu_milli, b.gpu_milli]),
        arrival=np.concatenate([a.arrival, b.arrival]),
        duration=np.concatenate([a.duration, b.duration]),
        origin=np.concatenate([a.origin, b.origin]),
    )
