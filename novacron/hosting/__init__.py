"""VM hosting: the VMs a node runs, started, stopped and live-migrated on request.

The piece that makes the migration protocol something an operator can use: ``novacron vm start
web1 --memory 512`` places a VM on a host (best fit on memory), ``novacron vm migrate web1``
moves it, live, to another. Public surface:

* :class:`VMHost`: one per node; owns the node's :class:`~novacron.migration.Migrator`, keeps a
  memory budget, answers :class:`VMClient` requests and receives migrated VMs.
* :class:`VMClient`: requests from any node or client slot; :func:`choose_host` places.
* :class:`VMSpec`: a VM's name, memory and write load, checked where it enters.
* Hypervisors: :class:`ModelHypervisor` (the simulator's abstract guests) here,
  ``novacron.backends.vm.BufferHypervisor`` (real memory) on the real backend.

Written against ``novacron.runtime`` only: the same hosts run in the simulator and on real nodes.
"""

from .client import HostUnreachable, MigrationInDoubt, OutcomeUnknown, VMClient, VMNotFound, VMRequestRefused
from .host import HostingStats, Hypervisor, InDoubt, RequestError, VMHost, default_settings
from .hypervisor import ModelHypervisor
from .messages import HostStatus, MigrationSummary, VMInfo, VMReply, VMRequest
from .placement import NoHostFits, choose_host
from .spec import VMSpec, VMSpecError

__all__ = [
    "HostStatus",
    "HostingStats",
    "HostUnreachable",
    "Hypervisor",
    "InDoubt",
    "MigrationInDoubt",
    "MigrationSummary",
    "ModelHypervisor",
    "NoHostFits",
    "OutcomeUnknown",
    "RequestError",
    "VMClient",
    "VMHost",
    "VMInfo",
    "VMNotFound",
    "VMReply",
    "VMRequest",
    "VMRequestRefused",
    "VMSpec",
    "VMSpecError",
    "choose_host",
    "default_settings",
]
