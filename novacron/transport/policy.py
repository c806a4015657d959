"""How many streams, and which congestion control, AMST uses towards a peer.

The network mode sets the starting range (DWCP v3: datacenter 32-512
streams, internet 4-16; hybrid, which the design leaves open, 8-64), always
clamped to the configured ``min_streams``/``max_streams``. Within it, the
count adapts per peer by hill climbing on measured goodput: keep doubling
(or halving) while aggregate goodput rises by more than ``gain``; when a
step does not pay, go back and try the other direction; once both
directions have failed from the same point, stay there until the mode
changes. Parallel streams help on long or lossy paths (each TCP flow is
window- or loss-limited) and cost memory, CPU and fairness elsewhere, which
is why the count is measured rather than maximal.

Congestion control: ``cubic`` or ``bbr`` as configured; ``adaptive`` picks
BBR when the peer is not in the datacenter (loss-tolerant on long paths)
and CUBIC inside it.
"""

from __future__ import annotations

from dataclasses import dataclass

MODE_STREAMS: dict[str, tuple[int, int]] = {
    "datacenter": (32, 512),
    "internet": (4, 16),
    "hybrid": (8, 64),
}


def choose_congestion(configured: str, mode: str) -> str:
    if configured in ("cubic", "bbr", "reno"):
        return configured
    if configured != "adaptive":
        raise ValueError(f"unknown congestion_algo {configured!r}; choose cubic, bbr or adaptive")
    return "cubic" if mode == "datacenter" else "bbr"


@dataclass
class _Climb:
    mode: str
    streams: int
    best_streams: int
    best_goodput: float = 0.0
    direction: int = +1  # +1: doubling, -1: halving
    reversals: int = 0


class StreamController:
    """Per-peer stream counts: mode range, config bounds, then goodput hill climbing."""

    def __init__(self, min_streams: int = 4, max_streams: int = 256, *, gain: float = 0.05) -> None:
        if not 1 <= min_streams <= max_streams:
            raise ValueError(f"need 1 <= min_streams <= max_streams, got {min_streams}, {max_streams}")
        self.min_streams = min_streams
        self.max_streams = max_streams
        self.gain = gain
        self._peers: dict[str, _Climb] = {}

    def bounds(self, mode: str) -> tuple[int, int]:
        """The mode's range intersected with the configured one (the config wins on conflict)."""
        try:
            lo, hi = MODE_STREAMS[mode]
        except KeyError:
            raise ValueError(f"unknown mode {mode!r}; known: {', '.join(MODE_STREAMS)}") from None
        lo, hi = max(lo, self.min_streams), min(hi, self.max_streams)
        if lo > hi:  # disjoint ranges: stay inside the configured bounds, nearest the mode's
            lo = hi = min(max(MODE_STREAMS[mode][0], self.min_streams), self.max_streams)
        return lo, hi

    def forget(self, peer: str) -> None:
        """Drop what was learnt about ``peer`` (its link changed): start from its mode's range."""
        self._peers.pop(peer, None)

    def streams_for(self, peer: str, mode: str) -> int:
        climb = self._peers.get(peer)
        if climb is None or climb.mode != mode:
            lo, _ = self.bounds(mode)
            climb = self._peers[peer] = _Climb(mode, lo, lo)
        return climb.streams

    def observe(self, peer: str, streams: int, goodput_bps: float) -> int:
        """Feed the goodput a transfer with ``streams`` streams reached; returns the next count."""
        climb = self._peers.get(peer)
        if climb is None or streams != climb.streams:
            return streams if climb is None else climb.streams  # stale or foreign sample
        lo, hi = self.bounds(climb.mode)
        if goodput_bps > climb.best_goodput * (1 + self.gain):
            climb.best_goodput, climb.best_streams = goodput_bps, streams
        elif climb.reversals < 2:
            climb.direction = -climb.direction
            climb.reversals += 1
            climb.streams = climb.best_streams
        if climb.reversals >= 2:
            climb.streams = climb.best_streams  # both directions tried: settle
            return climb.streams
        step = climb.best_streams * 2 if climb.direction > 0 else climb.best_streams // 2
        nxt = min(hi, max(lo, step))
        if nxt == climb.best_streams:  # hit a bound: turn around (or settle)
            climb.direction = -climb.direction
            climb.reversals += 1
            step = climb.best_streams * 2 if climb.direction > 0 else climb.best_streams // 2
            nxt = min(hi, max(lo, step))
            if climb.reversals >= 2 or nxt == climb.best_streams:
                nxt = climb.best_streams
                climb.reversals = 2
        climb.streams = nxt
        return nxt
