"""Dirtying workloads: which pages a running guest writes in a stretch of vCPU time.

A workload answers one question, ``writes(start, seconds, rng)``: the page ids written during
``seconds`` of guest run time starting at guest time ``start`` (ids may repeat; a page written
twice is still one dirty page). Throttling is the caller's business: a guest throttled to 30% runs
``0.7 * dt`` seconds in ``dt`` of wall time, so it writes that much less.

Three shapes, as in the pre-copy literature:

* :class:`UniformWorkload`: writes spread evenly over a writable working set (the model of Clark
  et al., and the case where the analytic model of :mod:`.model` holds exactly);
* :class:`HotColdWorkload`: a small hot set takes most writes (skewed, as real guests are);
* :class:`TraceWorkload`: the write rate follows a time series (e.g. a measured dirty-rate trace),
  over a uniform working set.

``write_fraction`` is the share of a page's bytes one write changes; it decides how well XBZRLE
compresses a re-sent page (QEMU's XBZRLE wins on small in-place updates, loses on rewrites).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise ValueError(what)


def _uniform(rng: np.random.Generator, lo: int, hi: int, expected: float) -> np.ndarray:
    """Page ids of ``Poisson(expected)`` writes spread uniformly over ``[lo, hi)``.

    Far more writes than pages dirty every page with near certainty: return the range itself
    rather than drawing millions of ids (P(a page stays clean) = exp(-expected/size) < 1e-7).
    """
    size = hi - lo
    if size <= 0 or expected <= 0:
        return np.empty(0, dtype=np.int64)
    if expected > 16 * size:
        return np.arange(lo, hi, dtype=np.int64)
    n = int(rng.poisson(expected))
    return rng.integers(lo, hi, n, dtype=np.int64)


@dataclass(frozen=True)
class UniformWorkload:
    """``rate`` page writes per second of guest time, uniform over the first ``working_set`` pages."""

    rate: float
    working_set: int
    write_fraction: float = 0.05

    def __post_init__(self) -> None:
        _check(self.rate >= 0, f"workload rate must be >= 0 pages/s, got {self.rate}")
        _check(self.working_set >= 1, f"working_set must be >= 1 page, got {self.working_set}")
        _check(0 < self.write_fraction <= 1, f"write_fraction must be in (0, 1], got {self.write_fraction}")

    def writes(self, start: float, seconds: float, rng: np.random.Generator) -> np.ndarray:
        return _uniform(rng, 0, self.working_set, self.rate * seconds)

    def mean_rate(self) -> float:
        return self.rate


@dataclass(frozen=True)
class HotColdWorkload:
    """``rate`` writes/s; a hot set of ``hot_pages`` takes ``hot_share`` of them, the rest of the
    ``working_set`` the remainder."""

    rate: float
    working_set: int
    hot_pages: int
    hot_share: float = 0.9
    write_fraction: float = 0.05

    def __post_init__(self) -> None:
        _check(self.rate >= 0, f"workload rate must be >= 0 pages/s, got {self.rate}")
        _check(
            1 <= self.hot_pages <= self.working_set,
            f"hot_pages must be in [1, working_set={self.working_set}], got {self.hot_pages}",
        )
        _check(0 <= self.hot_share <= 1, f"hot_share must be in [0, 1], got {self.hot_share}")
        _check(0 < self.write_fraction <= 1, f"write_fraction must be in (0, 1], got {self.write_fraction}")

    def writes(self, start: float, seconds: float, rng: np.random.Generator) -> np.ndarray:
        expected = self.rate * seconds
        hot = _uniform(rng, 0, self.hot_pages, expected * self.hot_share)
        cold = _uniform(rng, self.hot_pages, self.working_set, expected * (1 - self.hot_share))
        return np.concatenate([hot, cold])

    def mean_rate(self) -> float:
        return self.rate


@dataclass(frozen=True)
class TraceWorkload:
    """Writes/s following ``rates`` (one value per ``step`` seconds of guest time, repeating),
    uniform over ``working_set`` pages."""

    rates: tuple[float, ...]
    working_set: int
    step: float = 1.0
    write_fraction: float = 0.05
    _cumulative: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check(len(self.rates) >= 1, "a trace workload needs at least one rate")
        _check(min(self.rates) >= 0, "trace rates must be >= 0 pages/s")
        _check(self.step > 0, f"trace step must be > 0 s, got {self.step}")
        _check(self.working_set >= 1, f"working_set must be >= 1 page, got {self.working_set}")
        _check(0 < self.write_fraction <= 1, f"write_fraction must be in (0, 1], got {self.write_fraction}")
        cumulative = np.concatenate([[0.0], np.cumsum(np.asarray(self.rates, dtype=float) * self.step)])
        object.__setattr__(self, "_cumulative", cumulative)

    def _integral(self, t: float) -> float:
        """Expected writes in guest time [0, t)."""
        period = len(self.rates) * self.step
        whole, rest = divmod(t, period)
        i = min(int(rest // self.step), len(self.rates) - 1)
        within = rest - i * self.step
        return whole * self._cumulative[-1] + self._cumulative[i] + self.rates[i] * within

    def writes(self, start: float, seconds: float, rng: np.random.Generator) -> np.ndarray:
        expected = self._integral(start + seconds) - self._integral(start)
        return _uniform(rng, 0, self.working_set, expected)

    def mean_rate(self) -> float:
        return float(np.mean(self.rates))


Workload = UniformWorkload | HotColdWorkload | TraceWorkload


def idle() -> UniformWorkload:
    """A guest that writes nothing (the analytic model's V_0-only case)."""
    return UniformWorkload(rate=0.0, working_set=1)
