"""The HTTP server of a node's endpoints, on real loopback sockets: what it serves, and that no
client, broken, slow or hostile, can crash it or disturb another connection."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import h11
import pytest
from _backend_testkit import wait_until

from novacron.backends.http import HttpServer, Response

ROUTES = {
    "/healthz": lambda: Response.json(200, {"status": "ok"}),
    "/metrics": lambda: Response(200, b"novacron_up 1\n", "text/plain; version=0.0.4"),
}
TIMEOUT = 30  # generous bound on any single wait: a slow machine must not fail a test


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


class Client:
    """One connection to the server under test; well-formed requests go through h11's client."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.conn = h11.Connection(h11.CLIENT)

    @classmethod
    async def connect(cls, server: HttpServer) -> Client:
        return cls(*await asyncio.open_connection(*server.address))

    async def request(self, method: str, path: str, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
        data = self.conn.send(h11.Request(method=method, target=path, headers=[("host", "test"), *headers]))
        self.writer.write(data + self.conn.send(h11.EndOfMessage()))
        reply, body = None, b""
        async with asyncio.timeout(TIMEOUT):
            while True:
                event = self.conn.next_event()
                if event is h11.NEED_DATA:
                    self.conn.receive_data(await self.reader.read(65536))
                elif isinstance(event, h11.Response):
                    reply = Reply(event.status_code, {k.decode(): v.decode() for k, v in event.headers}, b"")
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    assert reply is not None
                    reply.body = body
                    return reply

    async def send_raw(self, data: bytes, *, eof: bool = True) -> None:
        """Send ``data`` as it is; ``eof``: then half-close, as a client with nothing more to say."""
        self.writer.write(data)
        if eof:
            self.writer.write_eof()
        await self.writer.drain()

    async def read_until_closed(self) -> bytes:
        """Everything the server sends until it closes the connection."""
        chunks = []
        async with asyncio.timeout(TIMEOUT):
            while chunk := await self.reader.read(65536):
                chunks.append(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        self.writer.close()


@asynccontextmanager
async def serving(routes=ROUTES, **options) -> AsyncIterator[HttpServer]:
    server = HttpServer(routes, host="127.0.0.1", port=0, **options)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


async def test_port_0_binds_a_free_port_and_says_which():
    async with serving() as server:
        host, port = server.address
        assert host == "127.0.0.1" and port > 0


async def test_get_and_head_are_served_on_one_kept_alive_connection():
    async with serving() as server:
        client = await Client.connect(server)
        health = await client.request("GET", "/healthz")
        assert health.status == 200 and health.headers["content-type"] == "application/json"
        assert json.loads(health.body) == {"status": "ok"}
        head = await client.request("HEAD", "/healthz")
        assert head.status == 200 and head.body == b""
        assert head.headers["content-length"] == str(len(health.body))
        metrics = await client.request("GET", "/metrics?name=x")  # a query string is ignored
        assert metrics.status == 200 and metrics.body == b"novacron_up 1\n"
        client.close()
        assert server.stats.responses == {("/healthz", 200): 2, ("/metrics", 200): 1}


async def test_an_unknown_path_is_404_and_another_method_405_with_allow():
    async with serving() as server:
        client = await Client.connect(server)
        assert (await client.request("GET", "/nope")).status == 404
        refused = await client.request("DELETE", "/healthz")
        assert refused.status == 405 and refused.headers["allow"] == "GET, HEAD"
        assert (await client.request("GET", "/healthz")).status == 200  # still the same connection
        client.close()
        assert server.stats.responses == {("other", 404): 1, ("/healthz", 405): 1, ("/healthz", 200): 1}


async def test_a_handler_that_raises_is_a_500_not_a_dead_connection():
    def broken() -> Response:
        raise RuntimeError("bug")

    async with serving({"/broken": broken, **ROUTES}) as server:
        client = await Client.connect(server)
        assert (await client.request("GET", "/broken")).status == 500
        assert (await client.request("GET", "/healthz")).status == 200
        client.close()


@pytest.mark.parametrize(
    "garbage",
    [
        b"BLAH\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nno colon here\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\xfc\x03\x03\r\n\r\n",
    ],
    ids=["request-line", "header", "tls-hello"],
)
async def test_a_malformed_request_gets_400_and_the_server_serves_the_next_client(garbage):
    async with serving() as server:
        bystander = await Client.connect(server)  # a connection open meanwhile is not disturbed
        assert (await bystander.request("GET", "/healthz")).status == 200
        bad = await Client.connect(server)
        await bad.send_raw(garbage)
        answer = await bad.read_until_closed()
        assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer
        assert (await bystander.request("GET", "/healthz")).status == 200
        later = await Client.connect(server)
        assert (await later.request("GET", "/healthz")).status == 200
        for c in (bystander, bad, later):
            c.close()


async def test_a_request_head_over_the_bound_gets_431():
    async with serving(max_head_bytes=1024) as server:
        start = b"GET /healthz HTTP/1.1\r\nhost: test\r\nconnection: close\r\nx-pad: "
        end = b"\r\n\r\n"

        def head(size: int) -> bytes:
            return start + b"a" * (size - len(start) - len(end)) + end

        fits = await Client.connect(server)
        await fits.send_raw(head(1024))  # exactly the bound
        assert (await fits.read_until_closed()).startswith(b"HTTP/1.1 200 OK\r\n")
        too_big = await Client.connect(server)
        await too_big.send_raw(head(1025))
        assert (await too_big.read_until_closed()).startswith(b"HTTP/1.1 431 ")
        huge = await Client.connect(server)
        await huge.send_raw(head(256 * 1024))  # far over: refused before the rest is read
        assert (await huge.read_until_closed()).startswith(b"HTTP/1.1 431 ")
        assert server.stats.responses[("other", 431)] == 2
        for c in (fits, too_big, huge):
            c.close()


async def test_a_body_over_the_bound_gets_413():
    async with serving(max_body_bytes=100) as server:
        client = await Client.connect(server)
        await client.send_raw(
            b"POST /healthz HTTP/1.1\r\nhost: t\r\ncontent-length: 1000\r\n\r\n" + b"x" * 1000
        )
        assert (await client.read_until_closed()).startswith(b"HTTP/1.1 413 ")
        client.close()


async def test_slow_and_idle_clients_are_closed_and_others_are_served_meanwhile():
    async with serving(request_timeout=1.0) as server:
        slow = await Client.connect(server)
        await slow.send_raw(b"GET /healthz HTTP/1.1\r\nHo", eof=False)  # ... and never the rest
        idle = await Client.connect(server)  # sends nothing at all
        other = await Client.connect(server)
        assert (await other.request("GET", "/healthz")).status == 200
        assert await slow.read_until_closed() == b""
        assert await idle.read_until_closed() == b""
        assert server.stats.dropped["timeout"] == 1 and server.stats.dropped["idle"] >= 1
        fresh = await Client.connect(server)
        assert (await fresh.request("GET", "/healthz")).status == 200
        for c in (slow, idle, other, fresh):
            c.close()


async def test_connections_beyond_the_limit_are_closed_at_once():
    async with serving(max_connections=2) as server:
        first, second = await Client.connect(server), await Client.connect(server)
        for c in (first, second):  # both are being served
            assert (await c.request("GET", "/healthz")).status == 200
        third = await Client.connect(server)
        assert await third.read_until_closed() == b""
        assert server.stats.dropped["too_many_connections"] == 1
        first.close()
        await wait_until(lambda: len(server._connections) < 2, TIMEOUT, "the closed connection let go")
        fourth = await Client.connect(server)
        assert (await fourth.request("GET", "/healthz")).status == 200
        for c in (second, third, fourth):
            c.close()


async def test_close_stops_listening_and_closes_open_connections():
    server = HttpServer(ROUTES, port=0)
    await server.start()
    client = await Client.connect(server)
    assert (await client.request("GET", "/healthz")).status == 200  # kept alive, open
    await server.close()
    assert await client.read_until_closed() == b""
    with pytest.raises(OSError):
        await asyncio.open_connection(*server.address)
    client.close()
    await server.close()  # twice is harmless
