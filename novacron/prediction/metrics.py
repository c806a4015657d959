"""Forecast error metrics.

All functions take the forecasts and the true values of one horizon step as equal-length arrays.
The percentage errors divide by the truth, so samples whose truth is 0 Mbps (a handful in the FCC
traces) have no defined percentage error: they are left out of the APE-based metrics and of
"accuracy" (``n_ape`` counts the samples that were used) but kept in MAE and RMSE.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

#: "accurate" = within this relative distance of the truth (the NovaCron design targets 70%+ of them)
ACCURACY_BAND = 0.20


@dataclass(frozen=True)
class Metrics:
    """Errors of one predictor at one horizon step (Mbps for MAE/RMSE, fractions for the rest)."""

    median_ape: float
    mean_ape: float
    mae: float
    rmse: float
    accuracy: float  # share of forecasts with |forecast - truth| <= 20% of truth
    n: int  # forecasts scored
    n_ape: int  # of which had a positive truth (used for the APE metrics and accuracy)

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def absolute_percentage_errors(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """``|predicted - truth| / truth`` for the samples with ``truth > 0`` (others are dropped)."""
    predicted, truth = np.asarray(predicted, dtype=float), np.asarray(truth, dtype=float)
    if predicted.shape != truth.shape:
        raise ValueError(f"shape mismatch: predicted {predicted.shape} vs truth {truth.shape}")
    positive = truth > 0
    return np.abs(predicted[positive] - truth[positive]) / truth[positive]


def compute_metrics(predicted: np.ndarray, truth: np.ndarray) -> Metrics:
    """All metrics of one set of forecasts; NaN for a metric with nothing to score."""
    predicted, truth = np.asarray(predicted, dtype=float), np.asarray(truth, dtype=float)
    ape = absolute_percentage_errors(predicted, truth)
    err = predicted - truth
    nan = float("nan")
    return Metrics(
        median_ape=float(np.median(ape)) if len(ape) else nan,
        mean_ape=float(np.mean(ape)) if len(ape) else nan,
        mae=float(np.mean(np.abs(err))) if len(err) else nan,
        rmse=float(np.sqrt(np.mean(err**2))) if len(err) else nan,
        accuracy=float(np.mean(ape <= ACCURACY_BAND)) if len(ape) else nan,
        n=len(truth),
        n_ape=len(ape),
    )
