"""Live migration on the real backend: goodput against a plain AMST transfer of the same bytes.

Two nodes on loopback in one process (one event loop, as the real-backend tests run them). The
VM is a real memory buffer of incompressible pages with an idle guest, so migration and the plain
transfer move the same bytes: the figure is what migration's page handling (dirty log, reading
pages, zero detection, batch framing and checksums, writing pages on the destination) costs on
top of AMST. The switch-over digest check is off, as in production (``verify_memory=False``); the
benchmark compares the two memories itself, outside the timing. A second row adds a guest
writing 3,000 pages/s (the migration then also re-sends dirtied pages; goodput counts memory
bytes only).
Target (issue 6): migration goodput >= 0.8x AMST's, interleaved runs, medians. The host's speed
drifts by tens of percent within a minute, so the table also gives the median of per-repeat
ratios (each migration against the AMST transfer of its own repeat).

``--two-processes`` runs each node in its own process instead (as in production, and as the other
real-backend benchmarks run): the destination VM lives in the second process, which reports its
memory digest and CPU time through a queue. There the page work cannot borrow a core the event
loop leaves idle (in one process, one loop moves both ends' bytes and the second core is free for
the page copies), so the ratio is lower; both are worth knowing.

Run: .venv/bin/python benchmarks/bench_migration_real.py [--size-mib 512] [--streams 4] [--repeats 3]
     [--batch-mib 32] [--two-processes]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import tempfile
import time
from pathlib import Path

from common import machine, report

from novacron.backends import AsyncioRuntime, LocalCluster, PeerDirectory, new_event_loop
from novacron.backends.vm import BufferVM
from novacron.migration import MigrationSettings, Migrator, UniformWorkload
from novacron.migration.driver import memory_digest
from novacron.transport.dataplane import ContentMix


async def main(size_mib: int, streams: int, repeats: int, batch_mib: int = 32) -> None:
    pages = size_mib * 256
    cluster = LocalCluster(Path(tempfile.mkdtemp()) / "bench", seed=0)
    for node in ("n0", "n1"):
        await cluster.add_node(node)
    destinations: list[BufferVM] = []

    def factory(begin):
        # the destination's memory was allocated and faulted in before (QEMU -mem-prealloc)
        return destinations[-1]

    migrators = {n: Migrator(cluster.runtime(n), vm_factory=factory) for n in ("n0", "n1")}
    plain_rx = migrators["n1"].amst  # plain transfers use the very AMST migration uses
    plain_rx.on_receive("plain", lambda s, p: None)
    settings = MigrationSettings.dwcp(streams=streams, batch_bytes=batch_mib << 20, verify_memory=False)
    rows = {"AMST transfer": [], "migration (idle guest)": [], "migration (3,000 writes/s)": []}
    cpu = {name: [] for name in rows}  # process CPU seconds per GiB, both nodes and all threads
    downtime: dict[str, list[float]] = {name: [] for name in rows}  # ms, migrations only
    for _ in range(repeats):
        vm = BufferVM(pages, mix=ContentMix(0, 0, 1), seed=1)
        payload = bytes(vm.buffer)
        started, cpu_started = time.perf_counter(), time.process_time()
        await migrators["n0"].amst.send("n1", payload, streams=streams, tag="plain")
        rows["AMST transfer"].append(len(payload) * 8 / (time.perf_counter() - started) / 1e9)
        cpu["AMST transfer"].append((time.process_time() - cpu_started) / (len(payload) / 2**30))
        for name, workload in (
            ("migration (idle guest)", None),
            ("migration (3,000 writes/s)", UniformWorkload(3000, 4096)),
        ):
            vm.close()
            vm = BufferVM(pages, mix=ContentMix(0, 0, 1), seed=1, workload=workload)
            destinations.append(BufferVM(pages, empty=True, prefault=True))
            started, cpu_started = time.perf_counter(), time.process_time()
            result = await migrators["n0"].migrate(vm, "n1", settings)
            assert result.ok
            downtime[name].append(result.downtime * 1e3)
            rows[name].append(len(payload) * 8 / (time.perf_counter() - started) / 1e9)
            cpu[name].append((time.process_time() - cpu_started) / (len(payload) / 2**30))
            if workload is None:  # checked here, outside the timing (the guest was idle throughout)
                assert memory_digest(destinations[-1].buffer) == memory_digest(vm.buffer)
            for d in destinations:
                d.close()
            destinations.clear()
        vm.close()
    await cluster.close()
    table(rows, cpu, downtime, size_mib, streams, "one process")


ROWS = ("AMST transfer", "migration (idle guest)", "migration (3,000 writes/s)")


def table(
    rows: dict[str, list[float]],
    cpu: dict[str, list[float]],
    downtime: dict[str, list[float]],
    size_mib: int,
    streams: int,
    how: str,
) -> None:
    base = statistics.median(rows["AMST transfer"])
    report(
        f"Live migration vs plain AMST on loopback, {how} ({machine()})",
        [
            {
                "what": name,
                "streams": streams,
                "size_MiB": size_mib,
                "median_Gbit_s": round(statistics.median(v), 2),
                "runs": ", ".join(f"{x:.2f}" for x in v),
                "vs_AMST": round(statistics.median(v) / base, 3),
                "vs_AMST_paired": round(statistics.median(paired(v, rows["AMST transfer"])), 3),
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


def _destination(src_port: int, pages: int, commands: mp.Queue, answers: mp.Queue) -> None:
    """The destination node, in its own process; the source drives it through ``commands``:
    ``prepare`` (a pre-faulted VM for the next migration), ``digest`` (of the last one's
    memory), ``cpu`` (this process's CPU seconds so far), ``stop``."""

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


async def main_two_processes(size_mib: int, streams: int, repeats: int, batch_mib: int = 32) -> None:
    pages = size_mib * 256
    directory = PeerDirectory()
    rt = AsyncioRuntime("n0", directory=directory)
    await rt.start()
    ctx = mp.get_context("spawn")
    commands, answers = ctx.Queue(), ctx.Queue()
    destination = ctx.Process(target=_destination, args=(rt.address[1], pages, commands, answers))
    destination.start()

    async def ask(command: str):
        commands.put(command)
        return await asyncio.to_thread(answers.get, True, 300)

    rows: dict[str, list[float]] = {name: [] for name in ROWS}
    cpu: dict[str, list[float]] = {name: [] for name in ROWS}
    downtime: dict[str, list[float]] = {name: [] for name in ROWS}  # ms, migrations only
    try:
        directory.register("n1", "127.0.0.1", await asyncio.to_thread(answers.get, True, 60))
        migrator = Migrator(rt)
        settings = MigrationSettings.dwcp(streams=streams, batch_bytes=batch_mib << 20, verify_memory=False)
        with BufferVM(pages, mix=ContentMix(0, 0, 1), seed=1) as vm:
            payload = bytes(vm.buffer)
        await migrator.amst.send("n1", payload, streams=streams, tag="plain")  # warm-up (receive buffer)
        for _ in range(repeats):
            for name in ROWS:
                workload = UniformWorkload(3000, 4096) if "writes" in name else None
                vm = (
                    None
                    if name == "AMST transfer"
                    else BufferVM(pages, mix=ContentMix(0, 0, 1), seed=1, workload=workload)
                )
                if vm is not None:
                    await ask("prepare")
                cpu_started, their_cpu = time.process_time(), await ask("cpu")
                started = time.perf_counter()
                if vm is None:
                    await migrator.amst.send("n1", payload, streams=streams, tag="plain")
                else:
                    result = await migrator.migrate(vm, "n1", settings)
                    assert result.ok
                    downtime[name].append(result.downtime * 1e3)
                rows[name].append(len(payload) * 8 / (time.perf_counter() - started) / 1e9)
                both = time.process_time() - cpu_started + await ask("cpu") - their_cpu
                cpu[name].append(both / (len(payload) / 2**30))
                if vm is not None:
                    if workload is None:  # compared outside the timing (the guest was idle throughout)
                        assert await ask("digest") == memory_digest(vm.buffer)
                    vm.close()
    finally:
        commands.put("stop")
        await rt.close()
        await asyncio.to_thread(destination.join, 60)
    table(rows, cpu, downtime, size_mib, streams, "two processes")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--batch-mib", type=int, default=32, help="migration batch size (MigrationSettings.batch_bytes)"
    )
    parser.add_argument("--two-processes", action="store_true", help="one node per process (see above)")
    args = parser.parse_args()
    run = main_two_processes if args.two_processes else main
    loop = new_event_loop()
    try:
        loop.run_until_complete(run(args.size_mib, args.streams, args.repeats, args.batch_mib))
    finally:
        loop.close()
