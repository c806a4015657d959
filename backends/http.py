"""A small HTTP/1.1 server for a node's operational endpoints (``/healthz``, ``/metrics``).

Parsing and framing are h11's (a sans-I/O HTTP/1.1 state machine); this module moves bytes
between it and asyncio streams. Handlers run on the node's event loop, between two events of
its protocol code, so they read node state that nothing changes under them: that is why this
is not prometheus_client's ``start_http_server``, whose thread would read it concurrently.

Routes are exact paths, each a function returning a :class:`Response`; GET and HEAD are served
(HEAD without the body), other methods get 405 with ``Allow``, unknown paths 404. Connections
are kept alive between requests.

A broken or hostile client costs bounded resources and never affects another connection: a
request head is at most ``max_head_bytes`` (431 beyond), a body at most ``max_body_bytes``
(413; nothing here reads one), a malformed request gets 400; after these the connection is
closed. A client has ``request_timeout`` seconds to send each complete request and read its
response (an idle keep-alive connection included), and at most ``max_connections`` are open
(more are closed at once). Every response is counted by route and status, every connection
closed without one by reason (:class:`HttpStats`), and refusals are logged, throttled as the
runtime logs rejected frames.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import h11

from .stats import LogThrottle

log = logging.getLogger(__name__)

#: the methods every route serves
ALLOWED_METHODS = ("GET", "HEAD")
#: the ``path`` of responses to requests that named no route (bounds the metric's labels)
OTHER = "other"
_READ_CHUNK = 64 * 1024
#: after an error response, how long and how much of the client's remaining input is read
#: and discarded before closing (see :meth:`HttpServer._linger`)
_LINGER_SECONDS = 2.0
_LINGER_BYTES = 1 << 20


@dataclass(frozen=True)
class Response:
    """What a route answers; the server adds content-length (and connection, when it closes)."""

    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def json(cls, status: int, data: Any) -> Response:
        return cls(status, json.dumps(data).encode() + b"\n", "application/json")


Handler = Callable[[], Response]


@dataclass
class HttpStats:
    """What a server (or several sharing it) answered and refused."""

    #: responses sent, by route (:data:`OTHER` for no route) and status code
    responses: Counter[tuple[str, int]] = field(default_factory=Counter)
    #: connections closed without a response to a request, by reason: ``idle`` (no request in
    #: time: the normal end of a keep-alive connection), ``timeout`` (a request begun but not
    #: sent in full, or a response not read, in time), ``too_many_connections``
    dropped: Counter[str] = field(default_factory=Counter)


class _BodyTooLarge(Exception):
    pass


class HttpServer:
    """Serves ``routes`` on ``host:port`` (port 0: any free port, see :attr:`address`)."""

    def __init__(
        self,
        routes: Mapping[str, Handler],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_connections: int = 64,
        max_head_bytes: int = 16 * 1024,
        max_body_bytes: int = 16 * 1024,
        request_timeout: float = 10.0,
        stats: HttpStats | None = None,
        name: str = "http",
    ) -> None:
        if max_head_bytes < 64:
            raise ValueError(f"max_head_bytes must be >= 64, got {max_head_bytes}")
        self.routes = dict(routes)
        self.host = host
        self.port = port
        self.max_connections = max_connections
        self.max_head_bytes = max_head_bytes
        self.max_body_bytes = max_body_bytes
        self.request_timeout = request_timeout
        self.stats = stats if stats is not None else HttpStats()
        self.name = name
        self._server: asyncio.Server | None = None
        self._closing = False
        self._connections: set[asyncio.Task[Any]] = set()
        self._throttle: LogThrottle | None = None

    async def start(self) -> None:
        """Bind and start serving; raises :class:`OSError` if the address cannot be bound."""
        loop = asyncio.get_running_loop()
        self._throttle = LogThrottle(loop.time)
        self._server = await asyncio.start_server(self._serve_connection, self.host, self.port)
        log.info("[%s] serving %s on %s:%d", self.name, ", ".join(self.routes), *self.address)

    @property
    def address(self) -> tuple[str, int]:
        """Where the server listens (the bound port, once started)."""
        if self._server is None or not self._server.sockets:
            return self.host, self.port
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    async def close(self) -> None:
        """Stop listening and close every connection (a request in progress is cut off)."""
        if self._server is None or self._closing:
            return
        self._closing = True
        self._server.close()
        while self._connections:  # (a connection accepted just before may start meanwhile)
            for task in self._connections:
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()

    # --- one connection -----------------------------------------------------------------------

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        where = _format_address(writer.get_extra_info("peername"))
        if self._closing:
            writer.transport.abort()
            return
        if len(self._connections) >= self.max_connections:
            self._drop("too_many_connections", where, f"{len(self._connections)} open")
            writer.transport.abort()
            return
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        # One byte short of the bound: h11 refuses an incomplete head once it buffers *more*
        # than this, and _read_size() never lets it buffer more than max_head_bytes of one.
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self.max_head_bytes - 1)
        graceful = False
        try:
            while await self._exchange(conn, reader, writer, where):
                conn.start_next_cycle()
            graceful = True
        except OSError:  # the client went away mid-response
            pass
        except Exception:
            log.exception("[%s] connection from %s failed", self.name, where)
        finally:
            self._connections.discard(task)
            if graceful:
                writer.close()
            else:
                writer.transport.abort()

    async def _exchange(
        self, conn: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, where: str
    ) -> bool:
        """Read one request and answer it; whether the connection may carry another."""
        try:
            async with asyncio.timeout(self.request_timeout):
                request = await self._read_request(conn, reader)
                if request is None:  # the client closed between requests
                    return False
                path, response = self._route(request)
                await self._send(conn, writer, path, response, head_only=request.method == b"HEAD")
        except TimeoutError:
            idle = conn.their_state is h11.IDLE and not conn.trailing_data[0]
            reason = "idle" if idle else "timeout"
            self._drop(reason, where, f"nothing for {self.request_timeout:g}s" if idle else "too slow")
            return False
        except h11.RemoteProtocolError as exc:
            status = exc.error_status_hint
            detail = f"request head over {self.max_head_bytes} bytes" if status == 431 else str(exc)
            await self._refuse(conn, reader, writer, status, where, detail)
            return False
        except _BodyTooLarge:
            await self._refuse(conn, reader, writer, 413, where, f"body over {self.max_body_bytes} bytes")
            return False
        return conn.our_state is h11.DONE and conn.their_state is h11.DONE

    async def _read_request(self, conn: h11.Connection, reader: asyncio.StreamReader) -> h11.Request | None:
        """The next request, once it arrived in full (its body read and discarded)."""
        request: h11.Request | None = None
        body = 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await reader.read(self._read_size(conn)))  # b"": the client closed
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += len(event.data)
                if body > self.max_body_bytes:
                    raise _BodyTooLarge
            elif isinstance(event, h11.EndOfMessage):
                return request
            elif isinstance(event, h11.ConnectionClosed):
                return None

    def _read_size(self, conn: h11.Connection) -> int:
        if conn.their_state is not h11.IDLE:  # past the head
            return _READ_CHUNK
        # Never more than the head may still grow: h11 checks its bound only on incomplete heads,
        # so a whole oversized head read at once would otherwise pass.
        return max(1, self.max_head_bytes - len(conn.trailing_data[0]))

    def _route(self, request: h11.Request) -> tuple[str, Response]:
        path = request.target.decode("ascii", "replace").split("?", 1)[0]
        handler = self.routes.get(path)
        if handler is None:
            return OTHER, Response(404, b"not found\n")
        if request.method.decode("ascii", "replace") not in ALLOWED_METHODS:
            allow = (("allow", ", ".join(ALLOWED_METHODS)),)
            return path, Response(405, b"method not allowed\n", headers=allow)
        try:
            return path, handler()
        except Exception:
            log.exception("[%s] handler for %s raised", self.name, path)
            return path, Response(500, b"internal error\n")

    async def _send(
        self,
        conn: h11.Connection,
        writer: asyncio.StreamWriter,
        path: str,
        response: Response,
        *,
        head_only: bool = False,
        close: bool = False,
    ) -> None:
        headers = [
            ("content-type", response.content_type),
            ("content-length", str(len(response.body))),
            *response.headers,
        ]
        if close:
            headers.append(("connection", "close"))
        reason = HTTPStatus(response.status).phrase.encode()
        data = conn.send(h11.Response(status_code=response.status, headers=headers, reason=reason)) or b""
        if response.body and not head_only:
            data += conn.send(h11.Data(data=response.body)) or b""
        data += conn.send(h11.EndOfMessage()) or b""
        writer.write(data)
        await writer.drain()
        self.stats.responses[path, response.status] += 1

    # --- refusals -----------------------------------------------------------------------------

    async def _refuse(
        self,
        conn: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        status: int,
        where: str,
        detail: str,
    ) -> None:
        """Answer a request that cannot be served with ``status``, then stop reading it."""
        self._log_refusal(f"{status} {HTTPStatus(status).phrase.lower()}", where, detail)
        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return  # a response was already under way: all we can do is close
        response = Response(status, f"{HTTPStatus(status).phrase.lower()}\n".encode())
        try:
            async with asyncio.timeout(self.request_timeout):
                await self._send(conn, writer, OTHER, response, close=True)
                await self._linger(reader, writer)
        except (TimeoutError, OSError):
            pass

    @staticmethod
    async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Half-close, then read and discard what the client still sends (bounded), so that
        closing does not reset the connection: a reset would discard the error response, unread,
        at the client."""
        if writer.can_write_eof():
            writer.write_eof()
        left = _LINGER_BYTES
        async with asyncio.timeout(_LINGER_SECONDS):
            while left > 0 and (chunk := await reader.read(_READ_CHUNK)):
                left -= len(chunk)

    def _drop(self, reason: str, where: str, detail: str) -> None:
        self.stats.dropped[reason] += 1
        if reason == "idle":  # the normal end of a keep-alive connection
            log.debug("[%s] closed idle connection from %s: %s", self.name, where, detail)
        else:
            self._log_refusal(reason, where, detail)

    def _log_refusal(self, reason: str, where: str, detail: str) -> None:
        assert self._throttle is not None
        if self._throttle.allow(reason):
            skipped = self._throttle.suppressed(reason)
            more = f" ({skipped} similar suppressed)" if skipped else ""
            log.warning("[%s] refused (%s) from %s: %s%s", self.name, reason, where, detail, more)


def _format_address(peer: Any) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)
