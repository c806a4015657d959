"""The floor under any real transfer on this machine: plain TCP sockets moving a payload memory to memory.

``iperf3`` sends one 128 KiB buffer over and over, and its receiver reads into one buffer: its
bytes never leave the CPU caches. A transfer that delivers a real payload reads it from memory on
one end and writes it into memory on the other, and on loopback those two copies are most of the
work. This measures them with nothing else around: N blocking sockets with a thread per stream on
each end (the copies release the GIL), the payload cut into N contiguous slices, no framing, no
checksum, no reassembly, the receive buffer allocated and faulted in once and reused (as AMST's
is). Two processes, like the other real-backend benchmarks. Nothing real can be faster; the gap
between this and iperf3 is what moving real memory costs here, not protocol overhead.

    floor = RawCopy(payload)
    gbps = floor.gbps(streams=8)
    floor.close()
"""

from __future__ import annotations

import mmap
import multiprocessing as mp
import socket
import threading
import time


def _slices(size: int, streams: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of each stream's contiguous share of ``size`` bytes."""
    cuts = [size * i // streams for i in range(streams + 1)]
    return list(zip(cuts, cuts[1:], strict=False))


def _receive(conn: socket.socket, view: memoryview) -> None:
    got = 0
    while got < len(view):
        n = conn.recv_into(view[got:], min(len(view) - got, 1 << 20))
        if n == 0:
            raise ConnectionError("sender closed mid-transfer")
        got += n


def _receiver(commands: mp.Queue, answers: mp.Queue) -> None:
    """One process: for each ``(size, streams)`` command, receive one payload into a reused buffer,
    then answer one byte on the first stream."""
    buffer: mmap.mmap | None = None
    conns: list[socket.socket] = []
    listener = socket.create_server(("127.0.0.1", 0))
    answers.put(listener.getsockname()[1])
    while (command := commands.get()) != "stop":
        size, streams = command
        if buffer is None or len(buffer) != size:
            buffer = mmap.mmap(-1, size)
            view = memoryview(buffer)
            for page in range(0, size, mmap.PAGESIZE):  # fault it in once, outside any timing
                view[page] = 0
            del view
        if len(conns) != streams:
            for c in conns:
                c.close()
            answers.put("listening")
            accepted = [listener.accept()[0] for _ in range(streams)]
            conns = [None] * streams  # type: ignore[list-item]
            for c in accepted:  # each stream says which slice it carries
                conns[c.recv(1)[0]] = c
        view = memoryview(buffer)
        threads = [
            threading.Thread(target=_receive, args=(c, view[a:b]))
            for c, (a, b) in zip(conns, _slices(size, streams), strict=True)
        ]
        for t in threads:
            t.start()
        answers.put("ready")
        for t in threads:
            t.join()
        del view
        conns[0].sendall(b"k")
    for c in conns:
        c.close()
    listener.close()


class RawCopy:
    """A receiver process and the sending side; :meth:`gbps` moves the payload once."""

    def __init__(self, payload: bytes | bytearray | memoryview) -> None:
        self.payload = memoryview(payload).cast("B")
        ctx = mp.get_context("spawn")
        self._commands, self._answers = ctx.Queue(), ctx.Queue()
        self._process = ctx.Process(target=_receiver, args=(self._commands, self._answers), daemon=True)
        self._process.start()
        self._port = self._answers.get(timeout=60)
        self._conns: list[socket.socket] = []

    def gbps(self, streams: int) -> float:
        """Goodput of one transfer of the payload over ``streams`` connections, in Gbit/s: from the
        first byte sent to the receiver's answer that every byte is in its buffer."""
        size = len(self.payload)
        self._commands.put((size, streams))
        if len(self._conns) != streams:
            for c in self._conns:
                c.close()
            assert self._answers.get(timeout=60) == "listening"
            self._conns = [socket.create_connection(("127.0.0.1", self._port)) for _ in range(streams)]
            for i, c in enumerate(self._conns):
                c.sendall(bytes([i]))
        assert self._answers.get(timeout=60) == "ready"
        threads = [
            threading.Thread(target=c.sendall, args=(self.payload[a:b],))
            for c, (a, b) in zip(self._conns, _slices(size, streams), strict=True)
        ]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if self._conns[0].recv(1) != b"k":
            raise ConnectionError("the raw receiver did not confirm the transfer")
        return size * 8 / (time.perf_counter() - started) / 1e9

    def close(self) -> None:
        self._commands.put("stop")
        for c in self._conns:
            c.close()
        self._process.join(timeout=30)
