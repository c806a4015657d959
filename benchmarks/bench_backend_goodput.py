"""Real-backend bulk goodput (``rt.transfer``) on loopback, 1 and 8 streams, against iperf3.

Two processes, one node each (uvloop), as in production and as ``iperf3``
runs: a receiver node whose ``on_transfer`` handler accepts the payload, and
a sender node that calls ``rt.transfer``. Baseline: ``iperf3 -P N`` (TCP,
127.0.0.1), its runs interleaved with ours so both see the same background
load; medians are reported. Install it with ``sudo apt-get install iperf3``
(Debian/Ubuntu); where it is missing the NovaCron figures are still printed
and the comparison is skipped with a message. Target: NovaCron >= 0.8x iperf3.

NovaCron's figure is end to end: from ``await rt.transfer(...)`` to the
receiver's acknowledgement (which it sends once its handler has run on the
whole, reassembled payload), including connection set-up, per-stream
CRC-32 checks and reassembly into one buffer. The first transfer of each
stream count is a warm-up at full size and is not counted: it pays for the
receiver's buffer (see ``RuntimeOptions.transfer_buffer_pool``), as a
long-running node does once.

A third figure, also interleaved: ``raw_sockets_gbps``, the same payload moved memory to memory
by plain blocking sockets, a thread per stream on each end, no framing or checksum
(``rawcopy.py``). iperf3 never touches memory (its one buffer stays in cache); every real
transfer reads the payload on one end and writes it on the other, so ``raw/iperf3`` is what
that costs on this machine, and ``novacron/raw`` how close the protocol gets to it.

Run: .venv/bin/python benchmarks/bench_backend_goodput.py [--size-mib 512] [--streams 1 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import shutil

from common import against_iperf, report
from rawcopy import RawCopy

from novacron.backends import AsyncioRuntime, PeerDirectory, new_event_loop


def _receiver(ports: mp.Queue, transfers: int) -> None:
    """The receiving node, in its own process: a handler that checks the payload's size."""

    async def serve() -> None:
        directory = PeerDirectory()
        directory.register("tx", "127.0.0.1", 1)  # known (for authentication), never dialled
        rt = AsyncioRuntime("rx", directory=directory)
        await rt.start()
        received = 0
        all_done = rt.create_future()

        def handler(src: str, payload: memoryview) -> None:
            nonlocal received
            received += 1
            if received == transfers:
                rt.call_later(1.0, all_done.set_result, None)  # let the last acknowledgement go out

        rt.on_transfer("bench", handler)
        ports.put(rt.address[1])
        await all_done
        await rt.close()

    loop = new_event_loop()
    loop.run_until_complete(serve())
    loop.close()


async def _measure(args: argparse.Namespace, payload: bytes) -> list[dict]:
    ctx = mp.get_context("spawn")
    ports = ctx.Queue()
    receiver = ctx.Process(target=_receiver, args=(ports, len(args.streams) * (args.repeats + 1)))
    receiver.start()
    directory = PeerDirectory()
    rt = AsyncioRuntime("tx", directory=directory)
    await rt.start()
    try:
        directory.register("rx", "127.0.0.1", await asyncio.to_thread(ports.get, True, 60))

        async def send(streams: int) -> float:
            rep = await rt.transfer("rx", payload, streams=streams, tag="bench")
            return rep.goodput_bps / 1e9

        floor = RawCopy(payload)
        try:
            rows = await against_iperf(
                send,
                args.streams,
                args.repeats,
                "novacron",
                iperf_seconds=args.iperf_seconds,
                warmup=True,
                raw=floor.gbps,
            )
        finally:
            floor.close()
    finally:
        await rt.close()
        await asyncio.to_thread(receiver.join, 60)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--iperf-seconds", type=float, default=4)
    args = parser.parse_args()
    payload = os.urandom(args.size_mib << 20)
    loop = new_event_loop()
    try:
        rows = loop.run_until_complete(_measure(args, payload))
    finally:
        loop.close()
    title = f"rt.transfer on the real backend, {args.size_mib} MiB over loopback, two processes"
    report(f"{title} (median of {args.repeats})", rows)
    if shutil.which("iperf3") is None:
        print("iperf3 not found: comparison skipped (install it with: sudo apt-get install iperf3)")
    print("target: ratio >= 0.8")


if __name__ == "__main__":
    main()
