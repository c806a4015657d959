"""VM hosting in the simulator: placing, starting, stopping and live-migrating VMs between hosts,
with the hosts' memory budgets, refusals that say why, retried requests carried out once, and
determinism."""

from __future__ import annotations

import numpy as np
import pytest

from novacron.hosting import (
    HostUnreachable,
    MigrationInDoubt,
    ModelHypervisor,
    NoHostFits,
    VMClient,
    VMHost,
    VMNotFound,
    VMRequestRefused,
    VMSpec,
    VMSpecError,
    default_settings,
)
from novacron.migration import MigrationSettings
from novacron.sim import Simulation, Topology

HOSTS = ("h1", "h2", "h3")


def topology(rtt: float = 0.002, bandwidth: float = 10e9) -> Topology:
    """Three hosts and a controller (``ctl``, no VMs) in two sites."""
    topo = Topology("hosting")
    topo.add_site("a", "region-a")
    topo.add_site("b", "region-b")
    topo.connect_sites("a", "b", rtt=rtt, bandwidth=bandwidth)
    for node, site in (("h1", "a"), ("h2", "a"), ("h3", "b"), ("ctl", "a")):
        topo.add_node(node, site)
    return topo


class Cluster:
    """Hosts with the given memory (MiB) and a client on ``ctl``."""

    def __init__(
        self, capacity=None, *, seed: int = 0, retry: float = 0.5, topo=None, settings=default_settings
    ) -> None:
        capacity = capacity or {"h1": 1024, "h2": 2048, "h3": 4096}
        self.sim = Simulation(topo or topology(), seed=seed)

        def host(rt, c):
            return VMHost(rt, ModelHypervisor(rt), capacity_mib=c, settings=settings)

        hosts = {h: (lambda rt, c=c: host(rt, c)) for h, c in capacity.items()}
        self.sim.start(hosts)
        self.sim.start({"ctl": lambda rt: VMClient(rt, HOSTS, retry=retry)})

    def host(self, node: str) -> VMHost:
        return self.sim.runtime(node).app

    def run(self, fn):
        """``await fn(client)`` on the controller."""

        async def go(rt):
            return await fn(rt.app)

        return self.sim.run_until_complete("ctl", go, timeout=3600)

    def names(self, node: str) -> list[str]:
        return sorted(self.host(node).vms)


def test_a_vm_starts_on_the_best_fitting_host_and_shows_in_its_status():
    c = Cluster()
    host = c.run(lambda cl: cl.start(VMSpec("web1", 900)))
    assert host == "h1"  # 124 MiB left there, less than anywhere else
    assert c.run(lambda cl: cl.start(VMSpec("db1", 1500))) == "h2"
    assert c.run(lambda cl: cl.start(VMSpec("big", 3000))) == "h3"
    status = c.run(lambda cl: cl.status("h1"))
    assert (status.used_mib, status.free_mib) == (900, 124)
    assert [(vm.spec.name, vm.state) for vm in status.vms] == [("web1", "running")]
    assert c.host("h1").vms["web1"].vm.running


def test_a_vm_that_fits_nowhere_is_refused_with_each_hosts_free_memory():
    c = Cluster()
    fits_nowhere = r"no host has 5000 MiB free for huge: h1 1024/1024 MiB free, h2 2048/2048"
    with pytest.raises(NoHostFits, match=fits_nowhere):
        c.run(lambda cl: cl.start(VMSpec("huge", 5000)))
    too_big = r"h1 has 1024 MiB free of 1024: not enough for x \(2000 MiB\)"
    with pytest.raises(VMRequestRefused, match=too_big):
        c.run(lambda cl: cl.start(VMSpec("x", 2000), host="h1"))
    assert all(not c.host(h).vms for h in HOSTS)


def test_vm_names_are_unique_in_the_cluster():
    c = Cluster()
    c.run(lambda cl: cl.start(VMSpec("web1", 100), host="h1"))
    with pytest.raises(VMRequestRefused, match="h1 already has a VM named web1"):
        c.run(lambda cl: cl.start(VMSpec("web1", 100), host="h3"))


@pytest.mark.parametrize(
    "spec, field",
    [
        (VMSpec("", 100), "name"),
        (VMSpec("-x", 100), "name"),
        (VMSpec("a b", 100), "name"),
        (VMSpec("x", 0), "memory_mib"),
        (VMSpec("x", 100, dirty_rate=-1), "dirty_rate"),
        (VMSpec("x", 100, dirty_rate=float("nan")), "dirty_rate"),
        (VMSpec("x", 100, working_set_mib=101), "working_set_mib"),
    ],
)
def test_an_invalid_vm_description_is_refused_naming_the_field(spec, field):
    with pytest.raises(VMSpecError, match=field):
        spec.check()


def test_a_malformed_description_in_a_migration_begin_is_refused():
    with pytest.raises(VMSpecError, match="malformed VM description"):
        VMSpec.decode(b"\xc1garbage")
    with pytest.raises(VMSpecError, match="memory_mib"):
        VMSpec.decode(VMSpec("x", -5).encode())


@pytest.mark.parametrize("engine", ["precopy", "postcopy"])
def test_a_migration_moves_the_vm_its_memory_and_its_budget_to_the_destination(engine):
    c = Cluster()
    c.run(lambda cl: cl.start(VMSpec("web1", 256, dirty_rate=2000, working_set_mib=16), host="h1"))
    source_vm = c.host("h1").vms["web1"].vm
    summary = c.run(lambda cl: cl.migrate("web1", "h3", engine=engine))
    assert (summary.source, summary.destination, summary.engine) == ("h1", "h3", engine)
    assert summary.memory_bytes == 256 << 20 and summary.bytes_sent > 0 and summary.downtime > 0
    assert c.names("h1") == [] and c.names("h3") == ["web1"]
    arrived = c.host("h3").vms["web1"]
    assert arrived.state == "running" and arrived.vm.running and not source_vm.running
    assert arrived.vm.missing_count() == 0 and np.array_equal(arrived.vm.classes, source_vm.classes)
    # every write the guest made at the source is there (the guest has gone on writing at the
    # destination after a post-copy switch, and a write only bumps a page's version)
    assert (arrived.vm.versions >= source_vm.versions).all() and source_vm.versions.any()
    assert arrived.spec == VMSpec("web1", 256, dirty_rate=2000, working_set_mib=16)
    assert (c.host("h1").used_mib, c.host("h3").used_mib) == (0, 256)


def test_without_a_destination_the_vm_goes_to_the_best_fitting_other_host():
    c = Cluster({"h1": 1024, "h2": 600, "h3": 4096})
    c.run(lambda cl: cl.start(VMSpec("web1", 500), host="h1"))
    assert c.run(lambda cl: cl.migrate("web1")).destination == "h2"


def test_a_destination_without_room_refuses_and_the_vm_keeps_running_at_the_source():
    c = Cluster({"h1": 1024, "h2": 100, "h3": 100})
    c.run(lambda cl: cl.start(VMSpec("web1", 500, dirty_rate=500), host="h1"))
    refused = r"h2 refused the migration: cannot create the VM: h2 has 100 MiB"
    with pytest.raises(VMRequestRefused, match=refused):
        c.run(lambda cl: cl.migrate("web1", "h2"))
    hosted = c.host("h1").vms["web1"]
    assert hosted.state == "running" and hosted.vm.running
    assert not c.host("h2").vms and c.host("h2").used_mib == 0
    with pytest.raises(NoHostFits):
        c.run(lambda cl: cl.migrate("web1"))  # no other host has room


def test_a_destination_with_a_vm_of_the_same_name_refuses_the_migration():
    c = Cluster()
    c.run(lambda cl: cl.start(VMSpec("web1", 100), host="h1"))
    # started on h3 behind the client's back
    c.sim.run_until_complete("h3", lambda rt: rt.app.start(VMSpec("web1", 50)), timeout=10)
    with pytest.raises(VMRequestRefused, match="h3 already has a VM named web1"):
        c.run(lambda cl: cl.migrate("web1", "h3"))
    assert c.host("h1").vms["web1"].state == "running"
    assert c.host("h3").vms["web1"].spec.memory_mib == 50


def test_requests_that_cannot_be_carried_out_say_why():
    c = Cluster()
    c.run(lambda cl: cl.start(VMSpec("web1", 100), host="h1"))
    with pytest.raises(VMRequestRefused, match="web1 is already on h1"):
        c.run(lambda cl: cl.migrate("web1", "h1"))
    with pytest.raises(ValueError, match="no host 'h9' in the cluster"):
        c.run(lambda cl: cl.migrate("web1", "h9"))
    with pytest.raises(VMRequestRefused, match="engine"):
        c.run(lambda cl: cl.migrate("web1", "h2", engine="teleport"))
    with pytest.raises(VMNotFound, match="no host has a VM named 'nope'"):
        c.run(lambda cl: cl.stop("nope"))
    assert c.host("h1").vms["web1"].state == "running"


def test_stopping_a_vm_frees_its_memory_but_a_migrating_vm_cannot_be_stopped():
    c = Cluster()
    c.run(lambda cl: cl.start(VMSpec("web1", 800, dirty_rate=1000), host="h1"))

    async def stop_during_migration(cl):
        migration = cl.rt.spawn(cl.migrate("web1", "h3"))
        await cl.rt.sleep(0.05)
        assert c.host("h1").vms["web1"].state == "migrating"
        assert c.host("h3").vms["web1"].state == "arriving"
        assert c.host("h3").used_mib == 800  # its memory is taken from the begin on
        with pytest.raises(VMRequestRefused, match="cannot stop web1: it is migrating"):
            await cl._ask("h1", "stop", name="web1")
        return await migration

    c.run(stop_during_migration)
    assert c.run(lambda cl: cl.stop("web1")) == "h3"
    assert c.host("h3").used_mib == 0 and not c.host("h3").vms


def test_a_request_sent_many_times_is_carried_out_once():
    # the client re-sends every 0.1 ms over a 2 ms round trip: each request arrives ~20 times
    c = Cluster(retry=0.0001)
    c.run(lambda cl: cl.start(VMSpec("web1", 100), host="h3"))
    summary = c.run(lambda cl: cl.migrate("web1", "h1"))
    assert summary.destination == "h1" and c.names("h1") == ["web1"] and c.names("h3") == []
    assert c.host("h1").migrator.incoming[summary.migration].state == "finished"
    assert len(c.host("h1").migrator.incoming) == 1  # one migration, not one per copy


def test_a_host_that_does_not_answer_is_reported_and_left_out_of_placement():
    c = Cluster()
    c.sim.crash("h1")
    status = c.run(lambda cl: cl.cluster())
    assert status["h1"] is None and status["h2"].capacity_mib == 2048
    with pytest.raises(HostUnreachable, match="h1 did not answer the start"):
        c.run(lambda cl: cl.start(VMSpec("web1", 100), host="h1"))
    assert c.run(lambda cl: cl.start(VMSpec("web1", 100))) == "h2"


def test_the_same_seed_gives_the_same_run():
    def once(seed):
        c = Cluster(seed=seed, topo=topology(rtt=0.05, bandwidth=1e9))
        c.run(lambda cl: cl.start(VMSpec("web1", 128, dirty_rate=3000, working_set_mib=32), host="h1"))
        s = c.run(lambda cl: cl.migrate("web1", "h3"))
        return s.total_time, s.downtime, s.bytes_sent, c.sim.trace_hash()

    assert once(1) == once(1)
    assert once(1) != once(2)


def quick(engine: str, **changes) -> MigrationSettings:
    """Settings that give up on an unanswered message after 5 s (the default is a minute)."""
    return MigrationSettings.dwcp(engine=engine, timeout=5.0, **changes)


def partition_when_h3_switches(c: Cluster, duration: float) -> None:
    """h3 resumes the guest, then loses the network before its answer gets out."""
    migrator = c.host("h3").migrator
    switch = migrator._switch

    def switch_then_cut(incoming, message):
        answer = switch(incoming, message)
        c.sim.faults.partition(["h3"], None, duration=duration)
        return answer

    migrator._switch = switch_then_cut


def test_a_vm_whose_switch_over_went_unanswered_is_in_doubt_and_ends_up_on_one_host():
    c = Cluster(settings=quick)
    c.run(lambda cl: cl.start(VMSpec("web1", 128, dirty_rate=1000), host="h1"))
    partition_when_h3_switches(c, duration=30.0)
    with pytest.raises(MigrationInDoubt, match="in doubt"):
        c.run(lambda cl: cl.migrate("web1", "h3"))
    source, arrived = c.host("h1").vms["web1"], c.host("h3").vms["web1"]
    assert source.state == "in-doubt" and not source.vm.running and arrived.vm.running
    assert c.host("h1").used_mib == 128  # its memory stays taken until the doubt is settled
    c.run(lambda cl: cl.rt.sleep(60.0))  # the partition heals; the source asks again
    assert "web1" not in c.host("h1").vms and c.host("h3").vms["web1"].state == "running"
    assert c.host("h1").stats.in_doubt == {"destination": 1}
    assert c.host("h1").stats.migrations_out == {"in_doubt": 1}


def test_an_unresolved_copy_stays_paused_until_an_operator_stops_it():
    c = Cluster(settings=lambda engine: quick(engine, resolve_timeout=20.0))
    c.run(lambda cl: cl.start(VMSpec("web1", 128), host="h1"))
    partition_when_h3_switches(c, duration=1000.0)
    with pytest.raises(MigrationInDoubt):
        c.run(lambda cl: cl.migrate("web1", "h3"))
    c.run(lambda cl: cl.rt.sleep(30.0))
    paused = c.host("h1").vms["web1"]
    assert paused.state == "paused" and not paused.vm.running
    with pytest.raises(VMRequestRefused, match="cannot migrate web1: it is paused"):
        c.run(lambda cl: cl._ask("h1", "migrate", name="web1", to="h2"))
    c.run(lambda cl: cl._ask("h1", "stop", name="web1"))
    assert "web1" not in c.host("h1").vms and c.host("h1").used_mib == 0


def test_the_status_says_what_an_operator_should_know_about_a_vm_between_two_hosts():
    c = Cluster(settings=lambda engine: quick(engine, postcopy_after=0))
    c.run(lambda cl: cl.start(VMSpec("web1", 128, dirty_rate=1000), host="h1"))
    partition_when_h3_switches(c, duration=30.0)
    with pytest.raises(MigrationInDoubt):
        c.run(lambda cl: cl.migrate("web1", "h3", engine="postcopy"))
    (source,) = c.host("h1").status().vms
    (arriving,) = c.host("h3").status().vms
    assert source.state == "in-doubt" and "paused here" in source.detail
    assert arriving.state == "arriving"
    assert arriving.detail.startswith("post-copy: runs here,") and arriving.detail.endswith(
        "pages still at h1"
    )
    c.run(lambda cl: cl.rt.sleep(60.0))
    (settled,) = c.host("h3").status().vms
    assert (settled.state, settled.detail) == ("running", "")


def test_a_post_copy_guest_stopped_at_its_destination_takes_the_sources_paused_copy_with_it():
    """The destination runs the guest (post-copy) with pages missing, its answer lost; an operator
    stops it there. The source, in doubt, must not resume its stale copy: it hears that the
    destination took the guest and gave it up, and drops its copy too."""
    c = Cluster(settings=lambda engine: quick(engine, postcopy_after=0))
    c.run(lambda cl: cl.start(VMSpec("web1", 128, dirty_rate=1000), host="h1"))
    partition_when_h3_switches(c, duration=20.0)
    with pytest.raises(MigrationInDoubt):
        c.run(lambda cl: cl.migrate("web1", "h3", engine="postcopy"))
    c.sim.run_until_complete("h3", lambda rt: _stop(rt.app, "web1"), timeout=10)  # behind the partition
    assert "web1" not in c.host("h3").vms and c.host("h1").vms["web1"].state == "in-doubt"
    c.run(lambda cl: cl.rt.sleep(60.0))
    assert "web1" not in c.host("h1").vms  # not resumed: dropped
    assert c.host("h1").stats.in_doubt == {"destination": 1}


async def _stop(host, name):
    host.stop(name)
