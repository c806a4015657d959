"""Shared set-up for the migration tests: a two-node simulated link, and running a migration."""

from __future__ import annotations

from novacron.migration import MigrationSettings, Migrator, ModelVM, idle
from novacron.sim import Simulation, Topology
from novacron.sim.migration import Link, pair
from novacron.transport.dataplane import ContentMix

MiB = 1 << 20
MIX = ContentMix(zero=0.3, text=0.3, random=0.4)


def link(rtt: float = 0.001, bandwidth: float = 1e9, loss: float = 0.0) -> Topology:
    """Nodes ``src`` and ``dst`` in two sites joined by one link."""
    return pair(Link(rtt, bandwidth, loss))


class SimMigration:
    """A simulation where ``src`` migrates a ModelVM to ``dst``; keeps both VMs for checks."""

    def __init__(self, topo: Topology | None = None, seed: int = 0, dest_workload=None, **migrator) -> None:
        """``migrator``: keyword arguments of both nodes' :class:`Migrator` (e.g. receive_timeout)."""
        self.sim = Simulation(topo or link(), seed=seed)
        self.destinations: dict[str, ModelVM] = {}
        self.source: ModelVM | None = None

        def app(rt):
            def factory(begin):
                vm = ModelVM(rt, begin.pages, empty=True, workload=dest_workload or idle())
                self.destinations[begin.migration] = vm
                return vm

            return Migrator(rt, vm_factory=factory, **migrator)

        self.sim.start(app)

    @property
    def destination(self) -> ModelVM:
        (vm,) = self.destinations.values()
        return vm

    def run(
        self, settings: MigrationSettings, *, memory: int = 64 * MiB, mix=MIX, workload=None, during=None
    ):
        """Migrate; ``during(rt)`` is an optional coroutine started alongside (e.g. a fault)."""

        async def go(rt):
            self.source = ModelVM(rt, memory // 4096, mix=mix, workload=workload or idle())
            if during is not None:
                rt.spawn(during(rt))
            return await rt.app.migrate(self.source, "dst", settings)

        return self.sim.run_until_complete("src", go, timeout=1e6)
