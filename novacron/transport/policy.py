"""How many streams, and which congestion control, AMST uses towards a peer.

The network mode sets the starting range (DWCP v3: datacenter 32-512
streams, internet 4-16; hybrid, which the design leaves open, 8-64), always
clamped to the configured ``min_streams``/``max_streams``. Within it, the
count adapts per peer by hill climbing on measured goodput: keep doubling
(or halving) while aggregate goodput rises by more than ``gain``; when a
step does not pay, go back and try the other direction; once both
directions have failed from the same point, hold there. Parallel streams
help on long or lossy paths (each TCP flow is window- or loss-limited) and
cost memory, CPU and fairness elsewhere, which is why the count is measured
rather than maximal.

A held count is not final, because the path and its load change and one
noisy sample may have decided the climb: every ``reprobe_every`` samples the
controller tries a neighbouring count once (up, then down the next time,
like BBR's periodic probing) and climbs on from it if it pays; and when
``change_samples`` samples in a row land more than ``drift`` away from the
held count's usual goodput, the path has changed and the climb starts again
from the held count. A mode change starts over from the new mode's range.

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
    reversals: int = 0  # 2: both directions failed, holding best_streams
    held: int = 0  # samples at the held count since it settled or last probed
    off: int = 0  # consecutive held samples more than ``drift`` from best_goodput
    probing: bool = False  # ``streams`` is a one-sample probe next to the held count
    probe_up: bool = False  # the direction of the last probe


class StreamController:
    """Per-peer stream counts: mode range, config bounds, then goodput hill climbing."""

    def __init__(
        self,
        min_streams: int = 4,
        max_streams: int = 256,
        *,
        gain: float = 0.05,
        reprobe_every: int = 20,
        drift: float = 0.3,
        change_samples: int = 3,
        smoothing: float = 0.25,
    ) -> None:
        """``gain``: the rise a step must bring to count as one. ``reprobe_every``: samples at a
        held count between probes of a neighbour (0: never). ``drift``, ``change_samples``: how
        far from the held count's usual goodput, and for how many samples in a row, before the
        path counts as changed. ``smoothing``: weight of a new sample in that usual goodput."""
        if not 1 <= min_streams <= max_streams:
            raise ValueError(f"need 1 <= min_streams <= max_streams, got {min_streams}, {max_streams}")
        if reprobe_every < 0 or change_samples < 1 or drift <= 0 or not 0 < smoothing <= 1:
            raise ValueError(
                "need reprobe_every >= 0, change_samples >= 1, drift > 0 and 0 < smoothing <= 1, got "
                f"{reprobe_every}, {change_samples}, {drift}, {smoothing}"
            )
        self.min_streams = min_streams
        self.max_streams = max_streams
        self.gain = gain
        self.reprobe_every = reprobe_every
        self.drift = drift
        self.change_samples = change_samples
        self.smoothing = smoothing
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
        if climb.probing:
            return self._probed(climb, goodput_bps, lo, hi)
        if climb.reversals >= 2:
            return self._hold(climb, goodput_bps, lo, hi)
        if goodput_bps > climb.best_goodput * (1 + self.gain):
            climb.best_goodput, climb.best_streams = goodput_bps, streams
        else:  # the step did not pay: back to the best, and the other way
            climb.direction = -climb.direction
            climb.reversals += 1
            climb.streams = climb.best_streams
        if climb.reversals >= 2:
            return self._settle(climb)
        return self._advance(climb, lo, hi)

    def _advance(self, climb: _Climb, lo: int, hi: int) -> int:
        """The next count from the best one in the climb's direction; at a bound, turn (or settle)."""
        step = climb.best_streams * 2 if climb.direction > 0 else climb.best_streams // 2
        nxt = min(hi, max(lo, step))
        if nxt == climb.best_streams:  # hit a bound: turn around (or settle)
            climb.direction = -climb.direction
            climb.reversals += 1
            step = climb.best_streams * 2 if climb.direction > 0 else climb.best_streams // 2
            nxt = min(hi, max(lo, step))
            if climb.reversals >= 2 or nxt == climb.best_streams:
                return self._settle(climb)
        climb.streams = nxt
        return nxt

    def _settle(self, climb: _Climb) -> int:
        climb.streams, climb.reversals, climb.held, climb.off = climb.best_streams, 2, 0, 0
        return climb.streams

    def _hold(self, climb: _Climb, goodput_bps: float, lo: int, hi: int) -> int:
        """A sample at the held count: watch for a changed path, and probe now and then."""
        usual = climb.best_goodput  # (the climb's best sample at first, then smoothed)
        climb.best_goodput = usual + self.smoothing * (goodput_bps - usual)
        if abs(goodput_bps - usual) > self.drift * usual:
            climb.off += 1
            if climb.off >= self.change_samples:  # the path changed: climb again from here
                climb.best_goodput, climb.direction, climb.reversals = goodput_bps, +1, 0
                return self._advance(climb, lo, hi)
            return climb.streams
        climb.off = 0
        climb.held += 1
        if self.reprobe_every and climb.held >= self.reprobe_every:
            climb.held = 0
            climb.probe_up = not climb.probe_up
            for up in (climb.probe_up, not climb.probe_up):  # (at a bound: the other way)
                probe = min(hi, climb.best_streams * 2) if up else max(lo, climb.best_streams // 2)
                if probe != climb.best_streams:
                    climb.streams, climb.probing = probe, True
                    break
        return climb.streams

    def _probed(self, climb: _Climb, goodput_bps: float, lo: int, hi: int) -> int:
        """The probe's sample: climb on from it if it paid, else back to the held count."""
        climb.probing = False
        if goodput_bps > climb.best_goodput * (1 + self.gain):
            climb.direction = +1 if climb.streams > climb.best_streams else -1
            climb.best_streams, climb.best_goodput, climb.reversals = climb.streams, goodput_bps, 0
            return self._advance(climb, lo, hi)
        climb.streams = climb.best_streams
        return climb.streams
