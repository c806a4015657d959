"""Run every benchmark in this folder, one after another (``make bench``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = [
    "bench_sim_messages.py",
    "bench_sim_heartbeats.py",
    "bench_sim_streams.py",
    "bench_encoding.py",
    "bench_mode.py",
    "bench_backend_goodput.py",
    "bench_backend_streams.py",
    "bench_backend_amst.py",
    "bench_backend_timers.py",
    "bench_sim_election.py",
    "bench_sim_commit_latency.py",
    "bench_consensus_real.py",
    "bench_migration_real.py",
    "bench_placement_decisions.py",
    "bench_sweep.py",
    "bench_sync.py",
    "bench_sync_real.py",
]

if __name__ == "__main__":
    failed = [
        name for name in BENCHMARKS if subprocess.run([sys.executable, str(HERE / name)], cwd=HERE).returncode
    ]
    sys.exit(f"failed: {', '.join(failed)}" if failed else 0)
