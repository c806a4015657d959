"""Shared pieces of the backend tests: messages, tiny apps, waiting helpers.

Message tags are namespaced (``backend-test/...``): the process-wide codec
refuses two message types with one tag, and other test folders define
messages too.
"""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from novacron.runtime import Message, Runtime


class Ping(Message, tag="backend-test/ping"):
    n: int


class Pong(Message, tag="backend-test/pong"):
    n: int


class Orphan(Message, tag="backend-test/orphan"):
    """A message type no test app registers a handler for."""

    note: str


@dataclass
class PingPong:
    """Answers every Ping with a Pong and records everything it hears."""

    rt: Runtime
    pings: list[tuple[str, int]] = field(default_factory=list)
    pongs: list[tuple[str, int]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.rt.on_message(Ping, self._on_ping)
        self.rt.on_message(Pong, self._on_pong)

    def _on_ping(self, src: str, msg: Ping) -> None:
        self.pings.append((src, msg.n))
        self.rt.send(src, Pong(msg.n))
        self.changed.set()

    def _on_pong(self, src: str, msg: Pong) -> None:
        self.pongs.append((src, msg.n))
        self.changed.set()


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Poll ``predicate`` on the event loop until true; fail after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        await asyncio.sleep(0.005)


def wait_until_sync(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """:func:`wait_until` for code outside the event loop (threads, subprocess tests)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.005)


def port_is_closed(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=2.0):
            return False
    except ConnectionRefusedError:
        return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (for configs, which cannot say "any port")."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def http_get(url: str, *, method: str = "GET", timeout: float = 30.0) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names) and body of one request with the standard library's
    client, blocking (run it in a thread from the event loop). Proxies from the environment are
    ignored: the tests talk to loopback only."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, method=method)
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, _lower(response.headers), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, _lower(error.headers), error.read()


def _lower(headers: Any) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}
