"""Sweeps: a consensus campaign's seeds one after another (the baseline) against side by side.

The work is ``novacron dst``'s: each seed a Raft (or PBFT) cluster under a seeded fault schedule,
then the linearizability and safety checks. Serial (``workers=1``, in this process: what
``run_campaign`` did before sweeps) against a local process pool (``novacron.sim.sweep``) and, with
``--ray``, a Ray instance started on this machine. The wall time includes starting the workers
(and Ray); the tables are checked to be identical. The speedup is bounded by the cores.

Run: .venv/bin/python benchmarks/bench_sweep.py [--protocol raft] [--seeds 40] [--workers N] [--ray]
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
from common import report

from novacron.sim.dst import CampaignConfig, run_campaign
from novacron.sim.sweep import default_workers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", choices=("raft", "pbft"), default="raft")
    parser.add_argument("--seeds", type=int, default=40)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument(
        "--ray", action="store_true", help="also on a local Ray instance (the distributed extra)"
    )
    args = parser.parse_args()
    config = CampaignConfig(protocol=args.protocol)
    seeds = range(args.seeds)
    runs = [
        ("serial (baseline)", {"workers": 1}),
        (f"process pool x{args.workers}", {"workers": args.workers}),
    ]
    if args.ray:
        runs.append((f"ray local x{args.workers}", {"ray": "local", "workers": args.workers}))
    rows, tables = [], []
    for name, options in runs:
        start = time.perf_counter()
        table, _ = run_campaign(config, seeds, **options)
        seconds = time.perf_counter() - start
        tables.append(table)
        rows.append(
            {"run": name, "seconds": round(seconds, 2), "seeds_per_s": round(len(seeds) / seconds, 2)}
        )
        print(f"{name}: {seconds:.1f} s", flush=True)
    for table in tables[1:]:
        pd.testing.assert_frame_equal(table, tables[0], check_exact=True)
    for row in rows:
        row["speedup"] = round(rows[0]["seconds"] / row["seconds"], 2)
    report(f"dst campaign, {args.protocol}, {args.seeds} seeds (tables identical)", rows)


if __name__ == "__main__":
    main()
