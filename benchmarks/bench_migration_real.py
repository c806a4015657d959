"""Live migration on the real backend: goodput against a plain AMST transfer of the same bytes.

The VM is a real memory buffer of incompressible pages, so migration and the plain transfer move
the same bytes: the figure is what migration's page handling (dirty log, reading pages, zero
detection, batch framing and checksums, writing pages on the destination) costs on top of AMST.
A second row adds a guest writing 3,000 pages/s (the migration then also re-sends dirtied pages;
goodput counts memory bytes only); a third leaves the stream count to DWCP (``streams=None``, what
an operator gets by default) and shows the counts it chose. The switch-over digest check is off,
as in production (``verify_memory=False``); the benchmark compares the two memories itself,
outside the timing.

Target (issue 6): migration goodput >= 0.8x AMST's, interleaved runs, medians. The host's speed
drifts by tens of percent within a minute, so the table also gives the median of per-repeat
ratios (each migration against the AMST transfer of its own repeat).

Layouts. By default each node runs in its own process, as in production and as the other
real-backend benchmarks run (the destination VM lives in a child process, which reports its memory
digest and CPU time through a queue). ``--one-process`` puts both nodes on one event loop, as the
real-backend tests run them: one thread then moves both ends' bytes, for AMST and migration alike,
and the second core only serves the migration's worker threads. Both are worth knowing.

Run: .venv/bin/python benchmarks/bench_migration_real.py [--size-mib 512] [--streams 4] [--repeats 3]
     [--batch-mib 32] [--one-process]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import tempfile
import time
from pathlib import Path

from common import report

from novacron.backends import AsyncioRuntime, LocalCluster, PeerDirectory, new_event_loop
from novacron.backends.vm import BufferVM
from novacron.migration import MigrationSettings, Migrator, UniformWorkload
from novacron.migration.driver import memory_digest
from novacron.transport.dataplane import ContentMix

AMST_ROW = "AMST transfer"
#: the migrations of each repeat: name -> (guest writes per second, fixed --streams count; False: DWCP's)
MIGRATIONS: dict[str, tuple[int, bool]] = {
    "migration (idle guest)": (0, True),
    "migration (3,000 writes/s)": (3000, True),
    "migration (idle guest, DWCP's stream count)": (0, False),
}
ROWS = (AMST_ROW, *MIGRATIONS)


class OneProcess:
    """Both nodes in this process, on one event loop."""

    title = "one process"

    def __init__(self, pages: int) -> None:
        self.pages = pages
        self._destination: BufferVM | None = None

    async def start(self) -> Migrator:
        self._cluster = LocalCluster(Path(tempfile.mkdtemp()) / "bench", seed=0)
        for node in ("n0", "n1"):
            await self._cluster.add_node(node)
        receiver = Migrator(self._cluster.runtime("n1"), vm_factory=lambda begin: self._destination)
        receiver.amst.on_receive("plain", lambda s, p: None)  # plain transfers use migration's very AMST
        return Migrator(self._cluster.runtime("n0"))

    async def prepare(self) -> None:
        """A destination VM for the next migration, allocated and faulted in beforehand (QEMU's
        ``-mem-prealloc``)."""
        self._release()
        self._destination = BufferVM(self.pages, empty=True, prefault=True)

    async def peer_cpu(self) -> float:
        return 0.0  # the destination's CPU time is in this process's own

    async def digest(self) -> str:
        assert self._destination is not None
        return memory_digest(self._destination.buffer)

    async def close(self) -> None:
        self._release()
        await self._cluster.close()

    def _release(self) -> None:
        if self._destination is not None:
            self._destination.close()
            self._destination = None


class TwoProcesses:
    """The source node here, the destination in a child process driven through a queue."""

    title = "two processes"

    def __init__(self, pages: int) -> None:
        self.pages = pages
        context = mp.get_context("spawn")
        self._commands, self._answers = context.Queue(), context.Queue()
        self._context = context

    async def start(self) -> Migrator:
        directory = PeerDirectory()
        self._rt = AsyncioRuntime("n0", directory=directory)
        await self._rt.start()
        args = (self._rt.address[1], self.pages, self._commands, self._answers)
        self._child = self._context.Process(target=_destination, args=args, daemon=True)
        self._child.start()
        directory.register("n1", "127.0.0.1", await asyncio.to_thread(self._answers.get, True, 60))
        return Migrator(self._rt)

    async def _ask(self, command: str):
        self._commands.put(command)
        return await asyncio.to_thread(self._answers.get, True, 300)

    async def prepare(self) -> None:
        await self._ask("prepare")

    async def peer_cpu(self) -> float:
        return await self._ask("cpu")

    async def digest(self) -> str:
        return await self._ask("digest")

    async def close(self) -> None:
        self._commands.put("stop")
        await self._rt.close()
        await asyncio.to_thread(self._child.join, 60)
        if self._child.is_alive():  # (it missed the stop: e.g. this side failed mid-command)
            self._child.terminate()


def _destination(src_port: int, pages: int, commands: mp.Queue, answers: mp.Queue) -> None:
    """The destination node of :class:`TwoProcesses`, in its own process. Commands: ``prepare``
    (a pre-faulted VM for the next migration), ``digest`` (of the last one's memory), ``cpu``
    (this process's CPU seconds so far), ``stop``."""

    async def serve() -> None:
        directory = PeerDirectory()
        directory.register("n0", "127.0.0.1", src_port)
        rt = AsyncioRuntime("n1", directory=directory)
        await rt.start()
        ready: list[BufferVM] = []
        migrator = Migrator(rt, vm_factory=lambda begin: ready.pop())
        migrator.amst.on_receive("plain", lambda s, p: None)
        answers.put(rt.address[1])
        last: BufferVM | None = None
        while (command := await asyncio.to_thread(commands.get)) != "stop":
            if command == "prepare":
                if last is not None:
                    last.close()
                last = BufferVM(pages, empty=True, prefault=True)
                ready.append(last)
                answers.put("ready")
            elif command == "digest":
                answers.put(await asyncio.to_thread(memory_digest, last.buffer))
            elif command == "cpu":
                answers.put(time.process_time())
        if last is not None:
            last.close()
        await rt.close()

    loop = new_event_loop()
    loop.run_until_complete(serve())
    loop.close()


async def measure(
    layout: OneProcess | TwoProcesses, size_mib: int, streams: int, repeats: int, batch_mib: int
) -> None:
    """Interleave, in every repeat (in rotating order), a plain AMST transfer and the migrations
    of the same bytes (:data:`MIGRATIONS`; the last leaves the stream count to DWCP, see
    ``migration/steering.py``, and shows what it chose)."""
    rows: dict[str, list[float]] = {name: [] for name in ROWS}  # Gbit/s
    cpu: dict[str, list[float]] = {name: [] for name in ROWS}  # CPU s/GiB, both nodes, all threads
    downtime: dict[str, list[float]] = {name: [] for name in ROWS}  # ms, migrations only
    used_streams: dict[str, list[int]] = {name: [] for name in ROWS}
    source = await layout.start()
    try:
        fixed = MigrationSettings.dwcp(streams=streams, batch_bytes=batch_mib << 20, verify_memory=False)
        with BufferVM(layout.pages, mix=ContentMix(0, 0, 1), seed=1) as vm:
            payload = bytes(vm.buffer)
        await source.amst.send("n1", payload, streams=streams, tag="plain")  # warm-up (receive buffer)
        gib = len(payload) / 2**30
        for repeat in range(repeats):
            # Each repeat starts at another row: the one right after the plain transfer measured
            # ~5% slower in A/B probes, whichever it was.
            for name in ROWS[repeat % len(ROWS) :] + ROWS[: repeat % len(ROWS)]:
                writes, fixed_streams = MIGRATIONS.get(name, (0, True))
                workload = UniformWorkload(writes, 4096) if writes else None
                vm = (
                    None
                    if name == AMST_ROW
                    else BufferVM(layout.pages, mix=ContentMix(0, 0, 1), seed=1, workload=workload)
                )
                if vm is not None:
                    await layout.prepare()
                cpu_started, peer_cpu = time.process_time(), await layout.peer_cpu()
                started = time.perf_counter()
                if vm is None:
                    await source.amst.send("n1", payload, streams=streams, tag="plain")
                    used_streams[name].append(streams)
                else:
                    settings = fixed if fixed_streams else fixed.with_(streams=None)
                    result = await source.migrate(vm, "n1", settings)
                    assert result.ok, result
                    downtime[name].append(result.downtime * 1e3)
                    used_streams[name].append(result.streams)
                rows[name].append(len(payload) * 8 / (time.perf_counter() - started) / 1e9)
                used = time.process_time() - cpu_started + await layout.peer_cpu() - peer_cpu
                cpu[name].append(used / gib)
                if vm is not None:
                    if workload is None:  # compared outside the timing (the guest was idle throughout)
                        assert await layout.digest() == memory_digest(vm.buffer), "memories differ"
                    vm.close()
            print(f"repeat {repeat + 1}/{repeats} done", flush=True)
    finally:
        await layout.close()
    table(rows, cpu, downtime, used_streams, size_mib, layout.title)


def table(
    rows: dict[str, list[float]],
    cpu: dict[str, list[float]],
    downtime: dict[str, list[float]],
    used_streams: dict[str, list[int]],
    size_mib: int,
    how: str,
) -> None:
    base = statistics.median(rows[AMST_ROW])
    report(
        f"Live migration vs plain AMST on loopback, {how}",
        [
            {
                "what": name,
                "streams": "/".join(str(n) for n in sorted(set(used_streams[name]))),
                "size_MiB": size_mib,
                "median_Gbit_s": round(statistics.median(v), 2),
                "runs": ", ".join(f"{x:.2f}" for x in v),
                "vs_AMST": round(statistics.median(v) / base, 3),
                "vs_AMST_paired": round(statistics.median(paired(v, rows[AMST_ROW])), 3),
                "cpu_s_per_GiB": round(statistics.median(cpu[name]), 2),
                "downtime_ms": round(statistics.median(downtime[name]), 1) if downtime[name] else None,
            }
            for name, v in rows.items()
        ],
    )
    print(
        "vs_AMST: ratio of the medians; vs_AMST_paired: median of each repeat's ratio to the AMST "
        "transfer of the same repeat (seconds apart: steadier when the host's speed drifts)"
    )


def paired(ours: list[float], amst: list[float]) -> list[float]:
    """Each repeat's goodput over the AMST transfer measured next to it."""
    return [a / b for a, b in zip(ours, amst, strict=True)]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--batch-mib", type=int, default=32, help="migration batch size (MigrationSettings.batch_bytes)"
    )
    parser.add_argument("--one-process", action="store_true", help="both nodes on one event loop (see above)")
    args = parser.parse_args()
    pages = args.size_mib * 256
    layout = OneProcess(pages) if args.one_process else TwoProcesses(pages)
    loop = new_event_loop()
    try:
        loop.run_until_complete(measure(layout, args.size_mib, args.streams, args.repeats, args.batch_mib))
    finally:
        loop.close()
