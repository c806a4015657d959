"""A simulated node's processor: a fixed number of cores that protocol work queues for.

Protocol code reports the CPU time of what it just did with ``rt.compute(seconds)`` (compression,
hashing, signatures; from a calibrated cost model). Without a core count the simulator lets such
work overlap freely, which is right for one job at a time but flatters a node doing several:
two migrations leaving one host, or a PBFT replica verifying a burst of requests. With ``cores``
set, each piece of work takes the core that frees up first, in the order it was asked for
(first come, first served, no preemption), so the node's work can never exceed its cores.
"""

from __future__ import annotations

from heapq import heapreplace


def check_cores(cores: object) -> int:
    """``cores`` if it is a usable core count, else a ValueError saying what is wrong."""
    if isinstance(cores, bool) or not isinstance(cores, int) or cores < 1:
        raise ValueError(f"cores must be a whole number >= 1, got {cores!r}")
    return cores


class Cpu:
    """``cores`` cores booked first come, first served, in virtual time."""

    __slots__ = ("cores", "_free_at", "busy_seconds", "waited_seconds", "jobs")

    def __init__(self, cores: int) -> None:
        self.cores = check_cores(cores)
        self._free_at = [0.0] * cores  # a heap: when each core is next free
        #: CPU seconds booked so far, and seconds work spent waiting for a core (queueing delay)
        self.busy_seconds = 0.0
        self.waited_seconds = 0.0
        self.jobs = 0

    def book(self, now: float, seconds: float) -> tuple[float, float]:
        """Book ``seconds`` of work asked for at ``now``; return when it starts and finishes."""
        start = max(now, self._free_at[0])
        finish = start + seconds
        heapreplace(self._free_at, finish)
        self.busy_seconds += seconds
        self.waited_seconds += start - now
        self.jobs += 1
        return start, finish

    def busy_by(self, t: float) -> float:
        """CPU seconds of work done by time ``t`` (not before the last booking): what is booked
        past ``t`` keeps a core busy from ``t`` on, so it is each core's free-at time beyond ``t``."""
        return self.busy_seconds - sum(max(0.0, free - t) for free in self._free_at)
