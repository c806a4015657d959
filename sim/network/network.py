"""The simulated network: message delivery, bulk transfers and network faults.

Messages: one scheduled :class:`~novacron.sim.kernel.Call` per delivery.
The delay is the route's one-way latency, plus uniform jitter, plus the
message's serialisation time at the bottleneck; deliveries on one node pair
stay in FIFO order (as on a TCP connection) unless a reordering fault is
active. Small messages do not contend for bandwidth; bulk transfers do.

Transfers: a transfer over N streams is N flows in the :class:`FlowModel`,
each capped by its congestion control on the route's RTT and loss. It
costs one RTT of connection set-up before data moves, and completes one
one-way latency after its last byte left, when the receiver holds it all.
"""

from __future__ import annotations

import itertools
import logging
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from novacron.runtime import (
    Message,
    TransferError,
    TransferReport,
    encoded_size,
    payload_size,
)

from ..kernel import Call, SimFuture
from .congestion import ALGORITHMS, flow_cap
from .flows import Flow, FlowModel
from .routes import PairFault, Route, build_route
from .topology import Topology

log = logging.getLogger(__name__)

# Trace event kinds (short strings keep the trace readable and cheap).
DELIVER, DROP, XFER_DONE, XFER_FAIL = "deliver", "drop", "xfer", "xfer-fail"


@dataclass(eq=False)
class _Transfer:
    id: int
    src: str
    dst: str
    payload: Any
    nbytes: int
    streams: int
    congestion: str
    tag: str
    future: SimFuture
    started: float
    flows: list[Flow] = field(default_factory=list)
    pending: int = 0
    stalled: bool = False
    stall_timer: Call | None = None


class SimNetwork:
    def __init__(self, sim: Any, topology: Topology, rng: random.Random, stream_timeout: float) -> None:
        self.sim = sim
        self.env = sim.env
        self.topology = topology
        self.rng = rng
        self.stream_timeout = stream_timeout
        self.flows = FlowModel(self.env)
        self.faults: list[PairFault] = []
        self._routes: dict[tuple[str, str], Route] = {}
        self._fifo_carry: dict[tuple[str, str], float] = {}  # FIFO state across rebuilds
        self._transfers: dict[int, _Transfer] = {}
        self._ids = itertools.count(1)
        self.counters: Counter[str] = Counter()
        # Per link class: message one-way delays and transfer goodputs, for reports.
        self.latency_samples: dict[str, list[float]] = {}
        self.transfer_log: list[TransferReport] = []

    # -- routes -------------------------------------------------------------
    def route(self, src: str, dst: str) -> Route:
        route = self._routes.get((src, dst))
        if route is None:
            route = self._routes[(src, dst)] = build_route(self.topology, src, dst, self.faults)
            route.last_arrival = self._fifo_carry.get((src, dst), 0.0)
        return route

    def conditions_changed(self) -> None:
        """A fault or link changed: rebuild routes, re-cap and stall/unstall flows."""
        for key, route in self._routes.items():
            self._fifo_carry[key] = route.last_arrival
        self._routes = {}
        for xfer in list(self._transfers.values()):
            if not xfer.flows:
                continue
            route = self.route(xfer.src, xfer.dst)
            cap = flow_cap(xfer.congestion, route.rtt, route.loss)
            for f in xfer.flows:
                f.cap = cap
                f.stalled = route.blocked
            if route.blocked and not xfer.stalled:
                xfer.stalled = True
                xfer.stall_timer = Call(self.env, self.stream_timeout, self._stall_timeout, (xfer,))
            elif not route.blocked and xfer.stalled:
                xfer.stalled = False
                if xfer.stall_timer is not None:
                    xfer.stall_timer.cancel()
        self.flows.changed()

    def add_fault(self, fault: PairFault) -> None:
        self.faults.append(fault)
        self.conditions_changed()

    def remove_fault(self, fault: PairFault) -> None:
        if fault in self.faults:
            self.faults.remove(fault)
            self.conditions_changed()

    # -- messages -----------------------------------------------------------
    def send(self, src: str, dst: str, message: Message) -> None:
        if dst not in self.topology.nodes:
            self.counters["unknown_destination"] += 1
            log.warning("%s sent %s to unknown node %r; dropped", src, type(message).__name__, dst)
            return
        route = self._routes.get((src, dst)) or self.route(src, dst)
        now = self.env.now
        rng = self.rng
        if route.blocked or (route.loss and rng.random() < route.loss):
            self.counters["dropped"] += 1
            self.sim.tracer.record((now, DROP, src, dst, message.__class__.__name__))
            return
        arrival = now + route.latency + encoded_size(message) * 8 / route.bottleneck_bps
        if route.jitter:
            arrival += rng.random() * route.jitter
        if route.reorder and rng.random() < route.reorder:
            arrival += rng.random() * route.reorder_delay  # may overtake earlier messages
        else:
            if arrival < route.last_arrival:
                arrival = route.last_arrival
            route.last_arrival = arrival
        Call(self.env, arrival - now, self._deliver, (src, dst, message, now, route.link_class))
        if route.duplicate and rng.random() < route.duplicate:
            self.counters["duplicated"] += 1
            extra = rng.random() * max(route.latency, 1e-4)
            Call(self.env, arrival - now + extra, self._deliver, (src, dst, message, now, route.link_class))

    def _deliver(self, src: str, dst: str, message: Message, sent_at: float, link_class: str) -> None:
        now = self.env.now
        runtime = self.sim._runtimes[dst]
        if not runtime.alive:
            self.counters["dropped_dead"] += 1
            self.sim.tracer.record((now, DROP, src, dst, message.__class__.__name__))
            return
        self.counters["delivered"] += 1
        self.sim.tracer.record((now, DELIVER, src, dst, message.__class__.__name__))
        samples = self.latency_samples.get(link_class)
        if samples is None:
            samples = self.latency_samples[link_class] = []
        if len(samples) < 100_000:
            samples.append(now - sent_at)
        runtime._dispatch(src, message)

    # -- transfers ----------------------------------------------------------
    def transfer(
        self, src: str, dst: str, payload: Any, streams: int, congestion: str, tag: str
    ) -> SimFuture:
        future = SimFuture(self.env)
        if congestion not in ALGORITHMS:
            raise ValueError(
                f"unknown congestion control {congestion!r}; choose one of {', '.join(ALGORITHMS)}"
            )
        if not isinstance(streams, int) or streams < 1:
            raise ValueError(f"streams must be an integer >= 1, got {streams!r}")
        if dst not in self.topology.nodes:
            future.set_exception(TransferError(f"unknown destination node {dst!r}"))
            return future
        xfer = _Transfer(
            id=next(self._ids),
            src=src,
            dst=dst,
            payload=payload,
            nbytes=payload_size(payload),
            streams=streams,
            congestion=congestion,
            tag=tag,
            future=future,
            started=self.sim._runtimes[src].now(),
        )
        self._transfers[xfer.id] = xfer
        route = self.route(src, dst)
        if route.blocked:  # SYNs go nowhere: the connect times out
            xfer.stalled = True
            xfer.stall_timer = Call(self.env, self.stream_timeout, self._stall_timeout, (xfer,))
        else:
            Call(self.env, route.rtt, self._open_streams, (xfer,))  # TCP handshake
        return future

    def _open_streams(self, xfer: _Transfer) -> None:
        if xfer.id not in self._transfers:
            return
        if not self.sim._runtimes[xfer.dst].alive:
            self._fail(xfer, f"connection refused: {xfer.dst} is down")
            return
        route = self.route(xfer.src, xfer.dst)
        cap = flow_cap(xfer.congestion, route.rtt, route.loss)
        links = self.topology.links_between(xfer.src, xfer.dst)
        base, extra = divmod(xfer.nbytes, xfer.streams)
        xfer.pending = xfer.streams
        for i in range(xfer.streams):
            flow = Flow(links, float(base + (1 if i < extra else 0)), cap, self._flow_done, meta=xfer)
            xfer.flows.append(flow)
        for flow in xfer.flows:
            self.flows.start(flow)

    def _flow_done(self, flow: Flow) -> None:
        xfer: _Transfer = flow.meta
        xfer.pending -= 1
        if xfer.pending == 0 and xfer.id in self._transfers:
            latency = self.route(xfer.src, xfer.dst).latency
            Call(self.env, latency, self._arrived, (xfer,))

    def _arrived(self, xfer: _Transfer) -> None:
        if xfer.id not in self._transfers:
            return
        receiver = self.sim._runtimes[xfer.dst]
        if not receiver.alive:
            self._fail(xfer, f"{xfer.dst} crashed during the transfer")
            return
        receiver._receive_transfer(xfer.src, xfer.tag, xfer.payload)
        # The acknowledgement travels back before the sender knows.
        Call(self.env, self.route(xfer.dst, xfer.src).latency, self._acknowledged, (xfer,))

    def _acknowledged(self, xfer: _Transfer) -> None:
        if self._transfers.pop(xfer.id, None) is None:
            return
        sender = self.sim._runtimes[xfer.src]
        report = TransferReport(
            src=xfer.src,
            dst=xfer.dst,
            tag=xfer.tag,
            nbytes=xfer.nbytes,
            streams=xfer.streams,
            congestion=xfer.congestion,
            started=xfer.started,
            finished=sender.now(),
        )
        self.transfer_log.append(report)
        self.sim.tracer.record((self.env.now, XFER_DONE, xfer.src, xfer.dst, xfer.nbytes, xfer.streams))
        if not xfer.future.done():
            xfer.future.set_result(report)

    def _stall_timeout(self, xfer: _Transfer) -> None:
        if xfer.stalled and xfer.id in self._transfers:
            self._fail(xfer, f"no progress for {self.stream_timeout:g}s: {xfer.dst} unreachable")

    def _fail(self, xfer: _Transfer, reason: str) -> None:
        self._transfers.pop(xfer.id, None)
        if xfer.flows:
            self.flows.remove(xfer.flows)
        if xfer.stall_timer is not None:
            xfer.stall_timer.cancel()
        self.counters["transfers_failed"] += 1
        self.sim.tracer.record((self.env.now, XFER_FAIL, xfer.src, xfer.dst, reason))
        if not xfer.future.done():
            xfer.future.set_exception(TransferError(f"transfer {xfer.src}->{xfer.dst}: {reason}"))

    def node_crashed(self, node_id: str) -> None:
        for xfer in list(self._transfers.values()):
            if node_id in (xfer.src, xfer.dst):
                self._fail(xfer, f"{node_id} crashed")
