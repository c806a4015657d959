"""Blocking socket I/O for bulk-data streams, meant to run in worker threads.

Why threads: a bulk stream is a handful of huge ``sendall`` / ``recv_into``
calls and checksums over megabyte chunks. CPython releases the GIL for all of
them, so one thread per stream moves data at close to what the kernel can do,
whereas asyncio would wake up per 64 KiB read and pay Python overhead on
every piece. These functions only move and check bytes and never touch
asyncio objects; :func:`run_in_thread` (over a :class:`WorkerPool`) is the one
bridge back to the event loop.

Every stream socket lives in a :class:`SocketSlot` so that the event loop can
abort it from outside (a crash, a failed sibling stream, a cancelled
transfer): ``shutdown()`` wakes a thread blocked in ``recv``/``send`` at once,
which ``close()`` from another thread would not do.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from xxhash import xxh3_64_intdigest

from novacron.runtime import TransferError

from ..tls import peer_identities
from . import wire
from .framing import LENGTH_PREFIX, PREFIX_SIZE, FrameTooLarge, encode_frame

log = logging.getLogger(__name__)

T = TypeVar("T")
F = TypeVar("F")

#: Bytes moved per send/recv call and checksummed at a time: big enough that
#: Python overhead is noise, small enough to stay in cache between the
#: checksum and the copy into the kernel.
DEFAULT_CHUNK = 1024 * 1024

# --- checksums ------------------------------------------------------------------------------

#: ``checksum(data, value)``: the checksum of ``data`` continuing from ``value`` (0 to start).
Checksum = Callable[[Any, int], int]

#: Every algorithm gives the same value over a slice whether it is checksummed in one call or in
#: successive calls, provided each call but the last covers a whole number of these blocks from
#: the slice's start. CRCs do not need it; ``xxh3-1m`` does. Callers split only at multiples.
CHECKSUM_BLOCK = 1024 * 1024


def xxh3_blocks(data: Any, value: int) -> int:
    """``xxh3-1m``: XXH3-64 of each :data:`CHECKSUM_BLOCK` of ``data`` in turn, seeded with the
    value so far, keeping the low 32 bits (the width of the trailers).

    Why: 4x the speed of ISA-L's CRC-32 on CPUs without AVX-512 (46 against 11 GB/s on the
    AMD EPYC hosts of benchmarks/README.md), and a checksum pass over every byte on both ends
    is a large share of a loopback transfer's CPU time. Like the CRCs it detects random
    corruption but is no defence against a forger (that is TLS's job).
    """
    view = memoryview(data)
    if view.itemsize != 1 or view.ndim != 1:
        view = view.cast("B")
    for pos in range(0, view.nbytes, CHECKSUM_BLOCK):
        value = xxh3_64_intdigest(view[pos : pos + CHECKSUM_BLOCK], value) & 0xFFFF_FFFF
    return value


def checksum_through(
    checksum: Checksum, view: memoryview, value: int, done: int, end: int
) -> tuple[int, int]:
    """Extend a running checksum of ``view[:done]`` towards ``view[:end]``, stopping at the last
    whole :data:`CHECKSUM_BLOCK` before ``end`` unless ``end`` is the end of ``view``; returns
    ``(value, done)``. Lets I/O move pieces of any size while checksums split only at blocks."""
    if end < view.nbytes:
        end -= end % CHECKSUM_BLOCK
    if end > done:
        value, done = checksum(view[done:end], value), end
    return value, done


def _available_checksums() -> dict[str, Checksum]:
    """Checksum functions by wire name; every one releases the GIL on large buffers.

    ``xxh3-1m`` (:func:`xxh3_blocks`; ``xxhash`` is a core dependency) is the default: 46 GB/s
    on data in cache on the AMD EPYC hosts, 4x ISA-L's CRC-32 there (it releases the GIL too:
    two threads hash in parallel). ``crc32`` is the zlib/gzip CRC-32 whichever library computes it: ISA-L's
    (``isal``, a core dependency) folds with PCLMULQDQ / VPCLMULQDQ and runs at 50-60 GB/s on
    data in cache with AVX-512 and 9-11 GB/s without, against ~20 GB/s for the ``crc32c``
    package's SSE4.2 CRC32C and ~2.5 GB/s for zlib's own; both ends agree bit for bit whatever
    library each uses. A receiver accepts each of them, so older or differently built senders
    are understood.
    """
    algorithms: dict[str, Checksum] = {"xxh3-1m": xxh3_blocks, "crc32": zlib.crc32}
    try:
        from isal import isal_zlib  # type: ignore[import-not-found]
    except ImportError:  # pragma: no cover - isal is a dependency
        pass
    else:
        algorithms["crc32"] = isal_zlib.crc32
    try:  # hardware CRC32C (SSE4.2 / ARMv8)
        import crc32c  # type: ignore[import-not-found]
    except ImportError:
        pass
    else:
        algorithms["crc32c"] = crc32c.crc32c
    return algorithms


CHECKSUMS: dict[str, Checksum] = _available_checksums()
#: What this node's transfers and streams use; a receiver still accepts every algorithm in
#: :data:`CHECKSUMS`. (On AVX-512 hosts ISA-L's CRC-32 may be as fast; not measured side by side.)
PREFERRED_CHECKSUM = "xxh3-1m"

# --- congestion control ---------------------------------------------------------------------

_PROC = Path("/proc/sys/net/ipv4")


def available_congestion() -> frozenset[str]:
    """Congestion-control algorithms this kernel offers (empty off Linux)."""
    if not hasattr(socket, "TCP_CONGESTION"):
        return frozenset()
    try:
        text = (_PROC / "tcp_available_congestion_control").read_text()
    except OSError:
        return frozenset()
    return frozenset(text.split())


def default_congestion() -> str:
    """The kernel's default algorithm (what a socket uses unless told otherwise)."""
    try:
        return (_PROC / "tcp_congestion_control").read_text().strip() or "default"
    except OSError:
        return "default"


def resolve_congestion(requested: str | None) -> tuple[str | None, str | None]:
    """``(algorithm to set or None for the default, why we fell back or None)``."""
    if requested is None:
        return None, None
    offered = available_congestion()
    if requested in offered:
        return requested, None
    if not offered:
        why = "this platform does not let sockets choose their congestion control"
    else:
        why = f"the kernel offers {', '.join(sorted(offered))}"
    return None, f"congestion control {requested!r} unavailable ({why}); using the default"


def apply_congestion(sock: socket.socket, algorithm: str | None) -> str:
    """Set ``algorithm`` on ``sock`` (if given) and return what the socket really uses."""
    if algorithm is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, algorithm.encode())
        except OSError as exc:  # e.g. EPERM: not in tcp_allowed_congestion_control
            log.info("could not set congestion control %r (%s); using the default", algorithm, exc)
    if hasattr(socket, "TCP_CONGESTION"):
        try:
            raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16)
            return raw.split(b"\0", 1)[0].decode() or default_congestion()
        except OSError:
            pass
    return default_congestion()


# --- abortable sockets and shared progress ---------------------------------------------------


class StreamAborted(ConnectionError):
    """The event loop aborted this stream (crash, cancellation, a failed sibling)."""


class SocketSlot:
    """Holds a stream's current socket so another thread can abort it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self.aborted = threading.Event()

    def set(self, sock: socket.socket) -> socket.socket:
        """Track ``sock`` (e.g. after a TLS wrap); aborts it at once if already aborted."""
        with self._lock:
            self._sock = sock
            if self.aborted.is_set():
                _shutdown(sock)
                raise StreamAborted("stream aborted")
        return sock

    def abort(self) -> None:
        with self._lock:
            self.aborted.set()
            if self._sock is not None:
                _shutdown(self._sock)

    def check(self) -> None:
        if self.aborted.is_set():
            raise StreamAborted("stream aborted")


def _shutdown(sock: socket.socket) -> None:
    # socket.socket.shutdown, not SSLSocket.shutdown: the latter drops the SSL
    # object under the feet of the thread using it.
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


class Progress:
    """When any stream of one transfer last moved bytes (written from threads)."""

    def __init__(self) -> None:
        self.last = time.monotonic()

    def touch(self) -> None:
        self.last = time.monotonic()

    def idle(self) -> float:
        return time.monotonic() - self.last


# --- blocking frame I/O ---------------------------------------------------------------------


def write_frame(sock: socket.socket, body: bytes) -> None:
    sock.sendall(encode_frame(body, wire.CONTROL_MAX_FRAME))


def read_frame(sock: socket.socket, *, progress: Progress | None = None, stall_timeout: float = 0.0) -> bytes:
    """Read exactly one control frame and not a byte more (raw data may follow it).

    With ``progress``, socket timeouts are tolerated while the transfer as a
    whole keeps moving (a sibling stream may still be busy).
    """
    (length,) = LENGTH_PREFIX.unpack(_recv_exactly(sock, PREFIX_SIZE, progress, stall_timeout))
    if length > wire.CONTROL_MAX_FRAME:
        raise FrameTooLarge(f"control frame of {length} bytes, above the limit of {wire.CONTROL_MAX_FRAME}")
    return _recv_exactly(sock, length, progress, stall_timeout)


def _recv_exactly(sock: socket.socket, n: int, progress: Progress | None, stall_timeout: float) -> bytes:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        try:
            k = sock.recv_into(view[got:])
        except TimeoutError:
            if progress is not None and progress.idle() < stall_timeout:
                continue
            raise
        if k == 0:
            what = "mid-frame" if got else "before the expected frame"
            raise ConnectionError(f"connection closed {what}")
        got += k
    return bytes(buf)


# --- the sending side -----------------------------------------------------------------------


def connect(
    slot: SocketSlot,
    host: str,
    port: int,
    *,
    timeout: float,
    preamble: bytes,
    tls: ssl.SSLContext | None,
    server_name: str,
) -> socket.socket:
    """Open a data or message connection: TCP, preamble, then TLS if configured."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = slot.set(socket.socket(family, kind, proto))
    try:
        sock.settimeout(timeout)
        sock.connect(address)
        sock.sendall(preamble)
        if tls is not None:
            sock = slot.set(tls.wrap_socket(sock, server_hostname=server_name))
        return sock
    except BaseException:
        sock.close()
        raise


def dial(
    slot: SocketSlot,
    dst: str,
    host: str,
    port: int,
    *,
    preamble: bytes,
    tls: ssl.SSLContext | None,
    check_identity: bool,
    timeout: float,
    congestion: str | None,
) -> tuple[socket.socket, str]:
    """Connect a bulk connection to node ``dst``: :func:`connect`, then check that a
    TLS server is who we meant to reach, then apply the congestion control.

    Returns the socket and the congestion control it really uses. Every
    failure but an abort is a :class:`~novacron.runtime.TransferError` whose
    message says why, in the words both transfers and streams report.
    """
    where = f"{dst} at {host}:{port}"
    try:
        sock = connect(slot, host, port, timeout=timeout, preamble=preamble, tls=tls, server_name=dst)
    except StreamAborted:
        raise
    except ConnectionRefusedError:
        raise TransferError(f"{where} is unreachable: connection refused") from None
    except TimeoutError:
        raise TransferError(f"{where} is unreachable: no connection within {timeout:g}s") from None
    except OSError as exc:
        raise TransferError(f"cannot connect to {where}: {exc}") from None
    try:
        if tls is not None and check_identity:
            shown = peer_identities(sock.getpeercert())  # type: ignore[attr-defined]
            if dst not in shown:
                raise TransferError(f"{where} presented a certificate for {', '.join(sorted(shown))}")
        return sock, apply_congestion(sock, congestion)
    except BaseException:
        sock.close()
        raise


def send_slice(
    sock: socket.socket,
    view: memoryview,
    checksum: Checksum,
    progress: Progress,
    slot: SocketSlot,
    *,
    chunk: int = DEFAULT_CHUNK,
    rate_limit: float | None = None,
) -> int:
    """Send ``view``, checksumming as we go; returns the checksum.

    Each piece is checksummed just before it is sent, on this thread: the
    checksum's pass brings the piece into this core's cache and the kernel's
    copy reads it from there. (A helper thread checksumming ahead on the
    other core measured 12% slower on a busy two-core machine: the copy then
    read from the shared cache or memory.)

    ``rate_limit`` (bytes/s) paces the stream, e.g. to leave room for other
    traffic; waiting is done on the slot's abort event so an abort is prompt.
    """
    crc = done = 0
    started = time.monotonic()
    for pos in range(0, len(view), chunk):
        piece = view[pos : pos + chunk]
        crc, done = checksum_through(checksum, view, crc, done, pos + len(piece))
        sock.sendall(piece)
        progress.touch()
        if rate_limit:
            due = started + (pos + len(piece)) / rate_limit
            delay = due - time.monotonic()
            if delay > 0 and slot.aborted.wait(delay):
                raise StreamAborted("stream aborted")
    return crc


def wait_status(sock: socket.socket, progress: Progress, stall_timeout: float) -> wire.StreamStatus:
    body = read_frame(sock, progress=progress, stall_timeout=stall_timeout)
    return wire.decode(wire.StreamStatus, body)


# --- the receiving side ---------------------------------------------------------------------


def accept_stream(
    sock: socket.socket,
    slot: SocketSlot,
    *,
    tls: ssl.SSLContext | None,
    timeout: float,
    first: type[F] = wire.StreamHeader,  # type: ignore[assignment]
) -> tuple[socket.socket, F, dict[str, Any] | None]:
    """After the preamble of a data or stream connection: TLS handshake, then
    the connection's first frame, decoded as ``first``.

    Returns the (possibly TLS-wrapped) socket, that frame and the peer's
    certificate (``None`` without TLS). Reads nothing beyond the frame.
    """
    peercert = None
    try:
        sock.setblocking(True)
        sock.settimeout(timeout)
        slot.set(sock)
        if tls is not None:
            sock = slot.set(tls.wrap_socket(sock, server_side=True))
            peercert = sock.getpeercert()
        header = wire.decode(first, read_frame(sock))
    except BaseException:
        sock.close()
        raise
    return sock, header, peercert


def receive_slice(
    sock: socket.socket,
    view: memoryview,
    checksum: Checksum,
    progress: Progress,
    stall_timeout: float,
    *,
    chunk: int = DEFAULT_CHUNK,
) -> tuple[int, int]:
    """Receive exactly ``len(view)`` bytes into ``view``, then the trailer.

    Returns ``(checksum computed here, checksum the sender announced)``.
    """
    crc = done = 0
    total = len(view)
    pos = 0
    while pos < total:
        end = min(pos + chunk, total)
        filled = pos
        while filled < end:
            try:
                n = sock.recv_into(view[filled:end])
            except TimeoutError:
                if progress.idle() < stall_timeout:
                    continue
                raise TimeoutError(
                    f"no data for {stall_timeout:g}s after {filled} of {total} bytes"
                ) from None
            if n == 0:
                raise ConnectionError(f"connection closed after {filled} of {total} bytes")
            filled += n
            progress.touch()
        crc, done = checksum_through(checksum, view, crc, done, end)
        pos = end
    trailer = wire.decode(
        wire.StreamTrailer, read_frame(sock, progress=progress, stall_timeout=stall_timeout)
    )
    return crc, trailer.checksum


def send_status(sock: socket.socket, status: wire.StreamStatus) -> None:
    write_frame(sock, wire.encode(status))


# --- the bridge back to asyncio -------------------------------------------------------------


class WorkerPool:
    """Daemon threads that are reused and never capped.

    Why not a ``ThreadPoolExecutor``: a cap could park a transfer's receiving
    streams behind the sending streams that wait for them (both ends live in
    one process in a LocalCluster), and its non-daemon threads would hold up
    interpreter exit while blocked in a socket call. Why not a new thread per
    job: ``Thread.start()`` waits until the new thread has run, which under
    GIL contention (eight streams busy moving data) delays the event loop by
    milliseconds per stream. An idle worker picks a job up without the caller
    waiting for anything; workers idle for ``idle_timeout`` seconds exit.
    """

    def __init__(self, idle_timeout: float = 60.0) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # workers waiting for a job and not yet promised one
        self._idle_timeout = idle_timeout

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            grow = self._idle == 0
            if not grow:
                self._idle -= 1  # promised to one waiting worker
        self._jobs.put(job)
        if grow:
            threading.Thread(target=self._work, name="novacron-worker", daemon=True).start()

    def _work(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=self._idle_timeout)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:  # nobody was promised this worker: retire
                        self._idle -= 1
                        return
                continue  # a job was promised to a waiting worker: wait for it
            job()
            with self._lock:
                self._idle += 1


_pool = WorkerPool()


def worker_pool() -> WorkerPool:
    """The process-wide pool behind :func:`run_in_thread`."""
    return _pool


def run_in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> asyncio.Future[T]:
    """Run blocking ``fn(*args, **kwargs)`` in a worker thread; await the returned future."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if future.done():
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def job() -> None:
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            outcome: tuple[bool, Any] = (False, exc)
        else:
            outcome = (True, result)
        try:
            loop.call_soon_threadsafe(settle, *outcome)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass

    _pool.submit(job)
    return future
