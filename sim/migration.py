"""One live migration over one simulated link: the building block of migration experiments.

``simulate_migration(link="wan", memory=4 << 30, ...)`` builds a two-node topology with the named
link, runs one migration between them with the given settings, and returns the report. Links are
the issue's two reference cases; pass a :class:`Link` for others.
"""

from __future__ import annotations

from dataclasses import dataclass

from novacron.migration import MigrationReport, MigrationSettings, Migrator, ModelVM, idle
from novacron.migration.workload import Workload
from novacron.transport.dataplane import ContentMix

from .network.topology import Topology
from .simulation import Simulation


@dataclass(frozen=True)
class Link:
    rtt: float
    bandwidth: float
    loss: float = 0.0


LINKS = {
    "datacenter": Link(rtt=0.0005, bandwidth=10e9),
    "wan": Link(rtt=0.100, bandwidth=1e9, loss=0.001),
}


def pair(link: Link) -> Topology:
    """``src`` and ``dst`` in two sites of two regions, joined by ``link``."""
    topo = Topology("migration-pair")
    topo.add_site("a", "region-a", fabric_latency=0.0)
    topo.add_site("b", "region-b", fabric_latency=0.0)
    topo.add_node("src", "a", nic_latency=0.0, nic_bandwidth=100e9)
    topo.add_node("dst", "b", nic_latency=0.0, nic_bandwidth=100e9)
    topo.connect_sites("a", "b", rtt=link.rtt, bandwidth=link.bandwidth, loss=link.loss)
    return topo


def simulate_migration(
    settings: MigrationSettings,
    *,
    link: str | Link = "wan",
    memory: int = 1 << 30,
    mix: ContentMix | None = None,
    workload: Workload | None = None,
    seed: int = 0,
    mode: str | None = None,
) -> MigrationReport:
    """Run one migration of a ``memory``-byte VM from ``src`` to ``dst``; see the module docstring.

    ``mode`` forces the network mode DWCP assumes (default: ``datacenter`` for the datacenter
    link, ``internet`` otherwise, what mode detection reports on these links)."""
    spec = LINKS[link] if isinstance(link, str) else link
    mode = mode or ("datacenter" if spec.rtt < 0.010 and spec.bandwidth > 1e9 else "internet")
    sim = Simulation(pair(spec), seed=seed)
    sim.start(
        lambda rt: Migrator(
            rt, vm_factory=lambda b: ModelVM(rt, b.pages, empty=True), mode_of=lambda peer: mode
        )
    )

    async def go(rt):
        vm = ModelVM(rt, memory // 4096, mix=mix, workload=workload or idle())
        return await rt.app.migrate(vm, "dst", settings)

    return sim.run_until_complete("src", go, timeout=1e7)
