"""VM hosting on the real backend (three nodes on loopback): guests in real memory, written to by
their workload threads, live-migrated between hosts on request."""

from __future__ import annotations

import pytest
from harness import AsyncioHarness

from novacron.backends.vm import BufferHypervisor, BufferVM
from novacron.hosting import MigrationInDoubt, VMClient, VMHost, VMRequestRefused, VMSpec

HOSTS = ["n0", "n1"]


@pytest.fixture
def cluster(tmp_path):
    """Hosts n0 (128 MiB) and n1 (96 MiB), and a client on ``ctl``; every guest destroyed after."""
    harness = AsyncioHarness(tmp_path)
    capacity = {"n0": 128, "n1": 96}

    def app(rt):
        if rt.node_id == "ctl":
            return VMClient(rt, HOSTS, timeout=10)
        return VMHost(rt, BufferHypervisor(), capacity_mib=capacity[rt.node_id])

    harness.start(["n0", "n1", "ctl"], app)
    yield harness
    for node in HOSTS:
        harness.runtime(node).app.close()
    harness.close()


def run(harness, fn, timeout=120):
    async def go(rt):
        return await fn(rt.app)

    return harness.run("ctl", go, timeout=timeout)


@pytest.mark.parametrize("engine", ["precopy", "postcopy"])
def test_a_running_vm_migrates_live_between_real_hosts(cluster, engine):
    spec = VMSpec("web1", 64, dirty_rate=3000, working_set_mib=8)
    assert run(cluster, lambda c: c.start(spec)) == "n1"  # best fit: 32 MiB left there
    source = cluster.runtime("n1").app.vms["web1"].vm
    assert isinstance(source, BufferVM) and source.running
    summary = run(cluster, lambda c: c.migrate("web1", engine=engine))
    assert (summary.source, summary.destination, summary.engine) == ("n1", "n0", engine)
    assert summary.memory_bytes == 64 << 20 and summary.downtime > 0
    assert source.writes > 0 and not source.running  # the guest wrote during the migration
    hosts = run(cluster, lambda c: c.cluster())
    assert [vm.spec.name for vm in hosts["n0"].vms] == ["web1"] and hosts["n1"].vms == []
    arrived = cluster.runtime("n0").app.vms["web1"]
    assert arrived.state == "running" and arrived.vm.running and arrived.vm.missing_count() == 0
    assert (hosts["n0"].used_mib, hosts["n1"].used_mib) == (64, 0)
    # (pre-copy checked the memory digest at the switch-over; post-copy has every page)


def test_a_vm_is_stopped_and_its_memory_given_back(cluster):
    run(cluster, lambda c: c.start(VMSpec("web1", 16), host="n0"))
    vm = cluster.runtime("n0").app.vms["web1"].vm
    assert run(cluster, lambda c: c.stop("web1")) == "n0"
    assert not vm._thread.is_alive()  # the guest thread is gone
    assert run(cluster, lambda c: c.status("n0")).used_mib == 0


def test_a_migration_to_a_host_without_room_is_refused_and_the_vm_runs_on(cluster):
    run(cluster, lambda c: c.start(VMSpec("big", 100), host="n0"))
    with pytest.raises(VMRequestRefused, match="n1 has 96 MiB free of 96: not enough for big"):
        run(cluster, lambda c: c.migrate("big", "n1"))
    hosted = cluster.runtime("n0").app.vms["big"]
    assert hosted.state == "running" and hosted.vm.running


def test_a_switch_over_whose_answers_are_lost_leaves_one_running_copy_on_real_hosts(tmp_path):
    """The destination's answers to the switch-over are lost for 3 s (longer than the source's
    1 s patience): the source keeps its guest paused, in doubt, and hands the VM over once an
    answer gets through; at no point do both guests run."""
    import asyncio

    from novacron.migration import MigrationSettings
    from novacron.migration.messages import MigrationSwitched

    harness = AsyncioHarness(tmp_path)

    def app(rt):
        if rt.node_id == "ctl":
            return VMClient(rt, HOSTS, timeout=10)
        settings = lambda engine: MigrationSettings.dwcp(engine=engine, timeout=1.0)  # noqa: E731
        return VMHost(rt, BufferHypervisor(), capacity_mib=64, settings=settings)

    harness.start(["n0", "n1", "ctl"], app)
    try:
        destination = harness.runtime("n1")
        send, lose_until = destination.send, [float("inf")]

        def lossy_send(dst, message):
            if isinstance(message, MigrationSwitched) and destination.now() < lose_until[0]:
                if lose_until[0] == float("inf"):
                    lose_until[0] = destination.now() + 3.0
                return
            send(dst, message)

        destination.send = lossy_send
        run(harness, lambda c: c.start(VMSpec("web1", 16, dirty_rate=1000), host="n0"))
        both = []

        async def migrate_and_watch(client):
            source, target = harness.runtime("n0").app, harness.runtime("n1").app
            task = asyncio.ensure_future(client.migrate("web1", "n1"))
            while True:
                ours, theirs = source.vms.get("web1"), target.vms.get("web1")
                if ours and theirs and ours.vm.running and theirs.vm.running:
                    both.append(client.rt.now())
                if "web1" not in source.vms:
                    break
                await asyncio.sleep(0.001)
            return task

        task = run(harness, migrate_and_watch, timeout=60)
        with pytest.raises(MigrationInDoubt):
            task.result()
        assert both == []
        assert harness.runtime("n1").app.vms["web1"].state == "running"
        assert harness.runtime("n0").app.stats.in_doubt == {"destination": 1}
    finally:
        for node in HOSTS:
            harness.runtime(node).app.close()
        harness.close()
