"""Timers on a node that is moving bulk data: how late does a 1 ms timer fire?

A node's protocols share one event loop with its transfers: Raft's heartbeats and election timers,
mode detection's probes, AMST's own endgame wake-ups. On loopback a peer keeps up with every
write, so a stream never has to wait, and before ``LoopSocket`` started yielding the loop after
``FAIR_SLICE`` of reads or writes, a 512 MiB AMST transfer kept a 1 ms timer waiting up to 170 ms
(long enough to miss a heartbeat and start an election in a datacenter configuration).

Two processes, one node each (uvloop). On the sender, a coroutine sleeps 1 ms in a loop (``rt.sleep``)
and records how late each wake-up is: first with the node idle (the baseline), then while it sends
AMST transfers over 4 streams. The figure is the distribution of lateness (median, p99, max).

Run: .venv/bin/python benchmarks/bench_backend_timers.py [--size-mib 512] [--streams 4] [--transfers 8]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import statistics
import time

from bench_backend_amst import _receiver
from common import report

from novacron.backends import AsyncioRuntime, PeerDirectory, new_event_loop
from novacron.transport import AMST

TICK = 0.001


async def _lateness(rt: AsyncioRuntime, busy: asyncio.Future | None, seconds: float) -> list[float]:
    """Sleep ``TICK`` in a loop until ``busy`` is done (or for ``seconds`` when idle)."""
    late = []
    deadline = time.perf_counter() + seconds
    while (busy is not None and not busy.done()) or (busy is None and time.perf_counter() < deadline):
        started = time.perf_counter()
        await rt.sleep(TICK)
        late.append(time.perf_counter() - started - TICK)
    return late


def _row(what: str, late: list[float]) -> dict:
    ms = sorted(1e3 * x for x in late)
    return {
        "timer": what,
        "wake-ups": len(ms),
        "median_late_ms": round(statistics.median(ms), 2),
        "p99_late_ms": round(ms[int(0.99 * (len(ms) - 1))], 2),
        "max_late_ms": round(ms[-1], 2),
    }


async def main(size_mib: int, streams: int, transfers: int) -> None:
    directory = PeerDirectory()
    rt = AsyncioRuntime("tx", directory=directory)
    await rt.start()
    ctx = mp.get_context("spawn")
    ports = ctx.Queue()
    receiver = ctx.Process(target=_receiver, args=(rt.address[1], ports, transfers + 1))
    receiver.start()
    try:
        directory.register("rx", "127.0.0.1", await asyncio.to_thread(ports.get, True, 60))
        amst = AMST(rt)
        payload = os.urandom(size_mib << 20)
        await amst.send("rx", payload, streams=streams, tag="bench")  # warm-up: buffers, streams
        idle = await _lateness(rt, None, 2.0)

        async def send_all() -> None:
            for _ in range(transfers):
                await amst.send("rx", payload, streams=streams, tag="bench")

        sending = asyncio.ensure_future(send_all())
        busy = await _lateness(rt, sending, 0)
        await sending
    finally:
        await rt.close()
        await asyncio.to_thread(receiver.join, 60)
    title = f"A 1 ms timer on a node idle (baseline) and sending {transfers} x {size_mib} MiB"
    report(
        f"{title} over {streams} streams",
        [_row("idle node (baseline)", idle), _row(f"during AMST, {streams} streams", busy)],
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--transfers", type=int, default=8)
    args = parser.parse_args()
    loop = new_event_loop()
    loop.run_until_complete(main(args.size_mib, args.streams, args.transfers))
    loop.close()
