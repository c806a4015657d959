"""Bandwidth predictors behind one interface, and the four classical ones.

Every predictor answers one question: given the throughput samples up to and including time ``t``,
what are the next ``k`` samples ``t+1 .. t+k``? A *sample* is one line of the trace (about 1 s in
the HSDPA traces, 5 s in FCC), so horizons count samples, not seconds.

The classical predictors forecast a flat line (the same value for all ``k`` steps), as MPC-style
adaptive bitrate controllers do. They need no training; ``fit`` exists so that the LSTM and the
classical predictors can be driven by the same evaluation code.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from novacron.prediction.traces import MBPS

#: throughput floor (Mbps) before dividing by a sample, so a 0 Mbps sample does not divide by zero
FLOOR_MBPS = 1e-3

History = pd.DataFrame | pd.Series | np.ndarray | Sequence[float]


def mbps_of(history: History) -> np.ndarray:
    """The throughput samples of a history, as a float array (oldest first)."""
    if isinstance(history, pd.DataFrame):
        history = history[MBPS]
    values = np.asarray(history, dtype=float)
    if values.ndim != 1 or len(values) == 0:
        raise ValueError("a history is a non-empty 1-D sequence of Mbps samples")
    return values


class Predictor(ABC):
    """Predicts the next ``k`` samples of a trace from its history.

    Subclasses implement :meth:`predict`; :meth:`forecast` evaluates many origins of one trace and
    may be overridden for speed (the LSTM batches them).
    """

    #: short name used in tables and JSON
    name: str = "predictor"

    def fit(self, traces: Sequence[pd.DataFrame]) -> Predictor:
        """Learn from whole training traces; classical predictors have nothing to learn."""
        return self

    @abstractmethod
    def predict(self, history: History, k: int) -> np.ndarray:
        """Forecast samples ``t+1 .. t+k`` (an array of length ``k``) from samples ``.. t``."""

    def forecast(self, trace: pd.DataFrame, origins: np.ndarray, k: int) -> np.ndarray:
        """Forecasts from every origin ``t`` in ``origins``: shape ``(len(origins), k)``.

        Row ``i`` only sees ``trace.iloc[: origins[i] + 1]``; nothing from the future.
        """
        if len(origins) == 0:
            return np.empty((0, k))
        return np.stack([self.predict(trace.iloc[: t + 1], k) for t in origins])


class _FlatPredictor(Predictor):
    """A classical predictor: one point estimate repeated for every step ahead."""

    def predict(self, history: History, k: int) -> np.ndarray:
        return np.full(k, self.estimate(mbps_of(history)))

    def forecast(self, trace: pd.DataFrame, origins: np.ndarray, k: int) -> np.ndarray:
        mbps = mbps_of(trace)  # slice a plain array: much faster than a DataFrame per origin
        return np.array([[self.estimate(mbps[: t + 1])] * k for t in origins], dtype=float).reshape(-1, k)

    @abstractmethod
    def estimate(self, mbps: np.ndarray) -> float:
        """The single value forecast for every step ahead."""


@dataclass
class LastValue(_FlatPredictor):
    """Tomorrow looks like today: the last sample. Often the strongest classical one-step predictor."""

    name: str = "last_value"

    def estimate(self, mbps: np.ndarray) -> float:
        return float(mbps[-1])


@dataclass
class EWMA(_FlatPredictor):
    """Exponentially weighted moving average over the whole history, started at the first sample.

    ``alpha`` is the weight of the newest sample: 1 is the last value, small values smooth more.
    """

    alpha: float = 0.3
    name: str = "ewma"

    def __post_init__(self) -> None:
        if not 0 < self.alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {self.alpha}")

    def estimate(self, mbps: np.ndarray) -> float:
        smoothed = mbps[0]
        for value in mbps[1:]:
            smoothed = self.alpha * value + (1 - self.alpha) * smoothed
        return float(smoothed)


def harmonic_mean(values: np.ndarray) -> float:
    """Harmonic mean, with samples floored at :data:`FLOOR_MBPS` (a 0 sample gives ~0, not an error)."""
    return float(len(values) / np.sum(1.0 / np.maximum(values, FLOOR_MBPS)))


@dataclass
class HarmonicMean(_FlatPredictor):
    """Harmonic mean of the last ``window`` samples: the MPC predictor (Yin et al., SIGCOMM 2015).

    The harmonic mean is pulled towards the low samples, so one burst does not inflate the forecast.
    """

    window: int = 5
    name: str = "harmonic_mean"

    def estimate(self, mbps: np.ndarray) -> float:
        return harmonic_mean(mbps[-self.window :])


@dataclass
class RobustMPC(_FlatPredictor):
    """RobustMPC: the harmonic mean divided by ``1 + max recent error``.

    The recent errors are the absolute percentage errors of the harmonic-mean one-step forecasts of
    the last ``error_window`` samples: for each such sample ``s``, ``|HM(.. s-1) - x_s| / x_s``.
    When the network has been surprising lately, the forecast is discounted, trading accuracy for
    fewer rebuffers (as Pensieve's RobustMPC baseline does). With no past forecast yet, no discount.
    """

    window: int = 5
    error_window: int = 5
    name: str = "robust_mpc"

    def max_recent_error(self, mbps: np.ndarray) -> float:
        errors = []
        for s in range(max(1, len(mbps) - self.error_window), len(mbps)):
            forecast = harmonic_mean(mbps[max(0, s - self.window) : s])
            errors.append(abs(forecast - mbps[s]) / max(mbps[s], FLOOR_MBPS))
        return max(errors, default=0.0)

    def estimate(self, mbps: np.ndarray) -> float:
        return harmonic_mean(mbps[-self.window :]) / (1.0 + self.max_recent_error(mbps))


def classical_predictors() -> list[Predictor]:
    """The classical predictors with their default settings, in reporting order."""
    return [LastValue(), EWMA(), HarmonicMean(), RobustMPC()]


#: the classical predictors the LSTM target is measured against (RobustMPC is biased low on purpose)
TARGET_BASELINES = ("last_value", "ewma", "harmonic_mean")
