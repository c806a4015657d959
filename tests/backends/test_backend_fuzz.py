"""Hostile bytes never take a node down.

A live node (on its own event-loop thread) is attacked through raw TCP
connections with random bytes, mutated frames, frames before hello, oversized
length prefixes and truncated frames. Every attack is counted under a named
reason, and afterwards the node still answers a real peer.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
from _backend_testkit import Orphan, Ping, PingPong, wait_until
from hypothesis import example, given, settings
from hypothesis import strategies as st

from novacron.backends import LocalCluster
from novacron.backends.tcp import wire
from novacron.backends.tcp.framing import DEFAULT_MAX_FRAME_SIZE, encode_frame, frame_header
from novacron.runtime import codec

PREAMBLE = wire.MESSAGE_PREAMBLE
HELLO = encode_frame(wire.encode(wire.Hello(version=wire.PROTOCOL_VERSION, node_id="peer")))


class LiveCluster:
    """A target node and a real peer, running on an event loop in another thread."""

    def __init__(self, base_dir: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.apps: dict[str, PingPong] = {}
        self.cluster = LocalCluster(base_dir)
        self.call(
            self.cluster.add_nodes(
                ["target", "peer"], lambda rt: self.apps.setdefault(rt.node_id, PingPong(rt))
            )
        )
        self.port = self.cluster.runtime("target").address[1]

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def rejected(self) -> dict[str, int]:
        async def read() -> dict[str, int]:
            return dict(self.cluster.runtime("target").stats.rejected)

        return self.call(read())

    def throw(self, blob: bytes) -> None:
        """Send ``blob`` on a fresh connection, then wait until the node hangs up."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            try:
                sock.sendall(blob)
                sock.shutdown(socket.SHUT_WR)
                while sock.recv(65536):
                    pass
            except OSError:
                pass  # the node hung up first (reset, broken pipe, not connected): fine

    def close(self) -> None:
        self.call(self.cluster.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveCluster]:
    cluster = LiveCluster(tmp_path_factory.mktemp("fuzz"))
    yield cluster
    cluster.close()


# --- what an attacker sends -------------------------------------------------------------------

messages = st.one_of(
    st.builds(Ping, st.integers(-(2**63), 2**63 - 1)),
    st.builds(Orphan, st.text(max_size=40)),
)


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes:
    """Hello, then a real message frame whose body is bit-flipped, cut or extended."""
    body = bytearray(codec.encode(draw(messages)))
    how = draw(st.sampled_from(["flip", "truncate", "extend"]))
    if how == "flip":
        for _ in range(draw(st.integers(1, 8))):
            body[draw(st.integers(0, len(body) - 1))] ^= 1 << draw(st.integers(0, 7))
    elif how == "truncate":
        body = body[: draw(st.integers(0, len(body) - 1))]
    else:
        body += draw(st.binary(min_size=1, max_size=64))
    return PREAMBLE + HELLO + encode_frame(bytes(body))


frames_before_hello = st.lists(messages, min_size=1, max_size=12).map(
    lambda ms: PREAMBLE + b"".join(encode_frame(codec.encode(m)) for m in ms) + HELLO
)
oversized_prefixes = st.one_of(
    st.integers(wire.CONTROL_MAX_FRAME + 1, 2**32 - 1).map(lambda n: PREAMBLE + frame_header(n)),
    st.integers(DEFAULT_MAX_FRAME_SIZE + 1, 2**32 - 1).map(
        lambda n: PREAMBLE + HELLO + frame_header(n) + b"x" * 100
    ),
)
truncated_frames = st.tuples(messages, st.integers(1, 10)).map(
    lambda mk: PREAMBLE + HELLO + encode_frame(codec.encode(mk[0]))[: -mk[1]]
)
attacks = st.one_of(
    st.binary(max_size=2048),  # anything at all
    st.binary(max_size=2048).map(lambda b: PREAMBLE + b),  # garbage on a message connection
    st.binary(max_size=512).map(lambda b: wire.DATA_PREAMBLE + b),  # ... on a data connection
    mutated_frames(),
    frames_before_hello,
    oversized_prefixes,
    truncated_frames,
)


def test_hostile_connections_are_rejected_and_the_node_keeps_serving(
    live: LiveCluster, caplog: pytest.LogCaptureFixture
) -> None:
    @settings(max_examples=80, deadline=None, database=None)
    @given(blob=attacks)
    @example(blob=b"GET / HTTP/1.1\r\n\r\n")  # bad_preamble
    @example(blob=PREAMBLE + HELLO + encode_frame(b"\xc1"))  # malformed
    @example(blob=PREAMBLE + encode_frame(codec.encode(Ping(1))))  # unauthenticated
    @example(blob=PREAMBLE + frame_header(2**32 - 1))  # oversize
    @example(blob=PREAMBLE + HELLO + encode_frame(codec.encode(Ping(1)))[:-1])  # truncated
    @example(blob=wire.DATA_PREAMBLE + encode_frame(b"not a header"))  # bad_stream
    def attack(blob: bytes) -> None:
        live.throw(blob)

    with caplog.at_level(logging.WARNING):
        attack()

    rejected = live.rejected()
    for reason in ("bad_preamble", "malformed", "unauthenticated", "oversize", "truncated", "bad_stream"):
        assert rejected.get(reason, 0) >= 1, (reason, rejected)
    assert rejected.get("internal_error", 0) == 0, "an attack hit a bug in frame handling"
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], "attacks are warnings, never errors (a handler or task crashed)"

    async def real_ping() -> None:
        peer = live.apps["peer"]
        live.cluster.runtime("peer").send("target", Ping(424242))
        await wait_until(lambda: ("target", 424242) in peer.pongs, what="the target's pong")

    live.call(real_ping())
