"""Migration on the real backend (two nodes on loopback): real memory under a running workload."""

import asyncio
import hashlib
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))
from harness import AsyncioHarness  # noqa: E402

from novacron.backends.vm import BufferVM  # noqa: E402
from novacron.migration import MigrationError, MigrationSettings, Migrator, UniformWorkload  # noqa: E402
from novacron.transport.dataplane import ContentMix  # noqa: E402

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


def test_runs_of_raw_pages_land_straight_in_the_destinations_memory(cluster):
    harness, start, source = cluster
    destinations = start()
    vm = source(mix=ContentMix(0, 0, 1))  # incompressible, no zero page: round 0 is one run of raw pages
    report = migrate(harness, vm, MigrationSettings.dwcp(streams=4))
    (dest,) = destinations.values()
    assert report.ok and vm.writes > 0
    assert hashlib.sha256(dest.buffer).digest() == hashlib.sha256(vm.buffer).digest()
    (incoming,) = harness.runtime("n1").app.incoming.values()
    assert incoming.pages_in_place >= PAGES, "round 0 was received straight into guest memory"
    assert harness.runtime("n1").app.amst.chunks_placed > 0
    assert report.rounds[0].pages == PAGES and report.rounds[0].bytes_out == PAGES * 4096  # no layout


def test_bare_runs_are_encoded_on_the_event_loop_and_copied_batches_in_a_worker(cluster):
    """A run of raw guest memory needs no copy, so its batch is settled on the loop (a thread
    hand-off per batch cost more than the checks); a batch whose pages get copied goes to a worker."""
    harness, start, source = cluster
    start()
    rt = harness.runtime("n0")
    offloaded: list[str] = []
    offload = rt.offload

    def counting(fn, *args):
        offloaded.append(getattr(fn, "func", fn).__name__)
        return offload(fn, *args)

    rt.offload = counting
    settings = MigrationSettings.dwcp(streams=4)
    assert migrate(harness, source(mix=ContentMix(0, 0, 1)), settings).ok
    assert "_encode_pages" not in offloaded  # round 0: 32 MiB of incompressible pages, one bare run
    assert migrate(harness, source(mix=ContentMix(0.3, 0.3, 0.4)), settings).ok
    assert "_encode_pages" in offloaded  # zero pages among them: the batch layout, pages copied


def test_postcopy_fetches_faulted_pages_and_ends_with_every_page(cluster):
    harness, start, source = cluster
    destinations = start(dest_workload=WORKLOAD)
    vm = source()
    report = migrate(harness, vm, MigrationSettings.dwcp(streams=4, engine="postcopy", postcopy_after=1))
    (dest,) = destinations.values()
    dest.close()  # stop its guest before comparing
    assert report.ok and dest.missing_count() == 0
    (incoming,) = harness.runtime("n1").app.incoming.values()
    assert incoming.rejected == [], "every urgent page fetch decoded"
    untouched = ~dest.written_here
    assert np.array_equal(dest.rows[untouched], vm.rows[untouched])


def test_page_runs_pushed_after_a_postcopy_switch_never_overwrite_what_the_guest_wrote(cluster):
    harness, start, source = cluster
    destinations = start(dest_workload=WORKLOAD)  # the guest runs here while runs arrive
    vm = source(mix=ContentMix(0, 0, 1))
    settings = MigrationSettings.dwcp(streams=4, engine="postcopy", postcopy_after=0)
    report = migrate(harness, vm, settings)
    (dest,) = destinations.values()
    dest.close()
    assert report.ok and dest.missing_count() == 0
    (incoming,) = harness.runtime("n1").app.incoming.values()
    assert incoming.pages_in_place == 0, "a running guest's memory takes no transfer in place"
    assert dest.fault_requests > 0 and incoming.rejected == [], "urgent fetches of raw pages decode"
    untouched = ~dest.written_here
    assert np.array_equal(dest.rows[untouched], vm.rows[untouched])


def test_a_guest_faulting_on_single_raw_pages_gets_each_one_fetched(cluster):
    harness, start, source = cluster
    # a slow writer faults on one page at a time: each urgent fetch is a lone raw page, which
    # must still travel in the batch layout the urgent stream's receiver decodes
    destinations = start(dest_workload=UniformWorkload(rate=200, working_set=PAGES))
    vm = source(mix=ContentMix(0, 0, 1))
    settings = MigrationSettings.dwcp(
        streams=2, engine="postcopy", postcopy_after=0, postcopy_push_bytes=1 << 20
    )
    report = migrate(harness, vm, settings)
    (dest,) = destinations.values()
    dest.close()
    (incoming,) = harness.runtime("n1").app.incoming.values()
    assert report.ok and dest.fault_requests > 0
    assert incoming.rejected == []
    untouched = ~dest.written_here
    assert np.array_equal(dest.rows[untouched], vm.rows[untouched])


def test_the_guests_write_log_moves_for_the_regions_it_writes_and_only_those():
    from novacron.backends.vm import LOG_REGION_PAGES

    region = LOG_REGION_PAGES * 4096
    vm = BufferVM(4 * LOG_REGION_PAGES, workload=UniformWorkload(rate=20000, working_set=LOG_REGION_PAGES))
    try:
        log = vm.read(np.arange(vm.page_count)).log  # a run read in place carries the log
        assert log is not None
        quiet = log.version(region, 4 * region)  # regions 1-3: never written
        before = log.version(0, region)
        deadline = time.monotonic() + 30
        while vm.writes < 200 and time.monotonic() < deadline:
            time.sleep(0.002)
        vm.pause()
        assert vm.writes >= 200
        assert log.version(0, region) not in (before, None), "region 0 was written"
        assert log.version(region, 4 * region) == quiet
        shifted = vm.read(np.arange(LOG_REGION_PAGES, 2 * LOG_REGION_PAGES)).log  # from page 256 on
        assert shifted.version(0, region) == log.version(region, 2 * region)
    finally:
        vm.close()


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


def test_a_writer_faster_than_the_link_converges_only_with_auto_converge(cluster):
    """QEMU's 128 MiB/s-style cap, here 400 Mbit/s, makes the link slow on loopback; the guest
    re-dirties its 32 MiB working set (0.7 s of link time) faster than a round sends it."""
    harness, start, _ = cluster
    destinations = start()
    heavy = UniformWorkload(rate=80000, working_set=8192)
    capped = MigrationSettings.qemu_defaults(max_bandwidth_bps=400e6, max_rounds=3, batch_bytes=4 << 20)
    vm = BufferVM(16384, workload=heavy, seed=5)
    try:
        stuck = migrate(harness, vm, capped)
        assert stuck.ok and not stuck.converged and stuck.precopy_rounds == 3
        assert stuck.rounds[-1].pages > 4000  # the stop-and-copy sent most of the working set
        vm2 = BufferVM(16384, workload=heavy, seed=6)
        try:
            helped = migrate(harness, vm2, capped.with_(auto_converge=True, max_rounds=30))
            assert helped.ok and helped.converged and helped.final_throttle >= 0.2
            assert (
                hashlib.sha256(vm2.buffer).digest()
                == hashlib.sha256(list(destinations.values())[-1].buffer).digest()
            )
        finally:
            vm2.close()
    finally:
        vm.close()
