"""Live migration on the real backend: goodput against a plain AMST transfer of the same bytes.

Two nodes on loopback in one process (one event loop, as the real-backend tests run them). The
VM is a real memory buffer of incompressible pages with an idle guest, so migration and the plain
transfer move the same bytes: the figure is what migration's page handling (dirty log, reading
pages, zero detection, batch framing and checksums, writing pages on the destination) costs on
top of AMST. The switch-over digest check is off, as in production (``verify_memory=False``); the
benchmark compares the two memories itself, outside the timing. A second row adds a guest
writing 3,000 pages/s (the migration then also re-sends dirtied pages; goodput counts memory
bytes only).
Target (issue 6): migration goodput >= 0.8x AMST's, interleaved runs, medians.

Run: .venv/bin/python benchmarks/bench_migration_real.py [--size-mib 512] [--streams 4] [--repeats 3]
     [--batch-mib 32]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from common import machine, report

from novacron.backends import LocalCluster
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
            rows[name].append(len(payload) * 8 / (time.perf_counter() - started) / 1e9)
            cpu[name].append((time.process_time() - cpu_started) / (len(payload) / 2**30))
            if workload is None:  # checked here, outside the timing (the guest was idle throughout)
                assert memory_digest(destinations[-1].buffer) == memory_digest(vm.buffer)
            for d in destinations:
                d.close()
            destinations.clear()
        vm.close()
    await cluster.close()
    base = statistics.median(rows["AMST transfer"])
    table = [
        {
            "what": name,
            "streams": streams,
            "size_MiB": size_mib,
            "median_Gbit_s": round(statistics.median(v), 2),
            "runs": ", ".join(f"{x:.2f}" for x in v),
            "vs_AMST": round(statistics.median(v) / base, 3),
            "cpu_s_per_GiB": round(statistics.median(cpu[name]), 2),
        }
        for name, v in rows.items()
    ]
    report(f"Live migration vs plain AMST on loopback ({machine()})", table)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--batch-mib", type=int, default=32, help="migration batch size (MigrationSettings.batch_bytes)"
    )
    args = parser.parse_args()
    asyncio.run(main(args.size_mib, args.streams, args.repeats, args.batch_mib))
