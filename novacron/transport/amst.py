"""AMST, adaptive multi-stream transport: one payload over N streams, intact and in order.

The sender cuts the payload into chunks (512 KiB by default, up to 4 MiB
for large payloads), opens (or reuses) N streams to the peer and runs one
worker per stream that pulls chunks from a shared
:class:`~.scheduler.ChunkScheduler` (work stealing and an endgame, so a slow
stream never holds up the tail). The receiver writes each chunk at its
offset (the stream checksums it end to end), acknowledges it with a message,
and once every chunk is in, hands the payload to the handler registered for
the transfer's tag and answers :class:`~.messages.TransferDone`.

Failures: a stream that fails has its unacknowledged chunks re-sent on the
others (and is replaced when none is left); acknowledgements are messages
and so may be lost, which only matters at the end, where a sender with
nothing left to send asks (:class:`~.messages.TransferQuery`) until the
receiver answers with the chunks it still misses or with
:class:`~.messages.TransferDone`.

Everything here is protocol code against :mod:`novacron.runtime`: it runs
unchanged in the simulator and on the asyncio backend.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from novacron.runtime import (
    Payload,
    Runtime,
    Stream,
    TransferError,
    VirtualPayload,
    WriteLog,
    node_scoped_id,
    payload_size,
)
from novacron.runtime.buffers import BufferPool

from . import checksum
from .messages import (
    Chunk,
    ChunkAck,
    RoundTripEcho,
    RoundTripProbe,
    TransferDone,
    TransferQuery,
    TransferStatus,
)
from .round_trip import MinFilter
from .scheduler import ChunkScheduler

log = logging.getLogger(__name__)

#: ``handler(src, payload)`` for complete payloads of one tag (see ``AMST.on_receive``).
Handler = Callable[[str, Payload], "Awaitable[None] | None"]
#: ``place(src, size, meta)``: where a transfer of one tag should land (see ``AMST.on_placed``).
Place = Callable[[str, int, bytes], "memoryview | None"]
#: ``handler(src, meta, payload)`` for complete payloads of a placed tag.
PlacedHandler = Callable[[str, bytes, Payload], "Awaitable[None] | None"]


class TransferRefused(Exception):
    """Raised by an ``on_placed`` placement to refuse a transfer at its first chunk (the reason is
    the exception's message): the sender's :meth:`AMST.send` fails with it at once, instead of
    after sending the whole payload for the handler to refuse. A receive handler may raise it
    too, for a payload it will not take (the sender's send then fails with the reason)."""


DEFAULT_CHUNK = 512 * 1024
#: Large payloads use chunks up to this size (see ``AMST.chunk_for``).
MAX_CHUNK = 4 * 1024 * 1024
#: ... as long as every stream still gets at least this many chunks to steal from.
CHUNKS_PER_STREAM = 16
#: Every chunk carries the transfer's ``meta``: keep it small.
MAX_META = 256
#: Once every chunk is acknowledged, the TransferDone that the receiver sends with (or, after
#: its handler, soon after) the last acknowledgement is expected within this share of the
#: slowest delivery, at least ``DONE_GRACE`` seconds; past that the sender asks for it.
DONE_WAIT_SHARE = 0.25
DONE_GRACE = 0.005


@dataclass(frozen=True)
class AMSTReport:
    """What one AMST transfer did, for the caller and for the stream-count controller."""

    peer: str
    tag: str
    nbytes: int
    chunks: int
    streams: int
    congestion: str
    started: float
    finished: float
    streams_failed: int = 0
    duplicates: int = 0
    resent: int = 0
    bytes_per_stream: tuple[int, ...] = ()

    @property
    def duration(self) -> float:
        return self.finished - self.started

    @property
    def goodput_bps(self) -> float:
        return self.nbytes * 8 / self.duration if self.duration > 0 else 0.0


def _is_placed(data: Payload, buffer: Any) -> bool:
    """Whether the runtime received ``data`` directly into ``buffer`` (see ``_place_chunk``;
    ``buffer`` may itself be a view, of memory the receiver placed the transfer in)."""
    base = buffer.obj if isinstance(buffer, memoryview) else buffer
    return isinstance(data, memoryview) and data.obj is base


def plan_chunks(size: int, chunk_size: int) -> list[int]:
    """Chunk lengths covering ``size`` bytes (one empty chunk for an empty payload)."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if size == 0:
        return [0]
    full, rest = divmod(size, chunk_size)
    return [chunk_size] * full + ([rest] if rest else [])


@dataclass(frozen=True)
class _ChunkLog:
    """A transfer's write log as one chunk's record sees it (offsets from the chunk's start)."""

    log: WriteLog
    offset: int

    def version(self, start: int, stop: int) -> int | None:
        return self.log.version(self.offset + start, self.offset + stop)


@dataclass(eq=False)
class _Outgoing:
    id: str
    peer: str
    scheduler: ChunkScheduler
    offsets: list[int]
    payload: Payload
    tag: str
    meta: bytes
    volatile: bool | WriteLog
    done: Any  # future: TransferDone
    wake: Any  # future replaced on every event the workers may wait for
    streams_failed: int = 0
    resent: int = 0
    live_workers: int = 0
    last_progress: float = 0.0
    streams: dict[int, Stream] = field(default_factory=dict)  # each worker's current stream
    waiting: dict[int, Stream] = field(default_factory=dict)  # workers waiting for work, their stream
    handed_back: set[int] = field(default_factory=set)  # workers whose stream send() parked
    endgame_timer: Any = None  # wakes idle workers when an in-flight chunk turns late
    endgame_due: float = float("inf")
    done_timer: Any = None  # asks for the TransferDone if it does not follow the last ack
    progress: Callable[[int], None] | None = None  # told the bytes of each chunk acknowledged


@dataclass(eq=False)
class _Incoming:
    src: str
    id: str
    size: int
    chunks: int
    tag: str
    buffer: Any
    virtual: Any = None
    received: set[int] = field(default_factory=set)
    meta: bytes = b""
    placed: bool = False  # the buffer is the receiver's own (AMST.on_placed), not the pool's


class AMST:
    """The multi-stream transport of one node.

    ``chunk_size`` is the unit of scheduling. Large payloads are cut in larger
    chunks, up to ``max_chunk_size``, while every stream still gets at least
    :data:`CHUNKS_PER_STREAM` of them (:meth:`chunk_for`): each chunk costs
    the same fixed work on both ends (a header, a scheduling step, a record,
    an acknowledgement), which at 512 KiB was a tenth of each end's CPU in a
    loopback transfer; stealing and the endgame still have enough chunks to
    balance streams. ``max_chunk_size=chunk_size`` keeps one size for all.
    ``query_interval`` how long a
    sender with nothing left to send waits before asking the receiver what
    it misses; ``max_stream_failures`` bounds how many broken streams one
    transfer replaces before it gives up, and ``reconnect_timeout`` how long
    it keeps trying to open a replacement (a peer may be restarting).

    Streams outlive transfers: a transfer takes idle streams to the peer
    before it opens new ones, and hands back those still healthy when it
    ends, up to ``max_idle_streams`` per peer, each kept at most
    ``idle_timeout`` seconds (checked whenever the pool is used; :meth:`close`
    closes them). Opening streams for every transfer cost a round trip each
    time (on a WAN, part of a migration's downtime) and, on loopback, more
    CPU than moving a 16 MiB payload (live migration sends one transfer per
    batch of pages, as QEMU keeps its multifd channels open for the whole
    migration).

    Integrity: stream records arrive intact or not at all (the contract; the
    real backend checksums every record from the sender's memory to the
    receiver's), so each chunk's bytes are already checked end to end and
    AMST checks offsets, lengths and completeness. ``verify_chunks=True``
    adds AMST's own CRC per chunk on top (a second pass over the data on
    both ends: for runtimes or transports that do not checksum).
    """

    def __init__(
        self,
        rt: Runtime,
        *,
        chunk_size: int = DEFAULT_CHUNK,
        max_chunk_size: int = MAX_CHUNK,
        query_interval: float = 1.0,
        max_stream_failures: int = 16,
        reconnect_timeout: float = 10.0,
        completed_memory: int = 1024,
        verify_chunks: bool = False,
        buffer_budget: int = 1 << 30,
        max_payload: int = 64 << 30,
        max_idle_streams: int = 128,
        idle_timeout: float = 60.0,
    ) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.rt = rt
        self.chunk_size = chunk_size
        self.max_chunk_size = max(max_chunk_size, chunk_size)
        self.query_interval = query_interval
        self.max_stream_failures = max_stream_failures
        self.reconnect_timeout = reconnect_timeout
        self.verify_chunks = verify_chunks
        self.buffers = BufferPool(buffer_budget)
        self.max_payload = max_payload
        self.max_idle_streams = max_idle_streams
        self.idle_timeout = idle_timeout
        #: idle streams per (peer, congestion asked for), each with when it was parked
        self._idle: dict[tuple[str, str | None], list[tuple[float, Stream]]] = {}
        self.streams_opened = 0  # streams this AMST opened (pooled ones are counted once)
        self._ids = itertools.count(1)
        self._outgoing: dict[str, _Outgoing] = {}
        self._incoming: dict[tuple[str, str], _Incoming] = {}
        self._completed: dict[tuple[str, str], TransferDone] = {}
        self._completed_memory = completed_memory
        #: receive handlers by tag, all called with the transfer's meta (on_receive drops it)
        self._handlers: dict[str, PlacedHandler] = {}
        self._places: dict[str, Place] = {}
        #: transfers whose handler's awaitable is still running (complete, not yet answered)
        self._handling: set[tuple[str, str]] = set()
        self.rejected_chunks = 0
        self._pending_acks: dict[tuple[str, str], list[int]] = {}
        self.chunks_placed = 0  # chunks the runtime received straight into the reassembly buffer
        rt.on_stream(Chunk, self._on_chunk, placement=self._place_chunk)
        rt.on_message(ChunkAck, self._on_ack)
        rt.on_message(TransferDone, self._on_done)
        rt.on_message(TransferQuery, self._on_query)
        rt.on_message(TransferStatus, self._on_status)
        self._round_trips: dict[str, MinFilter] = {}
        #: per sender, when its last chunk arrived: a long transfer is a peer speaking, for
        #: whoever would otherwise take its silence for a crash (see Migrator.receive_timeout)
        self.last_chunk_from: dict[str, float] = {}
        rt.on_message(RoundTripProbe, lambda src, probe: rt.send(src, RoundTripEcho(probe.sent_at)))
        rt.on_message(RoundTripEcho, self._on_echo)

    def on_receive(self, tag: str, handler: Handler) -> None:
        """Deliver complete payloads sent with ``tag`` to ``handler(src, payload)``.

        The payload is a read-only view valid during the call only (its buffer is
        reused, see :mod:`.buffers`): copy it with ``bytes()`` to keep it. A handler
        may instead return an awaitable (e.g. ``rt.offload`` of work on the payload,
        so that it runs off the event loop): the payload then stays valid until the
        awaitable is done, and only then does the sender hear that the transfer is
        complete (failed, with the reason, if the awaitable raised).
        """
        self.on_receive_meta(tag, lambda src, meta, payload: handler(src, payload))

    def on_receive_meta(self, tag: str, handler: PlacedHandler) -> None:
        """As :meth:`on_receive`, calling ``handler(src, meta, payload)`` with the ``meta`` the
        sender passed to :meth:`send` (say, which of several ongoing jobs the payload is for)."""
        self._handlers[tag] = handler
        self._places.pop(tag, None)

    def on_placed(self, tag: str, place: Place, handler: PlacedHandler) -> None:
        """Receive transfers sent with ``tag`` straight into the receiver's own memory.

        At a transfer's first chunk, ``place(src, size, meta)`` (``meta``: the bytes the
        sender passed to :meth:`send`) returns a writable view of exactly ``size`` bytes
        where the payload belongs (say, a run of guest pages), or None for a buffer of
        AMST's own. Chunks are then received in place (no copy on the real backend), and
        ``handler(src, meta, payload)`` runs once all are in, as for :meth:`on_receive`
        (it may return an awaitable). A chunk that fails its check may have been written
        there before it was rejected; the sender sends it again, and the memory holds the
        right bytes once the handler runs. ``place`` may raise :class:`TransferRefused` to
        refuse the transfer there and then (simulated payloads have no memory to place, so
        ``place`` is not asked about them: their handler refuses them once they are in).
        """
        self._places[tag] = place
        self._handlers[tag] = handler

    # -- the round trip (see .round_trip) -----------------------------------------------------
    def probe_round_trip(self, peer: str) -> None:
        """Send ``peer`` one probe; its echo updates :meth:`round_trip` (probes are messages:
        one may be lost, so a caller that relies on the estimate probes now and then)."""
        self.rt.send(peer, RoundTripProbe(float(self.rt.now())))

    def round_trip(self, peer: str) -> float | None:
        """The smallest round trip to ``peer`` measured by the probes of the last few seconds
        (:data:`.round_trip.MEMORY`), in seconds; None before the first echo."""
        found = self._round_trips.get(peer)
        return found.value(self.rt.now()) if found is not None else None

    def _on_echo(self, src: str, echo: RoundTripEcho) -> None:
        now = self.rt.now()
        if 0 <= echo.sent_at <= now:  # a corrupt or foreign echo says nothing
            self._round_trips.setdefault(src, MinFilter()).add(now, now - echo.sent_at)

    # -- sending --------------------------------------------------------------
    async def send(
        self,
        peer: str,
        payload: Payload,
        *,
        streams: int = 4,
        congestion: str | None = None,
        tag: str = "",
        meta: bytes = b"",
        chunk_size: int | None = None,
        volatile: bool | WriteLog = False,
        progress: Callable[[int], None] | None = None,
    ) -> AMSTReport:
        """Move ``payload`` to ``peer`` over ``streams`` streams; returns once the peer has it.

        ``meta``: a few bytes about the whole transfer that every chunk carries, for a
        receiver that places transfers of this tag itself (:meth:`on_placed`).
        ``chunk_size`` overrides :meth:`chunk_for`, for a caller that keeps several
        transfers in flight and so needs fewer, larger chunks per transfer to balance
        its streams (each chunk costs the same fixed work on both ends).
        ``volatile``: the caller goes on writing ``payload`` during the transfer (a running
        guest's memory); each chunk is sent as :meth:`Stream.send` sends volatile data, and
        the peer receives, for each part, one of the versions it held meanwhile (a chunk
        re-sent after a stream failure may carry a newer one). A :class:`WriteLog` over the
        payload's bytes, instead of ``True``, spares re-reading what nobody wrote.
        ``progress(nbytes)`` is called as chunks are acknowledged, with their bytes: a caller that
        measures the link while the transfer runs (the bytes are the receiver's from then on)."""
        if streams < 1:
            raise ValueError(f"streams must be >= 1, got {streams}")
        if volatile and self.verify_chunks:
            raise ValueError(
                "verify_chunks checks each chunk against a checksum taken before the send: "
                "it cannot be used with a volatile payload"
            )
        if len(meta) > MAX_META:
            raise ValueError(f"meta of {len(meta)} bytes (at most {MAX_META})")
        rt = self.rt
        size = payload_size(payload)
        sizes = plan_chunks(size, chunk_size if chunk_size is not None else self.chunk_for(size, streams))
        offsets = list(itertools.accumulate([0, *sizes[:-1]]))
        xfer = _Outgoing(
            id=node_scoped_id(rt, str(next(self._ids))),
            peer=peer,
            scheduler=ChunkScheduler(sizes),
            offsets=offsets,
            payload=payload,
            tag=tag,
            meta=meta,
            volatile=volatile,
            done=rt.create_future(),
            wake=rt.create_future(),
            progress=progress,
        )
        self._outgoing[xfer.id] = xfer
        started = rt.now()
        opened: list[Stream] = []
        workers: list[Any] = []
        try:
            opened = await self._open(peer, min(streams, len(sizes)), congestion)
            used = opened[0].congestion
            workers = [rt.spawn(self._worker(xfer, i, s, congestion)) for i, s in enumerate(opened)]
            xfer.live_workers = len(workers)
            query = rt.spawn(self._query_loop(xfer))
            try:
                outcome: TransferDone = await xfer.done
            finally:
                query.cancel()
        except BaseException:
            # Cancelled or failed before the end: a stream may be mid-record, none is reused.
            for w in workers:
                w.cancel()
            for s in {*opened, *xfer.streams.values()}:
                s.close()
            raise
        finally:
            self._outgoing.pop(xfer.id, None)
            if xfer.endgame_timer is not None:
                xfer.endgame_timer.cancel()
                # (its callback refers to the record: left in place, the pair is a cycle that
                # only the garbage collector frees, payload and all; see below)
                xfer.endgame_timer = None
            # The payload may be a view of memory its owner frees next (a migrated guest's):
            # a record kept alive by anything (a worker finishing its last send, a cycle) must
            # not keep it mapped. Freeing it in a later garbage collection had paused the
            # node's event loop for 50-150 ms (munmap of the guest, in a gen-0 collection).
            xfer.payload = b""
        # Streams whose workers wait for work go back to the pool now, so that a transfer the
        # caller starts next reuses them; a worker still sending parks its own when it is done.
        for sid, stream in list(xfer.waiting.items()):
            xfer.handed_back.add(sid)
            self._park(peer, congestion, stream)
        if not outcome.ok:
            raise TransferError(f"transfer {xfer.id} to {peer} failed: {outcome.reason}")
        progress = xfer.scheduler.streams
        return AMSTReport(
            peer=peer,
            tag=tag,
            nbytes=payload_size(payload),
            chunks=len(sizes),
            streams=len(opened),
            congestion=used,
            started=started,
            finished=rt.now(),
            streams_failed=xfer.streams_failed,
            duplicates=sum(p.duplicates_sent for p in progress.values()),
            resent=xfer.resent,
            bytes_per_stream=tuple(p.bytes_sent for _, p in sorted(progress.items())),
        )

    def chunk_for(self, size: int, streams: int) -> int:
        """The chunk size for ``size`` bytes over ``streams`` streams: ``chunk_size``,
        grown (in multiples of it) up to ``max_chunk_size`` while each stream still
        gets :data:`CHUNKS_PER_STREAM` chunks."""
        base = max(1, self.chunk_size)
        target = size // (max(1, streams) * CHUNKS_PER_STREAM)
        grown = min(self.max_chunk_size, target) // base * base
        return max(base, grown)

    async def _open(self, peer: str, n: int, congestion: str | None) -> list[Stream]:
        """``n`` streams to ``peer``: idle ones first, new ones for the rest."""
        streams = self._take_idle(peer, congestion, n)
        tasks = [
            self.rt.spawn(self.rt.open_stream(peer, congestion=congestion)) for _ in range(n - len(streams))
        ]
        self.streams_opened += len(tasks)
        errors = []
        for task in tasks:
            try:
                streams.append(await task)
            except TransferError as exc:
                errors.append(exc)
        if not streams:
            raise TransferError(f"could not open any stream to {peer}: {errors[0]}")
        return streams

    def _take_idle(self, peer: str, congestion: str | None, n: int) -> list[Stream]:
        """Up to ``n`` healthy idle streams, most recently parked first."""
        pool = self._expire(peer, congestion)
        taken: list[Stream] = []
        while pool and len(taken) < n:
            _, stream = pool.pop()
            if not stream.closed:
                taken.append(stream)
        return taken

    def _park(self, peer: str, congestion: str | None, stream: Stream) -> None:
        """Keep a stream for the next transfer to ``peer`` (or close it: pool full, broken)."""
        pool = self._expire(peer, congestion)
        if stream.closed:
            return
        pool.append((self.rt.now(), stream))
        while len(pool) > self.max_idle_streams:
            pool.pop(0)[1].close()

    def _expire(self, peer: str, congestion: str | None) -> list[tuple[float, Stream]]:
        """The pool for ``(peer, congestion)``, without streams idle past ``idle_timeout``."""
        pool = self._idle.setdefault((peer, congestion), [])
        horizon = self.rt.now() - self.idle_timeout
        while pool and (pool[0][0] < horizon or pool[0][1].closed):
            pool.pop(0)[1].close()
        return pool

    @property
    def idle_streams(self) -> int:
        return sum(len(pool) for pool in self._idle.values())

    def close(self) -> None:
        """Close the idle streams (transfers in flight keep theirs)."""
        for pool in self._idle.values():
            for _, stream in pool:
                stream.close()
        self._idle.clear()

    def _chunk_data(self, xfer: _Outgoing, index: int) -> tuple[Chunk, Payload]:
        offset, length = xfer.offsets[index], xfer.scheduler.sizes[index]
        payload = xfer.payload
        if isinstance(payload, VirtualPayload):
            data: Payload = VirtualPayload(length, meta=payload)
            algorithm, value = checksum.NONE, 0
        else:
            data = memoryview(payload)[offset : offset + length]
            algorithm = checksum.PREFERRED if self.verify_chunks else checksum.NONE
            value = checksum.compute(algorithm, data) if self.verify_chunks else 0
        header = Chunk(
            xfer.id,
            index,
            offset,
            length,
            value,
            algorithm,
            xfer.scheduler.total,
            payload_size(payload),
            xfer.tag,
            xfer.meta,
        )
        return header, data

    async def _worker(self, xfer: _Outgoing, sid: int, stream: Stream, congestion: str | None) -> None:
        """Pull chunks for one stream until the transfer ends (then park the stream for the
        next transfer); replace the stream if it breaks."""
        scheduler = xfer.scheduler
        xfer.streams[sid] = stream
        while True:
            if xfer.done.done():
                if sid not in xfer.handed_back:
                    self._park(xfer.peer, congestion, stream)
                return
            if stream.closed:  # it broke while idle (a reset, a stall): found by the query loop
                replacement = await self._replace(xfer, sid, stream, "closed while idle")
                if replacement is None:
                    return
                stream = replacement
                continue
            index = scheduler.next_for(sid, self.rt.now())
            if index is None:
                self._wake_for_endgame(xfer, scheduler.endgame_at(sid))
                xfer.waiting[sid] = stream  # send() may hand it back at once when the transfer ends
                try:
                    await xfer.wake  # an ack, a failure elsewhere or a requeue may give us work
                finally:
                    xfer.waiting.pop(sid, None)
                continue
            header, data = self._chunk_data(xfer, index)
            volatile = xfer.volatile
            if not isinstance(volatile, bool):
                volatile = _ChunkLog(volatile, xfer.offsets[index])
            try:
                await stream.send(header, data, volatile=volatile)
            except TransferError as exc:
                replacement = await self._replace(xfer, sid, stream, str(exc))
                if replacement is None:
                    return
                stream = replacement

    async def _replace(self, xfer: _Outgoing, sid: int, stream: Stream, reason: str) -> Stream | None:
        """Requeue what a failed stream carried unacknowledged and open another in its place;
        None when the transfer is over (failed, or no stream could be opened)."""
        lost = xfer.scheduler.stream_failed(sid)
        xfer.streams_failed += 1
        xfer.resent += len(lost)
        self._wake(xfer)
        log.info(
            "%s: stream %d to %s failed (%s); %d chunks requeued", xfer.id, sid, xfer.peer, reason, len(lost)
        )
        if xfer.streams_failed > self.max_stream_failures:
            self._finish(xfer, TransferDone(xfer.id, False, f"{xfer.streams_failed} streams failed"))
            return None
        stream.close()
        replacement = await self._reconnect(xfer, stream.congestion)
        if replacement is not None:
            xfer.streams[sid] = replacement
        return replacement

    async def _reconnect(self, xfer: _Outgoing, congestion: str) -> Stream | None:
        """A new stream to replace a broken one, retrying with backoff for
        ``reconnect_timeout`` (the peer may be restarting); None if it never came."""
        rt = self.rt
        deadline = rt.now() + self.reconnect_timeout
        backoff = 0.05
        while not xfer.done.done():
            try:
                return await rt.open_stream(xfer.peer, congestion=congestion)
            except TransferError as exc:
                if rt.now() + backoff > deadline:
                    xfer.live_workers -= 1
                    if xfer.live_workers == 0:
                        self._finish(xfer, TransferDone(xfer.id, False, f"no stream left: {exc}"))
                    return None
                await rt.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
        return None

    async def _query_loop(self, xfer: _Outgoing) -> None:
        """Every ``query_interval``: wake the workers if a stream broke while they
        waited, and ask the receiver what it misses once there is nothing left to
        send and no acknowledgement came for a whole interval (lost acks, lost
        chunks, a lost TransferDone, or a receiver that restarted)."""
        rt = self.rt
        xfer.last_progress = rt.now()
        while not xfer.done.done():
            await rt.sleep(self.query_interval)
            if any(s.closed for s in xfer.streams.values()):
                self._wake(xfer)  # a worker waiting for work has a broken stream to replace
            idle = rt.now() - xfer.last_progress >= self.query_interval
            if xfer.scheduler.queue_empty and idle:
                rt.send(xfer.peer, TransferQuery(xfer.id))

    def _wake_for_endgame(self, xfer: _Outgoing, due: float | None) -> None:
        """Wake the idle workers at ``due``, when a chunk in flight turns late (one timer per
        transfer, kept for the earliest time asked)."""
        if due is None or due >= xfer.endgame_due or xfer.done.done():
            return
        if xfer.endgame_timer is not None:
            xfer.endgame_timer.cancel()

        def fire() -> None:
            xfer.endgame_timer, xfer.endgame_due = None, float("inf")
            self._wake(xfer)

        xfer.endgame_due = due
        xfer.endgame_timer = self.rt.call_later(max(0.0, due - self.rt.now()), fire)

    def _wake(self, xfer: _Outgoing) -> None:
        wake, xfer.wake = xfer.wake, self.rt.create_future()
        if not wake.done():
            wake.set_result(None)

    def _finish(self, xfer: _Outgoing, outcome: TransferDone) -> None:
        if not xfer.done.done():
            xfer.done.set_result(outcome)
        for timer in (xfer.endgame_timer, xfer.done_timer):
            if timer is not None:
                timer.cancel()
        xfer.endgame_timer = xfer.done_timer = None
        self._wake(xfer)

    def _on_ack(self, src: str, ack: ChunkAck) -> None:
        xfer = self._outgoing.get(ack.transfer)
        if xfer is None or xfer.peer != src:
            return
        now = self.rt.now()
        fresh = [i for i in ack.indexes if xfer.scheduler.acked_chunk(i, now)]
        if fresh:
            xfer.last_progress = now
            if xfer.progress is not None:
                xfer.progress(sum(xfer.scheduler.sizes[i] for i in fresh))
            self._wake(xfer)
            if xfer.scheduler.done:
                self._expect_done(xfer)

    def _expect_done(self, xfer: _Outgoing) -> None:
        """Every chunk is acknowledged: ask for the TransferDone if it does not follow soon.

        A lost TransferDone (a lossy simulated link drops control messages) used to be noticed
        only by the query loop, after one to two query intervals: a simulated WAN migration
        batch of 16 MiB took 1.1 s instead of 0.25. A query the receiver did not need costs one
        small message (it answers with its Done again, or that its handler is still running)."""
        slowest = xfer.scheduler.slowest_delivery or 0.0
        wait = min(self.query_interval, max(DONE_GRACE, DONE_WAIT_SHARE * slowest))

        def ask() -> None:
            xfer.done_timer = None
            if not xfer.done.done():
                self.rt.send(xfer.peer, TransferQuery(xfer.id))

        if xfer.done_timer is None:
            xfer.done_timer = self.rt.call_later(wait, ask)

    def _on_done(self, src: str, done: TransferDone) -> None:
        xfer = self._outgoing.get(done.transfer)
        if xfer is not None and xfer.peer == src:
            self._finish(xfer, done)

    def _on_status(self, src: str, status: TransferStatus) -> None:
        xfer = self._outgoing.get(status.transfer)
        if xfer is None or xfer.peer != src:
            return
        if status.unknown:
            # Some chunk was acknowledged, so the receiver had the transfer and lost it (it
            # restarted): everything again. Nothing acknowledged yet: the chunks may simply
            # still be on their way, and a receiver that lost them also broke their streams.
            if xfer.scheduler.acked:
                xfer.scheduler.restart()
                xfer.resent += xfer.scheduler.total
        elif status.missing:
            xfer.scheduler.requeue_missing(status.missing)
            xfer.resent += len(status.missing)
        xfer.last_progress = self.rt.now()
        self._wake(xfer)

    # -- receiving ------------------------------------------------------------
    def _place_chunk(self, src: str, header: Chunk, length: int) -> memoryview | None:
        """Receive a chunk straight into its place in the reassembly buffer (no copy)."""
        key = (src, header.transfer)
        if key in self._completed or key in self._handling:
            return None
        incoming = self._incoming.get(key)
        if incoming is None:
            if length != header.length or self._start_problem(header) is not None:
                return None  # _on_chunk will reject it with the reason
            incoming = self._start_incoming(key, src, header, b"")
            if incoming is None:
                return None
        if incoming.buffer is None or header.index in incoming.received:
            return None
        if self._check_shape(incoming, header) is not None or length != header.length:
            return None
        return memoryview(incoming.buffer)[header.offset : header.offset + header.length]

    def _on_chunk(self, src: str, header: Chunk, data: Payload) -> None:
        self.last_chunk_from[src] = self.rt.now()
        key = (src, header.transfer)
        if key in self._completed or key in self._handling:  # a late duplicate: ack it again
            done = self._completed.get(key)
            if done is None or done.ok:  # (a refused transfer's chunks are not acknowledged)
                self._ack(src, header.transfer, header.index)
            return
        incoming = self._incoming.get(key)
        problem = self._start_problem(header) if incoming is None else None
        if incoming is None and problem is None:
            incoming = self._start_incoming(key, src, header, data)
            if incoming is None:
                return
        if problem is None:
            problem = self._check_chunk(incoming, header, data)
        if problem is not None:
            self.rejected_chunks += 1
            log.warning(
                "%s: rejected chunk %d of %s from %s: %s",
                self.rt.node_id,
                header.index,
                header.transfer,
                src,
                problem,
            )
            return  # not acknowledged: the sender re-sends it when asked
        if header.index not in incoming.received:
            if incoming.buffer is not None:
                if _is_placed(data, incoming.buffer):
                    self.chunks_placed += 1
                else:
                    incoming.buffer[header.offset : header.offset + header.length] = data
            incoming.received.add(header.index)
        self._ack(src, header.transfer, header.index)
        if len(incoming.received) == incoming.chunks:
            self._complete(key, incoming)

    def _ack(self, src: str, transfer: str, index: int) -> None:
        """Acknowledge a chunk; every ack of one instant goes out as one message, which
        matters on the real backend where a loop iteration receives many records."""
        key = (src, transfer)
        pending = self._pending_acks.get(key)
        if pending is None:
            pending = self._pending_acks[key] = []
            self.rt.call_later(0.0, self._flush_acks, key)
        pending.append(index)

    def _flush_acks(self, key: tuple[str, str]) -> None:
        indexes = self._pending_acks.pop(key, None)
        if indexes:
            self.rt.send(key[0], ChunkAck(key[1], indexes))

    def _start_problem(self, header: Chunk) -> str | None:
        """Why a first chunk cannot start a transfer (a forged size must not allocate memory)."""
        if not 0 <= header.size <= self.max_payload:
            return f"payload of {header.size} bytes (this node accepts at most {self.max_payload})"
        if header.chunks < 1 or header.chunks > header.size // 1 + 1:
            return f"{header.chunks} chunks for {header.size} bytes"
        return None

    def _start_incoming(self, key, src: str, header: Chunk, data: Payload) -> _Incoming | None:
        """The transfer a first chunk starts (None: its placement refused it, and the sender is told)."""
        virtual = isinstance(data, VirtualPayload)
        incoming = _Incoming(
            src=src,
            id=header.transfer,
            size=header.size,
            chunks=header.chunks,
            tag=header.tag,
            buffer=None,
            virtual=data.meta if virtual else None,
            meta=header.meta,
        )
        if not virtual:
            try:
                incoming.buffer = self._placement(src, header)
            except TransferRefused as exc:
                log.info("%s: refused transfer %s from %s: %s", self.rt.node_id, header.transfer, src, exc)
                self._answer(key, src, TransferDone(header.transfer, False, f"refused: {exc}"))
                return None
            incoming.placed = incoming.buffer is not None
            if incoming.buffer is None:
                incoming.buffer = self.buffers.take(header.size)
        self._incoming[key] = incoming
        return incoming

    def _placement(self, src: str, header: Chunk) -> memoryview | None:
        """The receiver's own memory for this transfer (``on_placed``), if it names some."""
        place = self._places.get(header.tag)
        if place is None:
            return None
        where = place(src, header.size, header.meta)
        if where is None:
            return None
        if where.readonly or where.nbytes != header.size:
            log.warning(
                "%s: placement for tag %r gave %d %s bytes for a %d-byte transfer; using a buffer",
                self.rt.node_id,
                header.tag,
                where.nbytes,
                "read-only" if where.readonly else "writable",
                header.size,
            )
            return None
        return where.cast("B") if where.format != "B" or where.ndim != 1 else where

    @staticmethod
    def _check_shape(incoming: _Incoming, header: Chunk) -> str | None:
        shape = (header.size, header.chunks, header.tag, header.meta)
        if shape != (incoming.size, incoming.chunks, incoming.tag, incoming.meta):
            return "its transfer shape differs from the first chunk's"
        if not 0 <= header.index < header.chunks or not 0 <= header.offset <= header.size - header.length:
            return f"chunk {header.index} at {header.offset}+{header.length} is outside the payload"
        return None

    @classmethod
    def _check_chunk(cls, incoming: _Incoming, header: Chunk, data: Payload) -> str | None:
        problem = cls._check_shape(incoming, header)
        if problem is not None:
            return problem
        if payload_size(data) != header.length:
            return f"{payload_size(data)} bytes where the header says {header.length}"
        if header.algorithm != checksum.NONE:
            try:
                if checksum.compute(header.algorithm, data) != header.checksum:
                    return "checksum mismatch"
            except ValueError as exc:
                return str(exc)
        return None

    def _complete(self, key, incoming: _Incoming) -> None:
        del self._incoming[key]
        buffer = incoming.buffer
        payload: Payload = (
            incoming.virtual if buffer is None else memoryview(buffer)[: incoming.size].toreadonly()
        )
        handler = self._handlers.get(incoming.tag)
        pending = None
        try:
            if handler is None:
                done = TransferDone(
                    incoming.id, False, f"no receiver for tag {incoming.tag!r} on {self.rt.node_id}"
                )
            else:
                try:
                    pending = handler(incoming.src, incoming.meta, payload)
                    done = TransferDone(incoming.id, True)
                except TransferRefused as exc:  # the receiver wants none of it: the sender hears why
                    done = TransferDone(incoming.id, False, f"refused by {self.rt.node_id}: {exc}")
        finally:
            if pending is None:
                self._release(incoming, payload)
        if pending is not None:
            self._handling.add(key)
            self.rt.spawn(self._complete_later(key, incoming, pending, payload))
            return
        self._answer(key, incoming.src, done)

    async def _complete_later(
        self, key, incoming: _Incoming, pending: Awaitable[None], payload: Payload
    ) -> None:
        """Wait for a handler's awaitable; the payload's buffer is released after it."""
        try:
            await pending
            done = TransferDone(incoming.id, True)
        except Exception as exc:  # the handler's failure is the transfer's: tell the sender why
            log.error("%s: the handler of transfer %s failed: %r", self.rt.node_id, incoming.id, exc)
            done = TransferDone(incoming.id, False, f"receive handler failed: {exc!r}")
        finally:
            self._release(incoming, payload)
            self._handling.discard(key)
        self._answer(key, incoming.src, done)

    def _release(self, incoming: _Incoming, payload: Payload) -> None:
        if incoming.buffer is not None:  # valid during the handler only: the buffer is reused
            payload.release()  # type: ignore[union-attr]
            if not incoming.placed:
                self.buffers.give_back(incoming.buffer)

    def _answer(self, key, src: str, done: TransferDone) -> None:
        self._completed[key] = done
        while len(self._completed) > self._completed_memory:
            del self._completed[next(iter(self._completed))]
        self.rt.send(src, done)

    def _on_query(self, src: str, query: TransferQuery) -> None:
        key = (src, query.transfer)
        done = self._completed.get(key)
        if done is not None:
            self.rt.send(src, done)
            return
        if key in self._handling:  # all here, the handler still running: nothing is missing
            self.rt.send(src, TransferStatus(query.transfer, []))
            return
        incoming = self._incoming.get(key)
        if incoming is None:  # never saw a chunk of it, or restarted since
            self.rt.send(src, TransferStatus(query.transfer, [], unknown=True))
            return
        missing = [i for i in range(incoming.chunks) if i not in incoming.received]
        self.rt.send(src, TransferStatus(query.transfer, missing))
