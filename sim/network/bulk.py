"""Bulk data in the simulator: transfers and streams, as flows.

Two shapes of bulk traffic share one mechanism (:class:`FlowGroup`):

* a **transfer** (``rt.transfer``): N streams, each carrying an equal slice,
  complete when the receiver holds everything and its acknowledgement is back;
* a **stream** (``rt.open_stream``): one persistent connection on which a
  protocol (AMST) sends records one after another, each record a flow.

Both cost one RTT of connection set-up, are capped per flow by their
congestion control on the route's RTT and loss, stall while a partition
blocks their path (and fail after ``stream_timeout`` without progress), and
fail at once when either end crashes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from novacron.runtime import MAX_RECORD_BYTES, Message, TransferError, TransferReport, payload_size

from ..kernel import Call, SimFuture
from .congestion import ALGORITHMS, flow_cap
from .flows import Flow

if TYPE_CHECKING:
    from .network import SimNetwork

XFER_DONE, XFER_FAIL, STREAM_FAIL = "xfer", "xfer-fail", "stream-fail"


def check_congestion(congestion: str) -> None:
    if congestion not in ALGORITHMS:
        raise ValueError(f"unknown congestion control {congestion!r}; choose one of {', '.join(ALGORITHMS)}")


@dataclass(eq=False)
class FlowGroup:
    """Flows between one pair of nodes that stall, re-cap and fail together."""

    id: int
    src: str
    dst: str
    congestion: str
    flows: list[Flow] = field(default_factory=list)
    stalled: bool = False
    stall_timer: Call | None = None
    done: bool = False
    connect_then: Any = None  # set while the handshake waits for a partition to heal


@dataclass(eq=False)
class _Transfer(FlowGroup):
    payload: Any = None
    nbytes: int = 0
    streams: int = 1
    tag: str = ""
    future: SimFuture | None = None
    started: float = 0.0
    pending: int = 0


class SimStream(FlowGroup):
    """``rt.open_stream()`` in the simulator (implements ``novacron.runtime.Stream``).

    Each :meth:`send` is one flow; it completes when the record's last byte
    has left the sender (so the next record can follow), and the receiver's
    handler runs one one-way latency later. One send at a time.
    """

    def __init__(self, plane: BulkPlane, id: int, src: str, dst: str, congestion: str) -> None:
        super().__init__(id=id, src=src, dst=dst, congestion=congestion)
        self._plane = plane
        self.failure: str | None = None
        self._closed = False
        self._sending: SimFuture | None = None
        self.opening: SimFuture | None = None  # resolves with the stream once connected
        self.bytes_sent = 0

    @property
    def peer(self) -> str:
        return self.dst

    @property
    def closed(self) -> bool:
        return self._closed or self.failure is not None

    async def send(self, header: Message, data: Any = b"", *, volatile: Any = False) -> None:
        # (``volatile`` needs nothing here: the record is delivered by reference, so it arrives
        # as the data stands at its arrival, one of the versions the contract allows)
        if self.failure is not None:
            raise TransferError(f"stream {self.src}->{self.dst} #{self.id} failed: {self.failure}")
        if self._closed:
            raise TransferError(f"stream {self.src}->{self.dst} #{self.id} is closed")
        if payload_size(data) > MAX_RECORD_BYTES:
            raise ValueError(
                f"a stream record carries at most {MAX_RECORD_BYTES} bytes, got {payload_size(data)}"
            )
        if self._sending is not None:
            raise RuntimeError("one send at a time per stream: await the previous send first")
        self._sending = self._plane.stream_send(self, header, data)
        try:
            await self._sending
        finally:
            self._sending = None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._plane.forget(self)

    def __repr__(self) -> str:
        state = "failed" if self.failure else "closed" if self.closed else "open"
        return f"<SimStream #{self.id} {self.src}->{self.dst} {self.congestion} {state}>"


class BulkPlane:
    """Every transfer and stream of one simulated network."""

    def __init__(self, network: SimNetwork) -> None:
        self.net = network
        self.env = network.env
        self.groups: dict[int, FlowGroup] = {}
        self._ids = itertools.count(1)

    # -- shared mechanics ---------------------------------------------------
    def _runtime(self, node: str):
        return self.net.sim._runtimes[node]

    def _cap(self, group: FlowGroup) -> float:
        route = self.net.route(group.src, group.dst)
        return flow_cap(group.congestion, route.rtt, route.loss)

    def conditions_changed(self) -> None:
        """Re-cap every flow and stall or resume groups whose path a partition cut or healed."""
        for group in list(self.groups.values()):
            route = self.net.route(group.src, group.dst)
            cap = flow_cap(group.congestion, route.rtt, route.loss)
            for f in group.flows:
                f.cap = cap
                f.stalled = route.blocked
            if route.blocked and not group.stalled:
                self._stall(group)
            elif not route.blocked and group.stalled:
                group.stalled = False
                if group.stall_timer is not None:
                    group.stall_timer.cancel()
                if group.connect_then is not None:  # the SYNs get through now
                    then, group.connect_then = group.connect_then, None
                    Call(self.env, route.rtt, self._connected, (group, then))

    def _stall(self, group: FlowGroup) -> None:
        group.stalled = True
        group.stall_timer = Call(self.env, self.net.stream_timeout, self._stall_timeout, (group,))

    def _stall_timeout(self, group: FlowGroup) -> None:
        if group.stalled and not group.done:
            self.fail(group, f"no progress for {self.net.stream_timeout:g}s: {group.dst} unreachable")

    def _connect(self, group: FlowGroup, then) -> None:
        """The TCP handshake: one RTT, or a stall if a partition eats the SYNs."""
        self.groups[group.id] = group
        route = self.net.route(group.src, group.dst)
        if route.blocked:
            group.connect_then = then
            self._stall(group)
        else:
            Call(self.env, route.rtt, self._connected, (group, then))

    def _connected(self, group: FlowGroup, then) -> None:
        if group.done:
            return
        if not self._runtime(group.dst).alive:
            self.fail(group, f"connection refused: {group.dst} is down")
            return
        then(group)

    def fail(self, group: FlowGroup, reason: str) -> None:
        if group.done:
            return
        group.done = True
        self.groups.pop(group.id, None)
        if group.flows:
            self.net.flows.remove(group.flows)
            group.flows = []
        if group.stall_timer is not None:
            group.stall_timer.cancel()
        if isinstance(group, _Transfer):
            self._transfer_failed(group, reason)
        else:
            self._stream_failed(group, reason)

    def forget(self, group: FlowGroup) -> None:
        group.done = True
        self.groups.pop(group.id, None)
        if group.flows:
            self.net.flows.remove(group.flows)
            group.flows = []

    def node_crashed(self, node_id: str) -> None:
        for group in list(self.groups.values()):
            if node_id in (group.src, group.dst):
                self.fail(group, f"{node_id} crashed")

    # -- transfers ----------------------------------------------------------
    def transfer(
        self, src: str, dst: str, payload: Any, streams: int, congestion: str, tag: str
    ) -> SimFuture:
        check_congestion(congestion)
        if not isinstance(streams, int) or streams < 1:
            raise ValueError(f"streams must be an integer >= 1, got {streams!r}")
        future = SimFuture(self.env)
        if dst not in self.net.topology.nodes:
            future.set_exception(TransferError(f"unknown destination node {dst!r}"))
            return future
        xfer = _Transfer(
            id=next(self._ids),
            src=src,
            dst=dst,
            congestion=congestion,
            payload=payload,
            nbytes=payload_size(payload),
            streams=streams,
            tag=tag,
            future=future,
            started=self._runtime(src).now(),
        )
        self._connect(xfer, self._start_slices)
        return future

    def _start_slices(self, xfer: _Transfer) -> None:
        cap = self._cap(xfer)
        links = self.net.topology.links_between(xfer.src, xfer.dst)
        base, extra = divmod(xfer.nbytes, xfer.streams)
        xfer.pending = xfer.streams
        xfer.flows = [
            Flow(links, float(base + (1 if i < extra else 0)), cap, self._slice_done, meta=xfer)
            for i in range(xfer.streams)
        ]
        for flow in xfer.flows:
            self.net.flows.start(flow)

    def _slice_done(self, flow: Flow) -> None:
        xfer: _Transfer = flow.meta
        xfer.pending -= 1
        if xfer.pending == 0 and not xfer.done:
            xfer.flows = []
            Call(self.env, self.net.route(xfer.src, xfer.dst).latency, self._arrived, (xfer,))

    def _arrived(self, xfer: _Transfer) -> None:
        if xfer.done:
            return
        receiver = self._runtime(xfer.dst)
        if not receiver.alive:
            self.fail(xfer, f"{xfer.dst} crashed during the transfer")
            return
        receiver._receive_transfer(xfer.src, xfer.tag, xfer.payload)
        # The acknowledgement travels back before the sender knows.
        Call(self.env, self.net.route(xfer.dst, xfer.src).latency, self._acknowledged, (xfer,))

    def _acknowledged(self, xfer: _Transfer) -> None:
        if xfer.done:
            return
        xfer.done = True
        self.groups.pop(xfer.id, None)
        report = TransferReport(
            src=xfer.src,
            dst=xfer.dst,
            tag=xfer.tag,
            nbytes=xfer.nbytes,
            streams=xfer.streams,
            congestion=xfer.congestion,
            started=xfer.started,
            finished=self._runtime(xfer.src).now(),
        )
        self.net.transfer_log.append(report)
        self.net.sim.tracer.record((self.env.now, XFER_DONE, xfer.src, xfer.dst, xfer.nbytes, xfer.streams))
        if not xfer.future.done():
            xfer.future.set_result(report)

    def _transfer_failed(self, xfer: _Transfer, reason: str) -> None:
        net = self.net
        net.counters["transfers_failed"] += 1
        net.transfer_failures.append((self.env.now, xfer.src, xfer.dst, xfer.tag, reason))
        net.sim.tracer.record((self.env.now, XFER_FAIL, xfer.src, xfer.dst, reason))
        if not xfer.future.done():
            xfer.future.set_exception(TransferError(f"transfer {xfer.src}->{xfer.dst}: {reason}"))

    # -- streams ------------------------------------------------------------
    def open_stream(self, src: str, dst: str, congestion: str) -> SimFuture:
        check_congestion(congestion)
        future = SimFuture(self.env)
        if dst not in self.net.topology.nodes:
            future.set_exception(TransferError(f"unknown destination node {dst!r}"))
            return future
        stream = SimStream(self, next(self._ids), src, dst, congestion)
        stream.opening = future
        self._connect(stream, self._stream_open)
        return future

    def _stream_open(self, stream: SimStream) -> None:
        self.net.counters["streams_opened"] += 1
        if stream.opening.done():  # the opener was cancelled while connecting: nobody will use it
            stream.close()
            return
        stream.opening.set_result(stream)

    def stream_send(self, stream: SimStream, header: Message, data: Any) -> SimFuture:
        done = SimFuture(self.env)
        nbytes = payload_size(data) + self.net.message_size(header)
        links = self.net.topology.links_between(stream.src, stream.dst)
        flow = Flow(
            links, float(nbytes), self._cap(stream), self._record_sent, meta=(stream, header, data, done)
        )
        flow.stalled = stream.stalled
        stream.flows = [flow]
        self.net.flows.start(flow)
        return done

    def _record_sent(self, flow: Flow) -> None:
        stream, header, data, done = flow.meta
        stream.flows = []
        stream.bytes_sent += int(flow.sent)
        route = self.net.route(stream.src, stream.dst)
        Call(self.env, route.latency, self._record_arrived, (stream, header, data))
        done.set_result(None)

    def _record_arrived(self, stream: SimStream, header: Message, data: Any) -> None:
        receiver = self._runtime(stream.dst)
        if stream.failure is None and receiver.alive:
            receiver._receive_stream_record(stream.src, header, data)

    def _stream_failed(self, stream: SimStream, reason: str) -> None:
        stream.failure = reason
        self.net.counters["streams_failed"] += 1
        self.net.sim.tracer.record((self.env.now, STREAM_FAIL, stream.src, stream.dst, stream.id, reason))
        opening = stream.opening
        if opening is not None and not opening.done():
            opening.set_exception(TransferError(f"stream {stream.src}->{stream.dst}: {reason}"))
        if stream._sending is not None and not stream._sending.done():
            stream._sending.set_exception(TransferError(f"stream {stream.src}->{stream.dst}: {reason}"))

    def streams_between(self, src: str | None = None, dst: str | None = None) -> list[SimStream]:
        """Open streams, oldest first (for fault injection and inspection)."""
        return [
            g
            for g in self.groups.values()
            if isinstance(g, SimStream) and src in (None, g.src) and dst in (None, g.dst)
        ]
