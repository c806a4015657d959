"""Counters a runtime keeps about its network, for operators and tests.

Everything the network layer drops or refuses is counted here, by reason,
because "best effort" must not mean "silently": a test can assert that a
fuzzed frame was rejected *as malformed*, and an operator can see that a
queue to a dead peer is overflowing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from novacron.monitoring.counters import counter, counter_by


@dataclass
class NetworkStats:
    """Each field's help says what one count is; the metrics exporter publishes every field as
    ``novacron_network_<field>_total`` with that help (see :mod:`novacron.monitoring.counters`)."""

    sent: int = counter("message frames handed to a socket")
    received: int = counter("messages delivered to a handler")
    dropped_queue_full: int = counter("messages dropped because the peer's send queue was full")
    dropped_unknown_peer: int = counter("messages to a node id nobody knows, dropped")
    dropped_not_running: int = counter("messages sent while the runtime was not running, dropped")
    dropped_connection_lost: int = counter("messages lost in a connection that broke under them")
    unhandled: int = counter("valid messages of a type without a handler")
    handler_errors: int = counter("message or transfer handlers that raised")
    task_errors: int = counter("spawned tasks and timer callbacks that raised")
    connects: int = counter("outbound message connections established (first ones and reconnections)")
    reconnects: int = counter("outbound message connections re-established after one was lost or failed")
    connect_failures: int = counter("failed attempts to open an outbound message connection")
    transfers_sent: int = counter("bulk transfers this node sent in full")
    transfers_received: int = counter("bulk transfers this node received in full")
    transfers_failed: int = counter("bulk transfers that failed, on either side")
    transfers_unhandled: int = counter(
        "transfers that arrived with a tag nobody handles (still acknowledged)"
    )
    bytes_sent: int = counter("payload bytes of the bulk transfers sent")
    bytes_received: int = counter("payload bytes of the bulk transfers received")
    streams_opened: int = counter("streams (open_stream) this node opened")
    streams_accepted: int = counter("streams (open_stream) this node accepted from peers")
    streams_failed: int = counter(
        "streams that could not be opened or broke (reset, peer gone, stalled, a rejected record), "
        "on either end; not those closed on purpose"
    )
    records_sent: int = counter("stream records written to a socket")
    records_received: int = counter(
        "stream records handed to a handler, or dropped for lack of one (see records_unhandled)"
    )
    records_unhandled: int = counter("valid records whose header type has no on_stream handler (dropped)")
    records_voided: int = counter(
        "volatile records whose data changed while they were sent: voided and sent again from a copy "
        "(sender), or discarded unread (receiver); see RecordStream.send"
    )
    record_bytes_sent: int = counter("data bytes of the stream records sent (headers not included)")
    record_bytes_received: int = counter("data bytes of the stream records received (headers not included)")
    rejected: Counter[str] = counter_by(
        "reason",
        "inbound frames, records or connections refused, by reason (malformed, oversize, truncated, "
        "unauthenticated, hello_rejected, bad_preamble, tls_handshake, handshake_timeout, "
        "too_many_connections, bad_stream, checksum_mismatch)",
    )

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
