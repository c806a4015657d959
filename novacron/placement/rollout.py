"""Rollout planning for ITP: one-step look-ahead over a base heuristic (Bertsekas' rollout).

At a decision, :class:`RolloutPolicy` considers a few candidate actions: the
base policy's own choice, the ``top_k`` hosts by the ``nearest_fit`` order, and
defer. For each candidate it forks the simulator
(:meth:`~novacron.placement.state.PlacementSim.fork`), applies the candidate,
and lets the base policy (``admission_nearest_fit`` by default) finish a short
simulated future; the candidate whose simulated futures collect the most
reward (the per-task term of the primary ``score``) wins. If the simulation
matched the environment exactly, rollout could only improve on its base policy
(the base's own action is always a candidate and ties go to it); here it is an
approximation, so the gain is measured, not assumed.

The truncated future needs a terminal value: without one, starting a long
task now looks free whenever its cost falls after the last simulated arrival
(the one-step look-ahead then admits the big tasks admission control exists to
keep out). ``terminal_price`` charges the resource-time still committed after
the last simulated arrival, at a price in tasks per unit of resource-time.

No clairvoyance: the real future (tasks that have not arrived yet) is never
read (:class:`OracleFuture`, which does, exists only to measure that gap).
:class:`HistoryFuture` samples the simulated future from what the scheduler
has already seen in this episode: task demands, lifetimes and origins drawn
with replacement from the most recent arrivals, inter-arrival gaps drawn from
the recent gaps (which keeps the trace's burstiness and the current arrival
rate). Every candidate is scored on the same sampled futures (common random
numbers), so the comparison between candidates is far less noisy than each value.

Cost: a decision runs ``candidates x samples`` short simulations, i.e. milliseconds, not
microseconds; it is meant as a teacher for the fast host-scoring network
(``experiments/itp_rollout.py distill``) and is reported with its own latency.
Measured results, including where it lost to its base, are in ``results/itp/README.md``.
Small tasks (resource-time below ``min_resource_time``) follow the base policy
without look-ahead: whether and where they start barely changes what later tasks
find, and they are most decisions; look-ahead is spent on the admission of big tasks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .cluster import GPU_MILLI, Tasks
from .heuristics import (
    DEFER,
    AdmissionNearestFitPolicy,
    Policy,
    _free_shares,
    resource_time,
    resource_times,
)
from .metrics import RTT_WEIGHT
from .state import PlacementSim


@dataclass(frozen=True)
class HistoryFuture:
    """Sampler of plausible next arrivals from the episode's own history (see the module doc).

    ``window``: how many of the most recent arrivals (and gaps) to resample;
    ``min_history``: below this many arrivals there is too little to resample
    and :meth:`sample` returns None (the planner then follows its base policy).
    """

    window: int = 256
    min_history: int = 16

    def sample(self, sim: PlacementSim, horizon: int, rng: np.random.Generator) -> Tasks | None:
        """``horizon`` synthetic tasks arriving after ``sim.clock``, or None without enough history."""
        seen = sim.arrived
        if seen < self.min_history or horizon <= 0:
            return None
        t = sim.tasks
        lo = max(0, seen - self.window)
        gaps = np.diff(t.arrival[lo:seen])
        if len(gaps) == 0 or gaps.sum() <= 0:
            return None
        pick = rng.integers(lo, seen, size=horizon)
        arrival = sim.clock + np.cumsum(gaps[rng.integers(0, len(gaps), size=horizon)])
        return Tasks(
            names=tuple(f"~{i}" for i in range(horizon)),
            cpu=t.cpu[pick],
            mem=t.mem[pick],
            num_gpu=t.num_gpu[pick],
            gpu_milli=t.gpu_milli[pick],
            arrival=arrival,
            duration=t.duration[pick],
            origin=t.origin[pick],
        )


def nearest_fit_order(sim: PlacementSim) -> np.ndarray:
    """Feasible hosts for the current task, best first by ``nearest_fit``'s key (RTT, then best fit)."""
    task = sim.current
    rtt = sim.host_rtt_ms[sim.tasks.origin[task]]
    key = 4.0 * rtt + _free_shares(sim, task, after=True).sum(axis=0)
    feasible = np.flatnonzero(sim.mask())
    return feasible[np.argsort(key[feasible], kind="stable")]


def collected_reward(sim: PlacementSim) -> float:
    """Sum over placed tasks of the per-task score term ``1 - RTT_WEIGHT * rtt / rtt_max``."""
    rtt_max = float(sim.cluster.rtt_ms.max())
    out = sim.outcomes
    penalty = RTT_WEIGHT * out.rtt_ms / rtt_max if rtt_max > 0 else 0.0
    return float(np.where(out.placed, 1.0 - penalty, 0.0).sum())


def committed_beyond(sim: PlacementSim, t_end: float) -> float:
    """Resource-time (cluster share x time / ``max_wait``) that placed tasks hold after ``t_end``.

    Read from the outcomes (start = arrival + wait, end = start + lifetime), so it
    does not matter that the simulation ran on past ``t_end``.
    """
    out, t = sim.outcomes, sim.tasks
    placed = np.flatnonzero(out.placed)
    if len(placed) == 0:
        return 0.0
    start = t.arrival[placed] + out.wait[placed]
    beyond = np.clip(start + t.duration[placed] - np.maximum(start, t_end), 0.0, None)
    h = sim.cluster.hosts
    share = np.maximum(t.cpu[placed] / h.cpu.sum(), t.mem[placed] / h.mem.sum())
    gpu_total = float(h.gpus.sum()) * GPU_MILLI
    if gpu_total > 0:
        share = np.maximum(share, t.num_gpu[placed] * t.gpu_milli[placed] / gpu_total)
    return float((share * beyond).sum() / sim.max_wait)


def finish_with(sim: PlacementSim, policy: Policy) -> None:
    """Run ``sim`` to its end with ``policy`` (a stateless policy: it is not reset).

    A task that admission control (a policy with ``admits``, e.g.
    ``admission_nearest_fit``) turns away would be deferred at every later event
    until it runs out of patience; it is rejected at once instead, which gives
    the same rewards with far fewer steps.
    """
    admits = getattr(policy, "admits", None)
    while not sim.done:
        if admits is not None and not admits(sim):
            sim.reject()
            continue
        action = policy.select(sim)
        if action == DEFER:
            sim.defer()
        else:
            sim.place(action)


def apply(sim: PlacementSim, action: int) -> None:
    """Carry out ``action`` (a host index or :data:`DEFER`) on ``sim``."""
    if action == DEFER:
        sim.defer()
    else:
        sim.place(action)


class RolloutPolicy:
    """One-step look-ahead over ``base`` with sampled futures (see the module doc).

    ``top_k`` hosts (by ``nearest_fit`` order) and defer are the candidates, plus
    the base action; each is scored by the mean reward its ``samples`` simulated
    futures of ``horizon`` arrivals collect when the base policy plays them out,
    minus ``terminal_price`` x (tasks per unit of resource-time, from the recent
    arrivals) x the resource-time still committed after the last simulated
    arrival (capacity the truncated future cannot charge for otherwise).
    A candidate replaces the base action only if it wins by more than ``margin``
    (in tasks' worth of reward, averaged over the samples). A task the base
    policy's admission control never admits is planned once: if look-ahead
    keeps it out too, it is deferred without further planning.
    """

    name = "rollout"

    def __init__(
        self,
        base: Policy | None = None,
        *,
        top_k: int = 2,
        horizon: int = 64,
        samples: int = 4,
        min_resource_time: float = 0.0,
        margin: float = 0.0,
        terminal_price: float = 0.0,
        future: HistoryFuture | OracleFuture | None = None,
        seed: int = 0,
    ) -> None:
        if top_k < 1 or horizon < 1 or samples < 1:
            raise ValueError("top_k, horizon and samples must be >= 1")
        self.base = base if base is not None else AdmissionNearestFitPolicy()
        self.top_k, self.horizon, self.samples = int(top_k), int(horizon), int(samples)
        self.min_resource_time, self.margin = float(min_resource_time), float(margin)
        self.terminal_price = float(terminal_price)
        self.future = future if future is not None else HistoryFuture()
        self.seed = int(seed)
        self.rng = np.random.default_rng(seed)
        #: decisions that ran look-ahead, and how many of them overrode the base action
        self.planned = 0
        self.overridden = 0
        #: values of the last planned decision: {action: mean reward over the sampled futures}
        self.last_values: dict[int, float] = {}
        # tasks that the look-ahead chose to keep out while the base policy would never admit
        # them either: they are deferred until they run out of patience without planning again
        self._turned_away: set[int] = set()

    def reset(self, sim: PlacementSim, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(self.seed if seed is None else seed)
        self.base.reset(sim, seed)
        self.planned = self.overridden = 0
        self.last_values = {}
        self._turned_away = set()

    def candidates(self, sim: PlacementSim, base_action: int) -> list[int]:
        """The base action first, then the ``top_k`` nearest-fit hosts and defer (no repeats)."""
        out = [base_action]
        for host in nearest_fit_order(sim)[: self.top_k]:
            if int(host) not in out:
                out.append(int(host))
        if DEFER not in out:
            out.append(DEFER)
        return out

    def values(self, sim: PlacementSim, candidates: list[int]) -> dict[int, float] | None:
        """Mean simulated reward of each candidate over shared sampled futures (None: no history yet)."""
        futures = [self.future.sample(sim, self.horizon, self.rng) for _ in range(self.samples)]
        if any(f is None for f in futures):
            return None
        price = 0.0
        if self.terminal_price > 0:
            # what capacity is worth: tasks per unit of resource-time, from the recent arrivals
            recent = resource_times(sim)[max(0, sim.arrived - 256) : sim.arrived]
            price = self.terminal_price / max(float(recent.mean()), 1e-9)
        totals = dict.fromkeys(candidates, 0.0)
        for future in futures:
            t_end = float(future.arrival[-1]) if len(future) else sim.clock
            for action in candidates:
                copy = sim.fork(future)
                apply(copy, action)
                finish_with(copy, self.base)
                value = collected_reward(copy)
                if price:
                    # the simulated future stops arriving at t_end: capacity still held after it
                    # would have served later arrivals, so it is charged at the going rate
                    value -= price * committed_beyond(copy, t_end)
                totals[action] += value
        return {a: v / len(futures) for a, v in totals.items()}

    def select(self, sim: PlacementSim) -> int:
        base_action = self.base.select(sim)
        if sim.current in self._turned_away or resource_time(sim, sim.current) < self.min_resource_time:
            return base_action
        admits = getattr(self.base, "admits", None)
        never = admits is not None and not admits(sim)  # the base will defer this task every time
        candidates = self.candidates(sim, base_action)
        if len(candidates) < 2:
            return base_action
        values = self.values(sim, candidates)
        if values is None:
            return base_action
        self.planned += 1
        self.last_values = values
        best = max(candidates, key=lambda a: values[a])  # first (the base action) among equals
        if values[best] > values[base_action] + self.margin:
            self.overridden += int(best != base_action)
            return best
        if never:
            self._turned_away.add(sim.current)
        return base_action


@dataclass(frozen=True)
class OracleFuture:
    """The real next arrivals: a clairvoyant upper bound for diagnostics, never a deployable policy.

    It reads tasks that have not arrived yet, which no scheduler can; it only
    measures how much of the rollout's shortfall comes from the sampled futures.
    """

    def sample(self, sim: PlacementSim, horizon: int, rng: np.random.Generator) -> Tasks | None:
        start = sim.arrived
        return sim.tasks.take(np.arange(start, min(start + horizon, len(sim.tasks))))


#: the planner settings chosen on the validation split (``experiments/itp_rollout.py tune``)
DEFAULT_SETTINGS = "top_k=1,horizon=64,samples=4,terminal_price=0.2,min_resource_time=0.1"


def parse_settings(text: str) -> dict[str, float | int]:
    """``"top_k=1,horizon=64"`` -> ``{"top_k": 1, "horizon": 64}`` (ints where they parse, else floats)."""
    out: dict[str, float | int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, _, value = item.partition("=")
        if not value.strip():
            raise ValueError(f"expected key=value, got {item!r}")
        value = value.strip()
        out[key.strip()] = int(value) if value.lstrip("-").isdigit() else float(value)
    return out
