"""The SimPy simulator: virtual time, deterministic by seed, with fault injection.

Protocol code written against :mod:`novacron.runtime` runs here unchanged.
Start with :class:`Simulation` and the builders in :mod:`novacron.sim.topologies`.
"""

from . import topologies
from .faults import FaultHandle, FaultInjector, Nemesis
from .kernel import SimFuture, SimTask
from .network.topology import Link, Site, Topology
from .runtime import NodeClock, SimRuntime
from .seeds import derive_seed
from .simulation import Simulation
from .storage import SimStorage

__all__ = [
    "FaultHandle",
    "FaultInjector",
    "Link",
    "Nemesis",
    "NodeClock",
    "SimFuture",
    "SimRuntime",
    "SimStorage",
    "SimTask",
    "Simulation",
    "Site",
    "Topology",
    "derive_seed",
    "topologies",
]
