"""Counters a runtime keeps about its network, for operators and tests.

Everything the network layer drops or refuses is counted here, by reason,
because "best effort" must not mean "silently": a test can assert that a
fuzzed frame was rejected *as malformed*, and an operator can see that a
queue to a dead peer is overflowing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class NetworkStats:
    #: message frames handed to a socket
    sent: int = 0
    #: messages delivered to a handler
    received: int = 0
    #: messages dropped because the peer's send queue was full
    dropped_queue_full: int = 0
    #: messages to a node id nobody knows
    dropped_unknown_peer: int = 0
    #: messages sent while the runtime was not running
    dropped_not_running: int = 0
    #: messages lost in a connection that broke under them
    dropped_connection_lost: int = 0
    #: valid messages of a type without a handler
    unhandled: int = 0
    #: message or transfer handlers that raised
    handler_errors: int = 0
    #: spawned tasks and timer callbacks that raised
    task_errors: int = 0
    #: outbound message connections established (first ones and reconnections)
    connects: int = 0
    #: outbound message connections re-established after one was lost or failed
    reconnects: int = 0
    #: failed attempts to open an outbound message connection
    connect_failures: int = 0
    transfers_sent: int = 0
    transfers_received: int = 0
    #: transfers that failed, on either side
    transfers_failed: int = 0
    #: transfers that arrived with a tag nobody handles (still acknowledged)
    transfers_unhandled: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    #: streams (``open_stream``) this node opened, and accepted from peers
    streams_opened: int = 0
    streams_accepted: int = 0
    #: streams that could not be opened or broke (reset, peer gone, stalled,
    #: a rejected record), on either end; not those closed on purpose
    streams_failed: int = 0
    #: stream records written to a socket, and handed to a handler (or dropped
    #: for lack of one: see ``records_unhandled``)
    records_sent: int = 0
    records_received: int = 0
    #: valid records whose header type has no ``on_stream`` handler (dropped)
    records_unhandled: int = 0
    #: volatile records whose data changed while they were sent: voided and sent again from
    #: a copy (sender), or discarded unread (receiver); see ``RecordStream.send``
    records_voided: int = 0
    #: data bytes of those records (headers not included)
    record_bytes_sent: int = 0
    record_bytes_received: int = 0
    #: inbound frames, records or connections refused, by reason (malformed,
    #: oversize, truncated, unauthenticated, hello_rejected, bad_preamble,
    #: tls_handshake, handshake_timeout, too_many_connections, bad_stream,
    #: checksum_mismatch)
    rejected: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["rejected"] = dict(self.rejected)
        return data


class LogThrottle:
    """Lets a hostile or broken peer be logged without flooding the log.

    ``allow(key)`` is true for the first event of ``key`` and then at most once
    per ``interval`` seconds; :meth:`suppressed` says how many were skipped
    since, so the next line can mention them.
    """

    def __init__(self, clock: Any, interval: float = 1.0) -> None:
        self._clock = clock
        self._interval = interval
        self._next: dict[str, float] = {}
        self._skipped: Counter[str] = Counter()

    def allow(self, key: str) -> bool:
        now = self._clock()
        if now >= self._next.get(key, float("-inf")):
            self._next[key] = now + self._interval
            return True
        self._skipped[key] += 1
        return False

    def suppressed(self, key: str) -> int:
        """Events of ``key`` skipped since the last allowed one (and reset)."""
        return self._skipped.pop(key, 0)
