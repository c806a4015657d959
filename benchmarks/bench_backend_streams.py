"""Loopback goodput of record streams vs ``iperf3 -P N`` (run by hand; not a test).

    .venv/bin/python benchmarks/bench_backend_streams.py [--streams 1 8] [--repeats 3]

Two processes, as in production (one node per process, uvloop): a receiver
node whose ``on_stream`` handler counts bytes, and a sender node that opens
N streams and pushes 512 KiB records back to back on each until 1 GiB has
gone. Goodput is measured from the first send to the moment the receiver's
handler has seen the last byte (``time.monotonic`` is system-wide, so both
processes share it). ``iperf3`` runs are interleaved with ours so that both
see the same background load; medians are reported. ``iperf3 -l 1M`` runs too, as the
stricter reference (see ``common.against_iperf``).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from common import run_iperf

from novacron.backends import AsyncioRuntime, PeerDirectory, TLSConfig, make_test_pki, new_event_loop
from novacron.runtime import Message

RECORD = 512 * 1024
GiB = 1024**3


class Chunk(Message, tag="bench/stream-chunk"):
    seq: int


def _receiver(total: int, tls_dir: str | None, ports: mp.Queue, done: mp.Queue) -> None:
    async def main() -> None:
        directory = PeerDirectory()
        directory.register("tx", "127.0.0.1", 1)  # known (for authentication), never dialled
        tls = make_test_pki(tls_dir, ["rx", "tx"])["rx"] if tls_dir else None
        rt = AsyncioRuntime("rx", directory=directory, tls=tls)
        await rt.start()
        got = 0
        finished = asyncio.Event()

        def count(src: str, header: Chunk, data: memoryview) -> None:
            nonlocal got
            got += data.nbytes
            if got >= total:
                done.put((time.monotonic(), time.process_time() - cpu_started))
                finished.set()

        rt.on_stream(Chunk, count)
        cpu_started = time.process_time()  # (includes the wait for the first record: small)
        ports.put(rt.address[1])
        await finished.wait()
        await rt.close()

    loop = new_event_loop()
    loop.run_until_complete(main())
    loop.close()


async def _send(port: int, streams: int, total: int, tls_dir: str | None) -> tuple[float, float]:
    directory = PeerDirectory()
    directory.register("rx", "127.0.0.1", port)
    tls = None
    if tls_dir:  # the receiver wrote the CA and both certificates already
        d = Path(tls_dir)
        tls = TLSConfig(d / "tx.pem", d / "tx.key", d / "ca.pem")
    rt = AsyncioRuntime("tx", directory=directory, tls=tls)
    await rt.start()
    opened = [await rt.open_stream("rx") for _ in range(streams)]
    data = memoryview(os.urandom(RECORD))
    per_stream = total // RECORD // streams

    async def pump(stream) -> None:
        for seq in range(per_stream):
            await stream.send(Chunk(seq), data)

    started, cpu_started = time.monotonic(), time.process_time()
    await asyncio.gather(*(pump(s) for s in opened))
    cpu = time.process_time() - cpu_started
    for s in opened:
        s.close()
    await rt.close()
    return started, cpu


def run_streams(streams: int, total: int, tls: bool) -> tuple[float, float, float]:
    """Goodput in Gbit/s of one run, and the CPU (in cores) the sender and the receiver used."""
    total = total // (RECORD * streams) * RECORD * streams
    ctx = mp.get_context("spawn")
    ports, done = ctx.Queue(), ctx.Queue()
    tls_dir = tempfile.mkdtemp(prefix="bench-pki-") if tls else None
    receiver = ctx.Process(target=_receiver, args=(total, tls_dir, ports, done))
    receiver.start()
    try:
        port = ports.get(timeout=30)
        loop = new_event_loop()
        started, sender_cpu = loop.run_until_complete(_send(port, streams, total, tls_dir))
        loop.close()
        finished, receiver_cpu = done.get(timeout=300)
    finally:
        receiver.join(30)
        if tls_dir:
            shutil.rmtree(tls_dir, ignore_errors=True)
    elapsed = finished - started
    return total * 8 / elapsed / 1e9, sender_cpu / elapsed, receiver_cpu / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--total", type=int, default=GiB, help="bytes per run (default 1 GiB)")
    parser.add_argument("--tls", action="store_true", help="also measure TLS streams")
    parser.add_argument("--iperf-seconds", type=float, default=4)
    args = parser.parse_args()
    has_iperf = shutil.which("iperf3") is not None
    print(f"records of {RECORD // 1024} KiB, {args.total / GiB:g} GiB per run, {os.cpu_count()} CPUs")
    for n in args.streams:
        ours, tls, iperf, iperf_big, cpu = [], [], [], [], []
        for _ in range(args.repeats):
            if has_iperf:
                iperf.append(run_iperf(n, args.iperf_seconds))
                iperf_big.append(run_iperf(n, args.iperf_seconds, 1 << 20))
            goodput, sender_cpu, receiver_cpu = run_streams(n, args.total, tls=False)
            ours.append(goodput)
            cpu.append((sender_cpu, receiver_cpu))
            if args.tls:
                tls.append(run_streams(n, args.total, tls=True)[0])
        tx, rx = (statistics.median(c[i] for c in cpu) for i in (0, 1))
        line = f"N={n}: streams {statistics.median(ours):5.1f} Gbit/s  (runs {_fmt(ours)};"
        line += f" cores used: sender {tx:.2f}, receiver {rx:.2f})"
        if iperf:
            ratio = statistics.median(ours) / statistics.median(iperf)
            line += f"  iperf3 -P {n} {statistics.median(iperf):5.1f} Gbit/s (runs {_fmt(iperf)})"
            line += f"  ratio {ratio:.2f}"
            big = statistics.median(iperf_big)
            line += f"  iperf3 -l 1M {big:5.1f} Gbit/s (ratio {statistics.median(ours) / big:.2f})"
        if tls:
            line += f"  TLS streams {statistics.median(tls):5.1f} Gbit/s"
        print(line, flush=True)


def _fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


if __name__ == "__main__":
    main()
