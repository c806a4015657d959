"""Episode metrics for ITP, computed from a finished :class:`~.state.PlacementSim`.

The primary objective (also the environment's reward, summed and divided by
the number of tasks) is the *latency-weighted acceptance*::

    score = mean over tasks of  accepted_i * (1 - RTT_WEIGHT * rtt_i / rtt_max)

so a policy gains most by placing every task, and a little more by placing it
near its origin. Every task counts the same whatever its size or lifetime, so
at high load a policy can raise the score by turning away the few tasks that
would hold much of the cluster for a long time (admission control);
``accepted_work`` (the share of the offered resource-time that was placed) shows
what that costs. ``rtt_max`` is the largest RTT between the cluster's regions.
Decision latency is passed in by the caller: timing uses the OS clock, which
protocol code under ``novacron/`` must not touch (the CLI measures it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .state import PlacementSim

#: weight of the normalised RTT penalty in the primary objective
RTT_WEIGHT = 0.25


def placement_reward(rtt_ms: float | np.ndarray, rtt_max_ms: float) -> float | np.ndarray:
    """Reward of an accepted task (the per-task term of the primary score); elementwise on arrays."""
    return 1.0 - RTT_WEIGHT * (rtt_ms / rtt_max_ms if rtt_max_ms > 0 else 0.0)


@dataclass(frozen=True)
class EpisodeMetrics:
    tasks: int
    accepted: int
    rejected: int
    acceptance_rate: float
    score: float  # primary objective (see module doc)
    mean_wait_s: float  # over accepted tasks
    mean_slowdown: float  # (wait + duration) / duration, over accepted tasks
    fragmentation: float  # mean over placements of the stranded free-GPU share
    p95_rtt_ms: float  # over accepted tasks
    decisions: int
    defers: int
    decision_latency_us: float  # mean per decision; nan if not measured
    accepted_work: float  # share of the offered resource-time (dominant share x lifetime) that was placed

    def as_dict(self) -> dict:
        return asdict(self)


def task_rewards(sim: PlacementSim) -> np.ndarray:
    """Per task (arrival order), its term of the score: :func:`placement_reward` if placed, else 0.

    The score is their mean; slices of it show where in an episode a policy gains
    (``experiments/itp_warmup.py``)."""
    out = sim.outcomes
    return np.where(out.placed, placement_reward(out.rtt_ms, float(sim.cluster.rtt_ms.max())), 0.0)


def summarise(sim: PlacementSim, decision_seconds: float | None = None) -> EpisodeMetrics:
    """Metrics of a finished episode; ``decision_seconds`` is the total time spent deciding."""
    out = sim.outcomes
    n = len(sim.tasks)
    acc = out.placed
    rewards = task_rewards(sim)
    dur = sim.tasks.duration[acc]
    wait = out.wait[acc]
    h, t = sim.cluster.hosts, sim.tasks
    share = np.maximum(t.cpu / h.cpu.sum(), t.mem / h.mem.sum())
    if h.gpus.sum() > 0:
        share = np.maximum(share, t.num_gpu * t.gpu_milli / (h.gpus.sum() * 1000.0))
    work = share * t.duration
    latency = float("nan")
    if decision_seconds is not None and out.decisions > 0:
        latency = decision_seconds / out.decisions * 1e6
    return EpisodeMetrics(
        tasks=n,
        accepted=int(acc.sum()),
        rejected=int(out.rejected.sum()),
        acceptance_rate=float(acc.mean()),
        score=float(rewards.mean()),
        mean_wait_s=float(wait.mean()) if len(wait) else 0.0,
        mean_slowdown=float(((wait + dur) / dur).mean()) if len(dur) else float("nan"),
        fragmentation=float(np.mean(out.fragmentation)) if out.fragmentation else 0.0,
        p95_rtt_ms=float(np.percentile(out.rtt_ms[acc], 95)) if acc.any() else float("nan"),
        decisions=out.decisions,
        defers=out.defers,
        decision_latency_us=latency,
        accepted_work=float(work[acc].sum() / work.sum()) if work.sum() > 0 else float("nan"),
    )


# two-sided 95 % Student-t quantiles for 1..30 degrees of freedom (no SciPy dependency)
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def mean_ci95(values) -> tuple[float, float]:
    """Mean and half-width of a Student-t 95 % confidence interval over seeds (0 for one value).

    Non-finite values (e.g. p95 RTT of an episode that placed nothing) are left out.
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return float("nan"), float("nan")
    if len(v) == 1:
        return float(v[0]), 0.0
    df = len(v) - 1
    t = _T975[df - 1] if df <= len(_T975) else 1.96
    return float(v.mean()), float(t * v.std(ddof=1) / np.sqrt(len(v)))
