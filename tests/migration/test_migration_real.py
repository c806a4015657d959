"""Migration on the real backend (two nodes on loopback): real memory under a running workload."""

import asyncio
import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))
from harness import AsyncioHarness  # noqa: E402

from novacron.backends.vm import BufferVM  # noqa: E402
from novacron.migration import MigrationError, MigrationSettings, Migrator, UniformWorkload  # noqa: E402

PAGES = (32 << 20) // 4096
WORKLOAD = UniformWorkload(rate=3000, working_set=2048)


@pytest.fixture
def cluster(tmp_path):
    harness = AsyncioHarness(tmp_path)
    vms: list[BufferVM] = []
    destinations: dict[str, BufferVM] = {}

    def start(dest_workload=None):
        def app(rt):
            def factory(begin):
                vm = BufferVM(begin.pages, empty=True, workload=dest_workload)
                vms.append(vm)
                destinations[begin.migration] = vm
                return vm

            return Migrator(rt, vm_factory=factory)

        harness.start(["n0", "n1"], app)
        return destinations

    def source(**kw):
        vm = BufferVM(PAGES, workload=WORKLOAD, seed=7, **kw)
        vms.append(vm)
        return vm

    yield harness, start, source
    for vm in vms:
        vm.close()
    harness.close()


def migrate(harness, vm, settings):
    async def go(rt):
        return await rt.app.migrate(vm, "n1", settings)

    return harness.run("n0", go, timeout=120)


@pytest.mark.parametrize(
    "settings", [MigrationSettings.dwcp(streams=4), MigrationSettings.qemu_defaults(max_bandwidth_bps=None)]
)
def test_precopy_leaves_the_destination_byte_identical_under_a_running_workload(cluster, settings):
    harness, start, source = cluster
    destinations = start()  # the destination guest stays idle, so its memory can be compared after
    vm = source()
    report = migrate(harness, vm, settings)
    (dest,) = destinations.values()
    assert report.ok and vm.writes > 0  # the guest really wrote during the migration
    assert hashlib.sha256(dest.buffer).digest() == hashlib.sha256(vm.buffer).digest()
    assert dest.running and not vm.running
    assert report.rounds[0].pages == PAGES and report.rounds[-1].phase == "stop-and-copy"


def test_postcopy_fetches_faulted_pages_and_ends_with_every_page(cluster):
    harness, start, source = cluster
    destinations = start(dest_workload=WORKLOAD)
    vm = source()
    report = migrate(harness, vm, MigrationSettings.dwcp(streams=4, engine="postcopy", postcopy_after=1))
    (dest,) = destinations.values()
    dest.close()  # stop its guest before comparing
    assert report.ok and dest.missing_count() == 0
    untouched = ~dest.written_here
    assert np.array_equal(dest.rows[untouched], vm.rows[untouched])


def test_a_destination_crash_mid_migration_fails_cleanly_and_the_source_keeps_running(cluster):
    harness, start, source = cluster
    start()
    vm = source()

    async def go(rt):
        # a short reconnect window, so the failure is reported in seconds
        rt.app.amst.reconnect_timeout = 1.0
        task = rt.spawn(
            rt.app.migrate(vm, "n1", MigrationSettings.dwcp(streams=2, timeout=3.0, batch_bytes=1 << 20))
        )
        receiver = harness.runtime("n1").app
        while not any(incoming.batches for incoming in receiver.incoming.values()):
            await rt.sleep(0.001)
        await harness.cluster.crash("n1")  # mid round 0: a batch is in, most are not
        with pytest.raises(MigrationError) as failure:
            await task
        return failure.value.report

    report = harness.run("n0", go, timeout=60)
    assert report.outcome.startswith("failed") and report.rounds == []
    assert vm.running and vm.throttle == 0.0
    writes = vm.writes
    harness.loop.run_until_complete(asyncio.sleep(0.05))
    assert vm.writes > writes  # the guest still runs
