"""Live VM migration over DWCP: pre-copy and post-copy engines on AMST, HDE and PBA.

Public surface:

* :class:`Migrator`: one per node; ``await migrator.migrate(vm, peer, settings)`` moves a VM and
  returns a :class:`MigrationReport`; on the destination it builds VMs with its ``vm_factory``.
* :class:`MigrationSettings`: ``qemu_defaults()`` (the baseline) and ``dwcp()``.
* VMs: :class:`ModelVM` (the simulator's abstract memory) here, ``novacron.backends.vm.BufferVM``
  (a real memory buffer) on the real backend; both implement :mod:`.driver`'s protocols, which a
  libvirt/QEMU driver could implement too.
* Workloads (:mod:`.workload`), the analytic pre-copy model (:mod:`.model`).

Works unchanged in the simulator and on the asyncio backend (it only uses ``novacron.runtime``).
"""

from .autoconverge import AutoConverge
from .driver import PAGE_SIZE, DestinationVM, ModelPages, RealPages, SourceVM
from .pages import BatchEncoder, BatchError, decode_real
from .report import MigrationReport, RoundReport
from .service import MigrationError, MigrationInDoubt, Migrator
from .settings import MigrationSettings, SettingsError
from .vm import ModelVM
from .workload import HotColdWorkload, TraceWorkload, UniformWorkload, idle

__all__ = [
    "PAGE_SIZE",
    "AutoConverge",
    "BatchEncoder",
    "BatchError",
    "DestinationVM",
    "HotColdWorkload",
    "MigrationError",
    "MigrationInDoubt",
    "MigrationReport",
    "MigrationSettings",
    "Migrator",
    "ModelPages",
    "ModelVM",
    "RealPages",
    "RoundReport",
    "SettingsError",
    "SourceVM",
    "TraceWorkload",
    "UniformWorkload",
    "decode_real",
    "idle",
]
