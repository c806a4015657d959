"""``novacron/BandwidthAllocation-v0``: share a link whose capacity replays a real bandwidth trace.

Episodes
    ``reset(seed=...)`` picks one trace file from the env's file list (train/test split *by file*:
    pass the files, e.g. from :func:`novacron.prediction.traces.split_by_file`; default: every
    Norway HSDPA file) and replays it as the link capacity, one trace sample per step of ``dt``
    seconds (HSDPA: ~1 s). The first ``history`` samples are only observed; the episode then runs to
    the end of the trace or ``max_steps`` (``truncated=True``). Transfers arrive as a seeded Poisson
    process (``arrival_rate`` per step); sizes are log-normal with mean ``load * mean capacity * dt /
    arrival_rate`` (so the offered load is ``load`` times the trace's mean capacity); the deadline
    is ``ceil(size / mean capacity * slack)`` steps with ``slack ~ U(slack_low, slack_high)``, at
    least 2; priorities are 1/3, 2/3 or 1. At most ``max_transfers`` (K) are in flight; an arrival
    that finds all K slots busy is dropped and counts as a deadline miss. Everything is a function
    of the reset seed.

Observation (float32 in [0, 1], clipped)
    * the last ``history`` capacity samples divided by ``scale``, the running maximum of the samples
      seen so far in the episode (observed history included: no future leaks into the scale);
    * the forecast of the next ``horizon`` samples from ``predictor`` (EWMA by default), over ``scale``;
    * ``scale / scale_norm_mbps`` (how fast the link is in absolute terms);
    * per slot (K slots, zero when empty) :data:`TRANSFER_FEATURES`: remaining megabits over
      ``scale * dt * max_deadline``, steps to deadline over ``max_deadline``, priority, the urgency
      ``remaining / (steps to deadline * forecast * dt)`` (clipped to 1: 1 means it needs the whole
      forecast link until its deadline, or more), and the active flag.

Action
    ``Box(0, 1, (K,))``: the raw share ``a_i`` of the link for each slot; actions on empty slots are
    ignored. Let ``S = sum of a_i over active slots``. If ``S <= 1`` transfer ``i`` may send at
    ``a_i * capacity`` (``1 - S`` of the link stays idle). If ``S > 1`` the link is *over-allocated*:
    the senders push more than it carries, shares are normalised to ``a_i / S``, and congestion loss
    wastes a fraction ``min(loss_per_excess * (S - 1), 1)`` of the capacity. A transfer delivers
    ``min(remaining, its rate * dt)``; share it cannot use is wasted (rates are paced per transfer).

Reward (documented contract)
    ``delivered / (capacity * dt) - miss_penalty * sum(priority of transfers whose deadline passed
    unfinished this step, and arrivals dropped for lack of a slot just before it) - over_penalty *
    max(S - 1, 0)``. A step with zero
    capacity has goodput term 0. Missed transfers leave the link. ``info`` carries per-step
    ``delivered_mb``, ``capacity_mb``, ``misses``, ``over_allocation``, ``streams`` and (at the end)
    ``metrics``: goodput over capacity, misses, completions.

:func:`allocator_action` turns an :class:`~novacron.prediction.allocation.Allocator` into an action,
so the baselines run in the same environment as the learned policy.

:class:`ScoredAllocationWrapper` is the documented option for learned allocators: same episodes and
reward, but transfers presented in EDF order with extra features, and an action in ``[-1, 1]^K``
that is a residual on EDF (zero action = EDF) or softmax shares. Raw continuous shares (the env's own
action) were much harder to learn: PPO lost to EDF by ~18% after 600k steps.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
from gymnasium import spaces

from novacron.prediction.allocation import (
    Allocator,
    Transfer,
    edf_order,
    greedy_fill,
    streams_for,
    usable_shares,
    water_fill,
)
from novacron.prediction.predictors import EWMA, Predictor
from novacron.prediction.traces import MBPS, data_dir, load_trace, trace_files

TRANSFER_FEATURES = ("remaining", "time_to_deadline", "priority", "urgency", "active")
PRIORITIES = (1 / 3, 2 / 3, 1.0)

_TRACE_CACHE: dict[str, np.ndarray] = {}


def _capacity(path: Path) -> np.ndarray:
    key = str(path)
    if key not in _TRACE_CACHE:
        _TRACE_CACHE[key] = load_trace(path)[MBPS].to_numpy(dtype=float)
    return _TRACE_CACHE[key]


@dataclass(frozen=True)
class AllocationEpisode:
    """One episode's workload, to replay it elsewhere (over AMST: :mod:`novacron.sim.allocation`).

    ``trace``: the link's capacity (Mbps) at each scored step; ``history``: the samples shown before
    the first; ``arrivals``: ``(step, megabits, deadline steps, priority)`` per transfer, dropped ones
    included; ``max_transfers`` in flight at most, as in the env; forecasts over ``horizon`` steps.
    """

    trace: np.ndarray
    history: np.ndarray
    arrivals: list[tuple[int, float, int, float]]
    dt: float
    max_transfers: int
    horizon: int


class BandwidthAllocationEnv(gym.Env):
    """Per-transfer bandwidth shares on a trace-driven link (see the module doc)."""

    metadata = {"render_modes": []}

    def __init__(
        self,
        *,
        traces: Sequence[str | Path | pd.DataFrame] | None = None,
        max_transfers: int = 8,
        history: int = 8,
        horizon: int = 5,
        dt: float = 1.0,
        max_steps: int = 200,
        arrival_rate: float = 0.3,
        load: float = 0.8,
        slack_low: float = 1.5,
        slack_high: float = 4.0,
        max_deadline: int = 60,
        miss_penalty: float = 1.0,
        over_penalty: float = 1.0,
        loss_per_excess: float = 0.5,
        scale_norm_mbps: float = 50.0,
        predictor: Predictor | None = None,
    ) -> None:
        super().__init__()
        self.capacities = self._load(traces)
        short = [i for i, c in enumerate(self.capacities) if len(c) < history + 2]
        if short:
            raise ValueError(f"traces {short} have fewer than history + 2 = {history + 2} samples")
        self.max_transfers = int(max_transfers)
        self.history, self.horizon, self.dt = int(history), int(horizon), float(dt)
        self.max_steps = int(max_steps)
        self.arrival_rate, self.load = float(arrival_rate), float(load)
        self.slack_low, self.slack_high, self.max_deadline = slack_low, slack_high, int(max_deadline)
        self.miss_penalty, self.over_penalty = float(miss_penalty), float(over_penalty)
        self.loss_per_excess, self.scale_norm_mbps = float(loss_per_excess), float(scale_norm_mbps)
        self.predictor = EWMA() if predictor is None else predictor
        size = self.history + self.horizon + 1 + self.max_transfers * len(TRANSFER_FEATURES)
        self.observation_space = spaces.Box(0.0, 1.0, shape=(size,), dtype=np.float32)
        self.action_space = spaces.Box(0.0, 1.0, shape=(self.max_transfers,), dtype=np.float32)
        self._cap: np.ndarray | None = None
        self._forecast_at, self._forecast = -1, np.zeros(0)

    @staticmethod
    def _load(traces) -> list[np.ndarray]:
        if traces is None:
            traces = [data_dir("norway_hsdpa")]
        out = []
        for item in traces:
            if isinstance(item, pd.DataFrame):
                out.append(item[MBPS].to_numpy(dtype=float))
            else:
                out.extend(_capacity(p) for p in trace_files([item]))
        if not out:
            raise ValueError("no traces")
        return out

    # ------------------------------------------------------------------ gymnasium API

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        rng = self.np_random
        self.trace_index = int(rng.integers(len(self.capacities)))
        if options and "trace_index" in options:
            self.trace_index = int(options["trace_index"])
        self._cap = self.capacities[self.trace_index]
        self._forecast_at = -1
        self._mean_cap = max(float(self._cap.mean()), 1e-3)
        self.t = self.history  # index of the sample that is the capacity of the current step
        self.end = min(len(self._cap), self.history + self.max_steps)
        self.scale = max(float(self._cap[: self.history].max()), 1e-3)
        k = self.max_transfers
        self.remaining = np.zeros(k)
        self.deadline = np.zeros(k, dtype=int)  # steps left
        self.priority = np.zeros(k)
        self.active = np.zeros(k, dtype=bool)
        self.totals = dict(delivered_mb=0.0, capacity_mb=0.0, misses=0, dropped=0, arrived=0, completed=0)
        self.miss_weight = 0.0
        #: every arrival of the episode as (step, megabits, deadline steps, priority), dropped ones
        #: included; step 0 is the first step. The draws do not depend on the actions, so this is
        #: the episode's workload, e.g. to replay it over AMST (``experiments/pba_amst.py``).
        self.arrival_log: list[tuple[int, float, int, float]] = []
        self._arrivals()
        return self._observation(), {"trace_index": self.trace_index}

    def step(self, action):
        if self._cap is None:
            raise RuntimeError("call reset() first")
        if self.t >= self.end:
            raise RuntimeError("step() after the episode ended; call reset()")
        a = np.clip(np.asarray(action, dtype=float).reshape(-1), 0.0, 1.0) * self.active
        total = float(a.sum())
        excess = max(total - 1.0, 0.0)
        shares = a / total if total > 1 else a
        capacity_mb = float(self._cap[self.t]) * self.dt
        usable_mb = capacity_mb * (1.0 - min(self.loss_per_excess * excess, 1.0))
        delivered = np.minimum(self.remaining, shares * usable_mb) * self.active
        self.remaining -= delivered
        done_now = self.active & (self.remaining <= 1e-9)
        self.active &= ~done_now
        self.deadline[self.active] -= 1
        missed = self.active & (self.deadline <= 0)
        miss_weight = float(self.priority[missed].sum()) + self.miss_weight
        n_missed = int(missed.sum())
        self.active &= ~missed
        self.remaining[~self.active] = 0.0
        delivered_mb = float(delivered.sum())
        goodput = delivered_mb / capacity_mb if capacity_mb > 0 else 0.0
        reward = goodput - self.miss_penalty * miss_weight - self.over_penalty * excess
        tot = self.totals
        tot["delivered_mb"] += delivered_mb
        tot["capacity_mb"] += capacity_mb
        tot["misses"] += n_missed
        tot["completed"] += int(done_now.sum())
        info: dict[str, Any] = {
            "delivered_mb": delivered_mb,
            "capacity_mb": capacity_mb,
            "misses": n_missed,
            "over_allocation": excess,
            "streams": streams_for(shares),
        }
        # advance time: the new sample becomes history; new transfers arrive for the next step
        self.scale = max(self.scale, float(self._cap[self.t]))
        self.t += 1
        self.miss_weight = 0.0
        truncated = self.t >= self.end
        if not truncated:
            self._arrivals()
        else:
            info["metrics"] = self.metrics()
        return self._observation(), float(reward), False, truncated, info

    def metrics(self) -> dict[str, float]:
        """Episode totals so far: goodput over capacity, deadline misses (dropped arrivals included)."""
        tot = self.totals
        return {
            "goodput_over_capacity": tot["delivered_mb"] / max(tot["capacity_mb"], 1e-9),
            "misses": float(tot["misses"] + tot["dropped"]),
            "dropped": float(tot["dropped"]),
            "completed": float(tot["completed"]),
            "arrived": float(tot["arrived"]),
        }

    # ------------------------------------------------------------------ transfers and forecasts

    def _arrivals(self) -> None:
        rng = self.np_random
        for _ in range(int(rng.poisson(self.arrival_rate))):
            mean_size = self.load * self._mean_cap * self.dt / self.arrival_rate
            size = float(rng.lognormal(np.log(mean_size) - 0.5, 1.0))  # sigma 1: mean is mean_size
            slack = float(rng.uniform(self.slack_low, self.slack_high))
            deadline = int(np.clip(np.ceil(size / (self._mean_cap * self.dt) * slack), 2, self.max_deadline))
            priority = PRIORITIES[int(rng.integers(len(PRIORITIES)))]
            self.totals["arrived"] += 1
            self.arrival_log.append((self.t - self.history, size, deadline, priority))
            free = np.flatnonzero(~self.active)
            if len(free) == 0:
                self.totals["dropped"] += 1
                self.miss_weight += priority
                continue
            i = int(free[0])
            self.remaining[i], self.deadline[i], self.priority[i] = size, deadline, priority
            self.active[i] = True

    def episode(self, seed: int, trace_index: int | None = None) -> AllocationEpisode:
        """The workload of episode ``reset(seed=seed)`` (the trace and every arrival), drawn by
        running it with zero shares: neither depends on the actions. Leaves the env after that
        episode's end."""
        self.reset(seed=seed, options=None if trace_index is None else {"trace_index": trace_index})
        while self.t < self.end:
            self.step(np.zeros(self.max_transfers, dtype=np.float32))
        assert self._cap is not None
        return AllocationEpisode(
            trace=self._cap[self.history : self.end].copy(),
            history=self._cap[: self.history].copy(),
            arrivals=list(self.arrival_log),
            dt=self.dt,
            max_transfers=self.max_transfers,
            horizon=self.horizon,
        )

    def set_state(self, history: Sequence[float], transfers: Sequence[Transfer]) -> np.ndarray:
        """Put the env in a given state, outside any episode, and return its observation.

        ``history``: capacity samples seen (Mbps, oldest first; at least ``history`` of them);
        ``transfers`` (at most ``max_transfers``) fill the first slots. What a learned allocator
        needs to act on a real link (:class:`LearnedAllocator`): the observation is computed by the
        same code as in training. ``step`` is not possible from here (there is no future trace).
        """
        seen = np.asarray(history, dtype=float).reshape(-1)
        if len(seen) < self.history:
            raise ValueError(f"need at least {self.history} capacity samples, got {len(seen)}")
        if len(transfers) > self.max_transfers:
            raise ValueError(f"at most {self.max_transfers} transfers, got {len(transfers)}")
        self._cap = np.append(seen, 0.0)
        self.t = self.end = len(seen)
        self._forecast_at = -1
        self.scale = max(float(seen.max()), 1e-3)
        k, n = self.max_transfers, len(transfers)
        self.remaining, self.deadline = np.zeros(k), np.zeros(k, dtype=int)
        self.priority, self.active = np.zeros(k), np.arange(k) < n
        for i, t in enumerate(transfers):
            self.remaining[i], self.deadline[i], self.priority[i] = (
                t.remaining_mb,
                t.deadline_steps,
                t.priority,
            )
        return self._observation()

    def observed(self) -> np.ndarray:
        """The capacity samples seen so far (Mbps), oldest first; the current step's is not among them."""
        assert self._cap is not None
        return self._cap[: self.t]

    def forecast(self, predictor: Predictor | None = None) -> np.ndarray:
        """Forecast capacity (Mbps) of the next ``horizon`` steps, from the samples seen so far."""
        if predictor is not None and predictor is not self.predictor:
            return np.asarray(predictor.predict(self.observed(), self.horizon), dtype=float)
        if self._forecast_at != self.t:  # the env's own forecast: computed once per step
            self._forecast = np.asarray(self.predictor.predict(self.observed(), self.horizon), dtype=float)
            self._forecast_at = self.t
        return self._forecast.copy()

    def transfers(self) -> tuple[np.ndarray, list[Transfer]]:
        """(slot indices, transfers) of the active slots, for an :class:`Allocator`."""
        slots = np.flatnonzero(self.active)
        return slots, [
            Transfer(float(self.remaining[i]), int(self.deadline[i]), float(self.priority[i])) for i in slots
        ]

    def _observation(self) -> np.ndarray:
        assert self._cap is not None
        seen = self.observed()
        scale = self.scale
        forecast = self.forecast()
        k = self.max_transfers
        per = np.zeros((k, len(TRANSFER_FEATURES)))
        act = self.active
        per[:, 0] = self.remaining / (scale * self.dt * self.max_deadline)
        per[:, 1] = self.deadline / self.max_deadline
        per[:, 2] = self.priority
        need = self.remaining / (np.maximum(self.deadline, 1) * max(float(forecast[0]), 1e-3) * self.dt)
        per[:, 3] = need
        per[:, 4] = 1.0
        per[~act] = 0.0
        obs = np.concatenate(
            [seen[-self.history :] / scale, forecast / scale, [scale / self.scale_norm_mbps], per.ravel()]
        )
        return np.clip(obs, 0.0, 1.0).astype(np.float32)


def allocator_action(env: BandwidthAllocationEnv, allocator: Allocator) -> np.ndarray:
    """The action that applies ``allocator``'s shares (its own predictor's forecast if it names one)."""
    env = env.unwrapped  # type: ignore[assignment]
    slots, transfers = env.transfers()
    action = np.zeros(env.max_transfers, dtype=np.float32)
    if transfers:
        forecast = env.forecast(allocator.predictor)
        action[slots] = allocator.allocate(forecast, transfers, env.dt, history=env.observed()).shares
    return action


def run_episode(env: BandwidthAllocationEnv, policy, seed: int, options: dict | None = None) -> dict:
    """Run one episode; ``policy`` is an Allocator or a callable ``obs -> action``. Return and metrics."""
    obs, _ = env.reset(seed=seed, options=options)
    total, info, done = 0.0, {}, False
    while not done:
        action = allocator_action(env, policy) if isinstance(policy, Allocator) else policy(obs)
        obs, reward, terminated, truncated, info = env.step(action)
        total += reward
        done = terminated or truncated
    return {"return": total, **info["metrics"]}


#: per-slot features of :class:`ScoredAllocationWrapper` (slots in EDF order)
RANKED_FEATURES = (
    "remaining",
    "time_to_deadline",
    "priority",
    "urgency",
    "feasibility",
    "edf_backlog",
    "edf_share",
    "active",
)


def _squash(x: np.ndarray) -> np.ndarray:
    """``x / (1 + x)``: [0, inf) -> [0, 1), 1 -> 0.5 (keeps "how infeasible", unlike a clip)."""
    x = np.maximum(x, 0.0)
    return x / (1.0 + x)


class ScoredAllocationWrapper(gym.Wrapper):
    """Action and observation parameterisation for learned allocators (reward untouched).

    The wrapped env is unchanged (same dynamics, reward, seeds): the wrapper only maps a learned
    action onto the env's share action, and adds features to the observation. Transfers are
    presented in **EDF order** (position 0 is the earliest deadline; empty slots last), so a policy
    sees a canonical ordering instead of arbitrary slot numbers.

    Observation (float32 in [0, 1]): the env's global part (throughput history, forecast, scale),
    the fraction of slots busy, then per position :data:`RANKED_FEATURES`: the env's remaining,
    time to deadline, priority and urgency; ``feasibility`` = squash(remaining / forecast Mb until
    its deadline); ``edf_backlog`` = squash(remaining of it and of every transfer ahead of it in EDF
    order / forecast Mb until its deadline), > 0.5 means EDF expects it to miss; ``edf_share`` (the
    share EDF would give it now); active flag. squash(x) = x / (1 + x).

    Action ``Box(-1, 1, (K,))``, one value per EDF position (values on empty positions ignored):

    * ``mode="residual"`` (default): residual on EDF's shares. EDF serves in deadline order, each
      transfer getting the share it can use this step on the forecast link (``remaining /
      (forecast * dt)``) until the link is full. Here position ``j`` asks for that share times
      ``exp(demand_scale * a_j)`` (more than it needs, as a margin against a forecast that is too
      high, or less, to leave room for the others), then the same greedy fill. A zero action *is*
      EDF (with ``margin``: EDF asking ``margin`` times what it can use, the ``edf_margin``
      baseline, see :class:`~novacron.prediction.allocation.EarliestDeadlineFirst`): learning
      starts at the baseline.
    * ``mode="reorder"``: the service order is by ``position - reorder * a_j`` (a_j = +1 moves a
      transfer up to ``reorder`` positions earlier), then EDF's greedy fill (with ``margin``); zero
      is EDF too.
    * ``mode="softmax"``: shares are the softmax of ``logit_scale * a`` over the active transfers,
      water-filled (capped at what each can use this step, the rest to the others).

    All give shares summing to 1 over the active transfers: never over-allocated, never idle while
    something is active.
    """

    MODES = ("residual", "reorder", "softmax")

    def __init__(
        self,
        env: gym.Env,
        *,
        mode: str = "residual",
        demand_scale: float = float(np.log(4.0)),
        margin: float = 1.0,
        reorder: float = 4.0,
        logit_scale: float = 3.0,
    ) -> None:
        super().__init__(env)
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}, got {mode!r}")
        if margin <= 0:
            raise ValueError(f"margin must be > 0, got {margin}")
        self.mode, self.demand_scale, self.margin = mode, float(demand_scale), float(margin)
        self.reorder, self.logit_scale = float(reorder), float(logit_scale)
        base: BandwidthAllocationEnv = env.unwrapped  # type: ignore[assignment]
        self.base = base
        k = base.max_transfers
        self.n_global = base.history + base.horizon + 1
        size = self.n_global + 1 + k * len(RANKED_FEATURES)
        self.observation_space = spaces.Box(0.0, 1.0, shape=(size,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(k,), dtype=np.float32)
        self._ranked = np.zeros(0, dtype=int)  # slot index of each EDF position (active only)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        return self._observation(obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(self.shares(action))
        return self._observation(obs), reward, terminated, truncated, info

    def shares(self, action) -> np.ndarray:
        """The env action (shares per slot) for a wrapper action (scores per EDF position)."""
        env = self.base
        out = np.zeros(env.max_transfers, dtype=np.float32)
        n = len(self._ranked)
        if n == 0:
            return out
        score = np.clip(np.asarray(action, dtype=float).reshape(-1)[:n], -1.0, 1.0)
        if self.mode == "residual":
            shares = greedy_fill(self.margin * self._usable * np.exp(self.demand_scale * score), range(n))
        elif self.mode == "reorder":
            key = np.arange(n) - self.reorder * score
            order = np.argsort(key, kind="stable")
            shares = greedy_fill(self.margin * self._usable, order)
        else:
            logits = self.logit_scale * score
            shares = water_fill(np.exp(logits - logits.max()), self._usable)
        out[self._ranked] = shares
        return out

    def _observation(self, env_obs: np.ndarray) -> np.ndarray:
        env = self.base
        k, dt = env.max_transfers, env.dt
        slots, transfers = env.transfers()
        forecast = np.maximum(env.forecast(), 1e-3)
        order = edf_order(transfers)
        self._ranked = slots[order] if transfers else np.zeros(0, dtype=int)
        ranked = [transfers[i] for i in order]
        self._usable = usable_shares(forecast, ranked, dt) if ranked else np.zeros(0)
        per = np.zeros((k, len(RANKED_FEATURES)))
        if ranked:
            n = len(ranked)
            env_per = env_obs[self.n_global :].reshape(k, len(TRANSFER_FEATURES))[self._ranked]
            remaining = np.array([t.remaining_mb for t in ranked])
            steps = np.array([max(t.deadline_steps, 1) for t in ranked])
            cum = np.concatenate([[0.0], np.cumsum(forecast)])
            capacity = (
                cum[np.minimum(steps, len(forecast))] + np.maximum(steps - len(forecast), 0) * forecast[-1]
            ) * dt
            per[:n, 0:4] = env_per[:, 0:4]
            per[:n, 4] = _squash(remaining / capacity)
            per[:n, 5] = _squash(np.cumsum(remaining) / capacity)
            per[:n, 6] = greedy_fill(self._usable, range(n))
            per[:n, 7] = 1.0
        busy = float(env.active.sum()) / k
        obs = np.concatenate([env_obs[: self.n_global], [busy], per.ravel()])
        return np.clip(obs, 0.0, 1.0).astype(np.float32)


class PairedBaselineReward(gym.Wrapper):
    """Training-only control variate: reward minus a baseline allocator's reward on the same episode.

    Alongside the wrapped env, a *shadow* copy of its :class:`BandwidthAllocationEnv` replays the
    same episode (same reset seed: same trace, same arrivals) under ``allocator``, and the reward
    passed on at step ``t`` is ``r_t - b_t``, ``b_t`` the shadow's reward at step ``t``. In this env
    the trace and the arrivals do not depend on the actions, so ``b_t`` is a function of the episode
    alone: subtracting it changes neither the policy gradient's expectation nor the optimal policy,
    but it removes most of the variance (how fast the link happens to be), which otherwise swamps
    the small differences between good allocators. ``info["env_reward"]`` keeps the env's reward.

    Resets without a seed (SB3's auto-reset) draw one from the wrapper's own generator, so both
    copies always see the same episode. Evaluate with the plain env: this wrapper is for training.
    """

    def __init__(self, env: gym.Env, allocator: Allocator) -> None:
        super().__init__(env)
        base: BandwidthAllocationEnv = env.unwrapped  # type: ignore[assignment]
        self.shadow = copy.copy(base)  # same traces and parameters; state is rebuilt by reset()
        self.shadow.np_random = np.random.default_rng(0)
        self.allocator = allocator
        self._seeds = np.random.default_rng()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self._seeds = np.random.default_rng(seed)
        episode_seed = int(self._seeds.integers(2**31 - 1))
        obs, info = self.env.reset(seed=episode_seed, options=options)
        self.shadow.reset(seed=episode_seed, options=options)
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        _, baseline, *_ = self.shadow.step(allocator_action(self.shadow, self.allocator))
        info["env_reward"] = reward
        return obs, float(reward - baseline), terminated, truncated, info


class LearnedAllocator(Allocator):
    """A policy trained on :class:`ScoredAllocationWrapper` as an :class:`Allocator`: usable
    wherever the baselines are (the environment, :class:`~novacron.prediction.transfers.
    AllocatedSender` over AMST).

    Each call rebuilds the wrapper's observation from the capacity samples seen and the transfers
    (:meth:`BandwidthAllocationEnv.set_state`, the training code itself), normalises it with the
    training statistics, takes the policy's deterministic action and maps it to shares as the
    wrapper does. Before ``history`` samples have been seen the missing ones are taken to be the
    forecast. With more transfers than the policy has slots, the ``max_transfers`` earliest
    deadlines are served and the rest wait (share 0). Forecasts: EWMA, as in training.
    """

    name = "learned"

    def __init__(self, policy, settings: dict[str, Any], *, name: str = "learned", **env_options) -> None:
        super().__init__()
        self.policy, self.name = policy, name
        self._history: Sequence[float] | None = None
        self.env = BandwidthAllocationEnv(traces=[pd.DataFrame({MBPS: np.ones(32)})], **env_options)
        self.predictor = self.env.predictor
        self.wrapper = ScoredAllocationWrapper(
            self.env,
            mode=settings["mode"],
            demand_scale=settings["demand_scale"],
            margin=settings["margin"],
            reorder=settings["reorder"],
            logit_scale=settings["logit_scale"],
        )
        mean, var = settings.get("obs_mean"), settings.get("obs_var")
        self.obs_mean = None if mean is None else np.asarray(mean, dtype=np.float32)
        self.obs_std = None if var is None else np.sqrt(np.asarray(var, dtype=np.float32) + 1e-8)
        expected = self.wrapper.observation_space.shape
        shapes = {
            "the policy's observations": tuple(policy.observation_space.shape),
            "the observation statistics": None if mean is None else self.obs_mean.shape,
        }
        wrong = {what: shape for what, shape in shapes.items() if shape is not None and shape != expected}
        if wrong:  # trained with other env settings (say, max_transfers): fail now, not mid-run
            found = ", ".join(f"{what} {shape}" for what, shape in wrong.items())
            raise ValueError(f"this environment's observations are {expected}, but {found}")

    @classmethod
    def load(cls, path: str | Path, **env_options) -> LearnedAllocator:
        """A policy saved by ``experiments/pba_allocation.py`` (``<path>.zip`` and ``<path>.json``)."""
        import json

        from stable_baselines3.common.policies import ActorCriticPolicy

        path = Path(path)
        settings = json.loads(path.with_suffix(".json").read_text())
        policy = ActorCriticPolicy.load(str(path.with_suffix(".zip")), device="cpu")
        policy.set_training_mode(False)
        return cls(policy, settings, name=path.name, **env_options)

    def allocate(self, capacity_forecast, transfers, dt=1.0, history=None):
        self._history = history
        return super().allocate(capacity_forecast, transfers, dt, history)

    def shares(self, forecast, transfers, dt):
        env = self.env
        seen = np.asarray(self._history if self._history is not None else [], dtype=float).reshape(-1)
        if len(seen) < env.history:
            seen = np.concatenate([np.full(env.history - len(seen), float(forecast[0])), seen])
        order = edf_order(transfers)[: env.max_transfers]
        served = [transfers[i] for i in order]
        obs = self.wrapper._observation(env.set_state(seen, served))
        if self.obs_mean is not None:
            obs = np.clip((obs - self.obs_mean) / self.obs_std, -10.0, 10.0).astype(np.float32)
        action = self.policy.predict(obs, deterministic=True)[0]
        slot_shares = self.wrapper.shares(action)
        shares = np.zeros(len(transfers))
        shares[order] = slot_shares[: len(served)]
        return shares
