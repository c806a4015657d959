"""Small messages over TCP: a bounded queue and one connection per peer, each way.

Sending: :class:`PeerSender` owns the queue and the outbound connection to one
peer. ``send()`` only appends an encoded frame to the queue (or drops it and
counts when the queue is full), so protocol code never blocks on the network;
a task drains the queue in batches, connecting lazily and reconnecting with
capped exponential backoff and jitter when the peer goes away. Frames written
into a connection that then breaks are lost, which the contract allows
(best effort), and are counted.

Receiving: :class:`InboundMessageProtocol` is the asyncio side of an accepted
message connection; all decisions are in :class:`~.session.InboundSession`.
Connections are one-way: a node receives on connections its peers opened and
never writes on them, so neither side ever has to pair up connections.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque
from collections.abc import Callable

from novacron.runtime import Message, codec

from ..tls import peer_identities
from . import wire
from .context import NodeContext
from .framing import encode_frame
from .session import Authenticated, Close, Deliver, Event, InboundSession, Reject

log = logging.getLogger(__name__)

#: At most this many frames / bytes go into one write call.
_BATCH_FRAMES = 512
_BATCH_BYTES = 1024 * 1024


class PeerSender:
    """The queue of messages to one peer and the task that delivers them."""

    def __init__(self, ctx: NodeContext, peer: str) -> None:
        self.ctx = ctx
        self.peer = peer
        self._queue: deque[bytes] = deque()
        self._queued_bytes = 0
        self._wakeup = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._failures = 0  # consecutive failed or short-lived connections
        self._connected_at = 0.0
        self._had_connection = False
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()  # set whenever the queue has been written out
        self._idle.set()

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def queued_bytes(self) -> int:
        return self._queued_bytes

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    def enqueue(self, frame: bytes) -> bool:
        """Queue ``frame``; ``False`` (nothing queued) when the queue is full."""
        opts = self.ctx.options
        if (
            len(self._queue) >= opts.queue_max_frames
            or self._queued_bytes + len(frame) > opts.queue_max_bytes
        ):
            return False
        self._queue.append(frame)
        self._queued_bytes += len(frame)
        self._idle.clear()
        if self._task is None:
            self._task = self.ctx.loop.create_task(
                self._run(), name=f"{self.ctx.node_id}->{self.peer} sender"
            )
        self._wakeup.set()
        return True

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if not self.connected:
                if self._failures:
                    await asyncio.sleep(self._backoff())
                if not await self._connect():
                    continue
            assert self._writer is not None
            batch = self._take_batch()
            try:
                self._writer.writelines(batch)
                self.ctx.stats.sent += len(batch)
                await self._writer.drain()
            except (ConnectionError, OSError) as exc:
                self.ctx.stats.dropped_connection_lost += len(batch)
                self._lost(self._writer, f"write failed: {exc}")
            if not self._queue:
                self._idle.set()

    def _take_batch(self) -> list[bytes]:
        batch: list[bytes] = []
        size = 0
        while self._queue and len(batch) < _BATCH_FRAMES and size < _BATCH_BYTES:
            frame = self._queue.popleft()
            batch.append(frame)
            size += len(frame)
        self._queued_bytes -= size
        return batch

    def _backoff(self) -> float:
        """Capped exponential backoff with equal jitter (half fixed, half random)."""
        opts = self.ctx.options
        ceiling = min(opts.backoff_max, opts.backoff_initial * 2 ** min(self._failures - 1, 30))
        return ceiling / 2 + self.ctx.jitter.uniform(0, ceiling / 2)

    async def _connect(self) -> bool:
        ctx = self.ctx
        address = ctx.directory.get(self.peer)
        writer: asyncio.StreamWriter | None = None
        try:
            if address is None:
                raise ConnectionError("no longer in the peer directory")
            async with asyncio.timeout(ctx.options.connect_timeout):
                reader, writer = await asyncio.open_connection(address.host, address.port)
                writer.write(wire.MESSAGE_PREAMBLE)
                if ctx.client_tls is not None:
                    await writer.start_tls(ctx.client_tls)
                    shown = peer_identities(writer.get_extra_info("peercert"))
                    if ctx.check_identity and self.peer not in shown:
                        raise ConnectionError(
                            f"server's certificate is for {', '.join(sorted(shown)) or 'nobody'}"
                        )
                hello = wire.Hello(version=wire.PROTOCOL_VERSION, node_id=ctx.node_id)
                writer.write(encode_frame(wire.encode(hello)))
        except (OSError, TimeoutError) as exc:
            if writer is not None:
                writer.transport.abort()
            self._failures += 1
            ctx.stats.connect_failures += 1
            where = f"{address.host}:{address.port}" if address else "?"
            level = logging.INFO if self._failures == 1 else logging.DEBUG
            log.log(
                level,
                "[%s] cannot connect to %s at %s (attempt %d): %s",
                ctx.node_id,
                self.peer,
                where,
                self._failures,
                exc or type(exc).__name__,
            )
            return False
        ctx.stats.connects += 1
        if self._had_connection or self._failures:
            ctx.stats.reconnects += 1
            log.info("[%s] reconnected to %s", ctx.node_id, self.peer)
        self._had_connection = True
        self._connected_at = ctx.loop.time()
        self._writer = writer
        self._watcher = ctx.loop.create_task(
            self._watch(reader, writer), name=f"{ctx.node_id}->{self.peer} watcher"
        )
        return True

    async def _watch(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Notice when the peer goes away (the peer never writes on this connection)."""
        reason = "closed by peer"
        try:
            while await reader.read(65536):
                pass
        except (OSError, ssl.SSLError) as exc:
            reason = str(exc) or type(exc).__name__
        self._lost(writer, reason)

    def _lost(self, writer: asyncio.StreamWriter, reason: str) -> None:
        if self._writer is not writer:
            return
        self._writer = None
        writer.transport.abort()
        lived = self.ctx.loop.time() - self._connected_at
        # A connection that dies at once (e.g. the peer refuses our hello) must
        # not turn reconnection into a busy loop.
        self._failures = 0 if lived >= self.ctx.options.backoff_max else self._failures + 1
        log.info("[%s] connection to %s lost: %s", self.ctx.node_id, self.peer, reason)
        self._wakeup.set()

    def abort(self) -> None:
        """Stop at once: drop the queue, reset the connection (a crash)."""
        for task in (self._task, self._watcher):
            if task is not None:
                task.cancel()
        if self._writer is not None:
            self._writer.transport.abort()
            self._writer = None
        self._queue.clear()
        self._queued_bytes = 0

    async def close(self, timeout: float) -> None:
        """Stop after flushing what is queued, for at most ``timeout`` seconds."""
        if self._queue and self.connected and self._task is not None and not self._task.done():
            try:  # a peer that is down gets no grace: its queue would never drain
                async with asyncio.timeout(timeout):
                    await self._idle.wait()
            except TimeoutError:
                pass
        writer = self._writer
        if self._task is not None:
            self._task.cancel()
        if self._watcher is not None:
            self._watcher.cancel()
        self._writer = None
        if writer is not None:
            writer.close()
            try:
                async with asyncio.timeout(timeout):
                    await writer.wait_closed()
            except (OSError, TimeoutError):
                writer.transport.abort()
        self._queue.clear()
        self._queued_bytes = 0


class InboundMessageProtocol(asyncio.Protocol):
    """An accepted message connection, after its preamble (and TLS)."""

    def __init__(
        self,
        ctx: NodeContext,
        dispatch: Callable[[str, Message], None],
        on_closed: Callable[[InboundMessageProtocol], None],
        where: str,
    ) -> None:
        self.ctx = ctx
        self._dispatch = dispatch
        self._on_closed = on_closed
        self.where = where
        self.transport: asyncio.Transport | None = None
        self.session: InboundSession | None = None
        self._hello_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport
        identities = peer_identities(transport.get_extra_info("peercert"))
        self.session = InboundSession(
            lambda node_id: self.ctx.authenticate(node_id, identities),
            codec.decode,
            max_frame_size=self.ctx.options.max_frame_size,
        )
        self._hello_timer = self.ctx.loop.call_later(self.ctx.options.handshake_timeout, self._hello_timeout)

    def data_received(self, data: bytes) -> None:
        assert self.session is not None
        try:
            for event in self.session.data_received(data):
                self._handle(event)
        except Exception:  # a bug here must cost one connection, never the node
            log.exception("[%s] error handling data%s; closing", self.ctx.node_id, self._where())
            self.ctx.stats.rejected["internal_error"] += 1
            self.abort()

    def eof_received(self) -> bool:
        assert self.session is not None
        for event in self.session.eof_received():
            self._handle(event)
        return False  # let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        if self._hello_timer is not None:
            self._hello_timer.cancel()
        self._on_closed(self)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _handle(self, event: Event) -> None:
        assert self.session is not None
        if isinstance(event, Deliver):
            assert self.session.peer is not None
            self._dispatch(self.session.peer, event.message)
        elif isinstance(event, Authenticated):
            if self._hello_timer is not None:
                self._hello_timer.cancel()
                self._hello_timer = None
        elif isinstance(event, Reject):
            self.ctx.reject(event.reason, event.detail, self._where())
        elif isinstance(event, Close):
            self.ctx.reject(event.reason, f"{event.detail}; closing the connection", self._where())
            self.abort()

    def _where(self) -> str:
        peer = self.session.peer if self.session is not None else None
        return f" from {peer} ({self.where})" if peer else f" from {self.where}"

    def _hello_timeout(self) -> None:
        self._hello_timer = None
        if self.session is not None and self.session.peer is None and not self.session.closed:
            self.session.closed = True
            self.ctx.reject(
                "handshake_timeout",
                f"no hello within {self.ctx.options.handshake_timeout:g}s; closing",
                self._where(),
            )
            self.abort()
