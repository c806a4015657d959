"""Shared helpers for benchmarks: machine description and result tables."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable

import pandas as pd


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def best_of(repeats: int, fn: Callable[[], float]) -> float:
    """Run ``fn`` (which returns a rate) several times; keep the best (least disturbed) rate."""
    return max(fn() for _ in range(repeats))


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def report(title: str, rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    print(f"\n== {title} ==  ({machine()})")
    print(df.to_string(index=False))
    return df


def versus_iperf(streams: int, ours: list[float], theirs: list[float], name: str) -> dict:
    """One table row: medians of our runs and of iperf3's (None when iperf3 is missing)."""
    import statistics

    base = statistics.median(theirs) if theirs else None
    mine = statistics.median(ours)
    return {
        "streams": streams,
        "iperf3_gbps (baseline)": None if base is None else round(base, 2),
        f"{name}_gbps": round(mine, 2),
        "ratio": None if base is None else round(mine / base, 3),
        "runs": ", ".join(f"{v:.1f}" for v in ours),
    }
