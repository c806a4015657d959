"""AMST on the real backend: 1 GiB over N streams on loopback, against ``iperf3 -P N``.

Two processes, one node each (uvloop): the receiver runs AMST and hands the
reassembled payload to a handler; the sender runs ``AMST.send`` of a 1 GiB
buffer. The figure is end to end, framing and checksums on: from the call
to the receiver's TransferDone (every chunk's bytes checksummed from the
sender's memory to the receiver's by the record stream, AMST checking
offsets, lengths and completeness, reassembled in order). ``iperf3 -P N`` runs
interleaved with ours, on the same machine, in the same minutes. Target:
>= 0.8x iperf3 (issue 3). As in ``bench_backend_goodput.py``, the first
transfer of each stream count is a warm-up at full size and is not counted:
it pays for the receiver's reassembly buffer (a page fault per 4 KiB of a
fresh 1 GiB map), which AMST then reuses, as a long-running node does.

A third figure, also interleaved: ``raw_sockets_gbps``, the same payload moved memory to memory
by plain blocking sockets, a thread per stream on each end, no framing or checksum
(``rawcopy.py``). iperf3 never touches memory (its one buffer stays in cache); every real
transfer reads the payload on one end and writes it on the other, so ``raw/iperf3`` is what
that costs on this machine, and ``amst/raw`` how close the protocol gets to it.

Run: .venv/bin/python benchmarks/bench_backend_amst.py [--size-mib 1024] [--streams 1 8] [--repeats 3]
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
from novacron.transport import AMST


def _receiver(tx_port: int, ports: mp.Queue, runs: int) -> None:
    """The receiving node, in its own process: AMST with a handler that counts payloads."""

    async def serve() -> None:
        directory = PeerDirectory()
        directory.register("tx", "127.0.0.1", tx_port)  # acknowledgements go back to the sender
        rt = AsyncioRuntime("rx", directory=directory)
        await rt.start()
        amst = AMST(rt)
        finished = 0
        all_done = rt.create_future()

        def received(src, payload) -> None:
            nonlocal finished
            finished += 1
            if finished == runs:
                rt.call_later(1.0, all_done.set_result, None)  # let the last TransferDone go out

        amst.on_receive("bench", received)
        ports.put(rt.address[1])
        await all_done
        await rt.close()

    loop = new_event_loop()
    loop.run_until_complete(serve())
    loop.close()


async def _measure(args: argparse.Namespace, payload: bytes) -> list[dict]:
    directory = PeerDirectory()
    rt = AsyncioRuntime("tx", directory=directory)
    await rt.start()
    ctx = mp.get_context("spawn")
    ports = ctx.Queue()
    runs = len(args.streams) * (args.repeats + 1)  # (+1: the warm-up)
    receiver = ctx.Process(target=_receiver, args=(rt.address[1], ports, runs))
    receiver.start()
    try:
        directory.register("rx", "127.0.0.1", await asyncio.to_thread(ports.get, True, 60))
        amst = AMST(rt)

        async def send(streams: int) -> float:
            rep = await amst.send("rx", payload, streams=streams, tag="bench")
            return rep.goodput_bps / 1e9

        floor = RawCopy(payload)
        try:
            rows = await against_iperf(send, args.streams, args.repeats, "amst", warmup=True, raw=floor.gbps)
        finally:
            floor.close()
    finally:
        await rt.close()
        await asyncio.to_thread(receiver.join, 60)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    payload = os.urandom(args.size_mib << 20)
    loop = new_event_loop()
    try:
        rows = loop.run_until_complete(_measure(args, payload))
    finally:
        loop.close()
    report(f"AMST on the real backend, {args.size_mib} MiB over loopback (median of {args.repeats})", rows)
    if shutil.which("iperf3") is None:
        print("iperf3 not found: comparison skipped (install it with: sudo apt-get install iperf3)")
    print("target: ratio >= 0.8")


if __name__ == "__main__":
    main()
