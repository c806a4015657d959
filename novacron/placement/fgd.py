"""The measure behind fragmentation gradient descent (FGD), the scheduler published with openb.

Weng et al., "Beware of Fragmentation: Scheduling GPU-Sharing Workloads with Fragmentation
Gradient Descent" (USENIX ATC 2023) released the Alibaba cluster this benchmark runs on, and FGD
is their answer to its problem: tasks that ask for a fraction of a GPU leave slivers of GPUs
behind that the tasks still to come cannot use, so GPUs sit idle while tasks wait. Researchers
comparing placement policies on openb expect it as a baseline, beside the paper's others
(best fit, dot product, random, which :mod:`.heuristics` has).

The measure. A host's *fragment* with respect to one kind of task is the free GPU milli on it
that this kind could not use: all of it when the task does not fit on the host at all (too
little CPU, memory or GPU), else the free milli on the GPUs that hold less than the task's
per-GPU demand. A host's *expected fragment* weighs the kinds by how often they occur in the
workload. FGD places each task on the host where placing it raises the expected fragment the
least (the "gradient"), ties broken by best fit: ``fgd`` in :mod:`.heuristics`.

Two choices of ours, both where the paper leaves the setting to the deployment:

* The workload's mix of kinds is what the scheduler has seen so far in the episode (tasks
  grouped by their exact CPU, memory, GPU count and per-GPU milli), not the whole trace: the
  paper takes it from history, and a scheduler only has its own. The first decisions of an
  episode therefore see a thin sample.
* Tasks that ask for no GPU are left out of the mix: they can use no GPU on any host, so every
  free GPU is a fragment for them wherever a task goes, and they would not change any choice.
  (A CPU-only task being *placed* is still judged by the GPU kinds it would starve of CPU.)

Two differences from the authors' simulator (hkust-adsl/kubernetes-scheduler-simulator), where
ours is simpler and deterministic: there, a fractional-GPU task also goes to the GPU inside the
host that FGD prefers, while here the simulator picks the GPUs (the fullest that fit,
:func:`.state.gpu_allocation`) and FGD scores each host with exactly those GPUs taken; and there,
the change is mapped through a sigmoid onto Kubernetes' integer node scores (0-100), so hosts
whose changes are close tie and Kubernetes picks among them at random, while here the exact change
is kept and only exact ties go to best fit. Memory is checked beside CPU (it rarely binds on openb).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .state import PlacementSim, gpu_allocation


@dataclass(frozen=True)
class TaskKinds:
    """Kinds of GPU task and their share of the workload (``weight`` sums to 1, or is empty)."""

    cpu: np.ndarray
    mem: np.ndarray
    num_gpu: np.ndarray
    gpu_milli: np.ndarray
    weight: np.ndarray

    @classmethod
    def empty(cls) -> TaskKinds:
        nothing = np.zeros(0)
        return cls(nothing, nothing, nothing, nothing, nothing)


class KindCounter:
    """Counts the kinds of the GPU tasks that have arrived, as a scheduler sees them come in."""

    def __init__(self) -> None:
        self._index: dict[tuple[float, float, int, float], int] = {}
        self._demand: list[tuple[float, float, int, float]] = []
        self._count: list[int] = []
        self._seen = 0
        self._kinds = TaskKinds.empty()

    def update(self, sim: PlacementSim) -> TaskKinds:
        """Count the tasks that arrived since the last call; the mix so far."""
        t, arrived = sim.tasks, sim.arrived
        if arrived == self._seen:
            return self._kinds
        known, counted = len(self._demand), False
        for i in range(self._seen, arrived):
            if t.num_gpu[i] == 0:
                continue
            key = (float(t.cpu[i]), float(t.mem[i]), int(t.num_gpu[i]), float(t.gpu_milli[i]))
            slot = self._index.setdefault(key, len(self._demand))
            if slot == len(self._demand):
                self._demand.append(key)
                self._count.append(0)
            self._count[slot] += 1
            counted = True
        self._seen = arrived
        if counted:  # (only CPU tasks arrived: the same mix)
            k = self._kinds
            if len(self._demand) > known:
                cpu, mem, num_gpu, gpu_milli = np.asarray(self._demand, dtype=np.float64).T
            else:
                cpu, mem, num_gpu, gpu_milli = k.cpu, k.mem, k.num_gpu, k.gpu_milli
            count = np.asarray(self._count, dtype=np.float64)
            self._kinds = TaskKinds(cpu, mem, num_gpu, gpu_milli, count / count.sum())
        return self._kinds


def expected_fragment(
    cpu_free: np.ndarray, mem_free: np.ndarray, gpu_free: np.ndarray, kinds: TaskKinds
) -> np.ndarray:
    """Per host (row), the free GPU milli the workload's kinds could not use, weighted by share.

    ``gpu_free`` is (hosts, GPUs) with -1 for absent GPUs, as in :class:`PlacementSim`.
    """
    if len(kinds.weight) == 0:
        return np.zeros(len(cpu_free))
    holding, unusable = _holdings(gpu_free, kinds.gpu_milli)
    free = np.clip(gpu_free, 0.0, None).sum(axis=1)
    return _weighted_stranded(cpu_free, mem_free, free, holding, unusable, kinds)


def _holdings(gpu_free: np.ndarray, gpu_milli: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per host and kind: how many GPUs hold the kind's milli, and the free milli on those that do
    not. (Whole milli in float64: the sums are exact, whatever their order.)"""
    holds = gpu_free[:, :, None] >= gpu_milli[None, None, :]  # (hosts, GPUs, kinds)
    free = np.clip(gpu_free, 0.0, None)
    return holds.sum(axis=1), (free[:, :, None] * ~holds).sum(axis=1)


def _whole_milli_holdings(gpu_free: np.ndarray, gpu_milli: np.ndarray) -> tuple[np.ndarray, ...]:
    """:func:`_holdings`, faster on a few rows, and each row's total free milli.

    The counts and the sums over a host's GPUs come from one small matrix product per row. That
    is exact here only because the free milli are whole numbers (every partial sum of a few
    thousand milli is a whole number float64 holds exactly, so the order of the additions, which
    BLAS chooses, cannot matter); the weighted sum over kinds, with fractional weights, stays in
    :func:`_weighted_stranded`.
    """
    free = np.maximum(gpu_free, 0.0)
    counted = np.empty((len(gpu_free), 2, gpu_free.shape[1]))  # per row: ones, then the free milli
    counted[:, 0], counted[:, 1] = 1.0, free
    holds = (gpu_free[:, :, None] >= gpu_milli[None, None, :]).astype(np.float64)
    held = np.matmul(counted, holds)  # per row: the GPUs that hold each milli, and their free milli
    total = free.sum(axis=1)
    return held[:, 0], total[:, None] - held[:, 1], total


def _weighted_stranded(
    cpu_free: np.ndarray,
    mem_free: np.ndarray,
    gpu_free_total: np.ndarray,
    holding: np.ndarray,
    unusable: np.ndarray,
    kinds: TaskKinds,
) -> np.ndarray:
    """Per host, the stranded milli of each kind (all free GPU where the kind does not fit, else
    the free milli on GPUs too small for it) weighted by the kind's share."""
    fits = (
        (cpu_free[:, None] >= kinds.cpu[None, :])
        & (mem_free[:, None] >= kinds.mem[None, :])
        & (holding >= kinds.num_gpu[None, :])
    )
    stranded = np.where(fits, unusable, gpu_free_total[:, None])
    # (a row-wise sum, not a matrix product: BLAS may round a row differently by where it falls in
    # its blocks, and equal hosts must score exactly alike for ties to go to best fit)
    return (stranded * kinds.weight[None, :]).sum(axis=1)


def free_after_placing(sim: PlacementSim, task: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each host's free CPU, memory and GPUs as if ``task`` were placed on it (rows are hosts).

    The GPUs taken are the ones :meth:`PlacementSim.place` takes (:func:`.state.gpu_allocation`).
    Rows of hosts where the task does not fit are meaningless.
    """
    t = sim.tasks
    gpu = sim.gpu_free - gpu_allocation(sim.gpu_free, float(t.gpu_milli[task]), int(t.num_gpu[task]))
    return sim.cpu_free - t.cpu[task], sim.mem_free - t.mem[task], gpu


def fragment_increase(sim: PlacementSim, kinds: TaskKinds, hosts: np.ndarray | None = None) -> np.ndarray:
    """How much placing the current task on each host raises that host's expected fragment.

    For every host, or only for ``hosts`` (indices; the result is in their order): a policy
    needs it only where the task fits, which at high load is a few hosts of many.
    """
    rows = slice(None) if hosts is None else hosts
    before = expected_fragment(sim.cpu_free[rows], sim.mem_free[rows], sim.gpu_free[rows], kinds)
    cpu, mem, gpu = free_after_placing(sim, sim.current)
    return expected_fragment(cpu[rows], mem[rows], gpu[rows], kinds) - before


class FragmentTracker:
    """:func:`fragment_increase` for one episode, at a cost that scales to whole clusters.

    A host's rise in expected fragment depends on its own row alone (free CPU, memory and GPUs),
    with the task and the mix of kinds, and a cluster holds far fewer distinct rows than hosts:
    hosts of one model stay alike until tasks land on them (at load 0.9 on all of openb, 1,523
    hosts, ~1,100 fit a task and hold some 20-70 distinct rows). So this keeps, per host, the id
    of its row among the rows seen (told apart by their bytes; only the hosts whose row changed
    since the last decision, by a placement or a departure, are looked up again), computes
    :func:`fragment_increase` once per distinct row among the hosts asked about (before and after
    in one array), and hands each host its row's value. The values are exactly the plain
    function's: the same operations on the same rows, and the one sum with fractions in it, over
    the kinds, is row-wise, so a row's value does not depend on the other rows in the array. The
    GPU counts and free milli per kind are worked out once per distinct per-GPU milli, by
    :func:`_whole_milli_holdings` when the GPUs' free milli are whole numbers (they are on openb),
    else by :func:`_holdings` as the plain function does. (Tests check equality, on whole episodes.)
    Per decision at 1,523 hosts (2 vCPUs): the plain function ~3 ms, an earlier tracker of per-host
    counts ~1.1 ms, this ~0.3 ms (``benchmarks/README.md``).
    """

    #: distinct rows remembered per host of the cluster; past that (long episodes, where most rows
    #: seen are held by no host any more), the table starts afresh from the hosts' current rows
    max_rows_per_host = 8

    def __init__(self) -> None:
        self.kinds = KindCounter()
        # the hosts' free CPU, memory and GPUs that the row ids describe (None: none yet)
        self._seen: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._row_of = np.zeros(0, dtype=np.intp)  # per host, the id of its row
        self._ids: dict[bytes, int] = {}  # a row's bytes (CPU, memory, GPUs) -> its id
        self._rows = np.zeros((0, 0))  # per id, the row (CPU, memory, then the GPUs); spare rows at the end
        self._whole = True  # whether every row's GPU milli are whole numbers
        # the kinds' distinct per-GPU milli, and per kind the index of its own among them
        self._milli, self._milli_of = np.zeros(0), np.zeros(0, dtype=np.intp)

    def increase(self, sim: PlacementSim, hosts: np.ndarray) -> np.ndarray:
        """Per host of ``hosts`` (where the current task must fit), the rise in expected fragment."""
        kinds = self.kinds.update(sim)
        if len(kinds.weight) == 0:
            return np.zeros(len(hosts))
        self._refresh(sim.cpu_free, sim.mem_free, sim.gpu_free)
        row_of = self._row_of[hosts]
        asked = np.zeros(len(self._ids), dtype=bool)
        asked[row_of] = True
        rows = self._rows[np.flatnonzero(asked)]  # the distinct rows among the hosts asked about
        cpu, mem, gpu = rows[:, 0], rows[:, 1], rows[:, 2:]
        t, task = sim.tasks, sim.current
        k, milli = int(t.num_gpu[task]), float(t.gpu_milli[task])
        taken = gpu_allocation(gpu, milli, k)
        if k > 0 and np.count_nonzero(taken) != k * len(rows):  # (it gives a row k GPUs at most)
            raise ValueError(f"task {task} does not fit on every host asked about")
        # as fragment_increase (free_after_placing, then after - before), on the distinct rows
        n = len(rows)
        cpu = np.concatenate((cpu, cpu - t.cpu[task]))
        mem = np.concatenate((mem, mem - t.mem[task]))
        gpu = np.concatenate((gpu, gpu - taken))
        if self._whole and milli.is_integer():
            if len(self._milli_of) != len(kinds.gpu_milli):  # (kinds are only ever added, at the end)
                self._milli, self._milli_of = np.unique(kinds.gpu_milli, return_inverse=True)
            holding, unusable, free = _whole_milli_holdings(gpu, self._milli)
            # per kind, its milli's column (np.take: rows contiguous, as the row-wise sum expects)
            holding = np.take(holding, self._milli_of, axis=1)
            unusable = np.take(unusable, self._milli_of, axis=1)
            fragment = _weighted_stranded(cpu, mem, free, holding, unusable, kinds)
        else:
            fragment = expected_fragment(cpu, mem, gpu, kinds)
        return (fragment[n:] - fragment[:n])[np.cumsum(asked)[row_of] - 1]

    def _refresh(self, cpu: np.ndarray, mem: np.ndarray, gpu: np.ndarray) -> None:
        """Bring the hosts' row ids to these free CPU, memory and GPUs (rows are hosts)."""
        n, gpus = gpu.shape
        seen = self._seen
        if seen is None or seen[2].shape != gpu.shape or len(self._ids) > self.max_rows_per_host * n:
            # every host at once: rows told apart by their bytes, as below (sorted as whole numbers)
            rows = np.column_stack((cpu, mem, gpu))
            bits = rows.view(np.uint64)
            order = np.lexsort(bits.T)
            bits = bits[order]
            new = np.zeros(n, dtype=bool)  # where the sorted rows start another distinct row
            new[:1] = True
            new[1 + np.flatnonzero(bits[1:] != bits[:-1]) // bits.shape[1]] = True
            first = order[new]
            self._row_of = np.empty(n, dtype=np.intp)
            self._row_of[order] = np.cumsum(new) - 1
            self._rows = np.zeros((max(2 * len(first), 16), rows.shape[1]))
            self._rows[: len(first)] = rows[first]
            self._ids = {self._rows[i].tobytes(): i for i in range(len(first))}
            self._whole = bool((gpu == np.round(gpu)).all())
            self._seen = (cpu.copy(), mem.copy(), gpu.copy())
            return
        moved = (cpu != seen[0]) | (mem != seen[1])
        moved[np.flatnonzero(gpu != seen[2]) // max(gpus, 1)] = True  # (faster than any(axis=1))
        changed = np.flatnonzero(moved)
        if not len(changed):
            return
        seen[0][changed], seen[1][changed], seen[2][changed] = cpu[changed], mem[changed], gpu[changed]
        rows = np.column_stack((cpu[changed], mem[changed], gpu[changed]))
        self._whole = self._whole and bool((rows[:, 2:] == np.round(rows[:, 2:])).all())
        for host, row in zip(changed.tolist(), rows, strict=True):
            key = row.tobytes()
            row_id = self._ids.get(key)
            if row_id is None:
                row_id = self._ids[key] = len(self._ids)
                if row_id == len(self._rows):  # full: twice the room
                    self._rows = np.vstack([self._rows, np.zeros_like(self._rows)])
                self._rows[row_id] = row
            self._row_of[host] = row_id
