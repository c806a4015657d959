"""The receiving side of one message connection, as a state machine without I/O.

:class:`InboundSession` turns bytes into *events* the caller acts on; it never
touches a socket, a clock or a logger, so every rule about what a node accepts
is in this one small file and unit-testable with plain bytes:

* the first valid frame must be a :class:`~backends.tcp.wire.Hello` whose
  node id the caller's ``authenticate`` callback accepts (a known peer, and
  with TLS the identity in the peer's certificate). Until then frames are
  capped at :data:`~backends.tcp.wire.CONTROL_MAX_FRAME` and anything that is
  not a hello is dropped as ``unauthenticated`` (the connection is closed
  after a few of those: a real node never does it);
* after the hello, each frame must decode to a known
  :class:`~novacron.runtime.Message`; a frame that does not is dropped as
  ``malformed`` and the connection goes on, because framing is still intact;
* a length prefix above the limit, or a stream ending inside a frame, closes
  the connection (``oversize`` / ``truncated``): the stream cannot resync.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from novacron.runtime import Message, WireError

from . import wire
from .framing import DEFAULT_MAX_FRAME_SIZE, FrameDecoder, FrameError


@dataclass(frozen=True, slots=True)
class Authenticated:
    """The peer said a valid hello; later messages come from ``node_id``."""

    node_id: str


@dataclass(frozen=True, slots=True)
class Deliver:
    """A message from the authenticated peer, to hand to its handler."""

    message: Message


@dataclass(frozen=True, slots=True)
class Reject:
    """One frame dropped; the connection stays open."""

    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class Close:
    """The connection must be closed; nothing after this event is valid."""

    reason: str
    detail: str


Event = Authenticated | Deliver | Reject | Close

#: ``authenticate(node_id)`` returns ``None`` to accept, or why it refuses.
Authenticator = Callable[[str], str | None]
#: Turns a frame body into a message or raises :class:`WireError`.
MessageDecoder = Callable[[bytes], Message]


class InboundSession:
    """Hello first, then messages; see the module docstring for the rules."""

    def __init__(
        self,
        authenticate: Authenticator,
        decode: MessageDecoder,
        *,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        max_unauthenticated: int = 8,
    ) -> None:
        self._authenticate = authenticate
        self._decode = decode
        self._max_frame_size = max_frame_size
        self._max_unauthenticated = max_unauthenticated
        self._unauthenticated = 0
        self._decoder = FrameDecoder(min(wire.CONTROL_MAX_FRAME, max_frame_size))
        self.peer: str | None = None
        self.closed = False

    def data_received(self, data: bytes) -> list[Event]:
        if self.closed:
            return []
        events: list[Event] = []
        try:
            self._decoder.feed(data)
            for body in self._decoder.frames():
                event = self._on_frame(body)
                events.append(event)
                if isinstance(event, Close):
                    self.closed = True
                    return events
        except FrameError as exc:
            events.append(self._close(exc.reason, str(exc)))
        return events

    def eof_received(self) -> list[Event]:
        """The peer closed its side: only an error if it stopped mid-frame."""
        if self.closed:
            return []
        self.closed = True
        try:
            self._decoder.close()
        except FrameError as exc:
            return [Close(exc.reason, str(exc))]
        return []

    def _on_frame(self, body: bytes) -> Event:
        if self.peer is None:
            return self._on_hello(body)
        try:
            return Deliver(self._decode(body))
        except WireError as exc:
            return Reject("malformed", str(exc))
        except Exception as exc:  # e.g. UnicodeDecodeError, which the codec lets through
            return Reject("malformed", f"undecodable message frame: {exc!r}")

    def _on_hello(self, body: bytes) -> Event:
        try:
            hello = wire.decode(wire.Hello, body)
        except WireError as exc:
            self._unauthenticated += 1
            if self._unauthenticated > self._max_unauthenticated:
                return self._close("unauthenticated", f"{self._unauthenticated} frames without hello")
            return Reject("unauthenticated", f"frame before a valid hello ({exc})")
        if hello.version != wire.PROTOCOL_VERSION:
            return self._close(
                "hello_rejected",
                f"protocol version {hello.version}, this node speaks {wire.PROTOCOL_VERSION}",
            )
        refusal = self._authenticate(hello.node_id)
        if refusal is not None:
            return self._close("hello_rejected", f"hello from {hello.node_id!r}: {refusal}")
        self.peer = hello.node_id
        self._decoder.max_frame_size = self._max_frame_size
        return Authenticated(hello.node_id)

    def _close(self, reason: str, detail: str) -> Close:
        self.closed = True
        return Close(reason, detail)
