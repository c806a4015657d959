"""What a scenario is: a topology, a workload, a fault schedule, a seed and a duration.

A scenario is data (validated by pydantic, loaded from YAML by :mod:`.loading`) so that a run is
reproducible from one small file: the ``scenario.yaml`` saved next to the results replays the
same trace bit for bit. Durations accept ``500ms`` / ``30s`` forms, sizes ``64MiB``, bandwidths
``10Gbit`` (:mod:`.units`). Unknown fields are errors, with the closest field name suggested:
a typo such as ``durration`` must not silently fall back to a default.

Faults name nodes with *selectors*: a node id, ``node:ID``, ``site:NAME``, ``region:NAME`` or
``all``; a list of selectors is their union. Selectors are checked against the built topology by
:func:`.build.check_scenario` (they cannot be checked before the topology exists).
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from novacron.data import regions as known_regions
from novacron.sim import topologies
from novacron.sim.network.topology import Topology

from .units import Bandwidth, Duration, Size, Time

if TYPE_CHECKING:
    from novacron.sim import FaultHandle, Simulation

    from .build import NodeResolver

LinkClass = Literal["intra-site", "intra-region", "inter-region"]
#: The link classes reports group by, in the order they are shown (nearest first).
LINK_CLASSES: tuple[str, ...] = ("intra-site", "intra-region", "inter-region")
#: The simulator's congestion controls (``novacron.sim.network.congestion.ALGORITHMS``; a test checks).
Congestion = Literal["cubic", "reno", "bbr"]


class Spec(BaseModel):
    """Base of every scenario section: immutable, unknown fields refused with a suggestion."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _no_unknown_fields(cls, data: Any) -> Any:
        if isinstance(data, dict):
            allowed = list(cls.model_fields)
            for key in data:
                if key not in allowed:
                    close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
                    hint = f"did you mean '{close[0]}'? " if close else ""
                    raise ValueError(f"unknown field '{key}' ({hint}allowed: {', '.join(allowed)})")
        return data


def _as_tuple(value: Any) -> Any:
    """Let a single value stand for a one-element list (``streams: 4``, ``side_a: region:X``)."""
    return (value,) if isinstance(value, str | int | float) and not isinstance(value, bool) else value


def _check_name(name: str) -> str:
    if not name or not all(c.isalnum() or c in "_.-" for c in name):
        raise ValueError("use only letters, digits, '_', '.' and '-' (it names files and folders)")
    return name


#: Scenario and workload names: they become result folders and transfer tags.
Name = Annotated[str, AfterValidator(_check_name)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
#: One or more node selectors (``node-id``, ``node:ID``, ``site:NAME``, ``region:NAME``, ``all``).
Selection = Annotated[tuple[str, ...], BeforeValidator(_as_tuple), Field(min_length=1)]


# --- topology ----------------------------------------------------------------------------------


def _check_region_names(names: tuple[str, ...]) -> tuple[str, ...]:
    known = known_regions()
    unknown = [r for r in names if r not in known]
    if unknown:
        raise ValueError(f"unknown region(s) {unknown} (known: {', '.join(known)})")
    if len(set(names)) != len(names):
        raise ValueError(f"a region is listed twice: {list(names)}")
    return names


Regions = Annotated[tuple[str, ...], Field(min_length=1), AfterValidator(_check_region_names)]


class _TopologySpec(Spec):
    #: each node's core count for rt.compute() work (novacron.sim.cpu); omitted: no limit
    cores: int | None = Field(None, ge=1)


class DatacenterTopology(_TopologySpec):
    """One datacenter (:func:`novacron.sim.topologies.datacenter`): every pair is intra-site."""

    kind: Literal["datacenter"] = "datacenter"
    nodes: int = Field(8, ge=1)
    nic_bandwidth: Bandwidth = 25e9
    rtt: Duration = 200e-6

    def build(self) -> Topology:
        return topologies.datacenter(
            self.nodes, nic_bandwidth=self.nic_bandwidth, rtt=self.rtt, cores=self.cores
        )


class WanTopology(_TopologySpec):
    """One site per region joined by the measured RTTs (:func:`novacron.sim.topologies.wan`)."""

    kind: Literal["wan"] = "wan"
    regions: Regions = topologies.DEFAULT_REGIONS
    nodes_per_region: int = Field(1, ge=1)
    wan_bandwidth: Bandwidth = 1e9
    wan_loss: float = Field(0.0, ge=0.0, lt=1.0)
    wan_jitter_fraction: float = Field(0.02, ge=0.0)
    nic_bandwidth: Bandwidth = 10e9

    def build(self) -> Topology:
        return topologies.wan(
            self.regions,
            nodes_per_region=self.nodes_per_region,
            wan_bandwidth=self.wan_bandwidth,
            wan_loss=self.wan_loss,
            wan_jitter_fraction=self.wan_jitter_fraction,
            nic_bandwidth=self.nic_bandwidth,
            cores=self.cores,
        )


class HybridTopology(_TopologySpec):
    """Datacenters inside regions (:func:`novacron.sim.topologies.hybrid`): all three link classes."""

    kind: Literal["hybrid"] = "hybrid"
    regions: Regions = topologies.DEFAULT_REGIONS[:3]
    datacenters_per_region: int = Field(2, ge=1)
    nodes_per_datacenter: int = Field(4, ge=1)
    metro_rtt: Duration = 1.5e-3
    metro_bandwidth: Bandwidth = 100e9
    wan_bandwidth: Bandwidth = 10e9
    wan_loss: float = Field(1e-4, ge=0.0, lt=1.0)
    wan_jitter_fraction: float = Field(0.02, ge=0.0)
    nic_bandwidth: Bandwidth = 25e9

    def build(self) -> Topology:
        return topologies.hybrid(
            self.regions,
            datacenters_per_region=self.datacenters_per_region,
            nodes_per_datacenter=self.nodes_per_datacenter,
            metro_rtt=self.metro_rtt,
            metro_bandwidth=self.metro_bandwidth,
            wan_bandwidth=self.wan_bandwidth,
            wan_loss=self.wan_loss,
            wan_jitter_fraction=self.wan_jitter_fraction,
            nic_bandwidth=self.nic_bandwidth,
            cores=self.cores,
        )


TopologySpec = Annotated[DatacenterTopology | WanTopology | HybridTopology, Field(discriminator="kind")]
TOPOLOGY_KINDS = ("datacenter", "wan", "hybrid")


# --- workload ------------------------------------------------------------------------------------


class HeartbeatSpec(Spec):
    """:class:`novacron.monitoring.HeartbeatService` on every node, to every peer."""

    interval: Duration = 0.5
    suspect_after: int = Field(3, ge=1)


class BulkTransfers(Spec):
    """Bulk transfers of one kind: on average one every ``every`` seconds, cluster-wide.

    Each transfer goes from a random node to a random peer at ``link_class`` distance (``any``:
    any peer), with a size drawn uniformly from ``size`` (one size, or ``[min, max]``), a stream
    count and a congestion control drawn from the lists given. Arrivals are Poisson: every source
    node draws its own exponential gaps (from its runtime's seeded generator), which adds up to
    the cluster-wide rate without any coordination between nodes.
    """

    name: Name
    link_class: LinkClass | Literal["any"] = "any"
    every: Duration = 1.0
    size: Annotated[tuple[Size, ...], BeforeValidator(_as_tuple), Field(min_length=1, max_length=2)] = (
        256 * 1024**2,
    )
    streams: Annotated[
        tuple[Annotated[int, Field(ge=1, le=256)], ...], BeforeValidator(_as_tuple), Field(min_length=1)
    ] = (1,)
    congestion: Annotated[tuple[Congestion, ...], BeforeValidator(_as_tuple), Field(min_length=1)] = (
        "cubic",
    )
    start: Time = 0.0

    @field_validator("size")
    @classmethod
    def _size_range(cls, size: tuple[int, ...]) -> tuple[int, ...]:
        if len(size) == 2 and size[0] > size[1]:
            raise ValueError("a size range must be [min, max] with min <= max")
        if size[0] == 0 and (len(size) == 1 or size[1] == 0):
            raise ValueError("transfers of 0 bytes measure nothing: give a size > 0")
        return size

    @property
    def size_range(self) -> tuple[int, int]:
        return (self.size[0], self.size[-1])


class ContentSpec(Spec):
    """What transferred data is made of (shares of zero, text-like and random pages; they sum to 1)."""

    zero: float = Field(0.0, ge=0.0, le=1.0)
    text: float = Field(0.0, ge=0.0, le=1.0)
    random: float = Field(1.0, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _shares_sum_to_one(self) -> ContentSpec:
        if abs(self.zero + self.text + self.random - 1.0) > 1e-6:
            raise ValueError("zero + text + random must add up to 1")
        return self


class DataTransfers(Spec):
    """DWCP data-plane transfers of one kind (:class:`novacron.transport.DataPlane`).

    Like :class:`BulkTransfers`, but the data plane chooses streams, congestion control and codec
    itself from the detected mode and the ``content`` of the data.
    """

    name: Name
    link_class: LinkClass | Literal["any"] = "any"
    every: Duration = 2.0
    size: Annotated[tuple[Size, ...], BeforeValidator(_as_tuple), Field(min_length=1, max_length=2)] = (
        256 * 1024**2,
    )
    content: ContentSpec = Field(default_factory=ContentSpec)
    start: Time = 0.0

    _size_range = field_validator("size")(BulkTransfers._size_range.__func__)

    @property
    def size_range(self) -> tuple[int, int]:
        return (self.size[0], self.size[-1])


class DWCPSpec(Spec):
    """The DWCP v3 data plane on every node: mode detection, HDE, AMST (``novacron.transport``)."""

    detection_interval: Duration = 5.0
    hysteresis: int = Field(3, ge=1)
    congestion: Literal["cubic", "bbr", "adaptive"] = "adaptive"
    compression: Literal["zstd", "lz4", "none"] = "zstd"
    min_streams: int = Field(4, ge=1)
    max_streams: int = Field(256, ge=1)
    transfers: list[DataTransfers] = Field(default_factory=list)

    @model_validator(mode="after")
    def _stream_bounds(self) -> DWCPSpec:
        if self.max_streams < self.min_streams:
            raise ValueError("max_streams must be >= min_streams")
        return self


class ConsensusSpec(Spec):
    """A replicated key-value store (ACP: Raft or PBFT) on ``members``, driven by one client
    per ``clients`` node; the report checks the clients' history for linearizability."""

    protocol: Literal["raft", "pbft", "auto"] = "raft"
    members: list[str] = Field(min_length=1)
    clients: list[str] = Field(min_length=1)
    #: timing defaults (heartbeat, election/view-change timeout); default: from how far apart
    #: the members are (one site: datacenter; one region: hybrid; several regions: internet)
    mode: Literal["datacenter", "hybrid", "internet"] | None = None
    keys: int = Field(5, ge=1)
    think: Duration = 0.1
    op_timeout: Duration = 3.0


class SyncSpec(Spec):
    """ASS (``novacron.sync``): a map replicated on ``replicas``, each of which writes random keys
    (on average one write cluster-wide every ``every``; a share ``read_first`` of them replaces what
    the writer read, the rest are blind) until ``stop`` (default: three quarters of the run, so
    that the end shows the replicas converge). The report gives how long each write took to reach
    every replica, around the faults."""

    replicas: list[str] = Field(min_length=1)
    #: push fan-out and anti-entropy period; default from how far apart the replicas are
    mode: Literal["datacenter", "hybrid", "internet"] | None = None
    every: Duration = 0.2
    keys: int = Field(20, ge=1)
    read_first: float = Field(0.5, ge=0.0, le=1.0)
    value_size: Size = Field(256, le=1 << 20)
    stop: Time | None = None


class MigrationSpec(Spec):
    """One live migration (``novacron.migration``) of a simulated VM from ``source`` to
    ``destination`` starting at ``at``; the report gives its total time, downtime and rounds."""

    name: Name
    source: str
    destination: str
    at: Time = 0.0
    memory: Size = 1024**3
    content: ContentSpec = Field(default_factory=lambda: ContentSpec(zero=0.3, text=0.3, random=0.4))
    dirty_rate: float = Field(2500.0, ge=0.0)  # page writes per second of guest time
    working_set: Size = 256 * 1024**2
    settings: Literal["dwcp", "qemu"] = "dwcp"
    engine: Literal["precopy", "postcopy"] = "precopy"

    @model_validator(mode="after")
    def _two_nodes(self) -> MigrationSpec:
        if self.source == self.destination:
            raise ValueError("a migration needs two different nodes (source == destination)")
        if self.working_set > self.memory:
            raise ValueError("working_set cannot exceed memory")
        return self


# --- faults --------------------------------------------------------------------------------------


class FaultBase(Spec):
    """A fault applied at simulated time ``at``."""

    at: Time

    def schedule(self, sim: Simulation, nodes: NodeResolver, path: str) -> FaultHandle | None:
        """Register the fault with ``sim.faults``; ``None`` if a selector did not resolve.

        Selector problems are collected by ``nodes`` (with ``path`` naming the field), so that
        every problem in a scenario is reported at once.
        """
        raise NotImplementedError


class PartitionFault(FaultBase):
    """Cut ``side_a`` from ``side_b`` (default: every other node); ``one_way`` cuts a -> b only."""

    kind: Literal["partition"] = "partition"
    side_a: Selection
    side_b: Selection | None = None
    one_way: bool = False
    duration: Duration | None = None

    def schedule(self, sim: Simulation, nodes: NodeResolver, path: str) -> FaultHandle | None:
        a = nodes.select(f"{path}.side_a", self.side_a)
        b = nodes.select(f"{path}.side_b", self.side_b) if self.side_b is not None else None
        if not a or (self.side_b is not None and not b):
            return None
        if b is not None and set(a) & set(b):
            nodes.problem(f"{path}.side_b", f"overlaps side_a on {sorted(set(a) & set(b))}")
            return None
        if b is None and len(a) == len(sim.node_ids):
            nodes.problem(f"{path}.side_a", "selects every node: nothing is left on the other side")
            return None
        return sim.faults.partition(a, b, one_way=self.one_way, at=self.at, duration=self.duration)


class CrashFault(FaultBase):
    """Crash ``node``; with ``restart_after`` it restarts (its apps run again) that much later."""

    kind: Literal["crash"] = "crash"
    node: str
    restart_after: Duration | None = None

    def schedule(self, sim: Simulation, nodes: NodeResolver, path: str) -> FaultHandle | None:
        node = nodes.one(f"{path}.node", self.node)
        return None if node is None else sim.faults.crash(node, at=self.at, restart_after=self.restart_after)


class BurstFault(FaultBase):
    """Extra message loss, duplication and/or reordering from ``src`` to ``dst`` (default: all)."""

    kind: Literal["burst"] = "burst"
    duration: Duration | None = None
    loss: Probability = 0.0
    duplicate: Probability = 0.0
    reorder: Probability = 0.0
    reorder_delay: Duration = 0.01
    src: Selection | None = None
    dst: Selection | None = None

    @model_validator(mode="after")
    def _does_something(self) -> BurstFault:
        if not (self.loss or self.duplicate or self.reorder):
            raise ValueError("a burst needs loss, duplicate or reorder > 0")
        return self

    def schedule(self, sim: Simulation, nodes: NodeResolver, path: str) -> FaultHandle | None:
        src = nodes.select(f"{path}.src", self.src) if self.src is not None else None
        dst = nodes.select(f"{path}.dst", self.dst) if self.dst is not None else None
        if src == [] or dst == []:
            return None
        return sim.faults.burst(
            loss=self.loss,
            duplicate=self.duplicate,
            reorder=self.reorder,
            reorder_delay=self.reorder_delay,
            src=src,
            dst=dst,
            at=self.at,
            duration=self.duration,
        )


class DegradeFault(FaultBase):
    """Slow down, lengthen or make lossy the link between two sites (both ways by default)."""

    kind: Literal["degrade"] = "degrade"
    sites: tuple[str, str]
    both_ways: bool = True
    duration: Duration | None = None
    bandwidth_factor: float = Field(1.0, gt=0.0)
    extra_latency: Time = 0.0
    extra_loss: float = Field(0.0, ge=0.0, lt=1.0)

    def schedule(self, sim: Simulation, nodes: NodeResolver, path: str) -> FaultHandle | None:
        links = nodes.site_links(f"{path}.sites", self.sites, both_ways=self.both_ways)
        if links is None:
            return None
        return sim.faults.degrade(
            links,
            bandwidth_factor=self.bandwidth_factor,
            extra_latency=self.extra_latency,
            extra_loss=self.extra_loss,
            at=self.at,
            duration=self.duration,
        )


class SkewFault(FaultBase):
    """Jump ``node``'s clock forward and/or change its drift (``1e-4`` = 100 ppm fast)."""

    kind: Literal["skew"] = "skew"
    node: str
    jump: Time = 0.0
    drift: float | None = Field(None, gt=-1.0)

    def schedule(self, sim: Simulation, nodes: NodeResolver, path: str) -> FaultHandle | None:
        node = nodes.one(f"{path}.node", self.node)
        return None if node is None else sim.faults.skew(node, jump=self.jump, drift=self.drift, at=self.at)


class SlowDiskFault(FaultBase):
    """Make ``node``'s fsync take ``fsync_latency`` (storage-heavy protocols slow down)."""

    kind: Literal["slow_disk"] = "slow_disk"
    node: str
    fsync_latency: Duration
    duration: Duration | None = None

    def schedule(self, sim: Simulation, nodes: NodeResolver, path: str) -> FaultHandle | None:
        node = nodes.one(f"{path}.node", self.node)
        if node is None:
            return None
        return sim.faults.slow_disk(node, self.fsync_latency, at=self.at, duration=self.duration)


FaultSpec = Annotated[
    PartitionFault | CrashFault | BurstFault | DegradeFault | SkewFault | SlowDiskFault,
    Field(discriminator="kind"),
]
FAULT_KINDS = ("partition", "crash", "burst", "degrade", "skew", "slow_disk")


# --- the scenario --------------------------------------------------------------------------------


class Scenario(Spec):
    """Everything one simulation run needs; ``seed`` and ``duration`` are the usual overrides."""

    name: Name
    description: str = ""
    seed: int = Field(0, ge=0)
    duration: Duration = 30.0
    topology: TopologySpec = Field(default_factory=HybridTopology)
    heartbeat: HeartbeatSpec | None = Field(default_factory=HeartbeatSpec)
    workload: list[BulkTransfers] = Field(default_factory=list)
    dwcp: DWCPSpec | None = None
    consensus: ConsensusSpec | None = None
    sync: SyncSpec | None = None
    migration: list[MigrationSpec] = Field(default_factory=list)
    faults: list[FaultSpec] = Field(default_factory=list)
    stream_timeout: Duration = 60.0

    @field_validator("workload")
    @classmethod
    def _unique_workload_names(cls, workload: list[BulkTransfers]) -> list[BulkTransfers]:
        names = [w.name for w in workload]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"workload names must be unique (used twice: {', '.join(twice)})")
        return workload

    def with_overrides(self, *, seed: int | None = None, duration: float | None = None) -> Scenario:
        """A copy with another seed and/or duration, validated like the original."""
        data = self.model_dump()
        if seed is not None:
            data["seed"] = seed
        if duration is not None:
            data["duration"] = duration
        return type(self).model_validate(data)


#: The ``kind`` values of the tagged unions, by field (for error messages, see :mod:`.errors`).
UNION_TAGS = {"topology": TOPOLOGY_KINDS, "faults": FAULT_KINDS}
