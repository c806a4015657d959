"""The analytic model of pre-copy, to check the engine against (and to reason with).

Clark et al. (NSDI 2005) and Akoush et al. (MASCOTS 2010) model pre-copy as a geometric series:
round 0 sends the whole memory ``M`` at rate ``R``; while round ``i`` runs for ``T_i = V_i / R``,
the guest dirties ``D * T_i`` pages, which round ``i + 1`` sends; iteration stops when the next
round's expected time ``V_{i+1} / R`` fits the downtime limit (or after ``max_rounds``), and that
last volume is the stop-and-copy. With writes spread uniformly over a writable working set of
``W`` pages, ``D * T`` distinct pages saturate: the expected number dirtied is
``W * (1 - exp(-D * T / W))`` (each page escapes ``D*T`` writes with probability
``(1 - 1/W)^(D*T)``); for ``W`` much larger than ``D * T`` this is Clark's ``D * T``.

The model holds for :class:`~.workload.UniformWorkload` on a link with no loss and no other
traffic, without compression (every page costs the same on the wire) and without auto-converge;
``per_page_overhead`` adds the batch format's bytes per page (:mod:`.pages`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .driver import PAGE_SIZE


@dataclass(frozen=True)
class ModelResult:
    rounds: list[float] = field(default_factory=list)  # pages sent per pre-copy round
    stop_pages: float = 0.0  # pages sent while paused
    round_seconds: list[float] = field(default_factory=list)
    total_time: float = 0.0
    downtime: float = 0.0
    converged: bool = False


def precopy(
    memory_pages: int,
    dirty_rate: float,
    working_set: int,
    link_bps: float,
    *,
    max_downtime: float = 0.3,
    max_rounds: int = 30,
    page_size: int = PAGE_SIZE,
    per_page_overhead: int = 5,
) -> ModelResult:
    """Expected pre-copy behaviour for uniform writes (``dirty_rate`` page writes/s)."""
    if link_bps <= 0:
        raise ValueError(f"link_bps must be > 0, got {link_bps}")
    rate = link_bps / 8 / (page_size + per_page_overhead)  # pages per second
    volume = float(memory_pages)
    rounds, seconds = [], []
    converged = False
    for _ in range(max_rounds):
        t = volume / rate
        rounds.append(volume)
        seconds.append(t)
        dirty_writes = dirty_rate * t
        volume = working_set * (1.0 - math.exp(-dirty_writes / working_set)) if working_set else 0.0
        if volume / rate <= max_downtime:
            converged = True
            break
    downtime = volume / rate
    return ModelResult(rounds, volume, seconds, sum(seconds) + downtime, downtime, converged)
