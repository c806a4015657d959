"""The real runtime: the :class:`novacron.runtime.Runtime` contract on asyncio and TCP.

One :class:`AsyncioRuntime` is one node. It maps the contract onto the event
loop (``now``/``call_later``/``sleep``/``spawn``), onto TCP (``send``,
``open_stream`` and ``transfer``, see :mod:`.tcp.messaging`,
:mod:`.tcp.records` and :mod:`.tcp.transfers`) and onto a
:class:`~novacron.runtime.Storage` (usually :class:`.storage.SQLiteStorage`).

Everything the node's protocol code starts — tasks, timers — is tracked, so
that :meth:`AsyncioRuntime.crash` can make the node vanish the way a killed
process does (nothing it scheduled runs again, its sockets — messages,
streams, transfers — close, unsynced storage is lost) while other nodes in
the same event loop carry on. That is what lets
:class:`.cluster.LocalCluster` run fault-injection tests on real sockets.

Lifecycle: construct, ``await start()`` (binds and starts accepting), run the
app, then ``await close()`` (graceful: flush queues briefly, commit storage)
or ``await crash()`` (abrupt).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import os
import random
import secrets
import socket
import ssl
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from novacron.runtime import (
    Message,
    MessageHandler,
    NodeInfo,
    Payload,
    Storage,
    StreamHandler,
    TransferError,
    TransferHandler,
    TransferReport,
    WireError,
    codec,
)

from .clock import LoopClock
from .directory import PeerDirectory
from .options import RuntimeOptions
from .stats import LogThrottle, NetworkStats
from .storage import SQLiteStorage
from .tcp import wire
from .tcp.context import NodeContext
from .tcp.framing import encode_frame
from .tcp.messaging import InboundMessageProtocol, PeerSender
from .tcp.records import RecordStream, StreamPlane
from .tcp.transfers import BulkTransfers
from .tls import TLSConfig

log = logging.getLogger(__name__)

T = TypeVar("T")
M = TypeVar("M", bound=Message)


class _State(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    CLOSED = "closed"
    CRASHED = "crashed"


class _Timer:
    """What :meth:`AsyncioRuntime.call_later` returns; tracked so a crash cancels it."""

    __slots__ = ("_rt", "_fn", "_args", "_handle", "_cancelled", "_due")

    def __init__(self, rt: AsyncioRuntime, fn: Callable[..., Any], args: tuple[Any, ...], due: float) -> None:
        self._rt = rt
        self._fn = fn
        self._args = args
        self._handle: asyncio.TimerHandle | None = None
        self._cancelled = False
        self._due = due  # on time.monotonic(): see .clock

    def _arm(self, loop: asyncio.AbstractEventLoop, delay: float) -> None:
        self._handle = loop.call_later(delay, self._fire)

    def cancel(self) -> None:
        self._cancelled = True
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._rt._timers.discard(self)

    def cancelled(self) -> bool:
        return self._cancelled

    def _fire(self) -> None:
        self._handle = None
        if self._cancelled or not self._rt.running:
            self._rt._timers.discard(self)
            return
        clock = self._rt._clock
        assert clock is not None and self._rt._loop is not None
        left = clock.remaining(self._due)
        if left > 0:  # the loop's coarser clock ran it early: wait out the rest
            self._arm(self._rt._loop, left)
            return
        self._rt._timers.discard(self)
        try:
            self._fn(*self._args)
        except Exception:
            self._rt.stats.task_errors += 1
            log.exception("[%s] timer callback %r raised", self._rt.node_id, self._fn)


def _check_delay(delay: float) -> None:
    if not isinstance(delay, int | float) or math.isnan(delay) or delay < 0:
        raise ValueError(f"delay must be a number of seconds >= 0, got {delay!r}")


class AsyncioRuntime:
    """One node of a real deployment (or of a :class:`~.cluster.LocalCluster`).

    ``directory`` tells where every node listens; the node registers its own
    bound address there on :meth:`start` (advertised as ``advertise_host``,
    default ``host``). ``seed`` seeds :attr:`random` (default: from
    ``os.urandom``). ``epoch`` is the ``time.monotonic()`` reading that ``now()``
    counts from (default: the start of this runtime; a cluster passes one shared
    epoch so that node clocks agree and survive restarts; see :mod:`.clock`). ``storage`` defaults to a
    non-durable in-memory SQLite database; a given storage is committed and
    closed by :meth:`close` and abandoned (unsynced writes lost) by
    :meth:`crash` when it has ``close``/``abandon`` methods.
    """

    def __init__(
        self,
        node_id: str,
        *,
        directory: PeerDirectory | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        advertise_host: str | None = None,
        region: str = "",
        zone: str = "",
        labels: dict[str, str] | None = None,
        storage: Storage | None = None,
        seed: int | None = None,
        tls: TLSConfig | None = None,
        options: RuntimeOptions | None = None,
        epoch: float | None = None,
    ) -> None:
        if not isinstance(node_id, str) or not node_id:
            raise ValueError(f"node_id must be a non-empty string, got {node_id!r}")
        self._node_id = node_id
        self._info = NodeInfo(node_id, region, zone, dict(labels or {}))
        self.directory = directory if directory is not None else PeerDirectory()
        self._host = host
        self._port = port
        self._advertise_host = advertise_host or host
        self._storage: Storage = storage if storage is not None else SQLiteStorage(":memory:")
        if seed is None:
            seed = int.from_bytes(os.urandom(8), "big")
        self.seed = seed
        self._random = random.Random(seed)
        # Not from the seeded generator: a restarted process with the same seed needs a new one.
        self._boot_id = secrets.token_hex(4)
        self._tls = tls
        self.options = options or RuntimeOptions()
        self._epoch = epoch
        self._clock: LoopClock | None = None
        self.stats = NetworkStats()
        self._state = _State.NEW
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ctx: NodeContext | None = None
        self._transfers: BulkTransfers | None = None
        self._streams: StreamPlane | None = None
        self._listener: socket.socket | None = None
        self._handlers: dict[type[Message], MessageHandler[Any]] = {}
        self._transfer_handlers: dict[str, TransferHandler] = {}
        self._stream_handlers: dict[type[Message], StreamHandler[Any]] = {}
        self._stream_placements: dict[type[Message], Any] = {}
        self._senders: dict[str, PeerSender] = {}
        self._inbound: set[InboundMessageProtocol] = set()
        self._inbound_open = 0
        self._tasks: set[asyncio.Task[Any]] = set()  # spawned by protocol code
        self._internal: set[asyncio.Task[Any]] = set()  # accept loop, connections
        self._data_tasks: set[asyncio.Task[Any]] = set()  # serving a data or stream connection
        self._timers: set[_Timer] = set()
        self._throttle: LogThrottle | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the listening socket, register in the directory, start accepting."""
        if self._state is not _State.NEW:
            raise RuntimeError(f"runtime {self._node_id} was already started ({self._state.value})")
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._clock = LoopClock(loop, self._epoch)
        self._epoch = self._clock.epoch
        self._throttle = LogThrottle(loop.time)
        client_tls = server_tls = None
        if self._tls is not None:
            client_tls, server_tls = self._tls.client_context(), self._tls.server_context()
        self._ctx = NodeContext(
            node_id=self._node_id,
            loop=loop,
            directory=self.directory,
            options=self.options,
            stats=self.stats,
            client_tls=client_tls,
            server_tls=server_tls,
            check_identity=self._tls.check_identity if self._tls is not None else True,
            jitter=random.Random(self.seed ^ 0x5EED),
            throttle=self._throttle,
        )
        self._transfers = BulkTransfers(self._ctx, self._deliver_transfer, self.now)
        self._streams = StreamPlane(self._ctx, self._deliver_record, self._place_record)
        self._listener = _listen(self._host, self._port)
        self._port = self._listener.getsockname()[1]
        self.directory.register(self._node_id, self._advertise_host, self._port, self._info)
        self._state = _State.RUNNING
        self._internal_task(self._accept_loop(), "accept")
        log.info(
            "[%s] listening on %s:%d (tls %s)",
            self._node_id,
            self._host,
            self._port,
            "on" if self._tls else "off",
        )

    @property
    def running(self) -> bool:
        return self._state is _State.RUNNING

    @property
    def address(self) -> tuple[str, int]:
        """Where this node listens (the port is known once started)."""
        return self._host, self._port

    async def close(self, *, flush_timeout: float = 1.0) -> None:
        """Graceful stop: flush send queues (up to ``flush_timeout``), commit storage."""
        if self._state is _State.NEW:
            self._state = _State.CLOSED
            _close_storage(self._storage)
        if self._state is not _State.RUNNING:
            return
        self._state = _State.CLOSED
        self._stop_activity()
        await asyncio.gather(*(s.close(flush_timeout) for s in self._senders.values()))
        self._senders.clear()
        await self._stop_network(f"{self._node_id} closed")
        await self._storage.sync()
        _close_storage(self._storage)
        log.info("[%s] closed", self._node_id)

    async def crash(self) -> None:
        """Abrupt stop, as if the process died: nothing scheduled runs again,
        connections reset, unsynced storage is lost."""
        if self._state is not _State.RUNNING:
            return
        self._state = _State.CRASHED
        self._stop_activity()
        for sender in self._senders.values():
            sender.abort()
        self._senders.clear()
        abandon = getattr(self._storage, "abandon", None)
        if callable(abandon):
            abandon()
        await self._stop_network(f"{self._node_id} crashed")
        log.info("[%s] crashed", self._node_id)

    def _stop_activity(self) -> None:
        for timer in list(self._timers):
            timer.cancel()
        current = asyncio.current_task()  # close() may be called by the node's own code
        for task in list(self._tasks):
            if task is not current:
                task.cancel()

    async def _stop_network(self, reason: str) -> None:
        assert self._transfers is not None and self._streams is not None
        # Data and stream connection handlers are not cancelled but starved:
        # aborting their sockets makes their worker threads (or, for streams,
        # their coroutines) return at once, and the handlers then close the
        # sockets themselves. Closing a socket under a thread still using it
        # could let the fd number be reused under its feet.
        for task in self._internal - self._data_tasks:
            task.cancel()
        if self._listener is not None:
            self._listener.close()
        for protocol in list(self._inbound):
            protocol.abort()
        self._transfers.abort_all()
        self._streams.stop(reason)
        current = asyncio.current_task()
        pending = [t for t in (*self._tasks, *self._internal) if t is not current and not t.done()]
        if pending:
            _, stuck = await asyncio.wait(pending, timeout=5.0)
            for task in stuck:
                log.warning("[%s] task %s did not stop in time", self._node_id, task.get_name())

    # --- identity -----------------------------------------------------------------------------

    @property
    def node_id(self) -> str:
        return self._node_id

    @property
    def info(self) -> NodeInfo:
        return self._info

    @property
    def peers(self) -> tuple[str, ...]:
        return tuple(n for n in self.directory.ids() if n != self._node_id)

    def peer_info(self, node_id: str) -> NodeInfo:
        if node_id == self._node_id:
            return self._info
        entry = self.directory.get(node_id)
        if entry is None:
            raise KeyError(f"{node_id!r} is not a known peer of {self._node_id}")
        return entry.info

    @property
    def storage(self) -> Storage:
        return self._storage

    @property
    def random(self) -> random.Random:
        return self._random

    @property
    def boot_id(self) -> str:
        return self._boot_id

    # --- clock --------------------------------------------------------------------------------

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError(f"runtime {self._node_id} is not started: await start() first")
        return self._loop

    def _running_clock(self) -> LoopClock:
        self._running_loop()
        assert self._clock is not None
        return self._clock

    def now(self) -> float:
        return self._running_clock().now()

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> _Timer:
        _check_delay(delay)
        loop, clock = self._running_loop(), self._running_clock()
        due = clock.due(delay)
        timer = _Timer(self, fn, args, due)
        if not self.running:
            timer.cancel()
            return timer
        timer._arm(loop, clock.remaining(due) if clock.step else delay)
        self._timers.add(timer)
        return timer

    def sleep(self, delay: float) -> Coroutine[Any, Any, None]:
        _check_delay(delay)
        return self._running_clock().sleep(delay)

    async def compute(self, seconds: float) -> float:
        """Returns at once (0.0 s waited): on real hardware the CPU work already took its time.

        (The simulator advances the node's clock instead; see the contract.)
        """
        _check_delay(seconds)
        return 0.0

    async def offload(self, fn: Callable[..., T], *args: Any) -> T:
        """Runs ``fn(*args)`` on a worker thread of the loop's default executor."""
        return await asyncio.to_thread(fn, *args)

    def spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
        loop = self._running_loop()
        if not asyncio.iscoroutine(coro):
            raise TypeError(f"spawn() needs a coroutine, got {type(coro).__name__}")
        if not self.running:
            coro.close()
            dead: asyncio.Future[T] = loop.create_future()
            dead.cancel()
            return dead
        name = getattr(coro, "__qualname__", type(coro).__name__)
        task = loop.create_task(coro, name=f"{self._node_id}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()  # retrieving it also silences asyncio's late warning
        if exc is not None:
            self.stats.task_errors += 1
            log.error(
                "[%s] spawned task %s failed: %r",
                self._node_id,
                task.get_name(),
                exc,
                exc_info=exc,
            )

    def create_future(self) -> asyncio.Future[Any]:
        return self._running_loop().create_future()

    def _internal_task(self, coro: Coroutine[Any, Any, Any], what: str) -> None:
        task = self._running_loop().create_task(coro, name=f"{self._node_id}:{what}")
        self._internal.add(task)
        task.add_done_callback(self._internal_done)

    def _internal_done(self, task: asyncio.Task[Any]) -> None:
        self._internal.discard(task)
        self._data_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "[%s] internal task %s failed",
                self._node_id,
                task.get_name(),
                exc_info=task.exception(),
            )

    # --- messages -----------------------------------------------------------------------------

    def send(self, dst: str, message: Message) -> None:
        if not isinstance(message, Message):
            raise TypeError(f"send() needs a novacron Message, got {type(message).__name__}")
        if not self.running:
            self.stats.dropped_not_running += 1
            return
        body = codec.encode(message)
        if len(body) > self.options.max_frame_size:
            raise ValueError(
                f"{type(message).__name__} encodes to {len(body)} bytes, above the maximum "
                f"frame size of {self.options.max_frame_size}; use transfer() for bulk data"
            )
        if dst == self._node_id:
            self._running_loop().call_soon(self._deliver_local, body)
            return
        sender = self._senders.get(dst)
        if sender is None:
            if dst not in self.directory:
                self.stats.dropped_unknown_peer += 1
                self._log_throttled("unknown-peer", "message to unknown peer %r dropped", dst)
                return
            assert self._ctx is not None
            sender = self._senders[dst] = PeerSender(self._ctx, dst)
        if not sender.enqueue(encode_frame(body, self.options.max_frame_size)):
            self.stats.dropped_queue_full += 1
            self._log_throttled(
                f"queue-full:{dst}",
                "send queue to %s is full (%d messages): dropping",
                dst,
                len(sender),
            )

    def queue_length(self, peer: str) -> int:
        """Messages waiting to be written to ``peer``."""
        sender = self._senders.get(peer)
        return len(sender) if sender is not None else 0

    def on_message(self, message_type: type[M], handler: MessageHandler[M]) -> None:
        if not (isinstance(message_type, type) and issubclass(message_type, Message)):
            raise TypeError(f"on_message() needs a Message subclass, got {message_type!r}")
        if not callable(handler):
            raise TypeError(f"handler for {message_type.__name__} is not callable")
        self._handlers[message_type] = handler

    def _deliver_local(self, body: bytes) -> None:
        try:
            message = codec.decode(body)
        except WireError as exc:  # cannot happen for a frame we encoded, but never crash
            self.stats.rejected["malformed"] += 1
            log.error("[%s] message to self does not decode: %s", self._node_id, exc)
            return
        self._dispatch(self._node_id, message)

    def _dispatch(self, src: str, message: Message) -> None:
        if not self.running:
            return
        handler = self._handlers.get(type(message))
        if handler is None:
            self.stats.unhandled += 1
            self._log_throttled(
                f"unhandled:{type(message).__name__}",
                "no handler for %s (from %s): dropped",
                type(message).__name__,
                src,
            )
            return
        self.stats.received += 1
        try:
            handler(src, message)
        except Exception:
            self.stats.handler_errors += 1
            log.exception("[%s] handler for %s from %s raised", self._node_id, type(message).__name__, src)

    def _log_throttled(self, key: str, fmt: str, *args: Any) -> None:
        assert self._throttle is not None
        if self._throttle.allow(key):
            skipped = self._throttle.suppressed(key)
            suffix = f" ({skipped} similar suppressed)" if skipped else ""
            log.warning("[%s] " + fmt + "%s", self._node_id, *args, suffix)

    # --- bulk transfers -----------------------------------------------------------------------

    async def transfer(
        self,
        dst: str,
        payload: Payload,
        *,
        streams: int = 1,
        congestion: str | None = None,
        tag: str = "",
    ) -> TransferReport:
        if not self.running or self._transfers is None:
            raise TransferError(f"node {self._node_id} is not running")
        return await self._transfers.send(dst, payload, streams=streams, congestion=congestion, tag=tag)

    def on_transfer(self, tag: str, handler: TransferHandler) -> None:
        if not isinstance(tag, str):
            raise TypeError(f"transfer tag must be a str, got {type(tag).__name__}")
        if not callable(handler):
            raise TypeError(f"handler for transfer tag {tag!r} is not callable")
        self._transfer_handlers[tag] = handler

    @property
    def active_streams(self) -> int:
        """Bulk-data connections open right now, transfers' and streams', sending and receiving."""
        transfers = self._transfers.active_streams if self._transfers is not None else 0
        return transfers + self.open_streams

    def reset_streams(self, count: int = 1, *, after_records: int = 0) -> int:
        """Fault injection (tests, drills): reset ``count`` of the stream connections peers
        opened to this node; their senders see the stream fail. Returns how many were reset.

        With ``after_records=k`` nothing is reset now: the stream that delivers the k-th
        record from now is reset right after it (then again every k records, ``count``
        times), so the fault lands mid-transfer however fast the machine is. Returns 0.
        """
        if self._streams is None:
            return 0
        if after_records:
            self._streams.reset_inbound_after(after_records, count)
            return 0
        return self._streams.reset_inbound(count)

    @property
    def open_streams(self) -> int:
        """Stream connections (``open_stream``) open or being set up, both directions."""
        return self._streams.active if self._streams is not None else 0

    def _deliver_transfer(self, src: str, tag: str, payload: memoryview) -> bool:
        """Hand a received transfer to its handler; ``False`` if this node is down."""
        if not self.running:
            return False
        handler = self._transfer_handlers.get(tag)
        if handler is None:
            self.stats.transfers_unhandled += 1
            self._log_throttled(
                f"unhandled-transfer:{tag}",
                "no handler for transfers tagged %r (from %s, %d bytes): dropped",
                tag,
                src,
                len(payload),
            )
            return True
        try:
            handler(src, payload)
        except Exception:
            self.stats.handler_errors += 1
            log.exception("[%s] transfer handler for tag %r raised", self._node_id, tag)
        return True

    # --- streams ------------------------------------------------------------------------------

    async def open_stream(self, dst: str, *, congestion: str | None = None) -> RecordStream:
        """Connect one stream to ``dst`` (see :mod:`.tcp.records`); :class:`TransferError` if it cannot."""
        if not self.running or self._streams is None:
            raise TransferError(f"node {self._node_id} is not running")
        return await self._streams.open(dst, congestion)

    def on_stream(self, header_type: type[M], handler: StreamHandler[M], *, placement=None) -> None:
        if not (isinstance(header_type, type) and issubclass(header_type, Message)):
            raise TypeError(f"on_stream() needs a Message subclass, got {header_type!r}")
        if not callable(handler):
            raise TypeError(f"stream handler for {header_type.__name__} is not callable")
        self._stream_handlers[header_type] = handler
        if placement is None:
            self._stream_placements.pop(header_type, None)
        else:
            self._stream_placements[header_type] = placement

    def _place_record(self, src: str, header: Message, length: int) -> memoryview | None:
        """Where the protocol wants this record's data received (zero-copy), if it says."""
        placement = self._stream_placements.get(type(header))
        return placement(src, header, length) if placement is not None and self.running else None

    def _deliver_record(self, src: str, header: Message, data: memoryview) -> bool:
        """Hand a received record to its handler; ``False`` if this node is down."""
        if not self.running:
            return False
        self.stats.records_received += 1
        handler = self._stream_handlers.get(type(header))
        if handler is None:
            self.stats.records_unhandled += 1
            self._log_throttled(
                f"unhandled-record:{type(header).__name__}",
                "no stream handler for %s (from %s, %d bytes): dropped",
                type(header).__name__,
                src,
                data.nbytes,
            )
            return True
        try:
            handler(src, header, data)
        except Exception:
            self.stats.handler_errors += 1
            name = type(header).__name__
            log.exception("[%s] stream handler for %s from %s raised", self._node_id, name, src)
        return True

    # --- accepting connections ----------------------------------------------------------------

    async def _accept_loop(self) -> None:
        loop = self._running_loop()
        assert self._listener is not None and self._ctx is not None
        while True:
            try:
                conn, peer = await loop.sock_accept(self._listener)
            except OSError as exc:  # e.g. EMFILE: back off instead of spinning
                log.error("[%s] accept failed: %s", self._node_id, exc)
                await asyncio.sleep(0.1)
                continue
            where = _format_address(peer)
            if self._inbound_open >= self.options.max_connections:
                self._ctx.reject(
                    "too_many_connections",
                    f"{self._inbound_open} inbound connections open (limit {self.options.max_connections})",
                    f" from {where}",
                )
                conn.close()
                continue
            self._inbound_open += 1
            self._internal_task(self._serve_connection(conn, where), f"conn {where}")

    async def _serve_connection(self, conn: socket.socket, where: str) -> None:
        assert self._ctx is not None and self._transfers is not None and self._streams is not None
        handed_off = False
        try:
            try:
                async with asyncio.timeout(self.options.handshake_timeout):
                    preamble = await self._recv_exactly(conn, wire.PREAMBLE_SIZE)
            except TimeoutError:
                self._ctx.reject("handshake_timeout", "no preamble in time", f" from {where}")
                return
            except OSError:
                return
            if preamble == wire.MESSAGE_PREAMBLE:
                handed_off = await self._open_message_connection(conn, where)
            elif preamble == wire.DATA_PREAMBLE:
                if self.running:
                    self._data_tasks.add(asyncio.current_task())  # type: ignore[arg-type]
                    await self._transfers.serve(conn, where)
            elif preamble == wire.STREAM_PREAMBLE:
                if self.running:
                    self._data_tasks.add(asyncio.current_task())  # type: ignore[arg-type]
                    await self._streams.serve(conn, where)
            else:
                self._ctx.reject("bad_preamble", f"unknown preamble {preamble!r}", f" from {where}")
        finally:
            if not handed_off:
                conn.close()
                self._inbound_open -= 1

    async def _open_message_connection(self, conn: socket.socket, where: str) -> bool:
        """Hand an accepted socket to asyncio as a message connection; ``False`` if TLS failed."""
        assert self._ctx is not None
        ctx = self._ctx
        kwargs: dict[str, Any] = {}
        if ctx.server_tls is not None:
            kwargs = {"ssl": ctx.server_tls, "ssl_handshake_timeout": self.options.handshake_timeout}
        protocol = InboundMessageProtocol(ctx, self._dispatch, self._inbound_closed, where)
        try:
            # (What this returns with TLS is the TLS layer on uvloop, so keep our own.)
            await self._running_loop().connect_accepted_socket(lambda: protocol, conn, **kwargs)
        except (ssl.SSLError, OSError, TimeoutError) as exc:
            ctx.reject("tls_handshake", f"{exc!r}", f" from {where}")
            return False
        if protocol.transport is not None and not protocol.transport.is_closing():
            self._inbound.add(protocol)  # else connection_lost already ran
        return True

    def _inbound_closed(self, protocol: InboundMessageProtocol) -> None:
        self._inbound.discard(protocol)
        self._inbound_open -= 1

    async def _recv_exactly(self, conn: socket.socket, n: int) -> bytes:
        loop = self._running_loop()
        data = b""
        while len(data) < n:
            chunk = await loop.sock_recv(conn, n - len(data))
            if not chunk:
                raise ConnectionError("closed before the preamble")
            data += chunk
        return data

    def __repr__(self) -> str:
        return f"<AsyncioRuntime {self._node_id} {self._state.value} {self._host}:{self._port}>"


def _close_storage(storage: Storage) -> None:
    close = getattr(storage, "close", None)
    if callable(close):
        close()


def _listen(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        # Reuse the address so a restarted node can bind its old port at once,
        # while connections of its previous life linger in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1024)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _format_address(peer: Any) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)
