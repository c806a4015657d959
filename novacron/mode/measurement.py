"""Per-peer measurement windows: RTT, jitter, loss and bandwidth.

Pure bookkeeping, no I/O: the detector reports what its probes saw
(:meth:`PeerEstimator.probe_sent`, :meth:`~PeerEstimator.rtt_sample`,
:meth:`~PeerEstimator.bandwidth_sample`) and closes one window per detection
round with :meth:`PeerEstimator.close`, which returns an immutable
:class:`Measurement`. The statistics, and why these ones:

* **RTT** (the "latency" of the classification rule, see
  :mod:`novacron.mode.modes`): the *median* of the window's probe RTTs. The
  median ignores one probe delayed by a scheduling hiccup or a queue burst
  (the mean does not) yet, unlike the minimum, still reflects queueing that
  persists, which protocols do experience. Each window stands alone; the
  original design averaged ten rounds, which blends old conditions into new
  ones and slows detection for no gain once hysteresis guards against noise.
* **jitter**: the RFC 3550 (section 6.4.1) interarrival-jitter estimator
  applied to consecutive RTT samples, ``J += (|D| - J) / 16``: smoothed,
  cheap, and the figure operators know from RTP. Kept across windows.
* **loss**: the share of the window's probes not answered within the probe
  timeout. Reported to subscribers (e.g. for congestion-control choice); the
  classification rule does not use it.
* **bandwidth**: the *maximum* of the window's samples. Every goodput
  sample, active or passive, is a lower bound on what the path can carry
  (cross traffic, a short transfer, a slow receiver only ever make it
  smaller), so the best estimate is the largest: the windowed max filter of
  BBR's bottleneck-bandwidth estimate. Only the window's own samples count,
  so a drop in capacity shows in the next window. A window with no sample
  carries the last known estimate forward (``bandwidth_source ==
  "carried"``): capacity changes rarely, and a node that only learns
  bandwidth passively cannot classify at all otherwise.

Active bandwidth samples come from :func:`size_differential_bps`: two probe
transfers of different sizes, the slope of duration against size. A single
short transfer's goodput is dominated by its fixed costs (connection set-up,
one RTT for the acknowledgement), which would make every long-ish link look
slow; the difference cancels them, on both runtimes alike. This is the
variable-packet-size method of Jacobson's pathchar, at transfer scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from novacron.runtime import TransferReport

#: RFC 3550's jitter gain: 1/16.
JITTER_GAIN = 1.0 / 16.0


@dataclass(frozen=True, slots=True)
class Measurement:
    """One detection window for one peer. Times on the measuring node's clock.

    ``rtt``, ``rtt_min`` and ``jitter`` in seconds, ``loss`` a fraction,
    ``bandwidth_bps`` in bit/s; ``None`` where the window had no data.
    ``bandwidth_source`` is ``"active"`` (probe transfers), ``"passive"``
    (a real transfer was the best sample), ``"carried"`` (no sample: the
    previous estimate) or ``None`` (never measured).
    """

    peer: str
    started: float
    ended: float
    rtt: float | None
    rtt_min: float | None
    jitter: float | None
    loss: float | None
    probes_sent: int
    probes_answered: int
    bandwidth_bps: float | None
    bandwidth_source: str | None
    bandwidth_samples: int


class PeerEstimator:
    """Accumulates one peer's samples and closes them into :class:`Measurement` windows."""

    def __init__(self, peer: str) -> None:
        self.peer = peer
        self.jitter: float | None = None
        self.bandwidth_bps: float | None = None  # the last window's estimate, carried forward
        self._last_rtt: float | None = None
        self._rtts: list[float] = []
        self._sent = 0
        self._bandwidth: list[tuple[float, str]] = []

    def probe_sent(self, count: int = 1) -> None:
        self._sent += count

    def rtt_sample(self, rtt: float) -> None:
        """One answered probe (call it at most once per probe sent)."""
        self._rtts.append(rtt)
        if self._last_rtt is not None:
            delta = abs(rtt - self._last_rtt)
            self.jitter = delta if self.jitter is None else self.jitter + (delta - self.jitter) * JITTER_GAIN
        self._last_rtt = rtt

    def bandwidth_sample(self, bps: float, source: str) -> None:
        """A goodput (or size-differential) estimate in bit/s; ``source`` is active or passive.

        Non-positive and infinite values (a zero-length timing) carry no information and are ignored.
        """
        if bps > 0 and math.isfinite(bps):
            self._bandwidth.append((bps, source))

    def close(self, started: float, ended: float) -> Measurement:
        """End the window: summarise its samples and start an empty one."""
        rtts = sorted(self._rtts)
        if self._bandwidth:
            bps, source = max(self._bandwidth, key=lambda sample: sample[0])
            self.bandwidth_bps = bps
        else:
            bps, source = self.bandwidth_bps, ("carried" if self.bandwidth_bps is not None else None)
        window = Measurement(
            peer=self.peer,
            started=started,
            ended=ended,
            rtt=_median(rtts),
            rtt_min=rtts[0] if rtts else None,
            jitter=self.jitter,
            loss=1.0 - min(len(rtts), self._sent) / self._sent if self._sent else None,
            probes_sent=self._sent,
            probes_answered=len(rtts),
            bandwidth_bps=bps,
            bandwidth_source=source,
            bandwidth_samples=len(self._bandwidth),
        )
        self._rtts = []
        self._sent = 0
        self._bandwidth = []
        return window


def _median(sorted_values: list[float]) -> float | None:
    n = len(sorted_values)
    if n == 0:
        return None
    mid = n // 2
    return sorted_values[mid] if n % 2 else (sorted_values[mid - 1] + sorted_values[mid]) / 2


def size_differential_bps(small: TransferReport, large: TransferReport) -> float:
    """Bandwidth from two transfers of different sizes to the same peer, in bit/s.

    ``(large.nbytes - small.nbytes) * 8 / (large.duration - small.duration)``:
    fixed per-transfer costs cancel out. Timing noise can make the difference
    meaningless (the larger transfer no slower than the smaller one); the
    result is then, and in any case never less than, the large transfer's
    plain goodput, which is a valid lower bound on its own.
    """
    floor = large.goodput_bps
    extra_bytes = large.nbytes - small.nbytes
    extra_time = large.duration - small.duration
    if extra_bytes <= 0 or extra_time <= 0:
        return floor
    return max(floor, extra_bytes * 8 / extra_time)
