"""Scoring predictors on traces: a tidy pandas table and the JSON the CLI prints.

Protocol (the same for every predictor, so the numbers are comparable):

* the forecast origins of a trace of ``n`` samples are ``t = min_history - 1 .. n - 1 - max(horizons)``:
  each has at least ``min_history`` samples of history, and every horizon has a true value, so the
  1-step and the k-step metrics are computed on exactly the same origins;
* from each origin a predictor forecasts ``t+1 .. t+K`` seeing only samples ``.. t``;
* the metric "at horizon k" scores the *k-th step alone* (forecast of ``x_{t+k}`` vs ``x_{t+k}``),
  not the mean over steps ``1 .. k``;
* all origins of all traces are pooled before taking medians and means.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from novacron.prediction.metrics import compute_metrics
from novacron.prediction.predictors import Predictor, mbps_of

#: default history before the first scored forecast (= the LSTM's default window)
MIN_HISTORY = 10


def origins_of(n_samples: int, min_history: int, max_horizon: int) -> np.ndarray:
    """Forecast origins of a trace with ``n_samples`` samples (see the module docstring)."""
    return np.arange(min_history - 1, n_samples - max_horizon)


def evaluate(
    predictors: Sequence[Predictor],
    traces: Sequence[pd.DataFrame],
    horizons: Sequence[int] = (1, 5),
    min_history: int = MIN_HISTORY,
) -> pd.DataFrame:
    """One row per (predictor, horizon) with every metric of :class:`~novacron.prediction.metrics.Metrics`."""
    if min(horizons) < 1 or min_history < 1:
        raise ValueError("horizons and min_history must be at least 1")
    k_max = max(horizons)
    rows = []
    for predictor in predictors:
        predicted: list[np.ndarray] = []
        truth: list[np.ndarray] = []
        for trace in traces:
            mbps = mbps_of(trace)
            origins = origins_of(len(mbps), min_history, k_max)
            if len(origins) == 0:
                continue
            predicted.append(predictor.forecast(trace, origins, k_max))
            truth.append(mbps[origins[:, None] + np.arange(1, k_max + 1)[None, :]])
        if not predicted:
            raise ValueError(f"no trace has more than min_history + horizon = {min_history + k_max} samples")
        all_predicted, all_truth = np.concatenate(predicted), np.concatenate(truth)
        for k in horizons:
            metrics = compute_metrics(all_predicted[:, k - 1], all_truth[:, k - 1])
            rows.append({"predictor": predictor.name, "horizon": k, **metrics.as_dict()})
    return pd.DataFrame(rows)


def to_json_dict(table: pd.DataFrame, traces: Sequence[pd.DataFrame], min_history: int) -> dict:
    """The CLI's JSON: ``{"predictors": {name: {"1": {metric: value}, "5": {...}}}, ...}``."""
    predictors: dict[str, dict[str, dict]] = {}
    for row in table.to_dict(orient="records"):
        name, horizon = row.pop("predictor"), row.pop("horizon")
        predictors.setdefault(name, {})[str(horizon)] = {
            key: (None if isinstance(value, float) and np.isnan(value) else value)
            for key, value in row.items()
        }
    return {
        "files": [trace.attrs.get("path", trace.attrs.get("name", "?")) for trace in traces],
        "horizons": sorted({int(h) for h in table["horizon"]}),
        "min_history": min_history,
        "horizon_definition": "metrics at horizon k score the k-th step ahead alone",
        "predictors": predictors,
    }


def best_baseline(
    table: pd.DataFrame, horizon: int, baselines: Sequence[str], metric: str = "median_ape"
) -> str:
    """The name of the best (lowest ``metric``) baseline predictor at ``horizon``."""
    rows = table[(table["horizon"] == horizon) & table["predictor"].isin(baselines)]
    return str(rows.loc[rows[metric].idxmin(), "predictor"])
