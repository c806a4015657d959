"""Shared helpers for benchmarks: machine description and result tables."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import time
from collections.abc import Awaitable, Callable

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


def versus_iperf(
    streams: int, ours: list[float], theirs: list[float], name: str, raw: list[float] | None = None
) -> dict:
    """One table row: medians of our runs and of iperf3's (None when iperf3 is missing), and,
    given ``raw`` runs of :class:`rawcopy.RawCopy`, the floor of a memory-to-memory transfer."""
    base = statistics.median(theirs) if theirs else None
    mine = statistics.median(ours)
    row = {
        "streams": streams,
        "iperf3_gbps (baseline)": None if base is None else round(base, 2),
        f"{name}_gbps": round(mine, 2),
        "ratio": None if base is None else round(mine / base, 3),
    }
    if raw:
        floor = statistics.median(raw)
        row["raw_sockets_gbps"] = round(floor, 2)
        row["raw/iperf3"] = None if base is None else round(floor / base, 3)
        row[f"{name}/raw"] = round(mine / floor, 3)
    row["runs"] = ", ".join(f"{v:.1f}" for v in ours)
    return row


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_iperf(streams: int, seconds: float) -> float:
    port = _free_port()
    server = subprocess.Popen(
        ["iperf3", "-s", "-1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        time.sleep(0.5)  # let it listen (a probe connection would be taken for the one client of -1)
        out = subprocess.run(
            ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-P", str(streams), "-t", str(seconds), "-J"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        server.wait(10)
    return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e9


async def against_iperf(
    send: Callable[[int], Awaitable[float]],
    streams_list: list[int],
    repeats: int,
    name: str,
    *,
    iperf_seconds: float = 4.0,
    warmup: bool = False,
    raw: Callable[[int], float] | None = None,
) -> list[dict]:
    """Our ``send(streams) -> Gbit/s`` and ``iperf3 -P streams``, interleaved, one row per count.

    Interleaving makes both see the same background load; iperf3 is skipped when missing.
    ``warmup`` runs ``send`` once per stream count first (buffers, connections). ``raw``
    (``RawCopy(payload).gbps``) adds the floor of moving the same payload memory to memory
    with plain sockets, interleaved too: what part of the gap to iperf3 is the memory traffic.
    """
    from shutil import which

    have_iperf = which("iperf3") is not None
    rows = []
    for streams in streams_list:
        if warmup:
            await send(streams)
            if raw is not None:
                await asyncio.to_thread(raw, streams)
        ours, theirs, floors = [], [], []
        for _ in range(repeats):
            if have_iperf:
                theirs.append(await asyncio.to_thread(run_iperf, streams, iperf_seconds))
            if raw is not None:
                floors.append(await asyncio.to_thread(raw, streams))
            ours.append(await send(streams))
        rows.append(versus_iperf(streams, ours, theirs, name, floors))
    return rows
