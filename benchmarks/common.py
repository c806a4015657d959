"""Shared helpers for benchmarks: machine description, result tables, and the two-node
loopback scaffolding the real-backend transfer benchmarks share."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import platform
import shutil
import socket
import statistics
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pandas as pd
from rawcopy import RawCopy

from novacron.backends import AsyncioRuntime, PeerDirectory, new_event_loop
from novacron.backends.tcp import streams as stream_io
from novacron.runtime import Payload


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
    streams: int,
    ours: list[float],
    theirs: list[float],
    name: str,
    raw: list[float] | None = None,
    big_writes: list[float] | None = None,
) -> dict:
    """One table row: medians of our runs and of iperf3's (None when iperf3 is missing), and,
    given ``raw`` runs of :class:`rawcopy.RawCopy`, the floor of a memory-to-memory transfer;
    given ``big_writes`` runs of ``iperf3 -l 1M``, the stricter reference."""
    base = statistics.median(theirs) if theirs else None
    mine = statistics.median(ours)
    row = {
        "streams": streams,
        "iperf3_gbps (baseline)": None if base is None else round(base, 2),
        f"{name}_gbps": round(mine, 2),
        "ratio": None if base is None else round(mine / base, 3),
    }
    if big_writes:
        big = statistics.median(big_writes)
        row["iperf3_l1M_gbps"] = round(big, 2)
        row["ratio_vs_l1M"] = round(mine / big, 3)
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


def run_iperf(streams: int, seconds: float, write_bytes: int | None = None) -> float:
    """``iperf3 -P streams`` on loopback, Gbit/s received; ``write_bytes`` sets ``-l`` (default 128 KiB)."""
    port = _free_port()
    client = ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-P", str(streams), "-t", str(seconds), "-J"]
    if write_bytes is not None:
        client += ["-l", str(write_bytes)]
    server = subprocess.Popen(
        ["iperf3", "-s", "-1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        time.sleep(0.5)  # let it listen (a probe connection would be taken for the one client of -1)
        out = subprocess.run(
            client,
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

    ``iperf3 -l 1M`` runs too, as a stricter reference: iperf3 writes 128 KiB per call by
    default, and our transfers write 1 MiB pieces; on a VM where a system call is dear the
    larger writes alone can be worth 1.5x, so beating default iperf3 there says little.
    """
    from shutil import which

    have_iperf = which("iperf3") is not None
    rows = []
    for streams in streams_list:
        if warmup:
            await send(streams)
            if raw is not None:
                await asyncio.to_thread(raw, streams)
        ours, theirs, big_writes, floors = [], [], [], []
        for _ in range(repeats):
            if have_iperf:
                theirs.append(await asyncio.to_thread(run_iperf, streams, iperf_seconds))
                big_writes.append(await asyncio.to_thread(run_iperf, streams, iperf_seconds, 1 << 20))
            if raw is not None:
                floors.append(await asyncio.to_thread(raw, streams))
            ours.append(await send(streams))
        rows.append(versus_iperf(streams, ours, theirs, name, floors, big_writes))
    return rows


# --- two nodes on loopback, against iperf3 ---------------------------------------------------

ReceiveHandler = Callable[[str, Payload], None]
Listen = Callable[[AsyncioRuntime, ReceiveHandler], None]
"""Installs the receiving node's handler for tag ``"bench"`` (``rt.on_transfer``, ``AMST.on_receive``).
It is passed to a spawned process, so it must be a module-level function."""
OpenSender = Callable[[AsyncioRuntime], Callable[..., Awaitable[Any]]]
"""Given the sending node's runtime, returns the call that moves a payload (``rt.transfer``,
``AMST(rt).send``): ``await send("rx", payload, streams=n, tag="bench")``, a report with ``goodput_bps``."""


def loopback_parser(description: str, *, size_mib: int) -> argparse.ArgumentParser:
    """The options of :func:`run_two_nodes_against_iperf`; a script adds its own."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--size-mib", type=int, default=size_mib)
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--checksum",
        choices=sorted(stream_io.CHECKSUMS),
        default=stream_io.PREFERRED_CHECKSUM,
        help="the algorithm the sending node checksums its streams with (the receiver follows it)",
    )
    return parser


def receiving_node(listen: Listen, tx_port: int, ports: mp.Queue, expected: int) -> None:
    """The receiving node ``rx``, in its own process: counts payloads, stops after ``expected``."""

    async def serve() -> None:
        directory = PeerDirectory()
        directory.register("tx", "127.0.0.1", tx_port)  # where acknowledgements go, if sent as messages
        rt = AsyncioRuntime("rx", directory=directory)
        await rt.start()
        received = 0
        all_done = rt.create_future()

        def handler(src: str, payload: Payload) -> None:
            nonlocal received
            received += 1
            if received == expected:
                rt.call_later(1.0, all_done.set_result, None)  # let the last acknowledgement go out

        listen(rt, handler)
        ports.put(rt.address[1])
        await all_done
        await rt.close()

    loop = new_event_loop()
    loop.run_until_complete(serve())
    loop.close()


@contextlib.asynccontextmanager
async def two_nodes(listen: Listen, expected: int) -> AsyncIterator[AsyncioRuntime]:
    """The sending node ``tx`` here (yielded, with ``rx`` in its directory) and the receiving one
    in a spawned process (as in production, and as iperf3 runs), which runs ``listen`` and stops
    after ``expected`` payloads. Both are stopped on the way out."""
    directory = PeerDirectory()
    rt = AsyncioRuntime("tx", directory=directory)
    await rt.start()
    ctx = mp.get_context("spawn")
    ports = ctx.Queue()
    # (a daemon: if this side fails, the receiver, still waiting for payloads, goes with it)
    receiver = ctx.Process(target=receiving_node, args=(listen, rt.address[1], ports, expected), daemon=True)
    receiver.start()
    try:
        directory.register("rx", "127.0.0.1", await asyncio.to_thread(ports.get, True, 60))
        yield rt
    finally:
        await rt.close()
        await asyncio.to_thread(receiver.join, 60)
        if receiver.is_alive():
            receiver.terminate()


async def _two_nodes_against_iperf(
    args: argparse.Namespace,
    payload: bytes,
    listen: Listen,
    open_sender: OpenSender,
    name: str,
    iperf_seconds: float,
) -> list[dict]:
    """Measure ``open_sender``'s transfers between :func:`two_nodes` with :func:`against_iperf`,
    warm-up and raw floor included. The first transfer of each stream count is the uncounted
    warm-up: it pays for the receiver's buffer, as a long-running node does once."""
    expected = len(args.streams) * (args.repeats + 1)  # (+1: the warm-up)
    async with two_nodes(listen, expected) as rt:
        transfer = open_sender(rt)

        async def send(streams: int) -> float:
            rep = await transfer("rx", payload, streams=streams, tag="bench")
            return rep.goodput_bps / 1e9

        floor = RawCopy(payload)
        try:
            return await against_iperf(
                send,
                args.streams,
                args.repeats,
                name,
                iperf_seconds=iperf_seconds,
                warmup=True,
                raw=floor.gbps,
            )
        finally:
            floor.close()


def run_two_nodes_against_iperf(
    args: argparse.Namespace,
    title: str,
    name: str,
    listen: Listen,
    open_sender: OpenSender,
    *,
    iperf_seconds: float = 4.0,
) -> None:
    """Move ``args.size_mib`` MiB of random bytes from node to node as the script says (``listen``,
    ``open_sender``), interleaved with ``iperf3 -P N`` and :class:`rawcopy.RawCopy`; print the table."""
    payload = os.urandom(args.size_mib << 20)
    stream_io.PREFERRED_CHECKSUM = args.checksum  # the sender names it to the receiver
    loop = new_event_loop()
    try:
        rows = loop.run_until_complete(
            _two_nodes_against_iperf(args, payload, listen, open_sender, name, iperf_seconds)
        )
    finally:
        loop.close()
    report(f"{title} (median of {args.repeats}; stream checksum {args.checksum})", rows)
    if shutil.which("iperf3") is None:
        print("iperf3 not found: comparison skipped (install it with: sudo apt-get install iperf3)")
    print("target: ratio >= 0.8")
