"""Heartbeats: liveness and round-trip time to every peer.

The smallest real protocol in NovaCron, and the one the contract suite runs
on both runtimes: every ``interval`` a node sends :class:`Heartbeat` to each
peer, peers answer with :class:`HeartbeatAck` echoing the sender's
timestamp, and the sender turns the echo into an RTT sample. A peer that has
not answered for ``suspect_after`` intervals is *suspected* (a simple
timeout failure detector, as in SWIM's direct probe without indirection).

RTT is measured on the sender's own clock only (send time echoed back), so
clock skew between nodes never enters the sample.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from novacron.runtime import Cancellable, Message, Runtime


class Heartbeat(Message, tag="hb"):
    seq: int
    sent_at: float


class HeartbeatAck(Message, tag="hb-ack"):
    seq: int
    sent_at: float


@dataclass
class PeerStats:
    """What one node knows about one peer."""

    rtts: deque[float] = field(default_factory=lambda: deque(maxlen=1000))
    last_ack: float | None = None
    acks: int = 0

    @property
    def last_rtt(self) -> float | None:
        return self.rtts[-1] if self.rtts else None


class HeartbeatService:
    """Periodic heartbeats to all peers, with RTT samples and suspicion.

    ``on_rtt`` (optional) is called with ``(peer, rtt_seconds)`` for every
    sample, so a caller can feed a metrics sink or the simulator's report.
    ``keep_samples`` bounds memory for long runs.
    """

    def __init__(
        self,
        rt: Runtime,
        *,
        interval: float = 0.1,
        suspect_after: int = 3,
        keep_samples: int = 1000,
        on_rtt=None,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"heartbeat interval must be > 0, got {interval}")
        self.rt = rt
        self.interval = interval
        self.suspect_after = suspect_after
        self.keep_samples = keep_samples
        self.on_rtt = on_rtt
        self.peers: dict[str, PeerStats] = {p: self._new_stats() for p in rt.peers}
        self.started_at = rt.now()
        self._seq = 0
        self._timer: Cancellable | None = None
        rt.on_message(Heartbeat, self._on_heartbeat)
        rt.on_message(HeartbeatAck, self._on_ack)
        # Start at a random phase so that nodes do not beat in lockstep.
        self._timer = rt.call_later(rt.random.uniform(0, interval), self._beat)

    def _new_stats(self) -> PeerStats:
        return PeerStats(rtts=deque(maxlen=self.keep_samples))

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def suspected(self) -> list[str]:
        """Peers that have not acknowledged for ``suspect_after`` intervals."""
        now = self.rt.now()
        limit = self.suspect_after * self.interval
        return [
            peer
            for peer, stats in self.peers.items()
            if now - (stats.last_ack if stats.last_ack is not None else self.started_at) > limit
        ]

    def _beat(self) -> None:
        self._seq += 1
        beat = Heartbeat(self._seq, self.rt.now())
        for peer in self.peers:
            self.rt.send(peer, beat)
        self._timer = self.rt.call_later(self.interval, self._beat)

    def _on_heartbeat(self, src: str, msg: Heartbeat) -> None:
        self.rt.send(src, HeartbeatAck(msg.seq, msg.sent_at))

    def _on_ack(self, src: str, msg: HeartbeatAck) -> None:
        stats = self.peers.get(src)
        if stats is None:  # a node that joined after us: start tracking it
            stats = self.peers[src] = self._new_stats()
        now = self.rt.now()
        rtt = now - msg.sent_at
        stats.last_ack = now
        stats.acks += 1
        stats.rtts.append(rtt)  # a bounded deque: memory stays flat on long runs
        if self.on_rtt is not None:
            self.on_rtt(src, rtt)
