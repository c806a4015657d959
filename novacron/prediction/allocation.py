"""Bandwidth allocation for AMST: per-transfer shares and stream counts from a capacity forecast.

An :class:`Allocator` answers: given the forecast link capacity for the next steps (Mbps, one value
per step) and the transfers in flight (remaining megabits, steps to deadline, priority), what share
of the link should each transfer get now, and how many parallel streams should AMST open for it?

Shares are fractions of the link capacity, non-negative, summing to at most 1. Stream counts follow
the share linearly inside AMST's ``[min_streams, max_streams]`` range (internet mode: 4-16); a
transfer with share 0 is paused (0 streams). See :func:`streams_for`.

The four baselines:

* :class:`EqualShare`: ``1/n`` each;
* :class:`ProportionalToRemaining`: share proportional to the remaining megabits;
* :class:`EarliestDeadlineFirst`: in deadline order (ties: higher priority, then smaller remaining),
  each transfer gets everything it can use this step (``remaining / (forecast * dt)``, times an
  optional safety ``margin``, 1 by default) until the link is full; any leftover is spread over the
  served transfers in proportion to their shares;
* :class:`RobustMPCAllocator`: plans over the forecast horizon with a conservative forecast
  (RobustMPC: harmonic mean discounted by the recent error). In deadline order it admits each
  transfer whose deadline is still feasible, reserving the constant rate it needs to finish on time
  (``remaining / capacity until its deadline``); transfers that cannot make it are admitted last,
  highest priority first. Leftover capacity goes to admitted transfers in proportion to
  ``priority * remaining``.

The allocators are plain Python and numpy: usable outside the gymnasium environment
(:mod:`novacron.sim.envs.bandwidth`), which only replays traces against them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from novacron.prediction.predictors import FLOOR_MBPS, Predictor, RobustMPC

#: AMST internet-mode stream range (novacron.transport.policy.MODE_STREAMS["internet"])
DEFAULT_MIN_STREAMS = 4
DEFAULT_MAX_STREAMS = 16


@dataclass(frozen=True)
class Transfer:
    """One transfer in flight.

    ``remaining_mb``: megabits still to deliver; ``deadline_steps``: steps left before the deadline
    (the transfer must finish within this many steps, >= 1); ``priority`` in (0, 1], higher matters
    more (the environment weighs a deadline miss by it).
    """

    remaining_mb: float
    deadline_steps: int
    priority: float = 1.0


@dataclass
class Allocation:
    """Shares (fractions of the link, sum <= 1) and AMST stream counts, one per transfer."""

    shares: np.ndarray
    streams: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))


def streams_for(
    shares: np.ndarray, min_streams: int = DEFAULT_MIN_STREAMS, max_streams: int = DEFAULT_MAX_STREAMS
) -> np.ndarray:
    """Stream counts proportional to share inside ``[min_streams, max_streams]``; share 0 -> 0 streams."""
    if not 1 <= min_streams <= max_streams:
        raise ValueError(f"need 1 <= min_streams <= max_streams, got {min_streams}, {max_streams}")
    shares = np.clip(np.asarray(shares, dtype=float), 0.0, 1.0)
    streams = np.rint(min_streams + shares * (max_streams - min_streams)).astype(int)
    return np.where(shares > 0, streams, 0)


def _fill(shares: np.ndarray) -> np.ndarray:
    """Scale non-zero shares up so they sum to 1 (a work-conserving allocator leaves nothing idle)."""
    total = shares.sum()
    return shares / total if total > 0 else shares


class Allocator(ABC):
    """Sets per-transfer shares (and AMST stream counts) from a capacity forecast."""

    #: short name used in tables
    name: str = "allocator"
    #: the predictor whose forecast this allocator wants (None: whatever the caller forecasts)
    predictor: Predictor | None = None

    def __init__(self, min_streams: int = DEFAULT_MIN_STREAMS, max_streams: int = DEFAULT_MAX_STREAMS):
        self.min_streams = min_streams
        self.max_streams = max_streams

    def allocate(
        self,
        capacity_forecast: Sequence[float],
        transfers: Sequence[Transfer],
        dt: float = 1.0,
        history: Sequence[float] | None = None,
    ) -> Allocation:
        """Shares and stream counts for ``transfers`` (in their order) given the forecast (Mbps per step).

        ``history``: the capacity samples seen so far (Mbps, oldest first), for allocators that look
        at more than the forecast (a learned one, :class:`novacron.sim.envs.bandwidth.LearnedAllocator`);
        the baselines ignore it."""
        forecast = np.maximum(np.asarray(capacity_forecast, dtype=float).reshape(-1), FLOOR_MBPS)
        if len(forecast) == 0:
            raise ValueError("capacity_forecast needs at least one step")
        if not transfers:
            return Allocation(np.zeros(0), np.zeros(0, dtype=int))
        shares = np.clip(self.shares(forecast, list(transfers), dt), 0.0, 1.0)
        if shares.sum() > 1:
            shares = shares / shares.sum()
        return Allocation(shares, streams_for(shares, self.min_streams, self.max_streams))

    @abstractmethod
    def shares(self, forecast: np.ndarray, transfers: list[Transfer], dt: float) -> np.ndarray:
        """Raw shares, one per transfer (clipped and normalised by :meth:`allocate`)."""


class EqualShare(Allocator):
    name = "equal"

    def shares(self, forecast, transfers, dt):
        return np.full(len(transfers), 1.0 / len(transfers))


class ProportionalToRemaining(Allocator):
    name = "proportional"

    def shares(self, forecast, transfers, dt):
        remaining = np.array([t.remaining_mb for t in transfers], dtype=float)
        if remaining.sum() <= 0:
            return np.full(len(transfers), 1.0 / len(transfers))
        return remaining / remaining.sum()


def _edf_order(transfers: list[Transfer]) -> list[int]:
    return sorted(
        range(len(transfers)),
        key=lambda i: (transfers[i].deadline_steps, -transfers[i].priority, transfers[i].remaining_mb),
    )


def edf_order(transfers: Sequence[Transfer]) -> list[int]:
    """Indices of ``transfers`` in EDF service order: deadline, then higher priority, then smaller."""
    return _edf_order(list(transfers))


def usable_shares(forecast: np.ndarray, transfers: Sequence[Transfer], dt: float) -> np.ndarray:
    """The share of the link each transfer can use this step: ``remaining / (forecast[0] * dt)``."""
    first = max(float(np.asarray(forecast, dtype=float).reshape(-1)[0]), FLOOR_MBPS)
    return np.array([t.remaining_mb for t in transfers], dtype=float) / (first * dt)


def greedy_fill(usable: np.ndarray, order: Sequence[int]) -> np.ndarray:
    """Serve in ``order``: each gets ``min(usable, what is left)`` until the link is full; then any
    leftover is spread over the served ones in proportion to their shares (work-conserving).

    This is EDF's fill with the service order as a parameter: the learned allocator
    (:class:`novacron.sim.envs.bandwidth.ScoredAllocationWrapper`) only changes the order.
    """
    usable = np.asarray(usable, dtype=float)
    shares = np.zeros(len(usable))
    budget = 1.0
    for i in order:
        shares[i] = min(max(usable[i], 0.0), budget)
        budget -= shares[i]
        if budget <= 0:
            break
    return _fill(shares)


def water_fill(weights: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Shares proportional to ``weights`` (> 0), capped at ``usable``; what a capped transfer cannot
    use goes to the others in proportion to their weights. Sums to 1 (if everyone is capped, the
    leftover is spread in proportion to the capped shares, as :func:`greedy_fill` does)."""
    weights = np.maximum(np.asarray(weights, dtype=float), 0.0)
    usable = np.maximum(np.asarray(usable, dtype=float), 0.0)
    shares = np.zeros(len(weights))
    free = weights > 0
    budget = 1.0
    while budget > 1e-12 and free.any():
        proposal = budget * weights * free / weights[free].sum()
        capped = free & (shares + proposal >= usable)
        if not capped.any():
            shares += proposal
            budget = 0.0
            break
        budget -= float((usable[capped] - shares[capped]).sum())
        shares[capped] = usable[capped]
        free &= ~capped
    return _fill(shares)


class EarliestDeadlineFirst(Allocator):
    """EDF; ``margin`` > 1 asks ``margin`` times the share a transfer can use on the forecast link, a
    cushion against forecast errors (1: the plain baseline; tuned on validation files in
    ``experiments/pba_allocation.py``, where it is reported as ``edf_margin``)."""

    name = "edf"

    def __init__(self, *args, margin: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        if margin <= 0:
            raise ValueError(f"margin must be > 0, got {margin}")
        self.margin = float(margin)
        if self.margin != 1.0:
            self.name = "edf_margin"

    def shares(self, forecast, transfers, dt):
        return greedy_fill(self.margin * usable_shares(forecast, transfers, dt), _edf_order(transfers))


class RobustMPCAllocator(Allocator):
    name = "robust_mpc"

    def __init__(self, *args, predictor: Predictor | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.predictor = RobustMPC() if predictor is None else predictor

    def shares(self, forecast, transfers, dt):
        def capacity_until(steps: int) -> float:  # Mb deliverable in the next `steps` steps
            tail = max(steps - len(forecast), 0) * forecast[-1]  # extend the forecast flat
            return float((forecast[:steps].sum() + tail) * dt)

        shares = np.zeros(len(transfers))
        budget = 1.0
        committed_mb = 0.0  # Mb reserved, by earlier deadlines, inside the horizon being checked
        late: list[int] = []
        for i in _edf_order(transfers):
            t = transfers[i]
            steps = max(int(t.deadline_steps), 1)
            cap = capacity_until(steps)
            if committed_mb + t.remaining_mb > cap:  # infeasible with what is already promised
                late.append(i)
                continue
            rate_share = t.remaining_mb / cap  # constant share of the link that finishes it on time
            shares[i] = min(rate_share, budget)
            budget -= shares[i]
            committed_mb += t.remaining_mb
        for i in sorted(late, key=lambda i: -transfers[i].priority):
            if budget <= 0:
                break
            usable = transfers[i].remaining_mb / (forecast[0] * dt)
            shares[i] = min(usable, budget)
            budget -= shares[i]
        if budget > 1e-12:
            weight = np.array([t.priority * t.remaining_mb for t in transfers]) * (shares > 0)
            if weight.sum() <= 0:
                weight = np.array([t.priority * t.remaining_mb for t in transfers])
            if weight.sum() > 0:
                shares = shares + budget * weight / weight.sum()
        return shares


def baselines() -> list[Allocator]:
    """The four baseline allocators, in reporting order."""
    return [EqualShare(), ProportionalToRemaining(), EarliestDeadlineFirst(), RobustMPCAllocator()]


__all__ = [
    "Allocation",
    "Allocator",
    "EarliestDeadlineFirst",
    "EqualShare",
    "ProportionalToRemaining",
    "RobustMPCAllocator",
    "Transfer",
    "baselines",
    "edf_order",
    "greedy_fill",
    "streams_for",
    "usable_shares",
    "water_fill",
]
