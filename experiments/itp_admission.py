"""Experiment: choose the admission-control threshold of ``admission_nearest_fit`` on the validation split.

Runs :class:`novacron.placement.heuristics.AdmissionNearestFitPolicy` for each
threshold in ``--thresholds`` on episodes of the ``val`` part of the pod list
(55-70 %, never the test part) at each load, and prints and writes
``admission_sweep.csv`` (mean score and acceptance per threshold and load) under
``--out``. The threshold with the best mean score over the loads is the one to
put in ``heuristics.ADMISSION_THRESHOLD``; the same selection rule picks the RL
checkpoint in ``experiments/itp_train.py``.

    nice -n 10 .venv/bin/python experiments/itp_admission.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from novacron.placement.heuristics import AdmissionNearestFitPolicy, NearestFitPolicy, run_episode
from novacron.placement.scenario import Scenario


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--thresholds", default="0.05,0.1,0.15,0.2,0.25,0.3,0.35,0.4,0.5,1,inf")
    parser.add_argument("--loads", default="0.5,0.8,0.9,1.0")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--hosts", type=int, default=16)
    parser.add_argument("--tasks", type=int, default=512)
    parser.add_argument("--out", type=Path, default=Path("results/itp"))
    args = parser.parse_args(argv)
    rows = []
    for load in (float(x) for x in args.loads.split(",")):
        scenario = Scenario(n_hosts=args.hosts, n_tasks=args.tasks, load=load, split="val")
        cluster = scenario.cluster()
        for threshold in (float(x) for x in args.thresholds.split(",")):
            policy = NearestFitPolicy() if np.isinf(threshold) else AdmissionNearestFitPolicy(threshold)
            for seed in range(args.seeds):
                m = run_episode(scenario.episode(seed, cluster), policy, seed=seed)
                rows.append({"threshold": threshold, "load": load, "seed": seed, **m.as_dict()})
    df = pd.DataFrame(rows)
    table = df.pivot_table(index="threshold", columns="load", values="score", aggfunc="mean")
    table["mean"] = table.mean(axis=1)
    print(table.round(4).to_string())
    args.out.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out / "admission_sweep.csv", index=False)
    return table


if __name__ == "__main__":
    main()
