"""``novacron/Placement-v0``: place tasks from a real cluster trace on hosts spread over regions.

Each step decides one task (the simulator in :mod:`novacron.placement.state`
presents queued tasks in arrival order and skips those that fit nowhere right now).

Observation
    A flat float32 vector in [0, 1]: for each of ``max_hosts`` slots
    :data:`HOST_FEATURES` (all zero for absent slots), then :data:`TASK_FEATURES`
    of the current task. Per host: presence flag, free and total CPU/memory/GPU,
    GPUs that could take the task, region, RTT to the task's origin, fits flag,
    whether the host is in the origin's nearest region, the free CPU/memory/GPU
    shares left if the task went there (a best-fit signal), the time until its
    next running task ends (in units of the patience ``max_wait``), the share it
    gets back within one patience window, and whether the task would fit once
    that is back. Per task: its demands, origin, lifetime, time waited, queue
    length and episode progress, then its resource-time (dominant share of the
    cluster times lifetime over ``max_wait``, log-scaled), the undecided and
    total queued tasks, cluster CPU and GPU utilisation, the share of hosts
    that fit it, whether a host in its nearest region fits, and the queue's
    total dominant share. CPU and memory are scaled by the largest host of the
    node list, GPU by 8 GPUs x 1000 milli, RTT by the largest RTT between the
    cluster's regions, lifetimes by ``log1p`` of a 30-day lifetime.

Action
    ``Discrete(max_hosts + 1)``: a host slot, or ``max_hosts`` to defer (the task
    stays queued until the next arrival or departure and may run out of
    patience). :meth:`PlacementEnv.action_masks` allows only hosts where the
    task fits, plus defer; an action outside the mask is treated as defer and
    flagged in ``info["invalid_action"]``.

Reward (primary objective)
    Latency-weighted acceptance: ``1 - 0.25 * rtt / rtt_max`` when a task is
    placed, 0 otherwise (deferring, or a task rejected after waiting too long).
    The return divided by the number of tasks is the ``score`` of
    :mod:`novacron.placement.metrics`, the number the heuristics are compared on.

Episodes are deterministic under ``reset(seed=...)``: the seed picks the task
window, origins and arrival scaling (and, with ``loads=(...)``, the episode's
load among those); the hosts are fixed by ``cluster_seed``. ``options={"load": x}``
sets one episode's load.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from novacron.placement.cluster import DEFAULT_NODES, DEFAULT_PODS, GPU_MILLI, MAX_GPUS
from novacron.placement.metrics import placement_reward, summarise
from novacron.placement.scenario import Scenario, cached_hosts
from novacron.placement.state import PlacementSim

HOST_FEATURES = (
    "present",
    "cpu_free",
    "cpu_total",
    "mem_free",
    "mem_total",
    "gpu_free",
    "gpu_total",
    "gpus_fitting_task",
    "region",
    "rtt_to_origin",
    "fits",
    "local",
    "cpu_free_after",
    "mem_free_after",
    "gpu_free_after",
    "next_release",
    "releasing_share",
    "fits_after_release",
)
TASK_FEATURES = (
    "cpu",
    "mem",
    "num_gpu",
    "gpu_milli",
    "origin",
    "log_duration",
    "waited",
    "queue_length",
    "progress",
    "log_area",
    "queue_behind",
    "queue_total",
    "cpu_utilisation",
    "gpu_utilisation",
    "hosts_fitting",
    "local_fits",
    "queue_area",
)
_MAX_LIFETIME_S = 30 * 86400.0


class PlacementEnv(gym.Env):
    """Task placement on a heterogeneous multi-region cluster (see the module doc)."""

    metadata = {"render_modes": []}

    def __init__(
        self,
        *,
        nodes: str | Path = DEFAULT_NODES,
        pods: str | Path = DEFAULT_PODS,
        n_hosts: int = 16,
        max_hosts: int | None = None,
        n_tasks: int = 512,
        load: float = 0.8,
        cluster_seed: int = 0,
        split: str = "train",
        max_wait: float | None = None,
        scenario: Scenario | None = None,
        loads: tuple[float, ...] | list[float] | None = None,
        shaping: float = 0.0,
        shaping_gamma: float = 0.99,
    ) -> None:
        super().__init__()
        if scenario is None:
            scenario = Scenario(
                nodes=nodes,
                pods=pods,
                n_hosts=n_hosts,
                n_tasks=n_tasks,
                load=load,
                cluster_seed=cluster_seed,
                split=split,
                max_wait=max_wait,
            )
        self.scenario = scenario
        #: when given, each reset without an explicit ``options["load"]`` draws one of these loads
        self.loads = tuple(float(x) for x in loads) if loads else None
        #: potential-based shaping (Ng et al. 1999): reward + gamma * phi(s') - phi(s), with
        #: phi = -shaping * (committed resource-time of running tasks, in cluster x max_wait units)
        self.shaping, self.shaping_gamma = float(shaping), float(shaping_gamma)
        self.max_hosts = scenario.n_hosts if max_hosts is None else int(max_hosts)
        if self.max_hosts < scenario.n_hosts:
            raise ValueError(f"max_hosts ({self.max_hosts}) < n_hosts ({scenario.n_hosts})")
        self.cluster = scenario.cluster()
        all_hosts = cached_hosts(str(scenario.nodes))
        self._cpu_norm = float(all_hosts.cpu.max())
        self._mem_norm = float(all_hosts.mem.max())
        self._rtt_norm = float(self.cluster.rtt_ms.max())
        self._region_norm = float(max(len(self.cluster.regions) - 1, 1))
        self.defer_action = self.max_hosts
        size = self.max_hosts * len(HOST_FEATURES) + len(TASK_FEATURES)
        self.observation_space = spaces.Box(0.0, 1.0, shape=(size,), dtype=np.float32)
        self.action_space = spaces.Discrete(self.max_hosts + 1)
        self.sim: PlacementSim | None = None
        self._static = self._static_host_features()
        h = self.cluster.hosts
        self._totals = (float(h.cpu.sum()), float(h.mem.sum()), float(h.gpus.sum() * GPU_MILLI))

    # ------------------------------------------------------------------ gymnasium API

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        episode_seed = int(self.np_random.integers(0, 2**31 - 1))
        scenario = self.scenario
        if options and "load" in options:
            scenario = replace(scenario, load=float(options["load"]))
        elif self.loads:
            scenario = replace(scenario, load=self.loads[int(self.np_random.integers(len(self.loads)))])
        self.sim = scenario.episode(episode_seed, self.cluster)
        self.episode_load = scenario.load
        self._phi = self._potential() if self.shaping else 0.0
        return self._observation(), {"episode_seed": episode_seed, "load": scenario.load}

    def step(self, action):
        sim = self._require_sim()
        if sim.done:
            raise RuntimeError("step() after the episode ended; call reset()")
        action = int(action)
        mask = self.action_masks()
        reward = 0.0
        invalid = not (0 <= action <= self.max_hosts and mask[action])
        if invalid or action == self.defer_action:
            sim.defer()
        else:
            rtt = sim.place(action)
            reward = placement_reward(rtt, self._rtt_norm)
        terminated = sim.done
        info: dict[str, Any] = {"invalid_action": invalid}
        if self.shaping:
            phi_next = 0.0 if terminated else self._potential()
            info["unshaped_reward"] = reward
            reward += self.shaping_gamma * phi_next - self._phi
            self._phi = phi_next
        if terminated:
            info["metrics"] = summarise(sim).as_dict()
            info["load"] = self.episode_load
        return self._observation(), float(reward), terminated, False, info

    def action_masks(self) -> np.ndarray:
        """Allowed actions: hosts where the current task fits, and defer (always)."""
        mask = np.zeros(self.max_hosts + 1, dtype=bool)
        sim = self.sim
        if sim is not None and not sim.done:
            mask[: sim.n_hosts] = sim.mask()
        mask[self.defer_action] = True
        return mask

    # ------------------------------------------------------------------ observation

    def _require_sim(self) -> PlacementSim:
        if self.sim is None:
            raise RuntimeError("call reset() first")
        return self.sim

    def _static_host_features(self) -> np.ndarray:
        h = self.cluster.hosts
        n = len(h)
        static = np.zeros((self.max_hosts, len(HOST_FEATURES)))
        static[:n, 0] = 1.0
        static[:n, 2] = h.cpu / self._cpu_norm
        static[:n, 4] = h.mem / self._mem_norm
        static[:n, 6] = h.gpus / MAX_GPUS
        static[:n, 8] = h.region / self._region_norm
        return static

    def _observation(self) -> np.ndarray:
        sim = self._require_sim()
        n = sim.n_hosts
        hosts = self._static.copy()
        hosts[:n, 1] = sim.cpu_free / self._cpu_norm
        hosts[:n, 3] = sim.mem_free / self._mem_norm
        gpu_free = np.clip(sim.gpu_free, 0.0, None).sum(axis=1)
        hosts[:n, 5] = gpu_free / (MAX_GPUS * GPU_MILLI)
        task_features = np.zeros(len(TASK_FEATURES))
        task = sim.current
        if task is not None:
            t = sim.tasks
            h = sim.cluster.hosts
            mask = sim.mask()
            rtt = sim.host_rtt_ms[t.origin[task]]
            local = rtt <= rtt.min()
            gpu_demand = float(t.num_gpu[task] * t.gpu_milli[task])
            gpu_cap = h.gpus * float(GPU_MILLI)
            if t.num_gpu[task] > 0:
                hosts[:n, 7] = (sim.gpu_free >= t.gpu_milli[task]).sum(axis=1) / MAX_GPUS
            hosts[:n, 9] = rtt / self._rtt_norm
            hosts[:n, 10] = mask
            hosts[:n, 11] = local
            # free shares of each host after placing the task there (best-fit signal)
            hosts[:n, 12] = (sim.cpu_free - t.cpu[task]) / h.cpu
            hosts[:n, 13] = (sim.mem_free - t.mem[task]) / h.mem
            hosts[:n, 14] = np.divide(gpu_free - gpu_demand, gpu_cap, out=np.zeros(n), where=gpu_cap > 0)
            # what the running tasks give back within the patience window
            rel = sim.releases()
            soon = rel.end - sim.clock <= sim.max_wait
            next_end = np.full(n, np.inf)
            np.minimum.at(next_end, rel.host, rel.end - sim.clock)
            hosts[:n, 15] = np.minimum(next_end / sim.max_wait, 1.0)
            cpu_back = np.bincount(rel.host[soon], weights=rel.cpu[soon], minlength=n)
            mem_back = np.bincount(rel.host[soon], weights=rel.mem[soon], minlength=n)
            gpu_back = np.bincount(rel.host[soon], weights=rel.gpu[soon], minlength=n)
            gpu_back_share = np.divide(gpu_back, gpu_cap, out=np.zeros(n), where=gpu_cap > 0)
            hosts[:n, 16] = np.maximum(cpu_back / h.cpu, gpu_back_share)
            hosts[:n, 17] = (
                (sim.cpu_free + cpu_back >= t.cpu[task])
                & (sim.mem_free + mem_back >= t.mem[task])
                & (gpu_free + gpu_back >= gpu_demand)
                & (h.gpus >= t.num_gpu[task])
            )
            undecided = len(sim.queue) - sim._cursor - 1
            queued = np.asarray(sim.queue, dtype=np.int64)
            task_features[:] = (
                t.cpu[task] / self._cpu_norm,
                t.mem[task] / self._mem_norm,
                t.num_gpu[task] / MAX_GPUS,
                t.gpu_milli[task] / GPU_MILLI,
                t.origin[task] / self._region_norm,
                np.log1p(t.duration[task]) / np.log1p(_MAX_LIFETIME_S),
                (sim.clock - t.arrival[task]) / sim.max_wait,
                len(sim.queue) / len(t),
                (sim.outcomes.placed.sum() + sim.outcomes.rejected.sum()) / len(t),
                # resource-time the task holds, as a share of the cluster over one patience window
                np.log10(max(self._dominant_share(task) * t.duration[task] / sim.max_wait, 1e-6)) / 6.0 + 1.0,
                undecided / 32.0,
                len(sim.queue) / 32.0,
                1.0 - sim.cpu_free.sum() / h.cpu.sum(),
                1.0 - gpu_free.sum() / gpu_cap.sum() if gpu_cap.sum() > 0 else 0.0,
                mask.sum() / n,
                float((mask & local).any()),
                sum(self._dominant_share(q) for q in queued[:64]) / 2.0,
            )
        obs = np.concatenate([hosts.ravel(), task_features])
        return np.clip(obs, 0.0, 1.0).astype(np.float32)

    def _potential(self) -> float:
        sim = self._require_sim()
        rel = sim.releases()
        if len(rel.end) == 0:
            return 0.0
        totals = self._totals
        share = np.maximum(rel.cpu / totals[0], rel.mem / totals[1])
        if totals[2] > 0:
            share = np.maximum(share, rel.gpu / totals[2])
        return -self.shaping * float((share * (rel.end - sim.clock)).sum()) / sim.max_wait

    def _dominant_share(self, task: int) -> float:
        """The task's largest demand as a share of the cluster's total CPU, memory or GPU."""
        sim = self.sim
        t = sim.tasks
        totals = self._totals
        share = max(t.cpu[task] / totals[0], t.mem[task] / totals[1])
        if totals[2] > 0:
            share = max(share, t.num_gpu[task] * t.gpu_milli[task] / totals[2])
        return float(share)
