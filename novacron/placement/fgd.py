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
        for i in range(self._seen, arrived):
            if t.num_gpu[i] == 0:
                continue
            key = (float(t.cpu[i]), float(t.mem[i]), int(t.num_gpu[i]), float(t.gpu_milli[i]))
            slot = self._index.setdefault(key, len(self._demand))
            if slot == len(self._demand):
                self._demand.append(key)
                self._count.append(0)
            self._count[slot] += 1
        self._seen = arrived
        if self._demand:
            demand = np.asarray(self._demand, dtype=np.float64)
            count = np.asarray(self._count, dtype=np.float64)
            cpu, mem, num_gpu, gpu_milli = demand.T
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

    The plain function looks at every GPU of every host for every kind, twice per decision: at
    1,523 hosts (all of openb) that is ~3 ms. This keeps, per host and kind, how many GPUs hold the
    kind and the free milli on those that do not (:func:`_holdings`), recomputes them only for the
    hosts whose GPUs changed since the last decision (a placement, a departure) and for kinds seen
    for the first time, and works out the state after placing from the few GPUs the task would
    take. The values are exactly the plain function's: the cached sums are whole milli, which
    float64 adds without rounding, and both end in the same weighted sum (tests check equality).
    """

    def __init__(self) -> None:
        self.kinds = KindCounter()
        self._gpu_free: np.ndarray | None = None  # the GPUs the cached rows describe
        self._holding = self._unusable = np.zeros((0, 0))

    def increase(self, sim: PlacementSim, hosts: np.ndarray) -> np.ndarray:
        """Per host of ``hosts`` (where the current task must fit), the rise in expected fragment."""
        kinds = self.kinds.update(sim)
        if len(kinds.weight) == 0:
            return np.zeros(len(hosts))
        self._refresh(sim.gpu_free, kinds.gpu_milli)
        t, task = sim.tasks, sim.current
        k, milli = int(t.num_gpu[task]), float(t.gpu_milli[task])
        gpu = sim.gpu_free[hosts]
        free = np.clip(gpu, 0.0, None).sum(axis=1)
        holding, unusable = self._holding[hosts], self._unusable[hosts]
        cpu, mem = sim.cpu_free[hosts], sim.mem_free[hosts]
        before = _weighted_stranded(cpu, mem, free, holding, unusable, kinds)
        if k > 0:
            taken = gpu_allocation(gpu, milli, k) > 0
            if (taken.sum(axis=1) != k).any():
                raise ValueError(f"task {task} does not fit on every host asked about")
            kind = kinds.gpu_milli[None, :]
            for old in gpu[taken].reshape(len(hosts), k).T:  # each GPU it would take, per host
                before_gpu, after_gpu = old[:, None], old[:, None] - milli
                holding = holding + (after_gpu >= kind).astype(int) - (before_gpu >= kind)
                unusable = unusable + after_gpu * (after_gpu < kind) - before_gpu * (before_gpu < kind)
            free = free - k * milli
        after = _weighted_stranded(cpu - t.cpu[task], mem - t.mem[task], free, holding, unusable, kinds)
        return after - before

    def _refresh(self, gpu_free: np.ndarray, gpu_milli: np.ndarray) -> None:
        """Bring the cached rows to ``gpu_free`` and the columns to ``gpu_milli``'s kinds."""
        if self._gpu_free is None or self._gpu_free.shape != gpu_free.shape:
            self._holding, self._unusable = _holdings(gpu_free, gpu_milli)
        else:
            known = self._holding.shape[1]
            if len(gpu_milli) > known:  # kinds seen for the first time: their columns, every host
                holding, unusable = _holdings(gpu_free, gpu_milli[known:])
                self._holding = np.hstack([self._holding, holding])
                self._unusable = np.hstack([self._unusable, unusable])
            changed = np.flatnonzero((gpu_free != self._gpu_free).any(axis=1))
            if len(changed):
                self._holding[changed], self._unusable[changed] = _holdings(gpu_free[changed], gpu_milli)
        self._gpu_free = gpu_free.copy()
