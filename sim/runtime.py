"""One simulated node's view of the contract (``novacron.runtime.Runtime``).

A :class:`SimRuntime` is one *incarnation* of a node: a crash marks it dead
(every timer, task and handler it owned goes silent at once, see
:class:`~novacron.sim.kernel.Call`) and a restart creates a fresh one that
shares only the node's storage. Its clock is the simulation's virtual time
seen through the node's :class:`NodeClock` (offset and drift, for clock-skew
faults).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from novacron.runtime import Message, NodeInfo, Payload, TransferReport, VirtualPayload

from .cpu import Cpu
from .kernel import Call, SimFuture, SimTask
from .network.bulk import SimStream
from .storage import SimStorage

if TYPE_CHECKING:
    from .simulation import Simulation

log = logging.getLogger(__name__)


def _resolve(fut: SimFuture) -> None:
    if not fut.done():  # a cancelled sleep stays cancelled
        fut.set_result(None)


class NodeClock:
    """A node's local clock: ``offset + virtual_time * (1 + drift)``.

    Changing the drift keeps the clock continuous; offsets only move it
    forward while it is running (the contract's clock never goes backwards).
    """

    def __init__(self, offset: float = 0.0, drift: float = 0.0) -> None:
        if drift <= -1:
            raise ValueError("clock drift must be > -1 (the clock must move forward)")
        self.offset = offset
        self.drift = drift

    def local(self, t: float) -> float:
        return self.offset + t * (1.0 + self.drift)

    def set_drift(self, t: float, drift: float) -> None:
        if drift <= -1:
            raise ValueError("clock drift must be > -1 (the clock must move forward)")
        here = self.local(t)
        self.drift = drift
        self.offset = here - t * (1.0 + drift)

    def jump(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a running clock may only jump forward")
        self.offset += seconds


class SimRuntime:
    """The contract for protocol code on one simulated node incarnation."""

    def __init__(
        self,
        sim: Simulation,
        info: NodeInfo,
        storage: SimStorage,
        clock: NodeClock,
        rng: random.Random,
        incarnation: int,
    ) -> None:
        self._sim = sim
        self._env = sim.env
        self._info = info
        self._storage = storage
        self._clock = clock
        self._random = rng
        self.incarnation = incarnation
        self.alive = True
        self._handlers: dict[type, Callable[[str, Any], None]] = {}
        self._transfer_handlers: dict[str, Callable[[str, Payload], None]] = {}
        self._stream_handlers: dict[type, Callable[[str, Any, Payload], None]] = {}
        self._stream_placements: dict[type, Any] = {}
        self.unhandled_messages = 0
        #: this incarnation's cores (None: unlimited); a crash ends the work booked on them
        cores = sim.topology.nodes[info.node_id].cores
        self.cpu = Cpu(cores) if cores is not None else None
        if self.cpu is not None:
            sim.cpus.setdefault(info.node_id, []).append(self.cpu)
        self.default_congestion = "cubic"
        self.app: Any = None  # what the app factory returned, for inspection
        # send() is the hot path: a route by destination, then the network.
        self._routes = sim.network.routes_from[info.node_id]
        self._send_on = sim.network.send_on

    # -- identity -------------------------------------------------------------
    @property
    def node_id(self) -> str:
        return self._info.node_id

    @property
    def info(self) -> NodeInfo:
        return self._info

    @property
    def peers(self) -> tuple[str, ...]:
        return self._sim._peers_of[self._info.node_id]

    def peer_info(self, node_id: str) -> NodeInfo:
        return self._sim.node_info(node_id)

    @property
    def storage(self) -> SimStorage:
        return self._storage

    @property
    def random(self) -> random.Random:
        return self._random

    @property
    def boot_id(self) -> str:
        # "" for the first incarnation: ids of runs without restarts are what they always were
        return "" if self.incarnation == 1 else str(self.incarnation)

    # -- clock ----------------------------------------------------------------
    def now(self) -> float:
        return self._clock.local(self._env.now)

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> Call:
        if delay < 0:
            raise ValueError(f"call_later: delay must be >= 0, got {delay}")
        return Call(self._env, delay / (1.0 + self._clock.drift), fn, args, self)

    async def sleep(self, delay: float) -> None:
        # A coroutine, as asyncio.sleep is, so that spawn(rt.sleep(...)) works on both runtimes.
        fut = SimFuture(self._env)
        self.call_later(delay, _resolve, fut)
        await fut

    async def compute(self, seconds: float) -> float:
        # Without a core count (the topology's ``cores``) concurrent compute() calls overlap;
        # with one, each waits for the core that frees up first (novacron.sim.cpu).
        if not seconds >= 0:  # (NaN too)
            raise ValueError(f"compute: seconds must be >= 0, got {seconds}")
        if seconds == 0:
            return 0.0
        if self.cpu is None:
            await self.sleep(seconds)
            return 0.0
        now = self._env.now
        rate = 1.0 + self._clock.drift  # local seconds per virtual second, as sleep() converts
        start, finish = self.cpu.book(now, seconds / rate)
        fut = SimFuture(self._env)
        Call(self._env, finish - now, _resolve, (fut,), self)
        await fut
        return (start - now) * rate

    async def offload(self, fn: Callable[..., Any], *args: Any) -> Any:
        # In virtual time the work is instantaneous; its cost is what compute() charges.
        return fn(*args)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> SimTask:
        return SimTask(self._env, coro, self)

    def create_future(self) -> SimFuture:
        return SimFuture(self._env)

    # -- network --------------------------------------------------------------
    def send(self, dst: str, message: Message) -> None:
        if self.alive:
            route = self._routes.get(dst)
            if route is None:
                self._sim.network.send(self._info.node_id, dst, message)
            else:
                self._send_on(route, message)

    def on_message(self, message_type: type, handler: Callable[[str, Any], None]) -> None:
        if not (isinstance(message_type, type) and issubclass(message_type, Message)):
            raise TypeError(f"on_message() needs a Message subclass, got {message_type!r}")
        self._handlers[message_type] = handler

    async def transfer(
        self,
        dst: str,
        payload: Payload,
        *,
        streams: int = 1,
        congestion: str | None = None,
        tag: str = "",
    ) -> TransferReport:
        # A coroutine (not a bare future) so that spawn(rt.transfer(...)) works
        # exactly as on the asyncio backend.
        return await self._sim.network.transfer(
            self._info.node_id, dst, payload, streams, congestion or self.default_congestion, tag
        )

    async def open_stream(self, dst: str, *, congestion: str | None = None) -> SimStream:
        return await self._sim.network.open_stream(
            self._info.node_id, dst, congestion or self.default_congestion
        )

    def on_stream(
        self, header_type: type, handler: Callable[[str, Any, Payload], None], *, placement=None
    ) -> None:
        if not (isinstance(header_type, type) and issubclass(header_type, Message)):
            raise TypeError(f"on_stream() needs a Message subclass, got {header_type!r}")
        self._stream_handlers[header_type] = handler
        self._stream_placements[header_type] = placement

    def _receive_stream_record(self, src: str, header: Message, data: Payload) -> None:
        handler = self._stream_handlers.get(header.__class__)
        if handler is None:
            log.warning(
                "%s got a stream record %s from %s with no handler", self.node_id, type(header).__name__, src
            )
            return
        if not isinstance(data, VirtualPayload):
            placement = self._stream_placements.get(header.__class__)
            target = placement(src, header, len(data)) if placement is not None else None
            if target is not None and not target.readonly and target.nbytes == len(data):
                target[:] = data  # what the real backend's socket read does
                data = target
            data = memoryview(data).toreadonly()
        handler(src, header, data)

    def on_transfer(self, tag: str, handler: Callable[[str, Payload], None]) -> None:
        self._transfer_handlers[tag] = handler

    def _receive_transfer(self, src: str, tag: str, payload: Payload) -> None:
        handler = self._transfer_handlers.get(tag)
        if not isinstance(payload, VirtualPayload):  # read-only, as the real backend hands it over
            payload = memoryview(payload).toreadonly()
        if handler is None:
            log.warning("%s received a transfer tagged %r from %s with no handler", self.node_id, tag, src)
            return
        handler(src, payload)

    def __repr__(self) -> str:
        state = "alive" if self.alive else "dead"
        return f"<SimRuntime {self.node_id} #{self.incarnation} {state}>"
