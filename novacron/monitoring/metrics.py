"""Prometheus metrics of one node, read from its components when Prometheus scrapes.

:class:`NodeCollector` is a ``prometheus_client`` custom collector holding references to what
the node runs: the runtime, its network counters, the heartbeat service, the consensus member,
the state-sync replica and the mode detector, whichever exist. It reads them in
:meth:`~NodeCollector.collect`, so a number never lags behind the component it describes and
nothing runs between scrapes; an absent component simply has no series. It must be called on
the thread that runs the node (the real backend serves ``/metrics`` on its event loop), so it
reads components as their own code does, without locks or copies.

Names follow the Prometheus conventions: a ``novacron_`` prefix, base units (seconds), ``_total``
for counters. Series carry no ``node`` label: Prometheus adds the target's ``instance`` label to
every series it scrapes, and ``novacron_node_info{node,region,zone,version}`` carries the node
id for queries that want it (``... * on(instance) group_left(node) novacron_node_info``); the
Prometheus guidance for exporters is not to repeat one label on every series. The metric names
are listed for operators in the README.

:meth:`NodeCollector.summary` is the short form of the same reading that ``/healthz`` answers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from novacron.consensus.adaptive.host import AdaptiveConsensus
from novacron.consensus.pbft import PBFTReplica
from novacron.consensus.raft import RaftNode
from novacron.runtime import Runtime

from .counters import counters
from .heartbeat import HeartbeatService

if TYPE_CHECKING:
    from novacron.hosting import VMHost
    from novacron.mode import ModeDetector
    from novacron.sync import StateSync

CONSENSUS_MEMBERS = (RaftNode, PBFTReplica, AdaptiveConsensus)


@dataclass(frozen=True)
class ConsensusStatus:
    """What an operator asks of a consensus member, for Raft and PBFT alike.

    ``term`` is the Raft term or the PBFT view; ``leader`` the Raft leader or the PBFT primary
    this member follows ("" while it knows none); ``applied_index`` the last log entry (Raft) or
    sequence number (PBFT) applied to the state machine. The other fields exist in one protocol
    only, and are ``None`` in the other: PBFT commits slot by slot, with no single commit index.
    """

    protocol: str
    role: str  # raft: follower, precandidate, candidate, leader; pbft: primary, backup, view_change
    leader: str
    term: int
    applied_index: int
    commit_index: int | None = None
    stable_checkpoint: int | None = None
    rejected: Mapping[str, int] = field(default_factory=dict)  # PBFT: messages refused, by reason

    @property
    def is_leader(self) -> bool:
        return self.role in ("leader", "primary")


def consensus_status(member: Any) -> ConsensusStatus | None:
    """``member``'s status (one of :data:`CONSENSUS_MEMBERS`), ``None`` for no member, or for an
    adaptive host between two epochs."""
    if member is None:
        return None
    if isinstance(member, AdaptiveConsensus):
        return consensus_status(member.instance)
    if isinstance(member, RaftNode):
        return ConsensusStatus(
            "raft",
            member.role,
            member.leader_id or "",
            member.term,
            member.applied_index,
            commit_index=member.commit_index,
        )
    if isinstance(member, PBFTReplica):
        if member.in_view_change:
            role, primary = "view_change", ""
        else:
            primary = member.primary
            role = "primary" if primary == member.node_id else "backup"
        return ConsensusStatus(
            "pbft",
            role,
            primary,
            member.view,
            member.last_executed,
            stable_checkpoint=member.stable_checkpoint,
            rejected=member.rejected,
        )
    raise TypeError(f"not a consensus member: {type(member).__name__}")


def answering_peers(heartbeat: HeartbeatService) -> list[str]:
    """Peers that have answered heartbeats and are not suspected now."""
    suspected = set(heartbeat.suspected())
    return sorted(p for p, stats in heartbeat.peers.items() if stats.acks and p not in suspected)


class NodeCollector(Collector):
    """The node's metrics, read from its components at each scrape (see the module doc).

    ``network`` is the runtime's counters (``AsyncioRuntime.stats``, a dataclass declared with
    :mod:`.counters`); ``consensus`` what :func:`novacron.consensus.adaptive.start_member`
    returned. Uptime counts from ``started_at`` on the runtime's clock (default: now).
    """

    def __init__(
        self,
        rt: Runtime,
        *,
        version: str = "",
        network: Any = None,
        heartbeat: HeartbeatService | None = None,
        consensus: Any = None,
        state_sync: StateSync | None = None,
        detector: ModeDetector | None = None,
        hosting: VMHost | None = None,
        started_at: float | None = None,
    ) -> None:
        if consensus is not None and not isinstance(consensus, CONSENSUS_MEMBERS):
            raise TypeError(f"not a consensus member: {type(consensus).__name__}")
        self.rt = rt
        self.version = version
        self.network = network
        self.heartbeat = heartbeat
        self.consensus = consensus
        self.state_sync = state_sync
        self.detector = detector
        self.hosting = hosting
        self.started_at = rt.now() if started_at is None else started_at

    def uptime(self) -> float:
        return max(0.0, self.rt.now() - self.started_at)

    def summary(self) -> dict[str, Any]:
        """The node at a glance (``/healthz``): id, uptime, the peers answering heartbeats (when
        it runs them) and its consensus role (when it is a member)."""
        out: dict[str, Any] = {"node": self.rt.node_id, "uptime_seconds": round(self.uptime(), 3)}
        if self.heartbeat is not None:
            out["peers_answering"] = answering_peers(self.heartbeat)
        status = consensus_status(self.consensus)
        if status is not None:
            out["consensus"] = {
                "protocol": status.protocol,
                "role": status.role,
                "leader": status.leader,
                "term": status.term,
            }
        return out

    def collect(self) -> Iterator[Metric]:
        yield from self._node()
        if self.network is not None:
            yield from counter_families("novacron_network", self.network)
        if self.heartbeat is not None:
            yield from _heartbeat_families(self.heartbeat)
        status = consensus_status(self.consensus)
        if status is not None:
            yield from _consensus_families(status)
        if self.state_sync is not None:
            yield from _sync_families(self.state_sync)
        if self.detector is not None:
            yield from _mode_families(self.detector)
        if self.hosting is not None:
            yield from _hosting_families(self.hosting)

    def _node(self) -> Iterator[Metric]:
        info = self.rt.info
        yield labelled(
            GaugeMetricFamily,
            "novacron_node_info",
            "this node's identity (always 1): join on it to name a series' node",
            ("node", "region", "zone", "version"),
            [((info.node_id, info.region, info.zone, self.version), 1)],
        )
        yield gauge("novacron_uptime_seconds", "seconds since the node started", self.uptime())


def _heartbeat_families(heartbeat: HeartbeatService) -> Iterator[Metric]:
    peers = sorted(heartbeat.peers.items())
    suspected = set(heartbeat.suspected())
    yield labelled(
        GaugeMetricFamily,
        "novacron_heartbeat_rtt_seconds",
        "round-trip time of the latest heartbeat a peer answered",
        ("peer",),
        [((p,), s.last_rtt) for p, s in peers if s.last_rtt is not None],
    )
    yield labelled(
        GaugeMetricFamily,
        "novacron_heartbeat_suspected",
        f"1 if a peer has not answered heartbeats for {heartbeat.suspect_after} intervals, else 0",
        ("peer",),
        [((p,), int(p in suspected)) for p, _ in peers],
    )
    yield labelled(
        CounterMetricFamily,
        "novacron_heartbeat_acks",
        "heartbeat answers received from a peer",
        ("peer",),
        [((p,), s.acks) for p, s in peers],
    )


def _consensus_families(status: ConsensusStatus) -> Iterator[Metric]:
    yield labelled(
        GaugeMetricFamily,
        "novacron_consensus_info",
        "this member's protocol, its role, and the Raft leader or PBFT primary it follows "
        '("" while none is known); always 1',
        ("protocol", "role", "leader"),
        [((status.protocol, status.role, status.leader), 1)],
    )
    yield gauge(
        "novacron_consensus_is_leader",
        "1 if this member is the Raft leader or PBFT primary, else 0",
        int(status.is_leader),
    )
    yield gauge("novacron_consensus_term", "the current Raft term or PBFT view", status.term)
    yield gauge(
        "novacron_consensus_applied_index",
        "the last log entry (Raft) or sequence number (PBFT) applied to the state machine",
        status.applied_index,
    )
    if status.commit_index is not None:
        yield gauge(
            "novacron_consensus_commit_index",
            "the last log entry known committed (Raft)",
            status.commit_index,
        )
    if status.stable_checkpoint is not None:
        yield gauge(
            "novacron_consensus_stable_checkpoint",
            "the sequence number of the last stable checkpoint (PBFT)",
            status.stable_checkpoint,
        )
    if status.rejected:
        yield labelled(
            CounterMetricFamily,
            "novacron_consensus_rejected",
            "consensus messages refused, by reason (forged, tampered, malformed, ...)",
            ("reason",),
            [((reason,), n) for reason, n in sorted(status.rejected.items())],
        )


def _sync_families(state_sync: StateSync) -> Iterator[Metric]:
    yield gauge(
        "novacron_sync_keys",
        "keys in this state-sync replica (deleted ones' tombstones too)",
        len(state_sync.store),
    )
    yield from counter_families("novacron_sync", state_sync.stats)


def _mode_families(detector: ModeDetector) -> Iterator[Metric]:
    mode = detector.node_mode
    yield labelled(
        GaugeMetricFamily,
        "novacron_network_mode",
        "the node's network mode: forced, or the most conservative of its peers' (always 1; absent "
        "until decided)",
        ("mode",),
        [((str(mode),), 1)] if mode is not None else [],
    )
    yield labelled(
        GaugeMetricFamily,
        "novacron_network_peer_mode",
        "the network mode towards a peer (always 1)",
        ("peer", "mode"),
        [((peer, str(m)), 1) for peer, m in sorted(detector.modes.items())],
    )
    yield CounterMetricFamily(
        "novacron_mode_detection_rounds", "mode-detection rounds run", value=detector.rounds
    )


def _hosting_families(host: VMHost) -> Iterator[Metric]:
    states = Counter(hosted.state for hosted in host.vms.values())
    yield labelled(
        GaugeMetricFamily,
        "novacron_vms",
        "VMs on this host by state (running; migrating away; arriving; in-doubt or paused: left "
        "paused here by a migration whose switch-over went unanswered)",
        ("state",),
        [((state,), n) for state, n in sorted(states.items())],
    )
    yield gauge(
        "novacron_vm_memory_capacity_bytes",
        "guest memory this host may give its VMs",
        host.capacity_mib << 20,
    )
    yield gauge(
        "novacron_vm_memory_used_bytes",
        "guest memory taken by this host's VMs, arriving ones included",
        host.used_mib << 20,
    )
    yield from counter_families("novacron_vm", host.stats)


def counter_families(prefix: str, stats: Any) -> Iterator[Metric]:
    """One counter ``<prefix>_<field>_total`` per counter of ``stats`` (see :mod:`.counters`),
    with a label for the counts kept by reason."""
    for reading in counters(stats):
        name = f"{prefix}_{reading.name}"
        if isinstance(reading.value, Mapping):
            samples = [((key,), n) for key, n in sorted(reading.value.items())]
            yield labelled(CounterMetricFamily, name, reading.help, (reading.label,), samples)
        else:
            yield CounterMetricFamily(name, reading.help, value=reading.value)


def gauge(name: str, help: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help, value=value)


def labelled(
    kind: type[CounterMetricFamily] | type[GaugeMetricFamily],
    name: str,
    help: str,
    labels: tuple[str, ...],
    samples: Iterable[tuple[tuple[str, ...], float]],
) -> Metric:
    """A family of ``kind`` with one sample per ``(label values, value)``."""
    family = kind(name, help, labels=labels)
    for values, value in samples:
        family.add_metric(list(values), value)
    return family


def node_registry(*collectors: Collector) -> CollectorRegistry:
    """A registry for one node's collectors, with the process and platform collectors.

    Never prometheus_client's global ``REGISTRY``: one process may run several nodes (tests,
    :class:`~novacron.backends.LocalCluster`), and each must show only its own.
    """
    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(collector)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry
