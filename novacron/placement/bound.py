"""An upper bound on an episode's score: how much any policy could still gain.

Comparing policies with each other says which is better, not how far from the best they
are. :func:`score_upper_bound` answers the second question with a linear program over
the episode's whole task list: no policy, online or clairvoyant, can score more.

The relaxation, and why each step only loosens it:

* **clairvoyant**: every arrival and lifetime is known in advance;
* **fluid cluster**: the hosts are pooled into one machine per resource (CPU, memory,
  GPU milli), so no task is ever lost to fragmentation or to a host it does not fit
  next to others; a task is only kept off hosts it could not use even when empty;
* **fractional admission**: a task may be admitted in part (``admitted`` in [0, 1]);
* **nearest host**: an admitted task earns the reward of the nearest host that could
  hold it, as if that host always had room;
* **waiting**: a task may start anywhere in ``[arrival, arrival + max_wait]``. That
  window is cut into ``start_bins`` equal bins; a task started in bin ``j`` is counted
  against capacity only over the time it runs whatever its start within the bin
  (from the bin's end to the bin's start plus its lifetime). Every real schedule
  therefore satisfies the constraints, which are checked at the instants where those
  intervals begin (each a real instant, so checking fewer instants than all only
  loosens the bound). Tasks shorter than a bin are not counted at all.

The bound is loose where packing matters (on the openb test split it admits nearly every
task at load 0.8 to 1.0, which no real schedule does); a per-host version with GPU-count
cuts tightened it by under 0.5 % on the episodes tried, at 10-50 times the solve time, so it
is not offered. Read it as the ceiling of the headroom above ``nearest_fit``, not as the
optimum. Solved with HiGHS through :func:`scipy.optimize.linprog` (1-3 s per 512-task
episode with 4 bins).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import coo_matrix, vstack

from .cluster import GPU_MILLI
from .metrics import placement_reward
from .state import PlacementSim

#: bins of the waiting window (more is tighter and slower: 8 bins changed the bound by < 0.5 %)
START_BINS = 4


@dataclass(frozen=True)
class ScoreBound:
    """The LP's answer for one episode."""

    score: float  # upper bound on the episode's score (same scale as EpisodeMetrics.score)
    admitted: np.ndarray  # per task: the admitted fraction in the LP's optimum
    reward: np.ndarray  # per task: reward at the nearest host that could hold it (0: none)


def nearest_rewards(sim: PlacementSim) -> np.ndarray:
    """Per task, the reward of the nearest host that could hold it when empty (0 if none)."""
    t, h = sim.tasks, sim.cluster.hosts
    fits = (t.cpu[:, None] <= h.cpu) & (t.mem[:, None] <= h.mem) & (t.num_gpu[:, None] <= h.gpus)
    rtt = np.where(fits, sim.cluster.host_rtt_ms[t.origin], np.inf).min(axis=1)
    rtt_max = float(sim.cluster.rtt_ms.max())
    finite = np.isfinite(rtt)
    return np.where(finite, placement_reward(np.where(finite, rtt, 0.0), rtt_max), 0.0)


def score_upper_bound(sim: PlacementSim, *, start_bins: int = START_BINS) -> ScoreBound:
    """The LP bound on the score of ``sim``'s episode (see the module doc).

    Only the episode's task list, cluster and ``max_wait`` are read, so ``sim`` may be
    fresh or finished. Raises ``RuntimeError`` if the solver fails (it should not: the
    all-rejected point is always feasible).
    """
    if start_bins < 1:
        raise ValueError(f"start_bins must be >= 1, got {start_bins}")
    t, h = sim.tasks, sim.cluster.hosts
    n, wait = len(t), sim.max_wait
    reward = nearest_rewards(sim)
    placeable = np.flatnonzero(reward > 0)

    # one variable per (placeable task, start bin): the fraction started in that bin
    task = np.repeat(placeable, start_bins)
    j = np.tile(np.arange(start_bins), len(placeable))
    sure_from = t.arrival[task] + (j + 1) * wait / start_bins
    sure_until = t.arrival[task] + j * wait / start_bins + t.duration[task]
    m = len(task)

    # capacity rows: resource r at instant p (the instants where sure intervals begin)
    instants = np.unique(sure_from)
    first = np.searchsorted(instants, sure_from, side="left")
    stop = np.searchsorted(instants, sure_until, side="left")  # instants < sure_until
    length = np.maximum(stop - first, 0)
    col = np.repeat(np.arange(m), length)
    offset = np.arange(length.sum()) - np.repeat(np.cumsum(length) - length, length)
    instant = np.repeat(first, length) + offset

    demand = np.stack([t.cpu, t.mem, t.num_gpu * t.gpu_milli], axis=1).astype(float)
    capacity = np.array([h.cpu.sum(), h.mem.sum(), h.gpus.sum() * GPU_MILLI], dtype=float)
    n_instants = len(instants)
    rows, cols, vals = [], [], []
    for r in range(len(capacity)):
        value = demand[task[col], r]
        used = value > 0
        rows.append(r * n_instants + instant[used])
        cols.append(col[used])
        vals.append(value[used])
    shape = (len(capacity) * n_instants, m)
    a_capacity = coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=shape)
    b_capacity = np.repeat(capacity, n_instants)
    # each task is admitted at most once over its bins
    a_once = coo_matrix((np.ones(m), (task, np.arange(m))), shape=(n, m))
    a = vstack([a_capacity, a_once]).tocsr()
    b = np.concatenate([b_capacity, np.ones(n)])
    used_rows = np.asarray(a.getnnz(axis=1)) > 0

    result = linprog(-reward[task], A_ub=a[used_rows], b_ub=b[used_rows], bounds=(0.0, 1.0), method="highs")
    if result.status != 0:
        raise RuntimeError(f"the score bound's LP failed: {result.message}")
    admitted = np.clip(np.bincount(task, weights=result.x, minlength=n), 0.0, 1.0)
    return ScoreBound(score=float(-result.fun / n), admitted=admitted, reward=reward)
