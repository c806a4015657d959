"""A bulk-transfer load generator, written against the runtime contract only.

Scenarios use it to put realistic background load on the network (VM images, snapshots) while
protocols run. It is protocol-style code: it touches nothing but :class:`novacron.runtime.Runtime`
(``transfer``, ``on_transfer``, ``call_later``, ``random``, ``peer_info``), so it would run
unchanged on the real backend, and it must import neither simpy nor asyncio (a test checks).

Arrivals are Poisson per source node: each node waits an exponential gap (mean
``TransferPlan.mean_gap``) drawn from its own seeded generator, then sends to a random peer at the
plan's distance. Peers are classified from their identity labels (site, region), the same way
topology-aware protocols do, rather than by asking the simulator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from novacron.runtime import (
    Cancellable,
    NodeInfo,
    Payload,
    Runtime,
    TransferError,
    VirtualPayload,
    payload_size,
)

#: ``any`` plus the classes :meth:`Topology.link_class` reports
SCOPES = ("intra-site", "intra-region", "inter-region", "any")


@dataclass(frozen=True)
class TransferPlan:
    """One kind of transfer a node originates: to whom, how big, how often, how."""

    tag: str
    scope: str
    mean_gap: float
    min_bytes: int
    max_bytes: int
    streams: tuple[int, ...] = (1,)
    congestion: tuple[str, ...] = ("cubic",)
    start: float = 0.0

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}, got {self.scope!r}")
        if self.mean_gap <= 0:
            raise ValueError(f"mean_gap must be > 0, got {self.mean_gap}")
        if not 0 <= self.min_bytes <= self.max_bytes:
            raise ValueError(f"need 0 <= min_bytes <= max_bytes, got {self.min_bytes}, {self.max_bytes}")
        if not self.streams or not self.congestion:
            raise ValueError("streams and congestion need at least one choice each")


class TransferObserver(Protocol):
    """Who wants to know about transfers (a scenario's report); both methods are always called."""

    def started(self, plan: TransferPlan, src: str, dst: str, nbytes: int, streams: int) -> None: ...

    def failed(self, plan: TransferPlan, src: str, dst: str, error: TransferError) -> None: ...


def distance(a: NodeInfo, b: NodeInfo) -> str:
    """``intra-site``, ``intra-region`` or ``inter-region`` from identity labels alone."""
    if a.site == b.site:
        return "intra-site"
    return "intra-region" if a.region == b.region else "inter-region"


def peers_in_scope(rt: Runtime, scope: str) -> list[str]:
    """Peers at ``scope`` distance, in the runtime's stable peer order."""
    if scope == "any":
        return list(rt.peers)
    return [p for p in rt.peers if distance(rt.info, rt.peer_info(p)) == scope]


class BulkTransferDriver:
    """Originates the transfers of ``plans`` from one node and accepts everyone else's.

    Completed transfers need no bookkeeping here: the runtime reports them (the simulator keeps a
    transfer log). Starts and failures go to ``observer`` when one is given.
    """

    def __init__(
        self,
        rt: Runtime,
        plans: Sequence[TransferPlan],
        *,
        observer: TransferObserver | None = None,
    ) -> None:
        self.rt = rt
        self.plans = tuple(plans)
        self.observer = observer
        self.received_bytes = 0
        self.received = 0
        self._timers: dict[str, Cancellable] = {}  # the next arrival of each plan
        for plan in self.plans:
            rt.on_transfer(plan.tag, self._on_received)
            targets = peers_in_scope(rt, plan.scope)
            if targets:  # a node with no peer at this distance originates nothing
                first = max(0.0, plan.start - rt.now()) + self._gap(plan)
                self._timers[plan.tag] = rt.call_later(first, self._fire, plan, targets)

    def stop(self) -> None:
        """Originate nothing more (transfers already started run to their end)."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    def _gap(self, plan: TransferPlan) -> float:
        return self.rt.random.expovariate(1.0 / plan.mean_gap)

    def _fire(self, plan: TransferPlan, targets: list[str]) -> None:
        rng = self.rt.random
        dst = rng.choice(targets)
        nbytes = rng.randint(plan.min_bytes, plan.max_bytes)
        streams = rng.choice(plan.streams)
        congestion = rng.choice(plan.congestion)
        self.rt.spawn(self._send(plan, dst, nbytes, streams, congestion))
        self._timers[plan.tag] = self.rt.call_later(self._gap(plan), self._fire, plan, targets)

    async def _send(self, plan: TransferPlan, dst: str, nbytes: int, streams: int, congestion: str) -> None:
        if self.observer is not None:
            self.observer.started(plan, self.rt.node_id, dst, nbytes, streams)
        try:
            await self.rt.transfer(
                dst, VirtualPayload(nbytes), streams=streams, congestion=congestion, tag=plan.tag
            )
        except TransferError as error:
            if self.observer is not None:
                self.observer.failed(plan, self.rt.node_id, dst, error)

    def _on_received(self, src: str, payload: Payload) -> None:
        self.received += 1
        self.received_bytes += payload_size(payload)
