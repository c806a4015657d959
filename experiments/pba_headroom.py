"""Diagnostic: how much room is there below the last value on each network, and does it transfer?

Two measurements per network (Norway HSDPA, FCC), both on *all* its files with the official protocol
(``novacron.prediction.evaluate``, horizon k = the k-th step alone):

* median APE of the classical predictors and of two fixed robust filters that are not part of the
  target (median of the last 3 and of the last 5 samples), to show where a learned model could gain;
* spike persistence: after an isolated jump (``|log(x_t / x_{t-1})| > 0.3`` while the step before
  moved less than 0.1), the share of the jump undone at ``t+1``: ``-log(x_{t+1}/x_t) / log(x_t/x_{t-1})``.
  A model can only learn from one network what also holds on the other.

Writes ``headroom.json`` under ``--out`` and prints it.

    nice -n 19 .venv/bin/python experiments/pba_headroom.py
"""

from __future__ import annotations

import argparse
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
        report[key] = {"median_ape": apes, "spike_reversion": spike_reversion(traces)}
    text = json.dumps(report, indent=2)
    print(text)
    (args.out / "headroom.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
