"""Bulk transfers over N parallel TCP connections: the asyncio control plane.

The sender cuts the payload into ``streams`` contiguous slices and runs one
worker thread per slice (:func:`.streams.send_slice`): connect, send a
:class:`~.wire.StreamHeader`, the bytes and a checksum trailer, then wait for
the receiver's verdict. The receiver allocates one buffer per transfer,
lets one thread per stream ``recv_into`` its slice, verifies every slice's
checksum, and once the slices tile the payload hands it to the ``on_transfer``
handler (on the event loop, as a read-only ``memoryview`` of that buffer: no
copy) and answers every stream with a :class:`~.wire.StreamStatus`. The
sender's ``transfer()`` returns only after those acknowledgements, so a
:class:`~novacron.runtime.TransferReport` means the receiver holds the data.

Receive buffers are reused across transfers (a
:class:`~novacron.runtime.buffers.BufferPool` of at most
``RuntimeOptions.transfer_buffer_pool`` bytes), which the contract allows: the
handler's payload is valid during the call only. Receiving into fresh memory
costs a page fault per 4 KiB; on loopback (2 cores, 512 MiB, two processes)
that held one stream to ~7 Gbit/s where a reused buffer reaches ~20.

Any stream failing fails the whole transfer on both sides: the other streams
are aborted (their sockets shut down) rather than left to time out, and the
sender raises :class:`~novacron.runtime.TransferError` with the most telling
reason (the receiver's own verdict when it sent one).
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import itertools
import logging
import mmap
import os
import socket
import ssl
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from novacron.runtime import (
    Payload,
    TransferError,
    TransferReport,
    VirtualPayload,
    WireError,
)
from novacron.runtime.buffers import BufferPool

from ..directory import PeerAddress
from ..tls import peer_identities
from . import streams as st
from . import wire
from .assembly import Assembly, Limits, check_header, plan_slices
from .context import NodeContext
from .framing import FrameError

log = logging.getLogger(__name__)

#: After the first stream fails, how long the others may take to report
#: (the receiver's verdict explains a failure better than a reset does).
_FAILURE_GRACE = 1.0


class _Refused(TransferError):
    """The receiver answered with a failed status."""


#: Below this, a receive buffer is a plain bytearray; above, an anonymous mmap.
_MMAP_THRESHOLD = 1024 * 1024


def allocate_buffer(size: int) -> bytearray | mmap.mmap:
    """A writable receive buffer of ``size`` bytes, returned at once.

    Large buffers are anonymous mmaps whose pages a helper thread maps in
    bulk (``madvise(MADV_POPULATE_WRITE)``) *while* the streams already
    receive into them. Faulting 256 MiB in page by page during ``recv`` costs
    more than the copy itself; populating first and receiving after adds the
    two up; ``bytearray(n)`` zero-fills page by page with the GIL held,
    freezing the event loop. The madvise goes through ctypes, which releases
    the GIL.
    """
    if size < _MMAP_THRESHOLD:
        return bytearray(size)
    buffer = mmap.mmap(-1, size)
    if _libc_madvise() is not None:
        st.worker_pool().submit(functools.partial(_populate, buffer))
    return buffer


_MADV_POPULATE_WRITE = 23  # Linux >= 5.14; older kernels answer EINVAL


def _populate(buffer: mmap.mmap) -> None:
    """Best effort: on failure the pages are simply faulted in on first use."""
    madvise = _libc_madvise()
    if madvise is None:
        return
    anchor = ctypes.c_char.from_buffer(buffer)
    address = ctypes.addressof(anchor)
    del anchor  # releases the buffer export, so the mmap can be closed later
    madvise(address, len(buffer), _MADV_POPULATE_WRITE)


@functools.cache
def _libc_madvise() -> Callable[[int, int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    return madvise


@dataclass
class _Incoming:
    """One transfer being received; shared by its stream threads (under the lock)."""

    assembly: Assembly
    buffer: bytearray | mmap.mmap
    progress: st.Progress = field(default_factory=st.Progress)
    #: slots of the streams still receiving bytes (aborted if the transfer fails)
    receiving: set[st.SocketSlot] = field(default_factory=set)
    #: receiving -> delivering (handler scheduled) | failed
    state: str = "receiving"
    verdict: wire.StreamStatus | None = None
    settled: threading.Event = field(default_factory=threading.Event)


def payload_view(payload: Payload) -> memoryview:
    """A flat byte view of a real payload; refuses the simulator's VirtualPayload."""
    if isinstance(payload, VirtualPayload):
        raise TypeError(
            "VirtualPayload is simulator-only (it has a size but no bytes); "
            "the real backend can only transfer bytes, bytearray or memoryview"
        )
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise TypeError(
            f"transfer payload must be bytes, bytearray or memoryview, not {type(payload).__name__}"
        )
    view = memoryview(payload)
    if not view.c_contiguous:
        raise TypeError("transfer payload memoryview must be C-contiguous")
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


class BulkTransfers:
    """Both sides of bulk transfers for one node."""

    def __init__(
        self,
        ctx: NodeContext,
        deliver: Callable[[str, str, memoryview], bool],
        clock: Callable[[], float],
    ) -> None:
        self.ctx = ctx
        self._deliver = deliver
        self._clock = clock
        self._lock = threading.Lock()  # guards the two below and every _Incoming
        self._incoming: dict[tuple[str, str], _Incoming] = {}
        self._incoming_bytes = 0
        self._buffers = BufferPool(ctx.options.transfer_buffer_pool, allocator=allocate_buffer)
        self._slots: set[st.SocketSlot] = set()
        self._nonce = os.urandom(6).hex()  # transfer ids stay unique across restarts
        self._seq = itertools.count(1)
        opts = ctx.options
        self._limits = Limits(
            max_streams=opts.max_streams,
            max_transfer_bytes=opts.max_transfer_bytes,
            checksums=frozenset(st.CHECKSUMS),
        )

    @property
    def active_streams(self) -> int:
        """Data connections open right now, both directions."""
        return len(self._slots)

    def abort_all(self) -> None:
        """Shut down every data socket (a crash or a close)."""
        with self._lock:
            incoming = list(self._incoming.values())
        for transfer in incoming:
            self._fail(transfer, "receiver shutting down", count=False)
        for slot in list(self._slots):
            slot.abort()

    # --- sending ------------------------------------------------------------------------------

    async def send(
        self, dst: str, payload: Payload, *, streams: int, congestion: str | None, tag: str
    ) -> TransferReport:
        view = payload_view(payload)
        opts = self.ctx.options
        if isinstance(streams, bool) or not isinstance(streams, int):
            raise TypeError(f"streams must be an int, not {type(streams).__name__}")
        if not 1 <= streams <= opts.max_streams:
            raise ValueError(f"streams must be in 1..{opts.max_streams}, got {streams}")
        if not isinstance(tag, str):
            raise TypeError(f"tag must be a str, not {type(tag).__name__}")
        if congestion is not None and not isinstance(congestion, str):
            raise TypeError(f"congestion must be a str or None, not {type(congestion).__name__}")
        started = self._clock()
        address = self.ctx.directory.get(dst)
        if address is None:
            raise TransferError(f"cannot transfer to {dst!r}: not a known peer")
        algorithm, fallback = st.resolve_congestion(congestion)
        if fallback:
            log.info("[%s] transfer to %s: %s", self.ctx.node_id, dst, fallback)
        transfer_id = f"{self._nonce}-{next(self._seq)}"
        progress = st.Progress()
        jobs = []
        for index, (offset, length) in enumerate(plan_slices(len(view), streams)):
            header = wire.StreamHeader(
                version=wire.PROTOCOL_VERSION,
                src=self.ctx.node_id,
                transfer_id=transfer_id,
                index=index,
                streams=streams,
                offset=offset,
                length=length,
                total=len(view),
                tag=tag,
                checksum=st.PREFERRED_CHECKSUM,
            )
            jobs.append((header, view[offset : offset + length], st.SocketSlot()))
        slots = [slot for _, _, slot in jobs]
        self._slots.update(slots)
        futures = [
            st.run_in_thread(
                self._send_stream,
                dst,
                address,
                header,
                piece,
                algorithm,
                progress,
                slot,
            )
            for header, piece, slot in jobs
        ]
        try:
            used = await self._gather(futures, slots)
        except BaseException:
            self.ctx.stats.transfers_failed += 1
            raise
        finally:
            self._slots.difference_update(slots)
        self.ctx.stats.transfers_sent += 1
        self.ctx.stats.bytes_sent += len(view)
        return TransferReport(
            src=self.ctx.node_id,
            dst=dst,
            tag=tag,
            nbytes=len(view),
            streams=streams,
            congestion=used,
            started=started,
            finished=self._clock(),
        )

    async def _gather(self, futures: list[asyncio.Future[str]], slots: list[st.SocketSlot]) -> str:
        """Wait for every stream; on the first failure, abort the rest and raise."""
        try:
            _, pending = await asyncio.wait(futures, return_when=asyncio.FIRST_EXCEPTION)
            if pending:  # something failed: give the receiver's verdict a moment to arrive
                _, pending = await asyncio.wait(pending, timeout=_FAILURE_GRACE)
        except asyncio.CancelledError:
            for slot in slots:
                slot.abort()
            for future in futures:  # the aborted threads end in errors no one awaits any more
                future.add_done_callback(_consume_error)
            raise
        if pending or any(f.exception() is not None for f in futures):
            for slot in slots:
                slot.abort()
            if pending:
                await asyncio.wait(pending)
            raise _best_error([f.exception() for f in futures if f.exception() is not None])
        return futures[0].result()

    def _send_stream(
        self,
        dst: str,
        address: PeerAddress,
        header: wire.StreamHeader,
        view: memoryview,
        algorithm: str | None,
        progress: st.Progress,
        slot: st.SocketSlot,
    ) -> str:
        """One stream, in a worker thread; returns the congestion control it used."""
        opts = self.ctx.options
        sock, used = st.dial(
            slot,
            dst,
            address.host,
            address.port,
            preamble=wire.DATA_PREAMBLE,
            tls=self.ctx.client_tls,
            check_identity=self.ctx.check_identity,
            timeout=opts.connect_timeout,
            congestion=algorithm,
        )
        stream = f"stream {header.index}/{header.streams} to {dst}"
        try:
            sock.settimeout(opts.stream_timeout)
            st.write_frame(sock, wire.encode(header))
            crc = st.send_slice(
                sock,
                view,
                st.CHECKSUMS[header.checksum],
                progress,
                slot,
                chunk=opts.chunk_size,
                rate_limit=opts.stream_rate_limit,
            )
            st.write_frame(sock, wire.encode(wire.StreamTrailer(checksum=crc)))
            status = st.wait_status(sock, progress, opts.stream_timeout)
        except (st.StreamAborted, TransferError):
            raise
        except TimeoutError:
            raise TransferError(f"{stream} stalled: no progress for {opts.stream_timeout:g}s") from None
        except (WireError, FrameError) as exc:
            raise TransferError(f"{stream}: invalid answer from the receiver: {exc}") from None
        except OSError as exc:
            raise TransferError(f"{stream} failed mid-transfer: {exc}") from None
        finally:
            sock.close()
        if not status.ok:
            raise _Refused(f"{dst} failed the transfer: {status.reason}")
        return used

    # --- receiving ----------------------------------------------------------------------------
    #
    # One worker thread per data connection does everything for its stream:
    # TLS, header, admission, receiving, checksum, waiting for the verdict,
    # answering. Bouncing to the event loop between those steps (a new thread
    # per step) delayed the start of some streams by tens of milliseconds while
    # their senders' socket buffers sat full. The loop only accepts the
    # connection and runs the ``on_transfer`` handler; the shared per-transfer
    # state is guarded by ``self._lock``.

    async def serve(self, sock: socket.socket, where: str) -> None:
        """Handle one accepted data connection (its preamble already read)."""
        slot = st.SocketSlot()
        self._slots.add(slot)
        try:
            await st.run_in_thread(self._serve_stream, sock, slot, where)
        finally:
            self._slots.discard(slot)

    def _serve_stream(self, sock: socket.socket, slot: st.SocketSlot, where: str) -> None:
        """One incoming stream, in a worker thread (which closes the socket)."""
        ctx = self.ctx
        try:
            stream_sock, header, peercert = st.accept_stream(
                sock, slot, tls=ctx.server_tls, timeout=ctx.options.handshake_timeout
            )
        except st.StreamAborted:
            return
        except TimeoutError:
            return self._reject("handshake_timeout", "no stream header in time", where)
        except ssl.SSLError as exc:
            return self._reject("tls_handshake", f"data connection: {exc}", where)
        except (WireError, FrameError, OSError) as exc:
            return self._reject("bad_stream", f"no valid stream header: {exc}", where)
        try:  # (accept_stream closed the socket if it failed)
            self._receive(stream_sock, header, peercert, slot, where)
        finally:
            stream_sock.close()
            sock.close()  # a no-op unless TLS left the raw socket behind

    def _receive(
        self,
        sock: socket.socket,
        header: wire.StreamHeader,
        peercert: dict[str, Any] | None,
        slot: st.SocketSlot,
        where: str,
    ) -> None:
        refusal = self.ctx.authenticate(header.src, peer_identities(peercert))
        if refusal is not None:
            return self._reject("hello_rejected", f"stream from {header.src!r}: {refusal}", where)
        incoming, problem = self._join(header, slot)
        if incoming is None:
            self._reject("bad_stream", problem or "?", f"{header.src} ({where})")
            return _answer(sock, wire.StreamStatus(ok=False, reason=problem or "refused"))
        opts = self.ctx.options
        view = memoryview(incoming.buffer)[header.offset : header.offset + header.length]
        failure: str | None = None
        computed = announced = None
        try:
            sock.settimeout(opts.stream_timeout)
            computed, announced = st.receive_slice(
                sock,
                view,
                st.CHECKSUMS[header.checksum],
                incoming.progress,
                opts.stream_timeout,
                chunk=opts.chunk_size,
            )
        except st.StreamAborted:
            pass  # the transfer failed through another stream
        except (OSError, WireError, FrameError) as exc:
            failure = f"stream {header.index} from {header.src} failed: {exc}"
        finally:
            # Out of the receiving set before judging: failing the transfer
            # aborts the streams still receiving, not this one, which must
            # still deliver the verdict.
            with self._lock:
                incoming.receiving.discard(slot)
            view.release()
        if computed != announced:
            self._reject(
                "checksum_mismatch",
                f"stream {header.index} of transfer {header.transfer_id}: "
                f"{header.checksum} {computed:#x}, sender announced {announced:#x}",
                f"{header.src} ({where})",
            )
            failure = f"checksum mismatch on stream {header.index}"
        if failure is not None:
            self._fail(incoming, failure)
        elif computed is not None:
            self._verified(incoming, header.index)
        _answer(sock, self._wait_verdict(incoming))

    def _join(self, header: wire.StreamHeader, slot: st.SocketSlot) -> tuple[_Incoming | None, str | None]:
        """Attach a stream to its transfer (starting it if first), or say why not."""
        problem = check_header(header, self._limits)
        if problem is not None:
            return None, problem
        key = (header.src, header.transfer_id)
        with self._lock:
            incoming = self._incoming.get(key)
            if incoming is None:
                limit = self.ctx.options.max_incoming_bytes
                if self._incoming_bytes + header.total > limit:
                    return None, (
                        f"receiver busy: {self._incoming_bytes} bytes already being received, limit {limit}"
                    )
                incoming = _Incoming(Assembly.start(header), self._buffers.take(header.total))
                self._incoming[key] = incoming
                self._incoming_bytes += header.total
            problem = incoming.assembly.add(header)
            if problem is None:
                incoming.receiving.add(slot)
        if problem is not None:
            self._fail(incoming, problem)
            return None, problem
        return incoming, None

    def _verified(self, incoming: _Incoming, index: int) -> None:
        with self._lock:
            a = incoming.assembly
            a.mark_verified(index)
            if not a.complete or incoming.state != "receiving":
                return
            problem = a.coverage_problem()
            if problem is None:
                incoming.state = "delivering"
                self._forget(incoming)
        if problem is not None:
            self._fail(incoming, problem)
            return
        try:
            self.ctx.loop.call_soon_threadsafe(self._deliver_on_loop, incoming)
        except RuntimeError:  # the loop is closed
            self._settle(incoming, wire.StreamStatus(ok=False, reason="receiver shutting down"))

    def _deliver_on_loop(self, incoming: _Incoming) -> None:
        a = incoming.assembly
        view = memoryview(incoming.buffer)[: a.total]  # (a kept buffer may be bigger)
        payload = view.toreadonly()
        try:
            delivered = self._deliver(a.src, a.tag, payload)
        finally:
            self._recycle(incoming.buffer, payload, view)
        if delivered:
            self.ctx.stats.transfers_received += 1
            self.ctx.stats.bytes_received += a.total
            self._settle(incoming, wire.StreamStatus(ok=True))
        else:
            self._settle(incoming, wire.StreamStatus(ok=False, reason="receiver shutting down"))

    def _recycle(self, buffer: bytearray | mmap.mmap, *views: memoryview) -> None:
        """Back to the pool once the handler returned (every stream is done writing by then).

        A handler that kept an export of the payload (e.g. ``numpy.frombuffer``)
        makes the release fail: that buffer is left to it and not reused.
        """
        try:
            for view in views:
                view.release()
        except BufferError:
            return
        with self._lock:
            self._buffers.give_back(buffer)

    def _wait_verdict(self, incoming: _Incoming) -> wire.StreamStatus:
        """Block until the transfer is settled; fail it if every stream has gone quiet."""
        stall = self.ctx.options.stream_timeout
        while not incoming.settled.wait(min(stall, 1.0)):
            if incoming.progress.idle() >= stall:
                a = incoming.assembly
                self._fail(
                    incoming,
                    f"incomplete after {stall:g}s without progress "
                    f"({len(a.verified)} of {a.streams} streams arrived)",
                )
        assert incoming.verdict is not None
        return incoming.verdict

    def _fail(self, incoming: _Incoming, reason: str, *, count: bool = True) -> None:
        """Fail a transfer still receiving (from any thread); aborts its other streams."""
        with self._lock:
            if incoming.state != "receiving":
                return
            incoming.state = "failed"
            self._forget(incoming)
            receiving = list(incoming.receiving)
        a = incoming.assembly
        if count:
            self._on_loop(self._count_failure)
            log.warning(
                "[%s] transfer %s from %s (tag %r, %d bytes) failed: %s",
                self.ctx.node_id,
                a.transfer_id,
                a.src,
                a.tag,
                a.total,
                reason,
            )
        self._settle(incoming, wire.StreamStatus(ok=False, reason=reason))
        for slot in receiving:
            slot.abort()

    def _count_failure(self) -> None:
        self.ctx.stats.transfers_failed += 1

    @staticmethod
    def _settle(incoming: _Incoming, verdict: wire.StreamStatus) -> None:
        incoming.verdict = verdict
        incoming.settled.set()

    def _forget(self, incoming: _Incoming) -> None:
        """Drop a transfer from the registry (caller holds the lock)."""
        a = incoming.assembly
        if self._incoming.pop((a.src, a.transfer_id), None) is incoming:
            self._incoming_bytes -= a.total

    def _reject(self, reason: str, detail: str, where: str) -> None:
        """Count and log a refusal from a worker thread (counters live on the loop)."""
        self._on_loop(self.ctx.reject, reason, detail, f" from {where}")

    def _on_loop(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            self.ctx.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is closed: nobody is counting any more
            pass


def _best_error(errors: list[BaseException | None]) -> BaseException:
    """The receiver's verdict first, then a real failure, then an abort."""
    real = [e for e in errors if e is not None]
    for kind in (_Refused, TransferError):
        for exc in real:
            if isinstance(exc, kind):
                return exc
    for exc in real:
        if not isinstance(exc, st.StreamAborted):
            return TransferError(f"transfer failed: {exc!r}")
    return TransferError("transfer aborted")


def _answer(sock: socket.socket, status: wire.StreamStatus) -> None:
    try:
        st.send_status(sock, status)
    except OSError:
        pass  # the sender is gone; it will not need our verdict


def _consume_error(future: asyncio.Future[Any]) -> None:
    """Retrieve a finished future's error so asyncio does not report it as never retrieved."""
    if not future.cancelled():
        future.exception()
