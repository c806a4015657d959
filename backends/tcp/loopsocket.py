"""A connected socket (plain TCP or TLS) driven by the event loop: no threads, no copies.

Record streams (:mod:`.records`) move their bytes through this class rather
than through asyncio transports or worker threads. Prototypes measured on
loopback (2 idle cores, 512 KiB records with CRC32C, sender and receiver in
separate processes on uvloop, ``iperf3`` at ~40 Gbit/s in the same minutes):

* a worker-thread hop per record (hand the ``sendall`` to a thread, wake the
  loop when it is done) reached 11 Gbit/s on one stream, 20 on eight: two
  context switches per record on cores that are busy copying bytes;
* non-blocking ``sendmsg`` / ``recv_into`` straight from the event loop
  reached 36-48 Gbit/s: the kernel's socket buffers keep the connection busy
  while the loop comes back for the next record, and the loop rarely has to
  wait at all (one wait per ten records);
* asyncio transports would copy what the kernel does not take at once (the
  stock selector loop buffers it in a ``bytearray``) and, with TLS, copy the
  ciphertext once more through a memory BIO.

So a :class:`LoopSocket` calls ``sendmsg`` on memoryviews of the caller's
data (header and data in one system call) and ``recv_into`` the receiver's
buffer, and waits for readiness only when the kernel says "would block". A
TLS socket (:class:`ssl.SSLSocket` in non-blocking mode) goes through the
same code: OpenSSL's want-read / want-write become the same waits.

A reader that has to wait sets ``SO_RCVLOWAT`` to what it still expects
(at most 1 MiB), so the kernel wakes it once per large copy rather than per
burst of segments. Record streams measured 8-12% more goodput with it at
256 KiB (1 and 8 streams, same run, 32 -> 34-35 Gbit/s); AMST's 4 MiB
chunks another 5-10% at 1 MiB. A wait that times out checks whether bytes
arrived below the mark before calling the peer stalled, so a peer trickling
a record slowly is still not cut off.

For big records among a node's busy streams, :meth:`LoopSocket.in_thread`
hands the socket to a worker thread for the duration of one record
(:meth:`~LoopSocket.blocking_send`, :meth:`~LoopSocket.blocking_read`, with
``poll`` for the waits): with multi-megabyte records the hop is cheap, and
the copies of several streams then run on several cores. Plain TCP only: an
SSL socket must not be shared between threads.

A socket that never has to wait never gives the loop back: on loopback a peer
that keeps up means ``sendmsg`` and ``recv_into`` never say "would block", and
awaiting a coroutine that does not suspend does not yield. One stream's
records then went out back to back for tens of milliseconds while every other
task on the loop waited (the other streams, timers, the reply to a finished
worker-thread job: live migration's next batch, encoded in 1-3 ms, started
only when the previous one had ended). So a socket that has kept the loop for
:data:`FAIR_SLICE` yields it once before going on.

Waits have a *stall* timeout (no progress at all for that long), which is
what a stream timeout means; a wait can also be told to wait forever (an
idle stream between records). :meth:`LoopSocket.close` wakes a waiting
coroutine with :class:`ConnectionAbortedError`: since only the loop ever
touches the socket, closing it from a crash or a ``close()`` is safe at any
time.
"""

from __future__ import annotations

import asyncio
import select
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

#: The most a reader asks the kernel to gather before waking it (``SO_RCVLOWAT``).
_MAX_LOW_WATER = 1024 * 1024

#: The longest a socket's reads or writes keep the event loop without yielding it (see above).
#: A trade: AMST over loopback, 1 GiB, five interleaved A/B rounds: at 0.5 ms a 1 ms timer on the
#: sender was late by 4 ms (median; 8.6 ms at most) but goodput fell 5-8% (1 and 8 streams); at
#: 2 ms, 14 ms late (29 at most) and no loss at 1 stream; without yielding, 115 ms (154).
FAIR_SLICE = 0.002

#: What a non-blocking read or write raises when it would block.
_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class LoopSocket:
    """A connected socket in non-blocking mode, read and written from one event loop.

    The socket stays registered for readability for its whole life (one
    ``epoll_ctl`` instead of two per wait): a reader waiting for bytes is
    woken, and bytes nobody waits for are reported to ``on_unsolicited``
    (a sender uses that to notice a peer that hung up while the stream was
    idle). ``on_unsolicited=None`` leaves them for the next read.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        *,
        on_unsolicited: Callable[[], None] | None = None,
    ) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.tls = isinstance(sock, ssl.SSLSocket)
        self._loop = loop
        self._fd = sock.fileno()
        self._on_unsolicited = on_unsolicited
        self._read_waiter: asyncio.Future[None] | None = None
        self._write_waiter: asyncio.Future[None] | None = None
        self._close_reason = "closed"
        self._low_water = 1  # the kernel's default SO_RCVLOWAT
        self.closed = False
        self._in_thread = False  # a worker thread is moving bytes (see in_thread)
        #: bytes written by :meth:`send_all` since the socket was created
        self.bytes_written = 0
        self._resumed = time.monotonic()  # when this socket's I/O last got the loop back
        loop.add_reader(self._fd, self._readable)

    # --- readiness --------------------------------------------------------------------------------

    def _readable(self) -> None:
        waiter = self._read_waiter
        if waiter is not None:
            if not waiter.done():
                waiter.set_result(None)
        elif self._on_unsolicited is not None:
            self._on_unsolicited()

    def _writable(self) -> None:
        waiter = self._write_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self, writing: bool, timeout: float | None) -> None:
        """Wait until the socket is writable (``writing``) or readable."""
        if self.closed:
            raise ConnectionAbortedError(self._close_reason)
        waiter = self._loop.create_future()
        if writing:
            self._write_waiter = waiter
            self._loop.add_writer(self._fd, self._writable)
        else:
            self._read_waiter = waiter
        timer = None if timeout is None else self._loop.call_later(timeout, _expire, waiter, timeout)
        try:
            await waiter
            self._resumed = time.monotonic()
        finally:
            if timer is not None:
                timer.cancel()
            if writing:
                self._write_waiter = None
                if not self.closed:
                    self._loop.remove_writer(self._fd)
            else:
                self._read_waiter = None

    # --- I/O ----------------------------------------------------------------------------------------

    async def _share_loop(self) -> None:
        """Yield the loop once if this socket's I/O has kept it for :data:`FAIR_SLICE`."""
        now = time.monotonic()
        if now - self._resumed >= FAIR_SLICE:
            await asyncio.sleep(0)
            self._resumed = time.monotonic()

    async def send_all(self, buffers: list[memoryview], stall_timeout: float | None) -> None:
        """Write every buffer, in order; raises ``TimeoutError`` after ``stall_timeout``
        seconds without progress, ``OSError`` when the connection fails."""
        if self.tls:  # SSLSocket has no sendmsg: one buffer at a time
            for buf in buffers:
                while buf.nbytes:
                    try:
                        n = self.sock.send(buf)
                    except _WOULD_BLOCK as exc:  # TLS may need to read to write (rarely)
                        await self._wait(not isinstance(exc, ssl.SSLWantReadError), stall_timeout)
                        continue
                    self.bytes_written += n
                    buf = buf[n:]
            return
        pending = [b for b in buffers if b.nbytes]
        while pending:
            try:
                n = self.sock.sendmsg(pending)
            except _WOULD_BLOCK:
                await self._wait(True, stall_timeout)
                continue
            self.bytes_written += n
            while pending and n >= pending[0].nbytes:
                n -= pending.pop(0).nbytes
            if n:
                pending[0] = pending[0][n:]
        await self._share_loop()

    async def recv_into(self, view: memoryview, stall_timeout: float | None) -> int:
        """Read at least one byte into ``view`` (0 at end of stream).

        When it has to wait, it asks the kernel not to report the socket
        readable before ``len(view)`` bytes (at most ``_MAX_LOW_WATER``) are
        there, so ``view`` must be bytes the caller certainly expects (the rest
        of a frame or record). An end of stream or an error wakes it anyway.
        """
        while True:
            try:
                n = self.sock.recv_into(view)
            except _WOULD_BLOCK as exc:  # TLS may need to write to read (rarely)
                writing = isinstance(exc, ssl.SSLWantWriteError)
                if not writing:
                    self._expect(view.nbytes)
                try:
                    await self._wait(writing, stall_timeout)
                except TimeoutError:
                    if writing or self._low_water <= 1:
                        raise
                    try:  # bytes may have come, just fewer than the low-water mark: progress
                        return self.sock.recv_into(view)
                    except _WOULD_BLOCK:
                        raise TimeoutError(f"no progress for {stall_timeout:g}s") from None
                continue
            await self._share_loop()
            return n

    def _expect(self, nbytes: int) -> None:
        """Set ``SO_RCVLOWAT`` for the next wait: one wake-up and one big copy per
        ``nbytes`` instead of one per segment burst the sender gets out. (TLS
        records are read whole by OpenSSL, so TLS sockets keep the default.)"""
        want = 1 if self.tls else max(1, min(nbytes, _MAX_LOW_WATER))
        if want != self._low_water:
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, want)
            except OSError:  # not supported here: keep waking per byte
                want = 1
            self._low_water = want

    async def read_exactly(
        self, view: memoryview, stall_timeout: float | None, *, idle_first: bool = False
    ) -> bool:
        """Fill ``view`` completely.

        With ``idle_first`` the wait for the *first* byte has no timeout and
        an end of stream before it returns ``False`` (a clean end between
        records); any later end of stream is an :class:`IncompleteRead`.
        """
        got = 0
        total = view.nbytes
        while got < total:
            n = await self.recv_into(view[got:], None if idle_first and not got else stall_timeout)
            if n == 0:
                if idle_first and not got:
                    return False
                raise IncompleteRead(f"connection closed after {got} of {total} bytes")
            got += n
        return True

    # --- bulk I/O in a worker thread -----------------------------------------------------------------

    async def in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(self, *args)`` in a worker thread, which may use :meth:`blocking_send`
        and :meth:`blocking_read` meanwhile (and nothing else may touch the socket).

        For large records on plain TCP: the event loop is then free for other
        streams while the kernel copies this one's bytes, and a node moving
        many streams uses more than one core. The socket is not watched for
        readability meanwhile (its bytes are the worker's). :meth:`close`
        during the call shuts the socket down, which fails the worker's
        system call at once, and closes it when the worker is out. A caller
        cancelled meanwhile closes the socket (a record is half-moved) and
        does not wait for the worker.
        """
        from .streams import run_in_thread  # (streams does not import this module)

        if self.closed:
            raise ConnectionAbortedError(self._close_reason)
        self._in_thread = True
        self._loop.remove_reader(self._fd)
        future = run_in_thread(fn, self, *args)
        future.add_done_callback(self._out_of_thread)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            self.close("cancelled mid-record")
            raise
        except OSError:
            if self.closed:  # closed meanwhile: say so, as a wait on the loop would
                raise ConnectionAbortedError(self._close_reason) from None
            raise

    def _out_of_thread(self, future: asyncio.Future[Any]) -> None:
        if not future.cancelled():
            future.exception()  # (retrieved: a cancelled caller no longer awaits it)
        self._in_thread = False
        if self.closed:  # close() was called meanwhile and left the descriptor to us
            self._release()
        else:
            self._loop.add_reader(self._fd, self._readable)

    def blocking_send(self, buffers: list[memoryview], stall_timeout: float | None) -> None:
        """:meth:`send_all` for a worker thread (see :meth:`in_thread`)."""
        pending = [b for b in buffers if b.nbytes]
        while pending:
            try:
                n = self.sock.sendmsg(pending)
            except _WOULD_BLOCK:
                self._poll(select.POLLOUT, stall_timeout)
                continue
            self.bytes_written += n
            while pending and n >= pending[0].nbytes:
                n -= pending.pop(0).nbytes
            if n:
                pending[0] = pending[0][n:]

    def blocking_read(self, view: memoryview, stall_timeout: float | None) -> None:
        """Fill ``view`` from a worker thread (see :meth:`in_thread`); an end of stream
        before it is full is an :class:`IncompleteRead`."""
        got, total = 0, view.nbytes
        while got < total:
            try:
                n = self.sock.recv_into(view[got:])
            except _WOULD_BLOCK:
                self._expect(total - got)
                try:
                    self._poll(select.POLLIN, stall_timeout)
                except TimeoutError:
                    try:  # bytes may have come, just fewer than the low-water mark: progress
                        n = self.sock.recv_into(view[got:])
                    except _WOULD_BLOCK:
                        raise TimeoutError(f"no progress for {stall_timeout:g}s") from None
                else:
                    continue
            if n == 0:
                raise IncompleteRead(f"connection closed after {got} of {total} bytes")
            got += n

    def _poll(self, events: int, timeout: float | None) -> None:
        poller = select.poll()
        poller.register(self._fd, events)
        if not poller.poll(None if timeout is None else max(1, int(timeout * 1000))):
            raise TimeoutError(f"no progress for {timeout:g}s")

    def close(self, reason: str = "closed") -> None:
        """Close the socket now; a coroutine waiting on it gets ``ConnectionAbortedError(reason)``."""
        if self.closed:
            return
        self.closed = True
        self._close_reason = reason
        if self._in_thread:
            # A worker is in a system call on it: shutting it down wakes the worker with
            # an error at once; the descriptor is closed when the worker is out (closing
            # it now could let a new socket reuse the number under the worker's feet).
            try:
                socket.socket.shutdown(self.sock, socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self._release()

    def _release(self) -> None:
        self._loop.remove_reader(self._fd)
        if self._write_waiter is not None:
            self._loop.remove_writer(self._fd)
        for waiter in (self._read_waiter, self._write_waiter):
            if waiter is not None and not waiter.done():
                waiter.set_exception(ConnectionAbortedError(self._close_reason))
        self.sock.close()


class IncompleteRead(ConnectionError):
    """The peer closed the connection in the middle of something."""


def _expire(waiter: asyncio.Future[None], timeout: float) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError(f"no progress for {timeout:g}s"))
