"""Diagnostic: how much room is there below the last value on each network, and does it transfer?

Two measurements per network (Norway HSDPA, FCC), both on *all* its files with the official protocol
(``novacron.prediction.evaluate``, horizon k = the k-th step alone):

* median APE of the classical predictors and of two fixed robust filters that are not part of the
  target (median of the last 3 and of the last 5 samples), to show where a learned model could gain;
* spike persistence: after an isolated jump (``|log(x_t / x_{t-1})| > 0.3`` while the step before
  moved less than 0.1), the share of the jump undone at ``t+1``: ``-log(x_{t+1}/x_t) / log(x_t/x_{t-1})``.
  A model can only learn from one network what also holds on the other.
* by regime: the same median APEs (last value vs the median filters) per bin of the trace's own
  trailing lag-1 autocorrelation of log changes (last 30 steps, causal). If the median filters won on
  HSDPA wherever HSDPA looks "FCC-like" (strongly mean-reverting), a model given that statistic as an
  input could learn the FCC behaviour from HSDPA data; the bins show whether it could.

Writes ``headroom.json`` under ``--out`` and prints it.

    nice -n 19 .venv/bin/python experiments/pba_headroom.py
"""

from __future__ import annotations

import argparse
import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from novacron.prediction.evaluate import evaluate
from novacron.prediction.predictors import FLOOR_MBPS, _FlatPredictor, classical_predictors, mbps_of
from novacron.prediction.traces import data_dir, load_traces

HORIZONS = (1, 5)
NETWORKS = {"hsdpa": "norway_hsdpa", "fcc": "fcc"}


@dataclass
class MedianOfLast(_FlatPredictor):
    """Median of the last ``window`` samples (a diagnostic filter, not a target baseline)."""

    window: int = 3
    name: str = "median_of_last"

    def estimate(self, mbps: np.ndarray) -> float:
        return float(np.median(mbps[-self.window :]))


def spike_reversion(traces, jump: float = 0.3, calm: float = 0.1) -> dict[str, float]:
    undone = []
    for trace in traces:
        log = np.log(np.maximum(mbps_of(trace), FLOOR_MBPS))
        for t in range(2, len(log) - 1):
            step = log[t] - log[t - 1]
            if abs(step) > jump and abs(log[t - 1] - log[t - 2]) < calm:
                undone.append(-(log[t + 1] - log[t]) / step)
    undone = np.asarray(undone)
    return {
        "isolated_jumps": len(undone),
        "median_share_undone_next_step": float(np.median(undone)),
        "share_of_jumps_more_than_half_undone": float(np.mean(undone > 0.5)),
    }


#: bins of the trailing autocorrelation for ``by_regime``
REGIME_BINS = (-2.0, -0.5, -0.35, -0.2, 0.0, 2.0)


def by_regime(traces, history: int = 30, min_history: int = 10) -> dict[str, dict[str, float]]:
    """Median APE of last value and median filters per bin of the trailing autocorrelation."""
    rows = []
    for trace in traces:
        mbps = np.maximum(mbps_of(trace), FLOOR_MBPS)
        change = np.diff(np.log(mbps), prepend=np.log(mbps[0]))
        for t in range(min_history - 1, len(mbps) - max(HORIZONS)):
            recent = change[max(1, t - history + 1) : t + 1]
            autocorr = float(np.sum(recent[1:] * recent[:-1]) / max(float(np.sum(recent * recent)), 1e-12))
            rows.append(
                (
                    autocorr,
                    abs(mbps[t] / mbps[t + 1] - 1),
                    abs(np.median(mbps[t - 2 : t + 1]) / mbps[t + 1] - 1),
                    abs(mbps[t] / mbps[t + 5] - 1),
                    abs(np.median(mbps[t - 4 : t + 1]) / mbps[t + 5] - 1),
                )
            )
    table = np.asarray(rows)
    report = {}
    for low, high in itertools.pairwise(REGIME_BINS):
        inside = table[(table[:, 0] >= low) & (table[:, 0] < high)]
        if len(inside) < 20:
            continue
        medians = np.median(inside[:, 1:], axis=0).round(4)
        report[f"[{low}, {high})"] = {
            "origins": len(inside),
            "last_value@1": float(medians[0]),
            "median_of_last_3@1": float(medians[1]),
            "last_value@5": float(medians[2]),
            "median_of_last_5@5": float(medians[3]),
        }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/pba/tuning"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    report = {}
    for key, folder in NETWORKS.items():
        traces = load_traces([data_dir(folder)])
        predictors = [
            *classical_predictors(),
            MedianOfLast(3, name="median_of_last_3"),
            MedianOfLast(5, name="median_of_last_5"),
        ]
        table = evaluate(predictors, traces, HORIZONS)
        apes = {
            f"{row.predictor}@{row.horizon}": round(float(row.median_ape), 4)
            for row in table.itertuples(index=False)
        }
        report[key] = {
            "median_ape": apes,
            "spike_reversion": spike_reversion(traces),
            "by_regime": by_regime(traces),
        }
    text = json.dumps(report, indent=2)
    print(text)
    (args.out / "headroom.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
