"""A socket whose peer keeps up must still give the event loop back.

On loopback the kernel takes every write and has bytes for every read, so a stream's coroutine
never suspends on its own: before, one AMST transfer of 512 MiB kept a 1 ms timer on the same loop
waiting up to 170 ms. These tests drive :class:`LoopSocket` with a fake clock, so what they check is
the rule (yield once the socket has kept the loop for ``FAIR_SLICE``, not before), not timing luck.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from novacron.backends.tcp import loopsocket
from novacron.backends.tcp.loopsocket import FAIR_SLICE, LoopSocket


class FakeClock:
    """``time.monotonic`` that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(loopsocket, "time", fake)
    return fake


@pytest.fixture
def pair():
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
    yield client, accepted
    client.close()
    accepted.close()


async def _io_then_count_turns(io_calls, clock: FakeClock, step: float) -> list[int]:
    """Run ``io_calls`` back to back, the clock moving ``step`` each; after each, how many
    times a callback that re-schedules itself has run (the loop's turns it got)."""
    loop = asyncio.get_running_loop()
    turns = [0]
    stop = False

    def other_task() -> None:
        turns[0] += 1
        if not stop:
            loop.call_soon(other_task)

    loop.call_soon(other_task)
    seen = []
    try:
        for call in io_calls:
            clock.now += step
            await call()
            seen.append(turns[0])
    finally:
        stop = True
    return seen


async def test_writes_that_never_block_yield_the_loop_once_their_slice_is_used(clock, pair) -> None:
    writer, _ = pair
    io = LoopSocket(asyncio.get_running_loop(), writer)
    try:
        sends = [lambda: io.send_all([memoryview(b"x" * 100)], 5.0)] * 4
        seen = await _io_then_count_turns(sends, clock, FAIR_SLICE * 1.01)
        assert seen == [1, 2, 3, 4], "each write past the slice lets the loop run once"
    finally:
        io.close()


async def test_writes_inside_their_slice_keep_the_loop(clock, pair) -> None:
    """Yielding on every write would cost a loop turn per piece of every record."""
    writer, _ = pair
    io = LoopSocket(asyncio.get_running_loop(), writer)
    try:
        sends = [lambda: io.send_all([memoryview(b"x" * 100)], 5.0)] * 4
        seen = await _io_then_count_turns(sends, clock, FAIR_SLICE / 10)
        assert seen == [0, 0, 0, 0]
    finally:
        io.close()


async def test_reads_that_never_wait_yield_the_loop_once_their_slice_is_used(clock, pair) -> None:
    writer, reader = pair
    writer.sendall(b"y" * 400)  # (on loopback, in the reader's queue once sendall returns)
    io = LoopSocket(asyncio.get_running_loop(), reader)
    buf = memoryview(bytearray(100))
    try:
        reads = [lambda: io.read_exactly(buf, 5.0)] * 4
        seen = await _io_then_count_turns(reads, clock, FAIR_SLICE * 1.01)
        assert seen == [1, 2, 3, 4]
        assert bytes(buf) == b"y" * 100
    finally:
        io.close()
