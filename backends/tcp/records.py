"""Record streams (``rt.open_stream`` / ``rt.on_stream``): one TCP connection per stream.

A stream carries *records*, each a typed header (a
:class:`~novacron.runtime.Message`) plus raw data, in order, to the peer's
handler for that header type. On the wire (``NCs1`` connections, see
:mod:`.wire`) a record is a length-prefixed :class:`~.wire.RecordEnvelope`
frame (the header encoded by :data:`~novacron.runtime.codec` and the data
length) followed by the data itself and a :data:`~.wire.RECORD_TRAILER` with
the checksum over header and data (XXH3 in 1 MiB blocks by default, see
:data:`.streams.PREFERRED_CHECKSUM`).

Where the work happens, and why:

* **Setting up** a connection (TCP connect, preamble, TLS handshake,
  :class:`~.wire.StreamHello`; on the other end TLS accept, hello) reuses the
  blocking helpers that bulk transfers use (:func:`.streams.dial`,
  :func:`.streams.accept_stream`) in a worker thread: once per stream, and a
  TLS handshake's crypto then runs off the event loop.
* **Moving records** happens on the event loop, on the now non-blocking
  socket (:class:`.loopsocket.LoopSocket`): ``sendmsg`` of memoryviews of
  the caller's data, a :data:`CHECKSUM_PIECE` at a time, each checksummed
  just before it goes, on the sending side; ``recv_into`` a reusable
  per-stream buffer (or where the protocol places the data), checksummed
  piece by piece as it arrives, on the receiving side. A thread hop per 512 KiB record measured
  two to four times slower on loopback (see :mod:`.loopsocket`), and the
  receiving handler must run on the loop anyway. The exception: a record of
  :data:`BIG_RECORD` or more while other streams of the node are mid-record
  too is moved (and checksummed) by a worker thread on plain TCP, or only
  checksummed by one on the receiving side with TLS, so that a node's busy streams are not all
  copied by one core (AMST over 8 streams: ~0.75x -> ~1.0x of ``rt.transfer``).

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
from collections.abc import Callable, Iterator
from typing import Any

from novacron.runtime import Message, Payload, TransferError, WireError, WriteLog, codec

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

#: A record at least this big, on a stream whose node has other streams
#: mid-record the same way, is moved off the event loop: on plain TCP a worker
#: thread sends or receives it, checksum included (:meth:`LoopSocket.in_thread`);
#: with TLS (an SSL socket stays with one thread) only a receiver's checksum is
#: computed in a worker. The loop meanwhile moves the other streams' bytes, so a node
#: with many busy streams copies on more than one core (with AMST's 4 MiB chunks,
#: a thread hop per record is cheap). A lone stream stays on the loop: there is
#: nothing to overlap with, and a hop per record only adds latency (2-4x slower
#: at 512 KiB records, see :mod:`.loopsocket`).
#:
#: **Off by default** (``None``). Measured both ways, AMST 1 GiB over 8 streams against iperf3 -P 8
#: on loopback: on a machine starved by other work (load 7-11 on 2 vCPUs) moving records off the
#: loop won (about 1.1x iperf3 against about 0.6x); on the same machine idle it lost (0.42x with,
#: 0.63x without, 3 interleaved runs each, 2026-11-28): the thread hop and GIL hand-offs cost more
#: than a second core gains when the loop is not starved. Set a size (e.g. 1 MiB) to turn it on.
BIG_RECORD: int | None = None

#: Both ends checksum a record's data piece by piece, while each piece is in the
#: core's cache: the sender just before the kernel copies it out, the receiver
#: just after the kernel copied it in (a 4 MiB record checksummed whole no
#: longer fits in a 2 MiB L2). One block of the checksums' (see :data:`.streams.CHECKSUM_BLOCK`).
CHECKSUM_PIECE = st.CHECKSUM_BLOCK

#: A receive buffer is kept between records up to this size; bigger ones
#: (rare huge records) are dropped after use instead of pinning memory.
_KEEP_BUFFER = 8 * 1024 * 1024


def _set_nodelay(sock: socket.socket) -> None:
    """Records end in a partial segment; Nagle would hold it for an ACK."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass


def _read_blocking(
    io: LoopSocket, data: memoryview, trailer: memoryview, stall: float, checksum: st.Checksum, seed: int
) -> int:
    """In a worker thread (:meth:`LoopSocket.in_thread`): a record's data and trailer, and the
    checksum of the data computed piece by piece (see :data:`CHECKSUM_PIECE`)."""
    crc = seed
    for pos in range(0, data.nbytes, CHECKSUM_PIECE):
        piece = data[pos : pos + CHECKSUM_PIECE]
        io.blocking_read(piece, stall)
        crc = checksum(piece, crc)
    io.blocking_read(trailer, stall)
    return crc


class Activity:
    """How many of a node's streams are mid-record, each way (see :data:`BIG_RECORD`)."""

    __slots__ = ("sending", "receiving")

    def __init__(self) -> None:
        self.sending = 0
        self.receiving = 0


#: How an attempt at a record sends its data (see :meth:`RecordStream.send`): as it is; as it
#: is, checked again after the send; or piece by piece from a copy.
_STABLE, _CHECKED, _COPIED = "stable", "checked", "copied"


class _Attempt:
    """One attempt at sending a record: the buffers of its successive sends (envelope, data,
    trailer), and whether it went void.

    Each :data:`CHECKSUM_PIECE` of the data is checksummed just before it is sent, so the
    kernel's copy finds it in this core's cache; a record whose checksum led (read it all, then
    send it all) was read from memory twice (see :mod:`.wire`). Every yield holds at most one
    piece, and the caller sends it all before asking for the next: so a piece can be checked
    right after its send, and one copy buffer serves a whole record."""

    def __init__(
        self,
        stream: RecordStream,
        envelope: memoryview,
        view: memoryview,
        seed: int,
        mode: str,
        log: WriteLog | None = None,
    ):
        self.stream = stream
        self.envelope = envelope
        self.view = view
        self.seed = seed
        self.mode = mode
        self.log = log  # (mode _CHECKED) the writer's log: a piece it says nobody wrote is not re-read
        #: a piece changed between its checksum and the end of its send (mode _CHECKED)
        self.void = False

    def sends(self) -> Iterator[list[memoryview]]:
        checksum, view, mode, log = self.stream.checksum, self.view, self.mode, self.log
        crc = self.seed
        buffers = [self.envelope]
        for pos in range(0, view.nbytes, CHECKSUM_PIECE):
            piece = view[pos : pos + CHECKSUM_PIECE]
            end = pos + piece.nbytes
            if mode == _COPIED:
                piece = self.stream.copy_piece(piece)
            seen = log.version(pos, end) if log is not None and mode == _CHECKED else None
            start, crc = crc, checksum(piece, crc)
            buffers.append(piece)
            if mode == _CHECKED or end < view.nbytes:
                yield buffers
                buffers = []
                if mode == _CHECKED and not self.void:
                    unwritten = seen is not None and log.version(pos, end) == seen  # type: ignore[union-attr]
                    if not unwritten and checksum(piece, start) != crc:
                        self.void = True
        buffers.append(memoryview(wire.RECORD_TRAILER.pack(crc, wire.RECORD_VOID if self.void else 0)))
        yield buffers


def _send_blocking(io: LoopSocket, attempt: _Attempt, stall: float) -> None:
    """In a worker thread (:meth:`LoopSocket.in_thread`): one attempt at a record."""
    for buffers in attempt.sends():
        io.blocking_send(buffers, stall)


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
        #: the checksum function of this stream's records
        self.checksum = st.CHECKSUMS[st.PREFERRED_CHECKSUM]
        self._sending = False
        self._closed = False
        self._bounce: memoryview | None = None  # a piece of volatile data, copied (see send)
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

    async def send(self, header: Message, data: Payload = b"", *, volatile: bool | WriteLog = False) -> None:
        """Write one record; returns once it is all in the kernel's socket buffer.

        ``volatile``: the caller may go on writing ``data`` meanwhile (a running guest's
        memory), and the record's checksum must still cover exactly the bytes that went out.
        Each piece is then sent straight from ``data`` and checksummed again once the kernel
        has copied it. If any piece changed, the trailer voids the record (the receiver
        discards it) and the record goes again, each piece copied into a buffer of this
        stream's and sent from there, which nothing else writes. Why not copy from the start:
        the second checksum finds the piece mostly in cache and cost about 40% of the first in
        profiles of live migration, while a copy reads the caller's memory from DRAM like the
        first checksum does (copy plus checksum 0.11 s/GiB, checksum alone 0.07), and a
        snapshot of the whole payload before the send 0.22. With a
        :class:`~novacron.runtime.WriteLog` for ``volatile``, a piece the log says nobody
        wrote during its send is not checksummed again."""
        if self._closed:
            raise self._unusable()
        if self._sending:
            raise RuntimeError("one send at a time per stream: await the previous send first")
        view, envelope, seed = self._check(header, data)
        self._sending = True
        activity = self._plane.activity
        activity.sending += 1
        before = self._io.bytes_written
        threaded = False
        stall = self._ctx.options.stream_timeout
        stats = self._ctx.stats
        try:
            off_loop = BIG_RECORD is not None and view.nbytes >= BIG_RECORD and activity.sending > 1
            log = None if isinstance(volatile, bool) else volatile
            for mode in (_CHECKED, _COPIED) if volatile else (_STABLE,):
                attempt = _Attempt(self, envelope, view, seed, mode, log)
                if off_loop and not self._io.tls:
                    threaded = True
                    await self._io.in_thread(_send_blocking, attempt, stall)
                else:
                    for buffers in attempt.sends():
                        await self._io.send_all(buffers, stall)
                if not attempt.void:
                    break
                stats.records_voided += 1
        except TimeoutError:
            self._fail(f"no progress for {self._ctx.options.stream_timeout:g}s")
            raise self._unusable() from None
        except OSError as exc:  # (a local close() or crash wakes the send this way too)
            self._fail(f"connection lost: {exc or type(exc).__name__}")
            raise self._unusable() from None
        except asyncio.CancelledError:
            if threaded or self._io.bytes_written != before:  # (part of) a record may be on the wire
                self._fail("a send was cancelled mid-record")
            raise
        finally:
            self._sending = False
            activity.sending -= 1
        stats.records_sent += 1
        stats.record_bytes_sent += view.nbytes

    def copy_piece(self, piece: memoryview) -> memoryview:
        """``piece`` copied into this stream's own buffer (see :meth:`send`)."""
        if self._bounce is None:
            self._bounce = memoryview(bytearray(CHECKSUM_PIECE))
        copy = self._bounce[: piece.nbytes]
        copy[:] = piece
        return copy

    def _check(self, header: Message, data: Payload) -> tuple[memoryview, memoryview, int]:
        """The data as a flat view, the envelope frame (length prefix included) and the
        checksum of the encoded header (where the record's checksum starts), checked against
        the limits before any byte is sent."""
        view = payload_view(data)
        opts = self._ctx.options
        if view.nbytes > opts.max_record_bytes:
            raise ValueError(
                f"record data of {view.nbytes} bytes exceeds max_record_bytes ({opts.max_record_bytes})"
            )
        encoded = codec.encode(header)
        body = wire.encode(wire.RecordEnvelope(header=encoded, length=view.nbytes))
        if len(body) > opts.max_frame_size:
            raise self._too_big(header, encoded)
        return view, memoryview(LENGTH_PREFIX.pack(len(body)) + body), self.checksum(encoded, 0)

    def _too_big(self, header: Message, encoded: bytes) -> ValueError:
        return ValueError(
            f"{type(header).__name__} encodes to {len(encoded)} bytes, above the maximum "
            f"frame size of {self._ctx.options.max_frame_size}; put bulk bytes in the record's data"
        )

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
        activity: Activity | None = None,
    ) -> None:
        self.ctx = ctx
        self._activity = activity if activity is not None else Activity()
        self.src = src
        self.where = where
        self._place = place
        self._delivered = delivered
        self._io = LoopSocket(ctx.loop, sock)
        self._checksum = st.CHECKSUMS[checksum]
        self._deliver = deliver
        self._prefix = bytearray(PREFIX_SIZE)
        self._trailer = bytearray(wire.RECORD_TRAILER.size)
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
            if not self._aborted:  # (an abort shuts down a socket a worker reads)
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
        self._activity.receiving += 1
        try:
            return await self._receive_rest(size)
        finally:
            self._activity.receiving -= 1

    async def _receive_rest(self, size: int) -> bool:
        """The rest of a record whose envelope is ``size`` bytes."""
        io = self._io
        opts = self.ctx.options
        stall = opts.stream_timeout
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
            seed = self._checksum(envelope.header, 0)
            off_loop = (
                BIG_RECORD is not None and envelope.length >= BIG_RECORD and self._activity.receiving > 1
            )
            # (views of their own: ``data`` may be released while a thread still reads)
            trailer = memoryview(self._trailer)
            if off_loop and not io.tls:
                computed = await io.in_thread(
                    _read_blocking, memoryview(data), trailer, stall, self._checksum, seed
                )
            elif off_loop:
                await io.read_exactly(data, stall)
                computed = await st.run_in_thread(self._checksum, memoryview(data), seed)
                await io.read_exactly(trailer, stall)
            else:
                computed = seed
                for pos in range(0, data.nbytes, CHECKSUM_PIECE):
                    piece = data[pos : pos + CHECKSUM_PIECE]
                    await io.read_exactly(piece, stall)
                    computed = self._checksum(piece, computed)
                await io.read_exactly(trailer, stall)
            announced, flags = wire.RECORD_TRAILER.unpack(self._trailer)
            if flags & ~wire.RECORD_VOID:
                raise _Rejected("malformed", f"unknown record trailer flags {flags:#04x}")
            if flags & wire.RECORD_VOID:  # its data changed as it was sent: it comes again
                self.ctx.stats.records_voided += 1
                return not self._aborted
            if computed != announced:
                raise _Rejected(
                    "checksum_mismatch", f"record checksum {computed:#x}, sender announced {announced:#x}"
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
        self.activity = Activity()
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
            ctx, sock, src, checksum, self._deliver, where, self._place, self._record_delivered, self.activity
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
