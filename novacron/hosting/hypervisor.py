"""The simulator's hypervisor: abstract guests (:class:`~novacron.migration.ModelVM`).

The real backend's, with guests in real memory, is ``novacron.backends.vm.BufferHypervisor``;
a libvirt/QEMU driver would be a third implementation of :class:`~.host.Hypervisor`.
"""

from __future__ import annotations

from novacron.migration import ModelVM
from novacron.migration.messages import MigrationBegin
from novacron.runtime import Runtime

from .spec import VMSpec


class ModelHypervisor:
    """Guests of page classes and versions, their writes drawn from the runtime's seeded generator
    (so a simulated host stays deterministic)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    async def create(self, spec: VMSpec) -> ModelVM:
        return ModelVM(self.rt, spec.pages, workload=spec.workload())

    def receive(self, spec: VMSpec, begin: MigrationBegin) -> ModelVM:
        return ModelVM(self.rt, begin.pages, page_size=begin.page_size, empty=True, workload=spec.workload())

    def destroy(self, vm: ModelVM) -> None:
        vm.pause()  # nothing to free but the arrays, which go with the last reference
