"""VM hosting on the real backend (three nodes on loopback): guests in real memory, written to by
their workload threads, live-migrated between hosts on request."""

from __future__ import annotations

import pytest
from harness import AsyncioHarness

from novacron.backends.vm import BufferHypervisor, BufferVM
from novacron.hosting import VMClient, VMHost, VMRequestRefused, VMSpec

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
