"""The VM inventory in the ASS map: every replica learns where each VM runs, a migration moves
the record, a stop removes it, and a name started twice across a partition shows as a conflict
instead of one record hiding the other."""

from __future__ import annotations

from novacron.hosting import ModelHypervisor, VMClient, VMHost, VMSpec
from novacron.hosting.inventory import hosts_in, key_of
from novacron.sim import Simulation, topologies
from novacron.sync import StateSync, SyncSettings

REGIONS = ("West Europe", "East US", "Japan East")


class Cluster:
    """A host in each region, each an ASS replica recording its VMs, and a client on the first."""

    def __init__(self, seed: int = 0) -> None:
        self.sim = Simulation(topologies.wan(REGIONS, nodes_per_region=1), seed=seed)
        self.hosts = self.sim.node_ids
        settings = SyncSettings.for_mode("internet")

        def app(rt):
            sync = StateSync(rt, peers=self.hosts, settings=settings)
            return VMHost(rt, ModelHypervisor(rt), capacity_mib=2048, inventory=sync)

        self.sim.start(app)
        self.replicas = {h: self.host(h).inventory.sync for h in self.hosts}

    def host(self, node: str) -> VMHost:
        return self.sim.runtime(node).app

    def client_run(self, fn):
        async def go(rt):
            return await fn(VMClient(rt, self.hosts))

        return self.sim.run_until_complete(self.hosts[0], go, timeout=600)

    def records(self, name: str) -> dict[str, list[str]]:
        return {h: hosts_in(r.get(key_of(name)).values) for h, r in self.replicas.items()}

    def wait(self, seconds: float) -> None:
        self.sim.run(until=self.sim.now + seconds)


def test_every_replica_learns_where_a_vm_runs_and_follows_it_through_a_migration_and_a_stop():
    c = Cluster()
    a, b, z = c.hosts
    c.client_run(lambda cl: cl.start(VMSpec("web1", 256, dirty_rate=500), host=b))
    c.wait(15.0)
    assert c.records("web1") == {h: [b] for h in c.hosts}
    c.client_run(lambda cl: cl.migrate("web1", z))
    c.wait(15.0)
    assert c.records("web1") == {h: [z] for h in c.hosts}
    c.client_run(lambda cl: cl.stop("web1"))
    c.wait(15.0)
    assert c.records("web1") == {h: [] for h in c.hosts}


def test_a_name_started_on_both_sides_of_a_partition_shows_as_a_conflict():
    c = Cluster()
    a, b, z = c.hosts
    c.sim.faults.partition([z], None, duration=20.0)
    for node in (a, z):  # two controllers, one on each side, each seeing no VM of that name
        c.sim.run_until_complete(node, lambda rt: rt.app.start(VMSpec("db", 128)), timeout=10)
    c.wait(40.0)  # healed, and the map repaired
    assert c.records("db") == {h: sorted([a, z]) for h in c.hosts}
    c.sim.run_until_complete(z, lambda rt: rt.app.migrate("db", b), timeout=120)
    c.wait(20.0)
    assert c.records("db") == {h: sorted([a, b]) for h in c.hosts}  # z's record moved, a's stays


def test_a_restarted_host_removes_its_records_of_the_guests_that_died_with_it():
    c = Cluster()
    a, b, z = c.hosts
    c.client_run(lambda cl: cl.start(VMSpec("web1", 256), host=b))
    c.client_run(lambda cl: cl.start(VMSpec("web2", 256), host=z))
    c.wait(15.0)
    c.sim.crash(b)
    c.sim.restart(b)  # its replica reloads the map from disk, records of web1 included
    c.replicas[b] = c.host(b).inventory.sync
    c.wait(20.0)
    assert c.records("web1") == {h: [] for h in c.hosts}
    assert c.records("web2") == {h: [z] for h in c.hosts}
