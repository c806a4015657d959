"""Bandwidth allocators on the environment's episodes: in the environment, and over AMST.

``novacron/BandwidthAllocation-v0`` scores an allocator on an idealised link: shares are paced
exactly, a step's capacity is known once it is over, and nothing costs a round trip.
:func:`over_amst` plays the *same episode* (:meth:`BandwidthAllocationEnv.episode`) through the
protocol stack instead: node ``x`` sends each transfer to ``y`` as a job of
:class:`~novacron.prediction.transfers.AllocatedSender` (pieces of a window over AMST, the
forecast made from the throughput it measures), over a link whose capacity replays the episode's
trace, with a round trip of ``rtt``. As in the environment at most ``max_transfers`` are in flight
(an arrival that finds them all busy is dropped and counts as a miss), and the run ends with the
trace: transfers whose deadline falls later are not counted.

Both return the same metrics: deadline misses, priority-weighted misses (the reward's penalty) and
goodput over capacity; :func:`over_amst` also counts the misses that had at least
:data:`NEARLY_DONE` of their bytes delivered (an allocator that plans to finish just in time loses
those to the transport's delays, which the environment does not have).
``experiments/pba_amst.py`` and ``novacron pba allocate --over-amst`` use them.
"""

from __future__ import annotations

import numpy as np

from novacron.prediction.allocation import Allocator
from novacron.prediction.transfers import AllocatedReceiver, AllocatedSender
from novacron.runtime import VirtualPayload
from novacron.transport import AMST

from . import topologies
from .envs.bandwidth import AllocationEpisode, BandwidthAllocationEnv, allocator_action
from .simulation import Simulation

#: a 3G-like round trip (the shipped traces are HSDPA and fixed broadband)
DEFAULT_RTT = 0.1
#: a missed transfer with this share of its bytes delivered at its deadline missed by a hair
NEARLY_DONE = 0.95


def in_env(
    env: BandwidthAllocationEnv, allocator: Allocator, seed: int, trace_index: int | None = None
) -> dict:
    """The environment's own metrics for ``allocator`` on episode ``reset(seed=seed)``."""
    env.reset(seed=seed, options=None if trace_index is None else {"trace_index": trace_index})
    goodput_terms, total, done = 0.0, 0.0, False
    while not done:
        _, reward, _, done, info = env.step(allocator_action(env, allocator))
        total += reward
        goodput_terms += info["delivered_mb"] / info["capacity_mb"] if info["capacity_mb"] > 0 else 0.0
    metrics = env.metrics()
    return {
        "misses": metrics["misses"],
        "weighted_misses": goodput_terms - total,  # allocators never over-allocate: no such term
        "goodput_over_capacity": metrics["goodput_over_capacity"],
    }


def over_amst(
    episode: AllocationEpisode,
    allocator: Allocator,
    *,
    rtt: float = DEFAULT_RTT,
    seed: int = 0,
    true_forecast: bool = False,
    sender_options: dict | None = None,
) -> dict:
    """``episode`` sent over AMST in the simulator, shared by ``allocator`` (see the module doc).

    ``true_forecast``: the sender is told the trace's next samples instead of forecasting from its
    measurements (a diagnostic: what remains of the gap to the environment is the transport's).
    ``seed`` seeds the simulation (the link itself has no randomness; AMST's scheduling may).
    ``sender_options``: more keyword arguments for the sender (say ``window`` and ``pieces``).
    """
    dt, trace = episode.dt, episode.trace
    end = len(trace) * dt
    sim = Simulation(topologies.pair(rtt=rtt, nic_bandwidth=10e9), seed=seed)
    sim.faults.replay_bandwidth(sim.faults.links_between_sites("a", "b"), np.arange(len(trace)) * dt, trace)

    def truth(now: float, horizon: int) -> np.ndarray:
        first = min(int(now / dt), len(trace) - 1)
        ahead = trace[first : first + horizon]
        return np.concatenate([ahead, np.full(horizon - len(ahead), trace[-1])])

    def node(rt):
        amst = AMST(rt)
        if rt.node_id == "y":
            return AllocatedReceiver(rt, amst, lambda src, name, payload: None)
        return AllocatedSender(
            rt,
            amst,
            "y",
            allocator,
            initial_mbps=float(np.mean(episode.history)),
            step=dt,
            horizon=episode.horizon,
            forecaster=truth if true_forecast else None,
            **(sender_options or {}),
        )

    sim.start(node)

    async def drive(rt):
        sender: AllocatedSender = rt.app
        runner = rt.spawn(sender.run())
        dropped = []
        for i, (step, size_mb, deadline_steps, priority) in enumerate(episode.arrivals):
            await rt.sleep(max(0.0, step * dt - rt.now()))
            if sender.in_flight >= episode.max_transfers:
                dropped.append(priority)
                continue
            nbytes = max(1, int(round(size_mb * 1e6 / 8)))
            sender.submit(f"t{i}", VirtualPayload(nbytes), rt.now() + deadline_steps * dt, priority)
        await rt.sleep(max(0.0, end - rt.now()))
        sender.close()
        await runner
        return sender, dropped

    sender, dropped = sim.run_until_complete("x", drive, timeout=10 * end + 60)
    missed = [o for o in sender.outcomes if not o.met and o.deadline <= end + 1e-9]
    delivered_mb = sum(o.delivered for o in sender.outcomes) * 8 / 1e6
    return {
        "misses": float(len(missed) + len(dropped)),
        "weighted_misses": float(sum(o.priority for o in missed) + sum(dropped)),
        "goodput_over_capacity": delivered_mb / float(trace.sum() * dt),
        "misses_nearly_done": float(sum(o.delivered >= NEARLY_DONE * o.nbytes for o in missed)),
    }
