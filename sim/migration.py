"""Live migrations over one simulated link: the building blocks of migration experiments.

``simulate_migration(link="wan", memory=4 << 30, ...)`` builds a two-node topology with the named
link, runs one migration between them with the given settings, and returns the report. Links are
the issue's two reference cases; pass a :class:`Link` for others. ``simulate_evacuation(vms=4,
cores=2, ...)`` migrates several VMs at once from the same host, whose encoding work then
competes for the host's cores (:mod:`novacron.sim.cpu`) as well as for the link.
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


def pair(link: Link, *, cores: int | None = None) -> Topology:
    """``src`` and ``dst`` in two sites of two regions, joined by ``link``; ``cores`` per node."""
    topo = Topology("migration-pair")
    topo.add_site("a", "region-a", fabric_latency=0.0)
    topo.add_site("b", "region-b", fabric_latency=0.0)
    topo.add_node("src", "a", nic_latency=0.0, nic_bandwidth=100e9, cores=cores)
    topo.add_node("dst", "b", nic_latency=0.0, nic_bandwidth=100e9, cores=cores)
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
    (report,) = simulate_evacuation(
        settings,
        vms=1,
        cores=None,
        link=link,
        memory=memory,
        mix=mix,
        workload=workload,
        seed=seed,
        mode=mode,
    )
    return report


def simulate_evacuation(
    settings: MigrationSettings,
    *,
    vms: int,
    cores: int | None,
    link: str | Link = "wan",
    memory: int = 1 << 30,
    mix: ContentMix | None = None,
    workload: Workload | None = None,
    seed: int = 0,
    mode: str | None = None,
) -> list[MigrationReport]:
    """Migrate ``vms`` VMs of ``memory`` bytes each from ``src`` to ``dst``, all started at once,
    on nodes of ``cores`` cores each (None: unlimited); one report per VM, in order.

    Raises :class:`~novacron.migration.MigrationError` if any migration fails."""
    if vms < 1:
        raise ValueError(f"vms must be >= 1, got {vms}")
    sim = _simulation(link, cores, seed, mode)

    async def evacuate(rt):
        guests = [ModelVM(rt, memory // 4096, mix=mix, workload=workload or idle()) for _ in range(vms)]
        tasks = [rt.spawn(rt.app.migrate(vm, "dst", settings)) for vm in guests]
        return [await task for task in tasks]

    return sim.run_until_complete("src", evacuate, timeout=1e7)


def _simulation(link: str | Link, cores: int | None, seed: int, mode: str | None) -> Simulation:
    """Both nodes running a Migrator over ``link`` (see :func:`simulate_migration` for ``mode``)."""
    spec = LINKS[link] if isinstance(link, str) else link
    mode = mode or ("datacenter" if spec.rtt < 0.010 and spec.bandwidth > 1e9 else "internet")
    sim = Simulation(pair(spec, cores=cores), seed=seed)
    sim.start(
        lambda rt: Migrator(
            rt, vm_factory=lambda b: ModelVM(rt, b.pages, empty=True), mode_of=lambda peer: mode
        )
    )
    return sim
