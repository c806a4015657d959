"""The simulated network: message delivery, bulk transfers and network faults.

Messages: one entry on SimPy's event heap per delivery (a :class:`_Delivery`).
The delay is the route's one-way latency, plus uniform jitter, plus the
message's serialisation time at the bottleneck; deliveries on one node pair
stay in FIFO order (as on a TCP connection) unless a reordering fault is
active. Small messages do not contend for bandwidth; bulk transfers do.

Bulk data (transfers and streams) is flows in the :class:`FlowModel`; see
:mod:`.bulk`.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from heapq import heappush
from typing import Any

import msgspec
from simpy.events import NORMAL

from novacron.runtime import MAX_MESSAGE_BYTES, Message, TransferReport

from ..kernel import SimFuture
from ..seeds import derive_seed
from .bulk import BulkPlane
from .flows import FlowModel
from .routes import PairFault, Reservoir, Route, build_route
from .topology import Topology

log = logging.getLogger(__name__)

# Trace event kinds. Deliveries and drops are hot: recorded as numbers.
DELIVER, DROP = 1, 2
_KIND_NAMES = {DELIVER: "deliver", DROP: "drop"}
XFER_DONE, XFER_FAIL = "xfer", "xfer-fail"
_size_of = msgspec.msgpack.Encoder().encode  # the wire size of a message is len() of this


class _Delivery(msgspec.Struct, gc=False):
    """A message in flight: the one SimPy queue entry of a delivery.

    Not a ``simpy.Event``: ``Environment.step`` needs only ``callbacks`` and
    ``_ok`` of what it pops, and a struct built in C, which the garbage
    collector does not track, is cheaper to make than an Event and adds
    nothing to collect (the delivery path is the simulator's hottest; see
    benchmarks/README.md, session 11). Untracked is safe: only the event
    queue refers to a delivery, so it is never part of a reference cycle.
    """

    callbacks: list | None  # every delivery shares one list; SimPy sets None when it fires
    _ok: bool
    route: Route
    message: Message
    sent_at: float


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
        # The same routes indexed by source then destination: the send path
        # looks up by destination alone (no tuple to build and hash).
        self.routes_from: dict[str, dict[str, Route]] = {n: {} for n in topology.nodes}
        self._fifo_carry: dict[tuple[str, str], float] = {}  # FIFO state across rebuilds
        self.bulk = BulkPlane(self)
        self.counters: Counter[str] = Counter()
        self.delivered = 0  # hot counters are plain ints (see stats())
        self.dropped = 0
        # Per link class: a uniform sample of message one-way delays, for reports.
        self.latency_samples: dict[str, Reservoir] = {}
        self.max_latency_samples = 100_000
        self._sample_rng = random.Random(derive_seed(sim.seed, "latency-samples"))
        self.transfer_log: list[TransferReport] = []
        #: failed transfers: (time, src, dst, tag, reason)
        self.transfer_failures: list[tuple[float, str, str, str, str]] = []
        # Numeric codes for the trace: node index and message type (in order of first use).
        self._node_index = {n: i for i, n in enumerate(sorted(topology.nodes))}
        self._type_codes: dict[type, int] = {}
        sim.tracer.decode = self._decode_trace_event
        self._runtimes = sim._runtimes  # the simulation updates this dict in place on restarts
        self._trace_on = sim.tracer.enabled and not sim.tracer.keep  # else: record_numbers()
        self._tracer = sim.tracer
        if self._trace_on:
            sim.tracer.inline_counter = lambda: self.delivered
        self._on_delivery = [self._deliver]  # the callback list every _Delivery shares
        self._queue = self.env._queue  # SimPy's event heap: (time, priority, event id, event)
        self._eid = self.env._eid

    # -- routes -------------------------------------------------------------
    def route(self, src: str, dst: str) -> Route:
        route = self._routes.get((src, dst))
        if route is None:
            route = self._routes[(src, dst)] = build_route(self.topology, src, dst, self.faults)
            self.routes_from[src][dst] = route
            route.last_arrival = self._fifo_carry.get((src, dst), 0.0)
            route.src_index = self._node_index[src]
            route.dst_index = self._node_index[dst]
            # What a delivery on this route folds into the trace hash beside time and type.
            route.trace_key = hash((DELIVER, route.src_index, route.dst_index))
            samples = self.latency_samples.get(route.link_class)
            if samples is None:
                samples = self.latency_samples[route.link_class] = Reservoir(
                    self.max_latency_samples, self._sample_rng
                )
            route.samples = samples
            route.seconds_per_byte = 8 / route.bottleneck_bps
        return route

    def _type_code(self, cls: type) -> int:
        code = self._type_codes.get(cls)
        if code is None:
            code = self._type_codes[cls] = len(self._type_codes)
        return code

    def _decode_trace_event(self, event: tuple) -> tuple:
        names = sorted(self.topology.nodes)
        types = {code: cls.__name__ for cls, code in self._type_codes.items()}
        t, kind, a, b, c = event
        return (t, _KIND_NAMES[int(kind)], names[int(a)], names[int(b)], types.get(int(c), "?"))

    def stats(self) -> dict[str, int]:
        """Message and transfer counters, as one plain dict."""
        return {"delivered": self.delivered, "dropped": self.dropped, **self.counters}

    def conditions_changed(self) -> None:
        """A fault or link changed: rebuild routes, re-cap and stall/unstall flows."""
        for key, route in self._routes.items():
            self._fifo_carry[key] = route.last_arrival
        self._routes = {}
        for by_dst in self.routes_from.values():
            by_dst.clear()  # cleared in place: runtimes hold references to these dicts
        self.bulk.conditions_changed()
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
        route = self.routes_from[src].get(dst)
        if route is None:
            if dst not in self.topology.nodes:
                self.counters["unknown_destination"] += 1
                log.warning("%s sent %s to unknown node %r; dropped", src, type(message).__name__, dst)
                return
            route = self.route(src, dst)
        self.send_on(route, message)

    def send_on(self, route: Route, message: Message) -> None:
        """Send along a known route: the hot path, arithmetic on the route and one event."""
        now = self.env._now
        size = len(_size_of(message))
        if size > MAX_MESSAGE_BYTES:
            raise ValueError(
                f"{type(message).__name__} encodes to {size} bytes, over the {MAX_MESSAGE_BYTES}-byte "
                "message limit; send large payloads with transfer()"
            )
        arrival = now + route.latency + size * route.seconds_per_byte
        if route.impaired:  # loss, jitter, reordering, duplication or a partition
            rng = self.rng
            if route.blocked or (route.loss and rng.random() < route.loss):
                self._drop(now, route, message)
                return
            if route.jitter:
                arrival += rng.random() * route.jitter
            if route.duplicate and rng.random() < route.duplicate:
                self.counters["duplicated"] += 1
                extra = rng.random() * max(route.latency, 1e-4)
                self._schedule(arrival + extra, route, message, now)
            if route.reorder and rng.random() < route.reorder:
                arrival += rng.random() * route.reorder_delay  # may overtake earlier messages
                self._schedule(arrival, route, message, now)
                return
        if arrival < route.last_arrival:  # FIFO per node pair, as on one TCP connection
            arrival = route.last_arrival
        route.last_arrival = arrival
        heappush(
            self._queue,
            (arrival, NORMAL, next(self._eid), _Delivery(self._on_delivery, True, route, message, now)),
        )

    def _schedule(self, at: float, route: Route, message: Message, sent_at: float) -> None:
        """Queue a delivery, as SimPy's ``Environment.schedule`` would (inlined in send_on)."""
        heappush(
            self._queue,
            (at, NORMAL, next(self._eid), _Delivery(self._on_delivery, True, route, message, sent_at)),
        )

    def _deliver(self, event: _Delivery) -> None:
        route, message, sent_at = event.route, event.message, event.sent_at
        now = self.env._now
        runtime = self._runtimes[route.dst]
        if not runtime.alive:
            self.counters["dropped_dead"] += 1
            self._drop(now, route, message)
            return
        self.delivered += 1
        cls = message.__class__
        code = self._type_codes.get(cls)
        if code is None:
            code = self._type_code(cls)
        tracer = self._tracer
        if self._trace_on:  # Tracer.record_numbers(), inlined (count: see Tracer.inline_counter)
            tracer.rolling = hash((tracer.rolling, now, route.trace_key, code))
        else:
            tracer.record_numbers(now, DELIVER, route.src_index, route.dst_index, code)
        samples = route.samples  # Reservoir.add(), inlined
        samples.seen += 1
        if len(samples.values) < samples.capacity:
            samples.values.append(now - sent_at)
        elif samples.seen == samples.next:
            samples.offer(now - sent_at)
        handler = runtime._handlers.get(cls)
        if handler is None:
            runtime.unhandled_messages += 1
        else:
            handler(route.src, message)

    def _drop(self, now: float, route: Route, message: Message) -> None:
        self.dropped += 1
        code = self._type_code(message.__class__)
        self.sim.tracer.record_numbers(now, DROP, route.src_index, route.dst_index, code)

    def message_size(self, message: Message) -> int:
        return len(_size_of(message))

    # -- bulk data (see bulk.py) ------------------------------------------------
    def transfer(
        self, src: str, dst: str, payload: Any, streams: int, congestion: str, tag: str
    ) -> SimFuture:
        return self.bulk.transfer(src, dst, payload, streams, congestion, tag)

    def open_stream(self, src: str, dst: str, congestion: str) -> SimFuture:
        return self.bulk.open_stream(src, dst, congestion)

    def node_crashed(self, node_id: str) -> None:
        self.bulk.node_crashed(node_id)
