"""Record streams (``rt.open_stream`` / ``rt.on_stream``): one TCP connection per stream.

A stream carries *records*, each a typed header (a
:class:`~novacron.runtime.Message`) plus raw data, in order, to the peer's
handler for that header type. On the wire (``NCs1`` connections, see
:mod:`.wire`) a record is a length-prefixed :class:`~.wire.RecordEnvelope`
frame (the header encoded by :data:`~novacron.runtime.codec`, the data
length, a CRC32C over header and data) followed by the data itself.

Where the work happens, and why:

* **Setting up** a connection (TCP connect, preamble, TLS handshake,
  :class:`~.wire.StreamHello`; on the other end TLS accept, hello) reuses the
  blocking helpers that bulk transfers use (:func:`.streams.dial`,
  :func:`.streams.accept_stream`) in a worker thread: once per stream, and a
  TLS handshake's crypto then runs off the event loop.
* **Moving records** happens on the event loop, on the now non-blocking
  socket (:class:`.loopsocket.LoopSocket`): ``sendmsg`` of the envelope and
  the caller's memoryview in one system call on the sending side,
  ``recv_into`` a reusable per-stream buffer on the receiving side. A
  thread hop per record measured two to four times slower on loopback (see
  :mod:`.loopsocket`), and the receiving handler must run on the loop anyway.
  The cost is that one node's records are moved by one core; the kernel's
  copy dominates that work, which is also what ``iperf3`` does per process.

Failure rules: a stream that breaks (reset, peer closed or crashed, no
progress for ``RuntimeOptions.stream_timeout`` mid-record) fails for good;
its in-flight and later sends raise :class:`~novacron.runtime.TransferError`.
A receiver that gets a bad record (bad frame, oversize, checksum mismatch,
unknown header type) counts it in ``NetworkStats.rejected``, logs why and
closes that one connection; a record whose header type has no handler is
dropped (and counted) and the stream goes on.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import ssl
from collections.abc import Callable
from typing import Any

from novacron.runtime import Message, Payload, TransferError, WireError, codec

from ..directory import PeerAddress
from ..tls import peer_identities
from . import streams as st
from . import wire
from .context import NodeContext
from .framing import LENGTH_PREFIX, PREFIX_SIZE, FrameError
from .loopsocket import IncompleteRead, LoopSocket
from .transfers import allocate_buffer, payload_view

log = logging.getLogger(__name__)

#: ``deliver(src, header, data)`` hands a record to its handler; ``False`` if
#: the node is no longer running.
Deliver = Callable[[str, Message, memoryview], bool]
#: Where a record's data may be received directly (zero-copy), or None for the stream's own buffer.
Place = Callable[[str, Message, int], "memoryview | None"]

#: A receive buffer is kept between records up to this size; bigger ones
#: (rare huge records) are dropped after use instead of pinning memory.
_KEEP_BUFFER = 8 * 1024 * 1024


def _set_nodelay(sock: socket.socket) -> None:
    """Records end in a partial segment; Nagle would hold it for an ACK."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass


class RecordStream:
    """The sending end of one stream (implements :class:`novacron.runtime.Stream`)."""

    def __init__(
        self,
        plane: StreamPlane,
        stream_id: int,
        peer: str,
        sock: socket.socket,
        congestion: str,
    ) -> None:
        self._plane = plane
        self._ctx = plane.ctx
        self.id = stream_id
        self._peer = peer
        self._congestion = congestion
        self._io = LoopSocket(plane.ctx.loop, sock, on_unsolicited=self._peer_spoke)
        self._checksum = st.CHECKSUMS[st.PREFERRED_CHECKSUM]
        self._sending = False
        self._closed = False
        #: why the stream failed, once it has
        self.failure: str | None = None

    @property
    def peer(self) -> str:
        return self._peer

    @property
    def congestion(self) -> str:
        return self._congestion

    @property
    def closed(self) -> bool:
        """True once closed here or failed: either way the stream takes no more records."""
        return self._closed

    async def send(self, header: Message, data: Payload = b"") -> None:
        """Write one record; returns once it is all in the kernel's socket buffer."""
        if self._closed:
            raise self._unusable()
        if self._sending:
            raise RuntimeError("one send at a time per stream: await the previous send first")
        envelope, view = self._encode(header, data)
        self._sending = True
        before = self._io.bytes_written
        try:
            await self._io.send_all([envelope, view], self._ctx.options.stream_timeout)
        except TimeoutError:
            self._fail(f"no progress for {self._ctx.options.stream_timeout:g}s")
            raise self._unusable() from None
        except OSError as exc:  # (a local close() or crash wakes the send this way too)
            self._fail(f"connection lost: {exc or type(exc).__name__}")
            raise self._unusable() from None
        except asyncio.CancelledError:
            if self._io.bytes_written != before:  # half a record on the wire: the stream is unusable
                self._fail("a send was cancelled mid-record")
            raise
        finally:
            self._sending = False
        stats = self._ctx.stats
        stats.records_sent += 1
        stats.record_bytes_sent += view.nbytes

    def _encode(self, header: Message, data: Payload) -> tuple[memoryview, memoryview]:
        """The envelope frame (prefix included) and the data, checked against the limits."""
        view = payload_view(data)
        opts = self._ctx.options
        if view.nbytes > opts.max_record_bytes:
            raise ValueError(
                f"record data of {view.nbytes} bytes exceeds max_record_bytes ({opts.max_record_bytes})"
            )
        encoded = codec.encode(header)
        checksum = self._checksum(view, self._checksum(encoded, 0))
        body = wire.encode(wire.RecordEnvelope(header=encoded, length=view.nbytes, checksum=checksum))
        if len(body) > opts.max_frame_size:
            raise ValueError(
                f"{type(header).__name__} encodes to {len(encoded)} bytes, above the maximum "
                f"frame size of {opts.max_frame_size}; put bulk bytes in the record's data"
            )
        return memoryview(LENGTH_PREFIX.pack(len(body)) + body), view

    def _unusable(self) -> TransferError:
        if self.failure is not None:
            return TransferError(f"{self._name()} failed: {self.failure}")
        return TransferError(f"{self._name()} is closed")

    def close(self) -> None:
        """Close the connection; records already sent are still delivered.

        (Closing a socket with unread bytes makes the kernel reset the
        connection and drop what it has not transmitted yet, so anything the
        peer's TLS layer sent is read first.)
        """
        if not self._closed:
            self._closed = True
            self._peer_spoke()
            self._io.close(f"{self._name()} was closed")
            self._plane._forget(self)

    def _fail(self, reason: str, *, count: bool = True) -> None:
        if self._closed:  # closed here, or failed already: the first reason stands
            return
        self.failure = reason
        if count:
            self._ctx.stats.streams_failed += 1
            log.info("[%s] %s failed: %s", self._ctx.node_id, self._name(), reason)
        self._closed = True
        self._io.close(reason)
        self._plane._forget(self)

    def _peer_spoke(self) -> None:
        """The receiver never writes: readable means it hung up (or a TLS detail)."""
        try:
            data = self._io.sock.recv(4096)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return  # nothing, or e.g. a TLS session ticket, consumed by OpenSSL
        except OSError as exc:
            self._fail(f"connection lost: {exc or type(exc).__name__}")
            return
        self._fail(f"{self._peer} closed the stream" if not data else "the receiver wrote on the stream")

    def _name(self) -> str:
        return f"stream {self._ctx.node_id}->{self._peer} #{self.id}"

    def __repr__(self) -> str:
        state = "failed" if self.failure else "closed" if self._closed else "open"
        return f"<RecordStream #{self.id} {self._ctx.node_id}->{self._peer} {self._congestion} {state}>"


class _Rejected(Exception):
    """A record the receiver refuses; the connection is closed."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class InboundStream:
    """The receiving end of one stream: reads records in order and delivers them."""

    def __init__(
        self,
        ctx: NodeContext,
        sock: socket.socket,
        src: str,
        checksum: str,
        deliver: Deliver,
        where: str,
        place: Place | None = None,
        delivered: Callable[[InboundStream], None] | None = None,
    ) -> None:
        self.ctx = ctx
        self.src = src
        self.where = where
        self._place = place
        self._delivered = delivered
        self._io = LoopSocket(ctx.loop, sock)
        self._checksum = st.CHECKSUMS[checksum]
        self._deliver = deliver
        self._prefix = bytearray(PREFIX_SIZE)
        self._buffer: bytearray | Any = bytearray(0)
        self._aborted = False

    async def run(self) -> None:
        """Serve records until the sender closes the stream, a record is refused or we abort."""
        try:
            while await self._receive_one():
                pass
        except _Rejected as exc:
            self.ctx.stats.streams_failed += 1
            self.ctx.reject(exc.reason, f"{exc}; closing the stream", f" from {self.src} ({self.where})")
        except TimeoutError as exc:
            self._broken(f"stalled mid-record: {exc}")
        except IncompleteRead as exc:
            self.ctx.stats.rejected["truncated"] += 1
            self._broken(f"truncated record: {exc}")
        except OSError as exc:
            if not self._aborted:
                self._broken(f"connection lost: {exc or type(exc).__name__}")
        finally:
            self._io.close()

    async def _receive_one(self) -> bool:
        """One record, or ``False`` when the sender closed the stream between records."""
        io = self._io
        opts = self.ctx.options
        stall = opts.stream_timeout
        if not await io.read_exactly(memoryview(self._prefix), stall, idle_first=True):
            return False
        (size,) = LENGTH_PREFIX.unpack(self._prefix)
        if size > opts.max_frame_size:
            raise _Rejected("oversize", f"record envelope of {size} bytes (limit {opts.max_frame_size})")
        body = bytearray(size)
        await io.read_exactly(memoryview(body), stall)
        try:
            envelope = wire.decode(wire.RecordEnvelope, body)
        except WireError as exc:
            raise _Rejected("malformed", str(exc)) from None
        if envelope.length > opts.max_record_bytes:
            raise _Rejected(
                "oversize", f"record of {envelope.length} bytes (max_record_bytes {opts.max_record_bytes})"
            )
        try:
            header = codec.decode(envelope.header)
        except WireError as exc:
            raise _Rejected("malformed", f"record header: {exc}") from None
        except Exception as exc:  # the codec lets a few decoding errors through
            raise _Rejected("malformed", f"record header: {exc!r}") from None
        # Zero-copy receive when the protocol says where this record's data belongs.
        placed = self._place(self.src, header, envelope.length) if self._place is not None else None
        if placed is not None and (placed.readonly or placed.nbytes != envelope.length):
            placed = None
        if placed is not None:
            data = placed
        else:
            data = memoryview(self._buffer_for(envelope.length))[: envelope.length]
        try:
            await io.read_exactly(data, stall)
            computed = self._checksum(data, self._checksum(envelope.header, 0))
            if computed != envelope.checksum:
                raise _Rejected(
                    "checksum_mismatch",
                    f"record checksum {computed:#x}, sender announced {envelope.checksum:#x}",
                )
            self.ctx.stats.record_bytes_received += envelope.length
            keep_going = self._hand_over(header, data)
            if self._delivered is not None:
                self._delivered(self)
            return keep_going and not self._aborted
        finally:
            if placed is None:
                data.release()
                if len(self._buffer) > _KEEP_BUFFER:
                    self._buffer = bytearray(0)

    def _hand_over(self, header: Message, data: memoryview) -> bool:
        readonly = data.toreadonly()
        try:
            return self._deliver(self.src, header, readonly)
        finally:
            try:
                readonly.release()  # using it after the handler returned is an error, not stale data
            except BufferError:
                # The handler kept an export (e.g. numpy.frombuffer): leave it
                # this buffer and receive the next record into a new one.
                self._buffer = bytearray(0)

    def _buffer_for(self, length: int) -> bytearray | Any:
        if len(self._buffer) < length:
            self._buffer = allocate_buffer(max(length, min(2 * len(self._buffer), _KEEP_BUFFER)))
        return self._buffer

    def _broken(self, reason: str) -> None:
        self.ctx.stats.streams_failed += 1
        log.info("[%s] stream from %s (%s) failed: %s", self.ctx.node_id, self.src, self.where, reason)

    def abort(self) -> None:
        """Close the connection now (a crash or a close of this node)."""
        self._aborted = True
        self._io.close("node shutting down")


class StreamPlane:
    """Every record stream of one node, both directions."""

    def __init__(self, ctx: NodeContext, deliver: Deliver, place: Place | None = None) -> None:
        self.ctx = ctx
        self._deliver = deliver
        self._place = place
        self._outbound: set[RecordStream] = set()
        self._inbound: set[InboundStream] = set()
        self._slots: set[st.SocketSlot] = set()  # connections being set up in a thread
        self._ids = itertools.count(1)
        self._stopped = False
        self._reset_plan: list[int] | None = None  # [countdown, every, resets left]

    @property
    def active(self) -> int:
        """Stream connections open or being set up, both directions."""
        return len(self._outbound) + len(self._inbound) + len(self._slots)

    def reset_inbound(self, count: int) -> int:
        """Fault injection: drop ``count`` inbound stream connections, as a reset would."""
        victims = list(self._inbound)[:count]
        for stream in victims:
            stream.abort()
        return len(victims)

    def reset_inbound_after(self, records: int, count: int) -> None:
        """Fault injection: reset the inbound stream that delivers the ``records``-th record
        from now, then again every ``records`` records, ``count`` times in all. Unlike
        :meth:`reset_inbound` it strikes a stream that is busy, at a point fixed in the data."""
        if records < 1 or count < 1:
            raise ValueError(f"records and count must be >= 1, got {records} and {count}")
        self._reset_plan = [records, records, count]

    def _record_delivered(self, stream: InboundStream) -> None:
        plan = self._reset_plan
        if plan is None:
            return
        plan[0] -= 1
        if plan[0] > 0:
            return
        stream.abort()
        log.info("[%s] fault: reset the stream from %s (%s)", self.ctx.node_id, stream.src, stream.where)
        plan[0], plan[2] = plan[1], plan[2] - 1
        if plan[2] == 0:
            self._reset_plan = None

    # --- opening ------------------------------------------------------------------------------------

    async def open(self, dst: str, congestion: str | None) -> RecordStream:
        if congestion is not None and not isinstance(congestion, str):
            raise TypeError(f"congestion must be a str or None, not {type(congestion).__name__}")
        address = self.ctx.directory.get(dst)
        if address is None:
            self.ctx.stats.streams_failed += 1
            raise TransferError(f"cannot open a stream to {dst!r}: not a known peer")
        algorithm, fallback = st.resolve_congestion(congestion)
        if fallback:
            log.info("[%s] stream to %s: %s", self.ctx.node_id, dst, fallback)
        slot = st.SocketSlot()
        self._slots.add(slot)
        connecting = st.run_in_thread(self._dial, dst, address, algorithm, slot)
        try:
            sock, used = await asyncio.shield(connecting)
        except asyncio.CancelledError:
            slot.abort()  # the thread returns promptly; close what it may still hand back
            connecting.add_done_callback(_close_result)
            raise
        except st.StreamAborted:
            self.ctx.stats.streams_failed += 1
            raise TransferError(f"stream to {dst}: aborted, {self.ctx.node_id} is shutting down") from None
        except TransferError:
            self.ctx.stats.streams_failed += 1
            raise
        finally:
            self._slots.discard(slot)
        if self._stopped:
            sock.close()
            raise TransferError(f"stream to {dst}: aborted, {self.ctx.node_id} is shutting down")
        stream = RecordStream(self, next(self._ids), dst, sock, used)
        self._outbound.add(stream)
        self.ctx.stats.streams_opened += 1
        return stream

    def _dial(
        self, dst: str, address: PeerAddress, algorithm: str | None, slot: st.SocketSlot
    ) -> tuple[socket.socket, str]:
        """In a worker thread: connect, TLS, congestion control, hello."""
        ctx = self.ctx
        sock, used = st.dial(
            slot,
            dst,
            address.host,
            address.port,
            preamble=wire.STREAM_PREAMBLE,
            tls=ctx.client_tls,
            check_identity=ctx.check_identity,
            timeout=ctx.options.connect_timeout,
            congestion=algorithm,
        )
        try:
            _set_nodelay(sock)
            hello = wire.StreamHello(
                version=wire.PROTOCOL_VERSION, node_id=ctx.node_id, checksum=st.PREFERRED_CHECKSUM
            )
            st.write_frame(sock, wire.encode(hello))
        except OSError as exc:
            sock.close()
            raise TransferError(f"cannot open a stream to {dst}: {exc}") from None
        return sock, used

    def _forget(self, stream: RecordStream) -> None:
        self._outbound.discard(stream)

    # --- accepting ----------------------------------------------------------------------------------

    async def serve(self, conn: socket.socket, where: str) -> None:
        """Handle one accepted stream connection (its preamble already read) until it ends."""
        ctx = self.ctx
        slot = st.SocketSlot()
        self._slots.add(slot)
        accepting = st.run_in_thread(
            st.accept_stream,
            conn,
            slot,
            tls=ctx.server_tls,
            timeout=ctx.options.handshake_timeout,
            first=wire.StreamHello,
        )
        try:
            sock, hello, peercert = await asyncio.shield(accepting)
        except asyncio.CancelledError:
            slot.abort()
            accepting.add_done_callback(_close_result)
            raise
        except st.StreamAborted:
            return
        except TimeoutError:
            return ctx.reject("handshake_timeout", "no stream hello in time", f" from {where}")
        except ssl.SSLError as exc:
            return ctx.reject("tls_handshake", f"stream connection: {exc}", f" from {where}")
        except (WireError, FrameError, OSError) as exc:
            return ctx.reject("bad_stream", f"no valid stream hello: {exc}", f" from {where}")
        finally:
            self._slots.discard(slot)
        problem = self._check_hello(hello, peercert)
        if problem is not None or self._stopped:
            sock.close()
            if problem is not None:
                ctx.reject(problem[0], problem[1], f" from {where}")
            return
        _set_nodelay(sock)
        src, checksum = hello.node_id, hello.checksum
        inbound = InboundStream(
            ctx, sock, src, checksum, self._deliver, where, self._place, self._record_delivered
        )
        self._inbound.add(inbound)
        ctx.stats.streams_accepted += 1
        try:
            await inbound.run()
        finally:
            self._inbound.discard(inbound)

    def _check_hello(
        self, hello: wire.StreamHello, peercert: dict[str, Any] | None
    ) -> tuple[str, str] | None:
        """``(reason, detail)`` if the stream's hello is unacceptable."""
        if hello.version != wire.PROTOCOL_VERSION:
            return "hello_rejected", (
                f"stream protocol version {hello.version}, this node speaks {wire.PROTOCOL_VERSION}"
            )
        refusal = self.ctx.authenticate(hello.node_id, peer_identities(peercert))
        if refusal is not None:
            return "hello_rejected", f"stream from {hello.node_id!r}: {refusal}"
        if hello.checksum not in st.CHECKSUMS:
            return "bad_stream", (
                f"checksum {hello.checksum!r} is not available here (have {', '.join(sorted(st.CHECKSUMS))})"
            )
        return None

    # --- stopping -----------------------------------------------------------------------------------

    def stop(self, reason: str) -> None:
        """Close every stream connection, both directions, and refuse new ones.

        In-flight sends fail with ``reason``; connections still being set up
        in a thread are aborted (their sockets shut down, so the thread
        returns at once and closes them).
        """
        self._stopped = True
        for slot in list(self._slots):
            slot.abort()
        for stream in list(self._outbound):
            stream._fail(reason, count=False)
        for inbound in list(self._inbound):
            inbound.abort()


def _close_result(future: asyncio.Future[Any]) -> None:
    """Close the socket a set-up thread returned after nobody was waiting any more."""
    if future.cancelled() or future.exception() is not None:
        return
    future.result()[0].close()
